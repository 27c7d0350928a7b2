//! The authorization endpoint: `GET /t/{tenant}/oauth/authorize` shows the login page (no
//! session yet) or the consent page; `POST /t/{tenant}/oauth/login` signs a member in;
//! `POST /t/{tenant}/oauth/authorize` records the member's decision.
//!
//! Every request is validated in full each time, the consent form included, so a tampered
//! hidden field (another redirect URI, no PKCE) is refused exactly like the original request
//! would be. A bad `client_id` or `redirect_uri` is answered with a page, never a redirect
//! (OAuth 2.1 §4.1.2.1), so the endpoint cannot be used as an open redirector.
//!
//! CSRF: the login form carries a double-submit token (cookie and field); the consent form
//! carries a token bound to the login session in the database. Cookies are `HttpOnly`,
//! `SameSite=Lax`, per tenant, and `Secure` with the `__Host-` prefix when the public URL is
//! HTTPS (browsers refuse both over plain HTTP, as on a loopback development URL).

use std::net::IpAddr;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieAge};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use berth_auth::oauth::{
    CODE_TTL_SECS, GRANT_TTL_SECS, SESSION_TTL_SECS, Secret, Urls, is_loopback_redirect, is_s256_challenge,
    parse_requested_scope, redirect_host, scope_string, secret_hash, secrets_equal,
};
use berth_core::{Scope, Tenant, TenantScope};
use berth_storage::PgConnection;
use berth_storage::oauth::{self as store, LoginSession, NewCode, NewGrant};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use super::cimd::DocumentRefused;
use super::clients::{self, Client, FindError};
use super::pages;
use crate::ControlPlaneState;

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Params {
    #[serde(skip_serializing_if = "Option::is_none")]
    response_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_challenge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_challenge_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
}

/// A request that passed every check.
#[derive(Debug)]
struct Valid {
    client: Client,
    redirect_uri: String,
    state: Option<String>,
    scopes: Vec<Scope>,
    resource: String,
    code_challenge: String,
    issuer: String,
}

/// How a request is refused.
enum Refusal {
    /// A page; the browser stays here.
    Page(StatusCode, &'static str, String),
    /// An error sent back to the client's (verified) redirect URI.
    Redirect { uri: String, error: &'static str, description: String, state: Option<String>, issuer: String },
}

impl Refusal {
    fn respond(self, redirect_status: StatusCode) -> HttpResponse {
        match self {
            Refusal::Page(status, title, detail) => pages::error(status, title, &detail),
            Refusal::Redirect { uri, error, description, state, issuer } => {
                let mut pairs = vec![("error", error), ("error_description", description.as_str())];
                if let Some(state) = &state {
                    pairs.push(("state", state));
                }
                pairs.push(("iss", &issuer));
                redirect(redirect_status, &uri, &pairs)
            }
        }
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> Refusal {
    tracing::error!(error.message = %e, "authorization endpoint failed");
    Refusal::Page(StatusCode::SERVICE_UNAVAILABLE, "Try again later", "The service is temporarily unavailable.".into())
}

/// A redirect to `uri` with `pairs` added to its query.
fn redirect(status: StatusCode, uri: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let Ok(mut url) = url::Url::parse(uri) else {
        return pages::error(StatusCode::BAD_REQUEST, "Invalid redirect URI", "The client's redirect URI is invalid.");
    };
    url.query_pairs_mut().extend_pairs(pairs);
    pages::secure(HttpResponse::build(status)).insert_header((header::LOCATION, url.as_str())).finish()
}

/// Checks the request in the order OAuth prescribes: client and redirect URI first (failures
/// stay on a page), then everything else (failures go back to the client).
async fn validate(
    state: &ControlPlaneState,
    conn: &mut PgConnection,
    tenant: &Tenant,
    scope: &TenantScope,
    params: &Params,
    from: Option<IpAddr>,
) -> Result<Valid, Refusal> {
    let page = |title: &'static str, detail: &str| Refusal::Page(StatusCode::BAD_REQUEST, title, detail.to_owned());
    if !tenant.enabled {
        return Err(Refusal::Page(StatusCode::FORBIDDEN, "Unavailable", "This organization is disabled.".into()));
    }
    let client_id = params.client_id.as_deref().ok_or_else(|| page("Invalid request", "client_id is missing."))?;
    let client = match clients::find(conn, scope, &state.client_documents, client_id, from).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(page("Unknown client", "No client with this client_id is registered here.")),
        Err(FindError::Document(e @ DocumentRefused::TooMany(_))) => {
            return Err(Refusal::Page(StatusCode::TOO_MANY_REQUESTS, "Too many requests", format!("{e}.")));
        }
        // A refused metadata document stays on a page too: its redirect URIs are not trusted.
        Err(FindError::Document(e)) => return Err(page("Invalid client", &format!("invalid_client: {e}."))),
        Err(FindError::Storage(e)) => return Err(unavailable(&e)),
    };
    let redirect_uri = client
        .redirect_uri(params.redirect_uri.as_deref())
        .ok_or_else(|| page("Invalid redirect URI", "The redirect_uri is not registered for this client."))?
        .to_owned();
    let urls = Urls::new(&state.public_url);
    let issuer = urls.issuer(tenant.slug.as_str());
    let back = |error: &'static str, description: &str| Refusal::Redirect {
        uri: redirect_uri.clone(),
        error,
        description: description.to_owned(),
        state: params.state.clone(),
        issuer: issuer.clone(),
    };
    if params.response_type.as_deref() != Some("code") {
        return Err(back("unsupported_response_type", "response_type must be code"));
    }
    let Some(code_challenge) = params.code_challenge.as_deref() else {
        return Err(back("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256"));
    };
    if params.code_challenge_method.as_deref() != Some("S256") {
        return Err(back("invalid_request", "code_challenge_method must be S256 (plain is not supported)"));
    }
    if !is_s256_challenge(code_challenge) {
        return Err(back("invalid_request", "code_challenge must be 43 base64url characters"));
    }
    let scopes = parse_requested_scope(params.scope.as_deref()).map_err(|why| back("invalid_scope", &why))?;
    let Some(resource) = params.resource.as_deref() else {
        return Err(back("invalid_target", "resource is required: the URL of the MCP server (RFC 8707)"));
    };
    let not_ours = || back("invalid_target", "resource is not an MCP server of this organization");
    let (resource_tenant, server) = urls.parse_resource(resource).ok_or_else(not_ours)?;
    if resource_tenant != tenant.slug {
        return Err(not_ours());
    }
    match berth_storage::servers::get(conn, scope, &server).await {
        Ok(_) => {}
        Err(berth_storage::Error::NotFound(_)) => return Err(not_ours()),
        Err(e) => return Err(unavailable(&e)),
    }
    Ok(Valid {
        client,
        redirect_uri,
        state: params.state.clone(),
        scopes,
        resource: urls.resource(tenant.slug.as_str(), server.as_str()),
        code_challenge: code_challenge.to_owned(),
        issuer,
    })
}

fn https(state: &ControlPlaneState) -> bool {
    state.public_url.scheme() == "https"
}

fn cookie_name(state: &ControlPlaneState, kind: &str, tenant: &str) -> String {
    let prefix = if https(state) { "__Host-" } else { "" };
    format!("{prefix}berth-{kind}-{tenant}")
}

fn cookie(state: &ControlPlaneState, name: String, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(https(state))
        .same_site(SameSite::Lax)
        .max_age(CookieAge::seconds(max_age_secs))
        .finish()
}

async fn session(
    req: &HttpRequest,
    state: &ControlPlaneState,
    conn: &mut PgConnection,
    scope: &TenantScope,
) -> Result<Option<LoginSession>, Refusal> {
    let Some(cookie) = req.cookie(&cookie_name(state, "session", scope.slug().as_str())) else { return Ok(None) };
    store::find_session(conn, scope, &secret_hash(cookie.value())).await.map_err(|e| unavailable(&e))
}

fn login_page(
    state: &ControlPlaneState,
    tenant: &Tenant,
    valid: &Valid,
    params: &Params,
    email: &str,
    failed: bool,
) -> HttpResponse {
    let csrf = Secret::Csrf.generate();
    let request = serde_urlencoded::to_string(params).unwrap_or_default();
    let action = format!("/t/{}/oauth/login", tenant.slug);
    let html = pages::login(&pages::Login {
        tenant_name: &tenant.name,
        action: &action,
        csrf: &csrf,
        request: &request,
        client_name: &client_label(&valid.client),
        email,
        failed,
    });
    let status = if failed { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    pages::secure(HttpResponse::build(status))
        .cookie(cookie(state, cookie_name(state, "login-csrf", tenant.slug.as_str()), csrf, 3600))
        .body(html)
}

/// The client's name as the login page shows it: a metadata document client's name is
/// whatever its publisher wrote, so the host publishing it follows.
fn client_label(client: &Client) -> String {
    match &client.document {
        Some(document) => format!("{} ({})", client.name, document.host),
        None => client.name.clone(),
    }
}

fn consent_page(tenant: &Tenant, valid: &Valid, params: &Params, session: &LoginSession) -> HttpResponse {
    let scope = scope_string(&valid.scopes);
    let mut fields: Vec<(&'static str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &valid.client.client_id),
        ("redirect_uri", &valid.redirect_uri),
        ("code_challenge", &valid.code_challenge),
        ("code_challenge_method", "S256"),
        ("resource", &valid.resource),
        ("scope", &scope),
    ];
    if let Some(state) = params.state.as_deref() {
        fields.push(("state", state));
    }
    let action = format!("/t/{}/oauth/authorize", tenant.slug);
    let host = redirect_host(&valid.redirect_uri);
    let member = if session.member.display_name.is_empty() {
        session.member.email.clone()
    } else {
        format!("{} <{}>", session.member.display_name, session.member.email)
    };
    let html = pages::consent(&pages::Consent {
        tenant_name: &tenant.name,
        action: &action,
        csrf: &session.csrf,
        member: &member,
        client_name: &valid.client.name,
        client_id: &valid.client.client_id,
        redirect_uri: &valid.redirect_uri,
        redirect_host: &host,
        loopback: is_loopback_redirect(&valid.redirect_uri),
        document_host: valid.client.document.as_ref().map(|d| d.host.as_str()),
        localhost_only: valid.client.document.as_ref().is_some_and(|d| d.localhost_only),
        resource: &valid.resource,
        scope: &scope,
        fields: &fields,
    });
    pages::secure(HttpResponse::Ok()).body(html)
}

/// `GET /t/{tenant}/oauth/authorize`.
pub(crate) async fn show(
    req: HttpRequest,
    state: web::Data<ControlPlaneState>,
    path: web::Path<String>,
) -> HttpResponse {
    match show_inner(&req, &state, &path).await {
        Ok(response) => response,
        Err(refusal) => refusal.respond(StatusCode::FOUND),
    }
}

async fn begin(
    state: &ControlPlaneState,
    slug: &str,
) -> Result<(berth_storage::PoolConnection, Tenant, TenantScope), Refusal> {
    let mut conn = state.pool.acquire().await.map_err(|e| unavailable(&e))?;
    let (tenant, scope) = super::tenant(&mut conn, slug).await.map_err(|_| {
        Refusal::Page(StatusCode::NOT_FOUND, "Unknown organization", "There is no organization at this address.".into())
    })?;
    Ok((conn, tenant, scope))
}

async fn show_inner(req: &HttpRequest, state: &ControlPlaneState, slug: &str) -> Result<HttpResponse, Refusal> {
    let params: Params = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| Refusal::Page(StatusCode::BAD_REQUEST, "Invalid request", e.to_string()))?;
    let (mut conn, tenant, scope) = begin(state, slug).await?;
    let valid = validate(state, &mut conn, &tenant, &scope, &params, super::peer_ip(req, state)).await?;
    let session = session(req, state, &mut conn, &scope).await?;
    let back = |error: &'static str, description: &str| Refusal::Redirect {
        uri: valid.redirect_uri.clone(),
        error,
        description: description.to_owned(),
        state: valid.state.clone(),
        issuer: valid.issuer.clone(),
    };
    match (session, params.prompt.as_deref()) {
        (None, Some("none")) => Err(back("login_required", "the member is not signed in")),
        (Some(_), Some("none")) => Err(back("consent_required", "the member must approve this client")),
        (Some(session), prompt) if prompt != Some("login") => Ok(consent_page(&tenant, &valid, &params, &session)),
        _ => Ok(login_page(state, &tenant, &valid, &params, "", false)),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    csrf: String,
    request: String,
    email: String,
    password: String,
}

/// `POST /t/{tenant}/oauth/login`: checks the password and starts a login session.
pub(crate) async fn login(
    req: HttpRequest,
    state: web::Data<ControlPlaneState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    match login_inner(&req, &state, &path, &body).await {
        Ok(response) => response,
        Err(refusal) => refusal.respond(StatusCode::SEE_OTHER),
    }
}

async fn login_inner(
    req: &HttpRequest,
    state: &ControlPlaneState,
    slug: &str,
    body: &[u8],
) -> Result<HttpResponse, Refusal> {
    let form: LoginForm =
        super::form(req, body).map_err(|e| Refusal::Page(StatusCode::BAD_REQUEST, "Invalid request", e))?;
    let (mut conn, tenant, scope) = begin(state, slug).await?;
    let expected = req.cookie(&cookie_name(state, "login-csrf", tenant.slug.as_str()));
    if !expected.is_some_and(|c| secrets_equal(c.value(), &form.csrf)) {
        return Err(Refusal::Page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "The sign-in form expired or did not come from this site. Start again from your application.".into(),
        ));
    }
    let params: Params = serde_urlencoded::from_str(&form.request)
        .map_err(|e| Refusal::Page(StatusCode::BAD_REQUEST, "Invalid request", e.to_string()))?;
    let valid = validate(state, &mut conn, &tenant, &scope, &params, super::peer_ip(req, state)).await?;
    let email = form.email.trim().to_lowercase();
    let found = berth_storage::members::find_for_login(&mut conn, &scope, &email).await.map_err(|e| unavailable(&e))?;
    let (member, stored) = match found {
        Some((member, hash)) => (Some(member), hash),
        None => (None, None),
    };
    let password = form.password;
    let matches = web::block(move || berth_auth::password::verify_password(&password, stored.as_deref()))
        .await
        .map_err(|e| unavailable(&e))?;
    let Some(member) = member.filter(|_| matches) else {
        tracing::info!(tenant = %tenant.slug, "sign-in failed");
        return Ok(login_page(state, &tenant, &valid, &params, &email, true));
    };
    let session_id = Secret::Session.generate();
    let expires_at = Utc::now() + Duration::seconds(SESSION_TTL_SECS);
    store::insert_session(
        &mut conn,
        &scope,
        &secret_hash(&session_id),
        member.id,
        &Secret::Csrf.generate(),
        expires_at,
    )
    .await
    .map_err(|e| unavailable(&e))?;
    tracing::info!(tenant = %tenant.slug, member_id = %member.id, "member signed in");
    let back_to =
        format!("/t/{}/oauth/authorize?{}", tenant.slug, serde_urlencoded::to_string(&params).unwrap_or_default());
    let mut expired_csrf = cookie(state, cookie_name(state, "login-csrf", tenant.slug.as_str()), String::new(), 0);
    expired_csrf.make_removal();
    Ok(pages::secure(HttpResponse::SeeOther())
        .cookie(cookie(state, cookie_name(state, "session", tenant.slug.as_str()), session_id, SESSION_TTL_SECS))
        .cookie(expired_csrf)
        .insert_header((header::LOCATION, back_to))
        .finish())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ConsentForm {
    csrf: String,
    decision: String,
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    resource: Option<String>,
}

/// `POST /t/{tenant}/oauth/authorize`: the member allows or denies the client.
pub(crate) async fn decide(
    req: HttpRequest,
    state: web::Data<ControlPlaneState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    match decide_inner(&req, &state, &path, &body).await {
        Ok(response) => response,
        Err(refusal) => refusal.respond(StatusCode::SEE_OTHER),
    }
}

async fn decide_inner(
    req: &HttpRequest,
    state: &ControlPlaneState,
    slug: &str,
    body: &[u8],
) -> Result<HttpResponse, Refusal> {
    let form: ConsentForm =
        super::form(req, body).map_err(|e| Refusal::Page(StatusCode::BAD_REQUEST, "Invalid request", e))?;
    let (mut conn, tenant, scope) = begin(state, slug).await?;
    let refused = |detail: &str| Refusal::Page(StatusCode::FORBIDDEN, "Request refused", detail.to_owned());
    let session = session(req, state, &mut conn, &scope)
        .await?
        .ok_or_else(|| refused("Your sign-in expired. Start again from your application."))?;
    if !secrets_equal(&session.csrf, &form.csrf) {
        return Err(refused("This form did not come from this site (CSRF check failed)."));
    }
    let params = Params {
        response_type: form.response_type,
        client_id: form.client_id,
        redirect_uri: form.redirect_uri,
        state: form.state,
        scope: form.scope,
        code_challenge: form.code_challenge,
        code_challenge_method: form.code_challenge_method,
        resource: form.resource,
        prompt: None,
    };
    let valid = validate(state, &mut conn, &tenant, &scope, &params, super::peer_ip(req, state)).await?;
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    match form.decision.as_str() {
        "approve" => {}
        "deny" => {
            tracing::info!(tenant = %tenant.slug, client_id = %valid.client.client_id, "consent denied");
            pairs.extend([("error", "access_denied"), ("error_description", "the member denied the request")]);
            if let Some(state) = &valid.state {
                pairs.push(("state", state));
            }
            pairs.push(("iss", &valid.issuer));
            return Ok(redirect(StatusCode::SEE_OTHER, &valid.redirect_uri, &pairs));
        }
        _ => return Err(Refusal::Page(StatusCode::BAD_REQUEST, "Invalid request", "Unknown decision.".into())),
    }
    let code = Secret::Code.generate();
    let now = Utc::now();
    let grant = NewGrant {
        client_id: &valid.client.client_id,
        member_id: session.member.id,
        resource: &valid.resource,
        scopes: &valid.scopes,
        expires_at: now + Duration::seconds(GRANT_TTL_SECS),
    };
    let hash = secret_hash(&code);
    let new_code = NewCode {
        code_hash: &hash,
        redirect_uri: &valid.redirect_uri,
        code_challenge: &valid.code_challenge,
        expires_at: now + Duration::seconds(CODE_TTL_SECS),
    };
    drop(conn);
    let mut tx = state.pool.begin().await.map_err(|e| unavailable(&e))?;
    let grant_id =
        store::insert_grant_with_code(&mut tx, &scope, &grant, &new_code).await.map_err(|e| unavailable(&e))?;
    tx.commit().await.map_err(|e| unavailable(&e))?;
    tracing::info!(tenant = %tenant.slug, client_id = %valid.client.client_id, grant_id = %grant_id, "consent given");
    pairs.push(("code", &code));
    if let Some(state) = &valid.state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", &valid.issuer));
    Ok(redirect(StatusCode::SEE_OTHER, &valid.redirect_uri, &pairs))
}
