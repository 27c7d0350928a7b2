//! `/tenants/{tenant}/servers` and `/tenants/{tenant}/servers/{server}`.

use actix_web::{HttpResponse, http::header, web};
use berth_core::{Error as Invalid, Scope, ServerKind, Slug};
use berth_storage::notify::{self, Change};
use berth_storage::servers::{self, NewServer, ServerPatch};

use super::{conn, display_name};
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::dto::{CreateServer, Page, PageQuery, PatchServer, ServerBody, page};
use crate::problem::ApiError;

const MAX_DESCRIPTION: usize = 4096;

fn description(value: &str) -> Result<&str, ApiError> {
    if value.len() > MAX_DESCRIPTION {
        return Err(Invalid::invalid("description", "must be at most 4096 bytes").into());
    }
    Ok(value)
}

fn tool_names(names: &[String]) -> Result<(), ApiError> {
    if names.len() > 1000 {
        return Err(Invalid::invalid("disabled_tools", "at most 1000 tools").into());
    }
    for name in names {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b));
        if !ok {
            return Err(Invalid::invalid("disabled_tools", format!("{name:?} is not a valid tool name")).into());
        }
    }
    Ok(())
}

/// Creates a server (no versions yet).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/servers", tag = "servers", request_body = CreateServer,
    responses((status = 201, body = ServerBody), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 415)))]
pub(crate) async fn create(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<CreateServer>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::Publish).await?;
    if body.public && !caller.0.has_scope(Scope::Admin) {
        return Err(ApiError::Forbidden("making a server public needs the `admin` scope".into()));
    }
    let slug = Slug::parse("server", &body.slug)?;
    let name = display_name("name", &body.name)?;
    let new = NewServer {
        slug: &slug,
        name: &name,
        description: description(&body.description)?,
        kind: ServerKind::parse(&body.kind)?,
        public: body.public,
    };
    let server = servers::insert(&mut conn, &scope, &new).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/tenants/{}/servers/{slug}", scope.slug())))
        .json(ServerBody::new(server, &state.public_url, scope.slug().as_str())))
}

/// Lists the tenant's servers.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/servers", tag = "servers", params(PageQuery),
    responses((status = 200, body = Page<ServerBody>), (status = 401), (status = 404)))]
pub(crate) async fn list(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    let after = query.cursor.as_deref().map(|c| Slug::parse("cursor", c)).transpose()?;
    let limit = query.limit();
    let rows = servers::list(&mut conn, &scope, after.as_ref(), limit + 1).await?;
    let tenant = scope.slug().as_str();
    Ok(HttpResponse::Ok().json(page(
        rows,
        limit,
        |s| s.slug.to_string(),
        |s| ServerBody::new(s, &state.public_url, tenant),
    )))
}

/// Reads a server.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/servers/{server}", tag = "servers",
    responses((status = 200, body = ServerBody), (status = 401), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::AdminRead).await?;
    let slug = Slug::parse("server", &server)?;
    let server = servers::get(&mut conn, &scope, &slug).await?;
    Ok(HttpResponse::Ok().json(ServerBody::new(server, &state.public_url, scope.slug().as_str())))
}

/// Changes a server: name, description, the `enabled` kill switch, `public`, `disabled_tools`.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/servers/{server}", tag = "servers", request_body = PatchServer,
    responses((status = 200, body = ServerBody), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn patch(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<PatchServer>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server) = path.into_inner();
    let body = body.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Publish).await?;
    if body.public.is_some() && !caller.0.has_scope(Scope::Admin) {
        return Err(ApiError::Forbidden("changing `public` needs the `admin` scope".into()));
    }
    let slug = Slug::parse("server", &server)?;
    let name = body.name.as_deref().map(|n| display_name("name", n)).transpose()?;
    if let Some(d) = &body.description {
        description(d)?;
    }
    if let Some(tools) = &body.disabled_tools {
        tool_names(tools)?;
    }
    let patch = ServerPatch {
        name: name.as_deref(),
        description: body.description.as_deref(),
        enabled: body.enabled,
        public: body.public,
        disabled_tools: body.disabled_tools.as_deref(),
    };
    drop(conn);
    // Disabling a server or a tool is a kill switch: the notification commits with the change.
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    let server = servers::update(&mut tx, &scope, &slug, &patch).await?;
    let change = Change::Server {
        tenant: scope.tenant_id(),
        server: server.id,
        enabled: server.enabled,
        disabled_tools: notify::tools_payload(&server.disabled_tools),
    };
    notify::publish(&mut tx, &change).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    Ok(HttpResponse::Ok().json(ServerBody::new(server, &state.public_url, scope.slug().as_str())))
}

/// Deletes a server and all its versions.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/servers/{server}", tag = "servers",
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn delete(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Admin).await?;
    let slug = Slug::parse("server", &server)?;
    let id = servers::get(&mut conn, &scope, &slug).await?.id;
    drop(conn);
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    servers::delete(&mut tx, &scope, &slug).await?;
    let change = Change::Server { tenant: scope.tenant_id(), server: id, enabled: false, disabled_tools: None };
    notify::publish(&mut tx, &change).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    Ok(HttpResponse::NoContent().finish())
}
