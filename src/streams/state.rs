//! A query's state tables, as the operators see them: get, put, delete and ordered range
//! scans over named tables. Persistent queries read through the broker's state tables and
//! buffer their writes so that they go into the same transaction as the query's output and
//! input offsets; push queries keep their state in memory.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::broker::{Broker, Caller, StateTable, StateWrite};

/// The operators' view of state.
pub trait State {
    /// The value of `key` in `table`.
    fn get(&mut self, table: &str, key: &[u8]) -> Option<Vec<u8>>;
    /// Sets `key` in `table`.
    fn put(&mut self, table: &str, key: &[u8], value: Vec<u8>);
    /// Removes `key` from `table`.
    fn delete(&mut self, table: &str, key: &[u8]);
    /// The entries of `table` with `from <= key < to`, in key order, at most `limit`.
    fn scan(&mut self, table: &str, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)>;
}

/// State in memory (push queries, tests).
#[derive(Debug, Default)]
pub struct MemState {
    tables: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl State for MemState {
    fn get(&mut self, table: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.tables.get(table)?.get(key).cloned()
    }

    fn put(&mut self, table: &str, key: &[u8], value: Vec<u8>) {
        self.tables
            .entry(table.to_owned())
            .or_default()
            .insert(key.to_vec(), value);
    }

    fn delete(&mut self, table: &str, key: &[u8]) {
        if let Some(t) = self.tables.get_mut(table) {
            t.remove(key);
        }
    }

    fn scan(&mut self, table: &str, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Some(t) = self.tables.get(table) else {
            return Vec::new();
        };
        t.range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// State in the store, with this batch's writes buffered on top (read-your-writes). The
/// buffered writes are taken with [`Self::take_writes`] into the batch's transaction.
pub struct StoreState {
    broker: Broker,
    caller: Caller,
    namespace: String,
    /// Writes of the batch in progress: `None` is a delete.
    pending: BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>,
}

impl std::fmt::Debug for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreState")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl StoreState {
    /// The state of the namespace `query:<id>`, read and written as its principal.
    pub fn new(broker: Broker, caller: Caller, namespace: String) -> Self {
        Self {
            broker,
            caller,
            namespace,
            pending: BTreeMap::new(),
        }
    }

    fn table(&self, name: &str) -> StateTable {
        StateTable::new(self.namespace.clone(), name).expect("valid state table names")
    }

    /// The buffered writes, as state changes for a transaction (the buffer is emptied).
    pub fn take_writes(&mut self) -> Vec<StateWrite> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|((table, key), v)| match v {
                Some(value) => StateWrite::Put {
                    table: self.table(&table),
                    key,
                    value,
                },
                None => StateWrite::Delete {
                    table: self.table(&table),
                    key,
                },
            })
            .collect()
    }

    /// Forgets the buffered writes (their transaction failed).
    pub fn discard(&mut self) {
        self.pending.clear();
    }
}

impl State for StoreState {
    fn get(&mut self, table: &str, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(v) = self.pending.get(&(table.to_owned(), key.to_vec())) {
            return v.clone();
        }
        let t = self.table(table);
        match self.broker.state_get(&self.caller, &t, key) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(namespace = %self.namespace, table, error = %e, "state read failed");
                None
            }
        }
    }

    fn put(&mut self, table: &str, key: &[u8], value: Vec<u8>) {
        self.pending.insert((table.to_owned(), key.to_vec()), Some(value));
    }

    fn delete(&mut self, table: &str, key: &[u8]) {
        self.pending.insert((table.to_owned(), key.to_vec()), None);
    }

    fn scan(&mut self, table: &str, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let t = self.table(table);
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        // Read a little more than asked: pending deletes may hide some.
        let deletes = self
            .pending
            .range((table.to_owned(), from.to_vec())..(table.to_owned(), to.to_vec()))
            .filter(|(_, v)| v.is_none())
            .count();
        let want = limit.saturating_add(deletes);
        let result = self
            .broker
            .state_scan(&self.caller, &t, Bound::Included(from), Bound::Excluded(to), |k, v| {
                merged.insert(k.to_vec(), v.to_vec());
                merged.len() < want
            });
        if let Err(e) = result {
            tracing::error!(namespace = %self.namespace, table, error = %e, "state scan failed");
        }
        // A scan cut short at its last key knows nothing beyond it: pending writes past it wait.
        let cut = (merged.len() >= want)
            .then(|| merged.keys().next_back().cloned())
            .flatten();
        for ((_, k), v) in self
            .pending
            .range((table.to_owned(), from.to_vec())..(table.to_owned(), to.to_vec()))
            .filter(|((_, k), _)| cut.as_ref().is_none_or(|c| k <= c))
        {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        merged.into_iter().take(limit).collect()
    }
}
