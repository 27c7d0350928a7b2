//! `/tenants/{tenant}/identity-provider`: an external OpenID Connect issuer whose access tokens
//! the tenant's MCP servers accept, as an alternative to Berth's own authorization server.
//!
//! A token from it is accepted when its signature checks out against the issuer's JWKS, `iss`
//! is the configured issuer, `aud` is the configured audience (or, when none is configured, the
//! server's MCP URL), and the configured email claim names a member of the tenant.

use actix_web::{HttpResponse, web};
use berth_core::{Error as Invalid, Scope};
use berth_storage::oauth::{self, IdentityProvider};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::conn;
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::problem::ApiError;

/// Body of `PUT /tenants/{tenant}/identity-provider`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutIdentityProvider {
    /// The issuer's exact `iss` (an https URL; http only on localhost, for tests).
    pub(crate) issuer: String,
    /// Required `aud` of its tokens; when absent, tokens must name the server's MCP URL.
    pub(crate) audience: Option<String>,
    /// Where its keys are; when absent, read from `{issuer}/.well-known/openid-configuration`.
    pub(crate) jwks_uri: Option<String>,
    /// The claim holding the member's email address (default `email`).
    pub(crate) email_claim: Option<String>,
}

/// The trusted external issuer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IdentityProviderBody {
    pub(crate) issuer: String,
    pub(crate) audience: Option<String>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) email_claim: String,
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<IdentityProvider> for IdentityProviderBody {
    fn from(p: IdentityProvider) -> Self {
        Self {
            issuer: p.issuer,
            audience: p.audience,
            jwks_uri: p.jwks_uri,
            email_claim: p.email_claim,
            updated_at: p.updated_at,
        }
    }
}

fn web_url(field: &str, value: &str) -> Result<String, ApiError> {
    let url = url::Url::parse(value).map_err(|_| Invalid::invalid(field, "must be an absolute URL"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(value.to_owned()),
        "http" if loopback => Ok(value.to_owned()),
        _ => Err(Invalid::invalid(field, "must be an https URL (http only on localhost)").into()),
    }
}

/// Reads the trusted external issuer.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/identity-provider", tag = "oauth",
    responses((status = 200, body = IdentityProviderBody), (status = 401), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    let provider =
        oauth::get_identity_provider(&mut conn, &scope).await?.ok_or(ApiError::NotFound("identity provider"))?;
    Ok(HttpResponse::Ok().json(IdentityProviderBody::from(provider)))
}

/// Trusts an external issuer (replacing any previous one).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/identity-provider", tag = "oauth", request_body = PutIdentityProvider,
    responses((status = 200, body = IdentityProviderBody), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn put(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<PutIdentityProvider>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::Admin).await?;
    let issuer = web_url("issuer", &body.issuer)?;
    let jwks_uri = body.jwks_uri.as_deref().map(|u| web_url("jwks_uri", u)).transpose()?;
    let audience = body.audience.as_deref().map(str::trim).filter(|a| !a.is_empty());
    if audience.is_some_and(|a| a.len() > 2000) {
        return Err(Invalid::invalid("audience", "must be at most 2000 characters").into());
    }
    let email_claim = body.email_claim.as_deref().unwrap_or("email").trim();
    if email_claim.is_empty() || email_claim.len() > 100 {
        return Err(Invalid::invalid("email_claim", "must be 1-100 characters").into());
    }
    let provider =
        oauth::put_identity_provider(&mut conn, &scope, &issuer, audience, jwks_uri.as_deref(), email_claim).await?;
    tracing::info!(tenant = %scope.slug(), issuer = %provider.issuer, "identity provider set");
    Ok(HttpResponse::Ok().json(IdentityProviderBody::from(provider)))
}

/// Stops trusting the external issuer.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/identity-provider", tag = "oauth",
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn delete(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::Admin).await?;
    oauth::delete_identity_provider(&mut conn, &scope).await?;
    tracing::info!(tenant = %scope.slug(), "identity provider removed");
    Ok(HttpResponse::NoContent().finish())
}
