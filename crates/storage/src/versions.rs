//! Immutable server versions and the content-addressed component store.

use std::collections::BTreeMap;

use berth_core::{
    ContainerLimits, ContainerSpec, RemoteSpec, ServerId, ServerKind, ServerVersion, TenantScope, Transport, VersionId,
    VersionSpec, WasmSpec,
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::error::{Error, Result};

struct Row {
    id: Uuid,
    server_id: Uuid,
    number: i32,
    kind: String,
    wasm_sha256: Option<String>,
    wasm_size: Option<i64>,
    image: Option<String>,
    transport: Option<String>,
    command: Option<Vec<String>>,
    args: Vec<String>,
    env: Json<BTreeMap<String, String>>,
    port: Option<i32>,
    path: Option<String>,
    limits: Option<Json<ContainerLimits>>,
    url: Option<String>,
    headers: Json<BTreeMap<String, String>>,
    egress: Vec<String>,
    enabled: bool,
    created_at: DateTime<Utc>,
}

fn corrupt(what: &str) -> Error {
    Error::Embedded(format!("stored version is inconsistent: {what}"))
}

impl TryFrom<Row> for ServerVersion {
    type Error = Error;
    fn try_from(r: Row) -> Result<Self> {
        let kind = ServerKind::parse(&r.kind).map_err(|_| corrupt("kind"))?;
        let spec = match kind {
            ServerKind::Wasm => VersionSpec::Wasm(WasmSpec {
                sha256: r.wasm_sha256.ok_or_else(|| corrupt("wasm_sha256"))?,
                size: r.wasm_size.and_then(|s| u64::try_from(s).ok()).unwrap_or_default(),
                egress: r.egress,
            }),
            ServerKind::Container => VersionSpec::Container(ContainerSpec {
                image: r.image.ok_or_else(|| corrupt("image"))?,
                transport: match r.transport.as_deref() {
                    Some("stdio") => Transport::Stdio,
                    Some("http") => Transport::Http,
                    _ => return Err(corrupt("transport")),
                },
                command: r.command,
                args: r.args,
                env: r.env.0,
                port: r.port.and_then(|p| u16::try_from(p).ok()),
                path: r.path,
                limits: r.limits.map(|l| l.0).unwrap_or_default(),
                // A container's egress is all or nothing, stored as the allowlist `["*"]`.
                egress: r.egress.iter().any(|h| h == "*"),
            }),
            ServerKind::Remote => {
                VersionSpec::Remote(RemoteSpec { url: r.url.ok_or_else(|| corrupt("url"))?, headers: r.headers.0 })
            }
        };
        Ok(ServerVersion {
            id: VersionId::from_uuid(r.id),
            server_id: ServerId::from_uuid(r.server_id),
            number: r.number,
            spec,
            enabled: r.enabled,
            created_at: r.created_at,
        })
    }
}

/// Stores component bytes under their SHA-256 (a no-op when the tenant already has them).
pub async fn put_component(conn: &mut PgConnection, scope: &TenantScope, sha256: &str, bytes: &[u8]) -> Result<()> {
    let size = i64::try_from(bytes.len()).map_err(|_| Error::Conflict("component too large".into()))?;
    sqlx::query!(
        "INSERT INTO wasm_components (tenant_id, sha256, size, bytes) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, sha256) DO NOTHING",
        scope.tenant_id().as_uuid(),
        sha256,
        size,
        bytes
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads component bytes by SHA-256.
pub async fn get_component(conn: &mut PgConnection, scope: &TenantScope, sha256: &str) -> Result<Vec<u8>> {
    sqlx::query_scalar!(
        "SELECT bytes FROM wasm_components WHERE tenant_id = $1 AND sha256 = $2",
        scope.tenant_id().as_uuid(),
        sha256
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("component"))
}

/// Adds the next version of `server_id`, activating it when `activate` is set.
///
/// Run it in a transaction: the server row is locked to number versions without gaps or races.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id(), server_id = %server_id))]
pub async fn insert(
    conn: &mut PgConnection,
    scope: &TenantScope,
    server_id: ServerId,
    spec: &VersionSpec,
    activate: bool,
) -> Result<ServerVersion> {
    let tenant = scope.tenant_id().as_uuid();
    let locked = sqlx::query_scalar!(
        "SELECT id FROM servers WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        tenant,
        server_id.as_uuid()
    )
    .fetch_optional(&mut *conn)
    .await?;
    if locked.is_none() {
        return Err(Error::NotFound("server"));
    }
    let id = VersionId::new().as_uuid();
    let (
        mut sha,
        mut image,
        mut transport,
        mut command,
        mut args,
        mut env,
        mut port,
        mut path,
        mut limits,
        mut url,
        mut headers,
    ) = (None, None, None, None, Vec::new(), BTreeMap::new(), None, None, None, None, BTreeMap::new());
    let mut egress: Vec<String> = Vec::new();
    match spec {
        VersionSpec::Wasm(w) => {
            sha = Some(w.sha256.clone());
            egress = w.egress.clone();
        }
        VersionSpec::Container(c) => {
            image = Some(c.image.clone());
            transport = Some(c.transport.as_str());
            command = c.command.clone();
            args = c.args.clone();
            env = c.env.clone();
            port = c.port.map(i32::from);
            path = c.path.clone();
            limits = Some(Json(c.limits.clone()));
            if c.egress {
                egress = vec!["*".to_owned()];
            }
        }
        VersionSpec::Remote(r) => {
            url = Some(r.url.clone());
            headers = r.headers.clone();
        }
    }
    sqlx::query!(
        "INSERT INTO server_versions
            (tenant_id, id, server_id, number, kind, wasm_sha256, image, transport, command, args, env,
             port, path, limits, url, headers, egress)
         SELECT $1, $2, $3, COALESCE(MAX(number), 0) + 1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16
         FROM server_versions WHERE tenant_id = $1 AND server_id = $3",
        tenant,
        id,
        server_id.as_uuid(),
        spec.kind().as_str(),
        sha,
        image,
        transport,
        command.as_deref(),
        &args,
        Json(&env) as _,
        port,
        path,
        limits as _,
        url,
        Json(&headers) as _,
        &egress
    )
    .execute(&mut *conn)
    .await?;
    if activate {
        sqlx::query!(
            "UPDATE servers SET active_version_id = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2",
            tenant,
            server_id.as_uuid(),
            id
        )
        .execute(&mut *conn)
        .await?;
    }
    get_by_id(conn, scope, VersionId::from_uuid(id)).await
}

async fn get_by_id(conn: &mut PgConnection, scope: &TenantScope, id: VersionId) -> Result<ServerVersion> {
    sqlx::query_as!(
        Row,
        r#"SELECT v.id, v.server_id, v.number, v.kind, v.wasm_sha256, c.size AS "wasm_size?", v.image,
                  v.transport, v.command, v.args, v.env AS "env: Json<BTreeMap<String, String>>", v.port,
                  v.path, v.limits AS "limits: Json<ContainerLimits>", v.url,
                  v.headers AS "headers: Json<BTreeMap<String, String>>", v.egress, v.enabled, v.created_at
           FROM server_versions v
           LEFT JOIN wasm_components c ON c.tenant_id = v.tenant_id AND c.sha256 = v.wasm_sha256
           WHERE v.tenant_id = $1 AND v.id = $2"#,
        scope.tenant_id().as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("version"))?
    .try_into()
}

/// Lists a server's versions, newest first, before `before` when given.
pub async fn list(
    conn: &mut PgConnection,
    scope: &TenantScope,
    server_id: ServerId,
    before: Option<i32>,
    limit: i64,
) -> Result<Vec<ServerVersion>> {
    sqlx::query_as!(
        Row,
        r#"SELECT v.id, v.server_id, v.number, v.kind, v.wasm_sha256, c.size AS "wasm_size?", v.image,
                  v.transport, v.command, v.args, v.env AS "env: Json<BTreeMap<String, String>>", v.port,
                  v.path, v.limits AS "limits: Json<ContainerLimits>", v.url,
                  v.headers AS "headers: Json<BTreeMap<String, String>>", v.egress, v.enabled, v.created_at
           FROM server_versions v
           LEFT JOIN wasm_components c ON c.tenant_id = v.tenant_id AND c.sha256 = v.wasm_sha256
           WHERE v.tenant_id = $1 AND v.server_id = $2 AND ($3::int IS NULL OR v.number < $3)
           ORDER BY v.number DESC LIMIT $4"#,
        scope.tenant_id().as_uuid(),
        server_id.as_uuid(),
        before,
        limit
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(ServerVersion::try_from)
    .collect()
}

/// Reads one version by number.
pub async fn get(
    conn: &mut PgConnection,
    scope: &TenantScope,
    server_id: ServerId,
    number: i32,
) -> Result<ServerVersion> {
    sqlx::query_as!(
        Row,
        r#"SELECT v.id, v.server_id, v.number, v.kind, v.wasm_sha256, c.size AS "wasm_size?", v.image,
                  v.transport, v.command, v.args, v.env AS "env: Json<BTreeMap<String, String>>", v.port,
                  v.path, v.limits AS "limits: Json<ContainerLimits>", v.url,
                  v.headers AS "headers: Json<BTreeMap<String, String>>", v.egress, v.enabled, v.created_at
           FROM server_versions v
           LEFT JOIN wasm_components c ON c.tenant_id = v.tenant_id AND c.sha256 = v.wasm_sha256
           WHERE v.tenant_id = $1 AND v.server_id = $2 AND v.number = $3"#,
        scope.tenant_id().as_uuid(),
        server_id.as_uuid(),
        number
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("version"))?
    .try_into()
}

/// Makes version `number` the one serving calls (rollback is activating an older one).
pub async fn activate(
    conn: &mut PgConnection,
    scope: &TenantScope,
    server_id: ServerId,
    number: i32,
) -> Result<ServerVersion> {
    let version = get(conn, scope, server_id, number).await?;
    sqlx::query!(
        "UPDATE servers SET active_version_id = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2",
        scope.tenant_id().as_uuid(),
        server_id.as_uuid(),
        version.id.as_uuid()
    )
    .execute(conn)
    .await?;
    Ok(version)
}

/// Enables or disables version `number` (the kill switch; the only change a version allows).
pub async fn set_enabled(
    conn: &mut PgConnection,
    scope: &TenantScope,
    server_id: ServerId,
    number: i32,
    enabled: bool,
) -> Result<ServerVersion> {
    let done = sqlx::query!(
        "UPDATE server_versions SET enabled = $4 WHERE tenant_id = $1 AND server_id = $2 AND number = $3",
        scope.tenant_id().as_uuid(),
        server_id.as_uuid(),
        number,
        enabled
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("version"));
    }
    get(conn, scope, server_id, number).await
}
