//! `/v1/tokens`: API tokens (create, list without secrets, revoke).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiResult, Problem};
use super::extract::json_body;
use crate::broker::Caller;
use crate::broker::caller::Permission;
use crate::broker::tokens::TokenInfo;

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "billing-app",
    "permissions": [{"resource": "topic", "name": "orders", "pattern": "literal", "operations": ["read", "write"]},
                    {"resource": "group", "name": "billing", "operations": ["read"]}],
    "expires_at": 1767225600000i64}))]
pub struct CreateToken {
    /// A name for people: 1 to 128 characters, no control characters.
    #[schema(min_length = 1, max_length = 128, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    pub name: String,
    /// Grants: resource (`topic`, `group`, `connector`, `query`, `cluster`), name, pattern
    /// (`literal` or `prefix`), operations (`read`, `write`, `create`, `delete`, `alter`, `describe`).
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Expiry, ms since the epoch (default: never).
    #[serde(default, deserialize_with = "crate::json_int::opt")]
    pub expires_at: Option<i64>,
}

/// A new token with its secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "tok_4b1d…", "token": "weir_Zm9v…", "name": "billing-app",
    "permissions": [{"resource": "topic", "name": "orders", "pattern": "literal", "operations": ["read", "write"]}],
    "expires_at": 1767225600000i64, "created_at": 1732500000000i64}))]
pub struct NewToken {
    /// The secret: send it as `Authorization: Bearer <token>`. It is not stored and cannot be shown again.
    pub token: String,
    /// The token's description.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// The token list.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Tokens, oldest first, without secrets.
    pub tokens: Vec<TokenInfo>,
}

/// Create an API token.
#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens", operation_id = "create_token",
    extensions(("x-weir-permissions" = json!([{"resource": "cluster", "name": "weir", "operation": "alter"}]))),
    summary = "Create an API token",
    description = "Needs `alter` on `cluster`. The secret is returned once, as `token`; only its hash is stored.",
    request_body(content = CreateToken, content_type = "application/json"),
    responses(
        (status = 201, description = "The token and its secret.", body = NewToken),
        (status = 400, description = "`invalid_parameter`, `invalid_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    let req: CreateToken = json_body(&headers, body, s.broker.config().max_request_bytes).await?;
    let (info, token) = s
        .broker
        .create_token(&caller, &req.name, req.permissions, req.expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(NewToken { token, info })))
}

/// List API tokens.
#[utoipa::path(
    get, path = "/v1/tokens", tag = "tokens", operation_id = "list_tokens",
    extensions(("x-weir-permissions" = json!([
        {"resource": "cluster", "name": "weir", "operation": "describe"},
    ]))),
    summary = "List API tokens",
    description = "Needs `describe` on `cluster`. Secrets are never shown.",
    responses(
        (status = 200, description = "The tokens, without secrets.", body = TokenList,
         example = json!({"tokens": [{"id": "tok_4b1d…", "name": "billing-app", "permissions": [], "expires_at": null, "created_at": 1732500000000i64}]})),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<TokenList>> {
    Ok(Json(TokenList {
        tokens: s.broker.list_tokens(&caller)?,
    }))
}

/// Revoke an API token.
#[utoipa::path(
    delete, path = "/v1/tokens/{id}", tag = "tokens", operation_id = "revoke_token",
    extensions(("x-weir-permissions" = json!([{"resource": "cluster", "name": "weir", "operation": "alter"}]))),
    summary = "Revoke an API token",
    description = "Needs `alter` on `cluster`. Effective on the very next request; open event streams of the token are closed.",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.broker.revoke_token(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
