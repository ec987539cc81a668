//! The connector plugins, one folder each: its config definition (the single source for create,
//! validate and the plugin listing) and its tasks.

pub mod datagen;
pub mod file;
pub mod http;
pub mod jdbc;
pub mod postgres_cdc;

use std::sync::Arc;

use super::plugin::Connector;

/// Every connector plugin.
pub fn all() -> Vec<Arc<dyn Connector>> {
    vec![
        Arc::new(file::FileSource),
        Arc::new(file::FileSink),
        Arc::new(datagen::Datagen),
        Arc::new(http::HttpSink),
        Arc::new(jdbc::JdbcSource),
        Arc::new(jdbc::JdbcSink),
        Arc::new(postgres_cdc::PostgresCdc),
    ]
}
