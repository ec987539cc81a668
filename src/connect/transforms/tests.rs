//! The chain as connector configs build it: Connect's documented chains, predicates with
//! `negate`, and bad configs reported under their full key names.

use serde_json::json;

use super::support::testing::{cfg, chain_problems, record};
use super::{Chain, predicate_plugins, transform_plugins};

fn chain(pairs: &[(&str, &str)]) -> Chain {
    Chain::build(&cfg(pairs)).unwrap_or_else(|p| panic!("{p:?}"))
}

#[test]
fn connects_file_source_example_hoists_then_inserts() {
    // Kafka's quickstart: MakeMap (HoistField$Value) then InsertSource (InsertField$Value).
    let c = chain(&[
        ("transforms", "MakeMap, InsertSource"),
        (
            "transforms.MakeMap.type",
            "org.apache.kafka.connect.transforms.HoistField$Value",
        ),
        ("transforms.MakeMap.field", "line"),
        (
            "transforms.InsertSource.type",
            "org.apache.kafka.connect.transforms.InsertField$Value",
        ),
        ("transforms.InsertSource.static.field", "data_source"),
        ("transforms.InsertSource.static.value", "test-file-source"),
    ]);
    let out = c.apply(record("connect-test", json!("foo"))).unwrap().unwrap();
    assert_eq!(out.value, json!({"line": "foo", "data_source": "test-file-source"}));
}

#[test]
fn connects_predicate_example_filters_and_negates() {
    // Kafka's docs: drop topic foo; extract other_field from keys except on topic bar.
    let c = chain(&[
        ("transforms", "Filter,Extract"),
        ("transforms.Filter.type", "org.apache.kafka.connect.transforms.Filter"),
        ("transforms.Filter.predicate", "IsFoo"),
        (
            "transforms.Extract.type",
            "org.apache.kafka.connect.transforms.ExtractField$Key",
        ),
        ("transforms.Extract.field", "other_field"),
        ("transforms.Extract.predicate", "IsBar"),
        ("transforms.Extract.negate", "true"),
        ("predicates", "IsFoo,IsBar"),
        (
            "predicates.IsFoo.type",
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        ),
        ("predicates.IsFoo.pattern", "foo"),
        (
            "predicates.IsBar.type",
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        ),
        ("predicates.IsBar.pattern", "bar"),
    ]);
    let keyed = |topic: &str| {
        let mut r = record(topic, json!(1));
        r.key = json!({"other_field": "k"});
        r
    };
    assert_eq!(c.apply(keyed("foo")), Ok(None));
    assert_eq!(c.apply(keyed("bar")).unwrap().unwrap().key, json!({"other_field": "k"}));
    assert_eq!(c.apply(keyed("baz")).unwrap().unwrap().key, json!("k"));
    // TopicNameMatches needs the whole name: "food" is neither dropped nor spared.
    assert_eq!(c.apply(keyed("food")).unwrap().unwrap().key, json!("k"));
}

#[test]
fn tombstones_and_headers_guard_transforms() {
    let c = chain(&[
        ("transforms", "dropTombstones,tag,untag"),
        ("transforms.dropTombstones.type", "Filter"),
        ("transforms.dropTombstones.predicate", "isTombstone"),
        ("transforms.tag.type", "InsertHeader"),
        ("transforms.tag.header", "seen"),
        ("transforms.tag.value.literal", "yes"),
        ("transforms.tag.predicate", "hasTrace"),
        ("transforms.tag.negate", "true"),
        ("transforms.untag.type", "DropHeaders"),
        ("transforms.untag.headers", "trace"),
        ("predicates", "isTombstone,hasTrace"),
        ("predicates.isTombstone.type", "RecordIsTombstone"),
        ("predicates.hasTrace.type", "HasHeaderKey"),
        ("predicates.hasTrace.name", "trace"),
    ]);
    assert_eq!(c.apply(record("t", json!(null))), Ok(None));
    let out = c.apply(record("t", json!(1))).unwrap().unwrap();
    assert_eq!(out.headers, vec![("seen".to_owned(), json!("yes"))]);
    let mut traced = record("t", json!(1));
    traced.headers.push(("trace".into(), json!("x")));
    assert!(c.apply(traced).unwrap().unwrap().headers.is_empty());
}

#[test]
fn a_failing_transform_is_named() {
    let c = chain(&[
        ("transforms", "insert"),
        ("transforms.insert.type", "InsertField$Value"),
        ("transforms.insert.topic.field", "t"),
    ]);
    let (alias, e) = c.apply(record("t", json!([1, 2]))).unwrap_err();
    assert_eq!(alias, "insert");
    assert!(e.contains("Only Map objects supported"), "{e}");
}

#[test]
fn bad_configs_are_reported_under_their_keys() {
    let problems = chain_problems(&[
        ("transforms", "route,extract,cast,missing"),
        ("transforms.route.type", "RegexRouter"),
        ("transforms.route.regex", "(unclosed"),
        ("transforms.route.replacement", "$1"),
        ("transforms.extract.type", "ExtractField$Value"),
        ("transforms.cast.type", "Cast$Value"),
        ("transforms.cast.spec", "a:int8"),
        ("transforms.cast.predicate", "nope"),
        ("transforms.missing.type", "NoSuchTransform"),
    ]);
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "transforms.route.regex",
            "transforms.extract.field",
            "transforms.cast.predicate",
            "transforms.missing.type"
        ],
        "{problems:?}"
    );
    assert!(problems[0].1.contains("not a regular expression"), "{problems:?}");
    assert!(
        problems[1].1.contains("Missing required configuration \"field\""),
        "{problems:?}"
    );
    assert!(problems[2].1.contains("predicate 'nope' is not listed"), "{problems:?}");
    assert!(
        problems[3].1.contains("Class NoSuchTransform could not be found"),
        "{problems:?}"
    );

    let problems = chain_problems(&[
        ("transforms", "f"),
        ("transforms.f.type", "Filter"),
        ("transforms.f.predicate", "p"),
        ("predicates", "p"),
        ("predicates.p.type", "TopicNameMatches"),
        ("predicates.p.pattern", "[a-"),
    ]);
    assert_eq!(problems[0].0, "predicates.p.pattern", "{problems:?}");
    // A key a transform does not have is an error, with the closest key suggested.
    let problems = chain_problems(&[
        ("transforms", "h"),
        ("transforms.h.type", "HoistField$Value"),
        ("transforms.h.feild", "x"),
    ]);
    assert!(
        problems
            .iter()
            .any(|(k, m)| k == "transforms.h.feild" && m.contains("did you mean \"field\"")),
        "{problems:?}"
    );
}

#[test]
fn every_plugin_is_named_as_in_connect_and_has_sound_keys() {
    let transforms = transform_plugins();
    let predicates = predicate_plugins();
    let mut classes: Vec<&str> = transforms
        .iter()
        .map(|t| t.class)
        .chain(predicates.iter().map(|p| p.class))
        .collect();
    for name in [
        "InsertField",
        "ReplaceField",
        "MaskField",
        "ExtractField",
        "HoistField",
        "Cast",
        "TimestampConverter",
        "HeaderFrom",
        "Flatten",
    ] {
        for side in ["Key", "Value"] {
            let class = format!("org.apache.kafka.connect.transforms.{name}${side}");
            assert!(classes.contains(&class.as_str()), "{class} missing");
        }
    }
    for name in [
        "ValueToKey",
        "RegexRouter",
        "TimestampRouter",
        "InsertHeader",
        "DropHeaders",
        "Filter",
    ] {
        let class = format!("org.apache.kafka.connect.transforms.{name}");
        assert!(classes.contains(&class.as_str()), "{class} missing");
    }
    for name in ["TopicNameMatches", "HasHeaderKey", "RecordIsTombstone"] {
        let class = format!("org.apache.kafka.connect.transforms.predicates.{name}");
        assert!(classes.contains(&class.as_str()), "{class} missing");
    }
    assert!(classes.contains(&"io.debezium.transforms.ExtractNewRecordState"));
    assert_eq!(transforms.len(), 25);
    assert_eq!(predicates.len(), 3);
    for t in &transforms {
        let simple = t.class.rsplit('.').next().unwrap();
        assert_eq!(t.aliases, [simple], "{}", t.class);
        assert!(!t.doc.is_empty());
        let def = (t.config)();
        assert!(def.keys().iter().all(|k| !k.doc.is_empty()), "{}", t.class);
    }
    classes.sort_unstable();
    let before = classes.len();
    classes.dedup();
    assert_eq!(before, classes.len(), "duplicate classes");
}

#[test]
fn a_chain_names_every_topic_its_records_may_leave_with() {
    let c = chain(&[
        ("transforms", "Route,Stamp"),
        ("transforms.Route.type", "RegexRouter"),
        ("transforms.Route.regex", "raw-(.*)"),
        ("transforms.Route.replacement", "clean-$1"),
        ("transforms.Route.predicate", "NotAudit"),
        ("transforms.Route.negate", "true"),
        ("transforms.Stamp.type", "TimestampRouter"),
        ("transforms.Stamp.topic.format", "${topic}.${timestamp}"),
        ("predicates", "NotAudit"),
        ("predicates.NotAudit.type", "TopicNameMatches"),
        ("predicates.NotAudit.pattern", "raw-audit"),
    ]);
    let out = c.topics_out(vec!["raw-orders".into(), "other".into()]);
    assert_eq!(out, ["raw-orders.*", "clean-orders.*", "other.*"]);
    assert!(chain(&[]).topics_out(vec!["a".into()]) == ["a"]);
}
