//! `/tenants/{tenant}/oauth/clients` and `/tenants/{tenant}/oauth/signing-keys`: OAuth clients
//! registered by an administrator (instead of dynamically), and the tenant's token signing keys.

use actix_web::{HttpResponse, http::header, web};
use berth_core::{Error as Invalid, Scope};
use berth_storage::oauth::{self, OAuthClient, SigningKeyInfo};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::conn;
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::dto::{Page, PageQuery, page};
use crate::oauth::Registration;
use crate::problem::ApiError;

/// Body of `POST /tenants/{tenant}/oauth/clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOAuthClient {
    /// Shown on the consent page.
    pub(crate) name: String,
    /// HTTPS URLs, or HTTP on localhost/127.0.0.1/[::1]; matched exactly.
    pub(crate) redirect_uris: Vec<String>,
    /// `none` (public client, the default), `client_secret_post` or `client_secret_basic`.
    pub(crate) token_endpoint_auth_method: Option<String>,
    /// Default `["authorization_code", "refresh_token"]`.
    pub(crate) grant_types: Option<Vec<String>>,
}

/// A registered OAuth client (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OAuthClientBody {
    pub(crate) client_id: String,
    pub(crate) name: String,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) token_endpoint_auth_method: String,
    pub(crate) grant_types: Vec<String>,
    /// `admin` or `dynamic`.
    pub(crate) registered_by: String,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<OAuthClient> for OAuthClientBody {
    fn from(c: OAuthClient) -> Self {
        Self {
            client_id: c.client_id,
            name: c.name,
            redirect_uris: c.redirect_uris,
            token_endpoint_auth_method: c.token_endpoint_auth_method,
            grant_types: c.grant_types,
            registered_by: c.registered_by,
            created_at: c.created_at,
        }
    }
}

/// A newly registered client; `client_secret` appears in this response only.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedOAuthClient {
    #[serde(flatten)]
    pub(crate) client: OAuthClientBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_secret: Option<String>,
}

/// A signing key's public facts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SigningKeyBody {
    pub(crate) kid: String,
    pub(crate) algorithm: String,
    /// Whether it signs new tokens (exactly one key does).
    pub(crate) active: bool,
    /// Retired keys stay in the JWKS for an hour, past the life of any token they signed.
    pub(crate) published: bool,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) retired_at: Option<DateTime<Utc>>,
}

impl From<SigningKeyInfo> for SigningKeyBody {
    fn from(k: SigningKeyInfo) -> Self {
        Self {
            active: k.retired_at.is_none(),
            published: k.retired_at.is_none_or(|at| at > crate::oauth::retired_after()),
            kid: k.kid,
            algorithm: k.algorithm,
            created_at: k.created_at,
            retired_at: k.retired_at,
        }
    }
}

/// Registers an OAuth client.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/oauth/clients", tag = "oauth", request_body = CreateOAuthClient,
    responses((status = 201, body = CreatedOAuthClient), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn create(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<CreateOAuthClient>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::Admin).await?;
    let registration = Registration::check(
        Some(&body.name),
        Some(&body.redirect_uris),
        Some(body.token_endpoint_auth_method.as_deref().unwrap_or("none")),
        body.grant_types.as_deref(),
    )
    .map_err(|(redirect, why)| Invalid::invalid(if redirect { "redirect_uris" } else { "client" }, why))?;
    let (client, client_secret) = registration.register(&mut conn, &scope, "admin").await?;
    tracing::info!(tenant = %scope.slug(), client_id = %client.client_id, "oauth client registered");
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/tenants/{}/oauth/clients/{}", scope.slug(), client.client_id),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CreatedOAuthClient { client: client.into(), client_secret }))
}

/// Lists OAuth clients, dynamically registered ones included.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/oauth/clients", tag = "oauth", params(PageQuery),
    responses((status = 200, body = Page<OAuthClientBody>), (status = 401), (status = 404)))]
pub(crate) async fn list(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    let limit = query.limit();
    let rows = oauth::list_clients(&mut conn, &scope, query.cursor.as_deref(), limit + 1).await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |c| c.client_id.clone(), OAuthClientBody::from)))
}

/// Reads an OAuth client.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/oauth/clients/{client_id}", tag = "oauth",
    responses((status = 200, body = OAuthClientBody), (status = 401), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, client_id) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::AdminRead).await?;
    let client = oauth::get_client(&mut conn, &scope, &client_id).await?.ok_or(ApiError::NotFound("oauth client"))?;
    Ok(HttpResponse::Ok().json(OAuthClientBody::from(client)))
}

/// Deletes an OAuth client; every token issued to it stops working within a second.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/oauth/clients/{client_id}", tag = "oauth",
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn delete(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, client_id) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Admin).await?;
    drop(conn);
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    oauth::delete_client(&mut tx, &scope, &client_id).await?;
    // The kill switch: every data-plane node ends this client's sessions when this commits.
    let change = berth_storage::notify::Change::OAuthClient {
        tenant: scope.tenant_id(),
        client: client_id.clone(),
        enabled: false,
    };
    berth_storage::notify::publish(&mut tx, &change).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    tracing::info!(tenant = %scope.slug(), client_id = %client_id, "oauth client deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Lists the tenant's signing keys, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/oauth/signing-keys", tag = "oauth",
    responses((status = 200, body = Vec<SigningKeyBody>), (status = 401), (status = 404)))]
pub(crate) async fn list_keys(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    let keys = oauth::list_signing_keys(&mut conn, &scope).await?;
    Ok(HttpResponse::Ok().json(keys.into_iter().map(SigningKeyBody::from).collect::<Vec<_>>()))
}

/// Rotates the signing key: a new key signs from now on; the previous one stays published
/// until the tokens it signed have expired.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/oauth/signing-keys", tag = "oauth",
    responses((status = 201, body = SigningKeyBody), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn rotate_key(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::Admin).await?;
    drop(conn);
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    let kid = crate::oauth::rotate_signing_key(&mut tx, &scope, state.signing_keys_key.as_ref()).await?;
    let keys = oauth::list_signing_keys(&mut tx, &scope).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    tracing::info!(tenant = %scope.slug(), kid = %kid, "signing key rotated");
    let key = keys.into_iter().find(|k| k.kid == kid).ok_or(ApiError::NotFound("signing key"))?;
    Ok(HttpResponse::Created().json(SigningKeyBody::from(key)))
}
