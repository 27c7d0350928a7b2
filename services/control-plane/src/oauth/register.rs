//! Dynamic Client Registration (RFC 7591), `POST /t/{tenant}/oauth/register`.
//!
//! Kept for clients that predate Client ID Metadata Documents (DCR is deprecated in MCP
//! `2026-07-28`). Open to anyone, like the login page it leads to: a registered client can do
//! nothing until a member consents. Clients asking for `client_secret_*` get a secret, shown once.
//!
//! Being open, it is bounded: an address (an IPv6 /64) may register
//! [`REGISTRATIONS_PER_MINUTE`] clients a minute on each node, and a tenant holds at most
//! [`MAX_DYNAMIC_CLIENTS`]. At that cap the clients no member consented to within
//! [`UNUSED_CLIENT_HOURS`] of their registration are removed first; past it, registration is
//! refused with 429 until some are.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use berth_quotas::TokenBucket;
use serde::Deserialize;
use serde_json::json;

use super::clients::Registration;
use super::errors::OAuthError;
use crate::ControlPlaneState;

/// Registrations one address may make per minute on a node (a burst of as many, then refilled
/// evenly).
pub(crate) const REGISTRATIONS_PER_MINUTE: u32 = 20;
/// Dynamically registered clients one tenant may hold.
pub(crate) const MAX_DYNAMIC_CLIENTS: i64 = 10_000;
/// A dynamic client that no member consented to within this many hours is removed when its
/// tenant is at [`MAX_DYNAMIC_CLIENTS`].
pub(crate) const UNUSED_CLIENT_HOURS: i64 = 24;
/// Addresses tracked at once; past it, those back to a full allowance are forgotten, and new
/// addresses wait while none is.
const TRACKED_ADDRESSES: usize = 10_000;

/// Per-address allowance of dynamic registrations on this node.
#[derive(Debug)]
pub struct RegistrationLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl Default for RegistrationLimiter {
    fn default() -> Self {
        Self::new(REGISTRATIONS_PER_MINUTE)
    }
}

impl RegistrationLimiter {
    /// `per_minute` registrations per address.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one registration from `address`'s allowance, or says how long until it has one.
    pub(crate) fn admit(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = limit_key(address);
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !buckets.contains_key(&key) && buckets.len() >= TRACKED_ADDRESSES {
            buckets.retain(|_, bucket| bucket.check(0, now).is_ok() && !bucket.until_full().is_zero());
            if buckets.len() >= TRACKED_ADDRESSES {
                return Err(Duration::from_secs(60));
            }
        }
        let bucket = buckets.entry(key).or_insert_with(|| TokenBucket::new(self.per_minute, now));
        bucket.check(1, now)?;
        bucket.take(1);
        Ok(())
    }
}

/// The key an address is limited under: IPv4 as is (also when mapped into IPv6), IPv6 by its
/// /64, which one host usually holds whole.
fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

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
    // The connection's own address: forwarding headers are the client's to forge.
    if let Some(peer) = req.peer_addr()
        && let Err(wait) = state.registrations.admit(peer.ip(), Instant::now())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_allowance_then_waits_and_refills() {
        let limiter = RegistrationLimiter::new(3);
        let now = Instant::now();
        let (one, two): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert!(limiter.admit(one, now).is_ok());
        }
        let wait = limiter.admit(one, now).unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limiter.admit(two, now).is_ok(), "another address has its own allowance");
        assert!(limiter.admit(one, now + Duration::from_secs(20)).is_ok(), "refilled");
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(limit_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn tracked_addresses_stay_bounded() {
        let limiter = RegistrationLimiter::new(1);
        let now = Instant::now();
        for i in 0..TRACKED_ADDRESSES {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + u32::try_from(i).unwrap()));
            assert!(limiter.admit(address, now).is_ok());
        }
        let newcomer: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(limiter.admit(newcomer, now).is_err(), "every tracked address is still limited");
        assert!(limiter.admit(newcomer, now + Duration::from_secs(61)).is_ok(), "full buckets are forgotten");
        assert!(limiter.buckets.lock().unwrap().len() <= TRACKED_ADDRESSES);
    }
}
