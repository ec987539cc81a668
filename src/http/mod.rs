//! The HTTP door: axum routers, extractors, problem+json errors, metrics middleware and the
//! OpenAPI document. Handlers are thin: extract, call one broker method, shape the answer.

pub mod auth;
pub mod connect;
pub mod error;
pub mod events;
pub mod extract;
pub mod groups;
pub mod limits;
pub mod openapi;
pub mod produce_answer;
pub mod produce_body;
pub mod records;
pub mod render;
pub mod serve;
pub mod streams;
pub mod system;
pub mod tls;
pub mod tokens;
pub mod topics;
pub mod transactions;

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument as _;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::broker::Broker;
use crate::error::{Error, ErrorCode};
use error::problem_response;

/// What handlers share, behind one reference count: axum clones the state for every request
/// (the door and each handler's `State`), and one atomic increment is cheaper than one per part.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

/// The parts of [`AppState`].
pub struct Shared {
    /// The broker service.
    pub broker: Broker,
    /// The connector runtime.
    pub connect: crate::connect::Connect,
    /// The stream-query runtime.
    pub streams: crate::streams::Streams,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Load-shedding counters.
    pub limits: limits::Limits,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The process-wide Prometheus recorder (installed once; several servers in one test process
/// share it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// The API routes with their OpenAPI annotations.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(topics::create_topic, topics::list_topics))
        .routes(routes!(topics::get_topic, topics::alter_topic, topics::delete_topic))
        .routes(routes!(records::produce))
        .routes(routes!(records::fetch))
        .routes(routes!(events::events))
        .routes(routes!(groups::list))
        .routes(routes!(groups::describe, groups::delete))
        .routes(routes!(groups::join))
        .routes(routes!(groups::leave))
        .routes(routes!(groups::heartbeat))
        .routes(routes!(groups::poll))
        .routes(routes!(groups::commit))
        .routes(routes!(groups::seek))
        .routes(routes!(groups::reset))
        .routes(routes!(groups::events))
        .routes(routes!(groups::websocket))
        .routes(routes!(transactions::transact))
        .routes(routes!(connect::root))
        .routes(routes!(connect::list, connect::create))
        .routes(routes!(connect::info, connect::delete))
        .routes(routes!(connect::get_config, connect::put_config, connect::patch_config))
        .routes(routes!(connect::status))
        .routes(routes!(connect::tasks))
        .routes(routes!(connect::task_status))
        .routes(routes!(connect::restart_task))
        .routes(routes!(connect::restart))
        .routes(routes!(connect::pause))
        .routes(routes!(connect::resume))
        .routes(routes!(connect::stop))
        .routes(routes!(connect::topics))
        .routes(routes!(connect::reset_topics))
        .routes(routes!(
            connect::offsets,
            connect::alter_offsets,
            connect::reset_offsets
        ))
        .routes(routes!(connect::plugins))
        .routes(routes!(connect::plugin_config))
        .routes(routes!(connect::validate))
        .routes(routes!(streams::sql))
        .routes(routes!(streams::query))
        .routes(routes!(streams::list_queries))
        .routes(routes!(streams::get_query, streams::delete_query))
        .routes(routes!(streams::list_streams))
        .routes(routes!(streams::get_stream))
        .routes(routes!(streams::list_tables))
        .routes(routes!(streams::get_table))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
}

/// The complete application: API, `/openapi.json`, `/docs`, fallbacks and middleware.
pub fn router(broker: Broker, connect: crate::connect::Connect, streams: crate::streams::Streams) -> Router {
    let cors = limits::cors(broker.config());
    let state = AppState(std::sync::Arc::new(Shared {
        limits: limits::Limits::new(broker.config()),
        broker,
        connect,
        streams,
        metrics: metrics_handle(),
    }));
    let (api, mut spec) = api_router().split_for_parts();
    openapi::complete(&mut spec);
    let app = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), door))
        .with_state(state)
        // Swagger UI would ask an external validator about the document: off, so the page works offline.
        .merge(
            SwaggerUi::new("/docs")
                .url("/openapi.json", spec)
                .config(utoipa_swagger_ui::Config::new(["/openapi.json"]).validator_url("none")),
        )
        .layer(CatchPanicLayer::custom(|_| {
            problem_response(&Error::new(ErrorCode::Internal, "internal server error"))
        }));
    // CORS outermost: preflights carry no credentials and are answered before authentication.
    match cors {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

async fn not_found() -> Response {
    problem_response(&Error::new(ErrorCode::NotFound, "no such route"))
}

async fn method_not_allowed() -> Response {
    problem_response(&Error::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    ))
}

/// The Prometheus recorder keeps every histogram sample until it is rendered: without a
/// periodic drain, a server nobody scrapes grows by every request's latency forever.
pub fn drain_metrics(stop: tokio_util::sync::CancellationToken) {
    let handle = metrics_handle();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => handle.run_upkeep(),
                _ = stop.cancelled() => break,
            }
        }
    });
}

/// One route's request timer and its counters by method and status.
struct RouteMetrics {
    duration: metrics::Histogram,
    requests: Vec<(Method, u16, metrics::Counter)>,
}

/// Metric handles by route, registered on first use: a labelled registry lookup per request
/// costs more than recording.
static ROUTE_METRICS: LazyLock<RwLock<HashMap<String, RouteMetrics>>> = LazyLock::new(Default::default);

/// The timer of a route and its counter for a method and status, registered on first use.
fn route_metrics(route: &str, method: &Method, status: StatusCode) -> (metrics::Histogram, metrics::Counter) {
    let status = status.as_u16();
    let find = |m: &RouteMetrics| {
        m.requests
            .iter()
            .find(|(me, st, _)| me == method && *st == status)
            .map(|(_, _, counter)| (m.duration.clone(), counter.clone()))
    };
    if let Some(found) = ROUTE_METRICS.read().expect("route metrics").get(route).and_then(find) {
        return found;
    }
    let mut map = ROUTE_METRICS.write().expect("route metrics");
    let m = map.entry(route.to_owned()).or_insert_with(|| RouteMetrics {
        duration: metrics::histogram!("weir_http_request_duration_seconds", "route" => route.to_owned()),
        requests: Vec::new(),
    });
    if let Some(found) = find(m) {
        return found;
    }
    let counter = metrics::counter!("weir_http_requests_total", "route" => route.to_owned(),
        "method" => method.as_str().to_owned(), "status" => status.to_string());
    m.requests.push((method.clone(), status, counter.clone()));
    (m.duration.clone(), counter)
}

/// The door every API request passes, in order: metrics (counted and timed whatever the outcome),
/// authentication, then load shedding, the request quota and the body budget. One middleware rather than three:
/// each axum middleware layer clones its inner service and state for every request.
async fn door(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    // Extension methods share one label: clients must not be able to mint metric series.
    let method = match *req.method() {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD | Method::OPTIONS => {
            req.method().clone()
        }
        _ => Method::from_bytes(b"OTHER").expect("a valid method token"),
    };
    let resp = match limits::check_head(&req).and_then(|()| auth::authenticate(&s, &mut req)) {
        Err(refused) => problem_response(&refused),
        Ok(()) => match limits::admit(&s, &req) {
            Err(refused) => problem_response(&refused),
            Ok(_in_flight) => {
                let streamed = records::streams_body(&req);
                match limits::reserve_body(&s, &req, streamed) {
                    Err(refused) => {
                        limits::discard_body(req, s.broker.config().max_request_bytes);
                        problem_response(&refused)
                    }
                    // Held until the response is ready: the handler is done with the body.
                    Ok(body_bytes) => {
                        let req = limits::meter_body(req, body_bytes.as_ref());
                        // A debug span per request (what tower-http's `TraceLayer` gave, for about
                        // 12 % of a single-record produce's CPU): the path only, as query strings
                        // may carry tokens.
                        let span = tracing::debug_span!("request", method = %req.method(), path = %req.uri().path());
                        next.run(req).instrument(span).await
                    }
                }
            }
        },
    };
    let (duration, requests) = route_metrics(
        route.as_ref().map_or("unmatched", |p| p.as_str()),
        &method,
        resp.status(),
    );
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    resp
}
