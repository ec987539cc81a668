//! Scalar functions: string, math, null handling, date-time and JSON. NULL in, NULL out
//! (except `COALESCE`, `CONCAT` and `NOW`).

use chrono::{DateTime, Datelike as _, Timelike as _};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;

use super::expr::{DatePart, Func, decimal_of};
use super::value::{Datum, parse_timestamp};

fn text(d: &Datum) -> String {
    d.to_string()
}

fn num(d: &Datum, f: Func) -> Result<f64, String> {
    d.as_f64()
        .ok_or_else(|| format!("{f:?} needs a number, not {d}").to_uppercase())
}

fn int(d: &Datum, f: Func) -> Result<i64, String> {
    d.as_i64()
        .ok_or_else(|| format!("{f:?} needs an integer, not {d}").to_uppercase())
}

fn ts(d: &Datum, f: Func) -> Result<i64, String> {
    match d {
        Datum::Timestamp(t) | Datum::Int(t) => Ok(*t),
        Datum::Text(s) => {
            parse_timestamp(s).ok_or_else(|| format!("{f:?} needs a timestamp, not '{s}'").to_uppercase())
        }
        other => Err(format!("{f:?} needs a timestamp, not {other}").to_uppercase()),
    }
}

fn double(x: f64) -> Datum {
    if x.is_finite() { Datum::Double(x) } else { Datum::Null }
}

/// Applies a function to evaluated arguments.
pub fn apply(f: Func, a: &[Datum]) -> Result<Datum, String> {
    match f {
        Func::Coalesce => return Ok(a.iter().find(|d| !d.is_null()).cloned().unwrap_or(Datum::Null)),
        Func::Concat => return Ok(Datum::Text(a.iter().filter(|d| !d.is_null()).map(text).collect())),
        Func::Now => return Ok(Datum::Timestamp(crate::broker::now_ms())),
        Func::UnixTimestamp if a.is_empty() => return Ok(Datum::Int(crate::broker::now_ms() / 1000)),
        Func::NullIf => {
            return Ok(if a[0].compare(&a[1]) == Some(std::cmp::Ordering::Equal) {
                Datum::Null
            } else {
                a[0].clone()
            });
        }
        _ if a.iter().any(Datum::is_null) => return Ok(Datum::Null),
        _ => {}
    }
    Ok(match f {
        Func::Upper => Datum::Text(text(&a[0]).to_uppercase()),
        Func::Lower => Datum::Text(text(&a[0]).to_lowercase()),
        Func::Trim => Datum::Text(text(&a[0]).trim().to_owned()),
        Func::Ltrim => Datum::Text(text(&a[0]).trim_start().to_owned()),
        Func::Rtrim => Datum::Text(text(&a[0]).trim_end().to_owned()),
        Func::Length => Datum::Int(text(&a[0]).chars().count() as i64),
        Func::Substring => {
            let s: Vec<char> = text(&a[0]).chars().collect();
            let from = (int(&a[1], f)?.max(1) - 1) as usize;
            let len = match a.get(2) {
                Some(l) => int(l, f)?.max(0) as usize,
                None => s.len(),
            };
            Datum::Text(s.iter().skip(from).take(len).collect())
        }
        Func::Replace => Datum::Text(text(&a[0]).replace(&text(&a[1]), &text(&a[2]))),
        Func::Lpad | Func::Rpad => pad(f, &text(&a[0]), int(&a[1], f)?, &text(&a[2])),
        Func::Abs => match &a[0] {
            Datum::Int(i) => Datum::Int(i.abs()),
            Datum::Decimal(d) => Datum::Decimal(d.abs()),
            d => double(num(d, f)?.abs()),
        },
        Func::Round => round(&a[0], a.get(1).map(|d| int(d, f)).transpose()?.unwrap_or(0))?,
        Func::Floor => match &a[0] {
            Datum::Int(i) => Datum::Int(*i),
            Datum::Decimal(d) => Datum::Decimal(d.floor()),
            d => double(num(d, f)?.floor()),
        },
        Func::Ceil => match &a[0] {
            Datum::Int(i) => Datum::Int(*i),
            Datum::Decimal(d) => Datum::Decimal(d.ceil()),
            d => double(num(d, f)?.ceil()),
        },
        Func::Sqrt => double(num(&a[0], f)?.sqrt()),
        Func::Power => double(num(&a[0], f)?.powf(num(&a[1], f)?)),
        Func::Ln => double(num(&a[0], f)?.ln()),
        Func::Exp => double(num(&a[0], f)?.exp()),
        Func::Greatest | Func::Least => extreme(f, a),
        Func::FormatTimestamp => {
            let t = ts(&a[0], f)?;
            let dt = DateTime::from_timestamp_millis(t).ok_or("timestamp out of range")?;
            Datum::Text(dt.format(&text(&a[1])).to_string())
        }
        Func::ToTimestamp => Datum::Timestamp(ts(&a[0], f)?),
        Func::UnixTimestamp => Datum::Int(ts(&a[0], f)? / 1000),
        Func::FromUnixtime => Datum::Timestamp(int(&a[0], f)?.saturating_mul(1000)),
        Func::DateTrunc => Datum::Timestamp(truncate(&text(&a[0]), ts(&a[1], f)?)?),
        Func::Extract(part) => Datum::Int(extract(part, ts(&a[0], f)?)?),
        Func::JsonValue => json_value(&a[0], &text(&a[1]))?,
        Func::Coalesce | Func::Concat | Func::Now | Func::NullIf => unreachable!("handled above"),
    })
}

fn pad(f: Func, s: &str, n: i64, with: &str) -> Datum {
    let n = n.max(0) as usize;
    let len = s.chars().count();
    if len >= n || with.is_empty() {
        return Datum::Text(s.chars().take(n).collect());
    }
    let fill: String = with.chars().cycle().take(n - len).collect();
    Datum::Text(if f == Func::Lpad {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    })
}

fn round(v: &Datum, digits: i64) -> Result<Datum, String> {
    Ok(match v {
        Datum::Int(i) if digits >= 0 => Datum::Int(*i),
        Datum::Decimal(d) if digits >= 0 => Datum::Decimal(
            d.round_dp_with_strategy(digits as u32, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        ),
        other => {
            let x = decimal_of(other).ok_or_else(|| format!("ROUND needs a number, not {other}"))?;
            let scale = Decimal::from(10i64.pow(digits.unsigned_abs().min(18) as u32));
            let r = if digits >= 0 {
                x.round_dp_with_strategy(digits as u32, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            } else {
                (x / scale).round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero) * scale
            };
            match other {
                Datum::Double(_) => double(r.to_f64().unwrap_or(f64::NAN)),
                _ => Datum::Decimal(r),
            }
        }
    })
}

fn extreme(f: Func, a: &[Datum]) -> Datum {
    let mut best: Option<&Datum> = None;
    for d in a {
        best = match best {
            None => Some(d),
            Some(b) => {
                let better = match d.compare(b) {
                    Some(std::cmp::Ordering::Greater) => f == Func::Greatest,
                    Some(std::cmp::Ordering::Less) => f == Func::Least,
                    _ => false,
                };
                Some(if better { d } else { b })
            }
        };
    }
    best.cloned().unwrap_or(Datum::Null)
}

/// `DATE_TRUNC(unit, ts)` in UTC.
fn truncate(unit: &str, t: i64) -> Result<i64, String> {
    let dt = DateTime::from_timestamp_millis(t)
        .ok_or("timestamp out of range")?
        .naive_utc();
    let day = dt.date();
    let out = match unit.to_ascii_lowercase().as_str() {
        "second" => dt.with_nanosecond(0),
        "minute" => dt.with_nanosecond(0).and_then(|d| d.with_second(0)),
        "hour" => day.and_hms_opt(dt.hour(), 0, 0),
        "day" => day.and_hms_opt(0, 0, 0),
        "week" => (day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday()))).and_hms_opt(0, 0, 0),
        "month" => day.with_day(1).and_then(|d| d.and_hms_opt(0, 0, 0)),
        "year" => day.with_ordinal(1).and_then(|d| d.and_hms_opt(0, 0, 0)),
        other => return Err(format!("DATE_TRUNC: unknown unit '{other}' (second … year)")),
    };
    out.map(|d| d.and_utc().timestamp_millis())
        .ok_or_else(|| "timestamp out of range".into())
}

fn extract(part: DatePart, t: i64) -> Result<i64, String> {
    let dt = DateTime::from_timestamp_millis(t).ok_or("timestamp out of range")?;
    Ok(match part {
        DatePart::Year => i64::from(dt.year()),
        DatePart::Month => i64::from(dt.month()),
        DatePart::Day => i64::from(dt.day()),
        DatePart::Hour => i64::from(dt.hour()),
        DatePart::Minute => i64::from(dt.minute()),
        DatePart::Second => i64::from(dt.second()),
        DatePart::DayOfWeek => i64::from(dt.weekday().number_from_monday()),
        DatePart::Epoch => t / 1000,
    })
}

/// `JSON_VALUE(json, '$.a.b[0]')`: a JSON value (or JSON text) at a path.
fn json_value(v: &Datum, path: &str) -> Result<Datum, String> {
    let root = match v {
        Datum::Json(j) => j.clone(),
        Datum::Text(s) => match serde_json::from_str(s) {
            Ok(j) => j,
            Err(_) => return Ok(Datum::Null),
        },
        other => other.to_json(),
    };
    let rest = path
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| format!("JSON_VALUE: the path must start with '$', not '{path}'"))?;
    let mut cur = root;
    for seg in rest.split('.').filter(|s| !s.is_empty()) {
        let (name, indexes) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !name.is_empty() {
            cur = cur.get(name).cloned().unwrap_or(serde_json::Value::Null);
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            let i: usize = idx
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("JSON_VALUE: bad index in '{path}'"))?;
            cur = cur.get(i).cloned().unwrap_or(serde_json::Value::Null);
        }
    }
    Ok(Datum::from_untyped(&cur))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> Datum {
        Datum::Text(s.into())
    }

    #[test]
    fn functions_compute_and_pass_nulls_through() {
        assert_eq!(apply(Func::Upper, &[t("ab")]), Ok(t("AB")));
        assert_eq!(
            apply(Func::Substring, &[t("hello"), Datum::Int(2), Datum::Int(3)]),
            Ok(t("ell"))
        );
        assert_eq!(apply(Func::Lpad, &[t("7"), Datum::Int(3), t("0")]), Ok(t("007")));
        assert_eq!(apply(Func::Upper, &[Datum::Null]), Ok(Datum::Null));
        assert_eq!(apply(Func::Coalesce, &[Datum::Null, Datum::Int(2)]), Ok(Datum::Int(2)));
        assert_eq!(
            apply(Func::Round, &[Datum::Decimal("2.345".parse().unwrap()), Datum::Int(2)]),
            Ok(Datum::Decimal("2.35".parse().unwrap()))
        );
        let ts = Datum::Timestamp(1_795_996_801_123); // 2026-11-30T00:00:01.123Z
        assert_eq!(
            apply(Func::DateTrunc, &[t("hour"), ts.clone()]),
            Ok(Datum::Timestamp(1_795_996_800_000))
        );
        assert_eq!(
            apply(Func::Extract(DatePart::Month), std::slice::from_ref(&ts)),
            Ok(Datum::Int(11))
        );
        assert_eq!(apply(Func::FormatTimestamp, &[ts, t("%Y-%m-%d")]), Ok(t("2026-11-30")));
        let j = Datum::Json(json!({"a": {"b": [10, 20]}}));
        assert_eq!(apply(Func::JsonValue, &[j, t("$.a.b[1]")]), Ok(Datum::Int(20)));
        assert_eq!(
            apply(Func::Greatest, &[Datum::Int(1), Datum::Int(5), Datum::Int(3)]),
            Ok(Datum::Int(5))
        );
    }
}
