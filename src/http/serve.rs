//! The accept loop, for plain HTTP and HTTPS alike: one hyper-util connection per socket
//! (HTTP/1.1 and HTTP/2, WebSocket upgrades), the timeouts that keep slow or silent clients from
//! holding connections forever, and the graceful drain on shutdown.
//!
//! - **Header read** (`header_read_timeout_ms`): an HTTP/1.1 client must send a request's
//!   headers within it, or the connection is closed (hyper answers `408` where it can). hyper
//!   also starts this timer when a kept-alive connection waits for its next request, so an idle
//!   HTTP/1.1 connection closes after it too. A TLS handshake gets the same time.
//! - **Idle** (`idle_timeout_ms`): a connection with no request in flight for that long is
//!   closed gracefully (HTTP/2: `GOAWAY`), and dropped if it has not closed a second later. A
//!   request is in flight from its headers until its response body is finished or dropped, so
//!   event streams, long polls and uploads never count as idle, whatever their pauses; an
//!   upgraded WebSocket leaves the connection's hands.
//! - **HTTP/2 keep-alive**: a `PING` after [`H2_KEEP_ALIVE_INTERVAL`] of silence; a peer that
//!   does not answer within [`H2_KEEP_ALIVE_TIMEOUT`] is gone and its connection is closed.
//! - **Shutdown**: stop accepting, ask every connection to finish its requests and close, wait
//!   up to the grace period, then drop what is left.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::auth::ClientCertificate;
use super::tls::SharedTls;
use crate::config::Config;

/// Silence on an HTTP/2 connection after which the server sends a `PING`.
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Time an HTTP/2 peer has to answer a `PING` before its connection is closed.
pub const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Time an idle connection asked to close gets to do so before it is dropped.
const IDLE_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Time a client gets to send a request's headers (and a TLS handshake).
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    pub grace: Duration,
}

impl ServeOptions {
    /// The options a config sets.
    pub fn from_config(c: &Config) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(c.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(c.idle_timeout_ms),
            grace: Duration::from_millis(c.shutdown_grace_ms),
        }
    }
}

/// What a connection task listens to besides its socket.
#[derive(Clone)]
struct Signals {
    /// Finish the requests in flight, then close.
    drain: CancellationToken,
    /// Close now: the grace period is over.
    stop: CancellationToken,
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` completes, then
/// drains connections for up to `options.grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<SharedTls>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let signals = Signals {
        drain: CancellationToken::new(),
        stop: CancellationToken::new(),
    };
    let tracker = TaskTracker::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (app, signals) = (app.clone(), signals.clone());
        match &tls {
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.read().expect("tls lock").clone());
                tracker.spawn(serve_tls(tcp, acceptor, app, options, signals));
            }
            None => {
                tracker.spawn(connection(tcp, None, app, options, signals));
            }
        }
    }
    drop(listener);
    tracker.close();
    signals.drain.cancel();
    if tokio::time::timeout(options.grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            connections = tracker.len(),
            "shutdown grace period over; closing remaining connections"
        );
        signals.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
    }
}

/// Waits out an accept error: none for errors of one connection, a moment for the others (out
/// of file descriptors, say), so the loop does not spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Completes the TLS handshake (within the header-read timeout), then serves the connection
/// with the subject of a verified client certificate, if any.
async fn serve_tls(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    options: ServeOptions,
    signals: Signals,
) {
    // Small TLS records must not wait for delayed ACKs.
    let _ = tcp.set_nodelay(true);
    let stream = tokio::select! {
        r = tokio::time::timeout(options.header_read_timeout, acceptor.accept(tcp)) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "tls handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("tls handshake timed out");
                return;
            }
        },
        () = signals.drain.cancelled() => return,
    };
    let client = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(super::tls::subject);
    connection(stream, client, app, options, signals).await;
}

/// The hyper-util builder: HTTP/1.1 with the header-read timeout, HTTP/2 with keep-alive pings
/// and the extended CONNECT that WebSockets over HTTP/2 use.
fn builder(options: ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_headers(super::limits::HYPER_MAX_HEADERS);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
        .enable_connect_protocol();
    b
}

/// Serves one connection until it ends, it is idle too long, or shutdown closes it.
async fn connection<I>(io: I, client: Option<String>, app: Router, options: ServeOptions, signals: Signals)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        if let Some(subject) = &client {
            req.extensions_mut().insert(ClientCertificate(subject.clone()));
        }
        let guard = requests.begin();
        let response = app.clone().oneshot(req.map(Body::new));
        async move {
            let response = response.await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| Tracked { body, _guard: guard }))
        }
    });
    let builder = builder(options);
    let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
    let mut closing = false;
    // When an idle connection was asked to close: a peer that does not take part in closing
    // (an HTTP/2 client that never answers the closing PING) is dropped soon after.
    let mut idle_close: Option<Instant> = None;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = signals.drain.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.idle_for(options.idle_timeout), if !closing => {
                tracing::debug!(idle_ms = options.idle_timeout.as_millis() as u64, "closing idle connection");
                closing = true;
                idle_close = Some(Instant::now());
                conn.as_mut().graceful_shutdown();
            }
            () = activity.quiet_after(idle_close.map(|at| at + IDLE_CLOSE_WAIT)), if idle_close.is_some() => {
                tracing::debug!("dropping idle connection that did not close");
                return;
            }
            () = signals.stop.cancelled() => return,
        }
    }
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    /// When the connection was accepted.
    opened: Instant,
    /// Requests whose response body is not finished.
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the end of the latest request.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Completes at `at` (never for `None`), or later once no request is in flight.
    async fn quiet_after(&self, at: Option<Instant>) {
        let Some(mut at) = at else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep_until(at).await;
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            at = Instant::now() + IDLE_CLOSE_WAIT;
        }
    }

    /// Counts a request in flight until the returned guard is dropped.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Completes once the connection has had no request in flight for `idle`. Wakes up at most
    /// once per `idle` while requests are in flight.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let since = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Acquire));
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            let now = Instant::now();
            if !busy && now >= since + idle {
                return;
            }
            let next = if busy { now + idle } else { since + idle };
            tokio::time::sleep_until(next).await;
        }
    }
}

/// A request in flight on a connection; dropped with its response body.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = self.0.opened.elapsed().as_millis() as u64;
        self.0.last_ms.fetch_max(ms, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight until hyper has sent it (or the
/// client went away and it was dropped).
struct Tracked {
    body: Body,
    _guard: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
