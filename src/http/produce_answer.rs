//! The answer of a JSON or raw produce: one result per record (the default), or on request
//! (`?results=partitions`) one entry per partition written, as Kafka's produce response has it —
//! a few bytes for a batch of thousands instead of one object per record.

use axum::http::HeaderValue;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::problem_response;
use super::render::json_response;
use crate::broker::{ProduceOutcome, RecordAck};
use crate::error::{Error, ErrorCode};

/// How a produce answers: `records` (default) lists every record's partition, offset and
/// timestamp; `partitions` gives each partition's first offset and count, and errors by index.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultsShape {
    /// One result per record, in request order.
    #[default]
    Records,
    /// One entry per partition written; failed records listed by their index.
    Partitions,
}

/// Where one record was written.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordWritten {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Timestamp, ms since the epoch.
    pub timestamp: i64,
}

/// Why one record was not written.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordError {
    /// Stable error code.
    pub code: ErrorCode,
    /// Explanation.
    pub detail: String,
    /// Offending field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Result for one record: where it went, or `{"error": ...}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RecordResult {
    /// Written.
    Written(RecordWritten),
    /// Not written.
    Failed {
        /// Why.
        error: RecordError,
    },
}

impl From<Error> for RecordError {
    fn from(e: Error) -> Self {
        Self {
            code: e.code,
            detail: e.detail,
            field: e.field,
        }
    }
}

impl From<Result<RecordAck, Error>> for RecordResult {
    fn from(r: Result<RecordAck, Error>) -> Self {
        match r {
            Ok(a) => Self::Written(RecordWritten {
                partition: a.partition,
                offset: a.offset,
                timestamp: a.timestamp,
            }),
            Err(e) => Self::Failed { error: e.into() },
        }
    }
}

/// Response of produce.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "results": [
        {"partition": 1, "offset": 41, "timestamp": 1732500000000i64},
        {"error": {"code": "invalid_base64", "detail": "is not valid base64: Invalid padding", "field": "records[1].value"}}
    ],
    "failed": 1
}))]
pub struct ProduceResponse {
    /// One entry per record, in request order.
    pub results: Vec<RecordResult>,
    /// How many records were not written.
    pub failed: usize,
}

/// Records written to one partition by one request, at consecutive offsets.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct PartitionWritten {
    /// Partition.
    pub partition: u32,
    /// Offset of the first record written.
    pub base_offset: u64,
    /// How many records were written, at `base_offset`, `base_offset + 1`, ….
    pub count: u64,
}

/// A record that was not written, by its place in the request.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexedError {
    /// Index of the record in the request's `records`.
    pub index: usize,
    /// Why.
    pub error: RecordError,
}

/// Response of produce with `?results=partitions`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "partitions": [{"partition": 0, "base_offset": 4100, "count": 998}],
    "failed": 1,
    "errors": [{"index": 7, "error": {"code": "invalid_base64", "detail": "is not valid base64: Invalid padding", "field": "records[7].value"}}]
}))]
pub struct PartitionsResponse {
    /// One entry per partition written (a partition appears twice only if another writer's
    /// records came between this request's, which one request's batch never does today).
    pub partitions: Vec<PartitionWritten>,
    /// How many records were not written.
    pub failed: usize,
    /// The records not written, by index (absent when none failed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<IndexedError>,
}

/// The JSON answer of produce, in the shape `results` asked for (for the document: the handler
/// writes either shape directly).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ProduceAnswer {
    /// `results=records` (default).
    Records(ProduceResponse),
    /// `results=partitions`.
    Partitions(PartitionsResponse),
}

/// Renders a produce outcome in the shape asked for; a problem when every record failed.
pub fn produce_answer(outcome: ProduceOutcome, shape: ResultsShape) -> Response {
    if outcome.failed() == outcome.len() {
        let e = outcome.results().find_map(Result::err).cloned();
        return problem_response(&e.unwrap_or_else(|| Error::new(ErrorCode::Internal, "empty produce outcome")));
    }
    let mut resp = match shape {
        ResultsShape::Records => json_response(per_record(&outcome)),
        ResultsShape::Partitions => {
            json_response(serde_json::to_vec(&per_partition(&outcome)).expect("writing to a Vec cannot fail"))
        }
    };
    if outcome.replayed() {
        resp.headers_mut()
            .insert("idempotency-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// Folds the acks into runs of consecutive offsets per partition, in order of first write.
fn per_partition(outcome: &ProduceOutcome) -> PartitionsResponse {
    let mut partitions: Vec<PartitionWritten> = Vec::new();
    let mut errors = Vec::new();
    for (index, r) in outcome.results().enumerate() {
        match r {
            Ok(a) => match partitions.iter_mut().rev().find(|p| p.partition == a.partition) {
                Some(p) if p.base_offset.checked_add(p.count) == Some(a.offset) => p.count += 1,
                _ => partitions.push(PartitionWritten {
                    partition: a.partition,
                    base_offset: a.offset,
                    count: 1,
                }),
            },
            Err(e) => errors.push(IndexedError {
                index,
                error: RecordError::from(e.clone()),
            }),
        }
    }
    PartitionsResponse {
        partitions,
        failed: errors.len(),
        errors,
    }
}

/// The [`ProduceResponse`] shape, written directly: serializing 1000 results through serde
/// costs more than the rest of the response path. A result is ~60 bytes (up to 64 with a
/// 12-digit offset and a 3-digit partition).
fn per_record(outcome: &ProduceOutcome) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + outcome.len() * 64);
    // Records of a batch share partition and timestamp and have consecutive offsets: one
    // result's text is kept and only its offset digits are advanced.
    let mut line = ResultLine::default();
    out.extend_from_slice(b"{\"results\":[");
    for (i, r) in outcome.results().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match r {
            Ok(a) => out.extend_from_slice(line.text(&a)),
            Err(e) => {
                let failed: RecordResult = Err::<RecordAck, _>(e.clone()).into();
                serde_json::to_writer(&mut out, &failed).expect("writing to a Vec cannot fail");
            }
        }
    }
    out.extend_from_slice(b"],\"failed\":");
    out.extend_from_slice(itoa::Buffer::new().format(outcome.failed()).as_bytes());
    out.push(b'}');
    out
}

/// Writes acks as a JSON array of [`RecordWritten`] objects, as `serde_json` would, without
/// serde's cost per result (see [`per_record`]).
pub fn write_acks(out: &mut Vec<u8>, acks: impl IntoIterator<Item = RecordAck>) {
    let mut line = ResultLine::default();
    out.push(b'[');
    for (i, a) in acks.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(line.text(&a));
    }
    out.push(b']');
}

/// The text of the last result written (`{"partition":…,"offset":…,"timestamp":…}`, the
/// [`RecordWritten`] shape), reused for the same result and advanced in place for the next
/// offset of the same partition and timestamp (a batch's offsets count up by one).
#[derive(Default)]
struct ResultLine {
    text: Vec<u8>,
    /// Where the offset's digits are in `text`.
    digits: std::ops::Range<usize>,
    last: Option<RecordAck>,
}

impl ResultLine {
    fn text(&mut self, a: &RecordAck) -> &[u8] {
        let same_run = |l: &RecordAck| l.partition == a.partition && l.timestamp == a.timestamp;
        let kept = match self.last {
            Some(l) if same_run(&l) && l.offset == a.offset => true,
            Some(l) if same_run(&l) && l.offset.checked_add(1) == Some(a.offset) => {
                increment(&mut self.text[self.digits.clone()])
            }
            _ => false,
        };
        if !kept {
            self.text.clear();
            self.text.extend_from_slice(b"{\"partition\":");
            self.text
                .extend_from_slice(itoa::Buffer::new().format(a.partition).as_bytes());
            self.text.extend_from_slice(b",\"offset\":");
            let start = self.text.len();
            self.text
                .extend_from_slice(itoa::Buffer::new().format(a.offset).as_bytes());
            self.digits = start..self.text.len();
            self.text.extend_from_slice(b",\"timestamp\":");
            self.text
                .extend_from_slice(itoa::Buffer::new().format(a.timestamp).as_bytes());
            self.text.push(b'}');
        }
        self.last = Some(*a);
        &self.text
    }
}

/// Adds one to a number's decimal digits in place; `false` (digits untouched) when the sum
/// needs one more digit.
fn increment(digits: &mut [u8]) -> bool {
    match digits.iter().rposition(|&d| d != b'9') {
        Some(at) => {
            digits[at] += 1;
            digits[at + 1..].fill(b'0');
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{PartitionWritten, RecordWritten, ResultLine, per_partition};
    use crate::broker::{ProduceOutcome, RecordAck};
    use crate::error::{Error, ErrorCode};
    use proptest::prelude::*;

    fn serde_text(a: &RecordAck) -> String {
        serde_json::to_string(&RecordWritten {
            partition: a.partition,
            offset: a.offset,
            timestamp: a.timestamp,
        })
        .unwrap()
    }

    proptest! {
        /// Repeated, consecutive and jumping offsets, in runs of one or several partitions and
        /// timestamps, all come out as serde writes the result.
        #[test]
        fn result_text_matches_serde(
            start in any::<u64>(),
            steps in proptest::collection::vec((0u64..3, 0u32..3, prop_oneof![Just(0i64), Just(1_732_500_000_000), any::<i64>()]), 1..40),
        ) {
            let mut line = ResultLine::default();
            let mut offset = start;
            for (step, partition, timestamp) in steps {
                offset = if step == 2 { offset / 7 } else { offset.saturating_add(step) };
                let a = RecordAck { partition, offset, timestamp };
                let want = serde_text(&a);
                prop_assert_eq!(line.text(&a), want.as_bytes());
            }
        }
    }

    #[test]
    fn offsets_carry_into_a_new_digit() {
        let mut line = ResultLine::default();
        for offset in (97..=1001u64).chain([u64::MAX - 1, u64::MAX]) {
            let a = RecordAck {
                partition: 3,
                offset,
                timestamp: 17,
            };
            assert_eq!(line.text(&a), serde_text(&a).as_bytes());
        }
    }

    #[test]
    fn partitions_fold_consecutive_offsets_and_index_errors() {
        let ack = |partition, offset| {
            Ok(RecordAck {
                partition,
                offset,
                timestamp: 5,
            })
        };
        let outcome = ProduceOutcome::from_results(
            [
                ack(0, 10),
                ack(1, 3),
                Err(Error::new(ErrorCode::InvalidBase64, "bad").with_field("records[2].value")),
                ack(0, 11),
                ack(1, 4),
                ack(0, 12),
                ack(0, 40),
            ],
            false,
        );
        let got = per_partition(&outcome);
        let run = |partition, base_offset, count| PartitionWritten {
            partition,
            base_offset,
            count,
        };
        assert_eq!(got.partitions, vec![run(0, 10, 3), run(1, 3, 2), run(0, 40, 1)]);
        assert_eq!(got.failed, 1);
        assert_eq!(got.errors[0].index, 2);
        assert_eq!(got.errors[0].error.field.as_deref(), Some("records[2].value"));
    }
}
