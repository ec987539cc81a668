//! # Weir
//!
//! Kafka's client APIs over plain HTTP, on an embedded RocksDB topic log, in one binary.
//!
//! ```text
//!  HTTP clients ──> http/    axum routes, problem+json errors, OpenAPI (thin)
//!                     │      one broker call per request, with a Caller context
//!                   streams/ continuous SQL: statements, plans, incremental operators, queries
//!                   connect/ connector runtime: configs, tasks, transforms, connectors
//!                     │      (an in-process client of the broker, as its own principals)
//!                   broker/  topics, produce, fetch, groups, transactions, state tables,
//!                     │      retention, the log writer thread; authorizes every operation
//!                     │
//!                   storage/ the only module that imports rocksdb: keys, batch codec, store
//! ```
//!
//! Dependencies point down only. [`run`] serves the API on a listener until a shutdown signal.

pub mod bench;
pub mod broker;
pub mod config;
pub mod connect;
pub mod error;
pub mod http;
pub mod json_int;
mod json_text;
pub mod storage;
pub mod streams;
pub mod testing;

use std::future::Future;

use tokio::net::TcpListener;

pub use broker::Broker;

/// Reloads the TLS certificate and key when the process gets SIGHUP.
fn reload_tls_on_sighup(config: Config, shared: http::tls::SharedTls) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match http::tls::load(&config) {
                Ok(Some(tls)) => {
                    *shared.write().expect("tls lock") = tls;
                    tracing::info!("TLS certificate reloaded");
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the previous certificate"),
            }
        }
    });
}
pub use config::Config;

/// Serves Weir on `listener` until `shutdown` completes, then lets in-flight requests finish
/// (up to `config.shutdown_grace_ms`), writes out everything acknowledged and closes the store.
pub async fn run(
    listener: TcpListener,
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The address really bound (a configured port 0 becomes the one the system chose): connector
    // workers report it as their `worker_id`.
    config.listen = listener.local_addr()?;
    let options = http::serve::ServeOptions::from_config(&config);
    let tls = http::tls::load(&config)?;
    if !config.auth_enabled() {
        tracing::warn!(addr = %config.listen, "authentication is off: anyone who can reach this address may do anything");
    }
    // The recorder first: topics register their counters as they are loaded.
    http::metrics_handle();
    let broker = Broker::open(config.clone()).await?;
    let connect = connect::Connect::start(broker.clone()).await?;
    let streams = streams::Streams::start(broker.clone()).await?;
    let app = http::router(broker.clone(), connect, streams);
    let token = broker.shutdown_token();
    http::drain_metrics(token.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %listener.local_addr()?, scheme, "weir listening");
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        token.cancel();
    };
    let tls = tls.map(|tls| {
        let shared: http::tls::SharedTls = std::sync::Arc::new(std::sync::RwLock::new(tls));
        reload_tls_on_sighup(config, shared.clone());
        shared
    });
    http::serve::serve(listener, app, tls, options, signal).await;
    broker.close().await;
    tracing::info!("weir stopped");
    Ok(())
}
