//! `ReplaceField$Key` / `$Value`: keeps (`include`), drops (`exclude`) and renames (`renames`,
//! `old:new,…`) top-level fields. Connect's older names `whitelist` and `blacklist` are read
//! as `include` and `exclude` when those are not set. A null key or value passes through.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Map;

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type, Validator, split_list};
use super::super::record::ConnectRecord;
use super::support::{Side, keyed_plugins, replace_null_with_default, require_map_mut};
use super::{Transform, TransformPlugin};

const DOC: &str = "Filter or rename fields.";
const PURPOSE: &str = "field replacement";

/// The `$Key` and `$Value` plugins.
pub(super) fn plugins() -> [TransformPlugin; 2] {
    keyed_plugins!("ReplaceField", DOC, config_def, create)
}

fn config_def() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::optional(
            "exclude",
            Type::List,
            "",
            "Fields to exclude. This takes precedence over the fields to include.",
        ),
        ConfigKey::optional(
            "include",
            Type::List,
            "",
            "Fields to include. If specified, only these fields will be used.",
        ),
        ConfigKey::optional(
            "renames",
            Type::List,
            "",
            "Field rename mappings: a list of colon-delimited pairs, e.g. foo:bar,abc:xyz.",
        )
        .check(Validator::Custom(check_renames)),
        ConfigKey::optional("blacklist", Type::List, "", "Deprecated. Use exclude instead.")
            .importance(super::super::config::Importance::Low),
        ConfigKey::optional("whitelist", Type::List, "", "Deprecated. Use include instead.")
            .importance(super::super::config::Importance::Low),
        replace_null_with_default(),
    ])
}

fn check_renames(value: &str) -> Result<(), String> {
    renames(&split_list(value)).map(|_| ())
}

/// Parses `old:new` pairs as Connect does (Java's `split(":")`: trailing empty parts dropped).
fn renames(mappings: &[String]) -> Result<BTreeMap<String, String>, String> {
    mappings
        .iter()
        .map(|m| {
            let mut parts: Vec<&str> = m.split(':').collect();
            while parts.last() == Some(&"") {
                parts.pop();
            }
            match parts.as_slice() {
                [old, new] => Ok(((*old).to_owned(), (*new).to_owned())),
                _ => Err(format!(
                    "Invalid value {} for configuration renames: Invalid rename mapping: {m}",
                    mappings.join(",")
                )),
            }
        })
        .collect()
}

struct ReplaceField {
    side: Side,
    include: BTreeSet<String>,
    exclude: BTreeSet<String>,
    renames: BTreeMap<String, String>,
}

/// A list key, or its deprecated name when the key itself is not set.
fn list_or_deprecated(p: &Parsed, key: &str, deprecated: &str) -> BTreeSet<String> {
    let given = if p.opt(key).is_some() { key } else { deprecated };
    p.list(given).into_iter().collect()
}

fn create(p: &Parsed, side: Side) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(ReplaceField {
        side,
        include: list_or_deprecated(p, "include", "whitelist"),
        exclude: list_or_deprecated(p, "exclude", "blacklist"),
        renames: renames(&p.list("renames"))?,
    }))
}

impl ReplaceField {
    fn keeps(&self, field: &str) -> bool {
        !self.exclude.contains(field) && (self.include.is_empty() || self.include.contains(field))
    }
}

impl Transform for ReplaceField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        if self.side.of(&record).is_null() {
            return Ok(Some(record));
        }
        let map = require_map_mut(self.side.of_mut(&mut record), PURPOSE)?;
        let mut out = Map::new();
        for (name, value) in std::mem::take(map) {
            if self.keeps(&name) {
                let name = self.renames.get(&name).cloned().unwrap_or(name);
                out.insert(name, value);
            }
        }
        *map = out;
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, build, record, transform};
    use serde_json::json;

    #[test]
    fn connects_documented_examples() {
        let v = json!({"foo": 1, "bar": 2, "baz": 3, "abc": "x"});
        // include=foo,bar
        let t = transform("ReplaceField$Value", &[("include", "foo,bar")]);
        assert_eq!(
            apply(t.as_ref(), record("t", v.clone())).value,
            json!({"foo": 1, "bar": 2})
        );
        // exclude=foo,bar
        let t = transform("ReplaceField$Value", &[("exclude", "foo,bar")]);
        assert_eq!(
            apply(t.as_ref(), record("t", v.clone())).value,
            json!({"baz": 3, "abc": "x"})
        );
        // renames=foo:c1,bar:c2
        let t = transform("ReplaceField$Value", &[("renames", "foo:c1,bar:c2")]);
        assert_eq!(
            apply(t.as_ref(), record("t", v.clone())).value,
            json!({"c1": 1, "c2": 2, "baz": 3, "abc": "x"})
        );
        // exclude wins over include; renames apply to what is kept.
        let t = transform(
            "ReplaceField$Value",
            &[("include", "foo,bar"), ("exclude", "bar"), ("renames", "foo:f")],
        );
        assert_eq!(apply(t.as_ref(), record("t", v)).value, json!({"f": 1}));
    }

    #[test]
    fn deprecated_names_and_the_key_side() {
        let t = transform("ReplaceField$Key", &[("whitelist", "id"), ("blacklist", "")]);
        let mut r = record("t", json!(null));
        r.key = json!({"id": 1, "other": 2});
        let out = apply(t.as_ref(), r);
        assert_eq!((out.key, out.value), (json!({"id": 1}), json!(null)));
        // The new name wins when both are set.
        let t = transform("ReplaceField$Value", &[("include", "a"), ("whitelist", "b")]);
        assert_eq!(
            apply(t.as_ref(), record("t", json!({"a": 1, "b": 2}))).value,
            json!({"a": 1})
        );
    }

    #[test]
    fn bad_renames_and_non_maps_are_refused() {
        let e = build("ReplaceField$Value", &[("renames", "a:b,c")]).err().unwrap();
        assert!(e.contains("Invalid rename mapping: c"), "{e}");
        assert!(build("ReplaceField$Value", &[("renames", "a:b:c")]).is_err());
        let t = transform("ReplaceField$Value", &[("exclude", "a")]);
        let e = t.apply(record("t", json!([1]))).unwrap_err();
        assert!(e.contains("[field replacement], found: array"), "{e}");
    }
}
