//! Authentication at the HTTP door: finds the caller's credential and turns it into a
//! [`Caller`] for the service layer, which decides permissions.
//!
//! Credentials, in order: an `Authorization: Bearer` header; on the routes a browser opens
//! without being able to set headers (`EventSource` and WebSocket: [`AMBIENT_ROUTES`], GET
//! only), an `access_token` query parameter or a `weir_token` cookie; a verified TLS client
//! certificate. A cookie or query token anywhere else is refused: a browser sends those on
//! cross-site requests too (a `text/plain` produce needs no preflight), so accepting them there
//! would allow cross-site request forgery. Credentials never reach the logs: request spans carry
//! the path only.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::http::header::{AUTHORIZATION, COOKIE};

use super::AppState;
use crate::broker::Caller;
use crate::error::{Error, ErrorCode};

/// The subject of a verified TLS client certificate, put in request extensions by the TLS
/// acceptor.
#[derive(Debug, Clone)]
pub struct ClientCertificate(pub String);

/// Paths anyone may call: liveness, readiness and the API description.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/openapi.json") || path == "/docs" || path.starts_with("/docs/")
}

/// The route templates on which a GET may carry its token as `?access_token=` or in the
/// `weir_token` cookie: the event streams and the WebSocket, which browsers open without a way
/// to set headers.
pub const AMBIENT_ROUTES: [&str; 3] = [
    "/v1/topics/{topic}/events",
    "/v1/groups/{group}/events",
    "/v1/groups/{group}/ws",
];

/// Whether a request may authenticate with a query or cookie token: a GET to one of
/// [`AMBIENT_ROUTES`], matched by route template.
fn accepts_ambient(req: &Request) -> bool {
    req.method() == Method::GET
        && req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| AMBIENT_ROUTES.contains(&p.as_str()))
}

/// The token of an `Authorization: Bearer` header.
fn bearer(req: &Request) -> Option<String> {
    let v = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// A token the browser may have attached by itself: `?access_token=` or the `weir_token`
/// cookie.
fn ambient(req: &Request) -> Option<String> {
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if k == "access_token" {
                return Some(v.into_owned());
            }
        }
    }
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("weir_token=").map(str::to_owned))
}

/// The caller of a request when authentication is on.
fn identify(s: &AppState, req: &Request) -> Result<Caller, Error> {
    if let Some(secret) = bearer(req) {
        return s.broker.authenticate(&secret);
    }
    let ambient = ambient(req);
    if let Some(secret) = &ambient
        && accepts_ambient(req)
    {
        return s.broker.authenticate(secret);
    }
    if let Some(ClientCertificate(subject)) = req.extensions().get::<ClientCertificate>() {
        return Ok(s.broker.authenticate_certificate(subject));
    }
    Err(Error::new(
        ErrorCode::Unauthenticated,
        if ambient.is_some() {
            "a weir_token cookie or access_token query parameter is accepted only on GET event streams \
             and WebSocket upgrades; send Authorization: Bearer <token>"
        } else {
            "credentials required: send Authorization: Bearer <token>"
        },
    ))
}

/// Authenticates a non-public request and stores its [`Caller`] in the request.
pub fn authenticate(s: &AppState, req: &mut Request) -> Result<(), Error> {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect());
    let caller = if !s.broker.auth_enabled() {
        Ok(Caller::anonymous())
    } else if is_public(req.uri().path()) {
        return Ok(());
    } else {
        identify(s, req)
    };
    match caller {
        Ok(mut caller) => {
            caller.request_id = request_id;
            req.extensions_mut().insert(caller);
            Ok(())
        }
        Err(e) => {
            metrics::counter!("weir_auth_failures_total").increment(1);
            Err(e)
        }
    }
}
