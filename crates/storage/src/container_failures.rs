//! Failed container starts and the container's last output, written by the data plane and read
//! through the admin API (`GET .../versions/{number}/logs`).

use berth_core::{TenantScope, VersionId};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::error::Result;

/// Failures kept per version; older ones are deleted when a new one is recorded.
pub const KEPT_PER_VERSION: i64 = 20;

/// One failed start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFailure {
    /// When it failed.
    pub at: DateTime<Utc>,
    /// The container's short id (removed since).
    pub container: String,
    /// The image.
    pub image: String,
    /// Why.
    pub reason: String,
    /// The container's last output.
    pub logs: String,
}

/// Records a failure of `version` and drops the oldest beyond [`KEPT_PER_VERSION`].
pub async fn record(
    conn: &mut PgConnection,
    scope: &TenantScope,
    version: VersionId,
    failure: &ContainerFailure,
) -> Result<()> {
    let tenant = scope.tenant_id().as_uuid();
    sqlx::query!(
        "INSERT INTO container_start_failures (tenant_id, version_id, at, container, image, reason, logs)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        tenant,
        version.as_uuid(),
        failure.at,
        failure.container,
        failure.image,
        failure.reason,
        failure.logs
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "DELETE FROM container_start_failures WHERE tenant_id = $1 AND version_id = $2 AND id NOT IN (
             SELECT id FROM container_start_failures WHERE tenant_id = $1 AND version_id = $2
             ORDER BY at DESC, id DESC LIMIT $3)",
        tenant,
        version.as_uuid(),
        KEPT_PER_VERSION
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The failures of `version`, newest first.
pub async fn list(conn: &mut PgConnection, scope: &TenantScope, version: VersionId) -> Result<Vec<ContainerFailure>> {
    let rows = sqlx::query_as!(
        ContainerFailure,
        "SELECT at, container, image, reason, logs FROM container_start_failures
         WHERE tenant_id = $1 AND version_id = $2 ORDER BY at DESC, id DESC",
        scope.tenant_id().as_uuid(),
        version.as_uuid()
    )
    .fetch_all(conn)
    .await?;
    Ok(rows)
}
