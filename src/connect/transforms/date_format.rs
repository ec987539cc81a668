//! Java's `SimpleDateFormat` patterns, in UTC, as Connect's `TimestampConverter` and
//! `TimestampRouter` use them: `yyyy-MM-dd'T'HH:mm:ss.SSSZ` and the like.
//!
//! Supported letters: `G` era, `y`/`Y` year (`yy`: two digits), `M`/`L` month (`MMM` `Jan`,
//! `MMMM` `January`), `d` day of month, `D` day of year, `E` day name, `u` day number (Monday 1),
//! `a` AM/PM, `H` hour 0–23, `k` 1–24, `K` 0–11, `h` 1–12, `m` minute, `s` second, `S`
//! milliseconds, `z`/`Z`/`X` zone (always UTC when formatting; offsets are honoured when
//! parsing). Text in single quotes is literal (`''` is a quote), as is any character that is
//! not an ASCII letter. Week-based letters (`w`, `W`, `F`) are refused, as are letters Java
//! does not know.
//!
//! Parsing follows Java where it matters: a numeric field directly followed by another numeric
//! field reads exactly its width (`yyyyMMdd`), otherwise as many digits as there are; `yy`
//! reads two digits into the century starting 80 years ago; text after the pattern is ignored.
//! Unlike Java's lenient default, out-of-range fields (month 13, February 30) are errors.

use chrono::{DateTime, Datelike as _, NaiveDate, NaiveTime, Timelike as _, Utc};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

const MS_PER_DAY: i64 = 86_400_000;

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(super) struct DateFormat {
    pattern: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text(String),
    Field { letter: char, count: usize },
}

impl Token {
    fn is_numeric(&self) -> bool {
        match self {
            Self::Field { letter, count } => match letter {
                'M' | 'L' => *count <= 2,
                'y' | 'Y' | 'd' | 'D' | 'u' | 'H' | 'k' | 'K' | 'h' | 'm' | 's' | 'S' => true,
                _ => false,
            },
            Self::Text(_) => false,
        }
    }
}

impl DateFormat {
    /// Compiles a pattern, or says what is wrong with it.
    pub(super) fn new(pattern: &str) -> Result<Self, String> {
        Ok(Self {
            pattern: pattern.to_owned(),
            tokens: compile(pattern)?,
        })
    }

    /// The pattern as given.
    pub(super) fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Formats an instant (ms since the epoch) in UTC.
    pub(super) fn format(&self, millis: i64) -> Result<String, String> {
        let at = DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| format!("timestamp {millis} is out of the supported range"))?;
        let mut out = String::new();
        for token in &self.tokens {
            match token {
                Token::Text(text) => out.push_str(text),
                Token::Field { letter, count } => format_field(&mut out, at, *letter, *count),
            }
        }
        Ok(out)
    }

    /// Parses text from its start into an instant (ms since the epoch); fields the pattern does
    /// not have default to 1970-01-01T00:00:00.000Z.
    pub(super) fn parse(&self, text: &str) -> Result<i64, String> {
        let mut fields = Fields::default();
        let mut pos = 0;
        for (i, token) in self.tokens.iter().enumerate() {
            match token {
                Token::Text(literal) => {
                    if !text[pos..].starts_with(literal.as_str()) {
                        return Err(format!("expected '{literal}' at position {pos}"));
                    }
                    pos += literal.len();
                }
                Token::Field { letter, count } => {
                    let abutting = self.tokens.get(i + 1).is_some_and(Token::is_numeric);
                    let width = (abutting && token.is_numeric()).then_some(*count);
                    pos = fields.read(text, pos, *letter, *count, width)?;
                }
            }
        }
        fields.resolve()
    }
}

/// Splits a pattern into literal text and fields.
fn compile(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let push_text = |tokens: &mut Vec<Token>, s: &str| match tokens.last_mut() {
        Some(Token::Text(t)) => t.push_str(s),
        _ => tokens.push(Token::Text(s.to_owned())),
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                push_text(&mut tokens, "'");
                i += 2;
                continue;
            }
            let (quoted, next) = quoted(&chars, i + 1)?;
            push_text(&mut tokens, &quoted);
            i = next;
        } else if c.is_ascii_alphabetic() {
            let count = chars[i..].iter().take_while(|&&x| x == c).count();
            check_letter(c, count)?;
            tokens.push(Token::Field { letter: c, count });
            i += count;
        } else {
            push_text(&mut tokens, c.encode_utf8(&mut [0; 4]));
            i += 1;
        }
    }
    Ok(tokens)
}

/// Reads quoted text from `start` (after the opening quote): the text and where it ends.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut text = String::new();
    let mut i = start;
    while i < chars.len() {
        if chars[i] == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                text.push('\'');
                i += 2;
                continue;
            }
            return Ok((text, i + 1));
        }
        text.push(chars[i]);
        i += 1;
    }
    Err("Unterminated quote".into())
}

fn check_letter(c: char, count: usize) -> Result<(), String> {
    match c {
        'G' | 'y' | 'Y' | 'M' | 'L' | 'd' | 'D' | 'E' | 'u' | 'a' | 'H' | 'k' | 'K' | 'h' | 'm' | 's' | 'S' | 'z'
        | 'Z' => Ok(()),
        'X' if count <= 3 => Ok(()),
        'X' => Err(format!("invalid ISO 8601 format: length={count}")),
        'w' | 'W' | 'F' => Err(format!("pattern letter '{c}' (week-based fields) is not supported")),
        _ => Err(format!("Illegal pattern character '{c}'")),
    }
}

fn pad(out: &mut String, n: i64, width: usize) {
    out.push_str(&format!("{n:0width$}"));
}

fn format_field(out: &mut String, at: DateTime<Utc>, letter: char, count: usize) {
    let hour = i64::from(at.hour());
    match letter {
        'G' => out.push_str(if at.year() > 0 { "AD" } else { "BC" }),
        'y' | 'Y' if count == 2 => pad(out, i64::from(at.year()).rem_euclid(100), 2),
        'y' | 'Y' => pad(out, i64::from(at.year()), count),
        'M' | 'L' => {
            let month = at.month();
            let name = MONTHS[month as usize - 1];
            match count {
                1 | 2 => pad(out, i64::from(month), count),
                3 => out.push_str(&name[..3]),
                _ => out.push_str(name),
            }
        }
        'd' => pad(out, i64::from(at.day()), count),
        'D' => pad(out, i64::from(at.ordinal()), count),
        'E' => {
            let name = DAYS[at.weekday().num_days_from_monday() as usize];
            out.push_str(if count >= 4 { name } else { &name[..3] });
        }
        'u' => pad(out, i64::from(at.weekday().number_from_monday()), count),
        'a' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
        'H' => pad(out, hour, count),
        'k' => pad(out, if hour == 0 { 24 } else { hour }, count),
        'K' => pad(out, hour % 12, count),
        'h' => pad(out, if hour % 12 == 0 { 12 } else { hour % 12 }, count),
        'm' => pad(out, i64::from(at.minute()), count),
        's' => pad(out, i64::from(at.second()), count),
        'S' => pad(out, i64::from(at.timestamp_subsec_millis()), count),
        'z' => out.push_str(if count >= 4 {
            "Coordinated Universal Time"
        } else {
            "UTC"
        }),
        'Z' => out.push_str("+0000"),
        'X' => out.push('Z'),
        _ => {}
    }
}

/// What a parse has read so far.
#[derive(Debug, Default)]
struct Fields {
    year: Option<i64>,
    bc: bool,
    month: Option<i64>,
    day: Option<i64>,
    ordinal: Option<i64>,
    hour24: Option<i64>,
    hour12: Option<i64>,
    pm: bool,
    minute: i64,
    second: i64,
    millis: i64,
    offset_seconds: i64,
}

impl Fields {
    /// Reads one field at `pos`; returns where the text goes on.
    fn read(
        &mut self,
        text: &str,
        pos: usize,
        letter: char,
        count: usize,
        width: Option<usize>,
    ) -> Result<usize, String> {
        let rest = &text[pos..];
        let (value, used) = match letter {
            'G' => {
                let (i, used) = choose(rest, &["AD", "BC"]).ok_or_else(|| expected("an era", pos))?;
                self.bc = i == 1;
                return Ok(pos + used);
            }
            'M' | 'L' if count >= 3 => {
                let names: Vec<&str> = MONTHS.iter().copied().chain(MONTHS.iter().map(|m| &m[..3])).collect();
                let (i, used) = choose(rest, &names).ok_or_else(|| expected("a month name", pos))?;
                self.month = Some(i as i64 % 12 + 1);
                return Ok(pos + used);
            }
            'E' => {
                let names: Vec<&str> = DAYS.iter().copied().chain(DAYS.iter().map(|d| &d[..3])).collect();
                let (_, used) = choose(rest, &names).ok_or_else(|| expected("a day name", pos))?;
                return Ok(pos + used);
            }
            'a' => {
                let (i, used) = choose(rest, &["AM", "PM"]).ok_or_else(|| expected("AM or PM", pos))?;
                self.pm = i == 1;
                return Ok(pos + used);
            }
            'z' | 'Z' | 'X' => {
                let (offset, used) = zone(rest).ok_or_else(|| expected("a time zone", pos))?;
                self.offset_seconds = offset;
                return Ok(pos + used);
            }
            _ => digits(rest, width).ok_or_else(|| expected("a number", pos))?,
        };
        match letter {
            'y' | 'Y' if count <= 2 && used == 2 => self.year = Some(two_digit_year(value)),
            'y' | 'Y' => self.year = Some(value),
            'M' | 'L' => self.month = Some(value),
            'd' => self.day = Some(value),
            'D' => self.ordinal = Some(value),
            'H' => self.hour24 = Some(value),
            'k' => self.hour24 = Some(if value == 24 { 0 } else { value }),
            'K' => self.hour12 = Some(value),
            'h' => self.hour12 = Some(if value == 12 { 0 } else { value }),
            'm' => self.minute = value,
            's' => self.second = value,
            'S' => self.millis = value,
            _ => {}
        }
        Ok(pos + used)
    }

    /// The instant the fields describe.
    fn resolve(&self) -> Result<i64, String> {
        let mut year = self.year.unwrap_or(1970);
        if self.bc {
            year = 1 - year;
        }
        let year = i32::try_from(year).map_err(|_| format!("year {year} is out of range"))?;
        let date = match (self.month, self.day, self.ordinal) {
            (None, None, Some(ordinal)) => u32::try_from(ordinal)
                .ok()
                .and_then(|o| NaiveDate::from_yo_opt(year, o))
                .ok_or_else(|| format!("day of year {ordinal} is out of range for {year}"))?,
            (month, day, _) => {
                let (month, day) = (month.unwrap_or(1), day.unwrap_or(1));
                let month32 = u32::try_from(month).ok().filter(|m| (1..=12).contains(m));
                let month32 = month32.ok_or_else(|| format!("month {month} is out of range"))?;
                u32::try_from(day)
                    .ok()
                    .and_then(|d| NaiveDate::from_ymd_opt(year, month32, d))
                    .ok_or_else(|| format!("day {day} is out of range for month {month} of {year}"))?
            }
        };
        let hour = match (self.hour24, self.hour12) {
            (Some(h), _) => h,
            (None, Some(h)) if h < 12 => h + if self.pm { 12 } else { 0 },
            (None, Some(h)) => return Err(format!("hour {h} is out of range")),
            (None, None) => 0,
        };
        let field = |v: i64, what: &str, below: u32| {
            u32::try_from(v)
                .ok()
                .filter(|v| *v < below)
                .ok_or_else(|| format!("{what} {v} is out of range"))
        };
        let time = NaiveTime::from_hms_opt(
            field(hour, "hour", 24)?,
            field(self.minute, "minute", 60)?,
            field(self.second, "second", 60)?,
        )
        .ok_or_else(|| "time is out of range".to_owned())?;
        let seconds = date.and_time(time).and_utc().timestamp() - self.offset_seconds;
        seconds
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(self.millis))
            .ok_or_else(|| "timestamp is out of range".to_owned())
    }
}

fn expected(what: &str, pos: usize) -> String {
    format!("expected {what} at position {pos}")
}

/// Digits at the start of `text`: exactly up to `width` of them when given, else all (at most
/// 18). The value and how many bytes were read.
fn digits(text: &str, width: Option<usize>) -> Option<(i64, usize)> {
    let max = width.unwrap_or(18);
    let used = text.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if used == 0 || (width.is_none() && text.as_bytes().get(used).is_some_and(u8::is_ascii_digit)) {
        return None;
    }
    text[..used].parse().ok().map(|v| (v, used))
}

/// The longest of `names` that `text` starts with (ASCII case ignored): its index and length.
fn choose(text: &str, names: &[&str]) -> Option<(usize, usize)> {
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| text.get(..n.len()).is_some_and(|t| t.eq_ignore_ascii_case(n)))
        .max_by_key(|(_, n)| n.len())
        .map(|(i, n)| (i, n.len()))
}

/// A zone at the start of `text`: `Z`, `UTC`/`GMT` (optionally followed by an offset), or an
/// offset `±hh`, `±hhmm`, `±hh:mm`. Its offset east of UTC in seconds and its length.
fn zone(text: &str) -> Option<(i64, usize)> {
    if text.starts_with('Z') {
        return Some((0, 1));
    }
    let named = ["UTC", "GMT", "UT"]
        .iter()
        .find(|n| text.get(..n.len()).is_some_and(|t| t.eq_ignore_ascii_case(n)))
        .map_or(0, |n| n.len());
    match offset(&text[named..]) {
        Some((seconds, used)) => Some((seconds, named + used)),
        None if named > 0 => Some((0, named)),
        None => None,
    }
}

fn offset(text: &str) -> Option<(i64, usize)> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, mut used) = digits(&text[1..], Some(2)).filter(|(_, n)| *n == 2)?;
    used += 1;
    let rest = &text[used..];
    let colon = usize::from(rest.starts_with(':'));
    let minutes = match digits(&rest[colon..], Some(2)) {
        Some((m, 2)) => {
            used += colon + 2;
            m
        }
        _ => 0,
    };
    (hours < 24 && minutes < 60).then_some((sign * (hours * 3600 + minutes * 60), used))
}

/// A two-digit year in the century that starts 80 years before now, as Java reads `yy`.
fn two_digit_year(two: i64) -> i64 {
    let now = Utc::now().year();
    let start = i64::from(now) - 80;
    let ambiguous = start % 100;
    two + (start / 100) * 100 + if two < ambiguous { 100 } else { 0 }
}

/// Midnight UTC of the day an instant falls in (saturating at the ends of the range).
pub(super) fn start_of_day(millis: i64) -> i64 {
    millis.div_euclid(MS_PER_DAY).saturating_mul(MS_PER_DAY)
}

/// The time of day of an instant, as an instant on 1970-01-01.
pub(super) fn time_of_day(millis: i64) -> i64 {
    millis.rem_euclid(MS_PER_DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pattern: &str) -> DateFormat {
        DateFormat::new(pattern).unwrap()
    }

    // 2017-01-09T10:30:45.123Z, a Monday.
    const T: i64 = 1_483_957_845_123;

    #[test]
    fn formats_the_common_letters_in_utc() {
        assert_eq!(
            f("yyyy-MM-dd HH:mm:ss.SSS").format(T).unwrap(),
            "2017-01-09 10:30:45.123"
        );
        assert_eq!(f("yyyyMMdd").format(T).unwrap(), "20170109");
        assert_eq!(f("yy/M/d h:mm a").format(T).unwrap(), "17/1/9 10:30 AM");
        assert_eq!(f("EEE, dd MMM yyyy").format(T).unwrap(), "Mon, 09 Jan 2017");
        assert_eq!(f("EEEE d MMMM").format(T).unwrap(), "Monday 9 January");
        assert_eq!(
            f("yyyy-MM-dd'T'HH:mm:ss.SSSZ").format(T).unwrap(),
            "2017-01-09T10:30:45.123+0000"
        );
        assert_eq!(f("yyyy-MM-dd'T'HH:mm:ssX").format(T).unwrap(), "2017-01-09T10:30:45Z");
        assert_eq!(f("D 'day''s' u z").format(T).unwrap(), "9 day's 1 UTC");
        assert_eq!(f("''HH''").format(0).unwrap(), "'00'");
        assert_eq!(f("k K").format(0).unwrap(), "24 0");
        assert_eq!(f("S").format(5).unwrap(), "5");
    }

    #[test]
    fn parses_what_it_formats() {
        for p in [
            "yyyy-MM-dd HH:mm:ss.SSS",
            "yyyyMMddHHmmssSSS",
            "EEE, dd MMM yyyy hh:mm:ss.SSS a",
            "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
            "D yyyy HH:mm:ss.SSS",
        ] {
            let fmt = f(p);
            let text = fmt.format(T).unwrap();
            assert_eq!(fmt.parse(&text), Ok(T), "{p}: {text}");
        }
    }

    #[test]
    fn parsing_defaults_honours_offsets_and_ignores_trailing_text() {
        assert_eq!(f("yyyy-MM-dd").parse("2017-01-09"), Ok(1_483_920_000_000));
        assert_eq!(f("yyyy-MM-dd").parse("2017-01-09T10:00:00Z"), Ok(1_483_920_000_000));
        assert_eq!(f("HH:mm").parse("01:00"), Ok(3_600_000));
        assert_eq!(
            f("yyyy-MM-dd HH:mmZ").parse("2017-01-09 12:30+0200"),
            Ok(1_483_957_800_000)
        );
        assert_eq!(
            f("yyyy-MM-dd HH:mmXXX").parse("2017-01-09 10:30Z"),
            Ok(1_483_957_800_000)
        );
        assert_eq!(
            f("yyyy-MM-dd HH:mm z").parse("2017-01-09 10:30 UTC"),
            Ok(1_483_957_800_000)
        );
        assert_eq!(f("d MMMM yyyy").parse("9 january 2017"), Ok(1_483_920_000_000));
        assert_eq!(f("yy-MM-dd").parse("17-01-09"), Ok(1_483_920_000_000));
    }

    #[test]
    fn bad_patterns_and_bad_text_are_refused() {
        assert!(
            DateFormat::new("yyyy-qq")
                .unwrap_err()
                .contains("Illegal pattern character 'q'")
        );
        assert!(DateFormat::new("yyyy 'T").unwrap_err().contains("Unterminated quote"));
        assert!(DateFormat::new("ww").unwrap_err().contains("not supported"));
        assert!(
            f("yyyy-MM-dd")
                .parse("2017/01/09")
                .unwrap_err()
                .contains("expected '-'")
        );
        assert_eq!(
            f("yyyy-MM-dd").parse("2017-13-09").unwrap_err(),
            "month 13 is out of range"
        );
        assert_eq!(
            f("yyyy-MM-dd").parse("2017-02-30").unwrap_err(),
            "day 30 is out of range for month 2 of 2017"
        );
        assert_eq!(
            f("yyyy-D").parse("2017-366").unwrap_err(),
            "day of year 366 is out of range for 2017"
        );
        assert_eq!(f("HH:mm").parse("25:00").unwrap_err(), "hour 25 is out of range");
        assert_eq!(f("HH:mm").parse("23:60").unwrap_err(), "minute 60 is out of range");
        assert_eq!(f("yyyy-D").parse("2016-366").unwrap(), 1_483_142_400_000);
        assert!(f("yyyy").parse("").is_err());
    }

    #[test]
    fn days_and_times_of_day() {
        assert_eq!(start_of_day(T), 1_483_920_000_000);
        assert_eq!(time_of_day(T), 37_845_123);
        assert_eq!(start_of_day(-1), -MS_PER_DAY);
        assert_eq!(time_of_day(-1), MS_PER_DAY - 1);
        assert_eq!(start_of_day(i64::MIN), i64::MIN);
        assert!(f("yyyy").format(i64::MAX).is_err());
    }
}
