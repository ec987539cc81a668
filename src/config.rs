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

/// Default cap on requests served at once before load is shed (503).
pub const fn default_max_concurrent_requests() -> usize {
    1024
}
/// Default cap on open event streams before new ones are shed (503).
pub const fn default_max_streams() -> usize {
    1024
}
/// Default most rows of a pull query.
pub const fn default_pull_query_max_rows() -> usize {
    10_000
}
/// Default nice steps by which the log writer thread runs ahead of the request workers.
pub const fn default_writer_priority_boost() -> u8 {
    10
}
/// Largest `writer_priority_boost`: the span of Linux nice values, from 19 to -20.
pub const MAX_WRITER_PRIORITY_BOOST: u8 = 39;
/// Default leeway, in seconds, granted to JWT `exp` and `nbf` for clock skew between the identity
/// provider and this server.
pub const fn default_jwt_leeway_secs() -> u64 {
    5
}
/// Default time a client gets to send a request's headers (HTTP/1.1), in ms.
pub const fn default_header_read_timeout_ms() -> u64 {
    10_000
}
/// Default time a connection may stay open with no request in flight, in ms. Event streams and
/// long polls are requests in flight, so they are never idle.
pub const fn default_idle_timeout_ms() -> u64 {
    120_000
}
/// Default bound on the bytes all request bodies being read or held may take together: 256 MiB.
pub const fn default_max_inflight_body_bytes() -> usize {
    256 << 20
}
/// Default `Access-Control-Max-Age` of CORS preflights.
pub const fn default_cors_max_age_secs() -> u64 {
    600
}

fn default_permissions_claim() -> String {
    "weir_permissions".into()
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
    /// Bootstrap admin token (prefer `WEIR_ADMIN_TOKEN` or `admin_token_file`). Setting it turns
    /// authentication on.
    pub admin_token: Option<String>,
    /// File holding the admin token.
    pub admin_token_file: Option<PathBuf>,
    /// Serve without authentication on a non-loopback address. Dangerous: anyone who can reach
    /// the port can read, write and delete everything.
    pub insecure_allow_unauthenticated: bool,
    /// HS256 secret for JWT bearer tokens.
    pub jwt_hs256_secret: Option<String>,
    /// JWKS file with RS256/ES256 public keys for JWT bearer tokens.
    pub jwt_jwks_file: Option<PathBuf>,
    /// JWKS URL (fetched at start-up) with RS256/ES256 public keys.
    pub jwt_jwks_url: Option<String>,
    /// Required `iss` of JWTs.
    pub jwt_issuer: Option<String>,
    /// Required `aud` of JWTs.
    pub jwt_audience: Option<String>,
    /// JWT claim holding permissions (a list or space-separated string of
    /// `resource:name[*]:op|op`, e.g. `topic:orders:read|write`, `topic:logs.*:read`).
    pub jwt_permissions_claim: String,
    /// Seconds of clock skew allowed when checking a JWT's `exp` and `nbf`.
    pub jwt_leeway_secs: u64,
    /// PEM certificate chain: serve HTTPS (HTTP/1.1 and HTTP/2). Reloaded on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mutual TLS); the certificate's
    /// subject becomes the principal. Turns authentication on.
    pub tls_client_ca: Option<PathBuf>,
    /// Grants for JWT subjects (`jwt:<sub>`) and certificate subjects (`cert:<subject>`).
    pub grants: Vec<Grant>,
    /// Origins allowed by CORS (`*` for any); empty: CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// Methods allowed by CORS (default: GET, POST, PATCH, DELETE).
    pub cors_allowed_methods: Vec<String>,
    /// Request headers allowed by CORS (default: content-type, authorization, idempotency-key, last-event-id).
    pub cors_allowed_headers: Vec<String>,
    /// Allow credentials (cookies) in CORS requests.
    pub cors_allow_credentials: bool,
    /// `Access-Control-Max-Age` of preflights, in seconds.
    pub cors_max_age_secs: u64,
    /// Produce bytes per second per principal (0: unlimited).
    pub quota_produce_bytes_per_sec: u64,
    /// Fetch bytes per second per principal (0: unlimited).
    pub quota_fetch_bytes_per_sec: u64,
    /// Requests per second per principal (0: unlimited).
    pub quota_requests_per_sec: u64,
    /// Requests served at once; more are shed with 503.
    pub max_concurrent_requests: usize,
    /// Event streams open at once; more are shed with 503.
    pub max_streams: usize,
    /// Time a client gets to send a request's headers, in ms (HTTP/1.1). The wait for the next
    /// request on a kept-alive connection counts too.
    pub header_read_timeout_ms: u64,
    /// Time a connection may stay open with no request in flight, in ms (HTTP/1.1 and HTTP/2).
    /// Event streams, WebSockets and long polls are in flight while they last.
    pub idle_timeout_ms: u64,
    /// Bytes all request bodies being read or held may take together; a body beyond it is
    /// refused with 503 `overloaded` and `Retry-After`.
    pub max_inflight_body_bytes: usize,
    /// Also append audit lines to this topic (created if missing).
    pub audit_topic: Option<String>,
    /// Most rows a pull query (`SELECT` on a table without `EMIT`) returns.
    pub pull_query_max_rows: usize,
    /// Nice steps by which the log writer thread runs ahead of the rest of the server (0: same
    /// priority). Every produce waits for that one thread, so under CPU contention it should not
    /// queue behind request workers. Needs `CAP_SYS_NICE` (or root); without it the writer runs at
    /// the server's priority and start-up says so.
    pub writer_priority_boost: u8,
    /// The store's tuning: not a setting (the defaults are the measured choice); the
    /// benchmark sets it to measure alternatives.
    #[serde(skip)]
    pub store: crate::storage::StoreOptions,
}

/// Permissions given to a JWT or certificate principal in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// `jwt:<sub>` or `cert:<subject>`.
    pub principal: String,
    /// What it may do.
    pub permissions: Vec<crate::broker::caller::Permission>,
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
            admin_token: None,
            admin_token_file: None,
            insecure_allow_unauthenticated: false,
            jwt_hs256_secret: None,
            jwt_jwks_file: None,
            jwt_jwks_url: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_permissions_claim: default_permissions_claim(),
            jwt_leeway_secs: default_jwt_leeway_secs(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            grants: Vec::new(),
            cors_allowed_origins: Vec::new(),
            cors_allowed_methods: Vec::new(),
            cors_allowed_headers: Vec::new(),
            cors_allow_credentials: false,
            cors_max_age_secs: default_cors_max_age_secs(),
            quota_produce_bytes_per_sec: 0,
            quota_fetch_bytes_per_sec: 0,
            quota_requests_per_sec: 0,
            max_concurrent_requests: default_max_concurrent_requests(),
            max_streams: default_max_streams(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            max_inflight_body_bytes: default_max_inflight_body_bytes(),
            audit_topic: None,
            pull_query_max_rows: default_pull_query_max_rows(),
            writer_priority_boost: default_writer_priority_boost(),
            store: crate::storage::StoreOptions::default(),
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
    /// Bootstrap admin token (turns authentication on). Only from the environment.
    #[arg(skip)]
    pub admin_token: Option<String>,
    /// File holding the bootstrap admin token (turns authentication on).
    #[arg(long, env = "WEIR_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Serve without authentication on a non-loopback address (dangerous).
    #[arg(long, env = "WEIR_INSECURE_ALLOW_UNAUTHENTICATED")]
    pub insecure_allow_unauthenticated: bool,
    /// HS256 secret for JWT bearer tokens. Only from the environment.
    #[arg(skip)]
    pub jwt_hs256_secret: Option<String>,
    /// JWKS file with RS256/ES256 keys for JWT bearer tokens.
    #[arg(long, env = "WEIR_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,
    /// JWKS URL with RS256/ES256 keys (fetched at start-up).
    #[arg(long, env = "WEIR_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// Required JWT issuer.
    #[arg(long, env = "WEIR_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required JWT audience.
    #[arg(long, env = "WEIR_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// JWT claim holding permissions [default: weir_permissions].
    #[arg(long, env = "WEIR_JWT_PERMISSIONS_CLAIM")]
    pub jwt_permissions_claim: Option<String>,
    /// Seconds of clock skew allowed on JWT `exp` and `nbf` [default: 5].
    #[arg(long, env = "WEIR_JWT_LEEWAY_SECS")]
    pub jwt_leeway_secs: Option<u64>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, env = "WEIR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "WEIR_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates (mutual TLS).
    #[arg(long, env = "WEIR_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Origins allowed by CORS, comma-separated (`*` for any).
    #[arg(long, env = "WEIR_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Methods allowed by CORS, comma-separated [default: GET,POST,PATCH,DELETE].
    #[arg(long, env = "WEIR_CORS_ALLOWED_METHODS", value_delimiter = ',')]
    pub cors_allowed_methods: Option<Vec<String>>,
    /// Request headers allowed by CORS, comma-separated [default:
    /// content-type,authorization,idempotency-key,last-event-id].
    #[arg(long, env = "WEIR_CORS_ALLOWED_HEADERS", value_delimiter = ',')]
    pub cors_allowed_headers: Option<Vec<String>>,
    /// Allow credentials in CORS requests.
    #[arg(long, env = "WEIR_CORS_ALLOW_CREDENTIALS")]
    pub cors_allow_credentials: bool,
    /// How long browsers may cache a CORS preflight answer, in seconds [default: 600].
    #[arg(long, env = "WEIR_CORS_MAX_AGE_SECS")]
    pub cors_max_age_secs: Option<u64>,
    /// Produce bytes/s per principal (0: unlimited).
    #[arg(long, env = "WEIR_QUOTA_PRODUCE_BYTES_PER_SEC")]
    pub quota_produce_bytes_per_sec: Option<u64>,
    /// Fetch bytes/s per principal (0: unlimited).
    #[arg(long, env = "WEIR_QUOTA_FETCH_BYTES_PER_SEC")]
    pub quota_fetch_bytes_per_sec: Option<u64>,
    /// Requests/s per principal (0: unlimited).
    #[arg(long, env = "WEIR_QUOTA_REQUESTS_PER_SEC")]
    pub quota_requests_per_sec: Option<u64>,
    /// Requests served at once before shedding load [default: 1024].
    #[arg(long, env = "WEIR_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// Event streams open at once before shedding [default: 1024].
    #[arg(long, env = "WEIR_MAX_STREAMS")]
    pub max_streams: Option<usize>,
    /// Time a client gets to send a request's headers, in ms [default: 10000].
    #[arg(long, env = "WEIR_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Time a connection may stay open with no request in flight, in ms [default: 120000].
    #[arg(long, env = "WEIR_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Bytes all in-flight request bodies may hold together [default: 268435456].
    #[arg(long, env = "WEIR_MAX_INFLIGHT_BODY_BYTES")]
    pub max_inflight_body_bytes: Option<usize>,
    /// Also append audit lines to this topic.
    #[arg(long, env = "WEIR_AUDIT_TOPIC")]
    pub audit_topic: Option<String>,
    /// Most rows a pull query returns [default: 10000].
    #[arg(long, env = "WEIR_PULL_QUERY_MAX_ROWS")]
    pub pull_query_max_rows: Option<usize>,
    /// Nice steps the log writer thread runs ahead of request workers; 0 turns it off (needs
    /// CAP_SYS_NICE) [default: 10].
    #[arg(long, env = "WEIR_WRITER_PRIORITY_BOOST", value_parser = clap::value_parser!(u8).range(0..=i64::from(MAX_WRITER_PRIORITY_BOOST)))]
    pub writer_priority_boost: Option<u8>,
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
            shutdown_grace_ms,
            jwt_permissions_claim,
            jwt_leeway_secs,
            cors_allowed_origins,
            cors_allowed_methods,
            cors_allowed_headers,
            cors_max_age_secs,
            quota_produce_bytes_per_sec,
            quota_fetch_bytes_per_sec,
            quota_requests_per_sec,
            max_concurrent_requests,
            max_streams,
            pull_query_max_rows,
            header_read_timeout_ms,
            idle_timeout_ms,
            max_inflight_body_bytes,
            writer_priority_boost
        );
        macro_rules! overlay_opt {
            ($($f:ident),*) => { $( if args.$f.is_some() { c.$f = args.$f.clone(); } )* };
        }
        overlay_opt!(
            admin_token_file,
            jwt_jwks_file,
            jwt_jwks_url,
            jwt_issuer,
            jwt_audience,
            tls_cert,
            tls_key,
            tls_client_ca,
            audit_topic
        );
        // Secrets come from the environment only (never from flags, which `ps` shows).
        if let Ok(t) = std::env::var("WEIR_ADMIN_TOKEN") {
            c.admin_token = Some(t);
        }
        if let Ok(s) = std::env::var("WEIR_JWT_HS256_SECRET") {
            c.jwt_hs256_secret = Some(s);
        }
        if args.admin_token.is_some() {
            c.admin_token = args.admin_token.clone();
        }
        if args.jwt_hs256_secret.is_some() {
            c.jwt_hs256_secret = args.jwt_hs256_secret.clone();
        }
        c.insecure_allow_unauthenticated |= args.insecure_allow_unauthenticated;
        c.cors_allow_credentials |= args.cors_allow_credentials;
        if let Some(path) = &c.admin_token_file {
            let t = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            c.admin_token = Some(t.trim().to_owned());
        }
        c.validate()?;
        Ok(c)
    }

    /// Whether an identity source is configured, which turns authentication on.
    pub fn auth_enabled(&self) -> bool {
        self.admin_token.is_some()
            || self.jwt_hs256_secret.is_some()
            || self.jwt_jwks_file.is_some()
            || self.jwt_jwks_url.is_some()
            || self.tls_client_ca.is_some()
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
            ("pull_query_max_rows", self.pull_query_max_rows as u64),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("max_inflight_body_bytes", self.max_inflight_body_bytes as u64),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("{name}: must be greater than 0")));
            }
        }
        if self.writer_priority_boost > MAX_WRITER_PRIORITY_BOOST {
            return Err(ConfigError::Invalid(format!(
                "writer_priority_boost: must be at most {MAX_WRITER_PRIORITY_BOOST} (the span of nice values)"
            )));
        }
        if self.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid(
                "admin token: must be at least 16 characters".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid("tls_cert and tls_key go together".into()));
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Err(ConfigError::Invalid("tls_client_ca needs tls_cert and tls_key".into()));
        }
        if self.max_inflight_body_bytes < self.max_request_bytes {
            return Err(ConfigError::Invalid(format!(
                "max_inflight_body_bytes: must be at least max_request_bytes ({}), or a body of allowed size \
                 could never be read",
                self.max_request_bytes
            )));
        }
        self.validate_cors()?;
        if !self.auth_enabled() && !self.listen.ip().is_loopback() && !self.insecure_allow_unauthenticated {
            return Err(ConfigError::Invalid(format!(
                "listen: {} is not a loopback address and no identity source (admin token, JWT, client \
                 certificates) is configured; configure one, or pass --insecure-allow-unauthenticated",
                self.listen
            )));
        }
        Ok(())
    }

    /// Refuses CORS settings that browsers reject and that the CORS layer would panic on: a
    /// wildcard origin, method or header together with credentials.
    fn validate_cors(&self) -> Result<(), ConfigError> {
        if !self.cors_allow_credentials {
            return Ok(());
        }
        let wildcards = [
            ("cors_allowed_origins", &self.cors_allowed_origins),
            ("cors_allowed_methods", &self.cors_allowed_methods),
            ("cors_allowed_headers", &self.cors_allowed_headers),
        ];
        for (key, values) in wildcards {
            if values.iter().any(|v| v.trim() == "*") {
                return Err(ConfigError::Invalid(format!(
                    "{key} = [\"*\"] cannot be combined with cors_allow_credentials = true: browsers refuse \
                     credentialed responses to a wildcard; list the allowed values, or turn credentials off"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file holding `text`, in a directory that lives as long as the returned guard.
    fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn file_then_flags_override_defaults() {
        let (_dir, path) = config_file("listen = \"127.0.0.1:9000\"\nmax_wait_ms = 5\n");
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
        let (_dir, path) = config_file("listn = \"127.0.0.1:9000\"\n");
        assert!(matches!(Config::from_file(&path), Err(ConfigError::Parse { .. })));
        let args = ConfigArgs {
            max_fetch_records: Some(0),
            ..Default::default()
        };
        assert!(matches!(Config::load(&args), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn writer_priority_boost_is_bounded_by_the_span_of_nice_values() {
        let (_dir, path) = config_file("writer_priority_boost = 40\n");
        let args = ConfigArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        match Config::load(&args) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("writer_priority_boost"), "{m}"),
            other => panic!("expected the boost to be refused, got {other:?}"),
        }
        std::fs::write(&path, "writer_priority_boost = 0\n").unwrap();
        assert_eq!(Config::load(&args).unwrap().writer_priority_boost, 0);
        assert_eq!(Config::default().writer_priority_boost, default_writer_priority_boost());
    }

    #[test]
    fn cors_wildcards_with_credentials_are_refused_naming_both_keys() {
        let (_dir, path) = config_file("cors_allowed_origins = [\"*\"]\ncors_allow_credentials = true\n");
        let args = ConfigArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        match Config::load(&args) {
            Err(ConfigError::Invalid(m)) => {
                assert!(
                    m.contains("cors_allowed_origins") && m.contains("cors_allow_credentials"),
                    "{m}"
                );
            }
            other => panic!("expected the CORS config to be refused, got {other:?}"),
        }
        std::fs::write(
            &path,
            "cors_allowed_origins = [\"https://shop.example\"]\ncors_allowed_headers = [\"*\"]\ncors_allow_credentials = true\n",
        )
        .unwrap();
        match Config::load(&args) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("cors_allowed_headers"), "{m}"),
            other => panic!("expected the CORS config to be refused, got {other:?}"),
        }
        // A wildcard without credentials, and credentials with listed origins, are fine; and
        // neither makes a layer that panics when applied.
        for text in [
            "cors_allowed_origins = [\"*\"]\n",
            "cors_allowed_origins = [\"https://shop.example\"]\ncors_allow_credentials = true\n",
        ] {
            std::fs::write(&path, text).unwrap();
            let c = Config::load(&args).unwrap();
            let layer = crate::http::limits::cors(&c).expect("CORS on");
            let _service = tower::Layer::layer(&layer, ());
        }
    }

    #[test]
    fn new_limits_have_their_defaults_and_refuse_zero() {
        let c = Config::default();
        assert_eq!(c.jwt_leeway_secs, 5);
        assert_eq!(c.header_read_timeout_ms, 10_000);
        assert_eq!(c.idle_timeout_ms, 120_000);
        assert_eq!(c.max_inflight_body_bytes, 256 << 20);
        for args in [
            ConfigArgs {
                idle_timeout_ms: Some(0),
                ..Default::default()
            },
            ConfigArgs {
                header_read_timeout_ms: Some(0),
                ..Default::default()
            },
            ConfigArgs {
                max_inflight_body_bytes: Some(0),
                ..Default::default()
            },
        ] {
            assert!(matches!(Config::load(&args), Err(ConfigError::Invalid(_))));
        }
    }
}
