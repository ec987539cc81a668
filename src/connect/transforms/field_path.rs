//! Field paths as Connect's `field.syntax.version` reads them (KIP-821, Kafka 3.8+): `V1` (the
//! default) names a top-level field, dots included; `V2` walks nested maps along dots, with
//! backtick pairs around a name that holds dots (`` `a.b`.c ``) and `` \` `` for a backtick
//! inside such a name.

use serde_json::Value;

use super::super::config::{ConfigKey, Type, Validator};
use super::support::require_map;

/// Connect's key choosing the path syntax.
pub(super) fn syntax_version_key() -> ConfigKey {
    ConfigKey::optional(
        "field.syntax.version",
        Type::String,
        "V1",
        "Defines the version of the syntax to access fields. V1: the field paths name elements at the root \
         level of the map. V2: nested elements are reached with dotted notation; backtick pairs wrap field \
         names containing dots, e.g. `foo.bar`.baz reaches the subfield baz of the field named \"foo.bar\".",
    )
    .check(Validator::OneOf(&["V1", "V2"]))
    .importance(super::super::config::Importance::High)
}

/// A parsed path: the field names from the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldPath {
    steps: Vec<String>,
}

impl FieldPath {
    /// Parses `path` in the syntax `version` names (`V1` or `V2`, any case).
    pub(super) fn new(path: &str, version: &str) -> Result<Self, String> {
        let steps = if version.eq_ignore_ascii_case("V2") {
            parse_v2(path)?
        } else {
            vec![path.to_owned()]
        };
        if steps.is_empty() {
            return Err("a field path must name a field".into());
        }
        Ok(Self { steps })
    }

    /// The value at this path in a map; `Null` when a step is missing or null. A step that is
    /// neither a map nor null fails, as in Connect.
    pub(super) fn value_from<'v>(&self, root: &'v Value) -> Result<&'v Value, String> {
        let (last, parents) = self.steps.split_last().expect("a path has a step");
        let mut current = require_map(root, "field extraction")?;
        for step in parents {
            match current.get(step) {
                None | Some(Value::Null) => return Ok(&Value::Null),
                Some(next) => current = require_map(next, "nested field access")?,
            }
        }
        Ok(current.get(last).unwrap_or(&Value::Null))
    }
}

/// Splits a V2 path into field names.
fn parse_v2(path: &str) -> Result<Vec<String>, String> {
    let bytes = path.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            match path[i..].find('.') {
                Some(dot) => {
                    steps.push(path[i..i + dot].to_owned());
                    i += dot + 1;
                }
                None => {
                    steps.push(path[i..].to_owned());
                    i = bytes.len();
                }
            }
            continue;
        }
        let (step, next) = quoted_step(path, i)?;
        steps.push(step);
        i = next;
    }
    if path.ends_with('.') {
        steps.push(String::new());
    }
    Ok(steps)
}

/// Reads a backtick-quoted name starting at `open`: the name, and where the next step starts.
/// The closing backtick is one followed by a dot or the end of the path; a backtick before a
/// dot is kept when escaped with a backslash, any other backtick is part of the name.
fn quoted_step(path: &str, open: usize) -> Result<(String, usize), String> {
    let bytes = path.as_bytes();
    let incomplete = || {
        format!(
            "Incomplete backtick pair in path: [{path}], consider adding a backslash before backtick at position {open} to escape it"
        )
    };
    let mut name = String::new();
    let mut start = open + 1;
    let mut from = start;
    loop {
        let close = path[from..].find('`').map(|at| from + at).ok_or_else(incomplete)?;
        let escaped = bytes[close - 1] == b'\\';
        if close == bytes.len() - 1 {
            if escaped {
                return Err(incomplete());
            }
            name.push_str(&path[start..close]);
            return Ok((name, close + 1));
        }
        if bytes[close + 1] != b'.' {
            from = close + 1;
            continue;
        }
        if escaped {
            name.push_str(&path[start..close - 1]);
            name.push('`');
            start = close + 1;
            from = start;
            continue;
        }
        name.push_str(&path[start..close]);
        return Ok((name, close + 2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps(path: &str) -> Vec<String> {
        FieldPath::new(path, "V2").unwrap().steps
    }

    #[test]
    fn v2_paths_split_on_dots_and_honour_backticks() {
        assert_eq!(steps("a.b.c"), ["a", "b", "c"]);
        assert_eq!(steps("`a.b`.c"), ["a.b", "c"]);
        assert_eq!(steps("a.`b.c`"), ["a", "b.c"]);
        assert_eq!(steps("`a\\`.b`.c"), ["a`.b", "c"]);
        assert_eq!(steps("`a`b`.c"), ["a`b", "c"]);
        assert_eq!(steps("a."), ["a", ""]);
        let e = FieldPath::new("`a.b", "V2").unwrap_err();
        assert!(e.contains("Incomplete backtick pair in path: [`a.b]"), "{e}");
        assert_eq!(FieldPath::new("a.b", "V1").unwrap().steps, ["a.b"]);
    }

    #[test]
    fn values_are_found_along_the_path() {
        let v = json!({"a": {"b": {"c": 1}}, "x.y": 2, "n": null, "s": "text"});
        let p = |s: &str, ver: &str| FieldPath::new(s, ver).unwrap();
        assert_eq!(p("a.b.c", "V2").value_from(&v).unwrap(), &json!(1));
        assert_eq!(p("x.y", "V1").value_from(&v).unwrap(), &json!(2));
        assert_eq!(p("`x.y`", "V2").value_from(&v).unwrap(), &json!(2));
        assert_eq!(p("a.zz.c", "V2").value_from(&v).unwrap(), &Value::Null);
        assert_eq!(p("n.c", "V2").value_from(&v).unwrap(), &Value::Null);
        let e = p("s.c", "V2").value_from(&v).unwrap_err();
        assert!(e.contains("[nested field access], found: string"), "{e}");
    }
}
