//! Streams: continuous SQL over topics, inside the server.
//!
//! ```text
//!  http/streams.rs ──> Streams (this module): statements, catalog, queries
//!                        ├─ sql/       statements (sqlparser + the streaming ones), positions
//!                        ├─ plan.rs    SELECT → Plan (input, join, window, filter, aggregate, columns)
//!                        ├─ exec.rs    incremental operators over a State; watermarks, windows
//!                        ├─ expr.rs, functions.rs, value.rs   expressions, functions, types
//!                        ├─ input.rs   record values read straight into rows
//!                        ├─ state.rs   query state: store-backed (persistent) or in memory (push)
//!                        └─ run.rs     reading inputs, one transaction per batch
//! ```
//!
//! A persistent query runs as its own principal (`query:<id>`) and commits its output records,
//! its state changes and its input offsets in one transaction: exactly once within Weir's store.

pub mod catalog;
mod codec;
pub mod exec;
pub mod expr;
pub mod functions;
pub mod input;
pub mod plan;
mod queries;
pub mod run;
pub mod sql;
pub mod state;
pub mod value;

pub use queries::{Column, PushRows, QueryInfo, Row, SourceInfo, StatementResult, Streams, StreamsError, sql_error};
