//! The file sink task: appends each record's value as one JSON line and syncs the file before
//! the batch counts as written (at-least-once: after a crash, the batch after the last commit
//! is appended again).

use std::io::Write as _;

use async_trait::async_trait;

use crate::connect::plugin::{PutError, SinkTask};
use crate::connect::record::{ConnectRecord, write_json};

/// The file sink task.
pub(super) struct Task {
    path: String,
}

impl Task {
    pub(super) fn new(path: &str) -> Self {
        Self { path: path.to_owned() }
    }
}

#[async_trait]
impl SinkTask for Task {
    async fn put(&mut self, records: &[ConnectRecord]) -> Result<(), PutError> {
        let mut text = Vec::with_capacity(records.len() * 64);
        for r in records {
            write_json(&mut text, &r.value);
            text.push(b'\n');
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            f.write_all(&text)?;
            f.sync_data()
        })
        .await
        .map_err(|e| PutError::Fatal(e.to_string()))?
        .map_err(|e| PutError::Retriable(format!("{}: {e}", self.path)))
    }
}
