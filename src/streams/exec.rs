//! The incremental operators of a planned query: decode, join with the materialized table,
//! filter, window assignment, aggregation with state, watermarks and window closing,
//! projection. One [`Engine`] per running query; its state lives in a [`State`].
//!
//! ```text
//! state tables of a query (keys; `ord` = i64 as order-preserving u64 BE)
//!   agg   ord(window_end) | ord(window_start) | group key      -> accumulators
//!   dist  ord(end) | ord(start) | len u32 | group key | call u16 | value -> ()   COUNT(DISTINCT)
//!   sess  len u32 | group key | ord(start)                      -> ord(end)      SESSION windows
//!   view  [ord(window_start) |] group key                       -> output row    pull queries
//!   jt    table key                                             -> table row     joins
//!   meta  "max" -> newest event time, "wm" -> watermark
//! ```
//!
//! Stream–stream joins within a time bound (a later step) fit this layout: each side keeps a
//! table `join_l` / `join_r` keyed `len u32 | join key | ord(event time) | offset`, so a record
//! probes the other side with one range scan of its key over `[t - bound, t + bound]`, and the
//! watermark expires both sides with the same range deletes that close windows here.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::codec::{datum_from_state, ord, unord, write_state};
use super::expr::{BinaryOp, Ctx, arithmetic, decimal_of};
use super::plan::{AggCall, AggFunc, OutputColumn, Plan, WindowKind};
use super::sql::Emit;
use super::state::State;
use super::value::{Datum, SqlType};

const AGG: &str = "agg";
const DIST: &str = "dist";
const SESS: &str = "sess";
/// The table of a query's current results, read by pull queries.
pub const VIEW: &str = "view";
const JT: &str = "jt";
const META: &str = "meta";

/// A record to process.
#[derive(Debug, Clone)]
pub struct InRecord<'a> {
    /// The record key (JSON; `Null` when absent).
    pub key: &'a Json,
    /// The record value read as a row of the input's columns ([`super::input::decode_payload`]).
    pub row: Vec<Datum>,
    /// The record timestamp.
    pub timestamp: i64,
}

/// An output row.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    /// The record key.
    pub key: Json,
    /// The row: the text of a JSON object of the output columns, in their order.
    pub value: String,
    /// The record timestamp.
    pub timestamp: i64,
}

/// Why a record was not processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// It could not be read (bad JSON, a value of the wrong type): an error for this record.
    Bad(String),
    /// It came after its window closed (event time + grace behind the watermark).
    Late,
}

/// Options of a running query.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a window accepts late records after its end, ms.
    pub grace_ms: i64,
    /// How long results of closed windows stay queryable, ms (`None`: forever).
    pub retention_ms: Option<i64>,
}

/// One query's operators, with its cached watermark.
#[derive(Debug)]
pub struct Engine {
    plan: Plan,
    settings: Settings,
    /// Newest event time and watermark, once loaded from state.
    clock: Option<(i64, i64)>,
    /// Whether the clock moved since it was last written to state.
    clock_moved: bool,
    /// No open window ends before this (a lower bound, `None` when not known): the watermark
    /// moves with nearly every record, and closing looks for windows only once it passes this.
    next_end: Option<i64>,
    /// Every window ending at or before this is closed, so a search for windows to close starts
    /// after it instead of walking over the deleted entries of all windows closed before.
    closed_to: i64,
    /// Accumulators of the groups touched since the query started, decoded, and whether each
    /// changed since it was last written to state (see [`Self::save`]).
    accs: HashMap<Vec<u8>, (Vec<Acc>, bool)>,
    /// Rows of the joined table read so far, decoded (`None`: no row with that key).
    join_rows: HashMap<Vec<u8>, Option<Vec<Datum>>>,
}

/// Decoded accumulators or table rows kept at most; beyond, the cache starts again empty.
const CACHED: usize = 50_000;

/// Accumulator of one aggregate call.
#[derive(Debug, Clone, PartialEq)]
enum Acc {
    Count(i64),
    Sum(Datum),
    Avg(Datum, i64),
    Min(Datum),
    Max(Datum),
    First(Datum, i64),
    Last(Datum, i64),
}

impl Engine {
    /// An engine for a plan.
    pub fn new(plan: Plan, settings: Settings) -> Self {
        Self {
            plan,
            settings,
            clock: None,
            clock_moved: false,
            accs: HashMap::new(),
            join_rows: HashMap::new(),
            next_end: None,
            closed_to: i64::MIN,
        }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The current watermark (`i64::MIN` before any event).
    pub fn watermark(&mut self, st: &mut dyn State) -> i64 {
        self.load_clock(st).1
    }

    fn load_clock(&mut self, st: &mut dyn State) -> (i64, i64) {
        if let Some(c) = self.clock {
            return c;
        }
        let read = |st: &mut dyn State, k: &[u8]| {
            st.get(META, k)
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map_or(i64::MIN, i64::from_be_bytes)
        };
        let c = (read(st, b"max"), read(st, b"wm"));
        self.clock = Some(c);
        c
    }

    /// Moves the clock; it reaches state with [`Self::save`], once per batch.
    fn store_clock(&mut self, max: i64, wm: i64) {
        self.clock = Some((max, wm));
        self.clock_moved = true;
    }

    /// Writes what the engine holds in memory into state: the clock if it moved, and the
    /// accumulators that changed (at the end of a batch, before its state is taken for its
    /// transaction, and before windows are looked for in state).
    pub fn save(&mut self, st: &mut dyn State) {
        if let (true, Some((max, wm))) = (self.clock_moved, self.clock) {
            st.put(META, b"max", max.to_be_bytes().to_vec());
            st.put(META, b"wm", wm.to_be_bytes().to_vec());
            self.clock_moved = false;
        }
        for (k, (accs, changed)) in &mut self.accs {
            if std::mem::take(changed) {
                st.put(AGG, k, encode_accs(accs));
            }
        }
        if self.accs.len() > CACHED {
            self.accs.clear();
        }
    }

    /// Applies a record of the joined table (upsert, or delete for a tombstone).
    pub fn on_table(&mut self, st: &mut dyn State, key: &Json, value: &Json) -> Result<(), Skip> {
        let Some(join) = &self.plan.join else { return Ok(()) };
        let t = &join.table;
        if value.is_null() {
            let pk = t.key_columns();
            let key_vals: Vec<Datum> = if pk.len() == 1 {
                vec![Datum::from_json(key, pk[0].ty).map_err(Skip::Bad)?]
            } else {
                pk.iter()
                    .map(|c| Datum::from_json(key.get(&c.name).unwrap_or(&Json::Null), c.ty))
                    .collect::<Result<_, _>>()
                    .map_err(Skip::Bad)?
            };
            let k = encode_key(&key_vals);
            st.delete(JT, &k);
            self.cache_join_row(k, None);
            return Ok(());
        }
        let row = decode(t, value).map_err(Skip::Bad)?;
        let key_vals: Vec<Datum> = t
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.primary_key)
            .map(|(i, _)| row[i].clone())
            .collect();
        if key_vals.iter().any(Datum::is_null) {
            return Err(Skip::Bad("the table row's primary key is null".into()));
        }
        let k = encode_key(&key_vals);
        st.put(JT, &k, encode_row(&row));
        self.cache_join_row(k, Some(row));
        Ok(())
    }

    fn cache_join_row(&mut self, key: Vec<u8>, row: Option<Vec<Datum>>) {
        if self.join_rows.len() >= CACHED {
            self.join_rows.clear();
        }
        self.join_rows.insert(key, row);
    }

    /// Processes a record of the input stream, appending what it emits.
    pub fn on_record(&mut self, st: &mut dyn State, rec: InRecord<'_>, out: &mut Vec<Out>) -> Result<(), Skip> {
        let mut row = rec.row;
        let et = match self.plan.time {
            Some(i) => match &row[i] {
                Datum::Timestamp(t) | Datum::Int(t) => *t,
                _ => {
                    return Err(Skip::Bad(format!(
                        "event time column '{}' is null",
                        self.plan.input.columns[i].name
                    )));
                }
            },
            None => rec.timestamp,
        };
        if !self.join(st, &mut row, et)? {
            return self.tick(st, et, out);
        }
        let cx = Ctx::row(&row, et);
        if let Some(f) = &self.plan.filter
            && !f.eval(&cx).map_err(Skip::Bad)?.is_true()
        {
            return self.tick(st, et, out);
        }
        if self.plan.aggregate.is_some() {
            self.aggregate(st, &row, et, out)?;
        } else {
            let value = self.project(&cx).map_err(Skip::Bad)?;
            out.push(Out {
                key: rec.key.clone(),
                value,
                timestamp: et,
            });
        }
        self.tick(st, et, out)
    }

    /// Adds the joined table's columns to the row; false when an inner join finds no row.
    fn join(&mut self, st: &mut dyn State, row: &mut Vec<Datum>, et: i64) -> Result<bool, Skip> {
        let Some(j) = &self.plan.join else { return Ok(true) };
        let cx = Ctx::row(row, et);
        let key: Vec<Datum> = j
            .keys
            .iter()
            .zip(j.table.key_columns())
            .map(|(e, c)| e.eval(&cx).and_then(|d| super::expr::cast(d, c.ty)))
            .collect::<Result<_, _>>()
            .map_err(Skip::Bad)?;
        let found = if key.iter().any(Datum::is_null) {
            None
        } else {
            let k = encode_key(&key);
            match self.join_rows.get(&k) {
                Some(r) => r.clone(),
                None => {
                    let r = st.get(JT, &k).and_then(|v| decode_row(&v));
                    self.cache_join_row(k, r.clone());
                    r
                }
            }
        };
        let j = self.plan.join.as_ref().expect("a join plan");
        match found {
            Some(t) => row.extend(t),
            None if j.left => row.extend(std::iter::repeat_n(Datum::Null, j.table.columns.len())),
            None => return Ok(false),
        }
        Ok(true)
    }

    /// Moves event time and the watermark forward with a record's time, closing windows.
    fn tick(&mut self, st: &mut dyn State, et: i64, out: &mut Vec<Out>) -> Result<(), Skip> {
        let (max, wm) = self.load_clock(st);
        if et > max {
            let new_wm = et.saturating_sub(self.plan.input.watermark_delay_ms).max(wm);
            self.store_clock(et, new_wm);
            if new_wm > wm {
                self.close(st, new_wm, out);
            }
        }
        Ok(())
    }

    /// Moves the watermark forward by `by` ms without a record (a quiet stream's idle time),
    /// closing the windows that ends.
    pub fn advance_idle(&mut self, st: &mut dyn State, by: i64, out: &mut Vec<Out>) {
        let (max, wm) = self.load_clock(st);
        if wm == i64::MIN || by <= 0 {
            return;
        }
        let new_wm = wm.saturating_add(by);
        self.store_clock(max, new_wm);
        self.close(st, new_wm, out);
    }

    /// Whether there are windows still open (so that idle time matters).
    pub fn has_open_windows(&mut self, st: &mut dyn State) -> bool {
        self.save(st);
        self.plan.window.is_some() && !st.scan(AGG, &[], &[0xff; 17], 1).is_empty()
    }

    fn windows(&self, et: i64) -> Vec<(i64, i64)> {
        match self.plan.window {
            None => vec![(i64::MIN, i64::MAX)],
            Some(WindowKind::Tumble { size }) => {
                let start = et.div_euclid(size) * size;
                vec![(start, start + size)]
            }
            Some(WindowKind::Hop { slide, size }) => {
                let last = et.div_euclid(slide) * slide;
                let mut w = Vec::new();
                let mut s = last - size + slide;
                while s <= last {
                    if s <= et && et < s + size {
                        w.push((s, s + size));
                    }
                    s += slide;
                }
                w
            }
            Some(WindowKind::Session { .. }) => Vec::new(),
        }
    }

    fn aggregate(&mut self, st: &mut dyn State, row: &[Datum], et: i64, out: &mut Vec<Out>) -> Result<(), Skip> {
        let wm = self.load_clock(st).1;
        let agg = self.plan.aggregate.as_ref().expect("an aggregate plan");
        let cx = Ctx::row(row, et);
        let keys: Vec<Datum> = agg
            .keys
            .iter()
            .map(|k| k.eval(&cx))
            .collect::<Result<_, _>>()
            .map_err(Skip::Bad)?;
        let args: Vec<Datum> = agg
            .calls
            .iter()
            .map(|c| c.arg.as_ref().map_or(Ok(Datum::Int(1)), |a| a.eval(&cx)))
            .collect::<Result<_, _>>()
            .map_err(Skip::Bad)?;
        let key_bytes = encode_key(&keys);
        if let Some(WindowKind::Session { gap }) = self.plan.window {
            return self.session(st, &keys, &key_bytes, &args, et, gap, out);
        }
        let mut any = false;
        for (start, end) in self.windows(et) {
            if self.plan.window.is_some() && end.saturating_add(self.settings.grace_ms) <= wm {
                continue;
            }
            any = true;
            let k = agg_key(end, start, &key_bytes);
            let mut accs = match self.accs.remove(&k) {
                Some((a, _)) => a,
                None => st
                    .get(AGG, &k)
                    .map_or_else(|| new_accs(&agg.calls), |v| decode_accs(&v, &agg.calls)),
            };
            update(st, &mut accs, &agg.calls, &args, et, (start, end), &key_bytes);
            self.next_end = self.next_end.map(|n| n.min(end));
            let emitted = match self.plan.emit {
                Emit::Changes => self.emit(st, &keys, &accs, (start, end), et, out),
                Emit::Final => Ok(()),
            };
            self.accs.insert(k, (accs, true));
            emitted.map_err(Skip::Bad)?;
        }
        if !any {
            return Err(Skip::Late);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn session(
        &mut self,
        st: &mut dyn State,
        keys: &[Datum],
        key_bytes: &[u8],
        args: &[Datum],
        et: i64,
        gap: i64,
        out: &mut Vec<Out>,
    ) -> Result<(), Skip> {
        let calls = self.plan.aggregate.as_ref().expect("an aggregate plan").calls.clone();
        let prefix = sess_prefix(key_bytes);
        let mut end_of_prefix = prefix.clone();
        end_of_prefix.extend_from_slice(&[0xff; 9]);
        let (mut start, mut end) = (et, et.saturating_add(gap));
        let mut accs = new_accs(&calls);
        let mut merged = Vec::new();
        for (k, v) in st.scan(SESS, &prefix, &end_of_prefix, usize::MAX) {
            let s = unord(&k[k.len() - 8..]);
            let e = unord(&v);
            if s < et.saturating_add(gap) && e > et {
                merged.push((s, e));
            }
        }
        for (s, e) in &merged {
            start = start.min(*s);
            end = end.max(*e);
        }
        let wm = self.load_clock(st).1;
        if end.saturating_add(self.settings.grace_ms) <= wm {
            return Err(Skip::Late);
        }
        for (s, e) in merged {
            let k = agg_key(e, s, key_bytes);
            if let Some(v) = st.get(AGG, &k) {
                merge(&mut accs, decode_accs(&v, &calls));
            }
            st.delete(AGG, &k);
            st.delete(SESS, &sess_key(key_bytes, s));
            move_distinct(st, (s, e), (start, end), key_bytes);
        }
        update(st, &mut accs, &calls, args, et, (start, end), key_bytes);
        st.put(AGG, &agg_key(end, start, key_bytes), encode_accs(&accs));
        self.next_end = self.next_end.map(|n| n.min(end));
        st.put(SESS, &sess_key(key_bytes, start), ord(end).to_vec());
        if self.plan.emit == Emit::Changes {
            self.emit(st, keys, &accs, (start, end), et, out).map_err(Skip::Bad)?;
        }
        Ok(())
    }

    /// Closes the windows that end (with grace) at or before the watermark: emits them (EMIT
    /// FINAL), and drops their state.
    fn close(&mut self, st: &mut dyn State, wm: i64, out: &mut Vec<Out>) {
        let Some(agg) = &self.plan.aggregate else { return };
        if self.plan.window.is_none() {
            return;
        }
        let calls = agg.calls.clone();
        let limit = wm.saturating_sub(self.settings.grace_ms);
        if self.next_end.is_some_and(|n| n > limit) {
            self.expire_view(st, wm);
            return;
        }
        self.save(st);
        // Windows end after the last close's limit: a late record is dropped, not given a
        // window that closing has passed (see `aggregate`).
        let from = if self.closed_to == i64::MIN {
            Vec::new()
        } else {
            ord(self.closed_to.saturating_add(1)).to_vec()
        };
        let to = ord(limit.saturating_add(1)).to_vec();
        loop {
            let batch = st.scan(AGG, &from, &to, 512);
            if batch.is_empty() {
                break;
            }
            for (k, v) in batch {
                let (end, start) = (unord(&k[0..8]), unord(&k[8..16]));
                let key_bytes = k[16..].to_vec();
                let accs = decode_accs(&v, &calls);
                if self.plan.emit == Emit::Final {
                    let keys = decode_key(&key_bytes);
                    if let Err(e) = self.emit(st, &keys, &accs, (start, end), end - 1, out) {
                        tracing::warn!(error = %e, "a closed window could not be emitted");
                    }
                }
                st.delete(AGG, &k);
                self.accs.remove(&k);
                if matches!(self.plan.window, Some(WindowKind::Session { .. })) {
                    st.delete(SESS, &sess_key(&key_bytes, start));
                }
                delete_distinct(st, (start, end), &key_bytes);
            }
        }
        self.closed_to = self.closed_to.max(limit);
        self.next_end = Some(
            st.scan(AGG, &to, &[0xff; 17], 1)
                .first()
                .map_or(i64::MAX, |(k, _)| unord(&k[0..8])),
        );
        self.expire_view(st, wm);
    }

    /// Drops the view's rows of windows older than the retention.
    fn expire_view(&mut self, st: &mut dyn State, wm: i64) {
        if let Some(r) = self.settings.retention_ms {
            let old = ord(wm.saturating_sub(r)).to_vec();
            for (k, _) in st.scan(VIEW, &[], &old, usize::MAX) {
                st.delete(VIEW, &k);
            }
        }
    }

    /// Emits the current row of a group (and keeps it in the view for pull queries).
    fn emit(
        &self,
        st: &mut dyn State,
        keys: &[Datum],
        accs: &[Acc],
        window: (i64, i64),
        ts: i64,
        out: &mut Vec<Out>,
    ) -> Result<(), String> {
        let agg = self.plan.aggregate.as_ref().expect("an aggregate plan");
        let results: Vec<Datum> = accs.iter().zip(&agg.calls).map(|(a, c)| result(a, c)).collect();
        let cx = Ctx {
            row: &[],
            rowtime: ts,
            window: self.plan.window.map(|_| window),
            keys,
            aggs: &results,
        };
        if let Some(h) = &agg.having
            && !h.eval(&cx)?.is_true()
        {
            return Ok(());
        }
        let value = self.project(&cx)?;
        let key = match keys {
            [] => Json::Null,
            [k] => k.to_json(),
            many => Json::Object(
                agg.key_names
                    .iter()
                    .zip(many)
                    .map(|(n, k)| (n.clone(), k.to_json()))
                    .collect(),
            ),
        };
        let mut view_key = Vec::new();
        if self.plan.window.is_some() {
            view_key.extend_from_slice(&ord(window.0));
        }
        view_key.extend_from_slice(&encode_key(keys));
        st.put(VIEW, &view_key, value.as_bytes().to_vec());
        out.push(Out {
            key,
            value,
            timestamp: ts,
        });
        Ok(())
    }

    /// The output columns as a JSON object's text.
    pub fn project(&self, cx: &Ctx<'_>) -> Result<String, String> {
        project(&self.plan.columns, cx)
    }
}

/// The text of a JSON object of `columns` evaluated in `cx`, in their order.
pub fn project(columns: &[OutputColumn], cx: &Ctx<'_>) -> Result<String, String> {
    let mut buf = Vec::with_capacity(24 * columns.len() + 2);
    buf.push(b'{');
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        serde_json::to_writer(&mut buf, &c.name).map_err(|e| e.to_string())?;
        buf.push(b':');
        c.expr.eval_ref(cx)?.write_json(&mut buf);
    }
    buf.push(b'}');
    String::from_utf8(buf).map_err(|e| e.to_string())
}

/// Reads a record value as a row of a source's columns.
pub fn decode(s: &super::catalog::Source, value: &Json) -> Result<Vec<Datum>, String> {
    let Json::Object(obj) = value else {
        return Err(format!("the value is not a JSON object: {}", excerpt(value)));
    };
    s.columns
        .iter()
        .map(|c| {
            let v = obj
                .get(&c.name)
                .or_else(|| {
                    obj.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&c.name))
                        .map(|(_, v)| v)
                })
                .unwrap_or(&Json::Null);
            Datum::from_json(v, c.ty).map_err(|e| format!("column {}: {e}", c.name))
        })
        .collect()
}

fn excerpt(v: &Json) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// A group or table key as bytes (exact and canonical).
pub fn encode_key(keys: &[Datum]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 * keys.len() + 2);
    buf.push(b'[');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_state(&mut buf, k);
    }
    buf.push(b']');
    buf
}

/// The group key back from its bytes.
pub fn decode_key(bytes: &[u8]) -> Vec<Datum> {
    serde_json::from_slice::<Vec<Json>>(bytes)
        .map(|v| v.iter().map(datum_from_state).collect())
        .unwrap_or_default()
}

fn encode_row(row: &[Datum]) -> Vec<u8> {
    encode_key(row)
}

fn decode_row(bytes: &[u8]) -> Option<Vec<Datum>> {
    serde_json::from_slice::<Vec<Json>>(bytes)
        .ok()
        .map(|v| v.iter().map(datum_from_state).collect())
}

fn agg_key(end: i64, start: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + key.len());
    k.extend_from_slice(&ord(end));
    k.extend_from_slice(&ord(start));
    k.extend_from_slice(key);
    k
}

fn sess_prefix(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len() + 8);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

fn sess_key(key: &[u8], start: i64) -> Vec<u8> {
    let mut k = sess_prefix(key);
    k.extend_from_slice(&ord(start));
    k
}

fn dist_prefix(window: (i64, i64), key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(20 + key.len());
    k.extend_from_slice(&ord(window.1));
    k.extend_from_slice(&ord(window.0));
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

fn range_end(prefix: &[u8]) -> Vec<u8> {
    crate::storage::prefix_end(prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1])
}

fn delete_distinct(st: &mut dyn State, window: (i64, i64), key: &[u8]) {
    let p = dist_prefix(window, key);
    for (k, _) in st.scan(DIST, &p, &range_end(&p), usize::MAX) {
        st.delete(DIST, &k);
    }
}

fn move_distinct(st: &mut dyn State, from: (i64, i64), to: (i64, i64), key: &[u8]) {
    let p = dist_prefix(from, key);
    let q = dist_prefix(to, key);
    for (k, v) in st.scan(DIST, &p, &range_end(&p), usize::MAX) {
        st.delete(DIST, &k);
        let mut nk = q.clone();
        nk.extend_from_slice(&k[p.len()..]);
        st.put(DIST, &nk, v);
    }
}

fn new_accs(calls: &[AggCall]) -> Vec<Acc> {
    calls
        .iter()
        .map(|c| match c.func {
            AggFunc::Count => Acc::Count(0),
            AggFunc::Sum => Acc::Sum(Datum::Null),
            AggFunc::Avg => Acc::Avg(Datum::Null, 0),
            AggFunc::Min => Acc::Min(Datum::Null),
            AggFunc::Max => Acc::Max(Datum::Null),
            AggFunc::Earliest => Acc::First(Datum::Null, i64::MAX),
            AggFunc::Latest => Acc::Last(Datum::Null, i64::MIN),
        })
        .collect()
}

fn add(a: &Datum, b: &Datum) -> Datum {
    match (a, b) {
        (Datum::Null, v) | (v, Datum::Null) => v.clone(),
        (a, b) => arithmetic(BinaryOp::Add, a, b).unwrap_or(Datum::Null),
    }
}

fn update(
    st: &mut dyn State,
    accs: &mut [Acc],
    calls: &[AggCall],
    args: &[Datum],
    et: i64,
    window: (i64, i64),
    key: &[u8],
) {
    for (i, ((acc, call), v)) in accs.iter_mut().zip(calls).zip(args).enumerate() {
        if v.is_null() {
            continue;
        }
        if call.distinct {
            let mut k = dist_prefix(window, key);
            k.extend_from_slice(&(i as u16).to_be_bytes());
            k.extend_from_slice(&encode_key(std::slice::from_ref(v)));
            if st.get(DIST, &k).is_some() {
                continue;
            }
            st.put(DIST, &k, Vec::new());
        }
        let less = |a: &Datum, b: &Datum| a.compare(b) == Some(std::cmp::Ordering::Less);
        match acc {
            Acc::Count(n) => *n += 1,
            Acc::Sum(s) => *s = add(s, v),
            Acc::Avg(s, n) => {
                *s = add(s, v);
                *n += 1;
            }
            Acc::Min(m) if m.is_null() || less(v, m) => *m = v.clone(),
            Acc::Max(m) if m.is_null() || less(m, v) => *m = v.clone(),
            Acc::First(f, t) if et < *t => (*f, *t) = (v.clone(), et),
            Acc::Last(l, t) if et >= *t => (*l, *t) = (v.clone(), et),
            _ => {}
        }
    }
}

fn merge(into: &mut [Acc], from: Vec<Acc>) {
    let less = |a: &Datum, b: &Datum| a.compare(b) == Some(std::cmp::Ordering::Less);
    for (a, b) in into.iter_mut().zip(from) {
        match (a, b) {
            (Acc::Count(x), Acc::Count(y)) => *x += y,
            (Acc::Sum(x), Acc::Sum(y)) => *x = add(x, &y),
            (Acc::Avg(s, n), Acc::Avg(s2, n2)) => {
                *s = add(s, &s2);
                *n += n2;
            }
            (Acc::Min(x), Acc::Min(y)) if x.is_null() || (!y.is_null() && less(&y, x)) => *x = y,
            (Acc::Max(x), Acc::Max(y)) if x.is_null() || (!y.is_null() && less(x, &y)) => *x = y,
            (Acc::First(v, t), Acc::First(v2, t2)) if t2 < *t => (*v, *t) = (v2, t2),
            (Acc::Last(v, t), Acc::Last(v2, t2)) if t2 >= *t => (*v, *t) = (v2, t2),
            _ => {}
        }
    }
}

fn result(a: &Acc, call: &AggCall) -> Datum {
    match a {
        Acc::Count(n) => Datum::Int(*n),
        Acc::Sum(s) => match (s, call.ty) {
            (Datum::Decimal(d), SqlType::Decimal { scale, .. }) => Datum::Decimal(
                d.round_dp_with_strategy(u32::from(scale), rust_decimal::RoundingStrategy::MidpointAwayFromZero),
            ),
            (s, _) => s.clone(),
        },
        Acc::Avg(_, 0) => Datum::Null,
        Acc::Avg(s, n) => {
            match (call.ty, s) {
                (SqlType::Decimal { scale, .. }, s) => decimal_of(s)
                    .map(|d| {
                        Datum::Decimal((d / rust_decimal::Decimal::from(*n)).round_dp_with_strategy(
                            u32::from(scale),
                            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                        ))
                    })
                    .unwrap_or(Datum::Null),
                (_, s) => s.as_f64().map_or(Datum::Null, |x| Datum::Double(x / *n as f64)),
            }
        }
        Acc::Min(v) | Acc::Max(v) | Acc::First(v, _) | Acc::Last(v, _) => v.clone(),
    }
}

fn encode_accs(accs: &[Acc]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 * accs.len() + 2);
    buf.push(b'[');
    for (i, a) in accs.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let pair = |buf: &mut Vec<u8>, d: &Datum, n: i64| {
            buf.push(b'[');
            write_state(buf, d);
            buf.push(b',');
            buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            buf.push(b']');
        };
        match a {
            Acc::Count(n) => buf.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Acc::Sum(d) | Acc::Min(d) | Acc::Max(d) => write_state(&mut buf, d),
            Acc::Avg(d, n) | Acc::First(d, n) | Acc::Last(d, n) => pair(&mut buf, d, *n),
        }
    }
    buf.push(b']');
    buf
}

fn decode_accs(bytes: &[u8], calls: &[AggCall]) -> Vec<Acc> {
    let v: Vec<Json> = serde_json::from_slice(bytes).unwrap_or_default();
    if v.len() != calls.len() {
        return new_accs(calls);
    }
    let pair = |j: &Json| (datum_from_state(&j[0]), j[1].as_i64().unwrap_or(0));
    calls
        .iter()
        .zip(&v)
        .map(|(c, j)| match c.func {
            AggFunc::Count => Acc::Count(j.as_i64().unwrap_or(0)),
            AggFunc::Sum => Acc::Sum(datum_from_state(j)),
            AggFunc::Min => Acc::Min(datum_from_state(j)),
            AggFunc::Max => Acc::Max(datum_from_state(j)),
            AggFunc::Avg => {
                let (d, n) = pair(j);
                Acc::Avg(d, n)
            }
            AggFunc::Earliest => {
                let (d, t) = pair(j);
                Acc::First(d, t)
            }
            AggFunc::Latest => {
                let (d, t) = pair(j);
                Acc::Last(d, t)
            }
        })
        .collect()
}
