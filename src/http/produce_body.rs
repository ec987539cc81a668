//! The fast path for JSON produce bodies: one pass over a batch (or an NDJSON line) that yields
//! records borrowing from the body, without serde's per-value machinery.
//!
//! It owns one promise: it accepts only what the serde path ([`super::records::ProduceBody`] and
//! [`super::records::ProduceRecord`] through `serde_json`) accepts, with the same meaning. Any
//! input it does not handle — every malformed body, escaped field names or header strings,
//! deep nesting — gives `None`, and the caller takes the serde path, which also words the
//! errors. The differential property tests at the bottom hold it to that against `serde_json`
//! (and `tests/fuzz.rs` throws arbitrary bodies at the whole router).
//!
//! Produce throughput leans on this parse: for 1000 records of 100 bytes the serde path took
//! about three times as long, mostly in visitor dispatch, per-field string handling and a second
//! UTF-8 pass over every raw value.

use crate::broker::{PayloadInput, RecordInput, ValueInput};
use crate::storage::Format;

/// A produce batch read by the fast path.
#[derive(Debug, Default)]
pub struct FastBody<'a> {
    /// The records, in request order.
    pub records: Vec<RecordInput<'a>>,
    /// The body's `key_format`, when given.
    pub key_format: Option<Format>,
    /// The body's `value_format`, when given.
    pub value_format: Option<Format>,
}

/// Reads a `{"records": [...], "key_format": ..., "value_format": ...}` body, or `None` when the
/// serde path must decide.
pub fn parse_body(body: &[u8]) -> Option<FastBody<'_>> {
    let mut p = Parser::new(body)?;
    let mut out = FastBody::default();
    let mut seen = 0u8;
    p.ws();
    p.list(b'{', b'}', |p| {
        let name = p.name()?;
        p.batch_member(name, &mut out, &mut seen)
    })?;
    p.ws();
    (seen & 1 != 0 && p.at_end()).then_some(out)
}

/// A transaction body (`POST /v1/transactions`) read by the fast path: each produce part's
/// topic and records; `commit` and `durability` as their raw JSON text, small and once per
/// body, for serde to read.
#[derive(Debug, Default)]
pub struct FastTxn<'a> {
    /// The produce parts: topic and batch.
    pub produce: Vec<(&'a str, FastBody<'a>)>,
    /// The `commit` member's JSON text, when given.
    pub commit: Option<&'a str>,
    /// The `durability` member's JSON text, when given.
    pub durability: Option<&'a str>,
}

/// Reads a `{"produce": [{"topic": …, "records": […], …}], "commit": …, "durability": …}`
/// body, or `None` when the serde path must decide.
pub fn parse_transaction(body: &[u8]) -> Option<FastTxn<'_>> {
    let mut p = Parser::new(body)?;
    let mut out = FastTxn::default();
    let mut seen = 0u8;
    p.ws();
    p.list(b'{', b'}', |p| match p.name()? {
        "produce" => {
            first(&mut seen, 1)?;
            p.list(b'[', b']', |p| {
                out.produce.push(p.topic_batch()?);
                Some(())
            })
        }
        "commit" => {
            first(&mut seen, 2)?;
            out.commit = Some(p.raw()?);
            Some(())
        }
        "durability" => {
            first(&mut seen, 4)?;
            out.durability = Some(p.raw()?);
            Some(())
        }
        _ => None,
    })?;
    p.ws();
    p.at_end().then_some(out)
}

/// Reads one record object that is a whole NDJSON line, or `None` when the serde path must
/// decide.
pub fn parse_record(line: &[u8]) -> Option<RecordInput<'_>> {
    let mut p = Parser::new(line)?;
    p.ws();
    let r = p.record()?;
    p.ws();
    p.at_end().then_some(r)
}

/// Marks `bit` in `seen`; `None` when it was already there (a repeated field, which serde
/// refuses).
fn first(seen: &mut u8, bit: u8) -> Option<()> {
    let fresh = *seen & bit == 0;
    *seen |= bit;
    fresh.then_some(())
}

/// Deepest nesting accepted inside a key or value (serde_json refuses past 128 levels in all).
const MAX_DEPTH: u32 = 100;

/// The members of a record object; each value is its bit in the set of members seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Value = 1,
    Key = 2,
    Headers = 4,
    Partition = 8,
    Timestamp = 16,
}

impl Field {
    const fn name(self) -> &'static str {
        match self {
            Self::Value => "value",
            Self::Key => "key",
            Self::Headers => "headers",
            Self::Partition => "partition",
            Self::Timestamp => "timestamp",
        }
    }

    /// The member called `name`; `None` for a name the fast path does not take.
    fn named(name: &str) -> Option<Self> {
        [Self::Value, Self::Key, Self::Headers, Self::Partition, Self::Timestamp]
            .into_iter()
            .find(|f| f.name() == name)
    }
}

/// Whether `s` holds a control byte (below 0x20) anywhere. A minimum over all bytes, with no
/// early exit, compiles to a few vector instructions per 32 bytes: far less than testing for
/// control bytes again in every string scan.
fn has_control(s: &[u8]) -> bool {
    s.iter().fold(u8::MAX, |least, &b| least.min(b)) < 0x20
}

/// A cursor over valid UTF-8 text.
struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    /// Line breaks seen so far (they can only be whitespace: strings refuse raw control bytes).
    breaks: usize,
    /// Whether the text has control bytes at all. Without any (compact JSON, as SDKs and most
    /// clients send it), a string ends at its first quote or backslash, which `string_end`
    /// finds.
    controls: bool,
    string_end: StringEnd,
}

/// Finds the first `"` or `\` of a string run: `memchr2`, with the vector searcher made once
/// per body rather than once per string (for 100-byte strings, a third of the search's cost was
/// choosing the implementation and loading the needles).
#[derive(Clone, Copy)]
struct StringEnd {
    #[cfg(target_arch = "x86_64")]
    avx2: Option<memchr::arch::x86_64::avx2::memchr::Two>,
}

impl StringEnd {
    fn new() -> Self {
        Self {
            #[cfg(target_arch = "x86_64")]
            avx2: memchr::arch::x86_64::avx2::memchr::Two::new(b'"', b'\\'),
        }
    }

    #[inline]
    fn find(&self, s: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(two) = &self.avx2 {
            return two.find(s);
        }
        memchr::memchr2(b'"', b'\\', s)
    }
}

impl<'a> Parser<'a> {
    /// A parser over `bytes`, or `None` when they are not UTF-8.
    fn new(bytes: &'a [u8]) -> Option<Self> {
        let text = simdutf8::basic::from_utf8(bytes).ok()?;
        Some(Self {
            s: text.as_bytes(),
            text,
            i: 0,
            breaks: 0,
            controls: has_control(bytes),
            string_end: StringEnd::new(),
        })
    }

    fn at_end(&self) -> bool {
        self.i == self.s.len()
    }

    /// `open item (, item)* close`, whitespace allowed around items; `item` reads one.
    fn list(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(open)?;
        self.ws();
        if self.eat_if(close) {
            return Some(());
        }
        self.ws();
        item(self)?;
        self.list_rest(close, item)
    }

    /// The rest of a list after an item: `(, item)* close`, whitespace allowed around items.
    fn list_rest(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        loop {
            self.ws();
            if self.eat_if(close) {
                return Some(());
            }
            self.eat(b',')?;
            self.ws();
            item(self)?;
        }
    }

    /// An object member's name (without escapes) and the colon after it.
    fn name(&mut self) -> Option<&'a str> {
        let name = self.plain_string()?;
        self.colon()?;
        Some(name)
    }

    /// The `:` after a member name, with whitespace around it.
    fn colon(&mut self) -> Option<()> {
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(())
    }

    /// A record field's name when it is written plainly (`"value"`, not `"val\u0075e"`), with
    /// the cursor moved past its closing quote; else `None` and the cursor stays. One compare
    /// instead of a string scan: every record has these names. Each name is compared as an
    /// array of its own length, which compiles to a load and a compare (a slice compare of a
    /// length known only at run time calls `memcmp`).
    fn record_field(&mut self) -> Option<Field> {
        /// `N` when `rest` starts with `name`.
        fn quoted<const N: usize>(rest: &[u8], name: &[u8; N]) -> Option<usize> {
            rest.get(..N).filter(|r| *r == name).map(|_| N)
        }
        let rest = self.s.get(self.i..)?;
        let (field, len) = match rest.get(1)? {
            b'v' => (Field::Value, quoted(rest, b"\"value\"")),
            b'k' => (Field::Key, quoted(rest, b"\"key\"")),
            b'h' => (Field::Headers, quoted(rest, b"\"headers\"")),
            b'p' => (Field::Partition, quoted(rest, b"\"partition\"")),
            b't' => (Field::Timestamp, quoted(rest, b"\"timestamp\"")),
            _ => return None,
        };
        self.i += len?;
        Some(field)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn eat_if(&mut self, c: u8) -> bool {
        self.eat(c).is_some()
    }

    /// Skips JSON whitespace. Compact JSON has none: that case is one inlined test.
    #[inline(always)]
    fn ws(&mut self) {
        if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.ws_run();
        }
    }

    /// Skips a run of JSON whitespace.
    #[inline(never)]
    fn ws_run(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t') => {}
                Some(b'\n' | b'\r') => self.breaks += 1,
                _ => return,
            }
            self.i += 1;
        }
    }

    /// Moves to the next `"`, `\` or control character inside a string and returns it.
    fn scan_string(&mut self) -> Option<u8> {
        let rest = &self.s[self.i..];
        self.i += if self.controls {
            crate::json_text::first_stop(rest)?
        } else {
            self.string_end.find(rest)?
        };
        self.peek()
    }

    /// A string without escapes, as borrowed text (the cursor is at its opening quote).
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        match self.scan_string()? {
            b'"' => {
                let s = &self.text[start..self.i];
                self.i += 1;
                Some(s)
            }
            _ => None,
        }
    }

    /// Skips any valid string, escapes included.
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            match self.scan_string()? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.s.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    /// The integer part of a JSON number: an optional minus, then `0` or digits not starting
    /// with `0`.
    fn int_part(&mut self) -> Option<()> {
        self.eat_if(b'-');
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        Some(())
    }

    /// Skips a number of JSON's grammar.
    fn skip_number(&mut self) -> Option<()> {
        self.int_part()?;
        if self.eat_if(b'.') && self.digits() == 0 {
            return None;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// Skips any JSON value, returning its text (as one line when it has no line breaks).
    fn value(&mut self) -> Option<PayloadInput<'a>> {
        let (start, breaks) = (self.i, self.breaks);
        if self.peek()? == b'"' {
            // The common value, read without the general dispatch: a string holds no raw line
            // break (control bytes are refused inside strings).
            self.skip_string()?;
            return Some(PayloadInput::JsonLine(&self.text[start..self.i]));
        }
        self.skip_value(0)?;
        let text = &self.text[start..self.i];
        Some(if self.breaks == breaks {
            PayloadInput::JsonLine(text)
        } else {
            PayloadInput::Json(text)
        })
    }

    fn skip_value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => self.list(b'{', b'}', |p| {
                p.skip_string()?;
                p.ws();
                p.eat(b':')?;
                p.ws();
                p.skip_value(depth + 1)
            }),
            b'[' => self.list(b'[', b']', |p| p.skip_value(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.skip_number(),
        }
    }

    /// `null` or an integer that fits an `i64`.
    fn opt_i64(&mut self) -> Option<Option<i64>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        let start = self.i;
        self.int_part()?;
        if let Some(b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
            return None;
        }
        match &self.text[start..self.i] {
            // serde_json reads `-0` as the float -0.0, which is no i64.
            "-0" => None,
            n => n.parse().ok().map(Some),
        }
    }

    /// `null` or a format name.
    fn format(&mut self) -> Option<Option<Format>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        match self.plain_string()? {
            "json" => Some(Some(Format::Json)),
            "string" => Some(Some(Format::String)),
            "binary" => Some(Some(Format::Binary)),
            _ => None,
        }
    }

    /// A member of a batch object (`records`, `key_format`, `value_format`) read into `out`;
    /// `None` for another name or one seen before.
    fn batch_member(&mut self, name: &str, out: &mut FastBody<'a>, seen: &mut u8) -> Option<()> {
        match name {
            "records" => {
                first(seen, 1)?;
                self.records(&mut out.records)
            }
            "key_format" => {
                first(seen, 2)?;
                out.key_format = self.format()?;
                Some(())
            }
            "value_format" => {
                first(seen, 4)?;
                out.value_format = self.format()?;
                Some(())
            }
            _ => None,
        }
    }

    /// A transaction's produce part: a batch object with a `topic` (both required).
    fn topic_batch(&mut self) -> Option<(&'a str, FastBody<'a>)> {
        let (mut topic, mut batch, mut seen) = (None, FastBody::default(), 0u8);
        self.list(b'{', b'}', |p| match p.name()? {
            "topic" => {
                first(&mut seen, 8)?;
                topic = Some(p.plain_string()?);
                Some(())
            }
            name => p.batch_member(name, &mut batch, &mut seen),
        })?;
        (seen & 1 != 0).then_some(())?;
        Some((topic?, batch))
    }

    /// Any JSON value, as its text.
    fn raw(&mut self) -> Option<&'a str> {
        let start = self.i;
        self.skip_value(0)?;
        Some(&self.text[start..self.i])
    }

    fn records(&mut self, out: &mut Vec<RecordInput<'a>>) -> Option<()> {
        // A first guess from the body size; records are rarely under ~40 bytes.
        out.reserve((self.s.len() - self.i) / 64);
        self.list(b'[', b']', |p| {
            out.push(p.record()?);
            Some(())
        })
    }

    fn record(&mut self) -> Option<RecordInput<'a>> {
        let mut r = RecordInput {
            key: None,
            value: ValueInput::Missing,
            headers: Vec::new(),
            partition: None,
            timestamp: None,
        };
        let mut seen = 0u8;
        // Most records open with `{"value":`: brace, name and colon in one compare, then the
        // members after it as `list` reads them.
        const OPENING: &[u8; 9] = b"{\"value\":";
        let opened = self.s.get(self.i..self.i + OPENING.len()).is_some_and(|o| o == OPENING);
        if opened {
            self.i += OPENING.len();
            self.ws();
            self.member(Field::Value, &mut r, &mut seen)?;
        }
        let mut next = |p: &mut Self| {
            let field = p.field()?;
            p.member(field, &mut r, &mut seen)
        };
        if opened {
            self.list_rest(b'}', &mut next)?;
        } else {
            self.list(b'{', b'}', &mut next)?;
        }
        Some(r)
    }

    /// A record member's name and the colon after it.
    fn field(&mut self) -> Option<Field> {
        match self.record_field() {
            Some(field) => {
                self.colon()?;
                Some(field)
            }
            None => Field::named(self.name()?),
        }
    }

    /// A record member's value, read into `r`; `None` for a member seen before.
    fn member(&mut self, field: Field, r: &mut RecordInput<'a>, seen: &mut u8) -> Option<()> {
        first(seen, field as u8)?;
        match field {
            Field::Value => {
                r.value = match self.value()? {
                    PayloadInput::JsonLine("null") => ValueInput::Null,
                    v => ValueInput::Given(v),
                };
            }
            Field::Key => {
                r.key = match self.value()? {
                    PayloadInput::JsonLine("null") => None,
                    k => Some(k),
                };
            }
            Field::Headers => {
                self.headers(&mut r.headers)?;
            }
            Field::Partition => {
                r.partition = self.opt_i64()?;
            }
            Field::Timestamp => {
                r.timestamp = self.opt_i64()?;
            }
        }
        Some(())
    }

    /// A `{"name": "value", ...}` object of plain strings, sorted by name with the last of
    /// duplicate names kept (what a `BTreeMap` makes of it on the serde path).
    fn headers(&mut self, out: &mut Vec<(&'a [u8], &'a [u8])>) -> Option<()> {
        self.list(b'{', b'}', |p| {
            let name = p.name()?;
            out.push((name.as_bytes(), p.plain_string()?.as_bytes()));
            Some(())
        })?;
        // Stable: among equal names the one given last is last; it replaces the ones before.
        out.sort_by(|a, b| a.0.cmp(b.0));
        out.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                *kept = *later;
            }
            same
        });
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_batch() {
        let body = br#" { "records" : [ {"value": {"a": [1, -2.5e3, "x\"y"]}, "key": "k", "partition": 2},
            {"value": null, "headers": {"b": "2", "a": "1", "b": "3"}, "timestamp": 17, "key": null} ],
            "value_format": "json", "key_format": null } "#;
        let b = parse_body(body).expect("fast path");
        assert_eq!(b.records.len(), 2);
        assert!(
            matches!(b.records[0].value, ValueInput::Given(PayloadInput::JsonLine(v)) if v == r#"{"a": [1, -2.5e3, "x\"y"]}"#)
        );
        assert!(matches!(b.records[0].key, Some(PayloadInput::JsonLine("\"k\""))));
        assert_eq!(b.records[0].partition, Some(2));
        assert!(matches!(b.records[1].value, ValueInput::Null));
        assert!(b.records[1].key.is_none());
        assert_eq!(
            b.records[1].headers,
            vec![(b"a".as_slice(), b"1".as_slice()), (b"b".as_slice(), b"3".as_slice())]
        );
        assert_eq!(b.records[1].timestamp, Some(17));
        assert_eq!(b.value_format, Some(Format::Json));
        assert_eq!(b.key_format, None);
    }

    #[test]
    fn reads_a_transaction() {
        let body = br#"{"produce": [{"topic": "out", "records": [{"value": 1}], "value_format": "json"},
            {"records": [], "topic": "b"}], "commit": {"group": "g", "offsets": []}, "durability": "fsync"}"#;
        let t = parse_transaction(body).expect("fast path");
        assert_eq!(t.produce.len(), 2);
        assert_eq!(t.produce[0].0, "out");
        assert!(matches!(
            t.produce[0].1.records[0].value,
            ValueInput::Given(PayloadInput::JsonLine("1"))
        ));
        assert_eq!(t.produce[0].1.value_format, Some(Format::Json));
        assert_eq!((t.produce[1].0, t.produce[1].1.records.len()), ("b", 0));
        assert_eq!(t.commit, Some(r#"{"group": "g", "offsets": []}"#));
        assert_eq!(t.durability, Some(r#""fsync""#));
        assert!(parse_transaction(br#"{"commit": null}"#).is_some_and(|t| t.produce.is_empty()));
        for body in [
            &br#"{"produce": [{"records": []}]}"#[..],
            br#"{"produce": [{"topic": "a"}]}"#,
            br#"{"produce": [{"topic": "a", "records": [], "topic": "b"}]}"#,
            br#"{"produce": [{"topic": "\u0061", "records": []}]}"#,
            br#"{"produce": [], "produce": []}"#,
            br#"{"produce": null}"#,
            br#"{"produce": [], "other": 1}"#,
        ] {
            assert!(parse_transaction(body).is_none(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn leaves_everything_unusual_to_serde() {
        for body in [
            &br#"{"records": [{"value": 1}], "extra": 1}"#[..],
            br#"{"records": [{"value": 1, "value": 2}]}"#,
            br#"{"records": [{"valu\u0065": 1}]}"#,
            br#"{"records": [{"values": 1}]}"#,
            br#"{"records": [{"value": 1, "keys": 2}]}"#,
            br#"{"records": [{"v": 1}]}"#,
            br#"{"records": [{"value"#,
            br#"{"records": [{"value" 1}]}"#,
            br#"{"records": [{"value": 1,}]}"#,
            br#"{"records": [{"value": 01}]}"#,
            br#"{"records": [{"value": 1, "partition": 1.0}]}"#,
            br#"{"records": [{"value": 1, "partition": 99999999999999999999}]}"#,
            br#"{"records": [{"value": "a	b"}]}"#,
            br#"{"records": [{"value": 1, "headers": {"a": "\n"}}]}"#,
            br#"{"records": [{"value": 1}], "key_format": "avro"}"#,
            br#"{"records": [{"value": 1}]} x"#,
            br#"{"records": null}"#,
            br#"{}"#,
            b"{\"records\": [{\"value\": \"\xff\"}]}",
        ] {
            assert!(parse_body(body).is_none(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn records_opening_with_their_value_read_like_any_other() {
        let b = parse_body(br#"{"records":[{"value":1,"key":"k"},{"value": "v" , "partition":2},{"value":null}]}"#)
            .expect("fast path");
        assert!(matches!(
            b.records[0].value,
            ValueInput::Given(PayloadInput::JsonLine("1"))
        ));
        assert!(matches!(b.records[0].key, Some(PayloadInput::JsonLine("\"k\""))));
        assert!(matches!(
            b.records[1].value,
            ValueInput::Given(PayloadInput::JsonLine("\"v\""))
        ));
        assert_eq!(b.records[1].partition, Some(2));
        assert!(matches!(b.records[2].value, ValueInput::Null));
        // What the general reading refuses, the opening's reading refuses too.
        for body in [
            &br#"{"records":[{"value":1,"value":2}]}"#[..],
            br#"{"records":[{"value":1,}]}"#,
            br#"{"records":[{"value":}]}"#,
            br#"{"records":[{"value":1"#,
        ] {
            assert!(parse_body(body).is_none(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn a_line_is_one_record() {
        let r = parse_record(br#"{"key": 1, "value": {"n": 2}}  "#).expect("fast path");
        assert!(matches!(r.key, Some(PayloadInput::JsonLine("1"))));
        assert!(parse_record(br#"{"value": 1} {"value": 2}"#).is_none());
        // A value spanning lines is marked so that it is put on one line before it is stored.
        let r = parse_record(b"{\n\"value\": [1,\r\n2]\n}").expect("fast path");
        assert!(matches!(r.value, ValueInput::Given(PayloadInput::Json("[1,\r\n2]"))));
    }

    mod differential {
        use proptest::prelude::*;

        use super::super::{has_control, parse_body, parse_record, parse_transaction};
        use crate::broker::Durability;
        use crate::broker::{PayloadInput, RecordInput, ValueInput};
        use crate::http::extract::parse_json;
        use crate::http::records::{ProduceBody, ProduceRecord, to_input};
        use crate::http::transactions::{TransactionBody, TxnCommitBody};
        use crate::json_text::first_stop as stop;

        /// JSON-ish text: mostly valid, with the near misses a parser gets wrong.
        fn scalar() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                Just("fals".to_owned()),
                "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{0,3})?([eE][+-]?[0-9]{0,3})?",
                "0[0-9]",
                "\"([a-z ]|\\\\[\"\\\\/bfnrtx]|\\\\u[0-9a-fA-FgG]{4}|\\\\ud83d\\\\ude00|\\\\udc00|[\\t\\n\\x00\\x7f]|é|😀){0,12}\"",
                "\"[a-z]{0,3}",
            ]
        }

        fn value() -> impl Strategy<Value = String> {
            scalar().prop_recursive(4, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
                    prop::collection::vec(("[a-z\"]{0,3}", inner), 0..4).prop_map(|v| {
                        let fields: Vec<String> = v.into_iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                        format!("{{ {} }}", fields.join(" ,\n"))
                    }),
                ]
            })
        }

        fn field() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => value().prop_map(|v| format!("\"value\":{v}")),
                2 => value().prop_map(|v| format!("\"key\" : {v}")),
                1 => prop::collection::vec(("[ab\\\\]{0,2}", "[xy\\n]{0,2}"), 0..4).prop_map(|h| {
                    let h: Vec<String> = h.into_iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
                    format!("\"headers\":{{{}}}", h.join(","))
                }),
                1 => scalar().prop_map(|v| format!("\"partition\":{v}")),
                1 => scalar().prop_map(|v| format!("\"timestamp\":\t{v}")),
                1 => Just("\"valu\\u0065\":1".to_owned()),
                1 => Just("\"other\":1".to_owned()),
            ]
        }

        fn record() -> impl Strategy<Value = String> {
            prop::collection::vec(field(), 0..5).prop_map(|f| format!("{{{}}}", f.join(",")))
        }

        fn body() -> impl Strategy<Value = Vec<u8>> {
            (
                prop::collection::vec(record(), 0..5),
                prop_oneof![
                    Just(""),
                    Just(",\"key_format\":\"string\""),
                    Just(",\"value_format\":null"),
                    Just(",\"value_format\":\"x\"")
                ],
                prop::option::of((any::<prop::sample::Index>(), any::<u8>(), 0..3u8)),
                any::<bool>(),
            )
                .prop_map(|(records, extra, mutation, compact)| {
                    let mut b = format!(" {{\"records\": [{}]{extra}}}\n", records.join(" , ")).into_bytes();
                    if compact {
                        // No control byte anywhere (as most clients send JSON): the parser's
                        // other string scan. A mutation below may put one back.
                        b.retain(|&c| c >= 0x20);
                    }
                    mutate(&mut b, mutation);
                    b
                })
        }

        /// One byte of `b` replaced, removed or inserted, as `mutation` says.
        fn mutate(b: &mut Vec<u8>, mutation: Option<(prop::sample::Index, u8, u8)>) {
            if let Some((at, byte, how)) = mutation {
                let i = at.index(b.len());
                match how {
                    0 => b[i] = byte,
                    1 => {
                        b.remove(i);
                    }
                    _ => b.insert(i, byte),
                }
            }
        }

        /// Transaction bodies: produce parts with the near misses of `body()`, commits and
        /// durabilities valid and not.
        fn txn_body() -> impl Strategy<Value = Vec<u8>> {
            let part = (
                prop_oneof![3 => "\"[a-z]{1,4}\"", 1 => Just("\"t\\u0031\"".to_owned()), 1 => Just("7".to_owned())],
                prop::collection::vec(record(), 0..3),
                prop_oneof![
                    Just(""),
                    Just(",\"value_format\":\"string\""),
                    Just(",\"key_format\":1")
                ],
                0..4u8,
            )
                .prop_map(|(topic, records, extra, shape)| {
                    let records = format!("\"records\":[{}]", records.join(","));
                    match shape {
                        0 => format!("{{\"topic\":{topic},{records}{extra}}}"),
                        1 => format!("{{{records}, \"topic\" : {topic}{extra}}}"),
                        2 => format!("{{\"topic\":{topic}{extra}}}"),
                        _ => format!("{{{records}}}"),
                    }
                });
            let commit = prop_oneof![
                Just(String::new()),
                Just(",\"commit\":{\"group\":\"g\",\"member_id\":\"m\",\"generation\":3,\"offsets\":[{\"topic\":\"a\",\"partition\":0,\"offset\":4}]}".to_owned()),
                Just(",\"commit\":null".to_owned()),
                Just(",\"commit\":{\"group\":\"g\"}".to_owned()),
            ];
            let durability = prop_oneof![
                Just(""),
                Just(",\"durability\":\"fsync\""),
                Just(",\"durability\":\"never\"")
            ];
            (
                prop::collection::vec(part, 0..3),
                commit,
                durability,
                prop::option::of((any::<prop::sample::Index>(), any::<u8>(), 0..3u8)),
            )
                .prop_map(|(parts, commit, durability, mutation)| {
                    let mut b = format!("{{\"produce\":[{}]{commit}{durability}}}", parts.join(",")).into_bytes();
                    mutate(&mut b, mutation);
                    b
                })
        }

        /// Debug text of records with `JsonLine` written as `Json` (the serde path does not
        /// know), failing if a `JsonLine` has a line break.
        fn normalized(records: &[RecordInput<'_>]) -> Result<String, TestCaseError> {
            for r in records {
                let payloads = [
                    r.key,
                    if let ValueInput::Given(v) = r.value {
                        Some(v)
                    } else {
                        None
                    },
                ];
                for p in payloads.into_iter().flatten() {
                    if let PayloadInput::JsonLine(t) = p {
                        prop_assert!(!t.contains(['\n', '\r']), "JsonLine with a line break: {t:?}");
                    }
                }
            }
            Ok(format!("{records:?}").replace("JsonLine(", "Json("))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            /// Whatever the fast path accepts, serde accepts with the same records.
            #[test]
            fn fast_path_agrees_with_serde(b in body()) {
                if let Some(fast) = parse_body(&b) {
                    let slow: ProduceBody<'_> = parse_json(&b).map_err(|e| TestCaseError::fail(format!(
                        "fast path accepted what serde refuses ({}): {}", e.detail, String::from_utf8_lossy(&b))))?;
                    let slow_records: Vec<_> = slow.records.iter().map(to_input).collect();
                    prop_assert_eq!(normalized(&fast.records)?, format!("{:?}", slow_records));
                    prop_assert_eq!(fast.key_format, slow.key_format);
                    prop_assert_eq!(fast.value_format, slow.value_format);
                }
            }

            /// Whatever the transaction fast path accepts, serde accepts with the same parts.
            #[test]
            fn fast_transaction_agrees_with_serde(b in txn_body()) {
                let Some(fast) = parse_transaction(&b) else { return Ok(()) };
                // A commit or durability serde cannot read sends the whole body to serde.
                if fast.durability.map_or(Ok(None), serde_json::from_str::<Option<Durability>>).is_err() {
                    return Ok(());
                }
                let Ok(commit) = fast.commit.map_or(Ok(None), serde_json::from_str::<Option<TxnCommitBody>>) else {
                    return Ok(());
                };
                let slow: TransactionBody<'_> = parse_json(&b).map_err(|e| TestCaseError::fail(format!(
                    "fast path accepted what serde refuses ({}): {}", e.detail, String::from_utf8_lossy(&b))))?;
                prop_assert_eq!(fast.produce.len(), slow.produce.len());
                for ((topic, batch), part) in fast.produce.iter().zip(&slow.produce) {
                    prop_assert_eq!(*topic, part.topic.as_str());
                    let slow_records: Vec<_> = part.records.iter().map(to_input).collect();
                    prop_assert_eq!(normalized(&batch.records)?, format!("{:?}", slow_records));
                    prop_assert_eq!(batch.key_format, part.key_format);
                    prop_assert_eq!(batch.value_format, part.value_format);
                }
                prop_assert_eq!(format!("{commit:?}"), format!("{:?}", slow.commit));
            }

            /// The same for a single NDJSON line.
            #[test]
            fn fast_line_agrees_with_serde(r in record()) {
                if let Some(fast) = parse_record(r.as_bytes()) {
                    let slow: ProduceRecord<'_> = parse_json(r.as_bytes()).map_err(|e| TestCaseError::fail(format!(
                        "fast path accepted what serde refuses ({}): {r}", e.detail)))?;
                    prop_assert_eq!(normalized(&[fast])?, format!("{:?}", [to_input(&slow)]));
                }
            }

            /// The one-pass scan finds what a plain search finds, wherever it sits in a block.
            #[test]
            fn stop_finds_the_first_quote_backslash_or_control_byte(
                run in "[ -~]{0,70}",
                tail in prop::collection::vec(any::<u8>(), 0..20),
            ) {
                let s = [run.as_bytes(), &tail].concat();
                prop_assert_eq!(stop(&s), s.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20));
                prop_assert_eq!(has_control(&s), s.iter().any(|&b| b < 0x20));
            }

            /// Plain well-formed batches take the fast path (else it would be no path at all).
            #[test]
            fn plain_batches_take_the_fast_path(values in prop::collection::vec("[a-z0-9 ]{0,40}", 1..20)) {
                let records: Vec<String> = values.iter().map(|v| format!("{{\"key\":\"{v}\",\"value\":{{\"v\":\"{v}\",\"n\":[1,2.5,-3e2,true,null]}}}}")).collect();
                let b = format!("{{\"records\":[{}]}}", records.join(","));
                prop_assert_eq!(parse_body(b.as_bytes()).map(|f| f.records.len()), Some(values.len()));
            }
        }
    }
}
