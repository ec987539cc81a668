//! Load shedding and CORS at the HTTP door: a cap on requests served at once and on open event
//! streams (503 `overloaded` with `Retry-After` instead of unbounded queues), the per-principal
//! request quota, and the configured CORS policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::AppState;
use crate::broker::Caller;
use crate::config::Config;
use crate::error::{Error, ErrorCode};

/// Counters of work in progress.
#[derive(Debug, Default)]
pub struct Limits {
    requests: AtomicUsize,
    streams: Arc<AtomicUsize>,
    max_requests: usize,
    max_streams: usize,
}

/// A slot of an open event stream, released when dropped.
#[derive(Debug)]
pub struct StreamPermit(Arc<AtomicUsize>);

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn overloaded(what: &str) -> Error {
    metrics::counter!("weir_load_shed_total").increment(1);
    Error::new(
        ErrorCode::Overloaded,
        format!("the server is at its limit of {what}; retry shortly"),
    )
}

impl Limits {
    /// Limits from the config.
    pub fn new(config: &Config) -> Self {
        Self {
            max_requests: config.max_concurrent_requests,
            max_streams: config.max_streams,
            ..Self::default()
        }
    }

    /// Takes a stream slot, or refuses with `overloaded`.
    pub fn open_stream(&self) -> Result<StreamPermit, Error> {
        if self.streams.fetch_add(1, Ordering::AcqRel) >= self.max_streams {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return Err(overloaded("open event streams"));
        }
        Ok(StreamPermit(self.streams.clone()))
    }
}

/// A request being served, counted until dropped.
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Admits a request: sheds load above the concurrency cap and applies the request quota.
/// The request counts as in flight while the returned guard lives.
pub fn admit<'a>(s: &'a AppState, req: &Request) -> Result<InFlight<'a>, Error> {
    let limits = &s.limits;
    if limits.requests.fetch_add(1, Ordering::AcqRel) >= limits.max_requests {
        limits.requests.fetch_sub(1, Ordering::AcqRel);
        return Err(overloaded("concurrent requests"));
    }
    let in_flight = InFlight(&limits.requests);
    if let Some(caller) = req.extensions().get::<Caller>()
        && let Err(e) = s.broker.charge_request(caller)
    {
        return Err(e);
    }
    Ok(in_flight)
}

/// The CORS layer, or `None` when no origin is allowed (CORS off).
pub fn cors(config: &Config) -> Option<CorsLayer> {
    if config.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins = if config.cors_allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let methods: Vec<Method> = if config.cors_allowed_methods.is_empty() {
        vec![Method::GET, Method::POST, Method::PATCH, Method::DELETE]
    } else {
        config
            .cors_allowed_methods
            .iter()
            .filter_map(|m| m.parse().ok())
            .collect()
    };
    let headers: Vec<HeaderName> = if config.cors_allowed_headers.is_empty() {
        ["content-type", "authorization", "idempotency-key", "last-event-id"]
            .into_iter()
            .map(HeaderName::from_static)
            .collect()
    } else {
        config
            .cors_allowed_headers
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods(methods)
            .allow_headers(headers)
            .allow_credentials(config.cors_allow_credentials)
            .expose_headers([
                HeaderName::from_static("idempotency-replayed"),
                HeaderName::from_static("retry-after"),
            ])
            .max_age(Duration::from_secs(config.cors_max_age_secs)),
    )
}
