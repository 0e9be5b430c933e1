//! Who is calling: JWT verification ([`jwt`]), the [`Principal`] it yields, and the scope
//! predicates that authorize each use case. The axum extractor lives in `http::extract`.

mod jwks;
pub mod jwt;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{AppError, ErrorCode};

pub use jwt::{AuthError, JwtVerifier, mint_hs256};

/// What a caller may do. Granted through the token's `scope` / `scp` / `permissions` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "connections:read")]
    ConnectionsRead,
    #[serde(rename = "connections:write")]
    ConnectionsWrite,
    #[serde(rename = "inventory:read")]
    InventoryRead,
    #[serde(rename = "access:write")]
    AccessWrite,
    #[serde(rename = "audit:read")]
    AuditRead,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::ConnectionsRead,
        Scope::ConnectionsWrite,
        Scope::InventoryRead,
        Scope::AccessWrite,
        Scope::AuditRead,
    ];

    /// The scope's name in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ConnectionsRead => "connections:read",
            Scope::ConnectionsWrite => "connections:write",
            Scope::InventoryRead => "inventory:read",
            Scope::AccessWrite => "access:write",
            Scope::AuditRead => "audit:read",
        }
    }

    /// Parses a scope name; unknown names are `None` (ignored, not an error: tokens are shared
    /// with other services).
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: recorded on every write.
    pub subject: String,
    /// The OAuth client (`azp` or `client_id` claim), when the token names one.
    pub client_id: Option<String>,
    pub scopes: BTreeSet<Scope>,
    /// The configured groups claim's values (`OG_JWT_GROUPS_CLAIM`), for the policy.
    pub groups: Vec<String>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// `Ok` if the caller holds `scope`, else a 403 naming it.
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorCode::InsufficientScope,
                format!("this operation needs the `{scope}` scope, which the token does not grant"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_predicates() {
        let p = Principal {
            subject: "alice".into(),
            client_id: None,
            scopes: [Scope::ConnectionsRead].into_iter().collect(),
            groups: Vec::new(),
        };
        assert!(p.require(Scope::ConnectionsRead).is_ok());
        let err = p.require(Scope::ConnectionsWrite).unwrap_err();
        assert_eq!(err.code, ErrorCode::InsufficientScope);
        assert!(err.message.contains("connections:write"));
        assert_eq!(Scope::parse("audit:read"), Some(Scope::AuditRead));
        assert_eq!(Scope::parse("admin"), None);
    }
}
