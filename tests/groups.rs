//! Consumer groups: sharing partitions through joins, leaves and lease expiry under load; commits
//! across restarts; offset resets, seeks and lag; SSE group streams; pattern subscriptions;
//! assignment strategies; and every bad input's error code.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Events, Server, client, expect_problem};
use serde_json::{Value, json};

/// A topic-partition.
type Tp = (String, u64);

/// Requests on one group of one server.
#[derive(Clone)]
struct Group {
    base: String,
    name: String,
}

impl Group {
    fn new(s: &Server, name: &str) -> Self {
        Self {
            base: s.base.clone(),
            name: name.to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/groups/{}{}", self.base, self.name, path)
    }

    fn member_url(&self, member: &str, path: &str) -> String {
        self.url(&format!("/members/{member}{path}"))
    }

    async fn join(&self, body: Value) -> reqwest::Response {
        client().post(self.url("/members")).json(&body).send().await.unwrap()
    }

    /// Joins, asserting 201, and returns `{member_id, generation, assignment, pending}`.
    async fn join_ok(&self, body: Value) -> Value {
        let v = body_of(self.join(body).await, 201).await;
        assert!(v["member_id"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v["generation"].is_u64(), "{v}");
        assert!(v["assignment"].is_array() && v["pending"].is_array(), "{v}");
        v
    }

    async fn heartbeat(&self, member: &str) -> reqwest::Response {
        client()
            .post(self.member_url(member, "/heartbeat"))
            .send()
            .await
            .unwrap()
    }

    async fn poll(&self, member: &str, query: &str) -> reqwest::Response {
        client()
            .get(self.member_url(member, &format!("/records?{query}")))
            .send()
            .await
            .unwrap()
    }

    /// Commits explicit offsets, or (with `None`, an empty body) the member's current positions.
    async fn commit(&self, member: &str, body: Option<Value>) -> reqwest::Response {
        let req = client().post(self.member_url(member, "/offsets"));
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        req.send().await.unwrap()
    }

    async fn seek(&self, member: &str, body: Value) -> reqwest::Response {
        client()
            .post(self.member_url(member, "/positions:seek"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn leave(&self, member: &str) -> reqwest::Response {
        client().delete(self.member_url(member, "")).send().await.unwrap()
    }

    /// `GET /v1/groups/{group}`, asserting 200.
    async fn describe(&self) -> Value {
        body_of(client().get(self.url("")).send().await.unwrap(), 200).await
    }

    async fn reset(&self, body: Value) -> reqwest::Response {
        client()
            .post(self.url("/offsets:reset"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn delete(&self) -> reqwest::Response {
        client().delete(self.url("")).send().await.unwrap()
    }
}

/// Asserts the status and returns the JSON body (`Null` when empty).
async fn body_of(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let url = r.url().to_string();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{url} answered: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// Asserts a 409 `rebalance_in_progress` with `Retry-After` and the new membership state.
async fn expect_rebalance(r: reqwest::Response) -> Value {
    assert!(
        r.headers().contains_key("retry-after"),
        "409 without Retry-After: {:?}",
        r.headers()
    );
    let p = expect_problem(r, 409, "rebalance_in_progress").await;
    assert!(p["generation"].is_u64(), "{p}");
    assert!(p["assignment"].is_array() && p["pending"].is_array(), "{p}");
    p
}

/// Produces a JSON batch (asserting 200 and no failures).
async fn produce(base: &str, topic: &str, body: Value) -> Value {
    let r = client()
        .post(format!("{base}/v1/topics/{topic}/records"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let v = body_of(r, 200).await;
    assert_eq!(v["failed"], 0, "{v}");
    v
}

fn tp(v: &Value) -> Tp {
    (
        v["topic"].as_str().expect("topic").to_owned(),
        v["partition"].as_u64().expect("partition"),
    )
}

/// The set of `{topic, partition}` objects in an array.
fn tps(v: &Value) -> BTreeSet<Tp> {
    v.as_array().expect("array").iter().map(tp).collect()
}

fn tp_set(topic: &str, partitions: impl IntoIterator<Item = u64>) -> BTreeSet<Tp> {
    partitions.into_iter().map(|p| (topic.to_owned(), p)).collect()
}

/// `[{topic, partition, offset}]` as a map.
fn offsets(v: &Value) -> BTreeMap<Tp, u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|o| (tp(o), o["offset"].as_u64().expect("offset")))
        .collect()
}

/// A reset answer's `offsets` as topic-partition → (offset, previous_offset).
fn reset_offsets(v: &Value) -> BTreeMap<Tp, (u64, Option<u64>)> {
    v["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| {
            assert!(o.get("previous_offset").is_some(), "no previous_offset in {o}");
            (
                tp(o),
                (o["offset"].as_u64().expect("offset"), o["previous_offset"].as_u64()),
            )
        })
        .collect()
}

/// A group description's partitions as topic-partition → (committed_offset, end_offset, lag).
fn lags(d: &Value) -> BTreeMap<Tp, (Option<u64>, u64, u64)> {
    d["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            assert!(p.get("committed_offset").is_some(), "no committed_offset in {p}");
            (
                tp(p),
                (
                    p["committed_offset"].as_u64(),
                    p["end_offset"].as_u64().expect("end_offset"),
                    p["lag"].as_u64().expect("lag"),
                ),
            )
        })
        .collect()
}

/// Member ids in a group description, sorted.
fn member_ids(d: &Value) -> Vec<String> {
    let mut ids: Vec<String> = d["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["member_id"].as_str().expect("member_id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Heartbeats every member until all answer 200 with the same generation and nothing pending;
/// returns their answers in the order of `members`.
async fn settle(g: &Group, members: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut states = Vec::new();
        for m in members {
            let r = g.heartbeat(m).await;
            if r.status() == 409 {
                expect_rebalance(r).await;
            } else {
                states.push(body_of(r, 200).await);
            }
        }
        if states.len() == members.len()
            && states
                .iter()
                .all(|v| v["generation"] == states[0]["generation"] && v["pending"] == json!([]))
        {
            return states;
        }
        assert!(Instant::now() < deadline, "group did not settle: {states:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that the sets are disjoint and together are exactly `all`.
fn assert_partitioned(sets: &[BTreeSet<Tp>], all: &BTreeSet<Tp>) {
    let mut union = BTreeSet::new();
    for s in sets {
        for t in s {
            assert!(union.insert(t.clone()), "{t:?} assigned twice: {sets:?}");
        }
    }
    assert_eq!(&union, all, "not every partition is assigned: {sets:?}");
}

/// Polls (riding through rebalances) and accumulates records until `done` holds; bounded.
async fn poll_until(g: &Group, member: &str, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    while !done(&got) {
        assert!(
            Instant::now() < deadline,
            "condition not reached; records so far: {got:?}"
        );
        let r = g.poll(member, "wait_ms=300").await;
        if r.status() == 409 {
            expect_rebalance(r).await;
            continue;
        }
        let v = body_of(r, 200).await;
        got.extend(v["records"].as_array().expect("records").iter().cloned());
    }
    got
}

/// One poll (asserting 200) and its records.
async fn poll_once(g: &Group, member: &str, query: &str) -> Vec<Value> {
    let v = body_of(g.poll(member, query).await, 200).await;
    v["records"].as_array().expect("records").clone()
}

// ---------------------------------------------------------------------------------------------
// a. Three members, six partitions, a join/leave/expiry storm under live produce.
// ---------------------------------------------------------------------------------------------

/// What a consuming member observed.
#[derive(Debug, Clone)]
enum Seen {
    /// A record handed out by a 200 poll in `generation`.
    Delivered {
        generation: u64,
        partition: u64,
        offset: u64,
        seq: u64,
    },
    /// The member's assignment as told by a poll (200 or 409).
    Assigned(BTreeSet<u64>),
    /// An empty-body commit was refused (a rebalance raced it); uncommitted records may be redelivered.
    CommitFailed,
}

#[derive(Debug, Clone)]
struct Entry {
    at: Instant,
    member: &'static str,
    seen: Seen,
}

type Log = Arc<Mutex<Vec<Entry>>>;

/// One consuming member: poll → log → commit, until told to stop.
struct Consumer {
    group: Group,
    name: &'static str,
    id: String,
    topic: &'static str,
    log: Log,
    stop: Arc<AtomicBool>,
    /// Leave with DELETE when stopped (else just go silent and let the lease lapse).
    leave_on_stop: bool,
}

/// The partitions of `topic` in an array of `{topic, partition}`.
fn partitions_of(v: &Value, topic: &str) -> BTreeSet<u64> {
    tps(v).into_iter().filter(|(t, _)| t == topic).map(|(_, p)| p).collect()
}

async fn consume(c: Consumer) {
    let push = |at: Instant, seen: Seen| {
        c.log.lock().unwrap().push(Entry {
            at,
            member: c.name,
            seen,
        })
    };
    while !c.stop.load(Ordering::SeqCst) {
        let r = c.group.poll(&c.id, "max_records=50&wait_ms=200").await;
        if r.status() == 409 {
            let p = expect_rebalance(r).await;
            push(Instant::now(), Seen::Assigned(partitions_of(&p["assignment"], c.topic)));
            continue;
        }
        let v = body_of(r, 200).await;
        let at = Instant::now();
        let generation = v["generation"].as_u64().expect("generation");
        let assigned = partitions_of(&v["assignment"], c.topic);
        let pending = partitions_of(&v["pending"], c.topic);
        assert!(
            pending.is_subset(&assigned),
            "{}: pending not within assignment: {v}",
            c.name
        );
        push(at, Seen::Assigned(assigned.clone()));
        for rec in v["records"].as_array().expect("records") {
            assert_eq!(rec["topic"], c.topic, "{rec}");
            let partition = rec["partition"].as_u64().expect("partition");
            assert!(
                assigned.contains(&partition) && !pending.contains(&partition),
                "{} was served partition {partition}, which it does not own (yet): {v}",
                c.name
            );
            push(
                at,
                Seen::Delivered {
                    generation,
                    partition,
                    offset: rec["offset"].as_u64().expect("offset"),
                    seq: rec["value"]["seq"].as_u64().expect("seq"),
                },
            );
        }
        let r = c.group.commit(&c.id, None).await;
        match r.status().as_u16() {
            200 => {
                let v = body_of(r, 200).await;
                for (t, p) in offsets(&v["committed"]).keys() {
                    assert_eq!(t, c.topic);
                    assert!(assigned.contains(p), "{} committed unowned partition {p}: {v}", c.name);
                }
            }
            409 => {
                let p: Value = r.json().await.unwrap();
                assert!(
                    ["rebalance_in_progress", "illegal_generation", "partition_not_owned"]
                        .contains(&p["code"].as_str().unwrap_or_default()),
                    "{p}"
                );
                push(Instant::now(), Seen::CommitFailed);
            }
            s => panic!("{}: commit answered {s}: {}", c.name, r.text().await.unwrap()),
        }
    }
    if c.leave_on_stop {
        body_of(c.group.leave(&c.id).await, 204).await;
    }
}

/// Produces records `seq` in `range` to `topic` (partition = seq % 6), 20 per batch, recording
/// (partition, offset) → seq.
async fn produce_seq(base: &str, topic: &str, range: Range<u64>, produced: &Mutex<BTreeMap<(u64, u64), u64>>) {
    let end = range.end;
    for start in range.step_by(20) {
        let seqs: Vec<u64> = (start..(start + 20).min(end)).collect();
        let records: Vec<Value> = seqs
            .iter()
            .map(|n| json!({"key": format!("k{n}"), "value": {"seq": n}, "partition": n % 6}))
            .collect();
        let v = produce(base, topic, json!({"records": records})).await;
        let results = v["results"].as_array().expect("results");
        assert_eq!(results.len(), seqs.len());
        {
            let mut p = produced.lock().unwrap();
            for (n, r) in seqs.iter().zip(results) {
                assert_eq!(r["partition"], n % 6);
                p.insert((r["partition"].as_u64().unwrap(), r["offset"].as_u64().unwrap()), *n);
            }
        }
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
}

/// Waits until `cond` holds (bounded), failing early if one of `alive` has ended.
async fn wait_for(what: &str, secs: u64, alive: &[&tokio::task::JoinHandle<()>], mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            alive.iter().all(|h| !h.is_finished()),
            "a background task ended (panicked?) while waiting for {what}"
        );
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Proves, with a live producer and three members of which one leaves and one goes silent:
/// every record is delivered; a member sees a partition's offsets in increasing order while it
/// keeps owning it; a (generation, partition) is never served to two members; and ownership of a
/// partition only moves forward in generations (no stale owner ever delivers again after a new one
/// did). Also the generation arithmetic, the final commits and lag, and that gone members are
/// unknown.
#[tokio::test]
async fn three_members_share_six_partitions_through_join_leave_and_expiry() {
    const TOPIC: &str = "clicks";
    let s = Server::start();
    s.create_topic(TOPIC, 6, json!({})).await;
    let g = Group::new(&s, "workers");
    let all = tp_set(TOPIC, 0..6);
    let join = |session_timeout_ms: u64| json!({"topics": [TOPIC], "auto_offset_reset": "earliest", "session_timeout_ms": session_timeout_ms});

    let a = g.join_ok(join(30_000)).await;
    let g0 = a["generation"].as_u64().unwrap();
    assert_eq!(tps(&a["assignment"]), all, "a lone member owns everything");
    assert_eq!(a["pending"], json!([]));
    let b = g.join_ok(join(30_000)).await;
    assert_eq!(b["generation"], g0 + 1);
    assert!(tps(&b["pending"]).is_subset(&tps(&b["assignment"])), "{b}");
    let c = g.join_ok(join(1_500)).await;
    assert_eq!(c["generation"], g0 + 2);
    let ids: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|m| m["member_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        3,
        "member ids must differ: {ids:?}"
    );

    let log: Log = Arc::default();
    let stops: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::default()).collect();
    let names = ["A", "B", "C"];
    let mut handles: Vec<tokio::task::JoinHandle<()>> = (0..3)
        .map(|i| {
            tokio::spawn(consume(Consumer {
                group: g.clone(),
                name: names[i],
                id: ids[i].clone(),
                topic: TOPIC,
                log: log.clone(),
                stop: stops[i].clone(),
                leave_on_stop: i == 1,
            }))
        })
        .collect();

    // Producer: 300 records, then (after B left and C went silent) 300 more.
    let produced: Arc<Mutex<BTreeMap<(u64, u64), u64>>> = Arc::default();
    let phase1 = Arc::new(AtomicBool::new(false));
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let producer = {
        let (base, produced, phase1) = (s.base.clone(), produced.clone(), phase1.clone());
        tokio::spawn(async move {
            produce_seq(&base, TOPIC, 0..300, &produced).await;
            phase1.store(true, Ordering::SeqCst);
            go_rx.await.expect("go signal");
            produce_seq(&base, TOPIC, 300..600, &produced).await;
        })
    };

    let has_delivered = |m: &str| {
        log.lock()
            .unwrap()
            .iter()
            .any(|e| e.member == m && matches!(e.seen, Seen::Delivered { .. }))
    };
    wait_for(
        "the first half to be produced and every member to consume something",
        30,
        &[&handles[0], &handles[1], &handles[2], &producer],
        || phase1.load(Ordering::SeqCst) && names.iter().all(|m| has_delivered(m)),
    )
    .await;

    // Midway: B leaves, C simply stops calling (its 1.5 s lease lapses).
    stops[1].store(true, Ordering::SeqCst);
    stops[2].store(true, Ordering::SeqCst);
    let hc = handles.pop().unwrap();
    let hb = handles.pop().unwrap();
    let ha = handles.pop().unwrap();
    hb.await.unwrap();
    hc.await.unwrap();
    go_tx.send(()).unwrap();

    let delivered_all = || {
        let delivered: BTreeSet<(u64, u64)> = log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e.seen {
                Seen::Delivered { partition, offset, .. } => Some((partition, offset)),
                _ => None,
            })
            .collect();
        let produced = produced.lock().unwrap();
        produced.len() == 600 && produced.keys().all(|k| delivered.contains(k))
    };
    wait_for("every record to be delivered", 90, &[&ha], || {
        if producer.is_finished() {
            assert_eq!(produced.lock().unwrap().len(), 600, "the producer failed");
        }
        delivered_all()
    })
    .await;
    stops[0].store(true, Ordering::SeqCst);
    ha.await.unwrap();
    producer.await.unwrap();

    // A alone owns all six partitions, two rebalances after the last join (B's leave, C's expiry).
    let hb_a = body_of(g.heartbeat(&ids[0]).await, 200).await;
    assert_eq!(hb_a["generation"], g0 + 4, "{hb_a}");
    assert_eq!(tps(&hb_a["assignment"]), all);
    assert_eq!(hb_a["pending"], json!([]));
    // B left and C expired: both are unknown now.
    expect_problem(g.heartbeat(&ids[1]).await, 404, "unknown_member").await;
    expect_problem(g.heartbeat(&ids[2]).await, 404, "unknown_member").await;
    // A committed everything after each poll: nothing lags.
    let d = g.describe().await;
    assert_eq!(d["group"], "workers");
    assert_eq!(d["state"], "stable", "{d}");
    assert_eq!(d["generation"], g0 + 4);
    assert_eq!(member_ids(&d), [ids[0].clone()]);
    assert_eq!(d["members"][0]["session_timeout_ms"], 30_000);
    assert_eq!(d["members"][0]["assignment_strategy"], "range");
    assert_eq!(tps(&d["members"][0]["assignment"]), all);
    let want: BTreeMap<Tp, (Option<u64>, u64, u64)> = all.iter().map(|t| (t.clone(), (Some(100), 100, 0))).collect();
    assert_eq!(lags(&d), want, "{d}");
    let listed = body_of(client().get(s.url("/v1/groups")).send().await.unwrap(), 200).await;
    let entry = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["group"] == "workers")
        .cloned()
        .expect("workers listed");
    assert_eq!(
        (&entry["state"], &entry["generation"], &entry["members"]),
        (&json!("stable"), &json!(g0 + 4), &json!(1)),
        "{entry}"
    );

    let mut log = log.lock().unwrap().clone();
    log.sort_by_key(|e| e.at); // stable: entries of one answer keep their order
    let deliveries: Vec<(&Entry, u64, u64, u64, u64)> = log
        .iter()
        .filter_map(|e| match e.seen {
            Seen::Delivered {
                generation,
                partition,
                offset,
                seq,
            } => Some((e, generation, partition, offset, seq)),
            _ => None,
        })
        .collect();

    // (1) Every produced record was delivered at least once, with its own value.
    let produced = produced.lock().unwrap().clone();
    let mut delivered: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for &(_, _, p, o, seq) in &deliveries {
        if let Some(prev) = delivered.insert((p, o), seq) {
            assert_eq!(
                prev, seq,
                "partition {p} offset {o} delivered with two different values"
            );
        }
    }
    for (k, seq) in &produced {
        assert_eq!(delivered.get(k), Some(seq), "record {k:?} (seq {seq}) never delivered");
    }
    assert_eq!(
        delivered.len(),
        produced.len(),
        "delivered records that were never produced"
    );

    // (2) While a member keeps owning a partition (no other member served it in between, its
    // assignment kept it, and its commits succeeded), it sees strictly increasing offsets.
    let mut run: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    for e in &log {
        match &e.seen {
            Seen::Delivered { partition, offset, .. } => {
                if let Some(&last) = run.get(&(e.member, *partition)) {
                    assert!(
                        *offset > last,
                        "{} got partition {partition} offset {offset} after {last} in one session",
                        e.member
                    );
                }
                run.retain(|(m, p), _| *p != *partition || *m == e.member);
                run.insert((e.member, *partition), *offset);
            }
            Seen::Assigned(parts) => run.retain(|(m, p), _| *m != e.member || parts.contains(p)),
            Seen::CommitFailed => run.retain(|(m, _), _| *m != e.member),
        }
    }

    // (3) A (generation, partition) is served to one member only.
    let mut owners: BTreeMap<(u64, u64), BTreeSet<&str>> = BTreeMap::new();
    for &(e, generation, p, _, _) in &deliveries {
        owners.entry((generation, p)).or_default().insert(e.member);
    }
    for ((generation, p), members) in &owners {
        assert_eq!(
            members.len(),
            1,
            "generation {generation} partition {p} served to {members:?}"
        );
    }

    // (4) In time order, whenever a partition's deliverer changes, the generation strictly
    // increases: a member that lost a partition never delivers it again unless it got it back in
    // a later generation than the one the other member delivered in.
    for p in 0..6 {
        let seq: Vec<_> = deliveries.iter().filter(|d| d.2 == p).collect();
        for w in seq.windows(2) {
            let ((a, ga, ..), (b, gb, ..)) = (w[0], w[1]);
            if a.member != b.member {
                assert!(
                    gb > ga,
                    "partition {p}: {} (generation {ga}) then {} (generation {gb}) — ownership moved without a newer generation",
                    a.member,
                    b.member
                );
            } else {
                assert!(gb >= ga, "partition {p}: {} went back in generations", a.member);
            }
        }
    }
    // The storm really moved partitions around.
    for m in names {
        assert!(deliveries.iter().any(|d| d.0.member == m), "{m} delivered nothing");
    }
    assert!(deliveries.iter().any(|d| d.0.member == "A" && d.1 == g0 + 4));

    // A leaves; the empty group can then be deleted.
    body_of(g.leave(&ids[0]).await, 204).await;
    let d = g.describe().await;
    assert_eq!(d["state"], "empty");
    assert_eq!(d["members"], json!([]));
    body_of(g.delete().await, 204).await;
    expect_problem(client().get(g.url("")).send().await.unwrap(), 404, "group_not_found").await;
}

// ---------------------------------------------------------------------------------------------
// b. Commits across a restart, and commits that must be refused.
// ---------------------------------------------------------------------------------------------

/// Proves committed offsets are durable (and members are not), that a rejoining member resumes at
/// the committed offset, and that commits with a stale generation, for an unowned partition or
/// past the end are refused without changing anything.
#[tokio::test]
async fn commits_survive_restart_and_stale_member_commit_is_rejected() {
    let mut s = Server::start();
    s.create_topic("ledger", 2, json!({})).await;
    let ends = [10u64, 4];
    for (p, n) in ends.iter().enumerate() {
        let records: Vec<Value> = (0..*n)
            .map(|i| json!({"value": format!("p{p}-{i}"), "partition": p}))
            .collect();
        produce(&s.base, "ledger", json!({"records": records})).await;
    }
    let g = Group::new(&s, "billing");
    let a = g
        .join_ok(json!({"topics": ["ledger"], "auto_offset_reset": "earliest"}))
        .await;
    assert_eq!(tps(&a["assignment"]), tp_set("ledger", 0..2));
    let a_id = a["member_id"].as_str().unwrap().to_owned();

    // Poll a few records, then commit the positions (empty body).
    let got = poll_once(&g, &a_id, "max_records=3&wait_ms=2000").await;
    assert!(!got.is_empty() && got.len() <= 3, "{got:?}");
    let mut next: BTreeMap<u64, u64> = BTreeMap::new();
    for r in &got {
        let p = r["partition"].as_u64().unwrap();
        let o = r["offset"].as_u64().unwrap();
        assert_eq!(o, next.get(&p).copied().unwrap_or(0), "earliest, in order: {got:?}");
        assert_eq!(r["value"], format!("p{p}-{o}"));
        next.insert(p, o + 1);
    }
    let c = body_of(g.commit(&a_id, None).await, 200).await;
    let committed = offsets(&c["committed"]);
    for (p, o) in &next {
        assert_eq!(committed.get(&("ledger".to_owned(), *p)), Some(o), "{c}");
    }
    assert!(committed.keys().all(|(t, p)| t == "ledger" && *p < 2), "{c}");

    s.stop();
    s.restart();
    let g = Group::new(&s, "billing");

    // The group survived with its committed offsets and correct lag; its members did not.
    let d = g.describe().await;
    assert_eq!(d["state"], "empty", "{d}");
    assert_eq!(d["members"], json!([]));
    let l = lags(&d);
    for ((t, p), o) in &committed {
        let end = ends[*p as usize];
        assert_eq!(l.get(&(t.clone(), *p)), Some(&(Some(*o), end, end - o)), "{d}");
    }
    expect_problem(g.heartbeat(&a_id).await, 404, "unknown_member").await;
    expect_problem(g.poll(&a_id, "wait_ms=0").await, 404, "unknown_member").await;
    expect_problem(g.commit(&a_id, None).await, 404, "unknown_member").await;

    // Rejoin: consumption resumes exactly at the committed offsets (earliest where none).
    let a2 = g
        .join_ok(json!({"topics": ["ledger"], "auto_offset_reset": "earliest"}))
        .await;
    let a2_id = a2["member_id"].as_str().unwrap().to_owned();
    let start = |p: u64| committed.get(&("ledger".to_owned(), p)).copied().unwrap_or(0);
    let remaining: u64 = (0..2).map(|p| ends[p as usize] - start(p)).sum();
    let got = poll_until(&g, &a2_id, |r| r.len() as u64 >= remaining).await;
    for p in 0..2u64 {
        let seen: Vec<u64> = got
            .iter()
            .filter(|r| r["partition"] == p)
            .map(|r| r["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(seen, (start(p)..ends[p as usize]).collect::<Vec<_>>(), "partition {p}");
    }
    let c = body_of(g.commit(&a2_id, None).await, 200).await;
    assert_eq!(
        offsets(&c["committed"]),
        BTreeMap::from([(("ledger".to_owned(), 0), 10), (("ledger".to_owned(), 1), 4)])
    );
    let gen_a = a2["generation"].as_u64().unwrap();

    // B joins: generation + 1. A, still on the old generation, may not commit.
    let b = g.join_ok(json!({"topics": ["ledger"]})).await;
    assert_eq!(b["generation"], gen_a + 1);
    let before = lags(&g.describe().await);
    let stale = json!({"generation": gen_a, "offsets": [{"topic": "ledger", "partition": 0, "offset": 5}]});
    expect_problem(g.commit(&a2_id, Some(stale)).await, 409, "illegal_generation").await;
    assert_eq!(lags(&g.describe().await), before, "a refused commit changed offsets");

    // A learns the new generation (409 once, then 200).
    let p = expect_rebalance(g.heartbeat(&a2_id).await).await;
    assert_eq!(p["generation"], gen_a + 1);
    let hb = body_of(g.heartbeat(&a2_id).await, 200).await;
    assert_eq!(hb["generation"], gen_a + 1);
    let mine = tps(&hb["assignment"]);
    assert_eq!(mine.len(), 1, "two members, two partitions: {hb}");
    let (_, my_p) = mine.iter().next().unwrap().clone();
    let other_p = 1 - my_p;

    let not_mine =
        json!({"generation": gen_a + 1, "offsets": [{"topic": "ledger", "partition": other_p, "offset": 1}]});
    expect_problem(g.commit(&a2_id, Some(not_mine)).await, 409, "partition_not_owned").await;
    let past_end = json!({"generation": gen_a + 1,
        "offsets": [{"topic": "ledger", "partition": my_p, "offset": ends[my_p as usize] + 1}]});
    expect_problem(g.commit(&a2_id, Some(past_end)).await, 416, "offset_out_of_range").await;
    assert_eq!(lags(&g.describe().await), before, "a refused commit changed offsets");

    // A valid commit on its own partition (even backwards) goes through.
    let ok = json!({"generation": gen_a + 1, "offsets": [{"topic": "ledger", "partition": my_p, "offset": 2}]});
    let c = body_of(g.commit(&a2_id, Some(ok)).await, 200).await;
    assert_eq!(
        offsets(&c["committed"]),
        BTreeMap::from([(("ledger".to_owned(), my_p), 2)])
    );
    let l = lags(&g.describe().await);
    let end = ends[my_p as usize];
    assert_eq!(l[&("ledger".to_owned(), my_p)], (Some(2), end, end - 2));
    let other_end = ends[other_p as usize];
    assert_eq!(l[&("ledger".to_owned(), other_p)], (Some(other_end), other_end, 0));
}

// ---------------------------------------------------------------------------------------------
// c. Lag, seeks and offset resets.
// ---------------------------------------------------------------------------------------------

/// Proves lag = end − committed (and end − earliest without a commit), that seeks move the next
/// poll (but not commits), and that offset resets are refused while members exist, change
/// nothing on a dry run, and otherwise set exactly the reported offsets.
#[tokio::test]
async fn reset_seek_and_lag_report_correct_numbers() {
    let s = Server::start();
    s.create_topic("metrics", 2, json!({})).await;
    s.create_topic("audit", 1, json!({})).await;
    let ts_records = |p: u64, n: u64| -> Value {
        let records: Vec<Value> = (0..n)
            .map(|i| json!({"value": i, "partition": p, "timestamp": 1000 + i * 100}))
            .collect();
        json!({"records": records})
    };
    produce(&s.base, "metrics", ts_records(0, 10)).await;
    produce(&s.base, "metrics", ts_records(1, 4)).await;
    produce(
        &s.base,
        "audit",
        json!({"records": [{"value": 1}, {"value": 2}, {"value": 3}]}),
    )
    .await;
    let m = |p: u64| ("metrics".to_owned(), p);

    let g = Group::new(&s, "stats");
    let j = g.join_ok(json!({"topics": ["metrics"]})).await;
    let id = j["member_id"].as_str().unwrap().to_owned();
    let generation = j["generation"].as_u64().unwrap();
    assert_eq!(tps(&j["assignment"]), tp_set("metrics", 0..2));
    body_of(g.heartbeat(&id).await, 200).await;

    // Assigned but never committed: committed null, lag = end − earliest.
    let d = g.describe().await;
    assert_eq!(d["state"], "stable", "{d}");
    assert_eq!(member_ids(&d), [id.as_str()]);
    assert_eq!(d["members"][0]["session_timeout_ms"], 30_000);
    assert_eq!(d["members"][0]["assignment_strategy"], "range");
    assert_eq!(tps(&d["members"][0]["assignment"]), tp_set("metrics", 0..2));
    assert_eq!(d["members"][0]["pending"], json!([]));
    assert!(d["members"][0].get("last_seen").is_some(), "{d}");
    assert_eq!(lags(&d), BTreeMap::from([(m(0), (None, 10, 10)), (m(1), (None, 4, 4))]));

    // Commit some: lag = end − committed, and follows the end as records arrive.
    let commit = json!({"generation": generation, "offsets": [
        {"topic": "metrics", "partition": 0, "offset": 4}, {"topic": "metrics", "partition": 1, "offset": 1}]});
    let c = body_of(g.commit(&id, Some(commit)).await, 200).await;
    assert_eq!(offsets(&c["committed"]), BTreeMap::from([(m(0), 4), (m(1), 1)]));
    assert_eq!(
        lags(&g.describe().await),
        BTreeMap::from([(m(0), (Some(4), 10, 6)), (m(1), (Some(1), 4, 3))])
    );
    let more: Vec<Value> = (4..6)
        .map(|i| json!({"value": i, "partition": 1, "timestamp": 1000 + i * 100}))
        .collect();
    produce(&s.base, "metrics", json!({"records": more})).await;
    assert_eq!(
        lags(&g.describe().await),
        BTreeMap::from([(m(0), (Some(4), 10, 6)), (m(1), (Some(1), 6, 5))])
    );

    // Seeks: each moves where the next poll starts.
    let seek = |body: Value| {
        let (g, id) = (g.clone(), id.clone());
        async move { offsets(&body_of(g.seek(&id, body).await, 200).await["positions"]) }
    };
    let p0 = json!([{"topic": "metrics", "partition": 0}]);
    assert_eq!(
        seek(json!({"to": "latest"})).await,
        BTreeMap::from([(m(0), 10), (m(1), 6)])
    );
    assert_eq!(poll_once(&g, &id, "wait_ms=200").await, Vec::<Value>::new());

    assert_eq!(
        seek(json!({"to": "earliest", "partitions": p0})).await,
        BTreeMap::from([(m(0), 0)])
    );
    let got = poll_once(&g, &id, "max_records=100&wait_ms=1000").await;
    let seen: Vec<(u64, u64)> = got
        .iter()
        .map(|r| (r["partition"].as_u64().unwrap(), r["offset"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        seen,
        (0..10).map(|o| (0, o)).collect::<Vec<_>>(),
        "only partition 0, from 0"
    );

    assert_eq!(
        seek(json!({"to": "offset", "offset": 7, "partitions": p0})).await,
        BTreeMap::from([(m(0), 7)])
    );
    let got = poll_once(&g, &id, "max_records=100&wait_ms=1000").await;
    let seen: Vec<u64> = got.iter().map(|r| r["offset"].as_u64().unwrap()).collect();
    assert_eq!(seen, [7, 8, 9]);

    assert_eq!(
        seek(json!({"to": "timestamp", "timestamp": 1450, "partitions": p0})).await,
        BTreeMap::from([(m(0), 5)])
    );
    let got = poll_once(&g, &id, "max_records=1&wait_ms=1000").await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0]["partition"].clone(), got[0]["offset"].clone()),
        (json!(0), json!(5))
    );
    assert_eq!(got[0]["timestamp"], 1500);

    assert_eq!(
        seek(json!({"to": "latest", "partitions": p0})).await,
        BTreeMap::from([(m(0), 10)])
    );
    assert_eq!(poll_once(&g, &id, "wait_ms=200").await, Vec::<Value>::new());

    let not_owned = json!({"to": "earliest", "partitions": [{"topic": "audit", "partition": 0}]});
    expect_problem(g.seek(&id, not_owned).await, 409, "partition_not_owned").await;
    // Seeking and polling commit nothing (auto_commit is off by default).
    assert_eq!(
        lags(&g.describe().await),
        BTreeMap::from([(m(0), (Some(4), 10, 6)), (m(1), (Some(1), 6, 5))])
    );

    // Resets need an empty group.
    expect_problem(g.reset(json!({"to": "earliest"})).await, 409, "group_not_empty").await;
    body_of(g.leave(&id).await, 204).await;
    let d = g.describe().await;
    assert_eq!(d["state"], "empty");
    assert_eq!(d["members"], json!([]));
    let committed_before = BTreeMap::from([(m(0), (Some(4), 10, 6)), (m(1), (Some(1), 6, 5))]);
    assert_eq!(lags(&d), committed_before, "leaving keeps committed offsets");

    // Dry run: reports, changes nothing.
    let r = body_of(g.reset(json!({"to": "earliest", "dry_run": true})).await, 200).await;
    assert_eq!(r["dry_run"], true);
    assert_eq!(
        reset_offsets(&r),
        BTreeMap::from([(m(0), (0, Some(4))), (m(1), (0, Some(1)))])
    );
    assert_eq!(lags(&g.describe().await), committed_before);
    // A topic without commits: previous_offset null.
    let r = body_of(
        g.reset(json!({"to": "earliest", "topics": ["audit"], "dry_run": true}))
            .await,
        200,
    )
    .await;
    assert_eq!(
        reset_offsets(&r),
        BTreeMap::from([(("audit".to_owned(), 0), (0, None))])
    );
    assert_eq!(lags(&g.describe().await), committed_before);

    // Real resets.
    let r = body_of(g.reset(json!({"to": "latest"})).await, 200).await;
    assert_eq!(r["dry_run"], false);
    assert_eq!(
        reset_offsets(&r),
        BTreeMap::from([(m(0), (10, Some(4))), (m(1), (6, Some(1)))])
    );
    assert_eq!(
        lags(&g.describe().await),
        BTreeMap::from([(m(0), (Some(10), 10, 0)), (m(1), (Some(6), 6, 0))])
    );

    let r = body_of(g.reset(json!({"to": "timestamp", "timestamp": 1450})).await, 200).await;
    assert_eq!(
        reset_offsets(&r),
        BTreeMap::from([(m(0), (5, Some(10))), (m(1), (5, Some(6)))])
    );
    assert_eq!(
        lags(&g.describe().await),
        BTreeMap::from([(m(0), (Some(5), 10, 5)), (m(1), (Some(5), 6, 1))])
    );

    let r = body_of(
        g.reset(json!({"to": "offsets", "offsets": [{"topic": "metrics", "partition": 0, "offset": 2}]}))
            .await,
        200,
    )
    .await;
    assert_eq!(reset_offsets(&r).get(&m(0)), Some(&(2, Some(5))), "{r}");
    assert_eq!(
        lags(&g.describe().await),
        BTreeMap::from([(m(0), (Some(2), 10, 8)), (m(1), (Some(5), 6, 1))])
    );

    // A new member (default reset: latest) starts at the reset offsets, not at the end.
    let j = g.join_ok(json!({"topics": ["metrics"]})).await;
    let id = j["member_id"].as_str().unwrap().to_owned();
    let got = poll_until(&g, &id, |r| r.len() >= 9).await;
    for (p, want) in [(0u64, (2..10).collect::<Vec<u64>>()), (1, vec![5])] {
        let seen: Vec<u64> = got
            .iter()
            .filter(|r| r["partition"] == p)
            .map(|r| r["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(seen, want, "partition {p}");
    }
}

// ---------------------------------------------------------------------------------------------
// d. SSE group member: deliver, commit, disconnect, resume by Last-Event-ID.
// ---------------------------------------------------------------------------------------------

/// Reads `n` record events; returns them (with ids) and checks per-partition order.
async fn read_records(ev: &mut Events, n: usize) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (id, kind, data) = ev.next().await;
        assert_eq!(kind, "record", "{data}");
        assert!(!id.is_empty(), "record event without id: {data}");
        out.push((id, data));
    }
    out
}

fn offsets_by_partition(records: &[(String, Value)]) -> BTreeMap<u64, Vec<u64>> {
    let mut m: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (_, r) in records {
        let p = r["partition"].as_u64().unwrap();
        let o = r["offset"].as_u64().unwrap();
        assert_eq!(r["value"], format!("p{p}-{o}"), "{r}");
        m.entry(p).or_default().push(o);
    }
    m
}

/// Proves a group SSE stream joins as a member, streams records, lets its member id commit, leaves
/// on disconnect, and resumes by Last-Event-ID with no gap and no duplicate (not from the
/// committed offsets, which are deliberately behind).
#[tokio::test]
async fn sse_group_stream_delivers_and_resumes() {
    let s = Server::start();
    s.create_topic("feed", 2, json!({})).await;
    let g = Group::new(&s, "dash");
    let batch = |range: Range<u64>| {
        let records: Vec<Value> = range
            .flat_map(|o| (0..2u64).map(move |p| json!({"value": format!("p{p}-{o}"), "partition": p})))
            .collect();
        json!({"records": records})
    };

    let mut ev = Events::open(&g.url("/events?topics=feed&auto_offset_reset=earliest")).await;
    let (_, kind, member) = ev.next().await;
    assert_eq!(kind, "member", "{member}");
    let member_id = member["member_id"].as_str().expect("member_id").to_owned();
    let generation = member["generation"].as_u64().expect("generation");
    assert_eq!(tps(&member["assignment"]), tp_set("feed", 0..2));
    assert_eq!(member["pending"], json!([]));

    produce(&s.base, "feed", batch(0..3)).await;
    let got = read_records(&mut ev, 6).await;
    assert_eq!(
        offsets_by_partition(&got),
        BTreeMap::from([(0, vec![0, 1, 2]), (1, vec![0, 1, 2])])
    );
    let last_id = got.last().unwrap().0.clone();

    // The stream's member id commits like any member (only partition 0, up to 1: behind the stream).
    let commit = json!({"generation": generation, "offsets": [{"topic": "feed", "partition": 0, "offset": 1}]});
    let c = body_of(g.commit(&member_id, Some(commit)).await, 200).await;
    assert_eq!(offsets(&c["committed"]), BTreeMap::from([(("feed".to_owned(), 0), 1)]));
    let d = g.describe().await;
    assert_eq!(member_ids(&d), [member_id.as_str()]);
    assert_eq!(lags(&d)[&("feed".to_owned(), 0)], (Some(1), 3, 2));

    // Closing the connection leaves the group.
    drop(ev);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = g.describe().await;
        if d["members"] == json!([]) {
            assert_eq!(d["state"], "empty");
            assert_eq!(
                lags(&d)[&("feed".to_owned(), 0)].0,
                Some(1),
                "commits outlive the member"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the SSE member never left: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // More records while disconnected; resume after the last event received.
    produce(&s.base, "feed", batch(3..5)).await;
    let r = client()
        .get(g.url("/events?topics=feed&auto_offset_reset=earliest"))
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut ev = Events::new(r);
    let (_, kind, member) = ev.next().await;
    assert_eq!(kind, "member", "{member}");
    assert!(member["generation"].as_u64().unwrap() > generation, "{member}");
    assert_eq!(tps(&member["assignment"]), tp_set("feed", 0..2));
    let got = read_records(&mut ev, 4).await;
    assert_eq!(
        offsets_by_partition(&got),
        BTreeMap::from([(0, vec![3, 4]), (1, vec![3, 4])])
    );
    // And nothing more: no duplicate from the (older) committed offsets.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), ev.next())
            .await
            .is_err(),
        "an unexpected extra event"
    );
}

// ---------------------------------------------------------------------------------------------
// e. Pattern subscriptions.
// ---------------------------------------------------------------------------------------------

/// Proves a pattern subscription (full match) is assigned matching topics only, and a newly
/// created matching topic triggers exactly one rebalance that assigns it, after which its records
/// are consumed.
#[tokio::test]
async fn pattern_subscription_picks_up_new_topic() {
    let s = Server::start();
    s.create_topic("orders.eu", 2, json!({})).await;
    for t in ["orders", "ordersX", "xorders.eu"] {
        s.create_topic(t, 1, json!({})).await;
    }
    let g = Group::new(&s, "shipping");
    let j = g
        .join_ok(json!({"topic_pattern": "orders\\..*", "auto_offset_reset": "earliest"}))
        .await;
    let id = j["member_id"].as_str().unwrap().to_owned();
    let g0 = j["generation"].as_u64().unwrap();
    assert_eq!(tps(&j["assignment"]), tp_set("orders.eu", 0..2), "full match only");

    s.create_topic("orders.us", 3, json!({})).await;
    let want: BTreeSet<Tp> = tp_set("orders.eu", 0..2)
        .into_iter()
        .chain(tp_set("orders.us", 0..3))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let learned = loop {
        let r = g.heartbeat(&id).await;
        let v = if r.status() == 409 {
            expect_rebalance(r).await
        } else {
            body_of(r, 200).await
        };
        if tps(&v["assignment"]).iter().any(|(t, _)| t == "orders.us") {
            break v;
        }
        assert!(Instant::now() < deadline, "orders.us never assigned: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(learned["generation"], g0 + 1, "{learned}");
    assert_eq!(tps(&learned["assignment"]), want);

    for t in ["orders", "ordersX", "xorders.eu"] {
        produce(&s.base, t, json!({"records": [{"value": "not-for-us"}]})).await;
    }
    produce(
        &s.base,
        "orders.us",
        json!({"records": [{"value": "from-us", "partition": 1}]}),
    )
    .await;
    let got = poll_until(&g, &id, |r| r.iter().any(|x| x["topic"] == "orders.us")).await;
    for r in &got {
        assert!(r["topic"] == "orders.eu" || r["topic"] == "orders.us", "{r}");
    }
    let us = got.iter().find(|r| r["topic"] == "orders.us").unwrap();
    assert_eq!((us["partition"].clone(), us["offset"].clone()), (json!(1), json!(0)));
    assert_eq!(us["value"], "from-us");

    let d = g.describe().await;
    assert_eq!(tps(&d["members"][0]["assignment"]), want);
    assert!(
        lags(&d).keys().all(|(t, _)| t == "orders.eu" || t == "orders.us"),
        "{d}"
    );
}

// ---------------------------------------------------------------------------------------------
// f. Bad input.
// ---------------------------------------------------------------------------------------------

/// What a rejected request must not change: generation, members, committed offsets.
async fn snapshot(g: &Group) -> (Value, Vec<String>, BTreeMap<Tp, Option<u64>>) {
    let d = g.describe().await;
    let committed = lags(&d).into_iter().map(|(k, v)| (k, v.0)).collect();
    (d["generation"].clone(), member_ids(&d), committed)
}

/// Proves each kind of bad request gets its documented status and code, and changes nothing.
#[tokio::test]
async fn bad_group_input_gets_codes() {
    let s = Server::start();
    s.create_topic("t", 2, json!({})).await;
    s.create_topic("u", 1, json!({})).await;
    produce(
        &s.base,
        "t",
        json!({"records": [{"value": 0, "partition": 0}, {"value": 1, "partition": 0}, {"value": 2, "partition": 0}]}),
    )
    .await;
    produce(&s.base, "u", json!({"records": [{"value": 0}]})).await;
    let g = Group::new(&s, "ops");
    let j = g.join_ok(json!({"topics": ["t"]})).await;
    let id = j["member_id"].as_str().unwrap().to_owned();
    let generation = j["generation"].as_u64().unwrap();
    let before = snapshot(&g).await;
    assert_eq!(before.1, [id.as_str()]);

    // Group names follow topic-name rules.
    let long_ok = "g".repeat(249);
    let too_long = "g".repeat(250);
    for name in ["bad!name", "has%20space", "caf%C3%A9", "a:b", too_long.as_str()] {
        let bad = Group {
            base: s.base.clone(),
            name: name.to_owned(),
        };
        let p = expect_problem(bad.join(json!({"topics": ["t"]})).await, 400, "invalid_group_name").await;
        assert_eq!(p["field"], "group", "{p}");
        // A lookup by a name no group can have: either refused as invalid or simply not found
        // (as topic lookups do) — but never served.
        let r = client().get(bad.url("")).send().await.unwrap();
        match r.status().as_u16() {
            400 => expect_problem(r, 400, "invalid_group_name").await,
            _ => expect_problem(r, 404, "group_not_found").await,
        };
    }
    let edge = Group::new(&s, &long_ok);
    let e = edge.join_ok(json!({"topics": ["t"]})).await;
    body_of(edge.leave(e["member_id"].as_str().unwrap()).await, 204).await;
    for name in ["a.b-c_D9", "..."] {
        let ok = Group::new(&s, name);
        let e = ok.join_ok(json!({"topics": ["u"]})).await;
        body_of(ok.leave(e["member_id"].as_str().unwrap()).await, 204).await;
    }
    assert_eq!(snapshot(&g).await, before);

    // Bad joins.
    let p = expect_problem(g.join(json!({})).await, 400, "invalid_parameter").await;
    assert_eq!(p["field"], "topics");
    let p = expect_problem(g.join(json!({"topics": []})).await, 400, "invalid_parameter").await;
    assert_eq!(p["field"], "topics");
    let p = expect_problem(
        g.join(json!({"topics": ["t"], "assignment_strategy": "fastest"})).await,
        400,
        "invalid_json",
    )
    .await;
    assert!(
        p["field"].as_str().is_some_and(|f| f.contains("assignment_strategy")),
        "{p}"
    );
    let p = expect_problem(
        g.join(json!({"topics": ["t"], "auto_offset_reset": "middle"})).await,
        400,
        "invalid_json",
    )
    .await;
    assert!(
        p["field"].as_str().is_some_and(|f| f.contains("auto_offset_reset")),
        "{p}"
    );
    let p = expect_problem(
        g.join(json!({"topic_pattern": "(unclosed"})).await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(p["field"], "topic_pattern");
    expect_problem(g.join(json!({"topics": ["t", "nope"]})).await, 404, "topic_not_found").await;
    for timeout in [99u64, 3_600_001] {
        let r = g.join(json!({"topics": ["t"], "session_timeout_ms": timeout})).await;
        assert_eq!(r.status(), 400, "session_timeout_ms {timeout}");
    }
    assert_eq!(snapshot(&g).await, before, "a refused join changed the group");

    // Unknown member, unknown group.
    expect_problem(g.heartbeat("ghost").await, 404, "unknown_member").await;
    expect_problem(g.poll("ghost", "wait_ms=0").await, 404, "unknown_member").await;
    expect_problem(g.commit("ghost", None).await, 404, "unknown_member").await;
    expect_problem(g.seek("ghost", json!({"to": "earliest"})).await, 404, "unknown_member").await;
    expect_problem(g.leave("ghost").await, 404, "unknown_member").await;
    let nog = Group::new(&s, "nogroup");
    expect_problem(client().get(nog.url("")).send().await.unwrap(), 404, "group_not_found").await;
    expect_problem(nog.poll("ghost", "wait_ms=0").await, 404, "group_not_found").await;
    expect_problem(nog.delete().await, 404, "group_not_found").await;

    // A group with members cannot be deleted.
    expect_problem(g.delete().await, 409, "group_not_empty").await;
    assert_eq!(snapshot(&g).await, before);

    // Commits: a mix with an unowned partition is refused whole; past the end; wrong generation.
    let mixed = json!({"generation": generation, "offsets": [
        {"topic": "t", "partition": 0, "offset": 1}, {"topic": "u", "partition": 0, "offset": 0}]});
    expect_problem(g.commit(&id, Some(mixed)).await, 409, "partition_not_owned").await;
    let past = json!({"generation": generation, "offsets": [{"topic": "t", "partition": 0, "offset": 4}]});
    expect_problem(g.commit(&id, Some(past)).await, 416, "offset_out_of_range").await;
    let wrong = json!({"generation": generation + 1, "offsets": [{"topic": "t", "partition": 0, "offset": 1}]});
    expect_problem(g.commit(&id, Some(wrong)).await, 409, "illegal_generation").await;
    let not_owned = json!({"to": "earliest", "partitions": [{"topic": "u", "partition": 0}]});
    expect_problem(g.seek(&id, not_owned).await, 409, "partition_not_owned").await;
    assert_eq!(snapshot(&g).await, before, "a refused commit changed the group");

    // The listing shows the group unchanged.
    let listed = body_of(client().get(s.url("/v1/groups")).send().await.unwrap(), 200).await;
    let entry = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["group"] == "ops")
        .cloned()
        .expect("ops listed");
    assert_eq!(entry["members"], 1);
    assert_eq!(entry["generation"], generation);

    // Positive control: the same commit within bounds is accepted.
    let fine = json!({"generation": generation, "offsets": [{"topic": "t", "partition": 0, "offset": 3}]});
    body_of(g.commit(&id, Some(fine)).await, 200).await;
    assert_eq!(snapshot(&g).await.2.get(&("t".to_owned(), 0)), Some(&Some(3)));

    // Once empty, the group can be deleted, with its offsets.
    body_of(g.leave(&id).await, 204).await;
    body_of(g.delete().await, 204).await;
    expect_problem(client().get(g.url("")).send().await.unwrap(), 404, "group_not_found").await;
    expect_problem(g.delete().await, 404, "group_not_found").await;
    let listed = body_of(client().get(s.url("/v1/groups")).send().await.unwrap(), 200).await;
    assert!(
        listed["groups"].as_array().unwrap().iter().all(|e| e["group"] != "ops"),
        "{listed}"
    );
    let j = g
        .join_ok(json!({"topics": ["t"], "auto_offset_reset": "earliest"}))
        .await;
    let id = j["member_id"].as_str().unwrap().to_owned();
    assert_eq!(lags(&g.describe().await).get(&("t".to_owned(), 0)), Some(&(None, 3, 3)));
    let got = poll_until(&g, &id, |r| !r.is_empty()).await;
    assert_eq!(
        (got[0]["partition"].clone(), got[0]["offset"].clone()),
        (json!(0), json!(0))
    );
}

// ---------------------------------------------------------------------------------------------
// g. Assignment strategies.
// ---------------------------------------------------------------------------------------------

/// Joins `n` members with a strategy and returns their ids and settled assignments.
async fn join_members(g: &Group, n: usize, strategy: &str) -> (Vec<String>, Vec<BTreeSet<Tp>>) {
    let mut ids = Vec::new();
    let mut last_gen = None;
    for _ in 0..n {
        let j = g
            .join_ok(json!({"topics": ["a", "b"], "assignment_strategy": strategy}))
            .await;
        let generation = j["generation"].as_u64().unwrap();
        if let Some(prev) = last_gen {
            assert_eq!(generation, prev + 1, "one rebalance per join");
        }
        last_gen = Some(generation);
        ids.push(j["member_id"].as_str().unwrap().to_owned());
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let states = settle(g, &refs).await;
    assert_eq!(states[0]["generation"], last_gen.unwrap());
    (ids, states.iter().map(|v| tps(&v["assignment"])).collect())
}

fn ab(parts: &[(&str, u64)]) -> BTreeSet<Tp> {
    parts.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect()
}

/// Proves range gives each member a contiguous block per topic (the same member getting the
/// extra partition of each topic), roundrobin deals all partitions alternately, and sticky keeps
/// every surviving member's partitions when one leaves; every partition is assigned exactly once.
#[tokio::test]
async fn range_roundrobin_and_sticky_assignments() {
    let s = Server::start();
    s.create_topic("a", 3, json!({})).await;
    s.create_topic("b", 3, json!({})).await;
    let all: BTreeSet<Tp> = tp_set("a", 0..3).into_iter().chain(tp_set("b", 0..3)).collect();

    // range: per topic, 3 partitions over 2 members → [0,1] and [2].
    let g = Group::new(&s, "ranged");
    let (_, sets) = join_members(&g, 2, "range").await;
    assert_partitioned(&sets, &all);
    let big = ab(&[("a", 0), ("a", 1), ("b", 0), ("b", 1)]);
    let small = ab(&[("a", 2), ("b", 2)]);
    assert!(
        sets == [big.clone(), small.clone()] || sets == [small, big],
        "not a range split: {sets:?}"
    );
    let d = g.describe().await;
    assert!(
        d["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["assignment_strategy"] == "range")
    );

    // roundrobin: a0 a1 a2 b0 b1 b2 dealt alternately.
    let g = Group::new(&s, "dealt");
    let (_, sets) = join_members(&g, 2, "roundrobin").await;
    assert_partitioned(&sets, &all);
    let first = ab(&[("a", 0), ("a", 2), ("b", 1)]);
    let second = ab(&[("a", 1), ("b", 0), ("b", 2)]);
    assert!(
        sets == [first.clone(), second.clone()] || sets == [second, first],
        "not round-robin: {sets:?}"
    );
    let d = g.describe().await;
    assert!(
        d["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["assignment_strategy"] == "roundrobin")
    );

    // sticky: two members, then a third (the first two only give partitions away), then the
    // second leaves (only its partitions move).
    let g = Group::new(&s, "sticky");
    let (mut ids, two) = join_members(&g, 2, "sticky").await;
    assert_partitioned(&two, &all);
    assert!(two.iter().all(|set| set.len() == 3), "{two:?}");
    let j = g
        .join_ok(json!({"topics": ["a", "b"], "assignment_strategy": "sticky"}))
        .await;
    ids.push(j["member_id"].as_str().unwrap().to_owned());
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let states = settle(&g, &refs).await;
    let three: Vec<BTreeSet<Tp>> = states.iter().map(|v| tps(&v["assignment"])).collect();
    assert_partitioned(&three, &all);
    assert!(three.iter().all(|set| set.len() == 2), "{three:?}");
    assert!(
        three[0].is_subset(&two[0]) && three[1].is_subset(&two[1]),
        "{two:?} → {three:?}"
    );
    let generation = states[0]["generation"].as_u64().unwrap();

    body_of(g.leave(&ids[1]).await, 204).await;
    let states = settle(&g, &[ids[0].as_str(), ids[2].as_str()]).await;
    assert_eq!(states[0]["generation"], generation + 1, "one rebalance for the leave");
    let after: Vec<BTreeSet<Tp>> = states.iter().map(|v| tps(&v["assignment"])).collect();
    assert_partitioned(&after, &all);
    assert!(after.iter().all(|set| set.len() == 3), "{after:?}");
    assert!(
        three[0].is_subset(&after[0]),
        "member 1 lost partitions: {three:?} → {after:?}"
    );
    assert!(
        three[2].is_subset(&after[1]),
        "member 3 lost partitions: {three:?} → {after:?}"
    );
    let d = g.describe().await;
    assert_eq!(d["state"], "stable", "{d}");
    let mut want = vec![ids[0].clone(), ids[2].clone()];
    want.sort();
    assert_eq!(member_ids(&d), want);
}

/// With `auto_commit`, each poll first commits what the previous poll returned.
#[tokio::test]
async fn auto_commit_commits_what_the_previous_poll_returned() {
    let s = Server::start();
    s.create_topic("ac", 1, json!({})).await;
    let join: Value = client()
        .post(s.url("/v1/groups/acg/members"))
        .json(&json!({"topics": ["ac"], "auto_offset_reset": "earliest", "auto_commit": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let member = join["member_id"].as_str().unwrap().to_owned();
    s.produce("ac", json!({"records": [{"value": 1}, {"value": 2}, {"value": 3}]}))
        .await;
    let poll = |q: &'static str| {
        client()
            .get(s.url(&format!("/v1/groups/acg/members/{member}/records{q}")))
            .send()
    };
    let committed = || async {
        let g: Value = s.get_json("/v1/groups/acg").await;
        g["partitions"][0]["committed_offset"].clone()
    };
    let first: Value = poll("?max_records=2").await.unwrap().json().await.unwrap();
    assert_eq!(first["records"].as_array().unwrap().len(), 2);
    assert_eq!(
        committed().await,
        Value::Null,
        "nothing is committed before the next poll"
    );
    let second: Value = poll("?max_records=10").await.unwrap().json().await.unwrap();
    assert_eq!(second["records"].as_array().unwrap().len(), 1);
    assert_eq!(committed().await, 2);
    poll("").await.unwrap();
    assert_eq!(committed().await, 3);
}
