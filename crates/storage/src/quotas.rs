//! Quotas of tenants (plans) and API keys, per-server audit capture settings, and the
//! [`Policy`] the data plane caches per tenant.

use std::collections::HashMap;

use berth_core::{ApiKeyId, ServerId, TenantId, TenantScope};
use berth_quotas::Limits;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result};

fn u32_of(value: Option<i32>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

fn u64_of(value: Option<i64>) -> Option<u64> {
    value.and_then(|v| u64::try_from(v).ok())
}

fn i32_of(value: Option<u32>) -> Option<i32> {
    value.map(|v| i32::try_from(v).unwrap_or(i32::MAX))
}

fn i64_of(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// The tenant's plan (unlimited when never set).
pub async fn tenant_limits(conn: &mut PgConnection, scope: &TenantScope) -> Result<Limits> {
    plan(conn, scope.tenant_id()).await
}

async fn plan(conn: &mut PgConnection, tenant: TenantId) -> Result<Limits> {
    let row = sqlx::query!(
        "SELECT requests_per_minute, tool_calls_per_month, max_sessions, wasm_cpu_ms_per_month, max_containers
         FROM tenant_quotas WHERE tenant_id = $1",
        tenant.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or_else(Limits::default, |r| Limits {
        requests_per_minute: u32_of(r.requests_per_minute),
        tool_calls_per_month: u64_of(r.tool_calls_per_month),
        max_sessions: u32_of(r.max_sessions),
        wasm_cpu_ms_per_month: u64_of(r.wasm_cpu_ms_per_month),
        max_containers: u32_of(r.max_containers),
    }))
}

/// Replaces the tenant's plan.
pub async fn set_tenant_limits(conn: &mut PgConnection, scope: &TenantScope, limits: &Limits) -> Result<()> {
    sqlx::query!(
        "INSERT INTO tenant_quotas (tenant_id, requests_per_minute, tool_calls_per_month, max_sessions,
                                    wasm_cpu_ms_per_month, max_containers, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, now())
         ON CONFLICT (tenant_id) DO UPDATE SET
             requests_per_minute = EXCLUDED.requests_per_minute,
             tool_calls_per_month = EXCLUDED.tool_calls_per_month,
             max_sessions = EXCLUDED.max_sessions,
             wasm_cpu_ms_per_month = EXCLUDED.wasm_cpu_ms_per_month,
             max_containers = EXCLUDED.max_containers,
             updated_at = now()",
        scope.tenant_id().as_uuid(),
        i32_of(limits.requests_per_minute),
        i64_of(limits.tool_calls_per_month),
        i32_of(limits.max_sessions),
        i64_of(limits.wasm_cpu_ms_per_month),
        i32_of(limits.max_containers)
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A key's quotas (unlimited when never set); `NotFound` for a key of another tenant.
pub async fn key_limits(conn: &mut PgConnection, scope: &TenantScope, key: ApiKeyId) -> Result<Limits> {
    let row = sqlx::query!(
        r#"SELECT q.requests_per_minute AS "requests_per_minute?", q.tool_calls_per_month AS "tool_calls_per_month?",
                  q.max_sessions AS "max_sessions?", q.wasm_cpu_ms_per_month AS "wasm_cpu_ms_per_month?"
           FROM api_keys k LEFT JOIN api_key_quotas q ON q.tenant_id = k.tenant_id AND q.key_id = k.id
           WHERE k.tenant_id = $1 AND k.id = $2"#,
        scope.tenant_id().as_uuid(),
        key.as_uuid()
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("api key"))?;
    Ok(Limits {
        requests_per_minute: u32_of(row.requests_per_minute),
        tool_calls_per_month: u64_of(row.tool_calls_per_month),
        max_sessions: u32_of(row.max_sessions),
        wasm_cpu_ms_per_month: u64_of(row.wasm_cpu_ms_per_month),
        max_containers: None,
    })
}

/// Replaces a key's quotas (`max_containers` does not apply to keys and is ignored).
pub async fn set_key_limits(
    conn: &mut PgConnection,
    scope: &TenantScope,
    key: ApiKeyId,
    limits: &Limits,
) -> Result<()> {
    let done = sqlx::query!(
        "INSERT INTO api_key_quotas (tenant_id, key_id, requests_per_minute, tool_calls_per_month, max_sessions,
                                     wasm_cpu_ms_per_month, updated_at)
         SELECT $1, $2, $3, $4, $5, $6, now() WHERE EXISTS (SELECT 1 FROM api_keys WHERE tenant_id = $1 AND id = $2)
         ON CONFLICT (tenant_id, key_id) DO UPDATE SET
             requests_per_minute = EXCLUDED.requests_per_minute,
             tool_calls_per_month = EXCLUDED.tool_calls_per_month,
             max_sessions = EXCLUDED.max_sessions,
             wasm_cpu_ms_per_month = EXCLUDED.wasm_cpu_ms_per_month,
             updated_at = now()",
        scope.tenant_id().as_uuid(),
        key.as_uuid(),
        i32_of(limits.requests_per_minute),
        i64_of(limits.tool_calls_per_month),
        i32_of(limits.max_sessions),
        i64_of(limits.wasm_cpu_ms_per_month)
    )
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("api key"));
    }
    Ok(())
}

/// A server's audit payload capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// Whether call parameters are stored (redacted) in audit events.
    pub capture_payloads: bool,
    /// Key names redacted besides the defaults.
    pub redact: Vec<String>,
}

/// A server's capture settings.
pub async fn capture(conn: &mut PgConnection, scope: &TenantScope, server: ServerId) -> Result<Capture> {
    let row = sqlx::query!(
        "SELECT capture_payloads, redact FROM server_audit_settings WHERE tenant_id = $1 AND server_id = $2",
        scope.tenant_id().as_uuid(),
        server.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or_else(Capture::default, |r| Capture { capture_payloads: r.capture_payloads, redact: r.redact }))
}

/// Replaces a server's capture settings.
pub async fn set_capture(
    conn: &mut PgConnection,
    scope: &TenantScope,
    server: ServerId,
    capture: &Capture,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO server_audit_settings (tenant_id, server_id, capture_payloads, redact, updated_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (tenant_id, server_id) DO UPDATE SET
             capture_payloads = EXCLUDED.capture_payloads, redact = EXCLUDED.redact, updated_at = now()",
        scope.tenant_id().as_uuid(),
        server.as_uuid(),
        capture.capture_payloads,
        &capture.redact
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Everything the data plane enforces for one tenant, read in one go and cached.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// The plan.
    pub tenant: Limits,
    /// Keys with quotas of their own.
    pub keys: HashMap<ApiKeyId, Limits>,
    /// Servers that capture payloads, with their extra redactions.
    pub capture: HashMap<ServerId, Vec<String>>,
}

/// Reads `tenant`'s policy. Runs before the caller is authorized (the data plane caches it
/// by tenant id from a route it already resolved); only enforcement uses it.
pub async fn policy_for_enforcement(conn: &mut PgConnection, tenant: TenantId) -> Result<Policy> {
    let plan = plan(conn, tenant).await?;
    let keys = sqlx::query!(
        "SELECT key_id, requests_per_minute, tool_calls_per_month, max_sessions, wasm_cpu_ms_per_month
         FROM api_key_quotas WHERE tenant_id = $1",
        tenant.as_uuid()
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| {
        let limits = Limits {
            requests_per_minute: u32_of(r.requests_per_minute),
            tool_calls_per_month: u64_of(r.tool_calls_per_month),
            max_sessions: u32_of(r.max_sessions),
            wasm_cpu_ms_per_month: u64_of(r.wasm_cpu_ms_per_month),
            max_containers: None,
        };
        (ApiKeyId::from_uuid(r.key_id), limits)
    })
    .collect();
    let capture = sqlx::query!(
        "SELECT server_id, redact FROM server_audit_settings WHERE tenant_id = $1 AND capture_payloads",
        tenant.as_uuid()
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (ServerId::from_uuid(r.server_id), r.redact))
    .collect();
    Ok(Policy { tenant: plan, keys, capture })
}

/// The nil UUID stands for "no API key" in usage rows.
pub const NO_KEY: Uuid = Uuid::nil();
