//! Value codecs: the record batch (what one produce call writes to one partition) and the
//! per-partition counters.
//!
//! A batch is stored as one value under `topic_id | partition | base_offset`; record `i` of the
//! batch has offset `base_offset + i`, so offsets are never stored per record.
//!
//! ```text
//! batch  = header record*
//! header = magic u8 (=1) | count u32BE | base_timestamp i64BE | max_timestamp i64BE   (21 bytes)
//! record = flags u8 | ts_delta zigzag-varint
//!          | [key_len varint | key]      if flags & KEY
//!          | [value_len varint | value]  if flags & VALUE
//!          | header_count varint | (name_len varint | name | val_len varint | val)*
//! flags  = KEY 0x01 | VALUE 0x02 | key_format << 2 (2 bits) | value_format << 4 (2 bits)
//! ```
//!
//! Payloads are raw bytes end to end: a JSON value is stored as its JSON text and written back
//! verbatim on fetch.

use std::fmt;

/// Magic byte of the batch format version written today.
pub const BATCH_MAGIC: u8 = 1;
/// Size of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 21;

/// How a key or value was given by its producer and how it is rendered by default on fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Any JSON document, stored as its (single-line) JSON text.
    #[default]
    Json,
    /// A UTF-8 string, stored as its bytes.
    String,
    /// Arbitrary bytes, given and rendered as base64.
    Binary,
}

impl Format {
    const fn to_bits(self) -> u8 {
        match self {
            Self::Json => 0,
            Self::String => 1,
            Self::Binary => 2,
        }
    }

    fn from_bits(bits: u8) -> Result<Self, CodecError> {
        match bits & 0b11 {
            0 => Ok(Self::Json),
            1 => Ok(Self::String),
            2 => Ok(Self::Binary),
            _ => Err(CodecError("unknown payload format")),
        }
    }

    /// The name used in requests and responses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::String => "string",
            Self::Binary => "binary",
        }
    }
}

/// A stored value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub &'static str);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt value: {}", self.0)
    }
}

impl std::error::Error for CodecError {}

const FLAG_KEY: u8 = 0x01;
const FLAG_VALUE: u8 = 0x02;

/// A key or value with its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    /// How the bytes are to be read.
    pub format: Format,
    /// The stored bytes.
    pub bytes: &'a [u8],
}

/// One record as stored, borrowed from its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Record timestamp, milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Optional key.
    pub key: Option<Payload<'a>>,
    /// Optional value (`None` is Kafka's null value).
    pub value: Option<Payload<'a>>,
    /// Headers in the order given.
    pub headers: Vec<(&'a [u8], &'a [u8])>,
}

/// Builds one batch value.
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: u32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::with_capacity(256)
    }
}

impl BatchBuilder {
    /// A builder with room for `capacity` bytes of records.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(BATCH_HEADER_LEN + capacity);
        buf.resize(BATCH_HEADER_LEN, 0);
        Self {
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size in bytes of the batch if finished now.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Bytes taken by the records pushed so far (the batch without its header).
    pub fn records_len(&self) -> usize {
        self.buf.len() - BATCH_HEADER_LEN
    }

    /// The encoded size of one record, as [`push`](Self::push) would add it (within a few bytes
    /// of varint slack); used to enforce `max.message.bytes` before a record is accepted.
    pub fn record_size(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&[u8], &[u8])]) -> usize {
        let mut n = 1 + 10 + 10;
        n += key.map_or(0, |k| k.len() + 10);
        n += value.map_or(0, |v| v.len() + 10);
        n += headers.iter().map(|(k, v)| k.len() + v.len() + 20).sum::<usize>();
        n
    }

    /// Appends a record.
    pub fn push(&mut self, record: &RecordView<'_>) {
        self.push_parts(record.timestamp, record.key, record.value, &record.headers);
    }

    /// Appends a record given by its parts (no [`RecordView`] to build: the produce path pushes
    /// every record of a request through here).
    #[inline]
    pub fn push_parts<H: AsRef<[u8]>>(
        &mut self,
        timestamp: i64,
        key: Option<Payload<'_>>,
        value: Option<Payload<'_>>,
        headers: &[(H, H)],
    ) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let mut flags = 0u8;
        if let Some(k) = key {
            flags |= FLAG_KEY | (k.format.to_bits() << 2);
        }
        if let Some(v) = value {
            flags |= FLAG_VALUE | (v.format.to_bits() << 4);
        }
        self.buf.push(flags);
        put_varint(&mut self.buf, zigzag(timestamp.wrapping_sub(self.base_timestamp)));
        if let Some(k) = key {
            put_bytes(&mut self.buf, k.bytes);
        }
        if let Some(v) = value {
            put_bytes(&mut self.buf, v.bytes);
        }
        put_varint(&mut self.buf, headers.len() as u64);
        for (name, value) in headers {
            put_bytes(&mut self.buf, name.as_ref());
            put_bytes(&mut self.buf, value.as_ref());
        }
        self.count += 1;
    }

    /// Finishes the batch and returns its encoded bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf[0] = BATCH_MAGIC;
        self.buf[1..5].copy_from_slice(&self.count.to_be_bytes());
        self.buf[5..13].copy_from_slice(&self.base_timestamp.to_be_bytes());
        let max = if self.count == 0 { 0 } else { self.max_timestamp };
        self.buf[13..21].copy_from_slice(&max.to_be_bytes());
        self.buf
    }
}

/// A batch of `count` records whose encoded bytes are `records`, cut out of `batch` (a stored
/// batch the records were read from: its timestamps stay relative to its base timestamp).
pub fn sub_batch(batch: &BatchHeader, count: u32, records: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
    buf.push(BATCH_MAGIC);
    buf.extend_from_slice(&count.to_be_bytes());
    buf.extend_from_slice(&batch.base_timestamp.to_be_bytes());
    buf.extend_from_slice(&batch.max_timestamp.to_be_bytes());
    buf.extend_from_slice(records);
    buf
}

/// The fixed header of a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Number of records in the batch.
    pub count: u32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
}

impl BatchHeader {
    /// Reads the header of an encoded batch.
    pub fn parse(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() < BATCH_HEADER_LEN {
            return Err(CodecError("batch shorter than its header"));
        }
        if bytes[0] != BATCH_MAGIC {
            return Err(CodecError("unknown batch magic"));
        }
        let count = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
        let base_timestamp = i64::from_be_bytes(bytes[5..13].try_into().expect("8 bytes"));
        let max_timestamp = i64::from_be_bytes(bytes[13..21].try_into().expect("8 bytes"));
        Ok(Self {
            count,
            base_timestamp,
            max_timestamp,
        })
    }
}

/// Iterates the records of an encoded batch.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    rest: &'a [u8],
    remaining: u32,
    base_timestamp: i64,
}

impl<'a> BatchIter<'a> {
    /// Parses the header and returns the header and an iterator over the records.
    pub fn new(bytes: &'a [u8]) -> Result<(BatchHeader, Self), CodecError> {
        let header = BatchHeader::parse(bytes)?;
        Ok((
            header,
            Self {
                rest: &bytes[BATCH_HEADER_LEN..],
                remaining: header.count,
                base_timestamp: header.base_timestamp,
            },
        ))
    }

    /// The encoded records not read yet (a record read later starts at the front).
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    fn next_record(&mut self) -> Result<RecordView<'a>, CodecError> {
        let flags = take_u8(&mut self.rest)?;
        let timestamp = self.base_timestamp.wrapping_add(unzigzag(take_varint(&mut self.rest)?));
        let key = if flags & FLAG_KEY != 0 {
            Some(Payload {
                format: Format::from_bits(flags >> 2)?,
                bytes: take_bytes(&mut self.rest)?,
            })
        } else {
            None
        };
        let value = if flags & FLAG_VALUE != 0 {
            Some(Payload {
                format: Format::from_bits(flags >> 4)?,
                bytes: take_bytes(&mut self.rest)?,
            })
        } else {
            None
        };
        let n = take_varint(&mut self.rest)?;
        if n > self.rest.len() as u64 {
            return Err(CodecError("header count exceeds batch"));
        }
        let mut headers = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let name = take_bytes(&mut self.rest)?;
            let value = take_bytes(&mut self.rest)?;
            headers.push((name, value));
        }
        Ok(RecordView {
            timestamp,
            key,
            value,
            headers,
        })
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<RecordView<'a>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let r = self.next_record();
        if r.is_err() {
            self.remaining = 0;
        }
        Some(r)
    }
}

/// Counters kept per partition, written in the same atomic batch as the records they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionStats {
    /// Offset of the oldest retained record.
    pub earliest_offset: u64,
    /// Offset the next appended record will get (the high watermark).
    pub next_offset: u64,
    /// Bytes of retained batches.
    pub bytes: u64,
}

impl PartitionStats {
    /// Encoded length.
    pub const LEN: usize = 24;

    /// Encodes the counters.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0..8].copy_from_slice(&self.earliest_offset.to_be_bytes());
        out[8..16].copy_from_slice(&self.next_offset.to_be_bytes());
        out[16..24].copy_from_slice(&self.bytes.to_be_bytes());
        out
    }

    /// Decodes counters.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let b: &[u8; Self::LEN] = bytes.try_into().map_err(|_| CodecError("partition stats length"))?;
        let u = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Ok(Self {
            earliest_offset: u(0),
            next_offset: u(8),
            bytes: u(16),
        })
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[inline]
fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline]
fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn take_u8(rest: &mut &[u8]) -> Result<u8, CodecError> {
    let (&b, tail) = rest.split_first().ok_or(CodecError("truncated record"))?;
    *rest = tail;
    Ok(b)
}

fn take_varint(rest: &mut &[u8]) -> Result<u64, CodecError> {
    // Most varints of a batch are one byte: lengths under 128, small timestamp deltas, no
    // headers.
    if let Some((&b, tail)) = rest.split_first()
        && b < 0x80
    {
        *rest = tail;
        return Ok(u64::from(b));
    }
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = take_u8(rest)?;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(CodecError("varint too long"))
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], CodecError> {
    let n = take_varint(rest)?;
    if n > rest.len() as u64 {
        return Err(CodecError("length exceeds batch"));
    }
    let (head, tail) = rest.split_at(n as usize);
    *rest = tail;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Owned {
        timestamp: i64,
        key: Option<(u8, Vec<u8>)>,
        value: Option<(u8, Vec<u8>)>,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    }

    fn fmt(b: u8) -> Format {
        Format::from_bits(b % 3).unwrap()
    }

    fn owned() -> impl Strategy<Value = Owned> {
        (
            any::<i64>(),
            proptest::option::of((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))),
            proptest::option::of((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200))),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 0..10),
                    proptest::collection::vec(any::<u8>(), 0..10),
                ),
                0..4,
            ),
        )
            .prop_map(|(timestamp, key, value, headers)| Owned {
                timestamp,
                key,
                value,
                headers,
            })
    }

    fn view(o: &Owned) -> RecordView<'_> {
        RecordView {
            timestamp: o.timestamp,
            key: o.key.as_ref().map(|(f, b)| Payload {
                format: fmt(*f),
                bytes: b,
            }),
            value: o.value.as_ref().map(|(f, b)| Payload {
                format: fmt(*f),
                bytes: b,
            }),
            headers: o.headers.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect(),
        }
    }

    proptest! {
        #[test]
        fn batch_round_trips(records in proptest::collection::vec(owned(), 0..20)) {
            let mut b = BatchBuilder::default();
            for r in &records {
                let v = view(r);
                let before = b.encoded_len();
                b.push(&v);
                let key = v.key.map(|p| p.bytes);
                let value = v.value.map(|p| p.bytes);
                prop_assert!(b.encoded_len() - before <= BatchBuilder::record_size(key, value, &v.headers));
            }
            let bytes = b.finish();
            let (header, iter) = BatchIter::new(&bytes).unwrap();
            prop_assert_eq!(header.count as usize, records.len());
            if let Some(max) = records.iter().map(|r| r.timestamp).max() {
                prop_assert_eq!(header.max_timestamp, max);
            }
            let decoded: Vec<_> = iter.collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (d, r) in decoded.iter().zip(&records) {
                prop_assert_eq!(d, &view(r));
            }
        }

        #[test]
        fn batch_decode_never_panics(bytes: Vec<u8>) {
            if let Ok((_, iter)) = BatchIter::new(&bytes) {
                for r in iter { let _ = r; }
            }
            let mut with_magic = vec![BATCH_MAGIC];
            with_magic.extend_from_slice(&bytes);
            if let Ok((_, iter)) = BatchIter::new(&with_magic) {
                for r in iter { let _ = r; }
            }
        }

        #[test]
        fn stats_round_trip(e: u64, n: u64, b: u64) {
            let s = PartitionStats { earliest_offset: e, next_offset: n, bytes: b };
            prop_assert_eq!(PartitionStats::decode(&s.encode()), Ok(s));
        }

        #[test]
        fn stats_decode_never_panics(bytes: Vec<u8>) {
            let _ = PartitionStats::decode(&bytes);
        }

        #[test]
        fn varints_round_trip_and_take_only_their_bytes(v: u64, tail: Vec<u8>) {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let len = buf.len();
            buf.extend_from_slice(&tail);
            let mut rest = buf.as_slice();
            prop_assert_eq!(take_varint(&mut rest).unwrap(), v);
            prop_assert_eq!(rest, &buf[len..]);
        }

        #[test]
        fn zigzag_round_trips(v: i64) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
