//! The task loops' order of work, on an in-process broker: a sink batch's offsets are committed
//! only once the sink's flush of it completed, in the batches' order, while the next batches are
//! put; source batches that are ready together are written as one transaction, in read order.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::broker::Caller;
use crate::connect::common::common_def;
use crate::connect::config::{Parsed, RawConfig};
use crate::connect::plugin::Kind;
use crate::connect::record::JsonText;

/// A sink that reports each put and each flush, and whose flushes complete only when the test
/// says so.
struct Gated {
    puts: mpsc::UnboundedSender<usize>,
    flushes: mpsc::UnboundedSender<oneshot::Sender<Result<(), String>>>,
}

#[async_trait]
impl SinkTask for Gated {
    async fn put(&mut self, records: &[ConnectRecord]) -> Result<(), PutError> {
        let _ = self.puts.send(records.len());
        Ok(())
    }

    fn flush(&mut self) -> Flush {
        let (done, wait) = oneshot::channel();
        let _ = self.flushes.send(done);
        Box::pin(async move { wait.await.unwrap_or_else(|_| Err("dropped".into())) })
    }
}

/// A sink task's run on `broker`, reading `topic` in batches of `batch`.
fn task_run(broker: &Broker, topic: &str, batch: usize) -> (TaskRun, watch::Sender<Target>) {
    let raw: RawConfig = [
        ("name", "gated"),
        ("connector.class", "Gated"),
        ("topics", topic),
        ("consumer.max.poll.records", &batch.to_string()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let parsed = Parsed::new(&common_def(Kind::Sink), &raw).expect("a valid sink config");
    let (target_tx, target) = watch::channel(Target::Running);
    let run = TaskRun {
        broker: broker.clone(),
        caller: Caller::internal(),
        connector: "gated".into(),
        task: 0,
        common: Common::new(&parsed),
        chain: Chain::build(&raw).expect("no transforms"),
        status: Arc::new(Mutex::new(TaskStatus {
            state: State::Unassigned,
            trace: None,
        })),
        target,
        metrics: TaskMetrics::new("gated", 0),
    };
    (run, target_tx)
}

/// Produces `n` JSON records to partition 0 of `topic`.
async fn produce(broker: &Broker, topic: &str, n: usize) {
    let records = (0..n)
        .map(|_| RecordInput {
            key: None,
            value: ValueInput::Given(PayloadInput::JsonLine("1")),
            headers: Vec::new(),
            partition: Some(0),
            timestamp: None,
        })
        .collect();
    let request = ProduceRequest {
        records,
        key_format: Format::Json,
        value_format: Format::Json,
        durability: None,
        idempotency: None,
    };
    broker
        .produce(&Caller::internal(), topic, request)
        .await
        .expect("produce");
}

/// The group's committed offset of partition 0.
fn committed(broker: &Broker, topic: &str) -> Option<u64> {
    let group = broker
        .describe_group(&Caller::internal(), &sink_group("gated"))
        .expect("the sink's group");
    group
        .partitions
        .iter()
        .find(|p| p.topic == topic && p.partition == 0)
        .and_then(|p| p.committed_offset)
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("in time")
        .expect("the task is running")
}

/// A gated sink task running on a fresh broker over `n` records of `topic`, in batches of `batch`.
struct GatedRun {
    broker: Broker,
    target: watch::Sender<Target>,
    task: tokio::task::JoinHandle<Ended>,
    puts: mpsc::UnboundedReceiver<usize>,
    flushes: mpsc::UnboundedReceiver<oneshot::Sender<Result<(), String>>>,
    _dir: tempfile::TempDir,
}

impl GatedRun {
    async fn start(topic: &str, n: usize, batch: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::testing::broker_in(dir.path()).await;
        ensure_topic(&broker, &Caller::internal(), topic, 1).await.unwrap();
        produce(&broker, topic, n).await;
        let (run, target) = task_run(&broker, topic, batch);
        let (puts, put_rx) = mpsc::unbounded_channel();
        let (flushes, flush_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_sink(run, Box::new(Gated { puts, flushes })));
        Self {
            broker,
            target,
            task,
            puts: put_rx,
            flushes: flush_rx,
            _dir: dir,
        }
    }

    /// How the task ended, once it did.
    async fn ended(&mut self) -> Ended {
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the task ends in time")
            .expect("the task does not panic")
    }
}

#[tokio::test]
async fn a_batch_is_committed_only_after_its_flush_while_the_next_is_put() {
    let mut g = GatedRun::start("gated-in", 10, 4).await;
    assert_eq!(next(&mut g.puts).await, 4);
    let first = next(&mut g.flushes).await;
    // The second batch is put while the first one's flush has not completed.
    assert_eq!(next(&mut g.puts).await, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        committed(&g.broker, "gated-in"),
        None,
        "nothing flushed, nothing committed"
    );

    first.send(Ok(())).unwrap();
    wait_for(|| committed(&g.broker, "gated-in") == Some(4)).await;
    let second = next(&mut g.flushes).await;
    assert_eq!(next(&mut g.puts).await, 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        committed(&g.broker, "gated-in"),
        Some(4),
        "the second batch is not flushed yet"
    );

    // A failed flush fails the task; what it did not flush stays uncommitted.
    second.send(Err("disk on fire".into())).unwrap();
    match g.ended().await {
        Ended::Failed(trace) => assert!(trace.contains("TASK_FLUSH failed: disk on fire"), "{trace}"),
        other => panic!("the task should fail, it ended {other:?}"),
    }
    assert_eq!(committed(&g.broker, "gated-in"), Some(4));
    g.broker.close().await;
}

#[tokio::test]
async fn stopping_waits_for_the_last_flush_then_commits() {
    let mut g = GatedRun::start("gated-stop", 3, 500).await;
    assert_eq!(next(&mut g.puts).await, 3);
    let only = next(&mut g.flushes).await;
    g.target.send(Target::Stopped).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(committed(&g.broker, "gated-stop"), None);
    only.send(Ok(())).unwrap();
    let ended = g.ended().await;
    assert!(matches!(ended, Ended::Stopped), "{ended:?}");
    assert_eq!(committed(&g.broker, "gated-stop"), Some(3));
    g.broker.close().await;
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met in 5 s");
}

/// A source batch of `values` into `topic` that reaches `position`, prepared unless told not.
async fn ready(run: &TaskRun, topic: &str, values: &[i64], position: u64, prepared: bool) -> ReadyBatch {
    let polled = PolledBatch {
        out: values.iter().map(|v| ConnectRecord::new(topic, (*v).into())).collect(),
        state: vec![StateWrite::Put {
            table: offsets_table(&run.connector),
            key: b"file".to_vec(),
            value: position.to_string().into_bytes(),
        }],
    };
    let mut batch = prepare_beside(run, polled).await.expect("prepared");
    assert!(batch.prepared.is_some());
    if !prepared {
        batch.prepared = None;
    }
    batch
}

#[tokio::test]
async fn ready_batches_are_merged_into_one_write_in_the_order_they_were_read() {
    let dir = tempfile::tempdir().unwrap();
    let broker = crate::testing::broker_in(dir.path()).await;
    ensure_topic(&broker, &Caller::internal(), "merged", 1).await.unwrap();
    let (run, _target) = task_run(&broker, "merged", 10);
    let mut queue: VecDeque<ReadyBatch> = VecDeque::new();
    queue.push_back(ready(&run, "merged", &[1, 2], 2, true).await);
    queue.push_back(ready(&run, "merged", &[3, 4], 4, true).await);
    queue.push_back(ready(&run, "merged", &[5, 6], 6, true).await);
    queue.push_back(ready(&run, "merged", &[7], 7, false).await);
    queue.push_back(ready(&run, "merged", &[8], 8, true).await);

    // At most 5 records in one write: the first two batches; the third stays queued.
    let first = next_write(&mut queue, 5).expect("a write");
    assert_eq!(first.out.len(), 4);
    assert_eq!(queue.len(), 3);
    // A batch whose preparing failed is written on its own (it is prepared again then).
    let second = next_write(&mut queue, 5).expect("a write");
    assert_eq!(second.out.len(), 2);
    let third = next_write(&mut queue, 5).expect("a write");
    assert_eq!((third.out.len(), third.prepared.is_none()), (1, true));
    let fourth = next_write(&mut queue, 5).expect("a write");
    assert_eq!(fourth.out.len(), 1);
    assert!(next_write(&mut queue, 5).is_none());

    for batch in [first, second, third, fourth] {
        write_ready(&run, batch).await.expect("written");
    }
    let fetched = broker
        .fetch(
            &Caller::internal(),
            "merged",
            0,
            crate::broker::FetchRequest {
                start: crate::broker::StartAt::Offset(0),
                max_records: 100,
                max_bytes: 1 << 20,
                wait: Duration::ZERO,
            },
        )
        .await
        .expect("fetch");
    let values: Vec<String> = fetched
        .records()
        .map(|(_, r)| String::from_utf8(r.value.expect("a value").bytes.to_vec()).expect("utf-8"))
        .collect();
    assert_eq!(values, ["1", "2", "3", "4", "5", "6", "7", "8"]);
    let position = broker
        .state_get(&Caller::internal(), &offsets_table("gated"), b"file")
        .expect("state");
    assert_eq!(position, Some(b"8".to_vec()), "the last batch's offsets stay");
    broker.close().await;
}

#[tokio::test]
async fn commits_follow_the_batches_order_whatever_order_their_flushes_complete_in() {
    let mut g = GatedRun::start("gated-order", 12, 4).await;
    assert_eq!(next(&mut g.puts).await, 4);
    let first = next(&mut g.flushes).await;
    assert_eq!(next(&mut g.puts).await, 4);
    let second = next(&mut g.flushes).await;
    // Two batches are unsettled: the third waits for the first to be committed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(g.puts.try_recv().is_err(), "a third batch was put with two unsettled");

    // The second batch's flush completes first: nothing can be committed before the first's.
    second.send(Ok(())).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(committed(&g.broker, "gated-order"), None);
    first.send(Ok(())).unwrap();
    wait_for(|| committed(&g.broker, "gated-order") == Some(8)).await;
    assert_eq!(next(&mut g.puts).await, 4);

    let third = next(&mut g.flushes).await;
    g.target.send(Target::Stopped).unwrap();
    third.send(Ok(())).unwrap();
    let ended = g.ended().await;
    assert!(matches!(ended, Ended::Stopped), "{ended:?}");
    assert_eq!(committed(&g.broker, "gated-order"), Some(12));
    g.broker.close().await;
}

/// A record's key and value as JSON text.
type Parts = (Option<String>, Option<String>);

/// The JSON text each record of an encoded batch hands the broker, per topic.
fn encoded_text(records: &[ConnectRecord]) -> Vec<(String, Vec<Parts>)> {
    let text = |p: Option<&PayloadInput<'_>>| match p {
        Some(PayloadInput::JsonLine(t)) => Some((*t).to_owned()),
        None => None,
        Some(other) => panic!("not single-line JSON: {other:?}"),
    };
    let encoded = Encoded::new(records).unwrap();
    encoded
        .produce()
        .into_iter()
        .map(|p| {
            let parts = p
                .request
                .records
                .iter()
                .map(|r| {
                    let value = match &r.value {
                        ValueInput::Given(v) => text(Some(v)),
                        _ => None,
                    };
                    (text(r.key.as_ref()), value)
                })
                .collect();
            (p.topic, parts)
        })
        .collect()
}

#[test]
fn a_batch_hands_on_a_records_own_text_and_the_json_of_the_others_grouped_by_topic() {
    let own = |key: Option<&str>, value: Option<&str>| {
        ConnectRecord::from_text(
            "a",
            JsonText {
                key: key.map(str::to_owned),
                value: value.map(str::to_owned),
            },
        )
    };
    let mut keyed = ConnectRecord::new("b", serde_json::json!({"n": 1}));
    keyed.key = serde_json::json!("k");
    let records = [
        own(None, Some(r#""line""#)),
        keyed,
        own(Some("7"), None),
        ConnectRecord::new("a", serde_json::json!([1, "x"])),
        ConnectRecord::new("b", Value::Null),
    ];
    let s = |t: &str| Some(t.to_owned());
    assert_eq!(
        encoded_text(&records),
        vec![
            (
                "a".to_owned(),
                vec![(None, s(r#""line""#)), (s("7"), None), (None, s(r#"[1,"x"]"#))]
            ),
            ("b".to_owned(), vec![(s(r#""k""#), s(r#"{"n":1}"#)), (None, None)]),
        ]
    );
}
