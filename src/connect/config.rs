//! Config definitions, Kafka Connect's `ConfigDef` idea: typed keys with defaults, docs,
//! validators and recommended values. One definition per plugin serves create, `validate`
//! and `GET /v1/connector-plugins/{p}/config`, so the three never disagree.
//!
//! Connector configs are string maps, as in Connect. Values may reference secrets instead of
//! holding them: `${env:NAME}` (an environment variable) or `${file:/path:key}` (a key of a
//! properties file), resolved when a task starts and never stored or shown resolved.
//! Password keys are shown as `[hidden]` in every answer and log line.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// A connector's config as given: key to string value.
pub type RawConfig = BTreeMap<String, String>;

/// How a password value is shown.
pub const HIDDEN: &str = "[hidden]";

/// A key's type, named as Connect names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Type {
    /// `true` or `false`.
    Boolean,
    /// Text.
    String,
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    Long,
    /// A floating-point number.
    Double,
    /// A comma-separated list.
    List,
    /// A class name.
    Class,
    /// A secret: never shown.
    Password,
}

/// How much a key matters, as Connect ranks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Importance {
    /// Most users set it.
    High,
    /// Some users set it.
    Medium,
    /// Rarely set.
    Low,
}

/// A check on a key's value (after its type is checked).
#[derive(Clone, Copy)]
pub enum Validator {
    /// Anything of the type.
    Any,
    /// A number within bounds (inclusive).
    Range(Option<i64>, Option<i64>),
    /// One of these values (case-insensitive).
    OneOf(&'static [&'static str]),
    /// A non-empty string (or list).
    NonEmpty,
    /// A valid regular expression.
    Regex,
    /// Any other check: `Err` holds the message.
    Custom(fn(&str) -> Result<(), String>),
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("Any"),
            Self::Range(lo, hi) => write!(f, "Range({lo:?}, {hi:?})"),
            Self::OneOf(v) => write!(f, "OneOf({v:?})"),
            Self::NonEmpty => f.write_str("NonEmpty"),
            Self::Regex => f.write_str("Regex"),
            Self::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// One key of a definition.
#[derive(Debug, Clone)]
pub struct ConfigKey {
    /// The key, as in Connect (`file`, `tasks.max`, …).
    pub name: &'static str,
    /// Its type.
    pub kind: Type,
    /// Its default (`None`: the key is required).
    pub default: Option<&'static str>,
    /// How much it matters.
    pub importance: Importance,
    /// What it does, for users.
    pub doc: &'static str,
    /// The group it is shown in.
    pub group: &'static str,
    /// Its check.
    pub validator: Validator,
}

impl ConfigKey {
    /// A required key.
    pub const fn required(name: &'static str, kind: Type, doc: &'static str) -> Self {
        Self {
            name,
            kind,
            default: None,
            importance: Importance::High,
            doc,
            group: "Common",
            validator: Validator::Any,
        }
    }

    /// An optional key with a default (an empty default means "none").
    pub const fn optional(name: &'static str, kind: Type, default: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            kind,
            default: Some(default),
            importance: Importance::Medium,
            doc,
            group: "Common",
            validator: Validator::Any,
        }
    }

    /// The same key with a validator.
    pub const fn check(mut self, validator: Validator) -> Self {
        self.validator = validator;
        self
    }

    /// The same key in a group.
    pub const fn group(mut self, group: &'static str) -> Self {
        self.group = group;
        self
    }

    /// The same key with an importance.
    pub const fn importance(mut self, importance: Importance) -> Self {
        self.importance = importance;
        self
    }

    /// What is wrong with `value` for this key, if anything (secret references are checked
    /// for their shape only: the secret is not read here).
    pub fn problem(&self, value: &str) -> Option<String> {
        if is_reference(value) {
            return reference_problem(value);
        }
        let v = value.trim();
        let number = |v: &str| v.parse::<i64>().ok();
        match self.kind {
            Type::Boolean if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") => {
                return Some(format!(
                    "Invalid value {value} for configuration {}: Expected value to be either true or false",
                    self.name
                ));
            }
            Type::Int if v.parse::<i32>().is_err() => {
                return Some(format!(
                    "Invalid value {value} for configuration {}: Not a number of type INT",
                    self.name
                ));
            }
            Type::Long if number(v).is_none() => {
                return Some(format!(
                    "Invalid value {value} for configuration {}: Not a number of type LONG",
                    self.name
                ));
            }
            Type::Double if v.parse::<f64>().is_err() => {
                return Some(format!(
                    "Invalid value {value} for configuration {}: Not a number of type DOUBLE",
                    self.name
                ));
            }
            _ => {}
        }
        match self.validator {
            Validator::Any => None,
            Validator::Range(lo, hi) => {
                let n = number(v)?;
                let below = lo.is_some_and(|lo| n < lo);
                let above = hi.is_some_and(|hi| n > hi);
                (below || above).then(|| match (lo, hi) {
                    (Some(lo), Some(hi)) => format!(
                        "Invalid value {n} for configuration {}: Value must be between {lo} and {hi}",
                        self.name
                    ),
                    (Some(lo), None) => format!(
                        "Invalid value {n} for configuration {}: Value must be at least {lo}",
                        self.name
                    ),
                    (_, Some(hi)) => format!(
                        "Invalid value {n} for configuration {}: Value must be no more than {hi}",
                        self.name
                    ),
                    (None, None) => unreachable!("a range has a bound"),
                })
            }
            Validator::OneOf(allowed) => (!allowed.iter().any(|a| a.eq_ignore_ascii_case(v))).then(|| {
                format!(
                    "Invalid value {value} for configuration {}: String must be one of: {}",
                    self.name,
                    allowed.join(", ")
                )
            }),
            Validator::NonEmpty => {
                let empty = if self.kind == Type::List {
                    split_list(v).is_empty()
                } else {
                    v.is_empty()
                };
                empty.then(|| format!("Invalid value for configuration {}: must not be empty", self.name))
            }
            Validator::Regex => regex::Regex::new(v).err().map(|e| {
                format!(
                    "Invalid value {value} for configuration {}: not a regular expression: {e}",
                    self.name
                )
            }),
            Validator::Custom(f) => f(value).err(),
        }
    }

    /// The value recommended for this key, when its values are a closed set.
    pub fn recommended(&self) -> Vec<String> {
        match self.validator {
            Validator::OneOf(v) => v.iter().map(|s| (*s).to_owned()).collect(),
            _ if self.kind == Type::Boolean => vec!["true".into(), "false".into()],
            _ => Vec::new(),
        }
    }

    /// The key as `GET /v1/connector-plugins/{p}/config` and `validate` describe it.
    pub fn definition(&self, order: usize) -> Definition {
        Definition {
            name: self.name.to_owned(),
            kind: self.kind,
            required: self.default.is_none(),
            default_value: self.default.filter(|d| !d.is_empty()).map(str::to_owned),
            importance: self.importance,
            documentation: self.doc.to_owned(),
            group: self.group.to_owned(),
            width: "NONE".into(),
            display_name: self.name.to_owned(),
            dependents: Vec::new(),
            order,
        }
    }
}

/// A key's description, in Connect's shape.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "batch.size", "type": "INT", "required": false, "default_value": "2000",
    "importance": "MEDIUM", "documentation": "The most lines written in one transaction.", "group": "Common",
    "width": "NONE", "display_name": "batch.size", "dependents": [], "order": 4}))]
pub struct Definition {
    /// The key.
    pub name: String,
    /// `STRING`, `INT`, `LONG`, `DOUBLE`, `BOOLEAN`, `LIST`, `CLASS` or `PASSWORD`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: Type,
    /// Whether it has no default.
    pub required: bool,
    /// Its default.
    pub default_value: Option<String>,
    /// `HIGH`, `MEDIUM` or `LOW`.
    #[schema(value_type = String)]
    pub importance: Importance,
    /// What it does.
    pub documentation: String,
    /// Its group.
    pub group: String,
    /// Display width (always `NONE`).
    pub width: String,
    /// Display name.
    pub display_name: String,
    /// Keys whose meaning depends on it.
    pub dependents: Vec<String>,
    /// Its position in its group.
    pub order: usize,
}

/// A key's value as `validate` reports it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ValueReport {
    /// The key.
    pub name: String,
    /// The value given (`[hidden]` for passwords), or the default.
    pub value: Option<String>,
    /// Values to choose from, for keys with a closed set.
    pub recommended_values: Vec<String>,
    /// What is wrong with it.
    pub errors: Vec<String>,
    /// Always true.
    pub visible: bool,
}

/// One key in a validation answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyReport {
    /// The key's definition.
    pub definition: Definition,
    /// Its value and errors.
    pub value: ValueReport,
}

/// The answer of `validate`, in Connect's shape.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "org.apache.kafka.connect.file.FileStreamSourceConnector", "error_count": 1, "groups": ["Common"],
    "configs": [{"definition": {"name": "file", "type": "STRING", "required": true, "default_value": null, "importance": "HIGH",
        "documentation": "The file to read, line by line.", "group": "Common", "width": "NONE", "display_name": "file", "dependents": [], "order": 1},
      "value": {"name": "file", "value": null, "recommended_values": [], "errors": ["Missing required configuration \"file\" which has no default value."], "visible": true}}]}))]
pub struct Validation {
    /// The plugin's class name.
    pub name: String,
    /// How many errors were found.
    pub error_count: usize,
    /// The groups of the keys.
    pub groups: Vec<String>,
    /// Every key, defined ones first, then unknown ones.
    pub configs: Vec<KeyReport>,
}

impl Validation {
    /// Every error, as `key: message` lines (for a create that fails).
    pub fn messages(&self) -> Vec<String> {
        self.configs
            .iter()
            .flat_map(|c| c.value.errors.iter().map(move |e| format!("{}: {e}", c.value.name)))
            .collect()
    }

    /// The first key with an error.
    pub fn first_error_key(&self) -> Option<&str> {
        self.configs
            .iter()
            .find(|c| !c.value.errors.is_empty())
            .map(|c| c.value.name.as_str())
    }
}

/// A plugin's keys.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    keys: Vec<ConfigKey>,
    /// Prefixes under which any key is accepted (e.g. `transforms.`), checked elsewhere.
    open_prefixes: Vec<&'static str>,
}

impl ConfigDef {
    /// An empty definition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds keys.
    pub fn with(mut self, keys: impl IntoIterator<Item = ConfigKey>) -> Self {
        for k in keys {
            self.keys.retain(|have| have.name != k.name);
            self.keys.push(k);
        }
        self
    }

    /// Accepts any key under `prefix` (its meaning is checked by what owns the prefix).
    pub fn open_prefix(mut self, prefix: &'static str) -> Self {
        self.open_prefixes.push(prefix);
        self
    }

    /// The keys, in definition order.
    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    /// The key called `name`.
    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// The definitions, as `GET /v1/connector-plugins/{p}/config` lists them.
    pub fn definitions(&self) -> Vec<Definition> {
        let mut order: BTreeMap<&str, usize> = BTreeMap::new();
        self.keys
            .iter()
            .map(|k| {
                let n = order.entry(k.group).or_default();
                *n += 1;
                k.definition(*n)
            })
            .collect()
    }

    /// Checks a config: every required key present, every value of its type and valid, no
    /// unknown key (a misspelt key is an error, with the closest known key suggested).
    pub fn validate(&self, plugin: &str, config: &RawConfig) -> Validation {
        let mut configs = Vec::new();
        let mut groups: Vec<String> = Vec::new();
        for (definition, k) in self.definitions().into_iter().zip(&self.keys) {
            if !groups.contains(&definition.group) {
                groups.push(definition.group.clone());
            }
            let given = config.get(k.name);
            let mut errors = Vec::new();
            match (given, k.default) {
                (None, None) => errors.push(format!(
                    "Missing required configuration \"{}\" which has no default value.",
                    k.name
                )),
                (Some(v), _) => errors.extend(k.problem(v)),
                (None, Some(_)) => {}
            }
            let value = match (given, k.kind) {
                (Some(_), Type::Password) => Some(HIDDEN.to_owned()),
                (Some(v), _) => Some(v.clone()),
                (None, _) => k.default.filter(|d| !d.is_empty()).map(str::to_owned),
            };
            configs.push(KeyReport {
                value: ValueReport {
                    name: k.name.to_owned(),
                    value,
                    recommended_values: k.recommended(),
                    errors,
                    visible: true,
                },
                definition,
            });
        }
        for name in config.keys() {
            if self.key(name).is_some() || self.open_prefixes.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            configs.push(unknown_key(name, config.get(name), self.closest(name)));
        }
        Validation {
            name: plugin.to_owned(),
            error_count: configs.iter().map(|c| c.value.errors.len()).sum(),
            groups,
            configs,
        }
    }

    /// The known key most like `name` (for "did you mean").
    fn closest(&self, name: &str) -> Option<&'static str> {
        self.keys
            .iter()
            .map(|k| (strsim(name, k.name), k.name))
            .filter(|(d, _)| *d <= 3)
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| n)
    }

    /// A config with every secret shown as `[hidden]` (for answers and logs).
    pub fn masked(&self, config: &RawConfig) -> RawConfig {
        config
            .iter()
            .map(|(k, v)| {
                let secret = self.key(k).is_some_and(|d| d.kind == Type::Password) || looks_secret(k);
                let shown = if secret && !is_reference(v) {
                    HIDDEN.to_owned()
                } else {
                    v.clone()
                };
                (k.clone(), shown)
            })
            .collect()
    }
}

/// Keys that hold secrets whatever plugin defines them (transform and override keys too).
fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("password") || k.ends_with(".secret") || k.ends_with("token") || k.contains("api.key")
}

fn unknown_key(name: &str, value: Option<&String>, closest: Option<&str>) -> KeyReport {
    let hint = closest.map_or(String::new(), |c| format!("; did you mean \"{c}\"?"));
    KeyReport {
        definition: Definition {
            name: name.to_owned(),
            kind: Type::String,
            required: false,
            default_value: None,
            importance: Importance::Low,
            documentation: String::new(),
            group: "Unknown".into(),
            width: "NONE".into(),
            display_name: name.to_owned(),
            dependents: Vec::new(),
            order: 0,
        },
        value: ValueReport {
            name: name.to_owned(),
            value: value.map(|v| {
                if looks_secret(name) {
                    HIDDEN.to_owned()
                } else {
                    v.clone()
                }
            }),
            recommended_values: Vec::new(),
            errors: vec![format!("Unknown configuration \"{name}\"{hint}")],
            visible: true,
        },
    }
}

/// Edit distance (Levenshtein) between two short strings.
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Whether a value is a secret reference (`${env:…}` or `${file:…}`).
pub fn is_reference(value: &str) -> bool {
    let v = value.trim();
    (v.starts_with("${env:") || v.starts_with("${file:")) && v.ends_with('}')
}

fn reference_problem(value: &str) -> Option<String> {
    let inner = &value.trim()[2..value.trim().len() - 1];
    match inner.split_once(':') {
        Some(("env", name)) if !name.is_empty() => None,
        Some(("file", rest))
            if rest
                .rsplit_once(':')
                .is_some_and(|(p, k)| !p.is_empty() && !k.is_empty()) =>
        {
            None
        }
        _ => Some(format!(
            "Invalid reference {value}: use ${{env:NAME}} or ${{file:/path/to/file.properties:key}}"
        )),
    }
}

/// Resolves a value that is a secret reference; other values are returned as they are. The
/// error names the reference, never the secret.
pub fn resolve(value: &str) -> Result<String, String> {
    if !is_reference(value) {
        return Ok(value.to_owned());
    }
    if let Some(problem) = reference_problem(value) {
        return Err(problem);
    }
    let inner = &value.trim()[2..value.trim().len() - 1];
    match inner.split_once(':') {
        Some(("env", name)) => std::env::var(name).map_err(|_| format!("environment variable {name} is not set")),
        Some(("file", rest)) => {
            let (path, key) = rest.rsplit_once(':').expect("checked above");
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            properties(&text)
                .remove(key)
                .ok_or_else(|| format!("{path} has no key {key}"))
        }
        _ => Err(format!("unknown reference {value}")),
    }
}

/// Parses a Java properties file's `key=value` (or `key: value`) lines; `#` and `!` start comments.
fn properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let at = l.find(['=', ':'])?;
            Some((l[..at].trim().to_owned(), l[at + 1..].trim().to_owned()))
        })
        .collect()
}

/// A validated config with typed getters. Values are resolved secrets where they were
/// references: keep it in memory only.
#[derive(Debug, Clone)]
pub struct Parsed {
    values: BTreeMap<String, String>,
}

impl Parsed {
    /// Resolves and types a config the definition has validated (defaults filled in).
    pub fn new(def: &ConfigDef, config: &RawConfig) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        for (k, v) in config {
            values.insert(k.clone(), resolve(v).map_err(|e| format!("{k}: {e}"))?);
        }
        for k in def.keys() {
            if let (false, Some(d)) = (values.contains_key(k.name), k.default) {
                values.insert(k.name.to_owned(), d.to_owned());
            }
        }
        Ok(Self { values })
    }

    /// A string value ("" when absent).
    pub fn str(&self, key: &str) -> &str {
        self.values.get(key).map_or("", |s| s.trim())
    }

    /// A value, when present and not empty.
    pub fn opt(&self, key: &str) -> Option<&str> {
        Some(self.str(key)).filter(|s| !s.is_empty())
    }

    /// An integer value (0 when absent or invalid: validated before).
    pub fn int(&self, key: &str) -> i64 {
        self.str(key).parse().unwrap_or(0)
    }

    /// A floating-point value.
    pub fn double(&self, key: &str) -> f64 {
        self.str(key).parse().unwrap_or(0.0)
    }

    /// A boolean value.
    pub fn bool(&self, key: &str) -> bool {
        self.str(key).eq_ignore_ascii_case("true")
    }

    /// A comma-separated list value, items trimmed, empty items dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        split_list(self.str(key))
    }

    /// Every key under `prefix`, with the prefix removed.
    pub fn prefixed(&self, prefix: &str) -> RawConfig {
        self.values
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|rest| (rest.to_owned(), v.clone())))
            .collect()
    }

    /// The resolved values.
    pub fn raw(&self) -> &BTreeMap<String, String> {
        &self.values
    }
}

/// Splits a comma-separated list.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads a JSON config map as Connect does: string values as they are, numbers and booleans
/// as their text; `null` values are returned as `None` (PATCH removes such keys).
pub fn from_json(map: &serde_json::Map<String, Value>) -> Result<BTreeMap<String, Option<String>>, String> {
    map.iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Null => None,
                other => return Err(format!("{k}: config values are strings, not {other}")),
            };
            Ok((k.clone(), s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ConfigDef {
        ConfigDef::new().open_prefix("transforms.").with([
            ConfigKey::required("file", Type::String, "the file").check(Validator::NonEmpty),
            ConfigKey::optional("batch.size", Type::Int, "2000", "lines per poll")
                .check(Validator::Range(Some(1), None)),
            ConfigKey::optional("mode", Type::String, "bulk", "how").check(Validator::OneOf(&["bulk", "incrementing"])),
            ConfigKey::optional("connection.password", Type::Password, "", "secret"),
        ])
    }

    fn cfg(pairs: &[(&str, &str)]) -> RawConfig {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn validation_reports_each_key_in_connects_shape() {
        let v = def().validate(
            "P",
            &cfg(&[
                ("batch.size", "0"),
                ("mode", "x"),
                ("fiel", "a"),
                ("transforms.t.type", "X"),
                ("connection.password", "s3"),
            ]),
        );
        assert_eq!(v.error_count, 4, "{:#?}", v.messages());
        let m = v.messages().join("\n");
        assert!(m.contains("Missing required configuration \"file\""), "{m}");
        assert!(m.contains("Value must be at least 1"), "{m}");
        assert!(m.contains("String must be one of: bulk, incrementing"), "{m}");
        assert!(
            m.contains("Unknown configuration \"fiel\"; did you mean \"file\"?"),
            "{m}"
        );
        let pw = v
            .configs
            .iter()
            .find(|c| c.value.name == "connection.password")
            .unwrap();
        assert_eq!(pw.value.value.as_deref(), Some(HIDDEN));
        assert_eq!(v.first_error_key(), Some("file"));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["configs"][1]["definition"]["type"], "INT");
        assert_eq!(json["configs"][1]["definition"]["default_value"], "2000");
        assert_eq!(
            json["configs"][2]["value"]["recommended_values"],
            serde_json::json!(["bulk", "incrementing"])
        );
    }

    #[test]
    fn secrets_are_masked_and_references_resolved() {
        let c = cfg(&[("file", "/x"), ("connection.password", "s3cret"), ("http.api.key", "k")]);
        let m = def().masked(&c);
        assert_eq!(m["connection.password"], HIDDEN);
        assert_eq!(m["http.api.key"], HIDDEN);
        assert_eq!(m["file"], "/x");
        // A variable every test process has (setting one needs unsafe code, which the crate forbids).
        let path_var = std::env::var("PATH").unwrap();
        assert_eq!(resolve("${env:PATH}").unwrap(), path_var);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.properties");
        std::fs::write(&path, "# comment\nuser=alice\npassword = p@ss\n").unwrap();
        assert_eq!(
            resolve(&format!("${{file:{}:password}}", path.display())).unwrap(),
            "p@ss"
        );
        let err = resolve(&format!("${{file:{}:nope}}", path.display())).unwrap_err();
        assert!(err.contains("no key nope"), "{err}");
        assert!(resolve("${env:WEIR_TEST_UNSET_91}").is_err());
        assert!(def().validate("P", &cfg(&[("file", "${env:}")])).error_count > 0);
        // A reference is shown as it is: it is not the secret.
        let m = def().masked(&cfg(&[("connection.password", "${env:DB_PW}")]));
        assert_eq!(m["connection.password"], "${env:DB_PW}");
    }

    #[test]
    fn parsed_configs_fill_defaults_and_type_values() {
        let p = Parsed::new(&def(), &cfg(&[("file", "/tmp/a"), ("transforms.t.type", "X")])).unwrap();
        assert_eq!(p.int("batch.size"), 2000);
        assert_eq!(p.str("mode"), "bulk");
        assert_eq!(p.prefixed("transforms.")["t.type"], "X");
        assert_eq!(split_list(" a, b ,,c"), ["a", "b", "c"]);
        let j = serde_json::json!({"a": "x", "b": 3, "c": true, "d": null});
        let m = from_json(j.as_object().unwrap()).unwrap();
        assert_eq!(m["b"].as_deref(), Some("3"));
        assert_eq!(m["d"], None);
    }
}
