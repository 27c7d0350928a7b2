//! `/tenants/{tenant}/quotas` (the plan, set by the platform administrator) and
//! `/tenants/{tenant}/api-keys/{id}/quotas` (per key, set by the tenant's admins).
//!
//! A change commits with a `NOTIFY`, so every data-plane node applies it within a second.

use actix_web::{HttpResponse, web};
use berth_core::{ApiKeyId, Error as Invalid, Scope};
use berth_quotas::Limits;
use berth_storage::notify::{self, Change};
use berth_storage::quotas;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::conn;
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::problem::ApiError;

/// A tenant's plan. Omitted or `null` fields are unlimited.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuotasBody {
    /// Requests per minute over all of the tenant's servers (a token bucket).
    #[serde(default)]
    pub(crate) requests_per_minute: Option<u32>,
    /// `tools/call` requests per calendar month (UTC).
    #[serde(default)]
    pub(crate) tool_calls_per_month: Option<u64>,
    /// Concurrent client sessions.
    #[serde(default)]
    pub(crate) max_sessions: Option<u32>,
    /// CPU milliseconds of WASM servers per calendar month (UTC).
    #[serde(default)]
    pub(crate) wasm_cpu_ms_per_month: Option<u64>,
    /// Running containers.
    #[serde(default)]
    pub(crate) max_containers: Option<u32>,
}

impl From<Limits> for QuotasBody {
    fn from(l: Limits) -> Self {
        Self {
            requests_per_minute: l.requests_per_minute,
            tool_calls_per_month: l.tool_calls_per_month,
            max_sessions: l.max_sessions,
            wasm_cpu_ms_per_month: l.wasm_cpu_ms_per_month,
            max_containers: l.max_containers,
        }
    }
}

/// An API key's own quotas, on top of the plan. Omitted or `null` fields are unlimited.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyQuotasBody {
    #[serde(default)]
    pub(crate) requests_per_minute: Option<u32>,
    #[serde(default)]
    pub(crate) tool_calls_per_month: Option<u64>,
    #[serde(default)]
    pub(crate) max_sessions: Option<u32>,
    #[serde(default)]
    pub(crate) wasm_cpu_ms_per_month: Option<u64>,
}

impl From<Limits> for KeyQuotasBody {
    fn from(l: Limits) -> Self {
        Self {
            requests_per_minute: l.requests_per_minute,
            tool_calls_per_month: l.tool_calls_per_month,
            max_sessions: l.max_sessions,
            wasm_cpu_ms_per_month: l.wasm_cpu_ms_per_month,
        }
    }
}

fn validated(limits: Limits) -> Result<Limits, ApiError> {
    limits.validate().map_err(|e| match e {
        berth_quotas::Error::Invalid { field, reason } => ApiError::Invalid(Invalid::invalid(field, reason)),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    Ok(limits)
}

fn key_id(raw: &str) -> Result<ApiKeyId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("api key"))
}

/// Reads the tenant's plan.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/quotas", tag = "quotas",
    responses((status = 200, body = QuotasBody), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    Ok(HttpResponse::Ok().json(QuotasBody::from(quotas::tenant_limits(&mut conn, &scope).await?)))
}

/// Replaces the tenant's plan (platform administrator only). Applies on every node within a
/// second.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/quotas", tag = "quotas", request_body = QuotasBody,
    responses((status = 200, body = QuotasBody), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn put(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<QuotasBody>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::Admin).await?;
    if !caller.is_platform_admin() {
        return Err(ApiError::Forbidden("only the platform administrator may change a tenant's plan".into()));
    }
    drop(conn);
    let body = body.into_inner();
    let limits = validated(Limits {
        requests_per_minute: body.requests_per_minute,
        tool_calls_per_month: body.tool_calls_per_month,
        max_sessions: body.max_sessions,
        wasm_cpu_ms_per_month: body.wasm_cpu_ms_per_month,
        max_containers: body.max_containers,
    })?;
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    quotas::set_tenant_limits(&mut tx, &scope, &limits).await?;
    notify::publish(&mut tx, &Change::Quotas { tenant: scope.tenant_id() }).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    tracing::info!(tenant = %scope.slug(), ?limits, "plan changed");
    Ok(HttpResponse::Ok().json(QuotasBody::from(limits)))
}

/// Reads a key's quotas.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/api-keys/{id}/quotas", tag = "quotas",
    responses((status = 200, body = KeyQuotasBody), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn get_key(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::AdminRead).await?;
    Ok(HttpResponse::Ok().json(KeyQuotasBody::from(quotas::key_limits(&mut conn, &scope, key_id(&id)?).await?)))
}

/// Replaces a key's quotas (the `admin` scope). They apply on top of the plan, on every node
/// within a second.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/api-keys/{id}/quotas", tag = "quotas", request_body = KeyQuotasBody,
    responses((status = 200, body = KeyQuotasBody), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn put_key(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<KeyQuotasBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Admin).await?;
    drop(conn);
    let key = key_id(&id)?;
    let body = body.into_inner();
    let limits = validated(Limits {
        requests_per_minute: body.requests_per_minute,
        tool_calls_per_month: body.tool_calls_per_month,
        max_sessions: body.max_sessions,
        wasm_cpu_ms_per_month: body.wasm_cpu_ms_per_month,
        max_containers: None,
    })?;
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    quotas::set_key_limits(&mut tx, &scope, key, &limits).await?;
    notify::publish(&mut tx, &Change::Quotas { tenant: scope.tenant_id() }).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    Ok(HttpResponse::Ok().json(KeyQuotasBody::from(limits)))
}
