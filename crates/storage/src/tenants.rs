//! Tenants: the root of all tenant-owned data.

use berth_core::{AdminScope, Slug, Tenant, TenantId, TenantScope};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result};

struct Row {
    id: Uuid,
    slug: String,
    name: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Tenant {
    fn from(r: Row) -> Self {
        Tenant {
            id: TenantId::from_uuid(r.id),
            slug: Slug::from_trusted_storage(r.slug),
            name: r.name,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Creates a tenant. A taken slug is a `Conflict`.
#[tracing::instrument(skip_all, fields(tenant = %slug))]
pub async fn insert(conn: &mut PgConnection, _admin: AdminScope, slug: &Slug, name: &str) -> Result<Tenant> {
    sqlx::query_as!(
        Row,
        "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)
         RETURNING id, slug, name, enabled, created_at, updated_at",
        TenantId::new().as_uuid(),
        slug.as_str(),
        name
    )
    .fetch_one(conn)
    .await
    .map(Tenant::from)
    .map_err(|e| Error::on_unique(e, || format!("tenant {slug} already exists")))
}

/// Lists tenants in slug order, after `after` when given.
pub async fn list(
    conn: &mut PgConnection,
    _admin: AdminScope,
    after: Option<&Slug>,
    limit: i64,
) -> Result<Vec<Tenant>> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT id, slug, name, enabled, created_at, updated_at FROM tenants
         WHERE $1::text IS NULL OR slug > $1
         ORDER BY slug LIMIT $2",
        after.map(Slug::as_str),
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Tenant::from).collect())
}

/// Looks a tenant up by slug (platform admin only).
pub async fn find_by_slug(conn: &mut PgConnection, _admin: AdminScope, slug: &Slug) -> Result<Tenant> {
    find_by_slug_for_routing(conn, slug).await
}

/// Looks a tenant up by slug while routing a request whose credentials are checked next.
///
/// The data plane needs the tenant before it can verify a token issued by that tenant.
/// Nothing from the returned record may be served before those credentials are verified.
pub async fn find_by_slug_for_routing(conn: &mut PgConnection, slug: &Slug) -> Result<Tenant> {
    sqlx::query_as!(
        Row,
        "SELECT id, slug, name, enabled, created_at, updated_at FROM tenants WHERE slug = $1",
        slug.as_str()
    )
    .fetch_optional(conn)
    .await?
    .map(Tenant::from)
    .ok_or(Error::NotFound("tenant"))
}

/// Reads the scoped tenant.
pub async fn get(conn: &mut PgConnection, scope: &TenantScope) -> Result<Tenant> {
    sqlx::query_as!(
        Row,
        "SELECT id, slug, name, enabled, created_at, updated_at FROM tenants WHERE id = $1",
        scope.tenant_id().as_uuid()
    )
    .fetch_optional(conn)
    .await?
    .map(Tenant::from)
    .ok_or(Error::NotFound("tenant"))
}

/// Changes the name and/or enabled flag of the scoped tenant.
pub async fn update(
    conn: &mut PgConnection,
    scope: &TenantScope,
    name: Option<&str>,
    enabled: Option<bool>,
) -> Result<Tenant> {
    sqlx::query_as!(
        Row,
        "UPDATE tenants SET name = COALESCE($2, name), enabled = COALESCE($3, enabled), updated_at = now()
         WHERE id = $1
         RETURNING id, slug, name, enabled, created_at, updated_at",
        scope.tenant_id().as_uuid(),
        name,
        enabled
    )
    .fetch_optional(conn)
    .await?
    .map(Tenant::from)
    .ok_or(Error::NotFound("tenant"))
}

/// Deletes the scoped tenant and, by cascade, everything it owns.
pub async fn delete(conn: &mut PgConnection, scope: &TenantScope) -> Result<()> {
    let done =
        sqlx::query!("DELETE FROM tenants WHERE id = $1", scope.tenant_id().as_uuid()).execute(&mut *conn).await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("tenant"));
    }
    Ok(())
}
