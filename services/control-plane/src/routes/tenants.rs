//! `/tenants` and `/tenants/{tenant}`.

use actix_web::{HttpResponse, http::header, web};
use berth_core::{Scope, Slug};
use berth_storage::notify::{self, Change};
use berth_storage::tenants;

use super::{conn, display_name};
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::dto::{CreateTenant, Page, PageQuery, PatchTenant, TenantBody, page};
use crate::problem::ApiError;

/// Creates a tenant (platform administrator only).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = TenantBody), (status = 400), (status = 401), (status = 403), (status = 409), (status = 415)))]
pub(crate) async fn create(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    body: web::Json<CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    let admin = caller.admin()?;
    let body = body.into_inner();
    let slug = Slug::parse("tenant", &body.slug)?;
    let name = display_name("name", &body.name)?;
    let mut conn = conn(&state).await?;
    let tenant = tenants::insert(&mut conn, admin, &slug, &name).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/tenants/{slug}")))
        .json(TenantBody::from(tenant)))
}

/// Lists tenants: all of them for the platform administrator, the key's own for a tenant key.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(PageQuery),
    responses((status = 200, body = Page<TenantBody>), (status = 401)))]
pub(crate) async fn list(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let limit = query.limit();
    let rows = match caller.admin() {
        Ok(admin) => {
            let after = query.cursor.as_deref().map(|c| Slug::parse("cursor", c)).transpose()?;
            tenants::list(&mut conn, admin, after.as_ref(), limit + 1).await?
        }
        Err(_) => match &caller.0 {
            berth_core::Principal::ApiKey { tenant, .. } if caller.0.has_scope(Scope::AdminRead) => {
                if query.cursor.is_some() { Vec::new() } else { vec![tenants::get(&mut conn, tenant).await?] }
            }
            _ => return Err(ApiError::Forbidden("this API key lacks the `admin:read` scope".into())),
        },
    };
    Ok(HttpResponse::Ok().json(page(rows, limit, |t| t.slug.to_string(), TenantBody::from)))
}

/// Reads a tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    responses((status = 200, body = TenantBody), (status = 401), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    Ok(HttpResponse::Ok().json(TenantBody::from(tenants::get(&mut conn, &scope).await?)))
}

/// Renames a tenant, or (platform administrator) enables or disables it.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}", tag = "tenants", request_body = PatchTenant,
    responses((status = 200, body = TenantBody), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn patch(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<PatchTenant>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::Admin).await?;
    if body.enabled.is_some() && !caller.is_platform_admin() {
        return Err(ApiError::Forbidden("only the platform administrator may enable or disable a tenant".into()));
    }
    let name = body.name.as_deref().map(|n| display_name("name", n)).transpose()?;
    drop(conn);
    // The change and its notification commit together: every data-plane node hears of a
    // disabled tenant as soon as it is stored (the kill switch).
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    let tenant = tenants::update(&mut tx, &scope, name.as_deref(), body.enabled).await?;
    notify::publish(&mut tx, &Change::Tenant { tenant: scope.tenant_id(), enabled: tenant.enabled }).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    Ok(HttpResponse::Ok().json(TenantBody::from(tenant)))
}

/// Deletes a tenant and everything it owns (platform administrator only).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn delete(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::Admin).await?;
    caller.admin()?;
    drop(conn);
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    tenants::delete(&mut tx, &scope).await?;
    notify::publish(&mut tx, &Change::Tenant { tenant: scope.tenant_id(), enabled: false }).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    Ok(HttpResponse::NoContent().finish())
}
