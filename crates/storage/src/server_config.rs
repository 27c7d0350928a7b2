//! Per-server configuration and secrets, read by WASM guests through `berth:mcp/config`.

use std::collections::BTreeMap;

use berth_core::sealed::Reseal;
use berth_core::{AdminScope, ServerId, TenantId, TenantScope};
use sqlx::PgConnection;

use crate::Resealed;
use crate::error::Result;

/// A server's configuration: plain values and secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerConfig {
    /// Plain values (shown through the admin API).
    pub values: BTreeMap<String, String>,
    /// Secrets (never shown again; names only).
    pub secrets: BTreeMap<String, String>,
}

/// Reads a server's configuration.
pub async fn get(conn: &mut PgConnection, scope: &TenantScope, server: ServerId) -> Result<ServerConfig> {
    let rows = sqlx::query!(
        "SELECT key, value, secret FROM server_config WHERE tenant_id = $1 AND server_id = $2 ORDER BY key",
        scope.tenant_id().as_uuid(),
        server.as_uuid()
    )
    .fetch_all(conn)
    .await?;
    let mut config = ServerConfig::default();
    for row in rows {
        if row.secret {
            config.secrets.insert(row.key, row.value);
        } else {
            config.values.insert(row.key, row.value);
        }
    }
    Ok(config)
}

/// Replaces a server's whole configuration; run it in a transaction.
pub async fn replace(
    conn: &mut PgConnection,
    scope: &TenantScope,
    server: ServerId,
    config: &ServerConfig,
) -> Result<()> {
    let tenant = scope.tenant_id().as_uuid();
    sqlx::query!("DELETE FROM server_config WHERE tenant_id = $1 AND server_id = $2", tenant, server.as_uuid())
        .execute(&mut *conn)
        .await?;
    let entries =
        config.values.iter().map(|(k, v)| (k, v, false)).chain(config.secrets.iter().map(|(k, v)| (k, v, true)));
    for (key, value, secret) in entries {
        sqlx::query!(
            "INSERT INTO server_config (tenant_id, server_id, key, value, secret) VALUES ($1, $2, $3, $4, $5)",
            tenant,
            server.as_uuid(),
            key,
            value,
            secret
        )
        .execute(&mut *conn)
        .await?;
    }
    // A config change is a server change: caches keyed on `updated_at` pick it up.
    sqlx::query!("UPDATE servers SET updated_at = now() WHERE tenant_id = $1 AND id = $2", tenant, server.as_uuid())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A server's secret as stored.
#[derive(Debug)]
pub struct StoredSecret {
    /// Its tenant.
    pub tenant: TenantId,
    /// Its server.
    pub server: ServerId,
    /// Its name (the config key).
    pub name: String,
    /// The value as stored: sealed, or plain when written without a key.
    pub value: String,
}

/// Goes over every tenant's secrets and stores what `reseal` says in place of each value it
/// replaces (plain ones, and those sealed under a previous key); a row that changed meanwhile is
/// left to its writer. Platform maintenance at start-up, hence the admin scope.
pub async fn reseal_secrets(
    conn: &mut PgConnection,
    _admin: AdminScope,
    reseal: impl Fn(&StoredSecret) -> Reseal<String>,
) -> Result<Resealed> {
    let rows = sqlx::query!("SELECT tenant_id, server_id, key, value FROM server_config WHERE secret")
        .fetch_all(&mut *conn)
        .await?;
    let mut done = Resealed::default();
    for row in rows {
        let stored = StoredSecret {
            tenant: TenantId::from_uuid(row.tenant_id),
            server: ServerId::from_uuid(row.server_id),
            name: row.key,
            value: row.value,
        };
        let Some(sealed) = done.replacement(reseal(&stored)) else { continue };
        let updated = sqlx::query!(
            "UPDATE server_config SET value = $5 \
             WHERE tenant_id = $1 AND server_id = $2 AND key = $3 AND value = $4 AND secret",
            stored.tenant.as_uuid(),
            stored.server.as_uuid(),
            stored.name,
            stored.value,
            sealed
        )
        .execute(&mut *conn)
        .await?;
        done.sealed += updated.rows_affected();
    }
    Ok(done)
}
