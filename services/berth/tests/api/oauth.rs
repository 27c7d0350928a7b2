//! Each tenant's OAuth 2.1 authorization server and the data plane as its resource server:
//! discovery, login and consent, the token endpoint, revocation, and the attacks the issue lists.

use std::collections::BTreeMap;

use berth_auth::jwt::{ACCESS_TOKEN_TYPE, AccessClaims};
use berth_auth::oauth::pkce_challenge;
use berth_core::sealed::{self, SealKey};
use serde_json::{Value, json};

use crate::browser::{Browser, Page, form_body, query, sign_in_and_approve};
use crate::helpers::{As, Reply, TestApp};
use crate::mcp_client::McpApp;
use crate::members::{PASSWORD, add_member};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-pkce-verifier-that-is-long-enough-0123456789-abcdefghijklmnop";

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Two tenants with fixture servers (see `McpApp`), a member with a password in each, a second
/// private server `second` in acme, and a public client registered dynamically in acme.
struct OAuthApp {
    t: McpApp,
    client_id: String,
}

impl OAuthApp {
    async fn spawn() -> Self {
        Self::spawn_on(crate::helpers::test_settings()).await
    }

    async fn spawn_on(settings: berth::settings::Settings) -> Self {
        let t = McpApp::spawn_on(settings).await;
        add_member(&t.app, "acme", "ada@example.com", "owner", Some(PASSWORD)).await.assert_status(201);
        add_member(&t.app, "globex", "gus@example.com", "owner", Some(PASSWORD)).await.assert_status(201);
        t.app.create_server(As::Admin, "acme", "second", "wasm").await.assert_status(201);
        t.app.publish_wasm(As::Admin, "acme", "second", crate::helpers::component_bytes(8, 3)).await.assert_status(201);
        let client_id = register(
            &t.app,
            "acme",
            &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "Test client"}),
        )
        .await;
        Self { t, client_id }
    }

    fn app(&self) -> &TestApp {
        &self.t.app
    }

    fn resource(&self, tenant: &str, server: &str) -> String {
        self.t.url(tenant, server)
    }

    fn authorize_url(&self, tenant: &str, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.app().url(&format!("/t/{tenant}/oauth/authorize"))).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    }

    /// The standard authorization request of the test client for `resource`.
    fn request(&self, resource: &str) -> Vec<(&'static str, String)> {
        request_as(&self.client_id, resource)
    }

    /// Signs in at the login page the authorization request shows; returns the consent page.
    async fn sign_in(&self, browser: &mut Browser, tenant: &str, request: &[(&str, String)], email: &str) -> Page {
        let params: Vec<(&str, &str)> = request.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let login = browser.get(&self.authorize_url(tenant, &params)).await;
        assert_eq!(login.status, 200, "{}", login.text);
        assert!(login.text.contains("Sign in"), "{}", login.text);
        let mut form = login.hidden();
        form.extend(pairs(&[("email", email), ("password", PASSWORD)]));
        let signed_in = browser.post(&self.app().url(&format!("/t/{tenant}/oauth/login")), &form).await;
        assert_eq!(signed_in.status, 303, "{}", signed_in.text);
        let consent = browser.get(&self.app().url(&signed_in.location())).await;
        assert_eq!(consent.status, 200, "{}", consent.text);
        assert!(consent.text.contains("Allow access?"), "{}", consent.text);
        consent
    }

    /// Runs login and consent; returns the redirect's query.
    async fn consent(&self, tenant: &str, request: &[(&str, String)], email: &str) -> BTreeMap<String, String> {
        let params: Vec<(&str, &str)> = request.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let location = sign_in_and_approve(&self.authorize_url(tenant, &params), email, PASSWORD).await;
        assert!(location.starts_with(REDIRECT), "{location}");
        query(&location)
    }

    /// A code for acme's `server`, issued to the test client.
    async fn code(&self, server: &str) -> String {
        let back = self.consent("acme", &self.request(&self.resource("acme", server)), "ada@example.com").await;
        back["code"].clone()
    }

    async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> Reply {
        let request = self
            .app()
            .client
            .post(self.app().url(&format!("/t/{tenant}/oauth/token")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&pairs(form)));
        self.app().send(request).await
    }

    async fn exchange(&self, code: &str) -> Reply {
        self.token(
            "acme",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", &self.client_id),
            ],
        )
        .await
    }

    /// (access token, refresh token) for acme's `server`.
    async fn tokens(&self, server: &str) -> (String, String) {
        let reply = self.exchange(&self.code(server).await).await;
        reply.assert_status(200);
        (
            reply.body["access_token"].as_str().unwrap().to_owned(),
            reply.body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn refresh(&self, refresh_token: &str) -> Reply {
        self.token(
            "acme",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", &self.client_id)],
        )
        .await
    }

    /// `access` calls acme's fixture `add` tool successfully.
    async fn assert_adds(&self, access: &str) {
        let call = self
            .t
            .modern(
                &self.resource("acme", "fixture"),
                Some(access),
                json!(1),
                "tools/call",
                json!({"name": "add", "arguments": {"a": 2, "b": 3}}),
                json!({}),
            )
            .await;
        assert_eq!(call.status, 200, "{}", call.text);
        assert!(call.result()["content"][0]["text"].as_str().unwrap().contains('5'));
    }

    async fn mcp_status(&self, tenant: &str, server: &str, token: &str) -> crate::mcp_client::McpReply {
        self.t.post(&self.resource(tenant, server), Some(token), &[], &init()).await
    }
}

/// The standard authorization request of `client_id` for `resource`.
fn request_as(client_id: &str, resource: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".to_owned()),
        ("client_id", client_id.to_owned()),
        ("redirect_uri", REDIRECT.to_owned()),
        ("state", "st-123".to_owned()),
        ("scope", "mcp".to_owned()),
        ("code_challenge", pkce_challenge(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
        ("resource", resource.to_owned()),
    ]
}

fn init() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}})
}

async fn put_json(app: &TestApp, who: As<'_>, path: &str, body: &Value) -> Reply {
    app.send(app.request(who, reqwest::Method::PUT, path).json(body)).await
}

async fn register(app: &TestApp, tenant: &str, body: &Value) -> String {
    let reply = app.post_json(As::Anonymous, &format!("/t/{tenant}/oauth/register"), body).await;
    reply.assert_status(201);
    reply.body["client_id"].as_str().unwrap().to_owned()
}

/// Signs `claims` with the tenant's active private key, read from the database.
async fn forge(app: &TestApp, tenant: &str, claims: &AccessClaims) -> String {
    let mut conn = app.db.pool.acquire().await.unwrap();
    let tenant =
        berth_storage::tenants::find_by_slug_for_routing(&mut conn, &berth_core::Slug::parse("t", tenant).unwrap())
            .await
            .unwrap();
    let scope = berth_core::TenantScope::from_verified_credentials(tenant.id, tenant.slug);
    let key = berth_storage::oauth::active_signing_key(&mut conn, &scope).await.unwrap().expect("a signing key");
    // Stored sealed: forging takes the database and the deployment secret.
    let sealing = SealKey::derive(app.secret_key.as_bytes(), sealed::OAUTH_SIGNING_KEYS);
    let context = sealed::signing_key_context(scope.tenant_id(), &key.kid);
    let der = sealed::open_bytes_or_plain_bound(&sealing, &context, &key.private_der).unwrap();
    berth_auth::jwt::sign_access_token(claims, &key.kid, &der).unwrap()
}

/// Rows of `oauth_signing_keys` whose private key is stored sealed, and stored plain.
async fn signing_keys_sealed_and_plain(app: &TestApp) -> (u64, u64) {
    let sealed = "substring(private_der FROM 1 FOR 16) = 'berth:sealed:v1:'::bytea";
    let count =
        |filter: String| async move { app.execute(&format!("SELECT 1 FROM oauth_signing_keys WHERE {filter}")).await };
    (count(sealed.to_owned()).await, count(format!("NOT ({sealed})")).await)
}

fn claims_of(token: &str) -> AccessClaims {
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[actix_web::test]
async fn metadata_is_served_at_every_discovery_url_with_the_issuer_it_was_built_from() {
    let t = McpApp::spawn().await;
    let issuer = t.app.url("/t/acme");
    for path in [
        "/.well-known/oauth-authorization-server/t/acme",
        "/.well-known/openid-configuration/t/acme",
        "/t/acme/.well-known/openid-configuration",
    ] {
        let reply = t.app.get(As::Anonymous, path).await;
        reply.assert_status(200);
        assert!(reply.content_type().starts_with("application/json"));
        let m = &reply.body;
        assert_eq!(m["issuer"], issuer, "{path}");
        assert_eq!(m["authorization_endpoint"], format!("{issuer}/oauth/authorize"));
        assert_eq!(m["token_endpoint"], format!("{issuer}/oauth/token"));
        assert_eq!(m["registration_endpoint"], format!("{issuer}/oauth/register"));
        assert_eq!(m["revocation_endpoint"], format!("{issuer}/oauth/revoke"));
        assert_eq!(m["jwks_uri"], format!("{issuer}/oauth/jwks"));
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["grant_types_supported"], json!(["authorization_code", "refresh_token"]));
    }
    t.app.get(As::Anonymous, "/.well-known/oauth-authorization-server/t/initech").await.assert_status(404);
    let jwks = t.app.get(As::Anonymous, "/t/acme/oauth/jwks").await;
    jwks.assert_status(200);
    let keys = jwks.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["crv"].as_str(), keys[0]["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(keys[0].get("d").is_none(), "no private part is published");
}

#[actix_web::test]
async fn protected_resource_metadata_and_the_401_challenge_point_to_the_tenant_issuer() {
    let t = McpApp::spawn().await;
    let prm_path = "/.well-known/oauth-protected-resource/t/acme/fixture/mcp";
    let prm = t.app.get(As::Anonymous, prm_path).await;
    prm.assert_status(200);
    assert_eq!(prm.body["resource"], t.url("acme", "fixture"));
    assert_eq!(prm.body["authorization_servers"], json!([t.app.url("/t/acme")]));
    assert_eq!(prm.body["scopes_supported"], json!(["mcp"]));
    assert_eq!(prm.body["bearer_methods_supported"], json!(["header"]));
    // Missing servers get the same document shape: it tells nothing about what exists.
    t.app.get(As::Anonymous, "/.well-known/oauth-protected-resource/t/acme/no-such/mcp").await.assert_status(200);

    let anonymous = t.post(&t.url("acme", "fixture"), None, &[], &init()).await;
    assert_eq!(anonymous.status, 401);
    let challenge = anonymous.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&format!("resource_metadata=\"{}\"", t.app.url(prm_path))), "{challenge}");
    assert!(challenge.contains("scope=\"mcp\""), "{challenge}");
    let forged = t.post(&t.url("acme", "fixture"), Some("a.b.c"), &[], &init()).await;
    assert_eq!(forged.status, 401);
    let challenge = forged.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\"") && challenge.contains("resource_metadata="), "{challenge}");
    let admin_only = t.app.key_with("acme", &["admin"]).await;
    let reply = t.post(&t.url("acme", "fixture"), Some(&admin_only), &[], &init()).await;
    assert_eq!(reply.status, 403);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("resource_metadata="),
        "{challenge}"
    );
}

#[actix_web::test]
async fn a_member_signs_in_consents_and_the_client_calls_a_tool_and_refreshes() {
    let o = OAuthApp::spawn().await;
    let back = o.consent("acme", &o.request(&o.resource("acme", "fixture")), "ada@example.com").await;
    assert_eq!(back["state"], "st-123");
    assert_eq!(back["iss"], o.app().url("/t/acme"), "RFC 9207 iss");
    let reply = o.exchange(&back["code"]).await;
    reply.assert_status(200);
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["scope"], "mcp");
    assert_eq!(reply.body["expires_in"], 600);
    let access = reply.body["access_token"].as_str().unwrap();
    let claims = claims_of(access);
    assert_eq!(claims.aud, o.resource("acme", "fixture"), "RFC 8707: the audience is the server URL");
    assert_eq!(claims.iss, o.app().url("/t/acme"));
    assert_eq!(claims.client_id, o.client_id);

    o.assert_adds(access).await;

    let refreshed = o.refresh(reply.body["refresh_token"].as_str().unwrap()).await;
    refreshed.assert_status(200);
    let new_access = refreshed.body["access_token"].as_str().unwrap();
    assert_ne!(refreshed.body["refresh_token"], reply.body["refresh_token"], "refresh tokens rotate");
    assert_eq!(o.mcp_status("acme", "fixture", new_access).await.status, 200);
}

#[actix_web::test]
async fn login_needs_the_right_password_and_the_form_csrf_token() {
    let o = OAuthApp::spawn().await;
    let request = o.request(&o.resource("acme", "fixture"));
    let params: Vec<(&str, &str)> = request.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut browser = Browser::new();
    let login = browser.get(&o.authorize_url("acme", &params)).await;
    assert_eq!(login.headers["x-frame-options"], "DENY");
    assert!(login.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(login.headers["cache-control"], "no-store");
    let cookie = login.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let login_url = o.app().url("/t/acme/oauth/login");
    let mut wrong = login.hidden();
    wrong.extend(pairs(&[("email", "ada@example.com"), ("password", "not the password at all")]));
    let refused = browser.post(&login_url, &wrong).await;
    assert_eq!(refused.status, 401);
    assert!(refused.text.contains("not correct"));
    let mut unknown = refused.hidden();
    unknown.extend(pairs(&[("email", "nobody@example.com"), ("password", PASSWORD)]));
    let refused = browser.post(&login_url, &unknown).await;
    assert_eq!(refused.status, 401);
    // Another tenant's member cannot sign in here.
    let mut foreign = refused.hidden();
    foreign.extend(pairs(&[("email", "gus@example.com"), ("password", PASSWORD)]));
    let refused = browser.post(&login_url, &foreign).await;
    assert_eq!(refused.status, 401);
    // A login form posted from elsewhere lacks the cookie half of the CSRF token.
    let mut forged = refused.hidden();
    forged.extend(pairs(&[("email", "ada@example.com"), ("password", PASSWORD)]));
    let mut stranger = Browser::new();
    let csrf = stranger.post(&login_url, &forged).await;
    assert_eq!(csrf.status, 403);
    assert!(csrf.headers.get("location").is_none());
    assert!(csrf.headers.get("set-cookie").is_none(), "no session without the CSRF check");
}

#[actix_web::test]
async fn consent_without_the_session_csrf_token_is_refused() {
    let o = OAuthApp::spawn().await;
    let mut browser = Browser::new();
    let consent = o.sign_in(&mut browser, "acme", &o.request(&o.resource("acme", "fixture")), "ada@example.com").await;
    let url = o.app().url("/t/acme/oauth/authorize");
    let mut form: Vec<(String, String)> = consent.hidden().into_iter().filter(|(k, _)| k != "csrf").collect();
    form.push(("decision".into(), "approve".into()));
    let missing = browser.post(&url, &form).await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    let mut wrong = form.clone();
    wrong.push(("csrf".into(), "guessed-token".into()));
    let refused = browser.post(&url, &wrong).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.headers.get("location").is_none(), "no code is sent anywhere");
    // A cross-site form carries no session cookie at all.
    let mut with_csrf = consent.hidden();
    with_csrf.push(("decision".into(), "approve".into()));
    assert_eq!(Browser::new().post(&url, &with_csrf).await.status, 403);
    assert_eq!(o.app().execute("SELECT 1 FROM oauth_codes").await, 0);
}

#[actix_web::test]
async fn consent_cannot_be_turned_into_an_open_redirect() {
    let o = OAuthApp::spawn().await;
    let mut browser = Browser::new();
    let consent = o.sign_in(&mut browser, "acme", &o.request(&o.resource("acme", "fixture")), "ada@example.com").await;
    assert!(consent.text.contains("127.0.0.1:9"), "the redirect host is shown");
    let mut tampered: Vec<(String, String)> = consent
        .hidden()
        .into_iter()
        .map(|(k, v)| if k == "redirect_uri" { (k, "https://evil.example/steal".to_owned()) } else { (k, v) })
        .collect();
    tampered.push(("decision".into(), "approve".into()));
    let reply = browser.post(&o.app().url("/t/acme/oauth/authorize"), &tampered).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.headers.get("location").is_none(), "never redirected to an unregistered URI");
    assert_eq!(o.app().execute("SELECT 1 FROM oauth_codes").await, 0);
}

#[actix_web::test]
async fn a_mismatched_redirect_uri_is_refused_on_a_page_and_at_the_token_endpoint() {
    let o = OAuthApp::spawn().await;
    let mut browser = Browser::new();
    for bad in ["https://evil.example/callback", "http://127.0.0.1:9/callback/", "http://127.0.0.1:10/callback"] {
        let mut request = o.request(&o.resource("acme", "fixture"));
        request.retain(|(k, _)| *k != "redirect_uri");
        request.push(("redirect_uri", bad.to_owned()));
        let params: Vec<(&str, &str)> = request.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = browser.get(&o.authorize_url("acme", &params)).await;
        assert_eq!(page.status, 400, "{bad}");
        assert!(page.headers.get("location").is_none(), "{bad}");
    }
    let code = o.code("fixture").await;
    let reply = o
        .token(
            "acme",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/other"),
                ("code_verifier", VERIFIER),
                ("client_id", &o.client_id),
            ],
        )
        .await;
    reply.assert_status(400);
    assert_eq!(reply.body["error"], "invalid_grant");
}

#[actix_web::test]
async fn authorization_without_pkce_or_with_plain_pkce_is_refused() {
    let o = OAuthApp::spawn().await;
    let mut browser = Browser::new();
    let base = o.request(&o.resource("acme", "fixture"));
    let without: Vec<(&str, &str)> =
        base.iter().filter(|(k, _)| !k.starts_with("code_challenge")).map(|(k, v)| (*k, v.as_str())).collect();
    let plain: Vec<(&str, &str)> = base
        .iter()
        .map(|(k, v)| match *k {
            "code_challenge_method" => (*k, "plain"),
            "code_challenge" => (*k, VERIFIER),
            _ => (*k, v.as_str()),
        })
        .collect();
    for params in [without, plain] {
        let reply = browser.get(&o.authorize_url("acme", &params)).await;
        assert_eq!(reply.status, 302, "{}", reply.text);
        let back = query(&reply.location());
        assert_eq!(back["error"], "invalid_request");
        assert_eq!(back["state"], "st-123");
        assert_eq!(back["iss"], o.app().url("/t/acme"));
    }
    // A code issued with S256 is useless without the right verifier.
    let code = o.code("fixture").await;
    let reply = o
        .token(
            "acme",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_id", &o.client_id),
            ],
        )
        .await;
    assert_eq!(reply.body["error"], "invalid_request");
    let wrong = "another-verifier-that-is-long-enough-0123456789-abcdefghijklmnop";
    let reply = o
        .token(
            "acme",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", wrong),
                ("client_id", &o.client_id),
            ],
        )
        .await;
    assert_eq!(reply.body["error"], "invalid_grant");
    let again = o.exchange(&code).await;
    assert_eq!(again.body["error"], "invalid_grant", "a failed attempt burns the code");
}

#[actix_web::test]
async fn a_replayed_code_is_refused_and_revokes_the_tokens_it_gave() {
    let o = OAuthApp::spawn().await;
    let code = o.code("fixture").await;
    let first = o.exchange(&code).await;
    first.assert_status(200);
    let access = first.body["access_token"].as_str().unwrap();
    assert_eq!(o.mcp_status("acme", "fixture", access).await.status, 200);
    let replay = o.exchange(&code).await;
    replay.assert_status(400);
    assert_eq!(replay.body["error"], "invalid_grant");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(o.mcp_status("acme", "fixture", access).await.status, 401);
    let refresh = o.refresh(first.body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refresh.body["error"], "invalid_grant");
}

#[actix_web::test]
async fn a_replayed_refresh_token_revokes_the_whole_family() {
    let o = OAuthApp::spawn().await;
    let (_, refresh) = o.tokens("fixture").await;
    let rotated = o.refresh(&refresh).await;
    rotated.assert_status(200);
    let newest_access = rotated.body["access_token"].as_str().unwrap().to_owned();
    let newest_refresh = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(o.mcp_status("acme", "fixture", &newest_access).await.status, 200);
    let replay = o.refresh(&refresh).await;
    replay.assert_status(400);
    assert_eq!(replay.body["error"], "invalid_grant");
    assert_eq!(
        o.refresh(&newest_refresh).await.body["error"],
        "invalid_grant",
        "the rotated token died with its family"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(o.mcp_status("acme", "fixture", &newest_access).await.status, 401);
}

#[actix_web::test]
async fn a_token_for_one_server_is_refused_at_another() {
    let o = OAuthApp::spawn().await;
    let (access, _) = o.tokens("fixture").await;
    assert_eq!(o.mcp_status("acme", "fixture", &access).await.status, 200);
    let other = o.mcp_status("acme", "second", &access).await;
    assert_eq!(other.status, 401);
    let challenge = other.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token") && challenge.contains("another resource"), "{challenge}");
    // Uncached, too: a fresh token presented at the other server first.
    let (fresh, _) = o.tokens("fixture").await;
    assert_eq!(o.mcp_status("acme", "second", &fresh).await.status, 401);
}

#[actix_web::test]
async fn a_token_of_one_tenant_is_refused_at_another_tenant() {
    let o = OAuthApp::spawn().await;
    let (access, _) = o.tokens("fixture").await;
    let foreign = o.mcp_status("globex", "fixture", &access).await;
    assert_eq!(foreign.status, 401, "{}", foreign.text);
    // Even a globex-shaped token signed with acme's key: globex does not know that key.
    let mut claims = claims_of(&access);
    claims.iss = o.app().url("/t/globex");
    claims.aud = o.resource("globex", "fixture");
    let forged = forge(o.app(), "acme", &claims).await;
    assert_eq!(o.mcp_status("globex", "fixture", &forged).await.status, 401);
}

#[actix_web::test]
async fn expired_tokens_are_refused() {
    let o = OAuthApp::spawn().await;
    let (access, _) = o.tokens("fixture").await;
    let mut claims = claims_of(&access);
    claims.exp = chrono::Utc::now().timestamp() - 1;
    claims.iat = claims.exp - 600;
    claims.nbf = claims.iat;
    let expired = forge(o.app(), "acme", &claims).await;
    let reply = o.mcp_status("acme", "fixture", &expired).await;
    assert_eq!(reply.status, 401);
    assert!(reply.headers["www-authenticate"].to_str().unwrap().contains("expired"));
}

#[actix_web::test]
async fn alg_none_and_hs256_signed_with_the_public_key_are_refused() {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let o = OAuthApp::spawn().await;
    let (access, _) = o.tokens("fixture").await;
    let claims = serde_json::to_value(claims_of(&access)).unwrap();
    let kid =
        o.app().get(As::Anonymous, "/t/acme/oauth/jwks").await.body["keys"][0]["kid"].as_str().unwrap().to_owned();
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": ACCESS_TOKEN_TYPE, "kid": kid})), b64(&claims));
    assert_eq!(o.mcp_status("acme", "fixture", &none).await.status, 401);
    let none_signed = format!("{none}c2ln");
    assert_eq!(o.mcp_status("acme", "fixture", &none_signed).await.status, 401);
    let jwks = o.app().get(As::Anonymous, "/t/acme/oauth/jwks").await;
    let public =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwks.body["keys"][0]["x"].as_str().unwrap()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some(ACCESS_TOKEN_TYPE.into());
    header.kid = Some(kid);
    let hs = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&public)).unwrap();
    let reply = o.mcp_status("acme", "fixture", &hs).await;
    assert_eq!(reply.status, 401);
    assert!(reply.headers["www-authenticate"].to_str().unwrap().contains("algorithm"));
}

#[actix_web::test]
async fn a_revoked_token_is_refused_within_a_second() {
    let o = OAuthApp::spawn().await;
    let (access, refresh) = o.tokens("fixture").await;
    assert_eq!(o.mcp_status("acme", "fixture", &access).await.status, 200, "verified and cached");
    let revoke = o
        .app()
        .client
        .post(o.app().url("/t/acme/oauth/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&pairs(&[("token", &access), ("client_id", &o.client_id)])));
    o.app().send(revoke).await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(o.mcp_status("acme", "fixture", &access).await.status, 401);
    assert_eq!(o.refresh(&refresh).await.body["error"], "invalid_grant", "the grant's refresh token died too");
    // Revoking by refresh token works the same; unknown tokens answer 200 as well.
    let (access, refresh) = o.tokens("fixture").await;
    let revoke = |token: String| {
        o.app()
            .client
            .post(o.app().url("/t/acme/oauth/revoke"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&pairs(&[
                ("token", &token),
                ("token_type_hint", "refresh_token"),
                ("client_id", &o.client_id),
            ])))
    };
    o.app().send(revoke(refresh)).await.assert_status(200);
    o.app().send(revoke("brt_unknown".into())).await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(o.mcp_status("acme", "fixture", &access).await.status, 401);
}

#[actix_web::test]
async fn removing_the_member_or_the_client_ends_their_tokens() {
    let o = OAuthApp::spawn().await;
    let (access, _) = o.tokens("fixture").await;
    assert_eq!(o.mcp_status("acme", "fixture", &access).await.status, 200);
    add_member(o.app(), "acme", "other-owner@example.com", "owner", None).await.assert_status(201);
    let ada = o.app().get(As::Admin, "/api/v1/tenants/acme/members").await;
    let id = crate::helpers::items(&ada).iter().find(|m| m["email"] == "ada@example.com").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    o.app().delete(As::Admin, &format!("/api/v1/tenants/acme/members/{id}")).await.assert_status(204);
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(o.mcp_status("acme", "fixture", &access).await.status, 401);

    add_member(o.app(), "acme", "ada@example.com", "admin", Some(PASSWORD)).await.assert_status(201);
    let (access, _) = o.tokens("fixture").await;
    assert_eq!(o.mcp_status("acme", "fixture", &access).await.status, 200);
    o.app().delete(As::Admin, &format!("/api/v1/tenants/acme/oauth/clients/{}", o.client_id)).await.assert_status(204);
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(o.mcp_status("acme", "fixture", &access).await.status, 401);
}

#[actix_web::test]
async fn key_rotation_keeps_tokens_valid_and_publishes_both_keys() {
    let o = OAuthApp::spawn().await;
    let (before, _) = o.tokens("fixture").await;
    let rotated = o.app().post_json(As::Admin, "/api/v1/tenants/acme/oauth/signing-keys", &json!({})).await;
    rotated.assert_status(201);
    assert_eq!(rotated.body["active"], true);
    let keys = o.app().get(As::Admin, "/api/v1/tenants/acme/oauth/signing-keys").await;
    assert_eq!(keys.body.as_array().unwrap().len(), 2);
    let jwks = o.app().get(As::Anonymous, "/t/acme/oauth/jwks").await;
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 2, "the retired key stays published");
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    // A fresh node (no cache) still accepts the token signed before the rotation.
    let fresh =
        berth_data_plane::caller::Tokens::new(o.app().db.pool.clone(), &url::Url::parse(&o.app().address).unwrap());
    assert!(fresh.verify(&before, "acme", "fixture").await.is_ok());
    let (after, _) = o.tokens("fixture").await;
    assert_ne!(jsonwebtoken::decode_header(&after).unwrap().kid, jsonwebtoken::decode_header(&before).unwrap().kid);
    assert_eq!(o.mcp_status("acme", "fixture", &after).await.status, 200);
}

#[actix_web::test]
async fn signing_keys_are_sealed_at_rest_and_sign_only_for_their_own_tenant() {
    let o = OAuthApp::spawn().await;
    let (access, _) = o.tokens("fixture").await;
    o.assert_adds(&access).await;
    o.app().get(As::Anonymous, "/t/globex/oauth/jwks").await.assert_status(200);
    assert_eq!(signing_keys_sealed_and_plain(o.app()).await, (2, 0), "both tenants' keys are stored sealed");

    // Someone who can write the database but not read the secret puts globex's sealed key in
    // acme's row: it is bound to globex, so acme's token endpoint signs nothing with it.
    let moved = o
        .app()
        .execute(
            "UPDATE oauth_signing_keys a SET private_der = g.private_der FROM oauth_signing_keys g \
             WHERE a.tenant_id = (SELECT id FROM tenants WHERE slug = 'acme') \
             AND g.tenant_id = (SELECT id FROM tenants WHERE slug = 'globex')",
        )
        .await;
    assert_eq!(moved, 1);
    let refused = o.exchange(&o.code("fixture").await).await;
    refused.assert_status(503);
    assert_eq!(refused.body["error"], "temporarily_unavailable", "{}", refused.text);
    assert!(refused.body.get("access_token").is_none());
}

#[actix_web::test]
async fn signing_keys_stored_unsealed_are_sealed_at_start_and_keep_signing() {
    let o = OAuthApp::spawn().await;
    // Active keys as written before keys were sealed (or by a control plane without the secret).
    let mut kids = BTreeMap::new();
    for tenant in ["acme", "globex"] {
        let key = berth_auth::jwt::generate_signing_key();
        let der: String = key.pkcs8_der.iter().map(|b| format!("{b:02x}")).collect();
        let inserted = o
            .app()
            .execute(&format!(
                "INSERT INTO oauth_signing_keys (tenant_id, kid, algorithm, private_der, public_jwk) \
                 SELECT id, '{}', 'EdDSA', '\\x{der}'::bytea, '{}'::jsonb FROM tenants WHERE slug = '{tenant}'",
                key.kid, key.public_jwk
            ))
            .await;
        assert_eq!(inserted, 1);
        kids.insert(tenant, key.kid);
    }
    assert_eq!(signing_keys_sealed_and_plain(o.app()).await, (0, 2));
    let (before, _) = o.tokens("fixture").await;
    assert_eq!(jsonwebtoken::decode_header(&before).unwrap().kid.as_deref(), Some(kids["acme"].as_str()));

    let secret = secrecy::SecretString::from(o.app().secret_key.clone());
    assert_eq!(berth::startup::seal_stored_secrets(&o.app().db.pool, &secret, None).await.unwrap().sealed, 2);
    assert_eq!(signing_keys_sealed_and_plain(o.app()).await, (2, 0));
    assert_eq!(
        berth::startup::seal_stored_secrets(&o.app().db.pool, &secret, None).await.unwrap().sealed,
        0,
        "once only"
    );
    let (after, _) = o.tokens("fixture").await;
    assert_eq!(jsonwebtoken::decode_header(&after).unwrap().kid.as_deref(), Some(kids["acme"].as_str()));
    o.assert_adds(&after).await;
    o.assert_adds(&before).await;
}

#[actix_web::test]
async fn dynamic_registration_validates_metadata_and_confidential_clients_authenticate() {
    let o = OAuthApp::spawn().await;
    let app = o.app();
    let register_raw = |body: Value| async move { app.post_json(As::Anonymous, "/t/acme/oauth/register", &body).await };
    let bad_redirect = register_raw(json!({"redirect_uris": ["http://evil.example/cb"]})).await;
    bad_redirect.assert_status(400);
    assert_eq!(bad_redirect.body["error"], "invalid_redirect_uri");
    let no_redirect = register_raw(json!({"client_name": "x"})).await;
    assert_eq!(no_redirect.body["error"], "invalid_redirect_uri");
    let implicit = register_raw(json!({"redirect_uris": [REDIRECT], "grant_types": ["implicit"]})).await;
    assert_eq!(implicit.body["error"], "invalid_client_metadata");
    let confidential = register_raw(json!({"redirect_uris": [REDIRECT], "client_name": "Confidential"})).await;
    confidential.assert_status(201);
    assert_eq!(confidential.body["token_endpoint_auth_method"], "client_secret_basic", "RFC 7591's default");
    assert_eq!(confidential.body["client_secret_expires_at"], 0);
    let client_id = confidential.body["client_id"].as_str().unwrap().to_owned();
    let secret = confidential.body["client_secret"].as_str().unwrap().to_owned();
    let o = OAuthApp { t: o.t, client_id };
    let code = o.code("fixture").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let unauthenticated = o.token("acme", &[&form[..], &[("client_id", o.client_id.as_str())]].concat()).await;
    unauthenticated.assert_status(401);
    assert_eq!(unauthenticated.body["error"], "invalid_client");
    let code = o.code("fixture").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let request = o
        .app()
        .client
        .post(o.app().url("/t/acme/oauth/token"))
        .basic_auth(&o.client_id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&pairs(&form)));
    o.app().send(request).await.assert_status(200);
}

#[actix_web::test]
async fn dynamic_registration_is_limited_per_address() {
    let o = OAuthApp::spawn().await;
    let body = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    // `OAuthApp::spawn` registered one already; every request counts, whatever its tenant.
    for i in 1..20 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        o.app().post_json(As::Anonymous, &format!("/t/{tenant}/oauth/register"), &body).await.assert_status(201);
    }
    for tenant in ["acme", "globex"] {
        let refused = o.app().post_json(As::Anonymous, &format!("/t/{tenant}/oauth/register"), &body).await;
        refused.assert_status(429);
        assert_eq!(refused.body["error"], "temporarily_unavailable", "{}", refused.text);
        let retry: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=4).contains(&retry), "one registration refills in 3 s: {retry}");
    }
    // With no trusted proxy configured, a forwarding header is the client's own invention.
    let spoofed = o.app().client.post(o.app().url("/t/acme/oauth/register")).header("x-forwarded-for", "198.51.100.7");
    o.app().send(spoofed.json(&body)).await.assert_status(429);
    assert_eq!(o.app().execute("SELECT 1 FROM oauth_clients").await, 20, "refused requests stored nothing");
    // The rest of the OAuth server is not limited by it.
    let (access, _) = o.tokens("fixture").await;
    o.assert_adds(&access).await;
}

#[actix_web::test]
async fn behind_a_trusted_proxy_registrations_are_limited_per_forwarded_address() {
    let mut settings = crate::helpers::test_settings();
    settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let o = OAuthApp::spawn_on(settings).await;
    let body = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    let register = |tenant: &str, forwarded_for: &str| {
        let request = o.app().client.post(o.app().url(&format!("/t/{tenant}/oauth/register")));
        let request = if forwarded_for.is_empty() { request } else { request.header("x-forwarded-for", forwarded_for) };
        o.app().send(request.json(&body))
    };
    // The proxy forwards for one client, across both tenants, up to its allowance.
    for i in 0..20 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        register(tenant, "198.51.100.1").await.assert_status(201);
    }
    register("globex", "198.51.100.1").await.assert_status(429);
    // What the client wrote left of what the proxy appended changes nothing.
    register("acme", "203.0.113.50, 198.51.100.1").await.assert_status(429);
    // Another client behind the same proxy, and the proxy's own requests, have their own.
    register("acme", "198.51.100.2").await.assert_status(201);
    register("globex", "198.51.100.2").await.assert_status(201);
    register("acme", "").await.assert_status(201);
    assert_eq!(o.app().execute("SELECT 1 FROM oauth_clients").await, 24, "one from the spawn, 20 + 2 + 1 here");
}

#[actix_web::test]
async fn a_tenant_holds_a_bounded_number_of_dynamic_clients_and_unused_ones_make_room() {
    let o = OAuthApp::spawn().await;
    let fill = |tenant: &str, count: u32, age: &str| {
        format!(
            "INSERT INTO oauth_clients (tenant_id, client_id, name, redirect_uris, token_endpoint_auth_method, \
             grant_types, registered_by, created_at) \
             SELECT t.id, 'filler-{age}-' || n, 'Filler', ARRAY['{REDIRECT}'], 'none', \
             ARRAY['authorization_code'], 'dynamic', now() - interval '{age}' \
             FROM tenants t, generate_series(1, {count}) n WHERE t.slug = '{tenant}'"
        )
    };
    let body = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    let register = |tenant: &'static str| {
        let (app, body) = (o.app(), &body);
        async move { app.post_json(As::Anonymous, &format!("/t/{tenant}/oauth/register"), body).await }
    };
    // acme at the cap (its test client and 9,999 two-day-old clients), one of them consented to.
    assert_eq!(o.app().execute(&fill("acme", 9_999, "2 days")).await, 9_999);
    let consented = o
        .app()
        .execute(
            "INSERT INTO oauth_grants (tenant_id, id, client_id, member_id, resource, scopes, expires_at) \
             SELECT m.tenant_id, gen_random_uuid(), 'filler-2 days-1', m.id, 'https://example.com/mcp', \
             ARRAY['mcp'], now() + interval '1 day' \
             FROM members m JOIN tenants t ON t.id = m.tenant_id WHERE t.slug = 'acme'",
        )
        .await;
    assert_eq!(consented, 1);
    register("acme").await.assert_status(201);
    let acme = |filter: &str| {
        format!(
            "SELECT 1 FROM oauth_clients WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'acme') AND {filter}"
        )
    };
    assert_eq!(o.app().execute(&acme("client_id LIKE 'filler-%'")).await, 1, "only the consented old one is kept");
    assert_eq!(o.app().execute(&acme("registered_by = 'dynamic'")).await, 3);

    // At the cap with recent clients, nothing makes room: refused until some age out.
    assert_eq!(o.app().execute(&fill("acme", 9_997, "1 minute")).await, 9_997);
    let refused = register("acme").await;
    refused.assert_status(429);
    assert_eq!(refused.body["error"], "temporarily_unavailable");
    assert!(refused.body["error_description"].as_str().unwrap().contains("10000"), "{}", refused.text);
    assert_eq!(refused.headers["retry-after"], "3600");
    assert_eq!(o.app().execute(&acme("registered_by = 'dynamic'")).await, 10_000);
    // Another tenant is not affected, and acme's existing clients still work.
    register("globex").await.assert_status(201);
    let (access, _) = o.tokens("fixture").await;
    o.assert_adds(&access).await;
}

#[actix_web::test]
async fn clients_can_be_pre_registered_through_the_admin_api() {
    let o = OAuthApp::spawn().await;
    let created = o
        .app()
        .post_json(
            As::Admin,
            "/api/v1/tenants/acme/oauth/clients",
            &json!({"name": "Claude", "redirect_uris": [REDIRECT]}),
        )
        .await;
    created.assert_status(201);
    assert_eq!(created.body["token_endpoint_auth_method"], "none");
    assert!(created.body.get("client_secret").is_none());
    let client_id = created.body["client_id"].as_str().unwrap().to_owned();
    let list = o.app().get(As::Admin, "/api/v1/tenants/acme/oauth/clients").await;
    assert_eq!(crate::helpers::items(&list).len(), 2, "the dynamic client and this one");
    let bad = o
        .app()
        .post_json(
            As::Admin,
            "/api/v1/tenants/acme/oauth/clients",
            &json!({"name": "x", "redirect_uris": ["ftp://x/cb"]}),
        )
        .await;
    bad.assert_problem(400);
    assert_eq!(bad.body["field"], "redirect_uris");
    o.app().get(As::Admin, &format!("/api/v1/tenants/globex/oauth/clients/{client_id}")).await.assert_problem(404);
    let o = OAuthApp { t: o.t, client_id };
    let (access, _) = o.tokens("fixture").await;
    assert_eq!(o.mcp_status("acme", "fixture", &access).await.status, 200);
    // Clients of acme do not exist at globex's authorization server.
    let mut browser = Browser::new();
    let request = o.request(&o.resource("globex", "fixture"));
    let params: Vec<(&str, &str)> = request.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(browser.get(&o.authorize_url("globex", &params)).await.status, 400);
}

#[actix_web::test]
async fn resources_must_be_servers_of_the_tenant() {
    let o = OAuthApp::spawn().await;
    let mut browser = Browser::new();
    for resource in
        [o.resource("globex", "fixture"), o.resource("acme", "no-such"), "https://evil.example/mcp".to_owned()]
    {
        let request = o.request(&resource);
        let params: Vec<(&str, &str)> = request.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = browser.get(&o.authorize_url("acme", &params)).await;
        assert_eq!(reply.status, 302, "{resource}");
        assert_eq!(query(&reply.location())["error"], "invalid_target", "{resource}");
    }
}

/// A local OpenID Connect provider: discovery document and JWKS on a loopback port, RS256
/// tokens signed with the test key in `tests/fixtures/rsa-test-key.pem`.
struct LocalIdp {
    issuer: String,
    key: jsonwebtoken::EncodingKey,
}

const IDP_KEY: &str = include_str!("../../../../tests/fixtures/rsa-test-key.pem");

impl LocalIdp {
    async fn start() -> Self {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(IDP_KEY.as_bytes()).unwrap();
        let mut jwk = serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).unwrap(),
        )
        .unwrap();
        jwk["kid"] = json!("idp-key-1");
        jwk["use"] = json!("sig");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let discovery = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/keys"),
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let jwks = json!({"keys": [jwk]});
        let server = actix_web::HttpServer::new(move || {
            let (discovery, jwks) = (discovery.clone(), jwks.clone());
            actix_web::App::new()
                .route(
                    "/.well-known/openid-configuration",
                    actix_web::web::get().to(move || {
                        let d = discovery.clone();
                        async move { actix_web::HttpResponse::Ok().json(d) }
                    }),
                )
                .route(
                    "/keys",
                    actix_web::web::get().to(move || {
                        let k = jwks.clone();
                        async move { actix_web::HttpResponse::Ok().json(k) }
                    }),
                )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Self { issuer, key }
    }

    fn token(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("idp-key-1".into());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    fn claims(&self, email: &str, aud: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": self.issuer, "sub": "idp-user-1", "aud": aud, "email": email, "email_verified": true,
               "azp": "corporate-client", "iat": now, "exp": now + 300})
    }
}

#[actix_web::test]
async fn tokens_of_a_trusted_external_issuer_are_accepted_for_members_only() {
    let o = OAuthApp::spawn().await;
    let idp = LocalIdp::start().await;
    let fixture = o.resource("acme", "fixture");
    let set =
        put_json(o.app(), As::Admin, "/api/v1/tenants/acme/identity-provider", &json!({"issuer": idp.issuer})).await;
    set.assert_status(200);
    assert_eq!(set.body["email_claim"], "email");
    let prm = o.app().get(As::Anonymous, "/.well-known/oauth-protected-resource/t/acme/fixture/mcp").await;
    assert_eq!(prm.body["authorization_servers"], json!([idp.issuer, o.app().url("/t/acme")]));

    let token = idp.token(&idp.claims("Ada@Example.com", &fixture));
    let reply = o.mcp_status("acme", "fixture", &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let o = &o;
    let idp = &idp;
    let refused = |claims: Value| async move { o.mcp_status("acme", "fixture", &idp.token(&claims)).await.status };
    assert_eq!(refused(idp.claims("stranger@example.com", &fixture)).await, 401, "not a member");
    assert_eq!(refused(idp.claims("gus@example.com", &fixture)).await, 401, "a member of another tenant");
    assert_eq!(refused(idp.claims("ada@example.com", &o.resource("acme", "second"))).await, 401, "another server");
    let mut expired = idp.claims("ada@example.com", &fixture);
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 120);
    assert_eq!(refused(expired).await, 401, "expired");
    let mut unverified = idp.claims("ada@example.com", &fixture);
    unverified["email_verified"] = json!(false);
    assert_eq!(refused(unverified).await, 401, "unverified email");
    // globex does not trust this issuer.
    let globex = idp.token(&idp.claims("gus@example.com", &o.resource("globex", "fixture")));
    assert_eq!(o.mcp_status("globex", "fixture", &globex).await.status, 401);
    // An issuer the tenant does not trust, even with the trusted issuer's key.
    let mut impostor = idp.claims("ada@example.com", &fixture);
    impostor["iss"] = json!("http://127.0.0.1:1");
    assert_eq!(refused(impostor).await, 401);

    // With a configured audience, tokens name it instead of a server URL.
    let body = json!({"issuer": idp.issuer, "audience": "berth-mcp", "jwks_uri": format!("{}/keys", idp.issuer)});
    put_json(o.app(), As::Admin, "/api/v1/tenants/acme/identity-provider", &body).await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    let shared = idp.token(&idp.claims("ada@example.com", "berth-mcp"));
    assert_eq!(o.mcp_status("acme", "second", &shared).await.status, 200);

    // Removing the member ends their external tokens within a second.
    add_member(o.app(), "acme", "other-owner@example.com", "owner", None).await.assert_status(201);
    let members = o.app().get(As::Admin, "/api/v1/tenants/acme/members").await;
    let id = crate::helpers::items(&members).iter().find(|m| m["email"] == "ada@example.com").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    o.app().delete(As::Admin, &format!("/api/v1/tenants/acme/members/{id}")).await.assert_status(204);
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(o.mcp_status("acme", "second", &shared).await.status, 401);
    o.app().delete(As::Admin, "/api/v1/tenants/acme/identity-provider").await.assert_status(204);
    o.app().get(As::Admin, "/api/v1/tenants/acme/identity-provider").await.assert_problem(404);
}

#[actix_web::test]
async fn identity_providers_need_web_urls_and_the_admin_scope() {
    let o = OAuthApp::spawn().await;
    let path = "/api/v1/tenants/acme/identity-provider";
    let bad = put_json(o.app(), As::Admin, path, &json!({"issuer": "http://idp.example.com"})).await;
    bad.assert_problem(400);
    assert_eq!(bad.body["field"], "issuer");
    let reader = o.app().key_with("acme", &["admin:read"]).await;
    put_json(o.app(), As::Key(&reader), path, &json!({"issuer": "https://idp.example.com"})).await.assert_problem(403);
    o.app().get(As::Key(&reader), path).await.assert_problem(404);
}

/// A canned answer of [`DocServer`].
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Whether `Content-Length` is sent (otherwise the body ends when the connection closes).
    length: bool,
}

impl Canned {
    fn json(document: &Value) -> Self {
        Self::with_type("application/json", document.to_string().into_bytes())
    }

    fn with_type(content_type: &str, body: Vec<u8>) -> Self {
        Self { status: 200, headers: vec![("content-type".into(), content_type.into())], body, length: true }
    }
}

/// A tiny HTTP/1.1 server on loopback that publishes client metadata documents: one canned
/// answer per path; connections and requests are counted.
struct DocServer {
    port: u16,
    routes: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Canned>>>,
    hits: std::sync::Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl DocServer {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Self {
            port: listener.local_addr().unwrap().port(),
            routes: Default::default(),
            hits: Default::default(),
            connections: Default::default(),
        };
        let (routes, hits, connections) = (server.routes.clone(), server.hits.clone(), server.connections.clone());
        actix_web::rt::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (routes, hits) = (routes.clone(), hits.clone());
                actix_web::rt::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let canned = routes.lock().unwrap().get(&path).cloned().unwrap_or(Canned {
                        status: 404,
                        headers: vec![],
                        body: b"not found".to_vec(),
                        length: true,
                    });
                    let mut response = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", canned.status);
                    for (name, value) in &canned.headers {
                        response.push_str(&format!("{name}: {value}\r\n"));
                    }
                    if canned.length {
                        response.push_str(&format!("content-length: {}\r\n", canned.body.len()));
                    }
                    response.push_str("\r\n");
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.write_all(&canned.body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn serve(&self, path: &str, canned: Canned) {
        self.routes.lock().unwrap().insert(path.to_owned(), canned);
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A valid metadata document for `client_id`, redirecting to [`REDIRECT`] only.
fn client_document(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Document client",
        "client_uri": "https://app.example.com",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    })
}

/// The OAuth app with the test-only relaxation on (documents over http from 127.0.0.1), and a
/// document server with a valid document at `/client.json`.
async fn document_app() -> (OAuthApp, DocServer, String) {
    let mut settings = crate::helpers::test_settings();
    settings.oauth_cimd_allow_loopback = true;
    let o = OAuthApp::spawn_on(settings).await;
    let docs = DocServer::start().await;
    let client_id = docs.url("/client.json");
    let mut canned = Canned::json(&client_document(&client_id));
    canned.headers.push(("cache-control".into(), "public, max-age=600".into()));
    docs.serve("/client.json", canned);
    (o, docs, client_id)
}

/// Exchanges `code` at `tenant`'s token endpoint as the public client `client_id`.
async fn exchange_as(o: &OAuthApp, tenant: &str, client_id: &str, code: &str) -> Reply {
    o.token(
        tenant,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id),
        ],
    )
    .await
}

/// Asserts that an authorization request of `client_id` ends on a page (never a redirect)
/// saying `invalid_client` and `why`, and that the token endpoint refuses it as
/// `invalid_client` too.
async fn assert_client_refused(o: &OAuthApp, client_id: &str, why: &str) {
    let request = request_as(client_id, &o.resource("acme", "fixture"));
    let params: Vec<(&str, &str)> = request.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = Browser::new().get(&o.authorize_url("acme", &params)).await;
    assert_eq!(page.status, 400, "{client_id}: {}", page.text);
    assert!(page.headers.get("location").is_none(), "{client_id}: never a redirect");
    assert!(
        page.text.contains("invalid_client") && page.text.contains(why),
        "{client_id}: wanted {why:?} in {}",
        page.text
    );
    let token = exchange_as(o, "acme", client_id, "bac_not-a-real-code").await;
    token.assert_status(401);
    assert_eq!(token.body["error"], "invalid_client", "{client_id}");
    assert!(token.body["error_description"].as_str().unwrap().contains(why), "{client_id}: {}", token.text);
}

#[actix_web::test]
async fn a_metadata_document_client_signs_in_consents_calls_a_tool_and_refreshes() {
    let (o, docs, client_id) = document_app().await;
    let metadata = o.app().get(As::Anonymous, "/.well-known/oauth-authorization-server/t/acme").await;
    assert_eq!(metadata.body["client_id_metadata_document_supported"], true);

    let mut browser = Browser::new();
    let request = request_as(&client_id, &o.resource("acme", "fixture"));
    let consent = o.sign_in(&mut browser, "acme", &request, "ada@example.com").await;
    assert!(consent.text.contains("Document client"), "{}", consent.text);
    assert!(consent.text.contains("published by <strong>127.0.0.1</strong>"), "{}", consent.text);
    assert!(consent.text.contains("127.0.0.1:9"), "the redirect host is shown: {}", consent.text);
    assert!(consent.text.contains("nothing proves"), "localhost-only redirects are warned about: {}", consent.text);
    let mut form = consent.hidden();
    form.push(("decision".into(), "approve".into()));
    let done = browser.post(&o.app().url(&consent.form_action()), &form).await;
    assert_eq!(done.status, 303, "{}", done.text);
    let back = query(&done.location());
    assert!(done.location().starts_with(REDIRECT), "{}", done.location());
    assert_eq!(back["state"], "st-123");
    assert_eq!(back["iss"], o.app().url("/t/acme"));

    let reply = exchange_as(&o, "acme", &client_id, &back["code"]).await;
    reply.assert_status(200);
    let access = reply.body["access_token"].as_str().unwrap();
    let claims = claims_of(access);
    assert_eq!(claims.client_id, client_id);
    assert_eq!(claims.aud, o.resource("acme", "fixture"));
    o.assert_adds(access).await;

    let refresh = reply.body["refresh_token"].as_str().unwrap();
    let refreshed = o
        .token("acme", &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", &client_id)])
        .await;
    refreshed.assert_status(200);
    assert_eq!(o.mcp_status("acme", "fixture", refreshed.body["access_token"].as_str().unwrap()).await.status, 200);
    // Authorize, sign-in, consent and two token requests: one fetch, then the cache.
    assert_eq!(docs.hits("/client.json"), 1);
    // A secret is no way in for a public document client.
    let with_secret = o
        .token(
            "acme",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refreshed.body["refresh_token"].as_str().unwrap()),
                ("client_id", &client_id),
                ("client_secret", "anything"),
            ],
        )
        .await;
    with_secret.assert_status(401);
    assert_eq!(with_secret.body["error"], "invalid_client");
}

#[actix_web::test]
async fn a_metadata_document_client_of_one_tenant_gains_nothing_at_another() {
    let (o, _docs, client_id) = document_app().await;
    let code = o.consent("acme", &request_as(&client_id, &o.resource("acme", "fixture")), "ada@example.com").await;
    let reply = exchange_as(&o, "acme", &client_id, &code["code"]).await;
    reply.assert_status(200);
    let access = reply.body["access_token"].as_str().unwrap();
    let refresh = reply.body["refresh_token"].as_str().unwrap();
    assert_eq!(o.mcp_status("globex", "fixture", access).await.status, 401, "acme's token at globex");

    // acme's code and refresh token mean nothing at globex's token endpoint.
    let other = o.consent("acme", &request_as(&client_id, &o.resource("acme", "fixture")), "ada@example.com").await;
    let at_globex = exchange_as(&o, "globex", &client_id, &other["code"]).await;
    at_globex.assert_status(400);
    assert_eq!(at_globex.body["error"], "invalid_grant");
    let refreshed_at_globex = o
        .token("globex", &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", &client_id)])
        .await;
    refreshed_at_globex.assert_status(400);
    assert_eq!(refreshed_at_globex.body["error"], "invalid_grant");
    // Revoking acme's refresh token at globex does nothing to it.
    let revoke = o
        .app()
        .client
        .post(o.app().url("/t/globex/oauth/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&pairs(&[("token", refresh), ("client_id", &client_id)])));
    o.app().send(revoke).await.assert_status(200);
    let still = o
        .token("acme", &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", &client_id)])
        .await;
    still.assert_status(200);

    // The same URL is a separate client at globex: its own member consents, and the token is
    // globex's, refused at acme.
    let globex_request = request_as(&client_id, &o.resource("globex", "fixture"));
    assert_eq!(
        Browser::new()
            .get(&o.authorize_url("globex", &[("client_id", &client_id), ("response_type", "code")]))
            .await
            .status,
        302,
        "a valid document client at globex: later errors go back to the client"
    );
    let back = o.consent("globex", &globex_request, "gus@example.com").await;
    let globex = exchange_as(&o, "globex", &client_id, &back["code"]).await;
    globex.assert_status(200);
    let globex_access = globex.body["access_token"].as_str().unwrap();
    assert_eq!(claims_of(globex_access).iss, o.app().url("/t/globex"));
    assert_eq!(o.mcp_status("globex", "fixture", globex_access).await.status, 200);
    assert_eq!(o.mcp_status("acme", "fixture", globex_access).await.status, 401, "globex's token at acme");
    // acme's member cannot sign in at globex through the document client either.
    let params: Vec<(&str, &str)> = globex_request.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut browser = Browser::new();
    let login = browser.get(&o.authorize_url("globex", &params)).await;
    let mut form = login.hidden();
    form.extend(pairs(&[("email", "ada@example.com"), ("password", PASSWORD)]));
    assert_eq!(browser.post(&o.app().url("/t/globex/oauth/login"), &form).await.status, 401);
}

#[actix_web::test]
async fn redirect_uris_outside_the_metadata_document_are_refused_on_a_page() {
    let (o, docs, _) = document_app().await;
    let client_id = docs.url("/two.json");
    let mut document = client_document(&client_id);
    document["redirect_uris"] = json!([REDIRECT, "http://127.0.0.1:9/second"]);
    docs.serve("/two.json", Canned::json(&document));
    let resource = o.resource("acme", "fixture");
    for redirect in
        [Some("http://127.0.0.1:9/other"), Some("http://127.0.0.1:9/callback/"), Some("https://evil.example/cb"), None]
    {
        let mut request = request_as(&client_id, &resource);
        request.retain(|(k, _)| *k != "redirect_uri");
        if let Some(uri) = redirect {
            request.push(("redirect_uri", uri.to_owned()));
        }
        let params: Vec<(&str, &str)> = request.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = Browser::new().get(&o.authorize_url("acme", &params)).await;
        assert_eq!(page.status, 400, "{redirect:?}: {}", page.text);
        assert!(page.text.contains("Invalid redirect URI"), "{redirect:?}: {}", page.text);
        assert!(page.headers.get("location").is_none(), "{redirect:?}: never a redirect");
    }
    let mut request = request_as(&client_id, &resource);
    request.retain(|(k, _)| *k != "redirect_uri");
    request.push(("redirect_uri", "http://127.0.0.1:9/second".to_owned()));
    let params: Vec<(&str, &str)> = request.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let login = Browser::new().get(&o.authorize_url("acme", &params)).await;
    assert_eq!(login.status, 200, "a redirect URI the document lists: {}", login.text);
    assert!(login.text.contains("Document client (127.0.0.1)"), "{}", login.text);
}

#[actix_web::test]
async fn metadata_document_fetches_are_limited_per_address() {
    let (o, docs, client_id) = document_app().await;
    let authorize = |client_id: &str| {
        let request = request_as(client_id, &o.resource("acme", "fixture"));
        let params: Vec<(&str, &str)> = request.iter().map(|(k, v)| (*k, v.as_str())).collect();
        o.authorize_url("acme", &params)
    };
    let page = Browser::new().get(&authorize(&client_id)).await;
    assert_eq!(page.status, 200, "the good document is fetched and cached: {}", page.text);
    // 29 more fetches (missing documents are not cached), across both tenants: the allowance.
    for i in 1..30 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        let refused = exchange_as(&o, tenant, &docs.url(&format!("/missing-{i}.json")), "bac_not-a-real-code").await;
        refused.assert_status(401);
        assert_eq!(docs.hits(&format!("/missing-{i}.json")), 1);
    }
    for tenant in ["acme", "globex"] {
        let path = format!("/over-{tenant}.json");
        let limited = exchange_as(&o, tenant, &docs.url(&path), "bac_not-a-real-code").await;
        limited.assert_status(429);
        assert_eq!(limited.body["error"], "temporarily_unavailable", "{}", limited.text);
        assert!(limited.headers.contains_key("retry-after"));
        assert_eq!(docs.hits(&path), 0, "{tenant}: nothing was fetched");
    }
    let page = Browser::new().get(&authorize(&docs.url("/over-page.json"))).await;
    assert_eq!(page.status, 429, "{}", page.text);
    assert_eq!(docs.hits("/over-page.json"), 0);
    // A cached document needs no fetch, so its client carries on.
    let page = Browser::new().get(&authorize(&client_id)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(docs.hits("/client.json"), 1);
}

#[actix_web::test]
async fn metadata_documents_that_do_not_describe_the_client_are_refused() {
    let (o, docs, _) = document_app().await;
    let without = |path: &str, field: &str| {
        let mut document = client_document(&docs.url(path));
        document.as_object_mut().unwrap().remove(field);
        document
    };
    let padded = |path: &str| {
        let mut document = client_document(&docs.url(path));
        document["padding"] = json!("x".repeat(6 * 1024));
        document.to_string().into_bytes()
    };
    let mut unsized_big = Canned::with_type("application/json", padded("/big-unsized.json"));
    unsized_big.length = false;
    let mut confidential = client_document(&docs.url("/confidential.json"));
    confidential["token_endpoint_auth_method"] = json!("client_secret_basic");
    let cases: Vec<(&str, Canned, &str)> = vec![
        ("/mismatch.json", Canned::json(&client_document(&docs.url("/client.json"))), "another client_id"),
        ("/no-id.json", Canned::json(&without("/no-id.json", "client_id")), "has no client_id"),
        ("/no-name.json", Canned::json(&without("/no-name.json", "client_name")), "has no client_name"),
        ("/no-redirects.json", Canned::json(&without("/no-redirects.json", "redirect_uris")), "has no redirect_uris"),
        ("/confidential.json", Canned::json(&confidential), "only public clients"),
        ("/big.json", Canned::with_type("application/json", padded("/big.json")), "larger than 5120 bytes"),
        ("/big-unsized.json", unsized_big, "larger than 5120 bytes"),
        (
            "/html.json",
            Canned::with_type("text/html", client_document(&docs.url("/html.json")).to_string().into_bytes()),
            "not served as application/json",
        ),
        ("/garbage.json", Canned::with_type("application/json", b"{\"client_id\": ".to_vec()), "not valid JSON"),
        (
            "/moved.json",
            Canned {
                status: 302,
                headers: vec![("location".into(), docs.url("/client.json"))],
                body: vec![],
                length: true,
            },
            "redirects are not followed",
        ),
        ("/missing.json", Canned { status: 404, headers: vec![], body: vec![], length: true }, "answered 404"),
    ];
    for (path, canned, why) in cases {
        docs.serve(path, canned);
        assert_client_refused(&o, &docs.url(path), why).await;
    }
    assert_eq!(docs.hits("/client.json"), 0, "the redirect was not followed");
    assert_eq!(o.app().execute("SELECT 1 FROM oauth_grants").await, 0);
}

#[actix_web::test]
async fn metadata_documents_on_loopback_or_private_addresses_are_refused_by_default() {
    let o = OAuthApp::spawn().await;
    let docs = DocServer::start().await;
    let port = docs.port;
    docs.serve("/client.json", Canned::json(&client_document(&docs.url("/client.json"))));
    let metadata = o.app().get(As::Anonymous, "/.well-known/oauth-authorization-server/t/acme").await;
    assert_eq!(metadata.body["client_id_metadata_document_supported"], true);
    let cases = [
        (docs.url("/client.json"), "must use https"),
        (format!("https://127.0.0.1:{port}/client.json"), "names a non-public address"),
        (format!("https://[::1]:{port}/client.json"), "names a non-public address"),
        (format!("https://[::ffff:7f00:1]:{port}/client.json"), "names a non-public address"),
        ("https://10.0.0.1/client.json".to_owned(), "names a non-public address"),
        ("https://169.254.169.254/latest/meta-data/client".to_owned(), "names a non-public address"),
        (format!("https://localhost:{port}/client.json"), "resolves to a non-public address"),
    ];
    for (client_id, why) in &cases {
        assert_client_refused(&o, client_id, why).await;
    }
    assert_eq!(docs.connections(), 0, "nothing reached the loopback server");
}
