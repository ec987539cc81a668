//! The caller context every service call takes: who is asking, so that authentication and
//! authorization are decided here, in one place, for every door (HTTP, connectors, streams).

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No identity was established (authentication is not configured).
    Anonymous,
    /// The server itself (background tasks, internal producers).
    Internal,
}

/// The context of one service call.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who is asking.
    pub principal: Principal,
    /// The request id, for logs.
    pub request_id: Option<String>,
}

impl Caller {
    /// A caller with no identity.
    pub fn anonymous() -> Self {
        Self {
            principal: Principal::Anonymous,
            request_id: None,
        }
    }

    /// The server acting on its own behalf.
    pub fn internal() -> Self {
        Self {
            principal: Principal::Internal,
            request_id: None,
        }
    }
}

/// What a caller wants to do to a resource; checked by [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Read records.
    Read,
    /// Write records.
    Write,
    /// Create the resource.
    Create,
    /// Delete the resource.
    Delete,
    /// Change the resource's settings.
    Alter,
    /// See that the resource exists and its description.
    Describe,
}

/// The kind of resource an operation is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
}

/// The one place where permissions are decided. With no authentication configured every caller
/// may do everything; the security work plugs its ACL check in here.
pub fn authorize(
    _caller: &Caller,
    _operation: Operation,
    _resource: Resource,
    _name: &str,
) -> crate::error::Result<()> {
    Ok(())
}
