//! Who is calling the MCP endpoint.
//!
//! Credentials arrive as `Authorization: Bearer ...` and are one of:
//! - an API key (`berth_...`), checked against the cached catalog;
//! - an access token of the tenant's own authorization server (a JWT `at+jwt`, EdDSA, issuer
//!   `{public_url}/t/{tenant}`), whose audience must be exactly this server's URL;
//! - an access token of the external OpenID Connect issuer the tenant trusts, whose email claim
//!   must name a member of the tenant.
//!
//! A request without credentials is anonymous, which only a `public` server accepts. Session
//! ids are never credentials: every request is verified.
//!
//! Verified tokens are cached until they expire, so a repeat costs two hash lookups; what can
//! change under a valid signature (the grant was revoked, the member removed) is re-read at
//! most one second later, which bounds how long revocation takes to apply on this node.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header;
use berth_auth::cache::{TokenCache, TtlCache};
use berth_auth::jwt::{self, ACCESS_TOKEN_TYPE, AccessClaims, Expected, KeySet};
use berth_auth::oauth::{RETIRED_KEY_RETENTION_SECS, Urls};
use berth_auth::{ParsedKey, TokenError};
use berth_core::{GrantId, MemberId, Principal, Scope, Slug, TenantId, TenantScope};
use berth_storage::PgPool;
use berth_storage::oauth::IdentityProvider;
use serde_json::{Map, Value};

use crate::catalog::{Catalog, Unavailable};

/// Why a presented credential was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Malformed, unknown, revoked or expired (HTTP 401).
    Invalid(&'static str),
    /// The key's tenant is disabled (HTTP 403).
    TenantDisabled,
    /// Credentials could not be checked (HTTP 503).
    Unavailable,
}

impl From<Unavailable> for Refused {
    fn from(_: Unavailable) -> Self {
        Refused::Unavailable
    }
}

/// The verified principal, or `None` for an anonymous request.
///
/// `tenant` and `server` are the slugs of the requested URL: a token is only good for the
/// server it was issued for.
pub async fn identify(
    req: &HttpRequest,
    catalog: &Catalog,
    tokens: &Tokens,
    tenant: &str,
    server: &str,
) -> Result<Option<Principal>, Refused> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else { return Ok(None) };
    let text = value.to_str().map_err(|_| Refused::Invalid("invalid Authorization header"))?;
    let token = berth_auth::bearer_token(text)
        .ok_or(Refused::Invalid("the Authorization header must use the Bearer scheme"))?;
    if let Some(parsed) = ParsedKey::parse(token) {
        return api_key(catalog, &parsed).await.map(Some);
    }
    if jwt::looks_like_jwt(token) {
        return tokens.verify(token, tenant, server).await.map(Some);
    }
    Err(Refused::Invalid("invalid token"))
}

async fn api_key(catalog: &Catalog, parsed: &ParsedKey<'_>) -> Result<Principal, Refused> {
    let stored = catalog.key(parsed.prefix()).await?.ok_or(Refused::Invalid("invalid token"))?;
    match berth_auth::verify_api_key(parsed, (*stored).clone(), chrono::Utc::now()) {
        Ok(principal) => {
            catalog.touch_key(&stored);
            Ok(principal)
        }
        Err(berth_auth::Error::TenantDisabled) => Err(Refused::TenantDisabled),
        Err(berth_auth::Error::Revoked) => Err(Refused::Invalid("the API key was revoked")),
        Err(berth_auth::Error::Expired) => Err(Refused::Invalid("the API key expired")),
        Err(_) => Err(Refused::Invalid("invalid token")),
    }
}

/// What must still hold for a verified token to be accepted; re-read at most every second.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Standing {
    /// The grant of one of Berth's tokens is not revoked or expired.
    Grant(TenantId, Slug, GrantId),
    /// The member an external token maps to is still a member.
    Member(TenantId, Slug, MemberId),
}

/// A token whose signature and claims were verified.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The caller.
    pub principal: Principal,
    /// The one server URL it is good for.
    pub audience: String,
    /// What must still hold.
    pub standing: Standing,
}

/// A tenant's verification material, as cached.
#[derive(Debug)]
struct Issuer {
    tenant: TenantScope,
    keys: KeySet,
    provider: Option<IdentityProvider>,
}

/// How long verification material and standings are trusted.
pub const TTL: Duration = Duration::from_secs(1);
/// A token signed by an unknown key of the tenant reloads its keys at most this often.
const KEY_RELOAD_MIN: Duration = Duration::from_millis(50);
/// How long an external issuer's JWKS is kept; an unknown `kid` refreshes it sooner.
const EXTERNAL_KEYS_TTL: Duration = Duration::from_secs(300);
/// An unknown `kid` refreshes an external JWKS at most this often.
const EXTERNAL_REFRESH_MIN: Duration = Duration::from_secs(10);
/// Clock skew allowed on external tokens (Berth's own share its clock).
const EXTERNAL_LEEWAY_SECS: u64 = 30;
/// Largest JWKS or discovery document read from an external issuer.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Verifies OAuth access tokens, with the caches that keep repeat checks under a microsecond.
pub struct Tokens {
    pool: PgPool,
    urls: Urls,
    verified: TokenCache<Arc<VerifiedToken>>,
    standings: TtlCache<Standing, bool>,
    issuers: TtlCache<Slug, Option<Arc<Issuer>>>,
    external_keys: TtlCache<String, Arc<KeySet>>,
    /// `None` when no HTTP client could be built (no TLS roots): external issuers are unavailable.
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("public_url", &self.urls.base()).finish_non_exhaustive()
    }
}

fn refused(e: TokenError) -> Refused {
    Refused::Invalid(match e {
        TokenError::Expired => "the token expired",
        TokenError::Audience => "the token was issued for another resource",
        TokenError::Issuer | TokenError::UnknownKey => "the token was not issued by this server's authorization server",
        TokenError::Algorithm => "the token's algorithm is not accepted",
        TokenError::Revoked => "the token was revoked",
        _ => "invalid token",
    })
}

fn unavailable(e: &dyn std::fmt::Display) -> Refused {
    tracing::warn!(error.message = %e, "token verification could not reach its data");
    Refused::Unavailable
}

impl Tokens {
    /// A verifier for the tokens of this deployment's tenants.
    pub fn new(pool: PgPool, public_url: &url::Url) -> Self {
        // reqwest's rustls needs a process-wide provider; a second install is a no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .inspect_err(
                |e| tracing::error!(error.message = %e, "no HTTP client: external identity providers are unavailable"),
            )
            .ok();
        Self {
            pool,
            urls: Urls::new(public_url),
            verified: TokenCache::new(100_000),
            standings: TtlCache::new(TTL, 100_000),
            issuers: TtlCache::new(TTL, 10_000),
            external_keys: TtlCache::new(EXTERNAL_KEYS_TTL, 1_000),
            http,
        }
    }

    /// The deployment's public URLs.
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// The issuer of the external identity provider the tenant trusts, if any.
    pub async fn external_issuer(&self, tenant: &Slug) -> Result<Option<String>, Refused> {
        Ok(self.issuer(tenant).await?.and_then(|i| i.provider.as_ref().map(|p| p.issuer.clone())))
    }

    /// Verifies `token` for the server `/t/{tenant}/{server}/mcp`.
    pub async fn verify(&self, token: &str, tenant: &str, server: &str) -> Result<Principal, Refused> {
        let now = chrono::Utc::now().timestamp();
        let audience = self.urls.resource(tenant, server);
        let verified = match self.verified.get(token, now) {
            Some(hit) => hit,
            None => {
                let (verified, expires_at) = self.verify_uncached(token, tenant, &audience, now).await?;
                let verified = Arc::new(verified);
                self.verified.insert(token, verified.clone(), expires_at, now);
                verified
            }
        };
        if verified.audience != audience {
            return Err(refused(TokenError::Audience));
        }
        self.check_standing(&verified.standing).await?;
        Ok(verified.principal.clone())
    }

    /// The cached part of [`Tokens::verify`] alone: a verified token for `audience` whose standing
    /// was confirmed within the last second (used by the B7 benchmark).
    pub fn verify_cached(&self, token: &str, audience: &str, now: i64) -> Option<Principal> {
        let hit = self.verified.get(token, now)?;
        (hit.audience == audience && self.standings.get(&hit.standing) == Some(true)).then(|| hit.principal.clone())
    }

    /// Seeds the caches with a verified token (used by the B7 benchmark).
    pub fn remember(&self, token: &str, verified: VerifiedToken, expires_at: i64) {
        self.standings.insert(verified.standing.clone(), true);
        self.verified.insert(token, Arc::new(verified), expires_at, chrono::Utc::now().timestamp());
    }

    async fn check_standing(&self, standing: &Standing) -> Result<(), Refused> {
        let good = match self.standings.get(standing) {
            Some(good) => good,
            None => {
                let mut conn = self.pool.acquire().await.map_err(|e| unavailable(&e))?;
                let good = match standing {
                    Standing::Grant(tenant, slug, grant) => {
                        let scope = TenantScope::from_verified_credentials(*tenant, slug.clone());
                        berth_storage::oauth::grant_is_active(&mut conn, &scope, *grant)
                            .await
                            .map_err(|e| unavailable(&e))?
                    }
                    Standing::Member(tenant, slug, member) => {
                        let scope = TenantScope::from_verified_credentials(*tenant, slug.clone());
                        match berth_storage::members::get(&mut conn, &scope, *member).await {
                            Ok(_) => true,
                            Err(berth_storage::Error::NotFound(_)) => false,
                            Err(e) => return Err(unavailable(&e)),
                        }
                    }
                };
                self.standings.insert(standing.clone(), good);
                good
            }
        };
        if good { Ok(()) } else { Err(refused(TokenError::Revoked)) }
    }

    async fn issuer(&self, tenant: &Slug) -> Result<Option<Arc<Issuer>>, Refused> {
        if let Some(hit) = self.issuers.get(tenant) {
            return Ok(hit);
        }
        let mut conn = self.pool.acquire().await.map_err(|e| unavailable(&e))?;
        let retired_after = chrono::Utc::now() - chrono::Duration::seconds(RETIRED_KEY_RETENTION_SECS);
        let found = berth_storage::oauth::issuer_for_verification(&mut conn, tenant, retired_after)
            .await
            .map_err(|e| unavailable(&e))?
            .map(|i| {
                Arc::new(Issuer {
                    // The signature check that follows is what makes this scope verified.
                    tenant: TenantScope::from_verified_credentials(i.tenant.id, i.tenant.slug),
                    keys: KeySet::from_jwks(&i.keys),
                    provider: i.identity_provider,
                })
            });
        self.issuers.insert(tenant.clone(), found.clone());
        Ok(found)
    }

    /// The tenant's material again, unless it was read in the last [`KEY_RELOAD_MIN`] (so tokens
    /// with made-up key ids cannot turn every request into a query).
    async fn reload_issuer(&self, tenant: &Slug) -> Result<Option<Arc<Issuer>>, Refused> {
        if let Some(recent) = self.issuers.get_within(tenant, KEY_RELOAD_MIN) {
            return Ok(recent);
        }
        self.issuers.remove(tenant);
        self.issuer(tenant).await
    }

    async fn verify_uncached(
        &self,
        token: &str,
        tenant: &str,
        audience: &str,
        now: i64,
    ) -> Result<(VerifiedToken, i64), Refused> {
        let slug = Slug::parse("tenant", tenant).map_err(|_| refused(TokenError::Audience))?;
        let issuer = self.issuer(&slug).await?.ok_or(refused(TokenError::Issuer))?;
        let own_issuer = self.urls.issuer(tenant);
        let claimed = jwt::peek_issuer(token).ok_or(Refused::Invalid("invalid token"))?;
        if claimed == own_issuer {
            let verified = match own_token(token, &issuer, &own_issuer, audience) {
                // A key created or rotated since the tenant's keys were cached.
                Err(TokenError::UnknownKey) => match self.reload_issuer(&slug).await? {
                    Some(fresh) => own_token(token, &fresh, &own_issuer, audience),
                    None => Err(TokenError::Issuer),
                },
                other => other,
            };
            return verified.map_err(refused);
        }
        match &issuer.provider {
            Some(provider) if provider.issuer == claimed => {
                self.external_token(token, &issuer, provider, audience, now).await
            }
            _ => Err(refused(TokenError::Issuer)),
        }
    }

    async fn external_token(
        &self,
        token: &str,
        issuer: &Issuer,
        provider: &IdentityProvider,
        audience: &str,
        now: i64,
    ) -> Result<(VerifiedToken, i64), Refused> {
        let expected = Expected {
            issuer: &provider.issuer,
            audience: Some(provider.audience.as_deref().unwrap_or(audience)),
            typ: None,
            leeway_secs: EXTERNAL_LEEWAY_SECS,
        };
        let keys = self.external_keys(provider, false).await?;
        let claims: Map<String, Value> = match jwt::verify(token, &keys, &expected) {
            Err(TokenError::UnknownKey) => {
                let keys = self.external_keys(provider, true).await?;
                jwt::verify(token, &keys, &expected).map_err(refused)?
            }
            other => other.map_err(refused)?,
        };
        if claims.get("email_verified").and_then(Value::as_bool) == Some(false) {
            return Err(Refused::Invalid("the token's email address is not verified"));
        }
        let email = claims
            .get(&provider.email_claim)
            .and_then(Value::as_str)
            .map(str::to_lowercase)
            .ok_or(Refused::Invalid("the token does not name a member"))?;
        let mut conn = self.pool.acquire().await.map_err(|e| unavailable(&e))?;
        let member = berth_storage::members::find_by_email(&mut conn, &issuer.tenant, &email)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or(Refused::Invalid("the token does not name a member of this tenant"))?;
        let client_id =
            ["azp", "client_id"].iter().find_map(|c| claims.get(*c).and_then(Value::as_str)).unwrap_or("external");
        let expires_at = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
        let verified = VerifiedToken {
            principal: Principal::Token {
                tenant: issuer.tenant.clone(),
                client_id: client_id.to_owned(),
                subject: member.id.to_string(),
                // Membership is the authorization: the tenant's identity provider decides who
                // is a member, Berth maps members to the `mcp` scope.
                scopes: vec![Scope::Mcp],
                audience: audience.to_owned(),
            },
            audience: audience.to_owned(),
            standing: Standing::Member(issuer.tenant.tenant_id(), issuer.tenant.slug().clone(), member.id),
        };
        Ok((verified, expires_at))
    }

    /// The external issuer's keys: from `jwks_uri`, or from its discovery document.
    async fn external_keys(&self, provider: &IdentityProvider, refresh: bool) -> Result<Arc<KeySet>, Refused> {
        let cache_key = provider.jwks_uri.clone().unwrap_or_else(|| provider.issuer.clone());
        let cached = if refresh {
            self.external_keys.get_within(&cache_key, EXTERNAL_REFRESH_MIN)
        } else {
            self.external_keys.get(&cache_key)
        };
        if let Some(keys) = cached {
            return Ok(keys);
        }
        let jwks_uri = match &provider.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let discovery = format!("{}/.well-known/openid-configuration", provider.issuer.trim_end_matches('/'));
                let document = self.fetch(&discovery).await?;
                if document.get("issuer").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
                    tracing::warn!(issuer = %provider.issuer, "discovery document names another issuer");
                    return Err(Refused::Unavailable);
                }
                document.get("jwks_uri").and_then(Value::as_str).ok_or(Refused::Unavailable)?.to_owned()
            }
        };
        let keys = Arc::new(KeySet::from_document(&self.fetch(&jwks_uri).await?));
        self.external_keys.insert(cache_key, keys.clone());
        Ok(keys)
    }

    async fn fetch(&self, url: &str) -> Result<Value, Refused> {
        let http = self.http.as_ref().ok_or(Refused::Unavailable)?;
        let response = http.get(url).send().await.map_err(|e| unavailable(&e))?;
        if !response.status().is_success() {
            return Err(unavailable(&format!("{url} answered {}", response.status())));
        }
        if response.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
            return Err(unavailable(&format!("{url} is too large")));
        }
        let bytes = response.bytes().await.map_err(|e| unavailable(&e))?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(unavailable(&format!("{url} is too large")));
        }
        serde_json::from_slice(&bytes).map_err(|e| unavailable(&e))
    }
}

/// Verifies one of Berth's own tokens against the tenant's published keys.
fn own_token(
    token: &str,
    issuer: &Issuer,
    own_issuer: &str,
    audience: &str,
) -> Result<(VerifiedToken, i64), TokenError> {
    let expected =
        Expected { issuer: own_issuer, audience: Some(audience), typ: Some(ACCESS_TOKEN_TYPE), leeway_secs: 0 };
    let claims: AccessClaims = jwt::verify(token, &issuer.keys, &expected)?;
    let grant: GrantId = claims.gid.parse().map_err(|_| TokenError::Claims)?;
    let scopes = claims.scope.split(' ').filter_map(|s| Scope::parse(s).ok()).collect();
    let verified = VerifiedToken {
        principal: Principal::Token {
            tenant: issuer.tenant.clone(),
            client_id: claims.client_id,
            subject: claims.sub,
            scopes,
            audience: claims.aud.clone(),
        },
        audience: claims.aud,
        standing: Standing::Grant(issuer.tenant.tenant_id(), issuer.tenant.slug().clone(), grant),
    };
    Ok((verified, claims.exp))
}
