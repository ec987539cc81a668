//! Connect: the connector runtime inside the server, managed through Kafka Connect's REST API.
//!
//! ```text
//!  http/connect.rs ──> Connect (this module): configs, target states, task supervision
//!                        │  persisted in state tables (namespace `connect`)
//!                        ├─ worker.rs   one task's loop: poll → transforms → transaction
//!                        │              (sources) or consume → transforms → put → commit (sinks)
//!                        ├─ config.rs   ConfigDef: typed keys, validate, masking, secrets
//!                        ├─ transforms/ SMTs and predicates with Connect's names
//!                        └─ connectors/ one folder per connector plugin
//! ```
//!
//! Each connector runs as its own principal (`connector:<name>`) through the same broker calls
//! as HTTP clients, with grants for exactly the topics and group its config names (never more
//! than its creator held). A source task writes its records and its source offsets in one
//! transaction: exactly once across `kill -9`.

pub mod common;
pub mod config;
pub mod connectors;
pub mod metrics;
pub mod plugin;
pub mod record;
mod runtime;
pub mod status;
pub mod transforms;
pub mod worker;

pub use runtime::{Connect, CreateRequest};
