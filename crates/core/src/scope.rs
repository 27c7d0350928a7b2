//! Who is calling, and what they may touch.
//!
//! A [`TenantScope`] is the only way to name a tenant when reading or writing tenant data.
//! It can only be built from verified credentials (see `berth-auth`) or, for the platform
//! administrator, after the tenant was looked up by slug. Its constructor has a loud name.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, ServerId, TenantId};
use crate::slug::Slug;

/// A member's role within a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full control, including deleting the tenant's data.
    Owner,
    /// Manages servers, keys and members.
    Admin,
    /// Publishes servers and versions.
    Publisher,
    /// Reads the audit trail and usage.
    Auditor,
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Publisher => "publisher",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a wire name.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "publisher" => Ok(Role::Publisher),
            "auditor" => Ok(Role::Auditor),
            other => Err(Error::invalid(
                "role",
                format!("unknown role {other:?} (expected owner, admin, publisher or auditor)"),
            )),
        }
    }
}

/// What an API key (or, later, an OAuth token) is allowed to do.
///
/// The model is documented in `docs/api.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Call the tenant's MCP servers (`mcp`). The default for new keys.
    #[serde(rename = "mcp")]
    Mcp,
    /// Read the tenant's configuration through the admin API (`admin:read`).
    #[serde(rename = "admin:read")]
    AdminRead,
    /// Create servers and publish versions (`publish`); implies `admin:read`.
    #[serde(rename = "publish")]
    Publish,
    /// Everything in the tenant through the admin API (`admin`).
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope, in wire order.
    pub const ALL: [Scope; 4] = [Scope::Mcp, Scope::AdminRead, Scope::Publish, Scope::Admin];

    /// The scope's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Mcp => "mcp",
            Scope::AdminRead => "admin:read",
            Scope::Publish => "publish",
            Scope::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(value: &str) -> Result<Self> {
        Scope::ALL.into_iter().find(|s| s.as_str() == value).ok_or_else(|| {
            Error::invalid("scopes", format!("unknown scope {value:?} (expected mcp, admin:read, publish or admin)"))
        })
    }

    /// Whether holding `self` grants `wanted`.
    pub fn grants(self, wanted: Scope) -> bool {
        match (self, wanted) {
            (a, b) if a == b => true,
            (Scope::Admin, Scope::AdminRead | Scope::Publish) => true,
            (Scope::Publish, Scope::AdminRead) => true,
            _ => false,
        }
    }
}

/// Proof that the caller may act within one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    tenant_id: TenantId,
    slug: Slug,
}

impl TenantScope {
    /// Builds a scope. Only call this after credentials were verified for this tenant
    /// (an API key of the tenant, or the platform admin token followed by a lookup).
    pub fn from_verified_credentials(tenant_id: TenantId, slug: Slug) -> Self {
        Self { tenant_id, slug }
    }

    /// The tenant's id.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// The tenant's slug.
    pub fn slug(&self) -> &Slug {
        &self.slug
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Holder of `BERTH_ADMIN_TOKEN`: may act on every tenant.
    PlatformAdmin,
    /// An API key of one tenant.
    ApiKey {
        /// The key's tenant.
        tenant: TenantScope,
        /// The key's id.
        key_id: ApiKeyId,
        /// Granted scopes.
        scopes: Vec<Scope>,
        /// When set, the key only reaches these servers.
        servers: Option<Vec<ServerId>>,
    },
    /// An OAuth access token of one tenant, issued for exactly one server (its audience) by the
    /// tenant's authorization server or by the external issuer the tenant trusts.
    Token {
        /// The token's tenant.
        tenant: TenantScope,
        /// The OAuth client the token was issued to.
        client_id: String,
        /// The member the token acts for (their id).
        subject: String,
        /// Granted scopes.
        scopes: Vec<Scope>,
        /// The server URL the token is for (RFC 8707).
        audience: String,
    },
}

impl Principal {
    /// Whether this principal holds `wanted` (the platform admin holds every scope).
    pub fn has_scope(&self, wanted: Scope) -> bool {
        match self {
            Principal::PlatformAdmin => true,
            Principal::ApiKey { scopes, .. } | Principal::Token { scopes, .. } => {
                scopes.iter().any(|s| s.grants(wanted))
            }
        }
    }

    /// The tenant of a tenant-bound credential (`None` for the platform administrator).
    pub fn tenant(&self) -> Option<&TenantScope> {
        match self {
            Principal::PlatformAdmin => None,
            Principal::ApiKey { tenant, .. } | Principal::Token { tenant, .. } => Some(tenant),
        }
    }

    /// A stable, non-secret label for logs and audit records.
    pub fn label(&self) -> String {
        match self {
            Principal::PlatformAdmin => "platform-admin".to_owned(),
            Principal::ApiKey { key_id, .. } => format!("api-key:{key_id}"),
            Principal::Token { client_id, subject, .. } => format!("oauth:{client_id}:{subject}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_scope_implies_read_and_publish_but_not_mcp() {
        assert!(Scope::Admin.grants(Scope::AdminRead));
        assert!(Scope::Admin.grants(Scope::Publish));
        assert!(!Scope::Admin.grants(Scope::Mcp));
        assert!(Scope::Publish.grants(Scope::AdminRead));
        assert!(!Scope::AdminRead.grants(Scope::Publish));
        assert!(!Scope::Mcp.grants(Scope::AdminRead));
    }

    #[test]
    fn scopes_round_trip_through_their_wire_names() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(Scope::parse("root").is_err());
    }

    #[test]
    fn roles_round_trip_and_reject_unknown() {
        for r in [Role::Owner, Role::Admin, Role::Publisher, Role::Auditor] {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        assert!(Role::parse("superuser").is_err());
    }
}

/// Proof that the caller is the platform administrator.
///
/// Needed for operations that span tenants: creating, listing and looking up tenants by slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminScope(());

impl AdminScope {
    /// Builds the scope. Only call this after the platform admin token was verified,
    /// or from trusted process start-up code (migrations, `berth up`'s demo tenant).
    pub fn from_verified_admin_token() -> Self {
        Self(())
    }
}
