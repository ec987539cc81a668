//! Server configuration: defaults, a TOML file, environment variables and flags, merged in
//! that order (a later source wins).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default listen address: loopback only.
pub const fn default_listen() -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080)
}
/// Default largest request body: 32 MiB.
pub const fn default_max_request_bytes() -> usize {
    32 << 20
}
/// Default most records accepted in one produce request.
pub const fn default_max_records_per_request() -> usize {
    10_000
}
/// Default `max.message.bytes` of new topics (Kafka's default).
pub const fn default_max_message_bytes() -> u64 {
    1_048_588
}
/// Default most records returned by one fetch.
pub const fn default_max_fetch_records() -> usize {
    10_000
}
/// Default most bytes returned by one fetch.
pub const fn default_max_fetch_bytes() -> usize {
    16 << 20
}
/// Default longest long-poll wait.
pub const fn default_max_wait_ms() -> u64 {
    60_000
}
/// Default window in which an `Idempotency-Key` retry returns the original result: 1 hour.
pub const fn default_idempotency_window_ms() -> u64 {
    3_600_000
}
/// Default interval between retention passes (Kafka's `log.retention.check.interval.ms` is 5 min;
/// ours is cheaper, so run it more often).
pub const fn default_retention_check_interval_ms() -> u64 {
    30_000
}
/// Default time allowed for in-flight requests to finish on shutdown.
pub const fn default_shutdown_grace_ms() -> u64 {
    10_000
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./weir-data")
}

/// Everything `weir serve` can be told. Field names are the TOML keys; each also has a
/// `WEIR_<NAME>` environment variable and a `--<name>` flag.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the RocksDB store.
    pub data_dir: PathBuf,
    /// Largest accepted request body, in bytes.
    pub max_request_bytes: usize,
    /// Most records in one produce request.
    pub max_records_per_request: usize,
    /// `max.message.bytes` given to topics created without one.
    pub default_max_message_bytes: u64,
    /// Most records one fetch returns.
    pub max_fetch_records: usize,
    /// Most bytes one fetch returns.
    pub max_fetch_bytes: usize,
    /// Longest `wait_ms` a long-poll may ask for.
    pub max_wait_ms: u64,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_window_ms: u64,
    /// Interval between background retention passes.
    pub retention_check_interval_ms: u64,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            max_request_bytes: default_max_request_bytes(),
            max_records_per_request: default_max_records_per_request(),
            default_max_message_bytes: default_max_message_bytes(),
            max_fetch_records: default_max_fetch_records(),
            max_fetch_bytes: default_max_fetch_bytes(),
            max_wait_ms: default_max_wait_ms(),
            idempotency_window_ms: default_idempotency_window_ms(),
            retention_check_interval_ms: default_retention_check_interval_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
        }
    }
}

/// Settings given on the command line or in the environment; `None` keeps the lower source.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file (keys as in the README's configuration reference).
    #[arg(long, env = "WEIR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WEIR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: ./weir-data].
    #[arg(long, env = "WEIR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Largest accepted request body in bytes [default: 33554432].
    #[arg(long, env = "WEIR_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Most records in one produce request [default: 10000].
    #[arg(long, env = "WEIR_MAX_RECORDS_PER_REQUEST")]
    pub max_records_per_request: Option<usize>,
    /// `max.message.bytes` for topics created without one [default: 1048588].
    #[arg(long, env = "WEIR_DEFAULT_MAX_MESSAGE_BYTES")]
    pub default_max_message_bytes: Option<u64>,
    /// Most records one fetch returns [default: 10000].
    #[arg(long, env = "WEIR_MAX_FETCH_RECORDS")]
    pub max_fetch_records: Option<usize>,
    /// Most bytes one fetch returns [default: 16777216].
    #[arg(long, env = "WEIR_MAX_FETCH_BYTES")]
    pub max_fetch_bytes: Option<usize>,
    /// Longest long-poll wait in ms [default: 60000].
    #[arg(long, env = "WEIR_MAX_WAIT_MS")]
    pub max_wait_ms: Option<u64>,
    /// How long an Idempotency-Key is remembered, in ms [default: 3600000].
    #[arg(long, env = "WEIR_IDEMPOTENCY_WINDOW_MS")]
    pub idempotency_window_ms: Option<u64>,
    /// Interval between retention passes in ms [default: 30000].
    #[arg(long, env = "WEIR_RETENTION_CHECK_INTERVAL_MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// Time in-flight requests get on shutdown, in ms [default: 10000].
    #[arg(long, env = "WEIR_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: Option<u64>,
}

/// A configuration problem found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("invalid setting {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    /// Defaults, then the file named in `args` (if any), then the flags and environment.
    pub fn load(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let mut c = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        macro_rules! overlay {
            ($($f:ident),*) => { $( if let Some(v) = args.$f.clone() { c.$f = v; } )* };
        }
        overlay!(
            listen,
            data_dir,
            max_request_bytes,
            max_records_per_request,
            default_max_message_bytes,
            max_fetch_records,
            max_fetch_bytes,
            max_wait_ms,
            idempotency_window_ms,
            retention_check_interval_ms,
            shutdown_grace_ms
        );
        c.validate()?;
        Ok(c)
    }

    /// Checks ranges that would make the server misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_request_bytes", self.max_request_bytes as u64),
            ("max_records_per_request", self.max_records_per_request as u64),
            ("default_max_message_bytes", self.default_max_message_bytes),
            ("max_fetch_records", self.max_fetch_records as u64),
            ("max_fetch_bytes", self.max_fetch_bytes as u64),
            ("retention_check_interval_ms", self.retention_check_interval_ms),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("{name}: must be greater than 0")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nmax_wait_ms = 5\n").unwrap();
        let args = ConfigArgs {
            config: Some(path),
            max_wait_ms: Some(7),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_wait_ms, 7);
        assert_eq!(c.max_fetch_records, default_max_fetch_records());
    }

    #[test]
    fn unknown_keys_and_zero_limits_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.toml");
        std::fs::write(&path, "listn = \"127.0.0.1:9000\"\n").unwrap();
        assert!(matches!(Config::from_file(&path), Err(ConfigError::Parse { .. })));
        let args = ConfigArgs {
            max_fetch_records: Some(0),
            ..Default::default()
        };
        assert!(matches!(Config::load(&args), Err(ConfigError::Invalid(_))));
    }
}
