//! Extractors that turn every client mistake into a problem+json error naming the field:
//! the caller context, query strings, and JSON bodies.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Query};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
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

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(e) => {
                let text = e.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                let field = detail
                    .split_once("unknown field `")
                    .and_then(|(_, rest)| rest.split('`').next())
                    .unwrap_or("query")
                    .to_owned();
                Err(
                    Error::new(ErrorCode::InvalidParameter, format!("invalid query string: {detail}"))
                        .with_field(field)
                        .into(),
                )
            }
        }
    }
}

/// The media type of a request, lower-cased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Reads a whole body, refusing more than `limit` bytes with `request_too_large`.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, Error> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            Error::new(
                ErrorCode::RequestTooLarge,
                format!("request body exceeds the limit of {limit} bytes"),
            )
            .with_field("body")
        } else {
            Error::new(ErrorCode::InvalidJson, format!("could not read the request body: {e}")).with_field("body")
        }
    })
}

/// Parses JSON, naming the path of the first offending field in the error.
pub fn parse_json<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
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
