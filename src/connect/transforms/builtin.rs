//! The registry of built-in transforms and predicates.

use super::{PredicatePlugin, TransformPlugin};

/// Every built-in transform.
pub(super) fn transforms() -> Vec<TransformPlugin> {
    Vec::new()
}

/// Every built-in predicate.
pub(super) fn predicates() -> Vec<PredicatePlugin> {
    Vec::new()
}
