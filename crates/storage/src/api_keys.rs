//! API keys: hashed secrets looked up by a public prefix.

use berth_auth::StoredKey;
use berth_core::{ApiKey, ApiKeyId, Scope, ServerId, Slug, TenantId, TenantScope};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result};

/// A key to store. The secret itself never reaches this crate, only its hash.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    /// Display name.
    pub name: &'a str,
    /// Public lookup part.
    pub prefix: &'a str,
    /// SHA-256 of the whole key.
    pub secret_hash: &'a [u8],
    /// Granted scopes.
    pub scopes: &'a [Scope],
    /// Servers the key is limited to, if any.
    pub server_ids: Option<&'a [ServerId]>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

struct Row {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    servers: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<Row> for ApiKey {
    fn from(r: Row) -> Self {
        ApiKey {
            id: ApiKeyId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            name: r.name,
            prefix: r.prefix,
            // Scopes were validated on the way in; an unknown one (from a newer release)
            // is dropped rather than granted.
            scopes: r.scopes.iter().filter_map(|s| Scope::parse(s).ok()).collect(),
            servers: r.servers.map(|v| v.into_iter().map(Slug::from_trusted_storage).collect()),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            created_at: r.created_at,
        }
    }
}

fn scope_names(scopes: &[Scope]) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_owned()).collect()
}

/// Stores a new key.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn insert(conn: &mut PgConnection, scope: &TenantScope, new: &NewApiKey<'_>) -> Result<ApiKey> {
    let id = ApiKeyId::new();
    let server_ids: Option<Vec<Uuid>> = new.server_ids.map(|ids| ids.iter().map(ServerId::as_uuid).collect());
    sqlx::query!(
        "INSERT INTO api_keys (tenant_id, id, name, prefix, secret_hash, scopes, server_ids, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        scope.tenant_id().as_uuid(),
        id.as_uuid(),
        new.name,
        new.prefix,
        new.secret_hash,
        &scope_names(new.scopes),
        server_ids.as_deref(),
        new.expires_at
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| Error::on_unique(e, || "key prefix collision; try again".to_owned()))?;
    get(conn, scope, id).await
}

/// Reads one key's metadata.
pub async fn get(conn: &mut PgConnection, scope: &TenantScope, id: ApiKeyId) -> Result<ApiKey> {
    sqlx::query_as!(
        Row,
        r#"SELECT k.id, k.tenant_id, k.name, k.prefix, k.scopes,
                  CASE WHEN k.server_ids IS NULL THEN NULL ELSE ARRAY(
                      SELECT s.slug FROM servers s
                      WHERE s.tenant_id = k.tenant_id AND s.id = ANY(k.server_ids) ORDER BY s.slug)
                  END AS "servers?: Vec<String>",
                  k.expires_at, k.revoked_at, k.last_used_at, k.created_at
           FROM api_keys k WHERE k.tenant_id = $1 AND k.id = $2"#,
        scope.tenant_id().as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(conn)
    .await?
    .map(ApiKey::from)
    .ok_or(Error::NotFound("api key"))
}

/// Lists keys oldest first, after `after` when given.
pub async fn list(
    conn: &mut PgConnection,
    scope: &TenantScope,
    after: Option<ApiKeyId>,
    limit: i64,
) -> Result<Vec<ApiKey>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT k.id, k.tenant_id, k.name, k.prefix, k.scopes,
                  CASE WHEN k.server_ids IS NULL THEN NULL ELSE ARRAY(
                      SELECT s.slug FROM servers s
                      WHERE s.tenant_id = k.tenant_id AND s.id = ANY(k.server_ids) ORDER BY s.slug)
                  END AS "servers?: Vec<String>",
                  k.expires_at, k.revoked_at, k.last_used_at, k.created_at
           FROM api_keys k
           WHERE k.tenant_id = $1 AND ($2::uuid IS NULL OR k.id > $2)
           ORDER BY k.id LIMIT $3"#,
        scope.tenant_id().as_uuid(),
        after.map(|a| a.as_uuid()),
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

/// Revokes a key (idempotent: revoking twice keeps the first time).
pub async fn revoke(conn: &mut PgConnection, scope: &TenantScope, id: ApiKeyId) -> Result<ApiKey> {
    let done = sqlx::query!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE tenant_id = $1 AND id = $2",
        scope.tenant_id().as_uuid(),
        id.as_uuid()
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("api key"));
    }
    get(conn, scope, id).await
}

/// Finds a key by its public prefix, across tenants.
///
/// This is how a presented credential is resolved to a tenant, so it cannot take a
/// `TenantScope`; the caller must compare `secret_hash` before trusting anything returned.
pub async fn find_by_prefix_for_verification(conn: &mut PgConnection, prefix: &str) -> Result<Option<StoredKey>> {
    let row = sqlx::query!(
        r#"SELECT k.id, k.tenant_id, k.name, k.prefix, k.scopes, k.server_ids, k.secret_hash,
                  CASE WHEN k.server_ids IS NULL THEN NULL ELSE ARRAY(
                      SELECT s.slug FROM servers s
                      WHERE s.tenant_id = k.tenant_id AND s.id = ANY(k.server_ids) ORDER BY s.slug)
                  END AS "servers?: Vec<String>",
                  k.expires_at, k.revoked_at, k.last_used_at, k.created_at,
                  t.slug AS tenant_slug, t.enabled AS tenant_enabled
           FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
           WHERE k.prefix = $1"#,
        prefix
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| StoredKey {
        server_ids: r.server_ids.map(|ids| ids.into_iter().map(ServerId::from_uuid).collect()),
        secret_hash: r.secret_hash,
        tenant_slug: Slug::from_trusted_storage(r.tenant_slug),
        tenant_enabled: r.tenant_enabled,
        key: ApiKey::from(Row {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            prefix: r.prefix,
            scopes: r.scopes,
            servers: r.servers,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            created_at: r.created_at,
        }),
    }))
}

/// Records a successful use, at most once a minute per key so reads stay cheap.
pub async fn touch(conn: &mut PgConnection, tenant_id: TenantId, id: ApiKeyId) -> Result<()> {
    sqlx::query!(
        "UPDATE api_keys SET last_used_at = now()
         WHERE tenant_id = $1 AND id = $2
           AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        tenant_id.as_uuid(),
        id.as_uuid()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Resolves server slugs to ids within the tenant; the inner error lists unknown slugs.
pub async fn resolve_servers(
    conn: &mut PgConnection,
    scope: &TenantScope,
    slugs: &[Slug],
) -> Result<std::result::Result<Vec<ServerId>, Vec<Slug>>> {
    let names: Vec<String> = slugs.iter().map(|s| s.as_str().to_owned()).collect();
    let rows = sqlx::query!(
        "SELECT id, slug FROM servers WHERE tenant_id = $1 AND slug = ANY($2)",
        scope.tenant_id().as_uuid(),
        &names
    )
    .fetch_all(conn)
    .await?;
    let missing: Vec<Slug> = slugs.iter().filter(|s| !rows.iter().any(|r| r.slug == s.as_str())).cloned().collect();
    if !missing.is_empty() {
        return Ok(Err(missing));
    }
    Ok(Ok(rows.into_iter().map(|r| ServerId::from_uuid(r.id)).collect()))
}
