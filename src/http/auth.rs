//! Authentication at the HTTP door: finds the caller's credential (bearer header; for browser
//! `EventSource`, which cannot set headers, an `access_token` query parameter or a `weir_token`
//! cookie; or a verified TLS client certificate) and turns it into a [`Caller`] for the service
//! layer, which decides permissions. Credentials never reach the logs: request spans carry the
//! path only.

use axum::extract::Request;
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

fn bearer(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = v.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned());
    }
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
    } else if let Some(secret) = bearer(req) {
        s.broker.authenticate(&secret)
    } else if let Some(ClientCertificate(subject)) = req.extensions().get::<ClientCertificate>() {
        Ok(s.broker.authenticate_certificate(subject))
    } else {
        Err(Error::new(
            ErrorCode::Unauthenticated,
            "credentials required: send Authorization: Bearer <token>",
        ))
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
