//! A query's state tables, as the operators see them: get, put, delete and ordered range
//! scans over named tables. Persistent queries read through the broker's state tables and
//! buffer their writes so that they go into the same transaction as the query's output and
//! input offsets; push queries keep their state in memory.
//!
//! A running query is the only writer of its namespace, so a persistent query keeps each of
//! its tables mirrored in memory once read (up to [`MIRROR_LIMIT`] entries): gets, scans and
//! the misses of keys that do not exist are answered without reading the store, and every
//! write still goes to the store in the batch's transaction. A table too large to mirror is
//! read through the store.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use crate::broker::{Broker, Caller, StateTable, StateWrite};

/// Entries of one table held in memory at most; a larger table is read through the store.
pub const MIRROR_LIMIT: usize = 1 << 20;

/// The operators' view of state. Tables are named by the operators' constants.
pub trait State {
    /// The value of `key` in `table`.
    fn get(&mut self, table: &'static str, key: &[u8]) -> Option<Vec<u8>>;
    /// Sets `key` in `table`.
    fn put(&mut self, table: &'static str, key: &[u8], value: Vec<u8>);
    /// Removes `key` from `table`.
    fn delete(&mut self, table: &'static str, key: &[u8]);
    /// The entries of `table` with `from <= key < to`, in key order, at most `limit`.
    fn scan(&mut self, table: &'static str, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)>;
}

/// Entries of one table in key order.
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// The entries of `t` with `from <= key < to`, in key order, at most `limit`.
fn range(t: &Entries, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    if from >= to {
        return Vec::new();
    }
    t.range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
        .take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// State in memory (push queries, tests).
#[derive(Debug, Default)]
pub struct MemState {
    tables: HashMap<&'static str, Entries>,
}

impl State for MemState {
    fn get(&mut self, table: &'static str, key: &[u8]) -> Option<Vec<u8>> {
        self.tables.get(table)?.get(key).cloned()
    }

    fn put(&mut self, table: &'static str, key: &[u8], value: Vec<u8>) {
        self.tables.entry(table).or_default().insert(key.to_vec(), value);
    }

    fn delete(&mut self, table: &'static str, key: &[u8]) {
        if let Some(t) = self.tables.get_mut(table) {
            t.remove(key);
        }
    }

    fn scan(&mut self, table: &'static str, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.tables
            .get(table)
            .map_or_else(Vec::new, |t| range(t, from, to, limit))
    }
}

/// What is known in memory of one stored table.
#[derive(Debug)]
enum Mirror {
    /// Every entry of the table, this batch's writes included.
    Complete(Entries),
    /// Too large to hold: reads go to the store, under this batch's writes.
    Partial,
}

/// State in the store, with this batch's writes buffered on top (read-your-writes). The
/// buffered writes are taken with [`Self::take_writes`] into the batch's transaction.
pub struct StoreState {
    broker: Broker,
    caller: Caller,
    namespace: String,
    /// The tables read so far, with their mirrors.
    tables: HashMap<&'static str, (StateTable, Mirror)>,
    /// Writes of the batch in progress: `None` is a delete.
    pending: BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
    /// Entries of one table mirrored at most ([`MIRROR_LIMIT`] but in tests).
    mirror_limit: usize,
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
            tables: HashMap::new(),
            pending: BTreeMap::new(),
            mirror_limit: MIRROR_LIMIT,
        }
    }

    /// The buffered writes, as state changes for a transaction (the buffer is emptied).
    pub fn take_writes(&mut self) -> Vec<StateWrite> {
        let pending = std::mem::take(&mut self.pending);
        pending
            .into_iter()
            .map(|((table, key), v)| {
                let table = self.table(table).0.clone();
                match v {
                    Some(value) => StateWrite::Put { table, key, value },
                    None => StateWrite::Delete { table, key },
                }
            })
            .collect()
    }

    /// Forgets the buffered writes (their transaction failed) and what was mirrored with them:
    /// tables are read again from the store.
    pub fn discard(&mut self) {
        self.pending.clear();
        self.tables.clear();
    }

    /// A table and its mirror, read from the store on first use.
    fn table(&mut self, name: &'static str) -> &mut (StateTable, Mirror) {
        if !self.tables.contains_key(name) {
            let t = StateTable::new(self.namespace.clone(), name).expect("valid state table names");
            let mirror = self.load(&t);
            self.tables.insert(name, (t, mirror));
        }
        self.tables.get_mut(name).expect("inserted above")
    }

    /// Reads a whole table into memory, unless it holds more than [`MIRROR_LIMIT`] entries.
    fn load(&self, t: &StateTable) -> Mirror {
        let mut entries = Entries::new();
        let mut complete = true;
        let result = self
            .broker
            .state_scan(&self.caller, t, Bound::Unbounded, Bound::Unbounded, |k, v| {
                if entries.len() >= self.mirror_limit {
                    complete = false;
                    return false;
                }
                entries.insert(k.to_vec(), v.to_vec());
                true
            });
        match result {
            Ok(()) if complete => Mirror::Complete(entries),
            Ok(()) => Mirror::Partial,
            Err(e) => {
                tracing::error!(namespace = %self.namespace, table = %t.table, error = %e, "state read failed");
                Mirror::Partial
            }
        }
    }

    /// Records a write for the transaction and applies it to the table's mirror.
    fn write(&mut self, table: &'static str, key: &[u8], value: Option<Vec<u8>>) {
        let limit = self.mirror_limit;
        let (_, mirror) = self.table(table);
        if let Mirror::Complete(entries) = mirror {
            match &value {
                Some(v) => {
                    entries.insert(key.to_vec(), v.clone());
                }
                None => {
                    entries.remove(key);
                }
            }
            if entries.len() > limit {
                // This batch's writes are pending: the store and they hold the table.
                *mirror = Mirror::Partial;
            }
        }
        self.pending.insert((table, key.to_vec()), value);
    }

    /// A read of the store under this batch's writes (for tables not mirrored).
    fn scan_store(
        &self,
        t: &StateTable,
        table: &'static str,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut merged = Entries::new();
        let pending = self.pending.range((table, from.to_vec())..(table, to.to_vec()));
        // Read a little more than asked: pending deletes may hide some.
        let want = limit.saturating_add(pending.clone().filter(|(_, v)| v.is_none()).count());
        let result = self
            .broker
            .state_scan(&self.caller, t, Bound::Included(from), Bound::Excluded(to), |k, v| {
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
        for ((_, k), v) in pending.filter(|((_, k), _)| cut.as_ref().is_none_or(|c| k <= c)) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        merged.into_iter().take(limit).collect()
    }
}

impl State for StoreState {
    fn get(&mut self, table: &'static str, key: &[u8]) -> Option<Vec<u8>> {
        if let (_, Mirror::Complete(entries)) = self.table(table) {
            return entries.get(key).cloned();
        }
        if let Some(v) = self.pending.get(&(table, key.to_vec())) {
            return v.clone();
        }
        let t = self.table(table).0.clone();
        match self.broker.state_get(&self.caller, &t, key) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(namespace = %self.namespace, table, error = %e, "state read failed");
                None
            }
        }
    }

    fn put(&mut self, table: &'static str, key: &[u8], value: Vec<u8>) {
        self.write(table, key, Some(value));
    }

    fn delete(&mut self, table: &'static str, key: &[u8]) {
        self.write(table, key, None);
    }

    fn scan(&mut self, table: &'static str, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        match self.table(table) {
            (_, Mirror::Complete(entries)) => range(entries, from, to, limit),
            (t, Mirror::Partial) => {
                let t = t.clone();
                self.scan_store(&t, table, from, to, limit)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Durability;

    /// A tiny deterministic generator of operations.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % below
        }
    }

    /// Random gets, puts, deletes and scans on stored state, with batches committed or
    /// discarded, must see what in-memory state sees — mirrored, and when a table outgrows
    /// its mirror.
    async fn agrees_with_memory(mirror_limit: usize) {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::testing::broker_in(dir.path()).await;
        let caller = Caller::internal();
        let mut stored = StoreState::new(broker.clone(), caller.clone(), "query:t".into());
        stored.mirror_limit = mirror_limit;
        let (mut model, mut committed) = (MemState::default(), MemState::default());
        let mut rng = Lcg(7);
        let tables = ["agg", "dist"];
        for step in 0..4000 {
            let table = tables[rng.next(2) as usize];
            let key = vec![rng.next(60) as u8];
            match rng.next(10) {
                0..=2 => assert_eq!(stored.get(table, &key), model.get(table, &key), "get at step {step}"),
                3..=5 => {
                    let v = step.to_string().into_bytes();
                    stored.put(table, &key, v.clone());
                    model.put(table, &key, v);
                }
                6 => {
                    stored.delete(table, &key);
                    model.delete(table, &key);
                }
                7 => {
                    let (from, to, limit) = (
                        vec![rng.next(30) as u8],
                        vec![30 + rng.next(40) as u8],
                        1 + rng.next(20),
                    );
                    let limit = limit as usize;
                    assert_eq!(
                        stored.scan(table, &from, &to, limit),
                        model.scan(table, &from, &to, limit),
                        "scan at step {step}"
                    );
                }
                8 => {
                    let writes = stored.take_writes();
                    broker.state_write(&caller, writes, Durability::Wal).await.unwrap();
                    committed = clone(&model);
                }
                _ => {
                    stored.discard();
                    model = clone(&committed);
                }
            }
        }
    }

    fn clone(m: &MemState) -> MemState {
        MemState {
            tables: m.tables.clone(),
        }
    }

    #[tokio::test]
    async fn mirrored_state_reads_as_memory_does() {
        agrees_with_memory(MIRROR_LIMIT).await;
    }

    #[tokio::test]
    async fn state_larger_than_its_mirror_reads_as_memory_does() {
        agrees_with_memory(8).await;
    }
}
