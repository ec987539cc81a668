//! The datagen task: hands out record numbers `task, task + tasks, task + 2·tasks, …` at
//! `max.interval` per record, each with its source offset `{"position": next number}` so that a
//! restarted task goes on with exactly the next record.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::quickstart::Generator;
use crate::connect::plugin::{SourceBatch, SourceContext, SourceTask, TaskError};
use crate::connect::record::ConnectRecord;

/// The most records handed out by one poll (and so written in one transaction).
const MAX_BATCH: u64 = 1000;

/// Records due closer together than this are handed out in groups (one transaction per
/// group rather than per record).
const LINGER: Duration = Duration::from_millis(10);

/// The most lateness made up for at once (after a pause, say): older due records are not
/// bunched up but spread out again.
const MAX_BACKLOG: Duration = Duration::from_secs(1);

/// How long a task that has produced all its records waits per poll.
const IDLE: Duration = Duration::from_millis(500);

/// What a task needs to know.
pub(super) struct Settings {
    /// The topic to write.
    pub topic: String,
    /// The data.
    pub generator: Generator,
    /// The quickstart's name (the source partition).
    pub quickstart: &'static str,
    /// Time between two records of this task (`None`: as fast as possible).
    pub interval: Option<Duration>,
    /// Records to produce in all tasks together (`None`: forever).
    pub iterations: Option<u64>,
    /// How many tasks share the record numbers.
    pub tasks: u64,
}

/// The datagen task.
pub(super) struct Task {
    settings: Settings,
    partition: Value,
    /// The number of the next record this task hands out.
    next: u64,
    /// When records are due (`None`: as fast as possible).
    pacer: Option<Pacer>,
    finished_logged: bool,
}

impl Task {
    /// A task that resumes after its committed position (or starts at its first number).
    pub(super) fn new(settings: Settings, context: &SourceContext) -> Self {
        let task = u64::from(context.task);
        let partition = json!({"quickstart": settings.quickstart, "task": task});
        let committed = context.offset(&partition).and_then(|o| o["position"].as_u64());
        let next = resume_at(committed.unwrap_or(0), task, settings.tasks);
        if let Some(position) = committed {
            tracing::info!(connector = %context.connector, task, position, next, "datagen resumes");
        }
        Self {
            partition,
            next,
            pacer: settings.interval.map(Pacer::new),
            finished_logged: false,
            settings,
        }
    }

    fn finished(&self) -> bool {
        self.settings.iterations.is_some_and(|end| self.next >= end)
    }

    /// Waits until at least one record is due and says how many are.
    async fn wait_due(&mut self) -> u64 {
        let Some(pacer) = &mut self.pacer else {
            return MAX_BATCH;
        };
        if let Some(wake) = pacer.wake(Instant::now()) {
            tokio::time::sleep_until(wake).await;
        }
        pacer.take(Instant::now())
    }

    fn record(&self, n: u64) -> ConnectRecord {
        let (key, value) = self.settings.generator.record(n);
        ConnectRecord {
            key,
            ..ConnectRecord::new(&self.settings.topic, value)
        }
    }
}

/// When records are due: one per interval, a record late by less than [`MAX_BACKLOG`] made
/// up for at once, records due within [`LINGER`] of each other handed out together.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    /// When the next record is due (`None` before the first).
    due: Option<Instant>,
}

impl Pacer {
    fn new(interval: Duration) -> Self {
        Self { interval, due: None }
    }

    /// When to look again, if nothing is due at `now` (the first call starts the clock).
    fn wake(&mut self, now: Instant) -> Option<Instant> {
        let due = *self.due.get_or_insert(now);
        let wake = if self.interval < LINGER { due + LINGER } else { due };
        (wake > now).then_some(wake)
    }

    /// How many records are due at `now` (at least one, at most [`MAX_BATCH`]); they count as
    /// handed out.
    fn take(&mut self, now: Instant) -> u64 {
        let mut due = self.due.unwrap_or(now);
        if now.saturating_duration_since(due) > MAX_BACKLOG {
            due = now - MAX_BACKLOG;
        }
        let late = now.saturating_duration_since(due).as_nanos() / self.interval.as_nanos().max(1);
        let count = (1 + late).min(u128::from(MAX_BATCH)) as u64;
        self.due = Some(due + self.interval * count as u32);
        count
    }
}

/// The first number at or after `position` that belongs to task `task` of `tasks` (a position
/// committed under another number of tasks is rounded up to this task's share).
fn resume_at(position: u64, task: u64, tasks: u64) -> u64 {
    let tasks = tasks.max(1);
    position + (task + tasks - position % tasks) % tasks
}

#[async_trait]
impl SourceTask for Task {
    async fn poll(&mut self) -> Result<SourceBatch, TaskError> {
        if self.finished() {
            if !self.finished_logged {
                tracing::info!(topic = %self.settings.topic, next = self.next, "datagen task produced all its records");
                self.finished_logged = true;
            }
            tokio::time::sleep(IDLE).await;
            return Ok(SourceBatch::default());
        }
        let count = self.wait_due().await;
        let mut out = SourceBatch::with_capacity(count as usize);
        while (out.records.len() as u64) < count && !self.finished() {
            out.records.push(self.record(self.next));
            self.next += self.settings.tasks;
        }
        if !out.records.is_empty() {
            // The next number this task hands out.
            out.reach(&self.partition, json!({"position": self.next}));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::quickstart::Quickstart;
    use super::*;

    fn settings(tasks: u64, iterations: Option<u64>, interval: Option<Duration>) -> Settings {
        Settings {
            topic: "t".into(),
            generator: Generator::new(Quickstart::Orders, 1, 1, 10),
            quickstart: "orders",
            interval,
            iterations,
            tasks,
        }
    }

    fn numbers(batch: &SourceBatch) -> Vec<u64> {
        batch
            .records
            .iter()
            .map(|r| r.value["orderid"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn a_position_of_another_split_is_rounded_up_to_the_tasks_share() {
        assert_eq!(resume_at(0, 0, 1), 0);
        assert_eq!(resume_at(7, 0, 1), 7);
        assert_eq!(resume_at(6, 1, 3), 7);
        assert_eq!(resume_at(7, 1, 3), 7);
        assert_eq!(resume_at(8, 1, 3), 10);
        assert_eq!(resume_at(8, 0, 2), 8);
    }

    #[tokio::test]
    async fn tasks_split_the_numbers_and_resume_after_their_committed_position() {
        let ctx = |task| SourceContext::new("c", task, |_| None);
        let mut t1 = Task::new(settings(2, Some(7), None), &ctx(1));
        let got = t1.poll().await.unwrap();
        assert_eq!(numbers(&got), [1, 3, 5]);
        assert_eq!(
            got.offsets,
            [(json!({"quickstart": "orders", "task": 1}), json!({"position": 7}))]
        );
        assert!(
            t1.poll().await.unwrap().is_empty(),
            "iterations are shared by all tasks"
        );
        let resumed = SourceContext::new("c", 0, |p| {
            (p == &json!({"quickstart": "orders", "task": 0})).then(|| json!({"position": 4}))
        });
        let mut t0 = Task::new(settings(2, Some(7), None), &resumed);
        assert_eq!(numbers(&t0.poll().await.unwrap()), [4, 6]);
    }

    #[test]
    fn records_come_at_the_interval_and_a_backlog_is_not_bunched_up() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut p = Pacer::new(ms(100));
        assert_eq!(p.wake(t0), None, "the first record is due at once");
        assert_eq!(p.take(t0), 1);
        assert_eq!(p.wake(t0 + ms(30)), Some(t0 + ms(100)));
        assert_eq!(p.take(t0 + ms(100)), 1);
        assert_eq!(p.take(t0 + ms(450)), 3, "late records are made up for");
        // Ten seconds without a poll (a pause): one second is made up for, not ten.
        let later = t0 + ms(10_450);
        assert_eq!(p.wake(later), None);
        assert_eq!(p.take(later), 11);
        assert_eq!(p.wake(later), Some(later + ms(100)));
        // A short interval: records are grouped per LINGER.
        let mut fast = Pacer::new(ms(1));
        assert_eq!(fast.wake(t0), Some(t0 + LINGER));
        assert_eq!(fast.take(t0 + LINGER), 11);
        assert_eq!(fast.wake(t0 + LINGER), Some(t0 + ms(21)));
        assert_eq!(fast.take(t0 + ms(21)), 11);
        let mut fastest = Pacer::new(Duration::from_nanos(1));
        fastest.wake(t0);
        assert_eq!(fastest.take(t0 + ms(5)), MAX_BATCH);
    }
}
