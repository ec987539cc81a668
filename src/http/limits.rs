//! Load shedding and CORS at the HTTP door: a cap on requests served at once and on open event
//! streams (503 `overloaded` with `Retry-After` instead of unbounded queues), the budget of
//! memory that request bodies may hold together, the per-principal request quota, and the
//! configured CORS policy.
//!
//! The body budget (`max_inflight_body_bytes`): a body whose length is declared
//! (`Content-Length`) reserves it before anything is read; a body of unknown length reserves
//! each piece as it arrives. The reservation is released when the request is done: its response
//! is ready and its body is dropped. A body that does not fit is refused with 503 `overloaded`.
//! The streaming NDJSON produce reserves only the lines it holds, as it reads them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method};
use hyper::body::{Body as _, Frame, SizeHint};
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
    /// Bytes of request bodies being read or held.
    pub bodies: Arc<BodyBudget>,
}

/// The process-wide bound on the bytes request bodies hold.
#[derive(Debug, Default)]
pub struct BodyBudget {
    used: AtomicUsize,
    max: usize,
}

impl BodyBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// An empty reservation against this budget.
    pub fn reservation(self: &Arc<Self>) -> BodyReservation {
        BodyReservation {
            budget: self.clone(),
            held: AtomicUsize::new(0),
        }
    }

    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes of one request's body held against the [`BodyBudget`]; released when dropped.
#[derive(Debug)]
pub struct BodyReservation {
    budget: Arc<BodyBudget>,
    held: AtomicUsize,
}

impl BodyReservation {
    /// Reserves `n` more bytes, or refuses with `overloaded` when the budget has no room.
    pub fn grow(&self, n: usize) -> Result<(), Error> {
        if n == 0 {
            return Ok(());
        }
        if !self.budget.take(n) {
            return Err(overloaded("memory for request bodies"));
        }
        self.held.fetch_add(n, Ordering::AcqRel);
        Ok(())
    }

    /// Grows or shrinks the reservation to `n` bytes.
    pub fn resize(&self, n: usize) -> Result<(), Error> {
        let held = self.held.load(Ordering::Acquire);
        if n > held {
            return self.grow(n - held);
        }
        self.held.fetch_sub(held - n, Ordering::AcqRel);
        self.budget.give_back(held - n);
        Ok(())
    }
}

impl Drop for BodyReservation {
    fn drop(&mut self) {
        self.budget.give_back(*self.held.get_mut());
    }
}

/// A body's error when the budget has no room for its next piece.
#[derive(Debug, thiserror::Error)]
#[error("the server is at its limit of memory for request bodies")]
pub struct OverBudget;

/// A body of unknown length that reserves each piece as it arrives. Once a piece did not fit
/// it fails, and what follows passes uncounted, to be thrown away.
struct Metered {
    body: Body,
    reservation: Arc<BodyReservation>,
    refused: bool,
}

impl hyper::body::Body for Metered {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if self.refused {
            return Poll::Ready(Some(Ok(frame)));
        }
        let n = frame.data_ref().map_or(0, Bytes::len);
        Poll::Ready(Some(match self.reservation.grow(n) {
            Ok(()) => Ok(frame),
            Err(_) => {
                self.refused = true;
                Err(OverBudget.into())
            }
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Reserves a request's body under the budget: a declared length now (refused with
/// `overloaded` when it does not fit); for a body of unknown length an empty reservation that
/// [`meter_body`] fills as pieces arrive. Held until the request is done. Bodies over
/// `max_request_bytes` reserve nothing (they are refused unread), nor do the bodies that
/// `streamed` handlers budget themselves.
pub fn reserve_body(s: &AppState, req: &Request, streamed: bool) -> Result<Option<Arc<BodyReservation>>, Error> {
    let declared = req.body().size_hint().exact();
    if streamed || declared == Some(0) {
        return Ok(None);
    }
    let reservation = s.limits.bodies.reservation();
    match declared {
        Some(n) if n > s.broker.config().max_request_bytes as u64 => return Ok(None),
        Some(n) => reservation.grow(n as usize)?,
        None => {}
    }
    Ok(Some(Arc::new(reservation)))
}

/// Makes a body of unknown length fill `reservation` as it arrives.
pub fn meter_body(req: Request, reservation: Option<&Arc<BodyReservation>>) -> Request {
    match reservation {
        Some(r) if req.body().size_hint().exact().is_none() => req.map(|body| {
            Body::new(Metered {
                body,
                reservation: r.clone(),
                refused: false,
            })
        }),
        _ => req,
    }
}

/// How long the rest of a refused body is read and thrown away.
const DISCARD_TIME: Duration = Duration::from_secs(10);

/// Reads what is left of a refused request's body and throws it away, in the background (at
/// most `cap` bytes, for at most 10 s; nothing when more is declared): a client still sending
/// it then reads the refusal instead of finding its connection reset. A client that sent
/// `Expect: 100-continue` is not sending; its body is left alone.
pub fn discard_body(req: Request, cap: usize) {
    if req.headers().contains_key(axum::http::header::EXPECT) {
        return;
    }
    discard(req.into_body(), cap);
}

/// Reads `body` and throws it away in the background, as [`discard_body`] does.
pub fn discard(body: Body, cap: usize) {
    use http_body_util::BodyExt as _;
    if body.is_end_stream() || body.size_hint().exact().is_some_and(|n| n > cap as u64) {
        return;
    }
    tokio::spawn(async move {
        let mut body = body;
        let drain = async {
            let mut read = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > cap {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
    });
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
            bodies: Arc::new(BodyBudget::new(config.max_inflight_body_bytes)),
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

/// The longest request URI (path and query) read: 8 KiB, as common proxies allow. hyper itself
/// stops at 64 KiB with an empty answer; below that the answer is a problem.
pub const MAX_URI_BYTES: usize = 8 << 10;

/// The most header fields a request may have (hyper reads up to [`HYPER_MAX_HEADERS`]).
pub const MAX_HEADERS: usize = 100;

/// The most header fields hyper parses, above [`MAX_HEADERS`] so that a request with too many
/// gets a problem from [`check_head`] rather than hyper's empty `431`.
pub const HYPER_MAX_HEADERS: usize = 200;

/// The most bytes of header names and values a request may have: 64 KiB.
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// Refuses a request whose URI or headers are over the limits above, with a problem saying which
/// (`414 uri_too_long`, `431 headers_too_large`) rather than hyper's empty answers.
pub fn check_head(req: &Request) -> Result<(), Error> {
    let uri = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri > MAX_URI_BYTES {
        return Err(Error::new(
            ErrorCode::UriTooLong,
            format!("the URI is {uri} bytes; the server reads at most {MAX_URI_BYTES}"),
        )
        .with_field("uri"));
    }
    let headers = req.headers();
    if headers.len() > MAX_HEADERS {
        return Err(Error::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request has {} header fields; the server reads at most {MAX_HEADERS}",
                headers.len()
            ),
        )
        .with_field("headers"));
    }
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        let (name, _) = headers
            .iter()
            .max_by_key(|(k, v)| k.as_str().len() + v.len())
            .expect("headers over the limit are not empty");
        return Err(Error::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the headers are {bytes} bytes; the server reads at most {MAX_HEADER_BYTES} (the largest is {name})"
            ),
        )
        .with_field(name.as_str().to_owned()));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_budget_and_give_back_on_drop() {
        let budget = Arc::new(BodyBudget::new(100));
        let a = budget.reservation();
        a.grow(60).unwrap();
        let b = budget.reservation();
        assert_eq!(b.grow(41).unwrap_err().code, ErrorCode::Overloaded);
        b.grow(40).unwrap();
        assert_eq!(budget.used(), 100);
        a.resize(10).unwrap();
        assert_eq!(budget.used(), 50);
        b.resize(90).unwrap();
        assert_eq!(b.resize(91).unwrap_err().code, ErrorCode::Overloaded);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_metered_body_fails_once_it_no_longer_fits_and_then_passes_the_rest() {
        use http_body_util::BodyExt as _;
        let budget = Arc::new(BodyBudget::new(10));
        let reservation = Arc::new(budget.reservation());
        let pieces: Vec<Result<Bytes, std::io::Error>> = ["abcd", "efgh", "ijkl", "mnop"]
            .into_iter()
            .map(|p| Ok(Bytes::from(p)))
            .collect();
        let req = Request::new(Body::from_stream(futures::stream::iter(pieces)));
        let mut body = meter_body(req, Some(&reservation)).into_body();
        for _ in 0..2 {
            assert!(body.frame().await.unwrap().is_ok());
        }
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(
            std::error::Error::source(&err).is_some_and(|s| s.is::<OverBudget>()),
            "{err}"
        );
        assert!(
            body.frame().await.unwrap().is_ok(),
            "the rest passes, to be thrown away"
        );
        assert_eq!(budget.used(), 8);
        drop(body);
        drop(reservation);
        assert_eq!(budget.used(), 0);
    }
}
