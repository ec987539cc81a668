//! `POST /v1/transactions`: produce to any topics and commit a group member's offsets in one
//! atomic write — consume → process → produce exactly once, over plain HTTP.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiResult, Problem};
use super::extract::{parse_json, read_body, require_json};
use super::records::{ProduceRecord, to_input};
use crate::broker::groups::PartitionOffset;
use crate::broker::produce::ProduceRequest;
use crate::broker::{Caller, Durability, Transaction, TxnCommit, TxnOutcome, TxnProduce};
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
#[derive(Debug, Deserialize, ToSchema)]
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
) -> ApiResult<Json<TxnOutcome>> {
    require_json(&headers)?;
    let bytes = read_body(body, s.broker.config().max_request_bytes).await?;
    let req: TransactionBody<'_> = parse_json(&bytes)?;
    let txn = Transaction {
        produce: req
            .produce
            .iter()
            .map(|t| TxnProduce {
                topic: t.topic.clone(),
                request: ProduceRequest {
                    records: t.records.iter().map(to_input).collect(),
                    key_format: t.key_format.unwrap_or_default(),
                    value_format: t.value_format.unwrap_or_default(),
                    durability: None,
                    idempotency: None,
                },
            })
            .collect(),
        commit: req.commit.map(|c| TxnCommit {
            group: c.group,
            member_id: c.member_id,
            generation: c.generation,
            offsets: c.offsets,
        }),
        state: Vec::new(),
        durability: req.durability,
    };
    Ok(Json(s.broker.transact(&caller, txn).await?))
}
