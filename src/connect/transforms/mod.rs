//! Single Message Transforms and predicates with Kafka Connect's class names and configs,
//! acting on records as Connect's schemaless JSON converter gives them, and the chain a
//! connector's `transforms` / `predicates` keys build.
//!
//! ```text
//! transforms=addSource,route
//! transforms.addSource.type=org.apache.kafka.connect.transforms.InsertField$Value
//! transforms.addSource.static.field=source
//! transforms.addSource.static.value=web
//! transforms.route.type=RegexRouter
//! transforms.route.predicate=isOrders
//! predicates=isOrders
//! predicates.isOrders.type=TopicNameMatches
//! predicates.isOrders.pattern=orders.*
//! ```

mod builtin;
mod cast;
mod date_format;
mod extract_field;
mod extract_new_record_state;
mod field_path;
mod filter;
mod flatten;
mod headers;
mod hoist_field;
mod insert_field;
mod mask_field;
mod predicates;
mod regex_router;
mod replace_field;
mod support;
#[cfg(test)]
mod tests;
mod timestamp_converter;
mod timestamp_router;
mod value_to_key;

use super::config::{ConfigDef, Parsed, RawConfig, split_list};
use super::record::ConnectRecord;

/// A transform: `Ok(None)` drops the record; `Err` is a transformation error (dead letter or
/// failed task, per `errors.tolerance`).
pub trait Transform: Send + Sync {
    /// Transforms one record.
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, String>;

    /// The topics a record of `topic` may leave with (a name ending in `*` stands for every
    /// topic with that prefix, in and out): what a source connector's principal is granted.
    /// Transforms that keep the topic keep this default.
    fn topics_out(&self, topic: &str) -> Vec<String> {
        vec![topic.to_owned()]
    }
}

/// A predicate: whether a transform applies to a record.
pub trait Predicate: Send + Sync {
    /// Tests one record.
    fn test(&self, record: &ConnectRecord) -> bool;
}

/// A transform plugin: names, keys, constructor.
pub struct TransformPlugin {
    /// Connect's class name, e.g. `org.apache.kafka.connect.transforms.InsertField$Value`.
    pub class: &'static str,
    /// Other accepted names, e.g. `InsertField$Value`.
    pub aliases: &'static [&'static str],
    /// What it does, for the plugin listing.
    pub doc: &'static str,
    /// Its keys.
    pub config: fn() -> ConfigDef,
    /// Builds it from its validated keys.
    pub create: fn(&Parsed) -> Result<Box<dyn Transform>, String>,
}

/// A predicate plugin: names, keys, constructor.
pub struct PredicatePlugin {
    /// Connect's class name, e.g. `org.apache.kafka.connect.transforms.predicates.TopicNameMatches`.
    pub class: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// What it tests.
    pub doc: &'static str,
    /// Its keys.
    pub config: fn() -> ConfigDef,
    /// Builds it from its validated keys.
    pub create: fn(&Parsed) -> Result<Box<dyn Predicate>, String>,
}

/// Every transform plugin.
pub fn transform_plugins() -> Vec<TransformPlugin> {
    builtin::transforms()
}

/// Every predicate plugin.
pub fn predicate_plugins() -> Vec<PredicatePlugin> {
    builtin::predicates()
}

/// Whether `name` is a plugin's class, its part after the package, or an alias.
fn named(class: &str, aliases: &[&str], name: &str) -> bool {
    name == class || class.rsplit('.').next() == Some(name) || aliases.contains(&name)
}

struct Step {
    alias: String,
    transform: Box<dyn Transform>,
    predicate: Option<(Box<dyn Predicate>, bool)>,
}

/// A connector's transforms, in order.
#[derive(Default)]
pub struct Chain {
    steps: Vec<Step>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.steps.iter().map(|s| &s.alias)).finish()
    }
}

/// A problem with a transform or predicate key: the key and the message.
pub type KeyProblem = (String, String);

impl Chain {
    /// Builds the chain a connector config describes, or every problem with its keys.
    pub fn build(config: &RawConfig) -> Result<Self, Vec<KeyProblem>> {
        let mut problems = Vec::new();
        let predicates = build_predicates(config, &mut problems);
        let mut steps = Vec::new();
        let get = |k: &str| config.get(k).map(String::as_str).unwrap_or("");
        for alias in split_list(get("transforms")) {
            let prefix = format!("transforms.{alias}.");
            let type_key = format!("{prefix}type");
            let plugins = transform_plugins();
            let Some(plugin) = plugins.iter().find(|p| named(p.class, p.aliases, get(&type_key))) else {
                problems.push(missing_plugin(&type_key, get(&type_key), "transform"));
                continue;
            };
            let own = own_keys(config, &prefix, &["type", "predicate", "negate"]);
            let Some(parsed) = check(&(plugin.config)(), plugin.class, &own, &prefix, &mut problems) else {
                continue;
            };
            let transform = match (plugin.create)(&parsed) {
                Ok(t) => t,
                Err(e) => {
                    problems.push((type_key, e));
                    continue;
                }
            };
            let predicate = match config.get(&format!("{prefix}predicate")) {
                None => None,
                Some(name) => match predicates.iter().position(|(n, _)| n == name) {
                    Some(i) => Some(i),
                    None => {
                        problems.push((
                            format!("{prefix}predicate"),
                            format!("predicate '{name}' is not listed in 'predicates'"),
                        ));
                        continue;
                    }
                },
            };
            let negate = get(&format!("{prefix}negate")).eq_ignore_ascii_case("true");
            steps.push((alias, transform, predicate, negate));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        // Each predicate may serve several transforms: build one per use.
        let steps = steps
            .into_iter()
            .map(|(alias, transform, predicate, negate)| Step {
                alias,
                transform,
                predicate: predicate.and_then(|i| predicates[i].1.rebuild().map(|p| (p, negate))),
            })
            .collect();
        Ok(Self { steps })
    }

    /// Runs the chain: the record as it comes out, `Ok(None)` when a transform dropped it, or
    /// the alias of the transform that failed and why.
    pub fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, (String, String)> {
        for step in &self.steps {
            if let Some((p, negate)) = &step.predicate
                && p.test(&record) == *negate
            {
                continue;
            }
            match step.transform.apply(record) {
                Ok(Some(r)) => record = r,
                Ok(None) => return Ok(None),
                Err(e) => return Err((step.alias.clone(), e)),
            }
        }
        Ok(Some(record))
    }

    /// The topics records of `topics` may leave the chain with (`*` suffix: a prefix), each
    /// once: a transform that applies only under a predicate may also leave a topic as it was.
    pub fn topics_out(&self, topics: Vec<String>) -> Vec<String> {
        self.steps.iter().fold(topics, |topics, step| {
            let mut out: Vec<String> = Vec::new();
            for t in topics {
                if step.predicate.is_some() {
                    out.push(t.clone());
                }
                out.extend(step.transform.topics_out(&t));
            }
            let mut seen = std::collections::HashSet::new();
            out.retain(|t| seen.insert(t.clone()));
            out
        })
    }

    /// Whether the chain has no transform.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// A predicate's recipe: kept so that each transform that uses it gets its own instance.
struct PredicateRecipe {
    create: fn(&Parsed) -> Result<Box<dyn Predicate>, String>,
    parsed: Parsed,
}

impl PredicateRecipe {
    fn rebuild(&self) -> Option<Box<dyn Predicate>> {
        (self.create)(&self.parsed).ok()
    }
}

fn build_predicates(config: &RawConfig, problems: &mut Vec<KeyProblem>) -> Vec<(String, PredicateRecipe)> {
    let get = |k: &str| config.get(k).map(String::as_str).unwrap_or("");
    let mut out = Vec::new();
    for name in split_list(get("predicates")) {
        let prefix = format!("predicates.{name}.");
        let type_key = format!("{prefix}type");
        let plugins = predicate_plugins();
        let Some(plugin) = plugins.iter().find(|p| named(p.class, p.aliases, get(&type_key))) else {
            problems.push(missing_plugin(&type_key, get(&type_key), "predicate"));
            continue;
        };
        let own = own_keys(config, &prefix, &["type"]);
        let Some(parsed) = check(&(plugin.config)(), plugin.class, &own, &prefix, problems) else {
            continue;
        };
        match (plugin.create)(&parsed) {
            Ok(_) => out.push((
                name,
                PredicateRecipe {
                    create: plugin.create,
                    parsed,
                },
            )),
            Err(e) => problems.push((type_key, e)),
        }
    }
    out
}

/// The keys of one transform or predicate, without its prefix and the chain's own keys.
fn own_keys(config: &RawConfig, prefix: &str, chain_keys: &[&str]) -> RawConfig {
    config
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|rest| (rest.to_owned(), v.clone())))
        .filter(|(k, _)| !chain_keys.contains(&k.as_str()))
        .collect()
}

/// Validates a plugin's own keys, reporting problems under their full key names.
fn check(
    def: &ConfigDef,
    class: &str,
    own: &RawConfig,
    prefix: &str,
    problems: &mut Vec<KeyProblem>,
) -> Option<Parsed> {
    let v = def.validate(class, own);
    if v.error_count > 0 {
        for c in &v.configs {
            for e in &c.value.errors {
                problems.push((format!("{prefix}{}", c.value.name), e.clone()));
            }
        }
        return None;
    }
    match Parsed::new(def, own) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push((format!("{prefix}type"), e));
            None
        }
    }
}

fn missing_plugin(key: &str, given: &str, what: &str) -> KeyProblem {
    let detail = if given.is_empty() {
        format!("Missing required configuration \"{key}\" which has no default value.")
    } else {
        format!("Class {given} could not be found: not a known {what}")
    };
    (key.to_owned(), detail)
}
