//! Typed state tables for in-process clients and runtimes: namespaced key-value tables in the
//! store (get, put, delete, prefix and range scans, range delete), written on their own or
//! inside a transaction together with records and offsets.
//!
//! A namespace belongs to a principal: a connector (`connector:<name>`) or a query
//! (`query:<id>`) reads and writes only its own namespace; the server's runtimes act as the
//! internal principal and may use any.

use std::ops::Bound;

use super::Broker;
use super::caller::{Caller, Principal};
use super::topics::Durability;
use crate::error::{Error, ErrorCode, Result};
pub use crate::storage::StateTable;
use crate::storage::StoreBatch;

/// One change to a state table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateWrite {
    /// Sets a key.
    Put {
        /// The table.
        table: StateTable,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Removes a key.
    Delete {
        /// The table.
        table: StateTable,
        /// The key.
        key: Vec<u8>,
    },
    /// Removes the keys `from <= key < to` (`to` `None`: to the table's end).
    DeleteRange {
        /// The table.
        table: StateTable,
        /// First key removed.
        from: Vec<u8>,
        /// First key kept, if any.
        to: Option<Vec<u8>>,
    },
    /// Removes every table of a namespace.
    DeleteNamespace {
        /// The namespace.
        namespace: String,
    },
}

impl StateWrite {
    /// The namespace the change touches.
    pub fn namespace(&self) -> &str {
        match self {
            Self::Put { table, .. } | Self::Delete { table, .. } | Self::DeleteRange { table, .. } => &table.namespace,
            Self::DeleteNamespace { namespace } => namespace,
        }
    }

    /// Adds the change to a write.
    pub(crate) fn put(&self, batch: &mut StoreBatch<'_>) {
        match self {
            Self::Put { table, key, value } => batch.state_put(table, key, value),
            Self::Delete { table, key } => batch.state_delete(table, key),
            Self::DeleteRange { table, from, to } => batch.state_delete_range(table, from, to.as_deref()),
            Self::DeleteNamespace { namespace } => batch.state_delete_namespace(namespace),
        }
    }
}

/// A caller may use a namespace named after its own principal; the server itself (and, with
/// authentication off or as admin, anyone) may use any.
pub fn authorize_state(caller: &Caller, namespace: &str) -> Result<()> {
    match &caller.principal {
        Principal::Internal | Principal::Admin | Principal::Anonymous => Ok(()),
        p if p.name() == namespace => Ok(()),
        p => Err(Error::new(
            ErrorCode::Forbidden,
            format!("state namespace '{namespace}' does not belong to {}", p.name()),
        )),
    }
}

impl Broker {
    /// Reads one key of a state table. Blocks on the store: call it from a blocking context or
    /// where a point lookup's few microseconds are acceptable.
    pub fn state_get(&self, caller: &Caller, table: &StateTable, key: &[u8]) -> Result<Option<Vec<u8>>> {
        authorize_state(caller, &table.namespace)?;
        Ok(self.inner.store.state_get(table, key)?)
    }

    /// Calls `f(key, value)` in key order for the entries of a table within the bounds, until
    /// it returns `false`. Blocks on the store like [`Self::state_get`].
    pub fn state_scan(
        &self,
        caller: &Caller,
        table: &StateTable,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        authorize_state(caller, &table.namespace)?;
        let start: Vec<u8> = match from {
            Bound::Included(k) => k.to_vec(),
            Bound::Excluded(k) => {
                let mut k = k.to_vec();
                k.push(0);
                k
            }
            Bound::Unbounded => Vec::new(),
        };
        let (end, inclusive_end) = match to {
            Bound::Included(k) => (Some(k.to_vec()), true),
            Bound::Excluded(k) => (Some(k.to_vec()), false),
            Bound::Unbounded => (None, false),
        };
        // An inclusive end is scanned to its successor.
        let end = match (end, inclusive_end) {
            (Some(mut k), true) => {
                k.push(0);
                Some(k)
            }
            (e, _) => e,
        };
        Ok(self.inner.store.state_scan(table, &start, end.as_deref(), &mut f)?)
    }

    /// Calls `f(key, value)` for every entry of a table whose key starts with `prefix`.
    pub fn state_scan_prefix(
        &self,
        caller: &Caller,
        table: &StateTable,
        prefix: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let end = crate::storage::prefix_end(prefix);
        let to = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.state_scan(caller, table, Bound::Included(prefix), to, f)
    }

    /// Bytes held by the tables of a namespace.
    pub fn state_bytes(&self, caller: &Caller, namespace: &str) -> Result<u64> {
        authorize_state(caller, namespace)?;
        Ok(self.inner.store.state_namespace_bytes(namespace)?)
    }

    /// Applies state changes atomically (one write), with the given durability.
    pub async fn state_write(&self, caller: &Caller, writes: Vec<StateWrite>, durability: Durability) -> Result<()> {
        for w in &writes {
            authorize_state(caller, w.namespace())?;
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.write_atomic(Vec::new(), None, writes, durability == Durability::Fsync)
            .await?;
        Ok(())
    }
}
