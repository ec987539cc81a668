//! A broker without HTTP, in a directory of the caller's choosing: the harness for fast tests of
//! runtimes (connectors, stream queries) and of the broker itself. Black-box tests start the
//! real binary instead (`tests/common`).

use std::path::Path;

use crate::broker::Broker;
use crate::config::Config;

/// Opens a broker on `dir` with the default config (authentication off, loopback), and a
/// short retention interval so that background passes run within a test.
pub async fn broker_in(dir: &Path) -> Broker {
    broker_with(dir, |_| {}).await
}

/// Opens a broker on `dir` with the default config changed by `adjust`.
pub async fn broker_with(dir: &Path, adjust: impl FnOnce(&mut Config)) -> Broker {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        writer_priority_boost: 0,
        ..Config::default()
    };
    adjust(&mut config);
    Broker::open(config).await.expect("open the test broker")
}
