//! API tokens: created by callers allowed to alter the cluster, shown once, stored only as
//! SHA-256 hashes, checked on every request, revocable with immediate effect (open streams of a
//! revoked or expired token are ended through its cancellation token).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::caller::{self, Caller, Operation, Permission, Principal, Resource};
use super::log::Op;
use super::{Broker, now_ms};
use crate::error::{Error, ErrorCode, Result};

/// Resource name of the server in grants of type `cluster`.
pub const CLUSTER: &str = "weir";

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "tok_4b1d…", "name": "billing-app",
    "permissions": [{"resource": "topic", "name": "orders", "pattern": "literal", "operations": ["read", "write"]}],
    "expires_at": 1767225600000i64, "created_at": 1732500000000i64}))]
pub struct TokenInfo {
    /// Token id (not a secret).
    pub id: String,
    /// Name.
    pub name: String,
    /// Grants.
    pub permissions: Vec<Permission>,
    /// Expiry, ms since the epoch (none: never).
    pub expires_at: Option<i64>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    #[serde(flatten)]
    info: TokenInfo,
    /// Hex SHA-256 of the secret.
    hash: String,
}

struct Entry {
    info: TokenInfo,
    revoked: CancellationToken,
}

/// The token registry.
pub(crate) struct Tokens {
    by_hash: RwLock<HashMap<String, Arc<Entry>>>,
    admin_hash: Option<String>,
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn new_secret() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!(
        "weir_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn unauthenticated(detail: &str) -> Error {
    Error::new(ErrorCode::Unauthenticated, detail)
}

impl Tokens {
    /// The registry with the stored records and the bootstrap admin token (if any).
    pub(crate) fn load(records: Vec<Vec<u8>>, admin_token: Option<&str>) -> Self {
        let mut by_hash = HashMap::new();
        for raw in records {
            match serde_json::from_slice::<TokenRecord>(&raw) {
                Ok(r) => {
                    by_hash.insert(
                        r.hash,
                        Arc::new(Entry {
                            info: r.info,
                            revoked: CancellationToken::new(),
                        }),
                    );
                }
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable token record"),
            }
        }
        Self {
            by_hash: RwLock::new(by_hash),
            admin_hash: admin_token.map(hash),
        }
    }

    /// Cancels the streams of expired tokens.
    pub(crate) fn sweep(&self) {
        let now = now_ms();
        for e in self.by_hash.read().expect("tokens lock").values() {
            if e.info.expires_at.is_some_and(|t| t <= now) {
                e.revoked.cancel();
            }
        }
    }
}

impl Broker {
    /// Who presents this bearer credential: an API token, the admin token, or a JWT.
    pub fn authenticate(&self, credential: &str) -> Result<Caller> {
        if credential.starts_with("weir_") || !credential.contains('.') {
            return self.authenticate_token(credential);
        }
        self.authenticate_jwt(credential)
    }

    /// The caller for a verified TLS client certificate subject, with its configured grants.
    pub fn authenticate_certificate(&self, subject: &str) -> Caller {
        let principal = Principal::Certificate {
            subject: subject.to_owned(),
        };
        Caller::with(principal.clone(), self.configured_grants(&principal.name()))
    }

    /// Grants given to a principal name in the config file.
    pub(crate) fn configured_grants(&self, principal: &str) -> Vec<Permission> {
        self.inner
            .config
            .grants
            .iter()
            .filter(|g| g.principal == principal)
            .flat_map(|g| g.permissions.clone())
            .collect()
    }

    /// Who presents this bearer secret.
    pub fn authenticate_token(&self, secret: &str) -> Result<Caller> {
        let h = hash(secret);
        let tokens = &self.inner.tokens;
        if tokens.admin_hash.as_deref() == Some(h.as_str()) {
            return Ok(Caller::with(Principal::Admin, Vec::new()));
        }
        let entry = tokens.by_hash.read().expect("tokens lock").get(&h).cloned();
        let Some(e) = entry else {
            return Err(unauthenticated("unknown or revoked token"));
        };
        if e.info.expires_at.is_some_and(|t| t <= now_ms()) {
            e.revoked.cancel();
            return Err(unauthenticated("the token has expired"));
        }
        let mut caller = Caller::with(
            Principal::Token {
                id: e.info.id.clone(),
                name: e.info.name.clone(),
            },
            e.info.permissions.clone(),
        );
        caller.revoked = Some(e.revoked.clone());
        caller.expires_at = e.info.expires_at;
        Ok(caller)
    }

    /// Creates a token; returns its description and its secret (shown only this once).
    pub async fn create_token(
        &self,
        caller: &Caller,
        name: &str,
        permissions: Vec<Permission>,
        expires_at: Option<i64>,
    ) -> Result<(TokenInfo, String)> {
        caller::authorize(caller, Operation::Alter, Resource::Cluster, CLUSTER)?;
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(Error::invalid_parameter(
                "name",
                "name must be 1 to 128 printable characters",
            ));
        }
        for (i, p) in permissions.iter().enumerate() {
            if p.operations.is_empty() || (p.name.is_empty() && p.pattern != super::caller::PatternType::Prefix) {
                return Err(Error::invalid_parameter(
                    &format!("permissions[{i}]"),
                    "a permission needs a name and at least one operation",
                ));
            }
        }
        if expires_at.is_some_and(|t| t <= now_ms()) {
            return Err(Error::invalid_parameter(
                "expires_at",
                "expires_at must be in the future (ms since the epoch)",
            ));
        }
        let secret = new_secret();
        let info = TokenInfo {
            id: format!("tok_{}", uuid::Uuid::new_v4().simple()),
            name: name.to_owned(),
            permissions,
            expires_at,
            created_at: now_ms(),
        };
        let record = TokenRecord {
            info: info.clone(),
            hash: hash(&secret),
        };
        let bytes = serde_json::to_vec(&record).map_err(Error::internal)?;
        let id = info.id.clone();
        self.inner
            .writer
            .call(|reply| Op::PutToken {
                id,
                record: bytes,
                reply,
            })
            .await?;
        self.inner.tokens.by_hash.write().expect("tokens lock").insert(
            record.hash,
            Arc::new(Entry {
                info: info.clone(),
                revoked: CancellationToken::new(),
            }),
        );
        self.audit(caller, "token.create", Resource::Cluster, &info.id);
        Ok((info, secret))
    }

    /// Lists tokens, without secrets.
    pub fn list_tokens(&self, caller: &Caller) -> Result<Vec<TokenInfo>> {
        caller::authorize(caller, Operation::Describe, Resource::Cluster, CLUSTER)?;
        let mut out: Vec<TokenInfo> = self
            .inner
            .tokens
            .by_hash
            .read()
            .expect("tokens lock")
            .values()
            .map(|e| e.info.clone())
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Revokes a token: its next request is refused and its open streams end.
    pub async fn revoke_token(&self, caller: &Caller, id: &str) -> Result<()> {
        caller::authorize(caller, Operation::Alter, Resource::Cluster, CLUSTER)?;
        let removed = {
            let mut map = self.inner.tokens.by_hash.write().expect("tokens lock");
            let key = map.iter().find(|(_, e)| e.info.id == id).map(|(k, _)| k.clone());
            key.and_then(|k| map.remove(&k))
        };
        let Some(entry) = removed else {
            return Err(Error::new(ErrorCode::NotFound, format!("token '{id}' does not exist")).with_field("id"));
        };
        entry.revoked.cancel();
        let id_owned = id.to_owned();
        self.inner
            .writer
            .call(|reply| Op::DeleteToken { id: id_owned, reply })
            .await?;
        self.audit(caller, "token.revoke", Resource::Cluster, id);
        Ok(())
    }
}
