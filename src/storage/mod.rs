//! The topic store: the only module that imports `rocksdb`.
//!
//! It owns the column families, the key encodings ([`keys`]), the value codecs ([`records`])
//! and atomic write batches ([`store`]). Layers above see typed keys and values, never raw
//! RocksDB handles.

pub mod keys;
pub mod records;
pub mod store;

pub use keys::{GroupOffsetKey, IdempotencyKey, PartitionKey, RecordKey, StateTable, TimeIndexKey, prefix_end};
pub use records::{
    BatchBuilder, BatchHeader, BatchIter, CodecError, Format, PartitionStats, Payload, RecordView, sub_batch,
};
pub use store::{Compaction, StorageError, Store, StoreBatch, StoreOptions, WritePressure};
