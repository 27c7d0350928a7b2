//! `/tenants/{tenant}/api-keys`: create (secret shown once), list, read, revoke.

use actix_web::{HttpResponse, http::header, web};
use berth_auth::GeneratedKey;
use berth_core::{ApiKeyId, Error as Invalid, Scope, Slug};
use berth_storage::api_keys::{self, NewApiKey};
use berth_storage::notify::{self, Change};

use super::{conn, display_name};
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::dto::{ApiKeyBody, CreateApiKey, CreatedApiKey, Page, PageQuery, page};
use crate::problem::ApiError;

fn key_id(raw: &str) -> Result<ApiKeyId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("api key"))
}

/// Creates a key. The secret `key` appears in this response only.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/api-keys", tag = "api-keys", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400), (status = 401), (status = 403), (status = 404), (status = 415)))]
pub(crate) async fn create(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::Admin).await?;
    let name = display_name("name", &body.name)?;
    let mut scopes = match &body.scopes {
        None => vec![Scope::Mcp],
        Some(names) if names.is_empty() => return Err(Invalid::invalid("scopes", "must not be empty").into()),
        Some(names) => names.iter().map(|n| Scope::parse(n)).collect::<Result<Vec<_>, _>>()?,
    };
    scopes.sort();
    scopes.dedup();
    if body.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        return Err(Invalid::invalid("expires_at", "must be in the future").into());
    }
    let server_ids = match &body.servers {
        None => None,
        Some(names) if names.is_empty() => {
            return Err(Invalid::invalid("servers", "must not be empty when given").into());
        }
        Some(names) => {
            let slugs = names.iter().map(|n| Slug::parse("server", n)).collect::<Result<Vec<_>, _>>()?;
            match api_keys::resolve_servers(&mut conn, &scope, &slugs).await? {
                Ok(ids) => Some(ids),
                Err(missing) => {
                    let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
                    return Err(Invalid::invalid("servers", format!("unknown servers: {}", list.join(", "))).into());
                }
            }
        }
    };
    let generated = GeneratedKey::generate();
    let new = NewApiKey {
        name: &name,
        prefix: &generated.prefix,
        secret_hash: &generated.secret_hash,
        scopes: &scopes,
        server_ids: server_ids.as_deref(),
        expires_at: body.expires_at,
    };
    let key = api_keys::insert(&mut conn, &scope, &new).await?;
    tracing::info!(tenant = %scope.slug(), key_id = %key.id, "api key created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/tenants/{}/api-keys/{}", scope.slug(), key.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CreatedApiKey { key: generated.key, meta: key.into() }))
}

/// Lists keys (never their secrets).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/api-keys", tag = "api-keys", params(PageQuery),
    responses((status = 200, body = Page<ApiKeyBody>), (status = 401), (status = 404)))]
pub(crate) async fn list(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    let after = query
        .cursor
        .as_deref()
        .map(|c| c.parse::<ApiKeyId>().map_err(|_| Invalid::invalid("cursor", "not a cursor from this endpoint")))
        .transpose()?;
    let limit = query.limit();
    let rows = api_keys::list(&mut conn, &scope, after, limit + 1).await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |k| k.id.to_string(), ApiKeyBody::from)))
}

/// Reads one key's metadata.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/api-keys/{id}", tag = "api-keys",
    responses((status = 200, body = ApiKeyBody), (status = 401), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::AdminRead).await?;
    let key = api_keys::get(&mut conn, &scope, key_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(ApiKeyBody::from(key)))
}

/// Revokes a key; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/api-keys/{id}", tag = "api-keys",
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn revoke(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Admin).await?;
    drop(conn);
    // Revocation is a kill switch: every data-plane node drops the key when this commits.
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    let key = api_keys::revoke(&mut tx, &scope, key_id(&id)?).await?;
    notify::publish(&mut tx, &Change::ApiKey { tenant: scope.tenant_id(), key: key.id, enabled: false }).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    tracing::info!(tenant = %scope.slug(), key_id = %key.id, "api key revoked");
    Ok(HttpResponse::NoContent().finish())
}
