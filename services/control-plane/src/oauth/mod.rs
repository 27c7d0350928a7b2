//! Each tenant's OAuth 2.1 authorization server, issuer `{public_url}/t/{tenant}`.
//!
//! - metadata (RFC 8414, and the OpenID discovery variants) at
//!   `/.well-known/oauth-authorization-server/t/{tenant}`, `/.well-known/openid-configuration/t/{tenant}`
//!   and `/t/{tenant}/.well-known/openid-configuration` ([`metadata`]);
//! - `/t/{tenant}/oauth/authorize` and `/login`: login and consent pages for tenant members, CSRF
//!   protected, PKCE S256 only, exact redirect URI matching, `iss` in every response ([`authorize`]);
//! - `/t/{tenant}/oauth/token`: authorization code and refresh token grants, refresh tokens rotated
//!   with reuse detection ([`token`]);
//! - `/t/{tenant}/oauth/register` (RFC 7591), `/revoke` (RFC 7009) and `/jwks`;
//! - Client ID Metadata Documents: a `client_id` that is an https URL is fetched (SSRF-hardened)
//!   and cached instead of looked up ([`cimd`]).
//!
//! These endpoints are not under `/api/v1`: they speak OAuth (form bodies, OAuth error objects,
//! HTML pages), not the admin API's problem documents. The tenant in the path is routing input,
//! like the data plane's: it is trusted only after the client or member authenticated.

mod authorize;
mod cimd;
mod clients;
mod errors;
mod keys;
mod metadata;
mod pages;
mod register;
mod revoke;
mod token;

pub use cimd::ClientDocuments;
pub(crate) use clients::Registration;
pub(crate) use keys::{retired_after, rotate as rotate_signing_key};
pub use register::REGISTRATIONS_PER_MINUTE;

use actix_web::web;
use berth_core::{Slug, Tenant, TenantScope};
use berth_storage::PgConnection;

use errors::OAuthError;

/// Registers the authorization server's routes at the application root.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/.well-known/oauth-authorization-server/t/{tenant}", web::get().to(metadata::serve))
        .route("/.well-known/openid-configuration/t/{tenant}", web::get().to(metadata::serve))
        .route("/t/{tenant}/.well-known/openid-configuration", web::get().to(metadata::serve))
        .route("/t/{tenant}/oauth/jwks", web::get().to(keys::jwks))
        .service(
            web::resource("/t/{tenant}/oauth/authorize")
                .route(web::get().to(authorize::show))
                .route(web::post().to(authorize::decide)),
        )
        .route("/t/{tenant}/oauth/login", web::post().to(authorize::login))
        .route("/t/{tenant}/oauth/token", web::post().to(token::exchange))
        .route("/t/{tenant}/oauth/register", web::post().to(register::register))
        .route("/t/{tenant}/oauth/revoke", web::post().to(revoke::revoke));
}

/// The address a request came from, for the per-address limits: the connection's, or the one a
/// trusted proxy forwarded it for (never a forwarding header a client wrote itself).
fn peer_ip(req: &actix_web::HttpRequest, state: &crate::ControlPlaneState) -> Option<std::net::IpAddr> {
    crate::client_ip(req, &state.trusted_proxies)
}

/// The tenant named in the path; unknown tenants answer 404.
async fn tenant(conn: &mut PgConnection, slug: &str) -> Result<(Tenant, TenantScope), OAuthError> {
    let slug = Slug::parse("tenant", slug).map_err(|_| OAuthError::unknown_tenant())?;
    let tenant = match berth_storage::tenants::find_by_slug_for_routing(conn, &slug).await {
        Ok(t) => t,
        Err(berth_storage::Error::NotFound(_)) => return Err(OAuthError::unknown_tenant()),
        Err(e) => return Err(e.into()),
    };
    // The tenant is routing input; every endpoint authenticates the client or member next.
    let scope = TenantScope::from_verified_credentials(tenant.id, tenant.slug.clone());
    Ok((tenant, scope))
}

/// Parses an `application/x-www-form-urlencoded` body (a repeated parameter is an error).
fn form<T: serde::de::DeserializeOwned>(req: &actix_web::HttpRequest, body: &[u8]) -> Result<T, String> {
    let media = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err("the body must be application/x-www-form-urlencoded".into());
    }
    serde_urlencoded::from_bytes(body).map_err(|e| format!("invalid form body: {e}"))
}
