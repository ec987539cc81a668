//! The RocksDB handle: column families, their tuning, typed reads and atomic write batches.
//!
//! Every method here blocks on disk I/O: async callers run them on the blocking pool or on the
//! log writer thread, never on a tokio worker.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode,
    Options, ReadOptions, WriteBatch, WriteOptions,
};

use super::keys::{
    GroupOffsetKey, IdempotencyKey, NEXT_TOPIC_ID_KEY, PartitionKey, RecordKey, StateTable, TOKEN_KEY_PREFIX,
    TOPIC_KEY_PREFIX, TimeIndexKey, state_namespace_range, token_key, topic_key,
};
use super::records::{BatchHeader, PartitionStats};

const CF_RECORDS: &str = "records";
const CF_META: &str = "meta";
const CF_IDEMPOTENCY: &str = "idempotency";
const CF_OFFSETS: &str = "offsets";
const CF_TIME: &str = "time";
const CF_STATE: &str = "state";

/// A column family: its name and how it is tuned. [`COLUMN_FAMILIES`] is the one list that
/// open, options and size reporting all read.
struct CfSpec {
    name: &'static str,
    options: fn(&StoreOptions, &Shared<'_>) -> Options,
}

/// What the column families share: the block-based table options and the cache behind them.
struct Shared<'a> {
    table: &'a BlockBasedOptions,
    cache: &'a Cache,
}

/// Every column family of the store.
const COLUMN_FAMILIES: [CfSpec; 6] = [
    CfSpec {
        name: CF_RECORDS,
        options: records_options,
    },
    CfSpec {
        name: CF_META,
        options: small_options,
    },
    CfSpec {
        name: CF_IDEMPOTENCY,
        options: small_options,
    },
    CfSpec {
        name: CF_OFFSETS,
        options: small_options,
    },
    CfSpec {
        name: CF_TIME,
        options: small_options,
    },
    CfSpec {
        name: CF_STATE,
        options: state_options,
    },
];

/// The log: append-only, time-ordered keys, large values that are already compact.
fn records_options(options: &StoreOptions, shared: &Shared<'_>) -> Options {
    let mut records = Options::default();
    records.set_block_based_table_factory(shared.table);
    records.set_write_buffer_size(options.write_buffer_bytes);
    // Six memtables of 64 MiB: room for a burst while one flush runs. RocksDB slows writes down
    // at five full ones and stops them at six; appends are refused (503) at four, and at 16
    // level-0 files (broker/pressure.rs), so that clients back off before anyone stalls.
    records.set_max_write_buffer_number(options.max_write_buffers);
    records.set_min_write_buffer_number_to_merge(1);
    records.set_target_file_size_base(64 << 20);
    // Leveled and universal compaction measured within noise of each other over 60 s of 1 KB
    // batches (universal 277 000, leveled 263 000 records/s, one pair): the payloads live in blob files and
    // compaction only moves their small index entries. Leveled is kept: it holds less space.
    match options.compaction {
        Compaction::Level => records.set_level_compaction_dynamic_level_bytes(true),
        Compaction::Universal => records.set_compaction_style(rocksdb::DBCompactionStyle::Universal),
    }
    records.set_compression_type(DBCompressionType::None);
    records.set_bottommost_compression_type(DBCompressionType::Lz4);
    records.set_enable_blob_files(true);
    records.set_min_blob_size(4096);
    records.set_blob_file_size(256 << 20);
    // LZ4 on blob files, measured over 60 s runs (`weir bench --sustained`): for JSON events
    // (repeated field names, varied values) it writes 12 % more records/s than no compression
    // (4.15 M vs 3.70 M 100-byte records/s: the disk, not the CPU, bounds a sustained run); for
    // incompressible 1 KB binary payloads it costs 19 % (151 000 vs 187 000 records/s: the
    // flush thread's LZ4 bounds it). JSON is what this API carries, so LZ4 stays on.
    records.set_blob_compression_type(if options.blob_compression {
        DBCompressionType::Lz4
    } else {
        DBCompressionType::None
    });
    // No blob garbage collection: it relocates the live blobs of the oldest files during every
    // compaction, rewriting an append-only log for nothing (it cost 10 % of 1 KB produce
    // throughput). Space comes back as whole blob files: retention drops the oldest offsets
    // first and compacts the range, and a blob file is deleted once nothing refers to it.
    records.set_enable_blob_gc(false);
    // Blobs read are kept uncompressed in the shared cache: a consumer that polls a stored
    // batch in several parts (500 of a 2000-record batch, say) decompresses it once, not each time.
    records.set_blob_cache(shared.cache);
    records
}

/// Small metadata families: defaults with the shared block cache.
fn small_options(_: &StoreOptions, shared: &Shared<'_>) -> Options {
    let mut o = Options::default();
    o.set_block_based_table_factory(shared.table);
    o
}

/// State tables: updated in place (aggregates, offsets, configs), read by point lookups and
/// short scans; LZ4 because state values (JSON rows, counters) compress well.
fn state_options(_: &StoreOptions, shared: &Shared<'_>) -> Options {
    let mut o = Options::default();
    o.set_block_based_table_factory(shared.table);
    o.set_compression_type(DBCompressionType::Lz4);
    o
}

/// A storage failure: I/O, corruption, or RocksDB itself. The messages carry their cause's
/// text, so the cause is not also given as a source (it would be printed twice).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(rocksdb::Error),
    /// A stored value could not be decoded.
    #[error("{0}")]
    Corrupt(#[from] super::records::CodecError),
    /// The data directory could not be created.
    #[error("data directory: {0}")]
    Io(std::io::Error),
    /// Another process holds the data directory's lock.
    #[error(
        "the data directory {0} is in use by another process (another Weir server?): stop it, or give this one \
another directory with --data-dir"
    )]
    Locked(PathBuf),
}

impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> Self {
        Self::Rocks(e)
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<StorageError> for crate::error::Error {
    fn from(e: StorageError) -> Self {
        crate::error::Error::internal(e)
    }
}

type Result<T> = std::result::Result<T, StorageError>;

/// Tuning knobs for the store. The defaults are what `weir serve` runs with; `weir bench
/// --sustained` takes the others as flags, to measure alternatives over minutes.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Memtable size of the records column family, in bytes.
    pub write_buffer_bytes: usize,
    /// Memtables of the records column family, the one being written included.
    pub max_write_buffers: i32,
    /// Shared block cache size, in bytes.
    pub block_cache_bytes: usize,
    /// How the records column family is compacted.
    pub compaction: Compaction,
    /// Whether blob files (the records' payloads) are LZ4-compressed.
    pub blob_compression: bool,
    /// Background flush and compaction threads.
    pub background_jobs: i32,
}

/// A compaction style of the records column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compaction {
    /// Leveled, with dynamic level sizes.
    Level,
    /// Universal (tiered): fewer rewrites, more space while compacting.
    Universal,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            write_buffer_bytes: 64 << 20,
            max_write_buffers: 6,
            block_cache_bytes: 128 << 20,
            compaction: Compaction::Level,
            blob_compression: true,
            background_jobs: 2,
        }
    }
}

impl StoreOptions {
    /// Full memtables of the records family waiting for a flush at which appends are refused
    /// (`broker/pressure.rs`): RocksDB slows writes down at one more (all but the one being
    /// written) and stops them at two more, so this leaves room to drain.
    pub fn shed_at_immutable(&self) -> u64 {
        u64::try_from(self.max_write_buffers - 2).unwrap_or(1).max(1)
    }
}

/// The embedded topic store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Self> {
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_block_size(32 << 10);
        table.set_bloom_filter(10.0, false);

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(options.background_jobs);
        db_opts.set_max_background_jobs(options.background_jobs);
        db_opts.set_bytes_per_sync(1 << 20);
        db_opts.set_keep_log_file_num(4);
        // The write-ahead log may hold every memtable's worth twice over: a smaller limit makes
        // RocksDB switch the records' half-full memtable whenever flushes lag, so full memtables
        // pile up between the pressure samples (stalls logged with backpressure on).
        let memtables = options.write_buffer_bytes as u64 * u64::try_from(options.max_write_buffers).unwrap_or(1);
        db_opts.set_max_total_wal_size(2 * memtables);

        let shared = Shared {
            table: &table,
            cache: &cache,
        };
        let cfs: Vec<ColumnFamilyDescriptor> = COLUMN_FAMILIES
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name, (cf.options)(options, &shared)))
            .collect();
        std::fs::create_dir_all(path)?;
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|e| {
            // RocksDB's lock file is held with flock: another process has the directory open.
            let text = e.to_string();
            if text.contains("LOCK") && (text.contains("temporarily unavailable") || text.contains("lock hold")) {
                StorageError::Locked(path.to_path_buf())
            } else {
                StorageError::Rocks(e)
            }
        })?;
        Ok(Self {
            db: Arc::new(db),
            path: path.to_path_buf(),
        })
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db.cf_handle(name).expect("column family created at open")
    }

    /// Starts an atomic write batch.
    pub fn batch(&self) -> StoreBatch<'_> {
        self.batch_with_capacity(0)
    }

    /// Starts an atomic write batch with room for about `bytes` of keys and values, so that
    /// RocksDB copies a large group of record batches into it once instead of regrowing it.
    pub fn batch_with_capacity(&self, bytes: usize) -> StoreBatch<'_> {
        StoreBatch {
            store: self,
            inner: WriteBatch::with_capacity_bytes(bytes),
        }
    }

    /// Applies a batch atomically. It is in the write-ahead log when this returns (survives a
    /// crash of the process); with `sync` it is also fsynced (survives power loss).
    pub fn write(&self, batch: StoreBatch<'_>, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch.inner, &opts)?;
        Ok(())
    }

    /// All topic descriptors, as stored by [`StoreBatch::put_topic`].
    pub fn topics(&self) -> Result<Vec<Vec<u8>>> {
        self.meta_prefix(TOPIC_KEY_PREFIX)
    }

    /// All API token records, as stored by [`StoreBatch::put_token`].
    pub fn tokens(&self) -> Result<Vec<Vec<u8>>> {
        self.meta_prefix(TOKEN_KEY_PREFIX)
    }

    fn meta_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let iter = self
            .db
            .iterator_cf(self.cf(CF_META), IteratorMode::From(prefix, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(v.to_vec());
        }
        Ok(out)
    }

    /// The last topic id handed out, 0 when none was.
    pub fn last_topic_id(&self) -> Result<u32> {
        Ok(self
            .db
            .get_cf(self.cf(CF_META), NEXT_TOPIC_ID_KEY)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map_or(0, u32::from_be_bytes))
    }

    /// The stored counters of a partition.
    pub fn partition_stats(&self, key: PartitionKey) -> Result<Option<PartitionStats>> {
        match self.db.get_pinned_cf(self.cf(CF_META), key.encode())? {
            Some(v) => Ok(Some(PartitionStats::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Calls `f(base_offset, batch_bytes)` for each batch of the partition, in offset order,
    /// starting with the batch that holds `from_offset` (or the first one after it), until `f`
    /// returns `false`.
    pub fn scan_batches(
        &self,
        topic_id: u32,
        partition: u32,
        from_offset: u64,
        mut f: impl FnMut(u64, &[u8]) -> bool,
    ) -> Result<()> {
        let lower = RecordKey {
            topic_id,
            partition,
            base_offset: 0,
        }
        .encode();
        let upper = RecordKey {
            topic_id,
            partition,
            base_offset: u64::MAX,
        }
        .encode();
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(lower.to_vec());
        ro.set_iterate_upper_bound(upper.to_vec());
        ro.fill_cache(true);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_RECORDS), ro);
        let start = RecordKey {
            topic_id,
            partition,
            base_offset: from_offset,
        }
        .encode();
        seek_batch(&mut it, &start, from_offset);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key().and_then(RecordKey::decode), it.value()) else {
                break;
            };
            if !f(k.base_offset, v) {
                return Ok(());
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// The base offset of the first batch of a partition after the batch at `base_offset`.
    pub fn next_batch_base(&self, topic_id: u32, partition: u32, base_offset: u64) -> Result<Option<u64>> {
        let Some(from) = base_offset.checked_add(1) else {
            return Ok(None);
        };
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(
            RecordKey {
                topic_id,
                partition,
                base_offset: u64::MAX,
            }
            .encode()
            .to_vec(),
        );
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_RECORDS), ro);
        it.seek(
            RecordKey {
                topic_id,
                partition,
                base_offset: from,
            }
            .encode(),
        );
        let next = it.key().and_then(RecordKey::decode).map(|k| k.base_offset);
        it.status()?;
        Ok(next)
    }

    /// Overwrites a stored batch with `bytes` as they are (tests of corruption handling only).
    #[doc(hidden)]
    pub fn overwrite_batch_for_tests(&self, key: RecordKey, bytes: &[u8]) -> Result<()> {
        self.db.put_cf(self.cf(CF_RECORDS), key.encode(), bytes)?;
        Ok(())
    }

    /// The last entry of a partition's time index whose `max_before` is below `below`.
    pub fn time_index_last_below(&self, topic_id: u32, partition: u32, below: u64) -> Result<Option<TimeIndexKey>> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_TIME));
        it.seek_for_prev(TimeIndexKey::partition_at(topic_id, partition, below));
        // The last key at or before that point: it may be the point itself or another
        // partition's, so it is checked rather than trusted.
        while it.valid() {
            match it.key().and_then(TimeIndexKey::decode) {
                Some(k) if (k.topic_id, k.partition) != (topic_id, partition) => break,
                Some(k) if k.max_before < below => return Ok(Some(k)),
                Some(_) => it.prev(),
                None => break,
            }
        }
        it.status()?;
        Ok(None)
    }

    /// The last entry of a partition's time index (no `max_before` reaches `u64::MAX`: it holds
    /// a timestamp, at most `i64::MAX`).
    pub fn time_index_last(&self, topic_id: u32, partition: u32) -> Result<Option<TimeIndexKey>> {
        self.time_index_last_below(topic_id, partition, u64::MAX)
    }

    /// The first entry of a partition's time index at or after `offset` (entries are in offset
    /// order too: `max_before` never decreases along a partition).
    pub fn time_index_first_from(&self, topic_id: u32, partition: u32, offset: u64) -> Result<Option<TimeIndexKey>> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_TIME));
        it.seek(TimeIndexKey::partition_at(topic_id, partition, 0));
        while it.valid() {
            match it.key().and_then(TimeIndexKey::decode) {
                Some(k) if (k.topic_id, k.partition) != (topic_id, partition) => break,
                Some(k) if k.base_offset >= offset => return Ok(Some(k)),
                Some(_) => it.next(),
                None => break,
            }
        }
        it.status()?;
        Ok(None)
    }

    /// A stored idempotent-produce result.
    pub fn idempotency_get(&self, key: &IdempotencyKey) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_IDEMPOTENCY), key.encode())?)
    }

    /// Calls `f(key, value)` for every stored idempotent-produce result.
    pub fn idempotency_scan(&self, mut f: impl FnMut(IdempotencyKey, &[u8])) -> Result<()> {
        for item in self.db.iterator_cf(self.cf(CF_IDEMPOTENCY), IteratorMode::Start) {
            let (k, v) = item?;
            if let Some(key) = IdempotencyKey::decode(&k) {
                f(key, &v);
            }
        }
        Ok(())
    }

    /// Every committed consumer-group offset.
    pub fn committed_offsets(&self) -> Result<Vec<(GroupOffsetKey, u64)>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_OFFSETS), IteratorMode::Start) {
            let (k, v) = item?;
            if let (Some(key), Ok(v)) = (GroupOffsetKey::decode(&k), <[u8; 8]>::try_from(v.as_ref())) {
                out.push((key, u64::from_be_bytes(v)));
            }
        }
        Ok(out)
    }

    /// The value of `key` in a state table.
    pub fn state_get(&self, table: &StateTable, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_STATE), table.key(key))?)
    }

    /// Calls `f(key, value)` for the entries of a state table with `from <= key < to` (`to`
    /// `None`: to the table's end), in key order, until `f` returns `false`.
    pub fn state_scan(
        &self,
        table: &StateTable,
        from: &[u8],
        to: Option<&[u8]>,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let prefix_len = table.prefix().len();
        let upper = match to {
            Some(to) => table.key(to),
            None => table.range().1,
        };
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(upper);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_STATE), ro);
        it.seek(table.key(from));
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if !f(&k[prefix_len..], v) {
                return Ok(());
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// Bytes (keys and values) held by every state table of a namespace.
    pub fn state_namespace_bytes(&self, namespace: &str) -> Result<u64> {
        let (start, end) = state_namespace_range(namespace);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(end);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_STATE), ro);
        it.seek(start);
        let mut total = 0u64;
        while it.valid() {
            total += (it.key().map_or(0, <[u8]>::len) + it.value().map_or(0, <[u8]>::len)) as u64;
            it.next();
        }
        it.status()?;
        Ok(total)
    }

    /// Stops the store's background work (memtable flushes, compactions), waiting for the jobs
    /// that run. Called at shutdown after the last write: a process that exits while a
    /// compaction thread is inside RocksDB can abort in RocksDB's static destructors
    /// ("pthread lock: Invalid argument"). What was not flushed stays in the write-ahead log,
    /// which the next open replays.
    pub fn quiesce(&self) {
        self.db.cancel_all_background_work(true);
    }

    /// Flushes and fsyncs the write-ahead log.
    pub fn flush_wal(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Asks RocksDB to compact the records of a partition below `to_offset`, so that space
    /// freed by retention is reclaimed.
    pub fn compact_records(&self, topic_id: u32, partition: u32, to_offset: u64) {
        let (from, to) = RecordKey::range_below(topic_id, partition, to_offset);
        self.db.compact_range_cf(self.cf(CF_RECORDS), Some(from), Some(to));
    }

    /// How far the store's background work (memtable flushes, compactions) is behind writes.
    pub fn write_pressure(&self) -> WritePressure {
        let int = |cf: &str, prop: &str| {
            self.db
                .property_int_value_cf(self.cf(cf), prop)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        WritePressure {
            stopped: int(CF_RECORDS, "rocksdb.is-write-stopped") > 0,
            delayed_rate: int(CF_RECORDS, "rocksdb.actual-delayed-write-rate"),
            immutable_memtables: int(CF_RECORDS, "rocksdb.num-immutable-mem-table"),
            flush_pending: int(CF_RECORDS, "rocksdb.mem-table-flush-pending") > 0,
            pending_compaction_bytes: int(CF_RECORDS, "rocksdb.estimate-pending-compaction-bytes"),
            level0_files: int(CF_RECORDS, "rocksdb.num-files-at-level0"),
        }
    }

    /// Bytes used on disk and in memtables by the whole store.
    pub fn size_bytes(&self) -> u64 {
        let mut total = 0;
        for cf in COLUMN_FAMILIES.iter().map(|c| c.name) {
            for prop in [
                "rocksdb.total-sst-files-size",
                "rocksdb.total-blob-file-size",
                "rocksdb.cur-size-all-mem-tables",
            ] {
                total += self
                    .db
                    .property_int_value_cf(self.cf(cf), prop)
                    .ok()
                    .flatten()
                    .unwrap_or(0);
            }
        }
        total
    }

    /// Raw appends with no HTTP, JSON or broker logic — the storage ceilings of the benchmark:
    /// writes `batches` one `WriteBatch` each, at consecutive offsets (following each batch's
    /// record count) from `first_offset` in partition 0 of a private topic id, and returns the
    /// next offset. Nothing is deleted, so flushes and blob files cost what they cost the log.
    pub fn raw_append(&self, topic_id: u32, first_offset: u64, batches: &[Vec<u8>]) -> Result<u64> {
        let mut offset = first_offset;
        for value in batches {
            let mut b = WriteBatch::default();
            let key = RecordKey {
                topic_id,
                partition: 0,
                base_offset: offset,
            };
            b.put_cf(self.cf(CF_RECORDS), key.encode(), value);
            self.db.write(b)?;
            offset += u64::from(BatchHeader::parse(value)?.count);
        }
        Ok(offset)
    }
}

/// Puts `it` on the batch of records that holds `from_offset`, or else on the first one after
/// it. A reader that goes on where it stopped most often starts at a batch's first offset,
/// which a forward seek lands on; only otherwise does it seek backwards, which costs RocksDB
/// more (every memtable and file repositioned, and again to turn forwards).
fn seek_batch(it: &mut rocksdb::DBRawIterator<'_>, start: &[u8], from_offset: u64) {
    let base = |it: &rocksdb::DBRawIterator<'_>| it.key().and_then(RecordKey::decode).map(|k| k.base_offset);
    it.seek(start);
    if it.valid() && base(it) == Some(from_offset) {
        return;
    }
    it.seek_for_prev(start);
    if !it.valid() {
        it.seek(start);
        return;
    }
    // A batch whose header cannot be read may hold the offset: the caller sees it and reports it.
    let holds = match (base(it), it.value()) {
        (Some(b), Some(v)) => match BatchHeader::parse(v) {
            Ok(h) => b + u64::from(h.count) > from_offset,
            Err(_) => true,
        },
        _ => false,
    };
    if !holds {
        it.next();
    }
}

/// The state of the records column family's background work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WritePressure {
    /// RocksDB stopped writes (too many memtables or level-0 files waiting).
    pub stopped: bool,
    /// RocksDB slows writes down to this many bytes per second (0: not delayed).
    pub delayed_rate: u64,
    /// Full memtables waiting to be flushed.
    pub immutable_memtables: u64,
    /// A flush is pending.
    pub flush_pending: bool,
    /// Bytes compaction is estimated to have to rewrite.
    pub pending_compaction_bytes: u64,
    /// Files at level 0.
    pub level0_files: u64,
}

/// An atomic set of writes; applied with [`Store::write`].
pub struct StoreBatch<'a> {
    store: &'a Store,
    inner: WriteBatch,
}

impl StoreBatch<'_> {
    /// Stores one record batch.
    pub fn put_batch(&mut self, key: RecordKey, value: &[u8]) {
        self.inner.put_cf(self.store.cf(CF_RECORDS), key.encode(), value);
    }

    /// Stores a partition's counters.
    pub fn put_partition_stats(&mut self, key: PartitionKey, stats: &PartitionStats) {
        self.inner.put_cf(self.store.cf(CF_META), key.encode(), stats.encode());
    }

    /// Removes a partition's counters.
    pub fn delete_partition_stats(&mut self, key: PartitionKey) {
        self.inner.delete_cf(self.store.cf(CF_META), key.encode());
    }

    /// Stores a topic descriptor under its name.
    pub fn put_topic(&mut self, name: &str, descriptor: &[u8]) {
        self.inner.put_cf(self.store.cf(CF_META), topic_key(name), descriptor);
    }

    /// Removes a topic descriptor.
    pub fn delete_topic(&mut self, name: &str) {
        self.inner.delete_cf(self.store.cf(CF_META), topic_key(name));
    }

    /// Stores an API token record.
    pub fn put_token(&mut self, id: &str, record: &[u8]) {
        self.inner.put_cf(self.store.cf(CF_META), token_key(id), record);
    }

    /// Removes an API token record.
    pub fn delete_token(&mut self, id: &str) {
        self.inner.delete_cf(self.store.cf(CF_META), token_key(id));
    }

    /// Records the last topic id handed out.
    pub fn put_last_topic_id(&mut self, id: u32) {
        self.inner
            .put_cf(self.store.cf(CF_META), NEXT_TOPIC_ID_KEY, id.to_be_bytes());
    }

    /// Deletes the batches of a partition whose base offset is below `to_offset`.
    pub fn delete_batches_below(&mut self, topic_id: u32, partition: u32, to_offset: u64) {
        let (from, to) = RecordKey::range_below(topic_id, partition, to_offset);
        self.inner.delete_range_cf(self.store.cf(CF_RECORDS), from, to);
    }

    /// Adds an entry to a partition's time index.
    pub fn put_time_index(&mut self, key: TimeIndexKey) {
        self.inner.put_cf(self.store.cf(CF_TIME), key.encode(), []);
    }

    /// Deletes a partition's time index entries before `until` (a key of that partition, or
    /// `None` for all of them).
    pub fn delete_time_index_before(&mut self, topic_id: u32, partition: u32, until: Option<TimeIndexKey>) {
        let from = TimeIndexKey::partition_at(topic_id, partition, 0).to_vec();
        let to = match until {
            Some(k) => k.encode().to_vec(),
            None => TimeIndexKey::partition_end(topic_id, partition),
        };
        self.inner.delete_range_cf(self.store.cf(CF_TIME), from, to);
    }

    /// Deletes every batch of a topic, its time index and its idempotency results.
    pub fn delete_topic_data(&mut self, topic_id: u32) {
        self.inner.delete_range_cf(
            self.store.cf(CF_RECORDS),
            RecordKey::topic_start(topic_id).as_slice(),
            RecordKey::topic_end(topic_id).as_slice(),
        );
        // Time index keys share the records' topic/partition prefix.
        self.inner.delete_range_cf(
            self.store.cf(CF_TIME),
            RecordKey::topic_start(topic_id).as_slice(),
            RecordKey::topic_end(topic_id).as_slice(),
        );
        let from = topic_id.to_be_bytes().to_vec();
        let to = match topic_id.checked_add(1) {
            Some(n) => n.to_be_bytes().to_vec(),
            None => vec![0xff; 5],
        };
        self.inner.delete_range_cf(self.store.cf(CF_IDEMPOTENCY), from, to);
    }

    /// Stores an idempotent-produce result.
    pub fn put_idempotency(&mut self, key: &IdempotencyKey, value: &[u8]) {
        self.inner.put_cf(self.store.cf(CF_IDEMPOTENCY), key.encode(), value);
    }

    /// Removes an idempotent-produce result.
    pub fn delete_idempotency(&mut self, key: &IdempotencyKey) {
        self.inner.delete_cf(self.store.cf(CF_IDEMPOTENCY), key.encode());
    }

    /// Stores a committed consumer-group offset.
    pub fn put_committed_offset(&mut self, key: &GroupOffsetKey, offset: u64) {
        self.inner
            .put_cf(self.store.cf(CF_OFFSETS), key.encode(), offset.to_be_bytes());
    }

    /// Deletes every committed offset of a group.
    pub fn delete_group_offsets(&mut self, group: &str) {
        let (start, end) = GroupOffsetKey::group_range(group);
        self.inner.delete_range_cf(self.store.cf(CF_OFFSETS), start, end);
    }

    /// Sets `key` of a state table.
    pub fn state_put(&mut self, table: &StateTable, key: &[u8], value: &[u8]) {
        self.inner.put_cf(self.store.cf(CF_STATE), table.key(key), value);
    }

    /// Removes `key` from a state table.
    pub fn state_delete(&mut self, table: &StateTable, key: &[u8]) {
        self.inner.delete_cf(self.store.cf(CF_STATE), table.key(key));
    }

    /// Removes the entries of a state table with `from <= key < to` (`to` `None`: to its end).
    pub fn state_delete_range(&mut self, table: &StateTable, from: &[u8], to: Option<&[u8]>) {
        let end = match to {
            Some(to) => table.key(to),
            None => table.range().1,
        };
        self.inner
            .delete_range_cf(self.store.cf(CF_STATE), table.key(from), end);
    }

    /// Removes every table of a namespace (a deleted connector's or query's state).
    pub fn state_delete_namespace(&mut self, namespace: &str) {
        let (start, end) = state_namespace_range(namespace);
        self.inner.delete_range_cf(self.store.cf(CF_STATE), start, end);
    }

    /// Deletes the committed offsets of a group for one topic id (the topic was deleted).
    pub fn delete_committed_offset(&mut self, key: &GroupOffsetKey) {
        self.inner.delete_cf(self.store.cf(CF_OFFSETS), key.encode());
    }

    /// Whether the batch holds no writes.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sub_batch;

    /// The base offsets `scan_batches` visits from `from`.
    fn bases(store: &Store, partition: u32, from: u64) -> Vec<u64> {
        let mut seen = Vec::new();
        store
            .scan_batches(1, partition, from, |base, _| {
                seen.push(base);
                true
            })
            .unwrap();
        seen
    }

    #[test]
    fn a_scan_starts_at_the_batch_that_holds_the_offset_or_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let mut batch = store.batch();
        // Partition 0: batches of 3, 2 and 5 records at 0, 3 and 10 (5..10 gone, as after
        // retention); partition 1 and topic 2 around it, which no scan may reach.
        for (topic_id, partition, base, count) in
            [(1, 0, 0, 3), (1, 0, 3, 2), (1, 0, 10, 5), (1, 1, 0, 4), (2, 0, 0, 9)]
        {
            let header = BatchHeader {
                count,
                base_timestamp: 0,
                max_timestamp: 0,
            };
            let key = RecordKey {
                topic_id,
                partition,
                base_offset: base,
            };
            batch.put_batch(key, &sub_batch(&header, count, &[]));
        }
        store.write(batch, false).unwrap();
        for (from, want) in [
            (0, vec![0, 3, 10]),
            (2, vec![0, 3, 10]),
            (3, vec![3, 10]),
            (4, vec![3, 10]),
            (5, vec![10]),
            (10, vec![10]),
            (14, vec![10]),
            (15, vec![]),
        ] {
            assert_eq!(bases(&store, 0, from), want, "from {from}");
        }
        // Partition 1 from inside its batch, and past its end (topic 2's batch comes next).
        assert_eq!(bases(&store, 1, 2), vec![0]);
        assert_eq!(bases(&store, 1, 4), Vec::<u64>::new());
        // A partition with no batches, between partition 1 and topic 2.
        assert_eq!(bases(&store, 2, 0), Vec::<u64>::new());
    }
}
