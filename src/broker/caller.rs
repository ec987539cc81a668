//! The caller context every service call takes, and the one place where permissions are
//! decided ([`authorize`]), so that every door (HTTP, connectors, streams) obeys the same rules.
//!
//! Permissions are grants in the style of Kafka ACLs: a resource type, a name taken literally
//! or as a prefix, and operations. With authentication off, every caller may do everything.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorCode, Result};

/// A kind of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// A connector.
    Connector,
    /// A stream query.
    Query,
    /// The server itself: tokens, metrics.
    Cluster,
}

/// What a caller wants to do to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Read records (consume; join a group).
    Read,
    /// Write records.
    Write,
    /// Create the resource.
    Create,
    /// Delete the resource.
    Delete,
    /// Change its settings.
    Alter,
    /// See it and its description (implied by every other operation, as in Kafka).
    Describe,
}

/// How a grant's name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatternType {
    /// The name exactly (`*` matches every name).
    #[default]
    Literal,
    /// Every name starting with it.
    Prefix,
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"resource": "topic", "name": "orders", "pattern": "literal", "operations": ["read", "write"]}))]
pub struct Permission {
    /// Resource type.
    pub resource: Resource,
    /// Resource name (or prefix).
    pub name: String,
    /// `literal` (default) or `prefix`.
    #[serde(default)]
    pub pattern: PatternType,
    /// Allowed operations.
    pub operations: Vec<Operation>,
}

impl Permission {
    /// A literal grant of `operations` on one resource.
    pub fn literal(resource: Resource, name: impl Into<String>, operations: &[Operation]) -> Self {
        Self {
            resource,
            name: name.into(),
            pattern: PatternType::Literal,
            operations: operations.to_vec(),
        }
    }

    /// Whether this grant allows `operation` on every resource that `other` names.
    fn covers(&self, other: &Permission, operation: Operation) -> bool {
        let names = match (self.pattern, other.pattern) {
            (PatternType::Literal, _) if self.name == "*" => true,
            (PatternType::Literal, PatternType::Literal) => self.name == other.name,
            (PatternType::Prefix, _) => other.name.starts_with(&self.name),
            (PatternType::Literal, PatternType::Prefix) => false,
        };
        self.resource == other.resource
            && names
            && (self.operations.contains(&operation)
                || (operation == Operation::Describe && !self.operations.is_empty()))
    }

    /// Whether this grant allows `operation` on `resource` `name`.
    pub fn allows(&self, operation: Operation, resource: Resource, name: &str) -> bool {
        self.resource == resource
            && match self.pattern {
                PatternType::Literal => self.name == name || self.name == "*",
                PatternType::Prefix => name.starts_with(&self.name),
            }
            && (self.operations.contains(&operation)
                || (operation == Operation::Describe && !self.operations.is_empty()))
    }
}

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Authentication is off: local development.
    Anonymous,
    /// The server itself (background tasks, internal producers).
    Internal,
    /// The bootstrap admin token: may do everything.
    Admin,
    /// An API token.
    Token {
        /// Token id.
        id: String,
        /// Token name.
        name: String,
    },
    /// A JWT from an identity provider.
    Jwt {
        /// The `sub` claim.
        subject: String,
    },
    /// A TLS client certificate.
    Certificate {
        /// The certificate's subject.
        subject: String,
    },
    /// A connector's tasks, running inside the server.
    Connector {
        /// The connector's name.
        name: String,
    },
    /// A persistent stream query, running inside the server.
    Query {
        /// The query's id.
        id: String,
    },
}

impl Principal {
    /// A short name for logs and audit lines (never a secret).
    pub fn name(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".into(),
            Self::Internal => "internal".into(),
            Self::Admin => "admin".into(),
            Self::Token { id, name } => format!("token:{id}:{name}"),
            Self::Jwt { subject } => format!("jwt:{subject}"),
            Self::Certificate { subject } => format!("cert:{subject}"),
            Self::Connector { name } => format!("connector:{name}"),
            Self::Query { id } => format!("query:{id}"),
        }
    }
}

/// The context of one service call.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who is asking.
    pub principal: Principal,
    /// What they were granted (ignored for `Anonymous`, `Internal` and `Admin`).
    pub permissions: Arc<Vec<Permission>>,
    /// The request id, for logs.
    pub request_id: Option<String>,
    /// Cancelled when the caller's credential is revoked or expires: long streams end on it.
    pub revoked: Option<CancellationToken>,
    /// When the credential expires, ms since the epoch (API token `expires_at`, JWT `exp`).
    pub expires_at: Option<i64>,
}

/// Why a credential stopped being valid while a stream or long poll was open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialEnd {
    /// It was revoked.
    Revoked,
    /// It reached its expiry time.
    Expired,
}

impl CredentialEnd {
    /// The error a request or stream ends with.
    pub fn error(self) -> Error {
        Error::new(
            ErrorCode::Unauthenticated,
            match self {
                Self::Revoked => "the credential was revoked",
                Self::Expired => "the credential expired",
            },
        )
    }
}

impl Caller {
    /// A caller with no identity (authentication off).
    pub fn anonymous() -> Self {
        // One shared empty grant list: building a caller is on every request's path.
        static NONE: std::sync::LazyLock<Arc<Vec<Permission>>> = std::sync::LazyLock::new(Arc::default);
        Self {
            principal: Principal::Anonymous,
            permissions: NONE.clone(),
            request_id: None,
            revoked: None,
            expires_at: None,
        }
    }

    /// The server acting on its own behalf.
    pub fn internal() -> Self {
        Self {
            principal: Principal::Internal,
            ..Self::anonymous()
        }
    }

    /// A caller with a principal and its grants.
    pub fn with(principal: Principal, permissions: Vec<Permission>) -> Self {
        Self {
            principal,
            permissions: Arc::new(permissions),
            ..Self::anonymous()
        }
    }

    /// Completes when the caller's credential is revoked or expires (never for callers without
    /// a revocable or expiring credential). Long polls and streams select on it.
    pub fn credential_ended(&self) -> impl std::future::Future<Output = CredentialEnd> + Send + 'static {
        let revoked = self.revoked.clone();
        let expires_at = self.expires_at;
        async move {
            let revoked = async {
                match revoked {
                    Some(t) => t.cancelled_owned().await,
                    None => std::future::pending().await,
                }
            };
            let expired = async {
                match expires_at {
                    Some(at) => {
                        let left = at.saturating_sub(super::now_ms()).max(0) as u64;
                        tokio::time::sleep(std::time::Duration::from_millis(left)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = revoked => CredentialEnd::Revoked,
                _ = expired => CredentialEnd::Expired,
            }
        }
    }
}

/// Checks that `creator` holds every grant it hands to an in-process client it creates (a
/// connector or a query): a client never gets more than its creator had.
pub fn grants_within(creator: &Caller, grants: &[Permission]) -> Result<()> {
    if matches!(
        creator.principal,
        Principal::Anonymous | Principal::Internal | Principal::Admin
    ) {
        return Ok(());
    }
    for g in grants {
        for &op in &g.operations {
            if !creator.permissions.iter().any(|p| p.covers(g, op)) {
                return Err(Error::new(
                    ErrorCode::Forbidden,
                    format!(
                        "cannot grant {op:?} on {:?} '{}' to a client: the caller does not hold it",
                        g.resource, g.name
                    )
                    .to_lowercase(),
                ));
            }
        }
    }
    Ok(())
}

/// The one place where permissions are decided. The answer for a missing grant is the same
/// whether or not the resource exists, so it leaks nothing about forbidden resources.
pub fn authorize(caller: &Caller, operation: Operation, resource: Resource, name: &str) -> Result<()> {
    match caller.principal {
        Principal::Anonymous | Principal::Internal | Principal::Admin => Ok(()),
        _ if caller.permissions.iter().any(|p| p.allows(operation, resource, name)) => Ok(()),
        _ => Err(Error::new(
            ErrorCode::Forbidden,
            format!("not allowed to {operation:?} {resource:?} '{name}'").to_lowercase(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(perms: serde_json::Value) -> Caller {
        Caller::with(
            Principal::Token {
                id: "t".into(),
                name: "n".into(),
            },
            serde_json::from_value(perms).unwrap(),
        )
    }

    #[test]
    fn clients_get_no_more_than_their_creator_holds() {
        let creator = caller(serde_json::json!([
            {"resource": "topic", "name": "orders", "operations": ["read"]},
            {"resource": "topic", "name": "out.", "pattern": "prefix", "operations": ["write", "create"]},
        ]));
        let ok = [
            Permission::literal(Resource::Topic, "orders", &[Operation::Read]),
            Permission::literal(Resource::Topic, "out.enriched", &[Operation::Write, Operation::Create]),
            Permission {
                resource: Resource::Topic,
                name: "out.x".into(),
                pattern: PatternType::Prefix,
                operations: vec![Operation::Write],
            },
        ];
        assert!(grants_within(&creator, &ok).is_ok());
        for bad in [
            Permission::literal(Resource::Topic, "orders", &[Operation::Write]),
            Permission::literal(Resource::Topic, "other", &[Operation::Read]),
            Permission {
                resource: Resource::Topic,
                name: "o".into(),
                pattern: PatternType::Prefix,
                operations: vec![Operation::Read],
            },
            Permission::literal(Resource::Group, "orders", &[Operation::Read]),
        ] {
            let e = grants_within(&creator, std::slice::from_ref(&bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::Forbidden, "{bad:?}");
        }
        assert!(grants_within(&Caller::anonymous(), &ok).is_ok());
    }

    #[test]
    fn grants_match_literally_or_by_prefix_and_imply_describe() {
        let c = caller(serde_json::json!([
            {"resource": "topic", "name": "orders", "operations": ["read"]},
            {"resource": "topic", "name": "logs.", "pattern": "prefix", "operations": ["write"]},
            {"resource": "group", "name": "*", "operations": ["read"]}
        ]));
        assert!(authorize(&c, Operation::Read, Resource::Topic, "orders").is_ok());
        assert!(authorize(&c, Operation::Describe, Resource::Topic, "orders").is_ok());
        assert!(authorize(&c, Operation::Write, Resource::Topic, "orders").is_err());
        assert!(authorize(&c, Operation::Read, Resource::Topic, "orders2").is_err());
        assert!(authorize(&c, Operation::Write, Resource::Topic, "logs.web").is_ok());
        assert!(authorize(&c, Operation::Write, Resource::Topic, "log").is_err());
        assert!(authorize(&c, Operation::Read, Resource::Group, "anything").is_ok());
        assert!(authorize(&c, Operation::Delete, Resource::Group, "anything").is_err());
        assert_eq!(
            authorize(&c, Operation::Alter, Resource::Cluster, "weir")
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        assert!(authorize(&Caller::anonymous(), Operation::Delete, Resource::Cluster, "weir").is_ok());
        assert!(
            authorize(
                &Caller::with(Principal::Admin, vec![]),
                Operation::Delete,
                Resource::Topic,
                "x"
            )
            .is_ok()
        );
    }
}
