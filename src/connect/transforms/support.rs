//! What the built-in transforms share: which side of a record (`$Key` or `$Value`) a transform
//! works on, Connect's "needs a map" checks and messages for schemaless values, the
//! `replace.null.with.default` key Connect gives most transforms, and the macro that declares a
//! transform's `$Key` and `$Value` plugins.

use serde_json::{Map, Value};

use super::super::config::{ConfigKey, Type};
use super::super::record::ConnectRecord;

/// The part of a record a `$Key` or `$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// The record's key.
    Key,
    /// The record's value.
    Value,
}

impl Side {
    /// The key or the value.
    pub(super) fn of(self, record: &ConnectRecord) -> &Value {
        match self {
            Self::Key => &record.key,
            Self::Value => &record.value,
        }
    }

    /// The key or the value, to change it.
    pub(super) fn of_mut(self, record: &mut ConnectRecord) -> &mut Value {
        match self {
            Self::Key => &mut record.key,
            Self::Value => &mut record.value,
        }
    }
}

/// A JSON value's kind, for messages (never the value itself: it may be private data).
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "floating-point number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Connect's message when a schemaless transform needs a map and gets something else.
pub(super) fn not_a_map(purpose: &str, found: &Value) -> String {
    format!(
        "Only Map objects supported in absence of schema for [{purpose}], found: {}",
        kind(found)
    )
}

/// The value as a map, or Connect's error naming what it is instead.
pub(super) fn require_map<'v>(value: &'v Value, purpose: &str) -> Result<&'v Map<String, Value>, String> {
    value.as_object().ok_or_else(|| not_a_map(purpose, value))
}

/// The value as a map to change, or Connect's error naming what it is instead.
pub(super) fn require_map_mut<'v>(value: &'v mut Value, purpose: &str) -> Result<&'v mut Map<String, Value>, String> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(not_a_map(purpose, other)),
    }
}

/// Connect's `replace.null.with.default` key: accepted so configs written for Connect validate;
/// schemaless records have no field defaults, so it changes nothing here.
pub(super) fn replace_null_with_default() -> ConfigKey {
    ConfigKey::optional(
        "replace.null.with.default",
        Type::Boolean,
        "true",
        "Whether to replace fields that have a default value and that are null to the default value. \
         Records here are schemaless JSON, whose fields have no defaults: accepted for compatibility, no effect.",
    )
}

/// Declares the `$Key` and `$Value` plugins of a transform: Connect's class names
/// `org.apache.kafka.connect.transforms.<Name>$Key` / `$Value`, aliases `<Name>$Key` /
/// `<Name>$Value`, and a constructor `fn(&Parsed, Side) -> Result<Box<dyn Transform>, String>`.
macro_rules! keyed_plugins {
    ($name:literal, $doc:expr, $config:path, $create:path) => {
        [
            $crate::connect::transforms::TransformPlugin {
                class: concat!("org.apache.kafka.connect.transforms.", $name, "$Key"),
                aliases: &[concat!($name, "$Key")],
                doc: $doc,
                config: $config,
                create: |p| $create(p, $crate::connect::transforms::support::Side::Key),
            },
            $crate::connect::transforms::TransformPlugin {
                class: concat!("org.apache.kafka.connect.transforms.", $name, "$Value"),
                aliases: &[concat!($name, "$Value")],
                doc: $doc,
                config: $config,
                create: |p| $create(p, $crate::connect::transforms::support::Side::Value),
            },
        ]
    };
}

pub(super) use keyed_plugins;

#[cfg(test)]
pub(super) mod testing {
    //! Helpers for the transforms' unit tests.

    use super::super::super::config::{Parsed, RawConfig};
    use super::super::{Chain, KeyProblem, Transform, TransformPlugin, transform_plugins};
    use super::ConnectRecord;
    use serde_json::Value;

    /// A config from pairs.
    pub fn cfg(pairs: &[(&str, &str)]) -> RawConfig {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// The plugin called `name` (class or alias).
    pub fn plugin(name: &str) -> TransformPlugin {
        transform_plugins()
            .into_iter()
            .find(|p| p.class == name || p.aliases.contains(&name))
            .unwrap_or_else(|| panic!("no transform {name}"))
    }

    /// Builds a transform from its own keys, as the chain would (validation included).
    pub fn build(name: &str, pairs: &[(&str, &str)]) -> Result<Box<dyn Transform>, String> {
        let p = plugin(name);
        let own = cfg(pairs);
        let v = (p.config)().validate(p.class, &own);
        if v.error_count > 0 {
            return Err(v.messages().join("; "));
        }
        (p.create)(&Parsed::new(&(p.config)(), &own).map_err(|e| e.to_string())?)
    }

    /// Builds a transform that must build.
    pub fn transform(name: &str, pairs: &[(&str, &str)]) -> Box<dyn Transform> {
        build(name, pairs).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// A record on `topic` with this value.
    pub fn record(topic: &str, value: Value) -> ConnectRecord {
        ConnectRecord::new(topic, value)
    }

    /// Applies a transform that must keep the record.
    pub fn apply(t: &dyn Transform, r: ConnectRecord) -> ConnectRecord {
        t.apply(r).expect("applies").expect("keeps the record")
    }

    /// The problems of a chain config that must not build.
    pub fn chain_problems(pairs: &[(&str, &str)]) -> Vec<KeyProblem> {
        Chain::build(&cfg(pairs)).expect_err("the chain must not build")
    }
}
