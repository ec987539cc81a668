//! `Cast$Key` / `$Value`: casts top-level fields (`spec=field:type,…`) or the whole key or
//! value (`spec=type`) to `int8`, `int16`, `int32`, `int64`, `float32`, `float64`, `boolean` or
//! `string`, with Java's conversions: numbers narrow by truncation and wrap-around, strings
//! parse (out of range is an error), booleans are 1/0, `boolean` is true for non-zero numbers
//! and for the text `true` (any case). A null key or value passes through; as in Connect, a
//! listed field the map lacks is set to null.

use std::collections::BTreeMap;

use serde_json::{Number, Value};

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type, Validator, split_list};
use super::super::record::ConnectRecord;
use super::support::{Side, keyed_plugins, replace_null_with_default, require_map_mut};
use super::{Transform, TransformPlugin};

const DOC: &str = "Cast fields or the entire key or value to a specific type, e.g. to force an integer field to a \
                   smaller width. Cast from integers, floats, boolean and string to any other type.";
const PURPOSE: &str = "cast types";
const OUTPUT_TYPES: &str = "[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]";
const INPUT_TYPES: &str = "[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]";

/// The `$Key` and `$Value` plugins.
pub(super) fn plugins() -> [TransformPlugin; 2] {
    keyed_plugins!("Cast", DOC, config_def, create)
}

fn config_def() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::required(
            "spec",
            Type::List,
            "List of fields and the type to cast them to of the form field1:type,field2:type to cast fields of Maps \
             or Structs. A single type to cast the entire value. Valid types are int8, int16, int32, int64, float32, \
             float64, boolean, and string.",
        )
        .check(Validator::Custom(check_spec)),
        replace_null_with_default(),
    ])
}

/// A type to cast to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    Text,
}

impl Target {
    fn parse(name: &str) -> Result<Self, String> {
        Ok(match name.trim().to_ascii_uppercase().as_str() {
            "INT8" => Self::Int8,
            "INT16" => Self::Int16,
            "INT32" => Self::Int32,
            "INT64" => Self::Int64,
            "FLOAT32" => Self::Float32,
            "FLOAT64" => Self::Float64,
            "BOOLEAN" => Self::Boolean,
            "STRING" => Self::Text,
            other @ ("BYTES" | "ARRAY" | "MAP" | "STRUCT") => {
                return Err(format!(
                    "Cast transformation does not support casting to {other}; supported types are {OUTPUT_TYPES}"
                ));
            }
            _ => return Err(format!("Invalid type found in casting spec: {}", name.trim())),
        })
    }
}

/// What a spec casts: the whole value, or fields.
#[derive(Debug, Clone, PartialEq)]
enum Spec {
    Whole(Target),
    Fields(BTreeMap<String, Target>),
}

fn check_spec(value: &str) -> Result<(), String> {
    parse_spec(&split_list(value))
        .map(|_| ())
        .map_err(|e| format!("Invalid value {value} for configuration spec: {e}"))
}

fn parse_spec(mappings: &[String]) -> Result<Spec, String> {
    if mappings.is_empty() {
        return Err("Must specify at least one field to cast.".into());
    }
    let mut fields = BTreeMap::new();
    let mut whole = None;
    for m in mappings {
        let mut parts: Vec<&str> = m.split(':').collect();
        while parts.len() > 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        match parts.as_slice() {
            [ty] => whole = Some(Target::parse(ty)?),
            [field, ty] => {
                fields.insert(field.trim().to_owned(), Target::parse(ty)?);
            }
            _ => return Err(format!("Invalid cast mapping: {m}")),
        }
    }
    match whole {
        Some(_) if mappings.len() > 1 => Err(
            "Cast transformations that specify a type to cast the entire value to may only specify a single cast in their spec"
                .into(),
        ),
        Some(t) => Ok(Spec::Whole(t)),
        None => Ok(Spec::Fields(fields)),
    }
}

struct Cast {
    side: Side,
    spec: Spec,
}

fn create(p: &Parsed, side: Side) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(Cast {
        side,
        spec: parse_spec(&p.list("spec"))?,
    }))
}

impl Transform for Cast {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        let slot = self.side.of_mut(&mut record);
        if slot.is_null() {
            return Ok(Some(record));
        }
        match &self.spec {
            Spec::Whole(target) => *slot = cast(slot, *target)?,
            Spec::Fields(fields) => {
                let map = require_map_mut(slot, PURPOSE)?;
                for (field, target) in fields {
                    let cast = cast(map.get(field).unwrap_or(&Value::Null), *target)?;
                    map.insert(field.clone(), cast);
                }
            }
        }
        Ok(Some(record))
    }
}

/// Casts one value as Connect's `Cast` does.
fn cast(value: &Value, target: Target) -> Result<Value, String> {
    let out_of_range = || format!("Value ({}) was out of range for requested data type", plain(value));
    Ok(match (value, target) {
        (Value::Null, _) => Value::Null,
        (Value::Array(_), _) => return Err(unsupported("ARRAY")),
        (Value::Object(_), _) => return Err(unsupported("MAP")),
        (Value::String(s), Target::Text) => Value::String(s.clone()),
        (v, Target::Text) => Value::String(plain(v)),
        (Value::Bool(b), Target::Boolean) => Value::Bool(*b),
        (Value::Number(n), Target::Boolean) => Value::Bool(as_long(n) != 0),
        (Value::String(s), Target::Boolean) => Value::Bool(s.eq_ignore_ascii_case("true")),
        (Value::Bool(b), t) => integral(i64::from(*b), t),
        (Value::Number(n), t) => match (n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)), t) {
            (Some(i), Target::Float32) => float32(i as f32).ok_or_else(out_of_range)?,
            (Some(i), Target::Float64) => float64(i as f64).ok_or_else(out_of_range)?,
            (Some(i), t) => integral(i, t),
            (None, t) => from_double(n.as_f64().unwrap_or(0.0), t).ok_or_else(out_of_range)?,
        },
        (Value::String(s), t) => from_text(s, t).ok_or_else(out_of_range)?,
    })
}

fn unsupported(kind: &str) -> String {
    format!("Cast transformation does not support casting from {kind}; supported types are {INPUT_TYPES}")
}

/// Java's `Number.longValue()` of a JSON number.
fn as_long(n: &Number) -> i64 {
    n.as_i64()
        .or_else(|| n.as_u64().map(|u| u as i64))
        .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64)
}

/// A long narrowed as Java narrows it (wrap-around), or widened to a float.
fn integral(i: i64, target: Target) -> Value {
    match target {
        Target::Int8 => Value::from(i as i8),
        Target::Int16 => Value::from(i as i16),
        Target::Int32 => Value::from(i as i32),
        Target::Float32 => float32(i as f32).unwrap_or(Value::Null),
        Target::Float64 => float64(i as f64).unwrap_or(Value::Null),
        Target::Boolean => Value::Bool(i != 0),
        Target::Int64 | Target::Text => Value::from(i),
    }
}

/// A double converted as Java converts it: to int by truncation (saturating), then to
/// byte/short by wrap-around.
fn from_double(d: f64, target: Target) -> Option<Value> {
    Some(match target {
        Target::Int8 => Value::from(d as i32 as i8),
        Target::Int16 => Value::from(d as i32 as i16),
        Target::Int32 => Value::from(d as i32),
        Target::Int64 => Value::from(d as i64),
        Target::Float32 => return float32(d as f32),
        Target::Float64 => return float64(d),
        Target::Boolean => Value::Bool(d as i64 != 0),
        Target::Text => Value::String(java_double(d)),
    })
}

/// Text parsed as Java's `Byte.parseByte`, `Float.parseFloat`, … do; `None` when it does not
/// parse or is out of range.
fn from_text(s: &str, target: Target) -> Option<Value> {
    match target {
        Target::Int8 => s.parse::<i8>().ok().map(Value::from),
        Target::Int16 => s.parse::<i16>().ok().map(Value::from),
        Target::Int32 => s.parse::<i32>().ok().map(Value::from),
        Target::Int64 => s.parse::<i64>().ok().map(Value::from),
        Target::Float32 => java_float_text(s).and_then(|t| t.parse::<f32>().ok()).and_then(float32),
        Target::Float64 => java_float_text(s).and_then(|t| t.parse::<f64>().ok()).and_then(float64),
        Target::Boolean | Target::Text => None,
    }
}

/// Float text as Java reads it: surrounding blanks and an `f`/`d` suffix allowed.
fn java_float_text(s: &str) -> Option<&str> {
    let t = s.trim();
    let t = t.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(t);
    (!t.is_empty()).then_some(t)
}

/// A float32 as JSON: its shortest decimal form (so 3.14 stays 3.14); `None` for NaN and
/// infinities, which JSON cannot hold.
fn float32(f: f32) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    f.to_string().parse::<f64>().ok().and_then(float64)
}

fn float64(d: f64) -> Option<Value> {
    Number::from_f64(d).map(Value::Number)
}

/// A scalar's text as Java's `toString` gives it.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => java_double(n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

/// Java's `Double.toString`: plain from 10^-3 to 10^7 (with at least one decimal), else
/// computerized scientific notation (`1.0E10`).
fn java_double(d: f64) -> String {
    let magnitude = d.abs();
    if d == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let s = d.to_string();
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{d:e}");
    let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_owned()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, build, record, transform};
    use super::java_double;
    use serde_json::json;

    #[test]
    fn connects_documented_examples() {
        // Kafka's docs: spec=age:int8 and a whole-value cast.
        let t = transform("Cast$Value", &[("spec", "age:int8")]);
        assert_eq!(
            apply(t.as_ref(), record("t", json!({"age": 300, "x": 1}))).value,
            json!({"age": 44, "x": 1})
        );
        let t = transform("Cast$Key", &[("spec", "int8")]);
        let mut r = record("t", json!("v"));
        r.key = json!(42);
        assert_eq!(apply(t.as_ref(), r).key, json!(42));
    }

    #[test]
    fn every_target_type() {
        let t = transform(
            "Cast$Value",
            &[(
                "spec",
                "a:int16,b:int32,c:int64,d:float32,e:float64,f:boolean,g:string,h:string,i:int32,j:boolean,k:float64,m:int8",
            )],
        );
        let v = json!({"a": "12", "b": 3.99, "c": true, "d": 2.71, "e": "2.5", "f": 0, "g": 1.0, "h": 1e10,
                       "i": -2.7, "j": "TRUE", "k": 7, "m": 129.9});
        assert_eq!(
            apply(t.as_ref(), record("t", v)).value,
            json!({"a": 12, "b": 3, "c": 1, "d": 2.71, "e": 2.5, "f": false, "g": "1.0", "h": "1.0E10",
                   "i": -2, "j": true, "k": 7.0, "m": -127})
        );
    }

    #[test]
    fn bad_values_and_specs_fail_clearly() {
        let t = transform("Cast$Value", &[("spec", "n:int8")]);
        let e = t.apply(record("t", json!({"n": "300"}))).unwrap_err();
        assert_eq!(e, "Value (300) was out of range for requested data type");
        let e = t.apply(record("t", json!({"n": [1]}))).unwrap_err();
        assert!(e.contains("does not support casting from ARRAY"), "{e}");
        let e = t.apply(record("t", json!("x"))).unwrap_err();
        assert!(e.contains("[cast types], found: string"), "{e}");
        assert_eq!(apply(t.as_ref(), record("t", json!(null))).value, json!(null));
        let e = build("Cast$Value", &[("spec", "a:bytes")]).err().unwrap();
        assert!(e.contains("does not support casting to BYTES"), "{e}");
        let e = build("Cast$Value", &[("spec", "a:int9")]).err().unwrap();
        assert!(e.contains("Invalid type found in casting spec: int9"), "{e}");
        let e = build("Cast$Value", &[("spec", "int8,a:int16")]).err().unwrap();
        assert!(e.contains("may only specify a single cast"), "{e}");
        assert!(build("Cast$Value", &[("spec", "")]).is_err());
    }

    #[test]
    fn doubles_print_as_java_prints_them() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(1.5e-5), "1.5E-5");
        assert_eq!(java_double(-123.25), "-123.25");
    }
}
