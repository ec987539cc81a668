//! `RegexRouter`: when `regex` matches the whole topic, the topic becomes Java's
//! `replaceFirst(replacement)` of it: `$1` (or `$12` while there are that many groups) and
//! `${name}` insert groups, `\` escapes the next character.

use regex::{Captures, Regex};

use super::super::config::{ConfigDef, ConfigKey, Importance, Parsed, Type, Validator};
use super::super::record::ConnectRecord;
use super::{Transform, TransformPlugin};

/// The plugin.
pub(super) fn plugins() -> [TransformPlugin; 1] {
    [TransformPlugin {
        class: "org.apache.kafka.connect.transforms.RegexRouter",
        aliases: &["RegexRouter"],
        doc: "Update the record topic using the configured regular expression and replacement string. If the \
              pattern matches the whole input topic, its first match is replaced with the replacement string.",
        config: config_def,
        create,
    }]
}

fn config_def() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::required("regex", Type::String, "Regular expression to use for matching.").check(Validator::Regex),
        ConfigKey::required("replacement", Type::String, "Replacement string.").importance(Importance::High),
    ])
}

/// A piece of a replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
}

struct RegexRouter {
    whole: Regex,
    first: Regex,
    replacement: Vec<Piece>,
}

fn create(p: &Parsed) -> Result<Box<dyn Transform>, String> {
    let pattern = p.str("regex");
    let invalid = |e: regex::Error| format!("regex: Invalid regex: {e}");
    let first = Regex::new(pattern).map_err(invalid)?;
    let whole = Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(invalid)?;
    let replacement = parse_replacement(p.str("replacement"), &first).map_err(|e| format!("replacement: {e}"))?;
    Ok(Box::new(RegexRouter {
        whole,
        first,
        replacement,
    }))
}

/// Reads a replacement in `java.util.regex.Matcher`'s syntax, checking its groups exist.
fn parse_replacement(text: &str, regex: &Regex) -> Result<Vec<Piece>, String> {
    let groups = regex.captures_len() - 1;
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => literal.push(chars.next().ok_or("character to be escaped is missing")?),
            '$' => {
                let piece = match chars.next() {
                    Some('{') => {
                        let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                        if regex.capture_names().flatten().all(|n| n != name) {
                            return Err(format!("No group with name {{{name}}}"));
                        }
                        Piece::Named(name)
                    }
                    Some(d @ '0'..='9') => {
                        let mut number = d.to_digit(10).map_or(0, |d| d as usize);
                        if number > groups {
                            return Err(format!("No group {number}"));
                        }
                        while let Some(next) = chars.peek().and_then(|c| c.to_digit(10)) {
                            let longer = number * 10 + next as usize;
                            if longer > groups {
                                break;
                            }
                            number = longer;
                            chars.next();
                        }
                        Piece::Group(number)
                    }
                    _ => return Err("Illegal group reference".into()),
                };
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(piece);
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

impl RegexRouter {
    fn expand(&self, caps: &Captures<'_>) -> String {
        let mut out = String::new();
        for piece in &self.replacement {
            let group = match piece {
                Piece::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Piece::Group(i) => caps.get(*i),
                Piece::Named(n) => caps.name(n),
            };
            out.push_str(group.map_or("", |m| m.as_str()));
        }
        out
    }
}

impl RegexRouter {
    /// The topic a record of `topic` is routed to, when the regex matches it whole: its first
    /// match (which starts at 0, as the whole topic matches) replaced, as Java's
    /// `replaceFirst` does.
    fn route(&self, topic: &str) -> Option<String> {
        if !self.whole.is_match(topic) {
            return None;
        }
        let caps = self.first.captures(topic)?;
        let m = caps.get(0)?;
        Some(format!(
            "{}{}{}",
            &topic[..m.start()],
            self.expand(&caps),
            &topic[m.end()..]
        ))
    }
}

impl Transform for RegexRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        if let Some(topic) = self.route(&record.topic) {
            tracing::trace!(from = %record.topic, to = %topic, "rerouting record");
            record.topic = topic;
        }
        Ok(Some(record))
    }

    /// A named topic goes where it is routed; a prefix may stay or go to any topic that starts
    /// with the replacement's leading text.
    fn topics_out(&self, topic: &str) -> Vec<String> {
        if topic.ends_with('*') {
            let lead = match self.replacement.first() {
                Some(Piece::Text(t)) => t.as_str(),
                _ => "",
            };
            return vec![topic.to_owned(), format!("{lead}*")];
        }
        vec![self.route(topic).unwrap_or_else(|| topic.to_owned())]
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, build, record, transform};
    use serde_json::json;

    fn route(t: &dyn super::Transform, topic: &str) -> String {
        apply(t, record(topic, json!(1))).topic
    }

    #[test]
    fn connects_documented_example() {
        // Kafka's docs: regex=(.*)-(.*)-(.*), replacement=$3 ... and the brief's (.*)-(.*) → $2.
        let t = transform("RegexRouter", &[("regex", "(.*)-(.*)"), ("replacement", "$2")]);
        assert_eq!(route(t.as_ref(), "prefix-orders"), "orders");
        let t = transform(
            "org.apache.kafka.connect.transforms.RegexRouter",
            &[("regex", "([^.]+)\\.([^.]+)\\.([^.]+)"), ("replacement", "$3")],
        );
        assert_eq!(route(t.as_ref(), "server.schema.table"), "table");
        // No whole match: the topic is kept.
        assert_eq!(route(t.as_ref(), "plain"), "plain");
    }

    #[test]
    fn javas_replacement_syntax() {
        let t = transform(
            "RegexRouter",
            &[("regex", "(?<db>\\w+)_(\\d)"), ("replacement", "${db}-$2$10\\$")],
        );
        // $10 is group 1 then a literal 0: there is no group 10.
        assert_eq!(route(t.as_ref(), "sales_7"), "sales-7sales0$");
        // replaceFirst uses the first match, which may be shorter than the whole topic.
        let t = transform("RegexRouter", &[("regex", "a|ab"), ("replacement", "x")]);
        assert_eq!(route(t.as_ref(), "ab"), "xb");
    }

    #[test]
    fn bad_configs_are_refused() {
        let e = build("RegexRouter", &[("regex", "(unclosed"), ("replacement", "x")])
            .err()
            .unwrap();
        assert!(e.contains("Invalid value (unclosed for configuration regex"), "{e}");
        let e = build("RegexRouter", &[("regex", "(a)"), ("replacement", "$2")])
            .err()
            .unwrap();
        assert!(e.contains("No group 2"), "{e}");
        let e = build("RegexRouter", &[("regex", "(a)"), ("replacement", "$x")])
            .err()
            .unwrap();
        assert!(e.contains("Illegal group reference"), "{e}");
        let e = build("RegexRouter", &[("regex", "a")]).err().unwrap();
        assert!(e.contains("Missing required configuration \"replacement\""), "{e}");
    }

    #[test]
    fn topics_out_follow_the_route() {
        let t = transform("RegexRouter", &[("regex", "(.*)-(.*)"), ("replacement", "copy.$2")]);
        assert_eq!(t.topics_out("orders-eu"), ["copy.eu"]);
        assert_eq!(t.topics_out("orders"), ["orders"]);
        assert_eq!(t.topics_out("db.*"), ["db.*", "copy.*"]);
        let t = transform("RegexRouter", &[("regex", "(.*)"), ("replacement", "$1-x")]);
        assert_eq!(t.topics_out("db.*"), ["db.*", "*"]);
    }
}
