//! OAuth 2.1 building blocks without I/O: the URLs of the public contract, opaque secrets
//! (codes, refresh tokens, client secrets, browser sessions), PKCE S256, redirect URI rules and
//! the scopes a token may carry.
//!
//! Opaque secrets are random base62 strings of about 256 bits; only their SHA-256 is stored, as
//! with API keys (see `adr/0004-api-keys.md`).

use berth_core::{Scope, Slug};
use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Lifetime of an access token, in seconds (short: revocation also applies within a second).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 600;
/// Lifetime of an authorization code, in seconds.
pub const CODE_TTL_SECS: i64 = 60;
/// Lifetime of a grant, in seconds: refresh tokens stop working 30 days after consent.
pub const GRANT_TTL_SECS: i64 = 30 * 24 * 3600;
/// Lifetime of a login session at the authorization server, in seconds.
pub const SESSION_TTL_SECS: i64 = 8 * 3600;
/// How long a rotated signing key stays published (and trusted), in seconds. Longer than
/// [`ACCESS_TOKEN_TTL_SECS`], so rotation never breaks a valid token.
pub const RETIRED_KEY_RETENTION_SECS: i64 = 3600;

/// The public URLs of one deployment, derived from `BERTH_PUBLIC_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    base: String,
}

impl Urls {
    /// Wraps the public base URL (a trailing slash is ignored).
    pub fn new(public_url: &url::Url) -> Self {
        Self { base: public_url.as_str().trim_end_matches('/').to_owned() }
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The issuer of a tenant's authorization server: `{public_url}/t/{tenant}`.
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/t/{tenant}", self.base)
    }

    /// A hosted server's MCP endpoint, which is also its resource identifier and its tokens' audience.
    pub fn resource(&self, tenant: &str, server: &str) -> String {
        format!("{}/t/{tenant}/{server}/mcp", self.base)
    }

    /// Where a server's Protected Resource Metadata (RFC 9728) is served.
    pub fn resource_metadata(&self, tenant: &str, server: &str) -> String {
        format!("{}/.well-known/oauth-protected-resource/t/{tenant}/{server}/mcp", self.base)
    }

    /// Reads `(tenant, server)` from a resource URL of this deployment.
    ///
    /// Scheme and host compare case-insensitively (the URL is normalized first); anything else,
    /// a trailing slash included, must match exactly.
    pub fn parse_resource(&self, resource: &str) -> Option<(Slug, Slug)> {
        let normalized = url::Url::parse(resource).ok()?;
        if normalized.query().is_some() || normalized.fragment().is_some() {
            return None;
        }
        let rest = normalized.as_str().strip_prefix(&self.base)?;
        let rest = rest.strip_prefix("/t/")?.strip_suffix("/mcp")?;
        let (tenant, server) = rest.split_once('/')?;
        let tenant = Slug::parse("tenant", tenant).ok()?;
        let server = Slug::parse("server", server).ok()?;
        (self.resource(tenant.as_str(), server.as_str()) == normalized.as_str()).then_some((tenant, server))
    }
}

fn random_base62(len: usize) -> String {
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(len).map(char::from).collect()
}

/// SHA-256 of an opaque secret, the only form in which it is stored.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Kinds of opaque secrets; the prefix tells a leaked string's purpose at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// An authorization code (`bac_`), single use, one minute.
    Code,
    /// A refresh token (`brt_`), single use: each use returns a new one.
    RefreshToken,
    /// A confidential client's secret (`bcs_`).
    ClientSecret,
    /// A browser session at the login page (cookie value).
    Session,
    /// A CSRF token in a form.
    Csrf,
}

impl Secret {
    /// A fresh random value of this kind (43 base62 characters after the prefix).
    pub fn generate(self) -> String {
        let prefix = match self {
            Secret::Code => "bac_",
            Secret::RefreshToken => "brt_",
            Secret::ClientSecret => "bcs_",
            Secret::Session | Secret::Csrf => "",
        };
        format!("{prefix}{}", random_base62(43))
    }
}

/// A fresh client id for a registered client (`bc_` and 22 base62 characters).
pub fn generate_client_id() -> String {
    format!("bc_{}", random_base62(22))
}

/// Compares two secrets in constant time.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The S256 challenge of a PKCE verifier: `BASE64URL(SHA256(verifier))`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `challenge` has the shape of an S256 challenge (43 base64url characters).
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `verifier` (RFC 7636 §4.1: 43-128 unreserved characters) hashes to `challenge`.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let shaped = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    shaped && secrets_equal(&pkce_challenge(verifier), challenge)
}

/// Checks a redirect URI for registration (MCP authorization: HTTPS, or HTTP on loopback).
///
/// Returns the URI unchanged; requests must later present it byte for byte (exact matching).
pub fn check_redirect_uri(uri: &str) -> Result<&str, &'static str> {
    let parsed = url::Url::parse(uri).map_err(|_| "must be an absolute URL")?;
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err("must not contain a fragment");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain user information");
    }
    match (parsed.scheme(), parsed.host_str()) {
        ("https", Some(_)) => Ok(uri),
        ("http", Some(host)) if is_loopback(host) => Ok(uri),
        ("http", _) => Err("must use https unless the host is localhost, 127.0.0.1 or [::1]"),
        _ => Err("must be an https URL or an http URL on localhost"),
    }
}

fn is_loopback(host: &str) -> bool {
    matches!(host.to_ascii_lowercase().as_str(), "localhost" | "127.0.0.1" | "[::1]")
}

/// The host a redirect URI sends the browser to, shown on the consent page.
pub fn redirect_host(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| uri.to_owned())
}

/// Whether a redirect URI only reaches this machine (the consent page warns about those).
pub fn is_loopback_redirect(uri: &str) -> bool {
    url::Url::parse(uri).ok().and_then(|u| u.host_str().map(is_loopback)).unwrap_or(false)
}

/// `offline_access`: accepted in requests for compatibility; refresh tokens are issued to every
/// client registered for the `refresh_token` grant regardless.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Parses a space-delimited OAuth `scope` parameter into the scopes a token may carry.
///
/// Only `mcp` is grantable to OAuth clients (admin scopes stay with API keys; see
/// `docs/scopes.md`); `offline_access` is accepted and ignored. An absent or empty parameter
/// means `mcp`.
pub fn parse_requested_scope(scope: Option<&str>) -> Result<Vec<Scope>, String> {
    let mut scopes = Vec::new();
    for item in scope.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        match item {
            "mcp" => scopes.push(Scope::Mcp),
            OFFLINE_ACCESS => {}
            other => return Err(format!("unsupported scope {other:?} (supported: mcp)")),
        }
    }
    if scopes.is_empty() {
        scopes.push(Scope::Mcp);
    }
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

/// The `scope` string of granted scopes.
pub fn scope_string(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls() -> Urls {
        Urls::new(&url::Url::parse("http://127.0.0.1:8080/").unwrap())
    }

    #[test]
    fn urls_follow_the_public_contract() {
        let u = urls();
        assert_eq!(u.issuer("acme"), "http://127.0.0.1:8080/t/acme");
        assert_eq!(u.resource("acme", "files"), "http://127.0.0.1:8080/t/acme/files/mcp");
        assert_eq!(
            u.resource_metadata("acme", "files"),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/t/acme/files/mcp"
        );
    }

    #[test]
    fn resources_parse_back_to_slugs_only_when_exact() {
        let u = urls();
        let (t, s) = u.parse_resource("http://127.0.0.1:8080/t/acme/files/mcp").unwrap();
        assert_eq!((t.as_str(), s.as_str()), ("acme", "files"));
        assert!(u.parse_resource("HTTP://127.0.0.1:8080/t/acme/files/mcp").is_some());
        for bad in [
            "http://127.0.0.1:8080/t/acme/files/mcp/",
            "http://127.0.0.1:9090/t/acme/files/mcp",
            "https://127.0.0.1:8080/t/acme/files/mcp",
            "http://127.0.0.1:8080/t/acme/files/mcp?x=1",
            "http://127.0.0.1:8080/t/acme/files/sse",
            "http://127.0.0.1:8080/t/ACME/files/mcp",
            "http://127.0.0.1:8080/t/acme/a/b/mcp",
            "not a url",
        ] {
            assert!(u.parse_resource(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn pkce_accepts_only_the_matching_verifier() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(pkce_challenge(verifier), challenge);
        assert!(is_s256_challenge(challenge));
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl", challenge));
        assert!(!pkce_matches("short", &pkce_challenge("short")), "verifiers under 43 characters are refused");
        assert!(!is_s256_challenge(verifier.get(..42).unwrap()));
    }

    #[test]
    fn redirect_uris_must_be_https_or_loopback_http_without_fragments() {
        for ok in
            ["https://app.example.com/cb", "http://127.0.0.1:3000/callback", "http://localhost/cb", "http://[::1]:1/cb"]
        {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://evil.example/cb",
            "https://app.example.com/cb#frag",
            "cursor://callback",
            "/relative",
            "https://user:pw@app.example.com/cb",
            "javascript:alert(1)",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
        assert_eq!(redirect_host("https://app.example.com:8443/cb"), "app.example.com:8443");
        assert!(is_loopback_redirect("http://127.0.0.1:3000/cb"));
        assert!(!is_loopback_redirect("https://app.example.com/cb"));
    }

    #[test]
    fn scopes_default_to_mcp_and_refuse_admin_scopes() {
        assert_eq!(parse_requested_scope(None).unwrap(), vec![Scope::Mcp]);
        assert_eq!(parse_requested_scope(Some("mcp offline_access")).unwrap(), vec![Scope::Mcp]);
        assert_eq!(parse_requested_scope(Some("offline_access")).unwrap(), vec![Scope::Mcp]);
        assert!(parse_requested_scope(Some("mcp admin")).is_err());
        assert_eq!(scope_string(&[Scope::Mcp]), "mcp");
    }

    #[test]
    fn generated_secrets_have_their_prefix_and_differ() {
        let a = Secret::RefreshToken.generate();
        let b = Secret::RefreshToken.generate();
        assert!(a.starts_with("brt_") && a.len() == 47);
        assert_ne!(a, b);
        assert_eq!(secret_hash(&a).len(), 32);
        assert!(secrets_equal(&a, &a.clone()));
        assert!(!secrets_equal(&a, &b));
        assert!(!secrets_equal("", ""));
        assert!(generate_client_id().starts_with("bc_"));
    }
}
