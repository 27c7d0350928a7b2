//! Hosted servers of a tenant.

use berth_core::{Server, ServerId, ServerKind, Slug, TenantId, TenantScope};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result};

/// A server to create.
#[derive(Debug, Clone)]
pub struct NewServer<'a> {
    /// URL name.
    pub slug: &'a Slug,
    /// Display name.
    pub name: &'a str,
    /// Free text.
    pub description: &'a str,
    /// Hosting kind (fixed for the server's life).
    pub kind: ServerKind,
    /// Anonymous calls allowed.
    pub public: bool,
}

/// Fields to change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ServerPatch<'a> {
    /// Display name.
    pub name: Option<&'a str>,
    /// Free text.
    pub description: Option<&'a str>,
    /// Kill switch.
    pub enabled: Option<bool>,
    /// Anonymous calls allowed.
    pub public: Option<bool>,
    /// Tools refused by the kill switch.
    pub disabled_tools: Option<&'a [String]>,
}

struct Row {
    tenant_id: Uuid,
    id: Uuid,
    slug: String,
    name: String,
    description: String,
    kind: String,
    enabled: bool,
    public: bool,
    disabled_tools: Vec<String>,
    active_version: Option<i32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for Server {
    type Error = Error;
    fn try_from(r: Row) -> Result<Self> {
        Ok(Server {
            tenant_id: TenantId::from_uuid(r.tenant_id),
            id: ServerId::from_uuid(r.id),
            slug: Slug::from_trusted_storage(r.slug),
            name: r.name,
            description: r.description,
            kind: ServerKind::parse(&r.kind).map_err(|e| Error::Embedded(e.to_string()))?,
            enabled: r.enabled,
            public: r.public,
            disabled_tools: r.disabled_tools,
            active_version: r.active_version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn conflict(slug: &Slug) -> impl FnOnce() -> String + '_ {
    move || format!("server {slug} already exists in this tenant")
}

/// Creates a server without versions.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id(), server = %new.slug))]
pub async fn insert(conn: &mut PgConnection, scope: &TenantScope, new: &NewServer<'_>) -> Result<Server> {
    let id = ServerId::new().as_uuid();
    sqlx::query!(
        "INSERT INTO servers (tenant_id, id, slug, name, description, kind, public)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        scope.tenant_id().as_uuid(),
        id,
        new.slug.as_str(),
        new.name,
        new.description,
        new.kind.as_str(),
        new.public
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| Error::on_unique(e, conflict(new.slug)))?;
    get(conn, scope, new.slug).await
}

/// Lists servers in slug order.
pub async fn list(
    conn: &mut PgConnection,
    scope: &TenantScope,
    after: Option<&Slug>,
    limit: i64,
) -> Result<Vec<Server>> {
    sqlx::query_as!(
        Row,
        r#"SELECT s.tenant_id, s.id, s.slug, s.name, s.description, s.kind, s.enabled, s.public,
                  s.disabled_tools, v.number AS "active_version?", s.created_at, s.updated_at
           FROM servers s
           LEFT JOIN server_versions v ON v.tenant_id = s.tenant_id AND v.id = s.active_version_id
           WHERE s.tenant_id = $1 AND ($2::text IS NULL OR s.slug > $2)
           ORDER BY s.slug LIMIT $3"#,
        scope.tenant_id().as_uuid(),
        after.map(Slug::as_str),
        limit
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(Server::try_from)
    .collect()
}

/// Reads one server by slug.
pub async fn get(conn: &mut PgConnection, scope: &TenantScope, slug: &Slug) -> Result<Server> {
    sqlx::query_as!(
        Row,
        r#"SELECT s.tenant_id, s.id, s.slug, s.name, s.description, s.kind, s.enabled, s.public,
                  s.disabled_tools, v.number AS "active_version?", s.created_at, s.updated_at
           FROM servers s
           LEFT JOIN server_versions v ON v.tenant_id = s.tenant_id AND v.id = s.active_version_id
           WHERE s.tenant_id = $1 AND s.slug = $2"#,
        scope.tenant_id().as_uuid(),
        slug.as_str()
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("server"))?
    .try_into()
}

/// Changes a server's mutable fields.
pub async fn update(
    conn: &mut PgConnection,
    scope: &TenantScope,
    slug: &Slug,
    patch: &ServerPatch<'_>,
) -> Result<Server> {
    let done = sqlx::query!(
        "UPDATE servers SET
            name = COALESCE($3, name),
            description = COALESCE($4, description),
            enabled = COALESCE($5, enabled),
            public = COALESCE($6, public),
            disabled_tools = COALESCE($7, disabled_tools),
            updated_at = now()
         WHERE tenant_id = $1 AND slug = $2",
        scope.tenant_id().as_uuid(),
        slug.as_str(),
        patch.name,
        patch.description,
        patch.enabled,
        patch.public,
        patch.disabled_tools
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("server"));
    }
    get(conn, scope, slug).await
}

/// Deletes a server and its versions.
pub async fn delete(conn: &mut PgConnection, scope: &TenantScope, slug: &Slug) -> Result<()> {
    let done = sqlx::query!(
        "DELETE FROM servers WHERE tenant_id = $1 AND slug = $2",
        scope.tenant_id().as_uuid(),
        slug.as_str()
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("server"));
    }
    Ok(())
}
