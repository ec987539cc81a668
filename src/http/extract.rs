//! Extractors that turn every client mistake into a problem+json error naming the field:
//! the caller context, query strings, and JSON bodies.

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use http_body_util::BodyExt as _;
use hyper::body::Body as _;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::broker::Caller;
use crate::error::{Error, ErrorCode};

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// The caller the authentication middleware established, taken out of the request (a
    /// handler extracts it once; nothing reads it after the handler).
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .remove::<Caller>()
            .ok_or_else(|| Error::new(ErrorCode::Unauthenticated, "credentials required").into())
    }
}

/// Query parameters; unknown or malformed parameters are `invalid_parameter`.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let detail = e.inner().to_string();
            // An unknown parameter is named by serde's message; any other by its path.
            let field = detail
                .split_once("unknown field `")
                .and_then(|(_, rest)| rest.split('`').next())
                .map(str::to_owned)
                .or_else(|| Some(e.path().to_string()).filter(|p| p != "."))
                .unwrap_or_else(|| "query".to_owned());
            Error::new(ErrorCode::InvalidParameter, format!("invalid query string: {detail}"))
                .with_field(field)
                .into()
        })
    }
}

/// The media type of a request, lower-cased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Reads a whole body into one buffer, refusing more than `limit` bytes with
/// `request_too_large` (a declared `Content-Length` over it before reading anything). A body
/// that arrives in one piece is returned as it is; otherwise the buffer is sized from the
/// declared length, so a body is held once, not as pieces plus a copy.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, Error> {
    let mut body = body;
    let read = read_into_one(&mut body, limit).await;
    if read.as_ref().is_err_and(|e| e.code != ErrorCode::InvalidJson) {
        // Refused, not broken: let a client still sending it read the answer.
        super::limits::discard(body, limit.saturating_mul(2));
    }
    read
}

async fn read_into_one(body: &mut Body, limit: usize) -> Result<Bytes, Error> {
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let Some(first) = next_data(body).await? else {
        return Ok(Bytes::new());
    };
    if first.len() > limit {
        return Err(too_large(limit));
    }
    if body.is_end_stream() {
        return Ok(first);
    }
    let expected = declared.map_or(first.len().saturating_mul(2), |n| n as usize);
    let mut buf = Vec::with_capacity(expected.min(limit));
    buf.extend_from_slice(&first);
    drop(first);
    while let Some(data) = next_data(body).await? {
        if buf.len() + data.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.into())
}

/// The next data frame of a body (trailers skipped), `None` at its end.
async fn next_data(body: &mut Body) -> Result<Option<Bytes>, Error> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(body_error)?;
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorCode::RequestTooLarge,
        format!("request body exceeds the limit of {limit} bytes"),
    )
    .with_field("body")
}

/// The error of a body that could not be read: `overloaded` when the memory budget for bodies
/// ran out while it arrived, else the client's fault.
fn body_error(e: axum::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(over) = s.downcast_ref::<super::limits::OverBudget>() {
            return Error::new(ErrorCode::Overloaded, format!("{over}; retry shortly"));
        }
        source = s.source();
    }
    Error::new(ErrorCode::InvalidJson, format!("could not read the request body: {e}")).with_field("body")
}

/// Refuses a body that is a JSON array where an object is wanted (serde would otherwise read
/// an array as a struct's fields in order, and complain about the wrong thing), saying what to
/// send instead: `hint`.
pub fn refuse_array(bytes: &[u8], hint: &str) -> Result<(), Error> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            Err(Error::new(ErrorCode::InvalidJson, format!("the body is a JSON array; {hint}")).with_field("body"))
        }
        _ => Ok(()),
    }
}

/// Parses a JSON object, naming the path of the first offending field in the error.
pub fn parse_json<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    refuse_array(bytes, "send a JSON object")?;
    // Fast path: plain serde_json. Tracking the path of every value costs ~10 % of produce CPU,
    // so only a body that fails is parsed again to name the offending field.
    let first = match serde_json::from_slice(bytes) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let err = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => match de.end() {
            Ok(()) => first,
            Err(e) => e,
        },
        Err(e) => {
            let path = e.path().to_string();
            let mut err = Error::new(ErrorCode::InvalidJson, format!("invalid JSON body: {}", e.into_inner()));
            if path != "." && !path.is_empty() {
                err = err.with_field(path);
            }
            return Err(err);
        }
    };
    Err(Error::new(ErrorCode::InvalidJson, format!("invalid JSON body: {err}")))
}

/// A JSON body of a management endpoint: `application/json` (or no content type), within the
/// request limit, parsed with field-naming errors.
pub async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body, limit: usize) -> Result<T, Error> {
    require_json(headers)?;
    let bytes = read_body(body, limit).await?;
    parse_json(&bytes)
}

/// Refuses any content type but JSON (a missing one is taken as JSON).
pub fn require_json(headers: &HeaderMap) -> Result<(), Error> {
    match media_type(headers).as_deref() {
        None | Some("application/json") => Ok(()),
        Some(other) => Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type '{other}' is not accepted here; send application/json"),
        )
        .with_field("Content-Type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(pieces: &[&'static str]) -> Body {
        let pieces: Vec<Result<Bytes, std::io::Error>> = pieces.iter().map(|p| Ok(Bytes::from(*p))).collect();
        Body::from_stream(futures::stream::iter(pieces))
    }

    #[tokio::test]
    async fn bodies_are_read_whole_within_the_limit() {
        let one = Bytes::from_static(b"{\"a\":1}");
        let read = read_body(Body::from(one.clone()), 100).await.unwrap();
        assert_eq!(read.as_ptr(), one.as_ptr(), "a body in one piece is not copied");
        assert_eq!(read_body(stream(&["ab", "cd", "e"]), 5).await.unwrap(), "abcde");
        assert_eq!(read_body(Body::empty(), 5).await.unwrap(), "");
        let e = read_body(stream(&["ab", "cd", "ef"]), 5).await.unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), (ErrorCode::RequestTooLarge, Some("body")));
        let e = read_body(Body::from("abcdef"), 5).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestTooLarge);
    }

    #[tokio::test]
    async fn a_body_over_the_memory_budget_is_overloaded() {
        let budget = std::sync::Arc::new(super::super::limits::BodyBudget::new(3));
        let reservation = std::sync::Arc::new(budget.reservation());
        let req = axum::extract::Request::new(stream(&["ab", "cd"]));
        let body = super::super::limits::meter_body(req, Some(&reservation)).into_body();
        let e = read_body(body, 100).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Overloaded);
    }
}
