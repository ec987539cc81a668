//! `Filter`: drops every record it is applied to; used with a predicate (and `negate`) to drop
//! some records only.

use super::super::config::{ConfigDef, Parsed};
use super::super::record::ConnectRecord;
use super::{Transform, TransformPlugin};

/// The plugin.
pub(super) fn plugins() -> [TransformPlugin; 1] {
    [TransformPlugin {
        class: "org.apache.kafka.connect.transforms.Filter",
        aliases: &["Filter"],
        doc: "Drops all records, filtering them from subsequent transformations in the chain. This is intended to be \
              used conditionally to filter out records matching (or not matching) a particular Predicate.",
        config: ConfigDef::new,
        create,
    }]
}

struct Filter;

fn create(_: &Parsed) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(Filter))
}

impl Transform for Filter {
    fn apply(&self, _record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{build, record, transform};
    use serde_json::json;

    #[test]
    fn drops_every_record_and_takes_no_keys() {
        let t = transform("Filter", &[]);
        assert_eq!(t.apply(record("t", json!(1))), Ok(None));
        let e = build("org.apache.kafka.connect.transforms.Filter", &[("x", "1")])
            .err()
            .unwrap();
        assert!(e.contains("Unknown configuration \"x\""), "{e}");
    }
}
