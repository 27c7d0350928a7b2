//! Berth's control plane: the admin REST API under `/api/v1`.
//!
//! Handlers parse input into domain types, check the caller's scope, call one storage
//! function and map its error; every error leaves as `application/problem+json`
//! (RFC 9457, see [`problem`]). [`configure`] mounts everything on an actix-web `App`.

mod audit_log;
mod body;
pub mod caller;
mod dto;
mod limits;
mod oauth;
pub mod openapi;
pub mod problem;
mod routes;

use actix_web::web;
use berth_storage::PgPool;
use secrecy::SecretString;

pub use limits::AddressLimiter;
pub use oauth::{ClientDocuments, REGISTRATIONS_PER_MINUTE};

/// What the control plane needs at run time.
#[derive(Clone)]
pub struct ControlPlaneState {
    /// The system of record.
    pub pool: PgPool,
    /// The platform administrator's token.
    pub admin_token: SecretString,
    /// Public base URL, used to print MCP endpoint URLs.
    pub public_url: url::Url,
    /// Largest accepted upload (WASM components), in bytes.
    pub max_upload_bytes: usize,
    /// Largest accepted JSON body, in bytes.
    pub max_json_bytes: usize,
    /// Checks uploaded components against the `berth:mcp` world.
    pub validator: std::sync::Arc<dyn berth_core::backend::ComponentValidator>,
    /// Records an audit event for every mutation and refused credential.
    pub auditor: berth_audit::Auditor,
    /// Seals remote servers' upstream headers before they are stored (`None`: stored as given,
    /// when this process has no `BERTH_SECRET_KEY` shared with the data plane).
    pub upstream_key: Option<berth_core::sealed::SealKey>,
    /// Seals servers' secrets before they are stored, each bound to its tenant, server and name
    /// (`None`: stored as given, as for `upstream_key`).
    pub secrets_key: Option<berth_core::sealed::SealKey>,
    /// Seals tenants' OAuth signing keys before they are stored, and opens them to sign (`None`:
    /// stored as given, and a sealed key cannot be used).
    pub signing_keys_key: Option<berth_core::sealed::SealKey>,
    /// Per-address allowance of Dynamic Client Registration on this node.
    pub registrations: std::sync::Arc<AddressLimiter>,
    /// Fetches and caches the Client ID Metadata Documents of URL `client_id`s, shared by every
    /// tenant's authorization server.
    pub client_documents: std::sync::Arc<ClientDocuments>,
    /// The reverse proxies whose `X-Forwarded-For` names a request's client, for the
    /// per-address limits (`BERTH_TRUSTED_PROXIES`; none by default).
    pub trusted_proxies: berth_core::net::TrustedProxies,
}

/// The address a request came from: the connection's, or, when that is a trusted proxy, the
/// client its `X-Forwarded-For` names ([`berth_core::net::TrustedProxies::client_ip`]).
pub fn client_ip(req: &actix_web::HttpRequest, proxies: &berth_core::net::TrustedProxies) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|value| value.to_str().ok());
    Some(proxies.client_ip(peer, forwarded))
}

impl std::fmt::Debug for ControlPlaneState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlaneState")
            .field("public_url", &self.public_url.as_str())
            .field("max_upload_bytes", &self.max_upload_bytes)
            .finish_non_exhaustive()
    }
}

/// Mounts each tenant's OAuth 2.1 authorization server at the application root: metadata under
/// `/.well-known/...` and the endpoints under `/t/{tenant}/oauth/` (see `oauth`).
pub fn configure_oauth(state: ControlPlaneState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state)).configure(oauth::configure);
    }
}

/// Mounts `/api/v1` with its state and JSON error handling.
pub fn configure(state: ControlPlaneState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let json = web::JsonConfig::default()
            .limit(state.max_json_bytes)
            .error_handler(|err, _req| problem::ApiError::from_json_error(err).into());
        let path =
            web::PathConfig::default().error_handler(|_err, _req| problem::ApiError::NotFound("resource").into());
        let query = web::QueryConfig::default()
            .error_handler(|err, _req| problem::ApiError::BadRequest(format!("invalid query string: {err}")).into());
        cfg.service(
            web::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(audit_log::record))
                .app_data(web::Data::new(state))
                .app_data(json)
                .app_data(path)
                .app_data(query)
                .configure(routes::configure)
                .default_service(web::to(routes::not_found)),
        );
    }
}
