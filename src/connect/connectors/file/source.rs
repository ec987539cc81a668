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
use crate::connect::plugin::{SourceBatch, SourceContext, SourceTask, TaskError};
use crate::connect::record::{ConnectRecord, JsonText, push_json_str};

/// Bytes read from the file at a time.
const READ_CHUNK: usize = 1 << 20;

/// The longest line read: a longer one fails the task, naming where it is.
const MAX_LINE: usize = 64 << 20;

/// The file source task.
pub(super) struct Task {
    reader: Option<Reader>,
    poll_interval: Duration,
}

struct Reader {
    path: String,
    /// The source partition: `{"filename": path}`.
    partition: Value,
    topic: String,
    batch_size: usize,
    /// The open file, its inode, and the position after the last line handed out.
    open: Option<(File, u64)>,
    position: u64,
    /// Bytes read from the file after `position`, not handed out yet: `buf[start..]` (kept
    /// between polls, so that a batch smaller than a read does not read the file again).
    buf: Vec<u8>,
    start: usize,
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
                partition: json!({"filename": path}),
                path,
                topic: config.str("topic").to_owned(),
                batch_size: config.int("batch.size").max(1) as usize,
                open: None,
                position: 0,
                buf: Vec::new(),
                start: 0,
                resume,
            }),
            poll_interval: Duration::from_millis(config.int("poll.interval.ms").max(1) as u64),
        }
    }
}

#[async_trait]
impl SourceTask for Task {
    async fn poll(&mut self) -> Result<SourceBatch, TaskError> {
        let mut reader = self.reader.take().expect("the reader is put back after each poll");
        let (reader, lines) = tokio::task::spawn_blocking(move || {
            let lines = reader.read();
            (reader, lines)
        })
        .await
        .map_err(|e| TaskError::fatal(format!("file reader: {e}")))?;
        self.reader = Some(reader);
        let batch = lines?;
        if batch.is_empty() {
            tokio::time::sleep(self.poll_interval).await;
        }
        Ok(batch)
    }
}

impl Reader {
    /// The complete lines after the position (at most `batch_size`) and the position after
    /// them, or nothing at the end.
    fn read(&mut self) -> Result<SourceBatch, TaskError> {
        if self.open.is_none() && !self.open_file()? {
            return Ok(SourceBatch::default());
        }
        let inode = self.fill()?;
        let data = &self.buf[self.start..];
        let mut batch = SourceBatch::with_capacity(self.batch_size.min(data.len() / 32 + 1));
        let mut consumed = 0usize;
        while batch.records.len() < self.batch_size {
            let Some(end) = memchr::memchr(b'\n', &data[consumed..]) else {
                break;
            };
            batch.records.push(self.record(&data[consumed..consumed + end]));
            consumed += end + 1;
        }
        self.start += consumed;
        self.position += consumed as u64;
        if batch.records.is_empty() {
            let rest = self.buf.split_off(self.start);
            self.buf.clear();
            self.start = 0;
            let position = self.position;
            self.check_rotation(&rest, inode, &mut batch)?;
            if self.open.is_some() && self.position == position {
                // Neither rotated nor truncated: the start of a line still being written.
                self.buf = rest;
            }
        } else {
            batch.reach(&self.partition, offset(self.position, inode));
        }
        Ok(batch)
    }

    /// Reads more of the open file into the buffer: until half a read is buffered with a
    /// whole line in it, or the file ends. A line longer than a read is read whole, up to
    /// [`MAX_LINE`]. Returns the file's inode.
    fn fill(&mut self) -> Result<u64, TaskError> {
        let (file, inode) = self.open.as_mut().expect("the file is open");
        // Buffered bytes already known to hold no line break.
        let mut checked = 0;
        loop {
            let buffered = self.buf.len() - self.start;
            let whole_line = memchr::memchr(b'\n', &self.buf[self.start + checked..]).is_some();
            if whole_line && buffered >= READ_CHUNK / 2 {
                break;
            }
            if buffered >= MAX_LINE {
                return Err(TaskError::fatal(format!(
                    "{}: the line at byte {} is longer than {} MiB",
                    self.path,
                    self.position,
                    MAX_LINE >> 20
                )));
            }
            if !whole_line {
                checked = buffered;
            }
            self.buf.drain(..self.start);
            self.start = 0;
            let more = READ_CHUNK.saturating_sub(buffered).max(READ_CHUNK / 2);
            self.buf.reserve(more);
            let read = file
                .seek(SeekFrom::Start(self.position + buffered as u64))
                .and_then(|_| file.take(more as u64).read_to_end(&mut self.buf))
                .map_err(|e| TaskError::retriable(format!("{}: {e}", self.path)))?;
            if read == 0 || whole_line {
                break;
            }
        }
        Ok(*inode)
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
        self.buf.clear();
        self.start = 0;
        Ok(true)
    }

    /// At the end of the open file: if the path now names another file (rotation), the rest of
    /// this one (a last line without a newline) is handed out and the new file is read next;
    /// if the file shrank (truncation), it is read again from the start.
    fn check_rotation(&mut self, rest: &[u8], inode: u64, batch: &mut SourceBatch) -> Result<(), TaskError> {
        let now = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(TaskError::retriable(format!("{}: {e}", self.path))),
        };
        match now {
            Some(m) if m.ino() != inode => {
                if !rest.is_empty() {
                    let end = self.position + rest.len() as u64;
                    batch.push(self.record(rest), &self.partition, offset(end, inode));
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

    /// A line (without its line break) as a record: a JSON string, as Kafka's file source
    /// gives with the JSON converter, written as JSON text straight away (no JSON value is
    /// built unless a transform asks for one).
    fn record(&self, line: &[u8]) -> ConnectRecord {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut text = String::new();
        match simdutf8::basic::from_utf8(line) {
            Ok(line) => push_json_str(&mut text, line),
            Err(_) => push_json_str(&mut text, &String::from_utf8_lossy(line)),
        }
        let text = JsonText {
            key: None,
            value: Some(text),
        };
        ConnectRecord::from_text(&self.topic, text)
    }
}

/// The source offset of a position in a file.
fn offset(position: u64, inode: u64) -> Value {
    json!({"position": position, "inode": inode})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(path: &std::path::Path) -> Reader {
        Reader {
            path: path.to_string_lossy().into_owned(),
            partition: json!({"filename": "f"}),
            topic: "t".into(),
            batch_size: 1000,
            open: None,
            position: 0,
            buf: Vec::new(),
            start: 0,
            resume: None,
        }
    }

    #[test]
    fn lines_longer_than_a_read_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        let long = "x".repeat(3 * READ_CHUNK + 17);
        std::fs::write(&path, format!("a\n{long}\nb\npartial")).unwrap();
        let mut r = reader(&path);
        let mut lengths = Vec::new();
        for _ in 0..10 {
            let mut batch = r.read().unwrap();
            if batch.records.is_empty() {
                break;
            }
            for r in &mut batch.records {
                r.decode_text().unwrap();
                lengths.push(r.value.as_str().unwrap().len());
            }
            let position = batch.offsets[0].1["position"].as_u64().unwrap();
            assert_eq!(position, r.position, "the offset is the position after the batch");
        }
        assert_eq!(
            lengths,
            [1, long.len(), 1],
            "a partial last line waits for its line break"
        );
        assert_eq!(r.position, (2 + long.len() + 1 + 2) as u64);
    }
}
