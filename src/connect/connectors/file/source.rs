//! The file source task: reads complete lines from its position, and follows the file by name
//! (a renamed file is read to its end, then the new file from its start; a truncated file is
//! read again from its start).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::connect::config::Parsed;
use crate::connect::plugin::{SourceContext, SourceRecord, SourceTask, TaskError};
use crate::connect::record::ConnectRecord;

/// Bytes read from the file at most per poll.
const READ_CHUNK: usize = 1 << 20;

/// The file source task.
pub(super) struct Task {
    reader: Option<Reader>,
    poll_interval: Duration,
}

struct Reader {
    path: String,
    topic: String,
    batch_size: usize,
    /// The open file, its inode, and the position after the last line handed out.
    open: Option<(File, u64)>,
    position: u64,
    /// Where to resume when the file is first opened: (position, inode) as committed.
    resume: Option<(u64, Option<u64>)>,
}

impl Task {
    pub(super) fn new(config: &Parsed, context: &SourceContext) -> Self {
        let path = config.str("file").to_owned();
        let resume = context
            .offset(&json!({"filename": path}))
            .map(|o| (o["position"].as_u64().unwrap_or(0), o["inode"].as_u64()));
        Self {
            reader: Some(Reader {
                path,
                topic: config.str("topic").to_owned(),
                batch_size: config.int("batch.size").max(1) as usize,
                open: None,
                position: 0,
                resume,
            }),
            poll_interval: Duration::from_millis(config.int("poll.interval.ms").max(1) as u64),
        }
    }
}

#[async_trait]
impl SourceTask for Task {
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, TaskError> {
        let mut reader = self.reader.take().expect("the reader is put back after each poll");
        let (reader, lines) = tokio::task::spawn_blocking(move || {
            let lines = reader.read();
            (reader, lines)
        })
        .await
        .map_err(|e| TaskError::fatal(format!("file reader: {e}")))?;
        self.reader = Some(reader);
        let records = lines?;
        if records.is_empty() {
            tokio::time::sleep(self.poll_interval).await;
        }
        Ok(records)
    }
}

impl Reader {
    /// The complete lines after the position (at most `batch_size`), or none at the end.
    fn read(&mut self) -> Result<Vec<SourceRecord>, TaskError> {
        if self.open.is_none() && !self.open_file()? {
            return Ok(Vec::new());
        }
        let (file, inode) = self.open.as_mut().expect("opened above");
        let inode = *inode;
        file.seek(SeekFrom::Start(self.position))
            .map_err(|e| TaskError::retriable(format!("{}: {e}", self.path)))?;
        let mut buf = Vec::with_capacity(64 << 10);
        file.take(READ_CHUNK as u64)
            .read_to_end(&mut buf)
            .map_err(|e| TaskError::retriable(format!("{}: {e}", self.path)))?;
        let mut records = Vec::new();
        let mut consumed = 0usize;
        while records.len() < self.batch_size {
            let Some(end) = memchr::memchr(b'\n', &buf[consumed..]) else {
                break;
            };
            let line = &buf[consumed..consumed + end];
            consumed += end + 1;
            records.push(self.record(line, self.position + consumed as u64, inode));
        }
        self.position += consumed as u64;
        if records.is_empty() {
            self.check_rotation(&buf[consumed..], inode, &mut records)?;
        }
        Ok(records)
    }

    /// Opens the file at its path (false when it does not exist yet) and finds where to start.
    fn open_file(&mut self) -> Result<bool, TaskError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(TaskError::retriable(format!("{}: {e}", self.path))),
        };
        let meta = file
            .metadata()
            .map_err(|e| TaskError::retriable(format!("{}: {e}", self.path)))?;
        self.position = match self.resume.take() {
            // The committed position, unless the file was replaced or truncated since.
            Some((pos, inode)) if inode.is_none_or(|i| i == meta.ino()) && pos <= meta.len() => pos,
            _ => 0,
        };
        self.open = Some((file, meta.ino()));
        Ok(true)
    }

    /// At the end of the open file: if the path now names another file (rotation), the rest of
    /// this one (a last line without a newline) is handed out and the new file is read next;
    /// if the file shrank (truncation), it is read again from the start.
    fn check_rotation(&mut self, rest: &[u8], inode: u64, records: &mut Vec<SourceRecord>) -> Result<(), TaskError> {
        let now = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(TaskError::retriable(format!("{}: {e}", self.path))),
        };
        match now {
            Some(m) if m.ino() != inode => {
                if !rest.is_empty() {
                    let end = self.position + rest.len() as u64;
                    records.push(self.record(rest, end, inode));
                }
                tracing::info!(file = %self.path, "file rotated; reading the new file from its start");
                self.open = None;
                self.position = 0;
                self.resume = Some((0, Some(m.ino())));
            }
            Some(m) if m.len() < self.position => {
                tracing::info!(file = %self.path, "file truncated; reading it again from its start");
                self.position = 0;
            }
            _ => {}
        }
        Ok(())
    }

    fn record(&self, line: &[u8], position: u64, inode: u64) -> SourceRecord {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        SourceRecord {
            record: ConnectRecord::new(&self.topic, Value::String(String::from_utf8_lossy(line).into_owned())),
            source_partition: json!({"filename": self.path}),
            source_offset: json!({"position": position, "inode": inode}),
        }
    }
}
