//! Request and response bodies of the admin API, as documented in the OpenAPI document.
//!
//! These are wire shapes only; handlers turn requests into domain types before use.

use std::collections::BTreeMap;

use berth_core::{ApiKey, ContainerLimits, Server, ServerVersion, Tenant, VersionSpec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A page of results. Pass `next_cursor` back as `cursor` to continue.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page<T: ToSchema> {
    pub(crate) items: Vec<T>,
    pub(crate) next_cursor: Option<String>,
}

/// Paging parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Page size (1-500, default 100).
    pub(crate) limit: Option<i64>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub(crate) cursor: Option<String>,
}

impl PageQuery {
    pub(crate) fn limit(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, 500)
    }
}

/// Builds a page from `limit + 1` fetched rows.
pub(crate) fn page<R, T: ToSchema>(
    mut rows: Vec<R>,
    limit: i64,
    cursor: impl Fn(&R) -> String,
    map: impl Fn(R) -> T,
) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(&cursor)
    } else {
        None
    };
    Page { items: rows.into_iter().map(map).collect(), next_cursor }
}

/// Body of `POST /tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenant {
    /// Lowercase `[a-z0-9-]{1,63}`.
    pub(crate) slug: String,
    /// Display name (1-200 characters).
    pub(crate) name: String,
}

/// Body of `PATCH /tenants/{tenant}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchTenant {
    pub(crate) name: Option<String>,
    /// Platform administrator only.
    pub(crate) enabled: Option<bool>,
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantBody {
    pub(crate) id: Uuid,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) enabled: bool,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<Tenant> for TenantBody {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id.as_uuid(),
            slug: t.slug.to_string(),
            name: t.name,
            enabled: t.enabled,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// Body of `POST /tenants/{tenant}/servers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateServer {
    pub(crate) slug: String,
    pub(crate) name: String,
    /// `wasm`, `container` or `remote`; fixed for the server's life.
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) description: String,
    /// Allow anonymous MCP calls (still rate-limited and audited). Default false.
    #[serde(default)]
    pub(crate) public: bool,
}

/// Body of `PATCH .../servers/{server}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchServer {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) enabled: Option<bool>,
    /// Needs the `admin` scope.
    pub(crate) public: Option<bool>,
    pub(crate) disabled_tools: Option<Vec<String>>,
}

/// A hosted server.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServerBody {
    pub(crate) id: Uuid,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) kind: String,
    pub(crate) enabled: bool,
    pub(crate) public: bool,
    pub(crate) disabled_tools: Vec<String>,
    /// Number of the version serving calls, if any.
    pub(crate) active_version: Option<i32>,
    /// The URL to paste into an MCP client.
    pub(crate) mcp_url: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl ServerBody {
    pub(crate) fn new(s: Server, public_url: &url::Url, tenant: &str) -> Self {
        let base = public_url.as_str().trim_end_matches('/');
        Self {
            mcp_url: format!("{base}/t/{tenant}/{}/mcp", s.slug),
            id: s.id.as_uuid(),
            slug: s.slug.to_string(),
            name: s.name,
            description: s.description,
            kind: s.kind.as_str().to_owned(),
            enabled: s.enabled,
            public: s.public,
            disabled_tools: s.disabled_tools,
            active_version: s.active_version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Body of `POST .../versions` for a container server.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct ContainerVersionRequest {
    pub(crate) image: String,
    /// `stdio` or `http`.
    pub(crate) transport: String,
    pub(crate) command: Option<Vec<String>>,
    pub(crate) args: Option<Vec<String>>,
    pub(crate) env: Option<BTreeMap<String, String>>,
    /// Container port (http transport).
    pub(crate) port: Option<u16>,
    /// MCP path (http transport, default `/mcp`).
    pub(crate) path: Option<String>,
    pub(crate) limits: Option<LimitsBody>,
    /// Outbound network access (default `false`: no network at all).
    pub(crate) egress: Option<bool>,
}

/// Body of `POST .../versions` for a remote server.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct RemoteVersionRequest {
    pub(crate) url: String,
    /// Sent upstream on every request (for example upstream credentials).
    pub(crate) headers: Option<BTreeMap<String, String>>,
}

/// Container resource limits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct LimitsBody {
    /// MiB, 16-65536, default 256.
    pub(crate) memory_mb: u32,
    /// Cores, 0.01-64, default 1.
    pub(crate) cpus: f64,
    /// 1-32768, default 128.
    pub(crate) pids: u32,
}

impl From<ContainerLimits> for LimitsBody {
    fn from(l: ContainerLimits) -> Self {
        Self { memory_mb: l.memory_mb, cpus: l.cpus, pids: l.pids }
    }
}

/// One immutable version. Fields present depend on `kind`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VersionBody {
    pub(crate) id: Uuid,
    /// 1, 2, 3… per server.
    pub(crate) version: i32,
    pub(crate) kind: String,
    /// Whether this version serves calls.
    pub(crate) active: bool,
    pub(crate) enabled: bool,
    pub(crate) created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) size: Option<u64>,
    /// Hosts a WASM guest may reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) egress: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) transport: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) env: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) limits: Option<LimitsBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    /// Upstream header names; values are never shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) headers: Option<Vec<String>>,
}

impl VersionBody {
    pub(crate) fn new(v: ServerVersion, active: Option<i32>) -> Self {
        let mut body = Self {
            id: v.id.as_uuid(),
            version: v.number,
            kind: v.spec.kind().as_str().to_owned(),
            active: active == Some(v.number),
            enabled: v.enabled,
            created_at: v.created_at,
            sha256: None,
            size: None,
            egress: None,
            image: None,
            transport: None,
            command: None,
            args: None,
            env: None,
            port: None,
            path: None,
            limits: None,
            url: None,
            headers: None,
        };
        match v.spec {
            VersionSpec::Wasm(w) => {
                body.sha256 = Some(w.sha256);
                body.size = Some(w.size);
                body.egress = Some(w.egress);
            }
            VersionSpec::Container(c) => {
                body.image = Some(c.image);
                body.transport = Some(c.transport.as_str().to_owned());
                body.command = c.command;
                body.args = Some(c.args);
                body.env = Some(c.env);
                body.port = c.port;
                body.path = c.path;
                body.limits = Some(c.limits.into());
                // A container's egress is all or nothing: `["*"]` when granted.
                if c.egress {
                    body.egress = Some(vec!["*".to_owned()]);
                }
            }
            VersionSpec::Remote(r) => {
                body.url = Some(r.url);
                body.headers = Some(r.headers.into_keys().collect());
            }
        }
        body
    }
}

/// Body of `PATCH .../versions/{version}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchVersion {
    /// `false` is the kill switch: the version stops serving on every node within a second.
    pub(crate) enabled: Option<bool>,
}

/// Query of `POST .../versions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PublishQuery {
    /// Make the new version active (default true).
    pub(crate) activate: Option<bool>,
    /// `wasm` only: comma-separated hosts the guest may reach over `wasi:http`
    /// (`api.example.com`, `*.example.com`, IP literals). Default: none. A host is reached only
    /// at public addresses, unless the operator lets guests reach a private network
    /// (`BERTH_WASM_EGRESS_PRIVATE_NETWORKS`).
    pub(crate) egress: Option<String>,
}

/// Body of `PUT .../servers/{server}/config`: replaces the whole configuration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutConfig {
    /// Plain values, readable by the server through `berth:mcp/config.get`.
    #[serde(default)]
    pub(crate) config: BTreeMap<String, String>,
    /// Secrets, readable through `berth:mcp/config.secret`; never shown again.
    #[serde(default)]
    pub(crate) secrets: BTreeMap<String, String>,
}

/// A server's configuration as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConfigBody {
    pub(crate) config: BTreeMap<String, String>,
    /// Secret names; values are never shown.
    pub(crate) secrets: Vec<String>,
}

/// Body of `POST /tenants/{tenant}/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKey {
    pub(crate) name: String,
    /// Any of `mcp`, `admin:read`, `publish`, `admin`. Default `["mcp"]`.
    pub(crate) scopes: Option<Vec<String>>,
    /// Limit the key to these server slugs.
    pub(crate) servers: Option<Vec<String>>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
}

/// An API key's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyBody {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    /// Public part of the key, to tell keys apart.
    pub(crate) prefix: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) servers: Option<Vec<String>>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
    pub(crate) last_used_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyBody {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.as_uuid(),
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            servers: k.servers.map(|v| v.iter().map(ToString::to_string).collect()),
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
            created_at: k.created_at,
        }
    }
}

/// A newly created key: `key` is the secret, shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedApiKey {
    pub(crate) key: String,
    #[serde(flatten)]
    pub(crate) meta: ApiKeyBody,
}
