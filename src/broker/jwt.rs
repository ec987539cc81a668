//! JWT bearer tokens from an external identity provider: signature (HS256 from a secret,
//! RS256/ES256 from a JWKS file or URL), issuer, audience and expiry are verified; a configured
//! claim maps to permissions.
//!
//! Permission strings in the claim: `resource:name:op|op`, where a name ending in `*` is a
//! prefix — e.g. `topic:orders:read|write`, `topic:logs.*:read`, `group:billing:read`,
//! `cluster:weir:describe`. The claim may be a list of strings or one space-separated string
//! (OAuth `scope` style).

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

use super::Broker;
use super::caller::{Caller, Operation, PatternType, Permission, Principal, Resource};
use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};

/// Keys and rules for verifying JWTs.
pub(crate) struct JwtVerifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwkSet>,
    issuer: Option<String>,
    audience: Option<String>,
    claim: String,
    leeway_secs: u64,
}

impl JwtVerifier {
    /// Builds the verifier from the config; `None` when JWTs are not configured.
    pub(crate) async fn from_config(c: &Config) -> anyhow::Result<Option<Self>> {
        let jwks = match (&c.jwt_jwks_file, &c.jwt_jwks_url) {
            (Some(path), _) => Some(serde_json::from_slice::<JwkSet>(&std::fs::read(path)?)?),
            (None, Some(url)) => Some(reqwest::get(url).await?.error_for_status()?.json::<JwkSet>().await?),
            (None, None) => None,
        };
        let hs256 = c
            .jwt_hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        if jwks.is_none() && hs256.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            hs256,
            jwks,
            issuer: c.jwt_issuer.clone(),
            audience: c.jwt_audience.clone(),
            claim: c.jwt_permissions_claim.clone(),
            leeway_secs: c.jwt_leeway_secs,
        }))
    }

    /// The subject, the permissions and the expiry (`exp`, ms since the epoch) of a valid JWT.
    fn verify(&self, token: &str) -> Result<(String, Vec<Permission>, Option<i64>)> {
        let bad = |detail: String| Error::new(ErrorCode::Unauthenticated, detail);
        let header = decode_header(token).map_err(|e| bad(format!("malformed JWT: {e}")))?;
        let key = match header.alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or_else(|| bad("HS256 JWTs are not accepted".into()))?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| bad("no JWKS is configured".into()))?;
                let jwk = match &header.kid {
                    Some(kid) => jwks.find(kid),
                    None => jwks.keys.first(),
                }
                .ok_or_else(|| bad("no key in the JWKS matches the JWT's kid".into()))?;
                DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("unusable JWK: {e}")))?
            }
            other => return Err(bad(format!("JWT algorithm {other:?} is not accepted"))),
        };
        let mut v = Validation::new(header.alg);
        v.set_required_spec_claims(&["exp", "sub"]);
        v.leeway = self.leeway_secs;
        match &self.issuer {
            Some(iss) => v.set_issuer(&[iss]),
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        let data = decode::<Value>(token, &key, &v).map_err(|e| bad(format!("JWT rejected: {e}")))?;
        let sub = data
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let perms = match data.claims.get(&self.claim) {
            Some(Value::String(s)) => s.split_whitespace().filter_map(parse_permission).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .filter_map(parse_permission)
                .collect(),
            _ => Vec::new(),
        };
        let exp = data
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .map(|s| s.saturating_mul(1000));
        Ok((sub, perms, exp))
    }
}

/// Parses `resource:name:op|op` (a name ending in `*` is a prefix).
pub fn parse_permission(s: &str) -> Option<Permission> {
    let mut parts = s.splitn(3, ':');
    let resource: Resource = serde_json::from_value(Value::String(parts.next()?.to_owned())).ok()?;
    let name = parts.next()?;
    let ops: Option<Vec<Operation>> = parts
        .next()?
        .split('|')
        .map(|o| serde_json::from_value(Value::String(o.to_owned())).ok())
        .collect();
    let (name, pattern) = match name.strip_suffix('*') {
        Some(prefix) if !prefix.is_empty() => (prefix.to_owned(), PatternType::Prefix),
        _ => (name.to_owned(), PatternType::Literal),
    };
    Some(Permission {
        resource,
        name,
        pattern,
        operations: ops?,
    })
}

impl Broker {
    /// Verifies a JWT and returns its caller.
    pub fn authenticate_jwt(&self, token: &str) -> Result<Caller> {
        let verifier = self
            .inner
            .jwt
            .as_ref()
            .ok_or_else(|| Error::new(ErrorCode::Unauthenticated, "unknown or revoked token"))?;
        let (subject, mut permissions, expires_at) = verifier.verify(token)?;
        let principal = Principal::Jwt { subject };
        permissions.extend(self.configured_grants(&principal.name()));
        let mut caller = Caller::with(principal, permissions);
        caller.expires_at = expires_at;
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_strings_parse() {
        let p = parse_permission("topic:orders:read|write").unwrap();
        assert_eq!(
            (p.resource, p.name.as_str(), p.pattern),
            (Resource::Topic, "orders", PatternType::Literal)
        );
        assert_eq!(p.operations, [Operation::Read, Operation::Write]);
        let p = parse_permission("topic:logs.*:read").unwrap();
        assert_eq!((p.name.as_str(), p.pattern), ("logs.", PatternType::Prefix));
        assert!(parse_permission("topic:orders").is_none());
        assert!(parse_permission("planet:earth:read").is_none());
        assert!(parse_permission("topic:x:fly").is_none());
    }
}
