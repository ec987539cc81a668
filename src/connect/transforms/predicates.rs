//! The predicates: `TopicNameMatches` (the whole topic name matches `pattern`), `HasHeaderKey`
//! (a header called `name` exists) and `RecordIsTombstone` (the value is null).

use regex::Regex;

use super::super::config::{ConfigDef, ConfigKey, Importance, Parsed, Type, Validator};
use super::super::record::ConnectRecord;
use super::{Predicate, PredicatePlugin};

/// Every predicate plugin.
pub(super) fn plugins() -> Vec<PredicatePlugin> {
    vec![
        PredicatePlugin {
            class: "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            aliases: &["TopicNameMatches"],
            doc: "A predicate which is true for records with a topic name that matches the configured regular expression.",
            config: topic_name_matches_config,
            create: create_topic_name_matches,
        },
        PredicatePlugin {
            class: "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
            aliases: &["HasHeaderKey"],
            doc: "A predicate which is true for records with at least one header with the configured name.",
            config: has_header_key_config,
            create: create_has_header_key,
        },
        PredicatePlugin {
            class: "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
            aliases: &["RecordIsTombstone"],
            doc: "A predicate which is true for records which are tombstones (i.e. have null value).",
            config: ConfigDef::new,
            create: |_| Ok(Box::new(RecordIsTombstone)),
        },
    ]
}

// ---- TopicNameMatches ----

fn topic_name_matches_config() -> ConfigDef {
    ConfigDef::new().with([ConfigKey::required(
        "pattern",
        Type::String,
        "A regular expression for matching against the name of a record's topic (the whole name must match).",
    )
    .check(Validator::Custom(check_pattern))
    .importance(Importance::Medium)])
}

fn check_pattern(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("Invalid value for configuration pattern: String must be non-empty".into());
    }
    whole_name(value.trim())
        .map(|_| ())
        .map_err(|e| format!("Invalid value {value} for configuration pattern: {e}"))
}

/// A regex that matches a whole topic name.
fn whole_name(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!(r"\A(?:{pattern})\z"))
        .map_err(|e| format!("entry must be a Java-compatible regular expression: {e}"))
}

struct TopicNameMatches {
    pattern: Regex,
}

fn create_topic_name_matches(p: &Parsed) -> Result<Box<dyn Predicate>, String> {
    Ok(Box::new(TopicNameMatches {
        pattern: whole_name(p.str("pattern")).map_err(|e| format!("pattern: {e}"))?,
    }))
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &ConnectRecord) -> bool {
        self.pattern.is_match(&record.topic)
    }
}

// ---- HasHeaderKey ----

fn has_header_key_config() -> ConfigDef {
    ConfigDef::new().with([ConfigKey::required("name", Type::String, "The header name.")
        .check(Validator::NonEmpty)
        .importance(Importance::Medium)])
}

struct HasHeaderKey {
    name: String,
}

fn create_has_header_key(p: &Parsed) -> Result<Box<dyn Predicate>, String> {
    Ok(Box::new(HasHeaderKey {
        name: p.str("name").to_owned(),
    }))
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.header(&self.name).is_some()
    }
}

// ---- RecordIsTombstone ----

struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.value.is_null()
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::config::Parsed;
    use super::super::support::testing::{cfg, record};
    use super::super::{Predicate, predicate_plugins};
    use serde_json::json;

    fn predicate(name: &str, pairs: &[(&str, &str)]) -> Result<Box<dyn Predicate>, String> {
        let p = predicate_plugins()
            .into_iter()
            .find(|p| p.class == name || p.aliases.contains(&name))
            .unwrap();
        let own = cfg(pairs);
        let v = (p.config)().validate(p.class, &own);
        if v.error_count > 0 {
            return Err(v.messages().join("; "));
        }
        (p.create)(&Parsed::new(&(p.config)(), &own).unwrap())
    }

    #[test]
    fn topic_name_matches_the_whole_name() {
        let p = predicate("TopicNameMatches", &[("pattern", "orders.*")]).unwrap();
        assert!(p.test(&record("orders-eu", json!(1))));
        assert!(!p.test(&record("old-orders", json!(1))));
        let p = predicate("TopicNameMatches", &[("pattern", "a|b")]).unwrap();
        assert!(p.test(&record("b", json!(1))) && !p.test(&record("ab", json!(1))));
        let e = predicate("TopicNameMatches", &[("pattern", "(")]).err().unwrap();
        assert!(e.contains("Invalid value ( for configuration pattern"), "{e}");
        assert!(predicate("TopicNameMatches", &[("pattern", "")]).is_err());
        assert!(predicate("TopicNameMatches", &[]).is_err());
    }

    #[test]
    fn has_header_key_and_record_is_tombstone() {
        let p = predicate(
            "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
            &[("name", "trace")],
        )
        .unwrap();
        let mut r = record("t", json!(null));
        assert!(!p.test(&r));
        r.headers.push(("trace".into(), json!("x")));
        assert!(p.test(&r));
        let t = predicate("RecordIsTombstone", &[]).unwrap();
        assert!(t.test(&r) && !t.test(&record("t", json!(0))));
        assert!(predicate("HasHeaderKey", &[]).is_err());
    }
}
