//! Dynamic Client Registration (RFC 7591), `POST /t/{tenant}/oauth/register`.
//!
//! Kept for clients that predate Client ID Metadata Documents (DCR is deprecated in MCP
//! `2026-07-28`). Open to anyone, like the login page it leads to: a registered client can do
//! nothing until a member consents. Clients asking for `client_secret_*` get a secret, shown once.
//!
//! Being open, it is bounded: an address (an IPv6 /64, see [`AddressLimiter`]) may register
//! [`REGISTRATIONS_PER_MINUTE`] clients a minute on each node, and a tenant holds at most
//! [`MAX_DYNAMIC_CLIENTS`]. At that cap the clients no member consented to within
//! [`UNUSED_CLIENT_HOURS`] of their registration are removed first; past it, registration is
//! refused with 429 until some are.

use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::clients::Registration;
use super::errors::OAuthError;
use crate::ControlPlaneState;
#[cfg(doc)]
use crate::limits::AddressLimiter;

/// Registrations one address may make per minute on a node (a burst of as many, then refilled
/// evenly).
pub const REGISTRATIONS_PER_MINUTE: u32 = 20;
/// Dynamically registered clients one tenant may hold.
pub(crate) const MAX_DYNAMIC_CLIENTS: i64 = 10_000;
/// A dynamic client that no member consented to within this many hours is removed when its
/// tenant is at [`MAX_DYNAMIC_CLIENTS`].
pub(crate) const UNUSED_CLIENT_HOURS: i64 = 24;

/// The registration request; unknown metadata is accepted and ignored (RFC 7591 §2).
#[derive(Debug, Deserialize)]
pub(crate) struct RegistrationRequest {
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
}

/// `POST /t/{tenant}/oauth/register`.
pub(crate) async fn register(
    state: web::Data<ControlPlaneState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    if let Some(peer) = super::peer_ip(&req, &state)
        && let Err(wait) = state.registrations.admit(peer, Instant::now())
    {
        tracing::info!(tenant = %path, "dynamic registration refused: too many from one address");
        return Err(OAuthError::too_many(
            wait.as_secs().saturating_add(1),
            format!("too many registrations from this address (at most {REGISTRATIONS_PER_MINUTE} a minute)"),
        ));
    }
    let request: RegistrationRequest = serde_json::from_slice(&body).map_err(|e| {
        OAuthError::invalid_client_metadata(format!("the body must be a JSON object of client metadata: {e}"))
    })?;
    if request.response_types.as_ref().is_some_and(|types| types.iter().any(|t| t != "code")) {
        return Err(OAuthError::invalid_client_metadata("response_types must be [\"code\"]"));
    }
    if let Some(scope) = request.scope.as_deref() {
        berth_auth::oauth::parse_requested_scope(Some(scope)).map_err(OAuthError::invalid_client_metadata)?;
    }
    let registration = Registration::check(
        request.client_name.as_deref(),
        request.redirect_uris.as_deref(),
        request.token_endpoint_auth_method.as_deref(),
        request.grant_types.as_deref(),
    )
    .map_err(|(redirect, why)| {
        if redirect { OAuthError::invalid_redirect_uri(why) } else { OAuthError::invalid_client_metadata(why) }
    })?;
    let mut conn = state.pool.acquire().await.map_err(|e| OAuthError::unavailable(&e))?;
    let (tenant, scope) = super::tenant(&mut conn, &path).await?;
    if !tenant.enabled {
        return Err(OAuthError::invalid_client_metadata("the organization is disabled"));
    }
    if berth_storage::oauth::count_dynamic_clients(&mut conn, &scope).await? >= MAX_DYNAMIC_CLIENTS {
        let before = chrono::Utc::now() - chrono::Duration::hours(UNUSED_CLIENT_HOURS);
        let removed = berth_storage::oauth::delete_unused_dynamic_clients(&mut conn, &scope, before).await?;
        tracing::info!(tenant = %tenant.slug, removed, "removed dynamic clients no member consented to");
        if berth_storage::oauth::count_dynamic_clients(&mut conn, &scope).await? >= MAX_DYNAMIC_CLIENTS {
            return Err(OAuthError::too_many(
                3600,
                format!(
                    "the organization holds {MAX_DYNAMIC_CLIENTS} dynamically registered clients, the most it may; \
                     clients no member consented to are removed {UNUSED_CLIENT_HOURS} hours after registering"
                ),
            ));
        }
    }
    let (client, secret) = registration.register(&mut conn, &scope, "dynamic").await?;
    tracing::info!(tenant = %tenant.slug, client_id = %client.client_id, "client registered dynamically");
    let mut body = json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at.timestamp(),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "scope": "mcp",
    });
    if let (Some(secret), Some(object)) = (secret, body.as_object_mut()) {
        object.insert("client_secret".into(), json!(secret));
        object.insert("client_secret_expires_at".into(), json!(0));
    }
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body))
}
