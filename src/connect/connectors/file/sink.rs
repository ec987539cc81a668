//! The file sink task: appends each record's value as one JSON line (its text as stored, with
//! no JSON value built unless a transform asks for one); a batch counts as written
//! once the file's data is synced (`fdatasync`), which runs while the next batch is appended
//! (at-least-once: after a crash, or a failed sync, the batches after the last commit are
//! appended again).

use std::fs::File;
use std::io::Write as _;

use async_trait::async_trait;

use crate::connect::plugin::{Flush, PutError, SinkTask};
use crate::connect::record::ConnectRecord;

/// The file sink task.
pub(super) struct Task {
    path: String,
    /// The file as last appended to, until it is synced.
    unsynced: Option<File>,
}

impl Task {
    pub(super) fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            unsynced: None,
        }
    }
}

#[async_trait]
impl SinkTask for Task {
    async fn put(&mut self, records: &[ConnectRecord]) -> Result<(), PutError> {
        let mut text = Vec::with_capacity(records.len() * 64);
        for r in records {
            if !r.write_value(&mut text) {
                text.extend_from_slice(b"null");
            }
            text.push(b'\n');
        }
        // Opened by name for each batch: a file moved away is created again.
        let path = self.path.clone();
        let file = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            f.write_all(&text)?;
            Ok::<_, std::io::Error>(f)
        })
        .await
        .map_err(|e| PutError::Fatal(e.to_string()))?
        .map_err(|e| PutError::Retriable(format!("{}: {e}", self.path)))?;
        // Synced by `flush`, through this descriptor, while the next batch is appended.
        self.unsynced = Some(file);
        Ok(())
    }

    fn reads_text(&self) -> bool {
        true
    }

    fn flush(&mut self) -> Flush {
        let Some(file) = self.unsynced.take() else {
            return Box::pin(std::future::ready(Ok(())));
        };
        let path = self.path.clone();
        let sync = tokio::task::spawn_blocking(move || file.sync_data());
        Box::pin(async move {
            match sync.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{path}: syncing the file: {e}")),
                Err(e) => Err(format!("{path}: syncing the file: {e}")),
            }
        })
    }
}
