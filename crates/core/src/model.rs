//! Records as the control plane stores them.

use chrono::{DateTime, Utc};

use crate::ids::{ApiKeyId, ServerId, TenantId, VersionId};
use crate::scope::Scope;
use crate::server::{ServerKind, VersionSpec};
use crate::slug::Slug;

/// A tenant: the isolation boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// URL name.
    pub slug: Slug,
    /// Display name.
    pub name: String,
    /// Disabled tenants serve nothing.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A hosted MCP server.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Id.
    pub id: ServerId,
    /// URL name, unique within the tenant.
    pub slug: Slug,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// How it is hosted.
    pub kind: ServerKind,
    /// Disabled servers serve nothing.
    pub enabled: bool,
    /// Anonymous MCP calls allowed (still rate-limited and audited).
    pub public: bool,
    /// Tools refused by the kill switch.
    pub disabled_tools: Vec<String>,
    /// The version that serves calls.
    pub active_version: Option<i32>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One immutable version of a server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerVersion {
    /// Id.
    pub id: VersionId,
    /// The server it belongs to.
    pub server_id: ServerId,
    /// 1, 2, 3… per server.
    pub number: i32,
    /// What it runs.
    pub spec: VersionSpec,
    /// Kill-switch flag.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// An API key's metadata (never its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Display name.
    pub name: String,
    /// The public lookup part, shown so users can tell keys apart.
    pub prefix: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// When set, the servers (by slug) the key is limited to.
    pub servers: Option<Vec<Slug>>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}
