//! Transactions (`weir bench --transactions`, issue #14): consume → transactional produce of
//! 100-byte records as a web service does it — poll a batch as a consumer-group member, then
//! `POST /v1/transactions` with the batch's values for another topic and the member's offsets —
//! next to plain batch produce of the same records in the same run (its ceiling; target ≥ 70 %)
//! and to the at-least-once loop a client of any Kafka HTTP proxy runs (poll, produce, commit).
//!
//! The same pair then runs in-process, through the broker's API (what Connect and Streams use).
//!
//! Rounds alternate the ceiling and the loops: each plain produce round writes the input the
//! loops' rounds after it read; afterwards the output topic's end offsets and the group's
//! committed offsets are checked against the records the loops counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::Method;
use serde_json::{Value, json};

use super::platform::{self, Api, Report};
use super::{BenchArgs, Row, Tally, histogram, post_loop, records_body};
use crate::broker::groups::{
    Consumer, JoinOptions, OffsetReset, PartitionOffset, Polled as Brought, Strategy, Subscription,
};
use crate::broker::produce::{PayloadInput, ProduceRequest, RecordInput, ValueInput};
use crate::broker::{Broker, Caller, FetchResult, Transaction, TxnCommit, TxnProduce};
use crate::error::ErrorCode;
use crate::storage::Format;

const PARTITIONS: u32 = 4;
const MEMBERS: usize = 4;
const BATCH: usize = 1000;
const GROUP: &str = "bench-tx";
/// Members' session timeout: longer than the rounds of the other loops, while they do not poll.
const SESSION: Duration = Duration::from_secs(600);

/// How the benchmark measures, as the report says it.
const METHOD: &str = "Four members of one consumer group each poll up to 1000 records of 100 B and \
write them to another topic with their input offsets committed in the same `POST /v1/transactions`; after the \
run the output topic's end offsets and the group's committed offsets must equal the records counted. Ceiling: \
plain batch produce of the same records (1000 a request, 4 connections), which also writes the input; and the \
same records moved at-least-once by four members of another group, as a client of a Kafka HTTP proxy does \
(poll, produce, commit: three requests a cycle where the transaction takes two). The three alternate in \
`--rounds` rounds (default 3) of `--seconds / --rounds` each (default 30 s in all), so that a machine that \
speeds up or slows down during the run weighs on all of them alike. Latency: one poll + hand-off cycle. Then \
the same two loops alternate in-process, through the broker's API as connectors and stream queries call it (a \
consumer's poll, one transaction per poll; plain produce of the same batches as the ceiling), on a broker of \
their own: what a transaction costs without a web client's JSON around it.";

/// Runs the transactions benchmark on a fresh server in `dir`.
pub(super) async fn run(args: &BenchArgs, dir: &Path) -> anyhow::Result<Report> {
    let secs = platform::phase_seconds(args);
    let rounds = args.rounds.max(1);
    let slice = secs / rounds as f64;
    let server = platform::start(args, dir)?;
    let api = server.api.clone();
    for topic in ["tx-in", "tx-out", "alo-out"] {
        super::create_topic(&api.base, topic, PARTITIONS).await?;
    }
    let mut report = Report::new("Transactions (issue #14)", METHOD);

    // Rounds alternate the ceiling (plain batch produce of the same records, which also fills
    // the input topic) and the two loops, so that a machine that speeds up or slows down during
    // the run weighs on all three alike.
    let (body, _) = records_body(BATCH, 100);
    let url = format!("{}/v1/topics/tx-in/records", api.base);
    let mut plain = Tally::default();
    let mut tx = HttpPhase::join(&api, Handoff::Transaction).await?;
    let mut alo = HttpPhase::join(&api, Handoff::AtLeastOnce).await?;
    for _ in 0..rounds {
        plain.add(post_loop(&url, body.clone(), "application/json", MEMBERS, slice).await);
        let (written, _) = api.topic_end("tx-in").await?;
        tx.run(written, slice).await?;
        alo.run(written, slice).await?;
    }
    let plain = plain.row(
        &format!("  ceiling: plain batch produce, {BATCH} × 100 B, {MEMBERS} connections"),
        BATCH as u64,
        BATCH as u64 * 100,
    );
    let tx = tx.checked_row(&api).await?;
    let alo = alo.checked_row(&api).await?;
    let ratio = platform::pct(tx.records_per_s, plain.records_per_s);
    let eos_vs_alo = platform::pct(tx.records_per_s, alo.records_per_s);
    report.row(
        tx.clone(),
        format!(
            "{}, {eos_vs_alo:.0} % of at-least-once",
            platform::vs(&tx, &plain, "plain produce")
        ),
    );
    report.row(alo, "");
    report.row(plain, "");
    report.note("Checked after the HTTP rounds: the output topic holds the records counted (at-least-once: at least them) and the group committed offsets for exactly them.");
    server.stop().await?;
    platform::quiet_disk(dir);

    let (tx, plain) = in_process(&dir.with_extension("in-process"), secs, rounds).await?;
    let in_ratio = platform::pct(tx.records_per_s, plain.records_per_s);
    report.row(tx.clone(), platform::vs(&tx, &plain, "plain produce"));
    report.row(plain, "");
    report.target_pct(
        "in-process: consume → transaction ≥ 70 % of plain batch produce",
        in_ratio,
        70.0,
    );
    report.target_pct(
        "over HTTP: consume → `POST /v1/transactions` ≥ 70 % of plain batch produce",
        ratio,
        70.0,
    );
    report.target_pct(
        "over HTTP: consume → `POST /v1/transactions` ≥ 70 % of the at-least-once loop",
        eos_vs_alo,
        70.0,
    );
    platform::quiet_disk(&dir.with_extension("in-process"));
    Ok(report)
}

/// How a member of the HTTP phases hands on what it polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handoff {
    /// One `POST /v1/transactions` with the records and the offsets: exactly once.
    Transaction,
    /// `POST /v1/topics/{out}/records`, then `POST …/offsets`: at-least-once, as a client of any
    /// Kafka HTTP proxy moves records (a crash between the two writes the records again).
    AtLeastOnce,
}

impl Handoff {
    /// The phase's group.
    fn group(self) -> &'static str {
        match self {
            Self::Transaction => GROUP,
            Self::AtLeastOnce => "bench-alo",
        }
    }

    /// The phase's output topic.
    fn output(self) -> &'static str {
        match self {
            Self::Transaction => "tx-out",
            Self::AtLeastOnce => "alo-out",
        }
    }
}

/// The members of one HTTP loop (a fresh group), kept across rounds, and what they moved.
struct HttpPhase {
    handoff: Handoff,
    members: Vec<Member>,
    moved: Arc<AtomicU64>,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl HttpPhase {
    /// `MEMBERS` members join the handoff's group, reading `tx-in` from its start. Their
    /// sessions outlast the other loops' rounds, during which they do not poll.
    async fn join(api: &Api, handoff: Handoff) -> anyhow::Result<Self> {
        let mut members = Vec::new();
        for _ in 0..MEMBERS {
            let join = json!({"topics": ["tx-in"], "auto_offset_reset": "earliest", "assignment_strategy": "range",
                              "session_timeout_ms": SESSION.as_millis() as u64});
            let path = format!("/v1/groups/{}/members", handoff.group());
            let v = api.ok(Method::POST, &path, Some(&join)).await?;
            let id = v["member_id"].as_str().unwrap_or_default().to_owned();
            members.push(Member {
                api: api.clone(),
                id,
                handoff,
                generation: 0,
            });
        }
        Ok(Self {
            handoff,
            members,
            moved: Arc::new(AtomicU64::new(0)),
            elapsed: Duration::ZERO,
            latency: histogram(),
        })
    }

    /// One round: the members move records from `tx-in` to the handoff's output for `seconds`
    /// (or until all `available` records are moved).
    async fn run(&mut self, available: u64, seconds: f64) -> anyhow::Result<()> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(seconds);
        let tasks: Vec<_> = self
            .members
            .drain(..)
            .map(|member| {
                let moved = self.moved.clone();
                tokio::spawn(async move { member.run(&moved, available, deadline).await })
            })
            .collect();
        for t in tasks {
            let (member, latency) = t.await??;
            self.members.push(member);
            self.latency
                .add(latency)
                .map_err(|e| anyhow::anyhow!("merge histograms: {e:?}"))?;
        }
        self.elapsed += started.elapsed();
        Ok(())
    }

    /// The phase's row, once the output and the committed offsets are checked against the
    /// records the members counted.
    async fn checked_row(&self, api: &Api) -> anyhow::Result<Row> {
        let handoff = self.handoff;
        let moved = self.moved.load(Ordering::Relaxed);
        let (out, _) = api.topic_end(handoff.output()).await?;
        let group = api
            .ok(Method::GET, &format!("/v1/groups/{}", handoff.group()), None)
            .await?;
        let committed = committed_total(&group);
        // At-least-once may write a batch twice (a commit refused by a rebalance), never lose one.
        let exact = match handoff {
            Handoff::Transaction => out == moved,
            Handoff::AtLeastOnce => out >= moved,
        };
        anyhow::ensure!(
            exact && committed == moved,
            "{handoff:?}: the phase counted {moved} records moved, but {} holds {out} and the group committed {committed}",
            handoff.output()
        );
        let name = match handoff {
            Handoff::Transaction => format!("consume → transactional produce, {BATCH} × 100 B, {MEMBERS} members"),
            Handoff::AtLeastOnce => format!("  at-least-once: consume → produce → commit, {MEMBERS} members"),
        };
        Ok(Row::new(&name, moved, moved * 100, self.elapsed, &self.latency))
    }
}

/// A poll's answer, as far as the loop needs it: borrowed from the answer's bytes, values
/// kept as their JSON text (a lean client, as the plain produce ceiling's is).
#[derive(serde::Deserialize)]
struct Poll<'a> {
    generation: Option<u64>,
    #[serde(default, borrow)]
    records: Vec<Polled<'a>>,
}

#[derive(serde::Deserialize)]
struct Polled<'a> {
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
    partition: u64,
    offset: u64,
    #[serde(borrow)]
    value: &'a serde_json::value::RawValue,
}

/// A member of an HTTP phase.
struct Member {
    api: Api,
    id: String,
    handoff: Handoff,
    /// The group generation it last heard of.
    generation: u64,
}

/// A request's status and answer.
type Answer = (u16, bytes::Bytes);

impl Member {
    /// The member's loop until `deadline`: poll, then hand the values on; returns the member
    /// and the cycles' latencies.
    async fn run(
        mut self,
        moved: &AtomicU64,
        available: u64,
        deadline: Instant,
    ) -> anyhow::Result<(Self, Histogram<u64>)> {
        let mut latency = histogram();
        let mut generation = self.generation;
        let poll = format!(
            "{}/v1/groups/{}/members/{}/records?max_records={BATCH}&wait_ms=100",
            self.api.base,
            self.handoff.group(),
            self.id
        );
        while Instant::now() < deadline && moved.load(Ordering::Relaxed) < available {
            let t = Instant::now();
            let r = self.api.client.get(&poll).send().await?;
            let status = r.status().as_u16();
            let bytes = r.bytes().await?;
            if status == 409 {
                generation = generation_in(&bytes).unwrap_or(generation);
                continue;
            }
            anyhow::ensure!(status == 200, "poll: {status} {}", String::from_utf8_lossy(&bytes));
            let polled: Poll = serde_json::from_slice(&bytes)?;
            generation = polled.generation.unwrap_or(generation);
            if polled.records.is_empty() {
                continue;
            }
            let (status, answer) = self.hand_on(&polled, generation).await?;
            match status {
                200 => {
                    moved.fetch_add(polled.records.len() as u64, Ordering::Relaxed);
                    latency.saturating_record(t.elapsed().as_micros() as u64);
                }
                // A rebalance before the offsets were committed: the partitions' new owners read
                // those records again from the committed offsets.
                409 => generation = generation_in(&answer).unwrap_or(generation),
                _ => anyhow::bail!("{:?}: {status} {}", self.handoff, String::from_utf8_lossy(&answer)),
            }
        }
        self.generation = generation;
        Ok((self, latency))
    }

    /// Hands a poll's records on: the answer of the transaction, or of the commit after the
    /// produce.
    async fn hand_on(&self, polled: &Poll<'_>, generation: u64) -> anyhow::Result<Answer> {
        match self.handoff {
            Handoff::Transaction => {
                let url = format!("{}/v1/transactions", self.api.base);
                self.post(&url, transaction(polled, &self.id, generation)).await
            }
            Handoff::AtLeastOnce => {
                let out = format!("{}/v1/topics/{}/records", self.api.base, self.handoff.output());
                let mut body = b"{\"records\":".to_vec();
                body.extend_from_slice(&values(polled).0);
                body.push(b'}');
                let (status, answer) = self.post(&out, body).await?;
                anyhow::ensure!(status == 200, "produce: {status} {}", String::from_utf8_lossy(&answer));
                // An empty commit commits everything the member was returned so far.
                let commit = format!(
                    "{}/v1/groups/{}/members/{}/offsets",
                    self.api.base,
                    self.handoff.group(),
                    self.id
                );
                self.post(&commit, Vec::new()).await
            }
        }
    }

    async fn post(&self, url: &str, body: Vec<u8>) -> anyhow::Result<Answer> {
        let r = self
            .api
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.bytes().await?))
    }
}

/// The `generation` of a `409` answer, if it says.
fn generation_in(answer: &[u8]) -> Option<u64> {
    let v: Value = serde_json::from_slice(answer).ok()?;
    v["generation"].as_u64()
}

/// A poll's values as a JSON array of `{"value": …}` records, and for each partition read the
/// offset after its last record.
fn values<'a>(poll: &'a Poll<'_>) -> (Vec<u8>, BTreeMap<(&'a str, u64), u64>) {
    let mut next: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    let mut records = Vec::with_capacity(poll.records.len() * 120);
    records.push(b'[');
    for (i, r) in poll.records.iter().enumerate() {
        let e = next.entry((r.topic.as_ref(), r.partition)).or_insert(0);
        *e = (*e).max(r.offset + 1);
        if i > 0 {
            records.push(b',');
        }
        records.extend_from_slice(b"{\"value\":");
        records.extend_from_slice(r.value.get().as_bytes());
        records.push(b'}');
    }
    records.push(b']');
    (records, next)
}

/// The transaction for a poll's answer: its records' values to `tx-out` and, for each
/// partition read, the offset after its last record.
fn transaction(poll: &Poll<'_>, member: &str, generation: u64) -> Vec<u8> {
    let (records, next) = values(poll);
    let offsets: Vec<Value> = next
        .into_iter()
        .map(|((topic, partition), offset)| json!({"topic": topic, "partition": partition, "offset": offset}))
        .collect();
    let commit = json!({"group": GROUP, "member_id": member, "generation": generation, "offsets": offsets});
    let mut body = b"{\"produce\":[{\"topic\":\"tx-out\",\"records\":".to_vec();
    body.extend_from_slice(&records);
    body.extend_from_slice(b"}],\"commit\":");
    body.extend_from_slice(commit.to_string().as_bytes());
    body.push(b'}');
    body
}

/// The same two loops through the broker's API, as connectors and stream queries call it: no
/// HTTP and no JSON text around the records, so the figure is what a transaction itself costs.
/// In each of `rounds` rounds, `MEMBERS` tasks produce the same batches for `secs / rounds`
/// (the ceiling, which fills the input), then `MEMBERS` consumers of one group move them to
/// another topic for as long, each poll of up to `BATCH` records one transaction with its
/// offsets. Returns the transactional row and its ceiling, after checking the output and the
/// committed offsets against the records counted.
async fn in_process(dir: &Path, secs: f64, rounds: usize) -> anyhow::Result<(Row, Row)> {
    let broker = crate::testing::broker_in(dir).await;
    let caller = Caller::internal();
    for topic in ["tx-in", "tx-out"] {
        broker
            .create_topic(&caller, topic, Some(PARTITIONS), &BTreeMap::new())
            .await?;
    }
    let value = format!("\"{}\"", "x".repeat(98));
    let slice = Duration::from_secs_f64(secs / rounds as f64);
    // Summed over the rounds, one "request" a record.
    let (mut plain, mut tx) = (Tally::default(), Tally::default());
    let mut loops = Vec::new();
    for _ in 0..MEMBERS {
        let member = Consumer::join(&broker, caller.clone(), GROUP, join_options()).await?;
        loops.push(TxLoop { member, ready: None });
    }
    let moved = Arc::new(AtomicU64::new(0));
    for _ in 0..rounds {
        let (started, deadline) = (Instant::now(), Instant::now() + slice);
        let produced = run_tasks((0..MEMBERS).map(|_| produce_loop(broker.clone(), value.clone(), deadline))).await?;
        plain.add((produced.0, started.elapsed(), produced.1));
        let available = end_total(&broker, "tx-in")?;
        let (started, deadline) = (Instant::now(), Instant::now() + slice);
        let tasks: Vec<_> = loops
            .drain(..)
            .map(|l| tokio::spawn(l.run(broker.clone(), moved.clone(), available, deadline)))
            .collect();
        let mut round = (0, histogram());
        for t in tasks {
            let (l, n, latency) = t.await??;
            loops.push(l);
            round.0 += n;
            round
                .1
                .add(latency)
                .map_err(|e| anyhow::anyhow!("merge histograms: {e:?}"))?;
        }
        tx.add((round.0, started.elapsed(), round.1));
    }
    let plain = plain.row(
        &format!("  ceiling: plain batch produce, in-process, {BATCH} × 100 B, {MEMBERS} tasks"),
        1,
        100,
    );
    let n = tx.requests;
    let tx = tx.row(
        &format!("consume → transaction, in-process, {BATCH} × 100 B, {MEMBERS} consumers"),
        1,
        100,
    );
    let out = end_total(&broker, "tx-out")?;
    let committed = committed_total(&serde_json::to_value(broker.describe_group(&caller, GROUP)?)?);
    anyhow::ensure!(
        out == n && committed == n,
        "in-process: {n} records moved, but tx-out holds {out} and the group committed {committed}"
    );
    drop(loops);
    broker.close().await;
    Ok((tx, plain))
}

/// Runs loops as tasks; sums the records they count and merges their latencies.
async fn run_tasks<F>(loops: impl Iterator<Item = F>) -> anyhow::Result<(u64, Histogram<u64>)>
where
    F: std::future::Future<Output = anyhow::Result<(u64, Histogram<u64>)>> + Send + 'static,
{
    let tasks: Vec<_> = loops.map(tokio::spawn).collect();
    let (mut n, mut latency) = (0, histogram());
    for t in tasks {
        let (count, lat) = t.await??;
        n += count;
        latency
            .add(lat)
            .map_err(|e| anyhow::anyhow!("merge histograms: {e:?}"))?;
    }
    Ok((n, latency))
}

/// A group member that reads `tx-in` from the start and commits only in transactions.
fn join_options() -> JoinOptions {
    JoinOptions {
        subscription: Subscription::Topics(["tx-in".to_owned()].into()),
        session_timeout: SESSION,
        auto_offset_reset: OffsetReset::Earliest,
        strategy: Strategy::Range,
        auto_commit: false,
        streaming: false,
        resume: Default::default(),
    }
}

/// Produces batches of `BATCH` copies of `value` to `tx-in` until `deadline`.
async fn produce_loop(broker: Broker, value: String, deadline: Instant) -> anyhow::Result<(u64, Histogram<u64>)> {
    let (caller, mut latency, mut n) = (Caller::internal(), histogram(), 0);
    while Instant::now() < deadline {
        let t = Instant::now();
        let records = (0..BATCH).map(|_| record(&value)).collect();
        match broker.produce(&caller, "tx-in", request(records)).await {
            Ok(_) => {
                n += BATCH as u64;
                latency.saturating_record(t.elapsed().as_micros() as u64);
            }
            Err(e) => tokio::time::sleep(backpressure(e)?).await,
        }
    }
    Ok((n, latency))
}

/// A consumer of the in-process loop, kept across rounds with the batch it polled ahead.
struct TxLoop {
    member: Consumer,
    ready: Option<Vec<FetchResult>>,
}

impl TxLoop {
    /// Moves what the member polls to `tx-out`, one transaction per poll, until `deadline` or
    /// until `available` records are moved; returns itself, the records it moved and the
    /// cycles' latencies. The next batch is polled while a transaction is written (as
    /// Connect's sinks overlap their work) and kept for the next round when the round ends; a
    /// transaction refused by backpressure is tried again as it is, and one fenced by a
    /// rebalance makes the member join again, so that what it had polled past is read again
    /// from the committed offsets.
    async fn run(
        mut self,
        broker: Broker,
        moved: Arc<AtomicU64>,
        available: u64,
        deadline: Instant,
    ) -> anyhow::Result<(Self, u64, Histogram<u64>)> {
        let (mut latency, mut n) = (histogram(), 0);
        while Instant::now() < deadline && moved.load(Ordering::Relaxed) < available {
            let t = Instant::now();
            let fetched = match self.ready.take() {
                Some(f) => f,
                None => match self.member.poll(BATCH, 8 << 20, Duration::from_millis(100)).await? {
                    Brought::Records(f) => f,
                    Brought::Rebalanced => continue,
                },
            };
            let count: u64 = fetched.iter().map(|f| f.count as u64).sum();
            if count == 0 {
                continue;
            }
            let (id, generation) = (self.member.member_id().to_owned(), self.member.view().generation);
            let (written, next) = tokio::join!(
                write_retrying(&broker, || polled_transaction(&id, generation, &fetched)),
                self.member.poll(BATCH, 8 << 20, Duration::from_millis(100))
            );
            if !written? {
                drop(next);
                self.member = Consumer::join(&broker, Caller::internal(), GROUP, join_options()).await?;
                continue;
            }
            n += count;
            moved.fetch_add(count, Ordering::Relaxed);
            latency.saturating_record(t.elapsed().as_micros() as u64);
            if let Brought::Records(f) = next? {
                self.ready = Some(f);
            }
        }
        Ok((self, n, latency))
    }
}

/// Writes the transaction `txn` makes (again after each refusal of backpressure, which it
/// waits out): true once written, false when a rebalance fenced it (nothing was written).
async fn write_retrying<'a>(
    broker: &Broker,
    txn: impl Fn() -> anyhow::Result<Transaction<'a>>,
) -> anyhow::Result<bool> {
    let caller = Caller::internal();
    loop {
        match broker.transact(&caller, txn()?).await {
            Ok(_) => return Ok(true),
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration | ErrorCode::PartitionNotOwned
                ) =>
            {
                return Ok(false);
            }
            Err(e) => tokio::time::sleep(backpressure(e)?).await,
        }
    }
}

/// The transaction of a poll: its values to `tx-out` and the offset after each partition read.
fn polled_transaction<'a>(
    member_id: &str,
    generation: u64,
    fetched: &'a [FetchResult],
) -> anyhow::Result<Transaction<'a>> {
    let mut records = Vec::with_capacity(BATCH);
    let mut offsets = Vec::new();
    for f in fetched.iter().filter(|f| f.count > 0) {
        for (_, r) in f.records() {
            let value = r.value.map_or(&[][..], |v| v.bytes);
            records.push(record(std::str::from_utf8(value)?));
        }
        offsets.push(PartitionOffset {
            topic: f.topic.clone(),
            partition: f.partition,
            offset: f.next_offset,
        });
    }
    Ok(Transaction {
        produce: vec![TxnProduce {
            topic: "tx-out".to_owned(),
            request: request(records),
        }],
        commit: Some(TxnCommit {
            group: GROUP.to_owned(),
            member_id: member_id.to_owned(),
            generation,
            offsets,
        }),
        state: Vec::new(),
        durability: None,
    })
}

/// How long a refusal of backpressure asks to wait (as the HTTP clients wait out a `503`); any
/// other error ends the run.
fn backpressure(e: crate::error::Error) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        matches!(e.code, ErrorCode::Overloaded | ErrorCode::QuotaExceeded),
        "{}: {}",
        e.code,
        e.detail
    );
    let asked = e.extensions.as_ref().and_then(|x| x.get("retry_after_ms"));
    Ok(Duration::from_millis(asked.and_then(Value::as_u64).unwrap_or(200)))
}

/// A record of a JSON value without key or headers.
fn record(value: &str) -> RecordInput<'_> {
    RecordInput {
        key: None,
        value: ValueInput::Given(PayloadInput::JsonLine(value)),
        headers: Vec::new(),
        partition: None,
        timestamp: None,
    }
}

/// A produce request of JSON values.
fn request(records: Vec<RecordInput<'_>>) -> ProduceRequest<'_> {
    ProduceRequest {
        records,
        key_format: Format::Json,
        value_format: Format::Json,
        durability: None,
        idempotency: None,
    }
}

/// The records a topic holds: the sum of its partitions' next offsets.
fn end_total(broker: &Broker, topic: &str) -> anyhow::Result<u64> {
    let info = broker.describe_topic(&Caller::internal(), topic)?;
    Ok(info.partitions.iter().map(|(_, s)| s.next_offset).sum())
}

/// The records committed by a group, from its description: the sum of its committed offsets.
fn committed_total(group: &Value) -> u64 {
    group["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["committed_offset"].as_u64())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_becomes_one_transaction_committing_the_offset_after_each_partition() {
        let poll = json!({"generation": 3, "records": [
            {"topic": "tx-in", "partition": 0, "offset": 7, "value": "a"},
            {"topic": "tx-in", "partition": 1, "offset": 2, "value": "b"},
            {"topic": "tx-in", "partition": 0, "offset": 8, "value": {"c": 1}},
        ]});
        let text = poll.to_string();
        let poll: Poll = serde_json::from_str(&text).unwrap();
        let body: Value = serde_json::from_slice(&transaction(&poll, "m-1", 3)).unwrap();
        assert_eq!(body["produce"][0]["topic"], "tx-out");
        assert_eq!(body["produce"][0]["records"][2]["value"], json!({"c": 1}));
        assert_eq!(body["commit"]["generation"], 3);
        assert_eq!(body["commit"]["member_id"], "m-1");
        assert_eq!(
            body["commit"]["offsets"],
            json!([{"topic": "tx-in", "partition": 0, "offset": 9}, {"topic": "tx-in", "partition": 1, "offset": 3}])
        );
        let (records, _) = values(&poll);
        let records: Value = serde_json::from_slice(&records).unwrap();
        assert_eq!(records, json!([{"value": "a"}, {"value": "b"}, {"value": {"c": 1}}]));
    }

    #[test]
    fn sums_the_committed_offsets_of_a_group_description() {
        let g = json!({"partitions": [{"committed_offset": 40, "end_offset": 42}, {"committed_offset": 2},
            {"end_offset": 9}]});
        assert_eq!(committed_total(&g), 42);
    }
}
