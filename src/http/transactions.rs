//! `POST /v1/transactions`: produce to any topics and commit a group member's offsets in one
//! atomic write — consume → process → produce exactly once, over plain HTTP.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiResult, Problem};
use super::extract::{parse_json, read_body, require_json};
use super::produce_answer::write_acks;
use super::produce_body;
use super::records::{ProduceRecord, to_input};
use super::render::{json_response, topic_json};
use crate::broker::groups::PartitionOffset;
use crate::broker::produce::ProduceRequest;
use crate::broker::{Caller, Durability, RecordAck, Transaction, TxnCommit, TxnOutcome, TxnProduce};
use crate::storage::Format;

/// Records for one topic.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TxnTopicRecords<'a> {
    /// The topic.
    pub topic: String,
    /// The records, in the produce format.
    #[serde(borrow)]
    pub records: Vec<ProduceRecord<'a>>,
    /// How keys are given: `json` (default), `string` or `binary` (base64).
    pub key_format: Option<Format>,
    /// How values are given: `json` (default), `string` or `binary` (base64).
    pub value_format: Option<Format>,
}

/// A group member's commit within the transaction.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TxnCommitBody {
    /// The group.
    pub group: String,
    /// The member id (the member must be the caller's own).
    pub member_id: String,
    /// The member's generation; a stale one fails the transaction (`illegal_generation`).
    #[serde(deserialize_with = "crate::json_int::int")]
    pub generation: u64,
    /// The next offset to read per partition, as Kafka commits.
    pub offsets: Vec<PartitionOffset>,
}

/// Body of a transaction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "produce": [{"topic": "orders-enriched", "records": [{"key": "c17", "value": {"order": 981, "vip": true}}]}],
    "commit": {"group": "enricher", "member_id": "enricher-5f0c…", "generation": 7,
               "offsets": [{"topic": "orders", "partition": 0, "offset": 42}]}
}))]
pub struct TransactionBody<'a> {
    /// Records to produce, per topic.
    #[serde(borrow, default)]
    pub produce: Vec<TxnTopicRecords<'a>>,
    /// Offsets to commit.
    pub commit: Option<TxnCommitBody>,
    /// `wal` or `fsync`; default: `fsync` if any topic written is `fsync`, else `wal`.
    pub durability: Option<Durability>,
}

/// Run a transaction.
#[utoipa::path(
    post, path = "/v1/transactions", tag = "transactions", operation_id = "transact",
    extensions(("x-weir-permissions" = json!([
        {"resource": "topic", "name": "{body.produce.topic}", "operation": "write"},
        {"resource": "group", "name": "{body.commit.group}", "operation": "read"},
    ]))),
    summary = "Produce and commit atomically",
    description = "Appends records to any number of topics and partitions and commits a consumer-group member's \
offsets in one write: all of it or none of it, visible to readers only once written. A consume → process → \
produce loop that commits its input offsets in the same transaction as its output processes each record exactly \
once, even across crashes. Produce-only and commit-only transactions are valid. Any record that cannot be written \
fails the whole transaction (the problem's `field` names it, e.g. `produce[0].records[3].value`).",
    request_body(content = TransactionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Where each record went, and the committed offsets.", body = TxnOutcome,
         example = json!({"produce": [{"topic": "orders-enriched", "results": [{"partition": 0, "offset": 17, "timestamp": 1732500000000i64}]}],
                          "committed": [{"topic": "orders", "partition": 0, "offset": 42}]})),
        (status = 400, description = "`invalid_json`, `invalid_record`, `invalid_base64`, `invalid_parameter`, `invalid_group_name`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a topic or the group is not the caller's to write or read, or the member is another principal's.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`topic_not_found`, `partition_not_found`, `group_not_found`, `unknown_member`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`illegal_generation`, `partition_not_owned`, `rebalance_in_progress`: nothing was written.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`record_too_large`, `too_many_records`, `request_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "`offset_out_of_range`: a committed offset is past its partition's end.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn transact(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_json(&headers)?;
    let bytes = read_body(body, s.broker.config().max_request_bytes).await?;
    let slow: TransactionBody<'_>;
    let txn = match fast_transaction(&bytes) {
        Some(txn) => txn,
        None => {
            slow = parse_json(&bytes)?;
            slow_transaction(&slow)
        }
    };
    Ok(json_response(answer(&s.broker.transact(&caller, txn).await?)))
}

/// The [`TxnOutcome`] as JSON, its per-record results written directly (as produce writes
/// its answer: serde's cost per result was more than the rest of the answer's).
fn answer(outcome: &TxnOutcome) -> Vec<u8> {
    let records: usize = outcome.produce.iter().map(|t| t.results.len()).sum();
    let mut out = Vec::with_capacity(128 + records * 64);
    out.extend_from_slice(b"{\"produce\":[");
    for (i, t) in outcome.produce.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"topic\":");
        out.extend_from_slice(&topic_json(&t.topic));
        out.extend_from_slice(b",\"results\":");
        write_acks(
            &mut out,
            t.results.iter().map(|a| RecordAck {
                partition: a.partition,
                offset: a.offset,
                timestamp: a.timestamp,
            }),
        );
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"committed\":");
    // Offsets are plain numbers and names: serializing them cannot fail.
    serde_json::to_writer(&mut out, &outcome.committed).expect("writing to a Vec cannot fail");
    out.push(b'}');
    out
}

/// The transaction of a body the fast path reads (see [`produce_body`]); `None` when serde
/// must read it (and word the error, if there is one).
fn fast_transaction(bytes: &[u8]) -> Option<Transaction<'_>> {
    let fast = produce_body::parse_transaction(bytes)?;
    let commit: Option<TxnCommitBody> = match fast.commit {
        Some(text) => serde_json::from_str(text).ok()?,
        None => None,
    };
    let durability: Option<Durability> = match fast.durability {
        Some(text) => serde_json::from_str(text).ok()?,
        None => None,
    };
    let produce = fast
        .produce
        .into_iter()
        .map(|(topic, batch)| TxnProduce {
            topic: topic.to_owned(),
            request: request(batch.records, batch.key_format, batch.value_format),
        })
        .collect();
    Some(Transaction {
        produce,
        commit: commit.map(TxnCommitBody::into_commit),
        state: Vec::new(),
        durability,
    })
}

/// The transaction of a body serde read.
fn slow_transaction<'a>(req: &'a TransactionBody<'a>) -> Transaction<'a> {
    Transaction {
        produce: req
            .produce
            .iter()
            .map(|t| TxnProduce {
                topic: t.topic.clone(),
                request: request(t.records.iter().map(to_input).collect(), t.key_format, t.value_format),
            })
            .collect(),
        commit: req.commit.clone().map(TxnCommitBody::into_commit),
        state: Vec::new(),
        durability: req.durability,
    }
}

/// A produce part's request: its records in the formats given (JSON by default).
fn request<'a>(
    records: Vec<crate::broker::RecordInput<'a>>,
    key_format: Option<Format>,
    value_format: Option<Format>,
) -> ProduceRequest<'a> {
    ProduceRequest {
        records,
        key_format: key_format.unwrap_or_default(),
        value_format: value_format.unwrap_or_default(),
        durability: None,
        idempotency: None,
    }
}

impl TxnCommitBody {
    fn into_commit(self) -> TxnCommit {
        TxnCommit {
            group: self.group,
            member_id: self.member_id,
            generation: self.generation,
            offsets: self.offsets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::transactions::{RecordAckView, TopicAcks};

    #[test]
    fn the_answer_is_what_serde_writes() {
        let ack = |partition, offset| RecordAckView {
            partition,
            offset,
            timestamp: 1_700_000_000_000,
        };
        let outcome = TxnOutcome {
            produce: vec![
                TopicAcks {
                    topic: "out \"1\"".into(),
                    results: vec![ack(0, 9), ack(0, 10), ack(2, 99), ack(2, 100)],
                },
                TopicAcks {
                    topic: "b".into(),
                    results: vec![],
                },
            ],
            committed: vec![PartitionOffset {
                topic: "in".into(),
                partition: 1,
                offset: 42,
            }],
        };
        let written: serde_json::Value = serde_json::from_slice(&answer(&outcome)).unwrap();
        assert_eq!(written, serde_json::to_value(&outcome).unwrap());
        let empty = TxnOutcome {
            produce: vec![],
            committed: vec![],
        };
        assert_eq!(answer(&empty), serde_json::to_vec(&empty).unwrap());
    }
}
