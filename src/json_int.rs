//! Integers in request bodies as JSON Schema counts them: `type: integer` includes numbers with a
//! zero fraction, so `5664.0` is the integer 5664 (serde alone refuses it for integer types).
//! Used with `#[serde(deserialize_with = …)]` on the integer fields of request bodies.

use serde::de::{Deserialize, Deserializer, Error, Unexpected};

/// The integer a JSON number stands for, if it is one that fits `T`.
fn convert<T, E>(n: &serde_json::Number) -> Result<T, E>
where
    T: TryFrom<u64> + TryFrom<i64>,
    E: Error,
{
    let out_of_range = |u: Unexpected<'_>| E::invalid_value(u, &"an integer in range");
    if let Some(u) = n.as_u64() {
        return T::try_from(u).map_err(|_| out_of_range(Unexpected::Unsigned(u)));
    }
    if let Some(i) = n.as_i64() {
        return T::try_from(i).map_err(|_| out_of_range(Unexpected::Signed(i)));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // Exactly representable whole numbers only: beyond 2^53 a float is no longer exact.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if f.fract() != 0.0 || !f.is_finite() || f.abs() > EXACT {
        return Err(E::invalid_type(Unexpected::Float(f), &"an integer"));
    }
    #[allow(clippy::cast_possible_truncation)]
    let i = f as i64;
    T::try_from(i).map_err(|_| out_of_range(Unexpected::Signed(i)))
}

/// An integer field.
pub fn int<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64>,
{
    convert(&serde_json::Number::deserialize(d)?)
}

/// An optional integer field (`null` or absent is `None`; use with `#[serde(default)]`).
pub fn opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64>,
{
    Option::<serde_json::Number>::deserialize(d)?
        .map(|n| convert(&n))
        .transpose()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::int")]
        a: u32,
        #[serde(default, deserialize_with = "super::opt")]
        b: Option<i64>,
    }

    fn parse(s: &str) -> Result<Body, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_with_a_zero_fraction_are_integers() {
        let b = parse(r#"{"a": 5664.0, "b": -3.0}"#).unwrap();
        assert_eq!((b.a, b.b), (5664, Some(-3)));
        let b = parse(r#"{"a": 7, "b": null}"#).unwrap();
        assert_eq!((b.a, b.b), (7, None));
        assert_eq!(parse(r#"{"a": 1e3}"#).unwrap().a, 1000);
        assert_eq!(parse(r#"{"a": 0}"#).unwrap().b, None);
    }

    #[test]
    fn fractions_and_out_of_range_numbers_are_refused() {
        assert!(parse(r#"{"a": 1.5}"#).unwrap_err().contains("expected an integer"));
        assert!(parse(r#"{"a": -1}"#).unwrap_err().contains("in range"));
        assert!(parse(r#"{"a": 4294967296}"#).unwrap_err().contains("in range"));
        assert!(parse(r#"{"a": "1"}"#).is_err());
        assert!(parse(r#"{"a": 1, "b": 1e300}"#).is_err());
    }
}
