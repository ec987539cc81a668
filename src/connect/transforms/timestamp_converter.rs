//! `TimestampConverter$Key` / `$Value`: converts a timestamp field (or the whole key or value)
//! between a `string` (a `SimpleDateFormat` pattern, UTC), `unix` (an integer in
//! `unix.precision`), and Connect's `Date`, `Time` and `Timestamp`.
//!
//! Records here are schemaless JSON, so the input's kind is inferred as Connect infers it: a
//! string is parsed with `format`, an integer is unix time. `Timestamp`, `Date` and `Time`
//! come out as epoch milliseconds, the instant Connect's `java.util.Date` holds: `Date` is the
//! day's midnight UTC, `Time` the time of day on 1970-01-01. Null stays null; as in Connect, a
//! named field the map lacks is set to null.

use serde_json::Value;

use super::super::config::{ConfigDef, ConfigKey, Importance, Parsed, Type, Validator};
use super::super::record::ConnectRecord;
use super::date_format::{DateFormat, start_of_day, time_of_day};
use super::support::{Side, keyed_plugins, kind, replace_null_with_default, require_map_mut};
use super::{Transform, TransformPlugin};

const DOC: &str = "Convert timestamps between different formats such as Unix epoch, strings, and Connect \
                   Date/Timestamp types. Applies to individual fields or to the entire value.";
const PURPOSE: &str = "converting timestamp formats";

/// The `$Key` and `$Value` plugins.
pub(super) fn plugins() -> [TransformPlugin; 2] {
    keyed_plugins!("TimestampConverter", DOC, config_def, create)
}

fn config_def() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::optional(
            "field",
            Type::String,
            "",
            "The field containing the timestamp, or empty if the entire value is a timestamp",
        )
        .importance(Importance::High),
        ConfigKey::required(
            "target.type",
            Type::String,
            "The desired timestamp representation: string, unix, Date, Time, or Timestamp",
        )
        .check(Validator::OneOf(&["string", "unix", "Date", "Time", "Timestamp"])),
        ConfigKey::optional(
            "format",
            Type::String,
            "",
            "A SimpleDateFormat-compatible format for the timestamp. Used to generate the output when type=string or \
             used to parse the input if the input is a string.",
        )
        .check(Validator::Custom(check_format)),
        ConfigKey::optional(
            "unix.precision",
            Type::String,
            "milliseconds",
            "The desired Unix precision for the timestamp: seconds, milliseconds, microseconds, or nanoseconds. Used \
             to generate the output when type=unix or used to parse the input if the input is a Long. Note: This SMT \
             will cause precision loss during conversions from, and to, values with sub-millisecond components.",
        )
        .check(Validator::OneOf(&[
            "nanoseconds",
            "microseconds",
            "milliseconds",
            "seconds",
        ]))
        .importance(Importance::Low),
        replace_null_with_default(),
    ])
}

fn check_format(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Ok(());
    }
    DateFormat::new(value.trim()).map(|_| ()).map_err(|e| {
        format!(
            "Invalid value {value} for configuration format: TimestampConverter requires a SimpleDateFormat-compatible pattern for string timestamps: {e}"
        )
    })
}

/// What a timestamp becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Text,
    Unix,
    Date,
    Time,
    Timestamp,
}

/// The unit of `unix.precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl Precision {
    /// Milliseconds in `n` of this unit (truncated toward zero, as Java's `TimeUnit`).
    fn millis_of(self, n: i64) -> i64 {
        match self {
            Self::Seconds => n.saturating_mul(1000),
            Self::Millis => n,
            Self::Micros => n / 1000,
            Self::Nanos => n / 1_000_000,
        }
    }

    /// This unit's count in `ms` milliseconds (saturating, as Java's `TimeUnit`).
    fn units_in(self, ms: i64) -> i64 {
        match self {
            Self::Seconds => ms / 1000,
            Self::Millis => ms,
            Self::Micros => ms.saturating_mul(1000),
            Self::Nanos => ms.saturating_mul(1_000_000),
        }
    }
}

struct TimestampConverter {
    side: Side,
    field: Option<String>,
    target: Target,
    format: Option<DateFormat>,
    precision: Precision,
}

fn create(p: &Parsed, side: Side) -> Result<Box<dyn Transform>, String> {
    let target = match p.str("target.type").to_ascii_lowercase().as_str() {
        "string" => Target::Text,
        "unix" => Target::Unix,
        "date" => Target::Date,
        "time" => Target::Time,
        _ => Target::Timestamp,
    };
    let precision = match p.str("unix.precision").to_ascii_lowercase().as_str() {
        "seconds" => Precision::Seconds,
        "microseconds" => Precision::Micros,
        "nanoseconds" => Precision::Nanos,
        _ => Precision::Millis,
    };
    let format = p.opt("format").map(DateFormat::new).transpose()?;
    if target == Target::Text && format.is_none() {
        return Err(
            "format: TimestampConverter requires format option to be specified when using string timestamps".into(),
        );
    }
    Ok(Box::new(TimestampConverter {
        side,
        field: p.opt("field").map(str::to_owned),
        target,
        format,
        precision,
    }))
}

impl TimestampConverter {
    /// The instant a timestamp of any accepted kind stands for, in ms since the epoch.
    fn to_millis(&self, value: &Value) -> Result<i64, String> {
        match value {
            Value::String(s) => {
                let Some(format) = &self.format else {
                    return Err("a string timestamp needs the format option to parse it".into());
                };
                format.parse(s).map_err(|e| {
                    format!(
                        "Could not parse timestamp: value ({s}) does not match pattern ({}): {e}",
                        format.pattern()
                    )
                })
            }
            Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(self.precision.millis_of(i)),
                None => {
                    Err("Expected Unix timestamp to be a Long, but found a floating-point or too large number".into())
                }
            },
            other => Err(format!(
                "TimestampConverter does not support {} objects as timestamps",
                kind(other)
            )),
        }
    }

    fn convert(&self, value: &Value) -> Result<Value, String> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let ms = self.to_millis(value)?;
        Ok(match self.target {
            Target::Text => {
                let format = self
                    .format
                    .as_ref()
                    .ok_or("the string target type needs the format option")?;
                Value::String(format.format(ms)?)
            }
            Target::Unix => Value::from(self.precision.units_in(ms)),
            Target::Date => Value::from(start_of_day(ms)),
            Target::Time => Value::from(time_of_day(ms)),
            Target::Timestamp => Value::from(ms),
        })
    }
}

impl Transform for TimestampConverter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        let slot = self.side.of_mut(&mut record);
        match &self.field {
            Some(field) if !slot.is_null() => {
                let map = require_map_mut(slot, PURPOSE)?;
                let converted = self.convert(map.get(field).unwrap_or(&Value::Null))?;
                map.insert(field.clone(), converted);
            }
            _ => *slot = self.convert(slot)?,
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, build, record, transform};
    use serde_json::json;

    // 2017-01-09T10:30:45.123Z
    const T: i64 = 1_483_957_845_123;

    #[test]
    fn connects_documented_example_formats_a_field() {
        // Kafka's docs: field=event_date_time, target.type=string, format=yyyy-MM-dd
        let t = transform(
            "TimestampConverter$Value",
            &[
                ("field", "event_date_time"),
                ("target.type", "string"),
                ("format", "yyyy-MM-dd"),
            ],
        );
        let out = apply(t.as_ref(), record("t", json!({"event_date_time": T, "x": 1})));
        assert_eq!(out.value, json!({"event_date_time": "2017-01-09", "x": 1}));
    }

    #[test]
    fn strings_unix_times_and_connects_types() {
        let to = |target: &str, extra: &[(&str, &str)], v: serde_json::Value| {
            let mut cfg = vec![("target.type", target), ("format", "yyyy-MM-dd HH:mm:ss.SSS")];
            cfg.extend_from_slice(extra);
            apply(transform("TimestampConverter$Value", &cfg).as_ref(), record("t", v)).value
        };
        let text = json!("2017-01-09 10:30:45.123");
        assert_eq!(to("unix", &[], text.clone()), json!(T));
        assert_eq!(
            to("unix", &[("unix.precision", "seconds")], text.clone()),
            json!(T / 1000)
        );
        assert_eq!(
            to("unix", &[("unix.precision", "microseconds")], text.clone()),
            json!(T * 1000)
        );
        assert_eq!(
            to("unix", &[("unix.precision", "nanoseconds")], text.clone()),
            json!(T * 1_000_000)
        );
        assert_eq!(to("Timestamp", &[], text.clone()), json!(T));
        assert_eq!(to("Date", &[], text.clone()), json!(1_483_920_000_000_i64));
        assert_eq!(to("Time", &[], text), json!(37_845_123));
        assert_eq!(
            to("string", &[("unix.precision", "seconds")], json!(T / 1000)),
            json!("2017-01-09 10:30:45.000")
        );
        assert_eq!(to("string", &[], json!(null)), json!(null));
    }

    #[test]
    fn the_key_side_and_bad_input() {
        let t = transform(
            "TimestampConverter$Key",
            &[("field", "ts"), ("target.type", "unix"), ("format", "yyyyMMdd")],
        );
        let mut r = record("t", json!(1));
        r.key = json!({"ts": "20170109"});
        assert_eq!(apply(t.as_ref(), r).key, json!({"ts": 1_483_920_000_000_i64}));
        let t = transform(
            "TimestampConverter$Value",
            &[("field", "ts"), ("target.type", "unix"), ("format", "yyyyMMdd")],
        );
        let e = t.apply(record("t", json!({"ts": "2017-01-09"}))).unwrap_err();
        assert!(
            e.contains("Could not parse timestamp: value (2017-01-09) does not match pattern (yyyyMMdd)"),
            "{e}"
        );
        let e = t.apply(record("t", json!({"ts": 1.5}))).unwrap_err();
        assert!(e.contains("Expected Unix timestamp to be a Long"), "{e}");
        let e = t.apply(record("t", json!({"ts": true}))).unwrap_err();
        assert!(e.contains("does not support boolean objects as timestamps"), "{e}");
    }

    #[test]
    fn bad_configs_are_refused() {
        let e = build("TimestampConverter$Value", &[("target.type", "string")])
            .err()
            .unwrap();
        assert!(e.contains("requires format option"), "{e}");
        let e = build(
            "TimestampConverter$Value",
            &[("target.type", "unix"), ("format", "yyyy-qq")],
        )
        .err()
        .unwrap();
        assert!(e.contains("Illegal pattern character 'q'"), "{e}");
        let e = build("TimestampConverter$Value", &[("target.type", "epoch")])
            .err()
            .unwrap();
        assert!(e.contains("String must be one of"), "{e}");
        assert!(build("TimestampConverter$Value", &[]).is_err());
    }
}
