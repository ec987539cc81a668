//! The registry of built-in transforms and predicates: every plugin Kafka Connect ships in
//! `org.apache.kafka.connect.transforms` that makes sense for schemaless JSON records, and
//! Debezium's `ExtractNewRecordState` for change events.

use super::{PredicatePlugin, TransformPlugin};
use super::{
    cast, extract_field, extract_new_record_state, filter, flatten, headers, hoist_field, insert_field, mask_field,
    regex_router, replace_field, timestamp_converter, timestamp_router, value_to_key,
};

/// Every built-in transform.
pub(super) fn transforms() -> Vec<TransformPlugin> {
    let mut out = Vec::new();
    out.extend(cast::plugins());
    out.extend(headers::plugins());
    out.extend(extract_field::plugins());
    out.extend(extract_new_record_state::plugins());
    out.extend(filter::plugins());
    out.extend(flatten::plugins());
    out.extend(hoist_field::plugins());
    out.extend(insert_field::plugins());
    out.extend(mask_field::plugins());
    out.extend(regex_router::plugins());
    out.extend(replace_field::plugins());
    out.extend(timestamp_converter::plugins());
    out.extend(timestamp_router::plugins());
    out.extend(value_to_key::plugins());
    out
}

/// Every built-in predicate.
pub(super) fn predicates() -> Vec<PredicatePlugin> {
    super::predicates::plugins()
}
