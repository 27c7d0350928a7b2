//! `/tenants/{tenant}/servers/{server}/versions`: publish, list, read, activate.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use berth_core::{
    ContainerSpec, Error as Invalid, RemoteSpec, Scope, ServerKind, Slug, TenantScope, VersionSpec, WasmSpec,
};
use berth_storage::notify::{self, Change};
use berth_storage::{servers, versions};
use sha2::{Digest, Sha256};

use super::conn;
use crate::ControlPlaneState;
use crate::body::{media_type, read_limited};
use crate::caller::Caller;
use crate::dto::{
    ContainerVersionRequest, Page, PageQuery, PatchVersion, PublishQuery, RemoteVersionRequest, VersionBody, page,
};
use crate::problem::ApiError;

fn version_number(raw: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>().ok().filter(|n| *n > 0).ok_or(ApiError::NotFound("version"))
}

fn json_spec<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Publishes a new immutable version.
///
/// `wasm` servers take the component as an `application/wasm` body; `container` and `remote`
/// servers take JSON. The new version becomes active unless `?activate=false`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/servers/{server}/versions", tag = "versions", params(PublishQuery),
    request_body(description = "`application/wasm` component bytes (wasm servers), or JSON (container, remote)",
        content(
            (Vec<u8> = "application/wasm"),
            (ContainerVersionRequest = "application/json"),
            (RemoteVersionRequest = "application/json"))),
    responses((status = 201, body = VersionBody), (status = 400), (status = 401), (status = 403), (status = 404), (status = 413), (status = 415)))]
pub(crate) async fn publish(
    req: HttpRequest,
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<PublishQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Publish).await?;
    let slug = Slug::parse("server", &server)?;
    let server = servers::get(&mut conn, &scope, &slug).await?;
    let media = media_type(&req);
    let (expected, limit) = match server.kind {
        ServerKind::Wasm => ("application/wasm", state.max_upload_bytes),
        ServerKind::Container | ServerKind::Remote => ("application/json", state.max_json_bytes),
    };
    if media != expected {
        return Err(ApiError::UnsupportedMediaType(expected));
    }
    let egress = match (&query.egress, server.kind) {
        (None, _) => Vec::new(),
        (Some(raw), ServerKind::Wasm) => berth_core::server::parse_egress(raw)?,
        (Some(_), _) => return Err(Invalid::invalid("egress", "applies to wasm versions only").into()),
    };
    let body = read_limited(&req, payload, limit).await?;
    if server.kind == ServerKind::Wasm {
        berth_core::server::check_component_header(&body)?;
        // Compiling a component takes real CPU time: keep it off the async workers.
        let validator = state.validator.clone();
        let bytes = body.clone();
        web::block(move || validator.validate(&bytes))
            .await
            .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("validation task failed: {e}")))?
            .map_err(|why| Invalid::invalid("body", why))?;
    }
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    let spec = match server.kind {
        ServerKind::Wasm => {
            let sha256 = hex::encode(Sha256::digest(&body));
            versions::put_component(&mut tx, &scope, &sha256, &body).await?;
            VersionSpec::Wasm(WasmSpec { sha256, size: body.len() as u64, egress })
        }
        ServerKind::Container => {
            let spec: ContainerSpec = json_spec(&body)?;
            spec.validate()?;
            VersionSpec::Container(spec)
        }
        ServerKind::Remote => {
            let mut spec: RemoteSpec = json_spec(&body)?;
            spec.validate()?;
            // Upstream credentials are stored sealed; only the data plane opens them.
            if let Some(key) = &state.upstream_key {
                for value in spec.headers.values_mut() {
                    *value = berth_core::sealed::seal(key, value);
                }
            }
            VersionSpec::Remote(spec)
        }
    };
    let activate = query.activate.unwrap_or(true);
    let version = versions::insert(&mut tx, &scope, server.id, &spec, activate).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    tracing::info!(tenant = %scope.slug(), server = %slug, version = version.number, activate, "version published");
    let active = if activate { Some(version.number) } else { server.active_version };
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/tenants/{}/servers/{slug}/versions/{}", scope.slug(), version.number),
        ))
        .json(VersionBody::new(version, active)))
}

async fn server_of(
    conn: &mut berth_storage::PgConnection,
    scope: &TenantScope,
    raw: &str,
) -> Result<berth_core::Server, ApiError> {
    let slug = Slug::parse("server", raw)?;
    Ok(servers::get(conn, scope, &slug).await?)
}

/// Lists a server's versions, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/servers/{server}/versions", tag = "versions", params(PageQuery),
    responses((status = 200, body = Page<VersionBody>), (status = 401), (status = 404)))]
pub(crate) async fn list(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::AdminRead).await?;
    let server = server_of(&mut conn, &scope, &server).await?;
    let before = query
        .cursor
        .as_deref()
        .map(|c| c.parse::<i32>().map_err(|_| Invalid::invalid("cursor", "not a cursor from this endpoint")))
        .transpose()?;
    let limit = query.limit();
    let rows = versions::list(&mut conn, &scope, server.id, before, limit + 1).await?;
    let active = server.active_version;
    Ok(HttpResponse::Ok().json(page(rows, limit, |v| v.number.to_string(), |v| VersionBody::new(v, active))))
}

/// Reads one version.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/servers/{server}/versions/{version}", tag = "versions",
    responses((status = 200, body = VersionBody), (status = 401), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server, number) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::AdminRead).await?;
    let server = server_of(&mut conn, &scope, &server).await?;
    let version = versions::get(&mut conn, &scope, server.id, version_number(&number)?).await?;
    Ok(HttpResponse::Ok().json(VersionBody::new(version, server.active_version)))
}

/// Makes a version the one serving calls; activating an older version is a rollback.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/servers/{server}/versions/{version}/activate", tag = "versions",
    responses((status = 200, body = VersionBody), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn activate(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server, number) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Publish).await?;
    let server = server_of(&mut conn, &scope, &server).await?;
    drop(conn);
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    let version = versions::activate(&mut tx, &scope, server.id, version_number(&number)?).await?;
    let change = Change::Server {
        tenant: scope.tenant_id(),
        server: server.id,
        enabled: server.enabled,
        disabled_tools: notify::tools_payload(&server.disabled_tools),
    };
    notify::publish(&mut tx, &change).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    tracing::info!(tenant = %scope.slug(), server = %server.slug, version = version.number, "version activated");
    let number = version.number;
    Ok(HttpResponse::Ok().json(VersionBody::new(version, Some(number))))
}

/// Enables or disables one version (the kill switch). A disabled active version serves nothing:
/// every data-plane node refuses new calls and ends the sessions running it as soon as this
/// commits.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/servers/{server}/versions/{version}", tag = "versions",
    request_body = PatchVersion,
    responses((status = 200, body = VersionBody), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn patch(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
    body: web::Json<PatchVersion>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server, number) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Publish).await?;
    let server = server_of(&mut conn, &scope, &server).await?;
    let number = version_number(&number)?;
    let version = match body.enabled {
        None => versions::get(&mut conn, &scope, server.id, number).await?,
        Some(enabled) => {
            drop(conn);
            let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
            let version = versions::set_enabled(&mut tx, &scope, server.id, number, enabled).await?;
            let change = Change::Version { tenant: scope.tenant_id(), server: server.id, version: version.id, enabled };
            notify::publish(&mut tx, &change).await?;
            tx.commit().await.map_err(berth_storage::Error::from)?;
            tracing::info!(tenant = %scope.slug(), server = %server.slug, version = number, enabled, "version toggled");
            version
        }
    };
    Ok(HttpResponse::Ok().json(VersionBody::new(version, server.active_version)))
}
