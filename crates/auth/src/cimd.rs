//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP authorization
//! §7.2 item 6) without I/O: which `client_id` URLs may be fetched, which addresses the fetch may
//! reach, what a document must contain, and how long it is cached.
//!
//! The fetcher (the control plane's `oauth::cimd`) applies these rules: it refuses a URL before
//! any connection, checks every address a host name resolves to with [`is_public_address`] and
//! connects only to checked addresses, then hands the body to [`parse_document`].

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use crate::oauth::check_redirect_uri;

/// Longest `client_id` URL accepted.
pub const MAX_CLIENT_ID_URL_LEN: usize = 2000;
/// Largest metadata document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Shortest time a fetched document is kept, whatever its `Cache-Control` says: one
/// authorization (authorize, sign-in, consent, token) then fetches it once.
pub const MIN_CACHE: Duration = Duration::from_secs(60);
/// Longest time a fetched document is kept, whatever its `Cache-Control` says.
pub const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);
/// How long a document without `max-age` is kept.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(300);

/// Whether a `client_id` names a metadata document (a URL) rather than a registered client.
///
/// Registered client ids are `bc_...`; anything that starts like an http(s) URL is a document
/// client and goes through [`check_client_id_url`], which refuses what it cannot fetch.
pub fn is_document_client_id(client_id: &str) -> bool {
    let lower = |n: usize| client_id.get(..n).map(str::to_ascii_lowercase);
    lower(8).as_deref() == Some("https://") || lower(7).as_deref() == Some("http://")
}

/// Why a `client_id` URL is refused before anything is fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not a URL Berth will fetch (scheme, user information, fragment, path...).
    #[error("the client_id URL {0}")]
    Shape(&'static str),
    /// The host is an IP address that is not publicly routable.
    #[error("the client_id URL names a non-public address ({0})")]
    Address(IpAddr),
}

/// Checks a `client_id` URL before it is fetched.
///
/// It must be an `https` URL with a host and a path other than `/`, without user information or
/// a fragment, in canonical form (what `url` would serialize: no dot segments, lower-case scheme
/// and host, no default port), so the string compared with the document's `client_id` is the
/// one fetched. An IP address host must be public. With `allow_insecure_loopback` (tests only),
/// `http` is accepted and loopback addresses are too.
pub fn check_client_id_url(client_id: &str, allow_insecure_loopback: bool) -> Result<url::Url, UrlError> {
    if client_id.len() > MAX_CLIENT_ID_URL_LEN {
        return Err(UrlError::Shape("is too long"));
    }
    let url = url::Url::parse(client_id).map_err(|_| UrlError::Shape("is not a valid URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_loopback => {}
        _ => return Err(UrlError::Shape("must use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Shape("must not contain user information"));
    }
    if url.fragment().is_some() || client_id.contains('#') {
        return Err(UrlError::Shape("must not contain a fragment"));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(UrlError::Shape("must contain a path"));
    }
    if url.as_str() != client_id {
        return Err(UrlError::Shape("must be in canonical form (no dot segments, lower-case host, no default port)"));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(UrlError::Shape("must have a host")),
    };
    if let Some(ip) = ip
        && !is_public_address(ip, allow_insecure_loopback)
    {
        return Err(UrlError::Address(ip));
    }
    if url.scheme() == "http" && !is_loopback_host(&url) {
        return Err(UrlError::Shape("must use https (http is allowed on loopback only, for tests)"));
    }
    Ok(url)
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

pub use berth_core::net::is_public_address;

/// A client described by a metadata document that passed [`parse_document`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadata {
    /// The document's URL, equal to its `client_id`.
    pub client_id: String,
    /// `client_name`.
    pub client_name: String,
    /// `redirect_uris`, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Whether the client asked for the `refresh_token` grant.
    pub refresh: bool,
}

impl ClientMetadata {
    /// Whether every redirect URI only reaches the user's own machine: any local program could
    /// then claim to be this client, so the consent page warns.
    pub fn localhost_only(&self) -> bool {
        self.redirect_uris.iter().all(|uri| crate::oauth::is_loopback_redirect(uri))
    }
}

/// Why a fetched document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the client metadata document {0}")]
pub struct DocumentError(pub String);

fn refuse(why: impl Into<String>) -> DocumentError {
    DocumentError(why.into())
}

fn strings(value: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, DocumentError> {
    let Some(value) = value else { return Ok(None) };
    let items = value.as_array().ok_or_else(|| refuse(format!("has a {field} that is not an array")))?;
    items
        .iter()
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| refuse(format!("has a {field} entry that is not a string")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Validates the document fetched from `url`.
///
/// It must be a JSON object whose `client_id` equals `url` exactly and which has a
/// `client_name` (1-200 characters, no control characters) and 1-20 `redirect_uris` (each https,
/// or http on loopback, without fragment). Only public clients are accepted:
/// `token_endpoint_auth_method`, when present, must be `none`, and no `client_secret` may appear.
/// `grant_types`, when present, must include `authorization_code` and may add `refresh_token`
/// (default: both, as for Dynamic Client Registration); `response_types`, when present, must
/// include `code`.
pub fn parse_document(url: &str, body: &[u8]) -> Result<ClientMetadata, DocumentError> {
    let document: Value = serde_json::from_slice(body).map_err(|_| refuse("is not valid JSON"))?;
    let document = document.as_object().ok_or_else(|| refuse("is not a JSON object"))?;
    let client_id = match document.get("client_id") {
        None => return Err(refuse("has no client_id")),
        Some(Value::String(id)) => id,
        Some(_) => return Err(refuse("has a client_id that is not a string")),
    };
    if client_id != url {
        return Err(refuse("names another client_id than its own URL"));
    }
    let client_name = match document.get("client_name") {
        None => return Err(refuse("has no client_name")),
        Some(Value::String(name)) => name.trim(),
        Some(_) => return Err(refuse("has a client_name that is not a string")),
    };
    if client_name.is_empty() || client_name.chars().count() > 200 || client_name.chars().any(char::is_control) {
        return Err(refuse("needs a client_name of 1 to 200 characters without control characters"));
    }
    let redirect_uris =
        strings(document.get("redirect_uris"), "redirect_uris")?.ok_or_else(|| refuse("has no redirect_uris"))?;
    if redirect_uris.is_empty() || redirect_uris.len() > 20 {
        return Err(refuse("must list 1 to 20 redirect_uris"));
    }
    for uri in &redirect_uris {
        check_redirect_uri(uri).map_err(|why| refuse(format!("has a redirect URI that {why}")))?;
    }
    match document.get("token_endpoint_auth_method") {
        None => {}
        Some(Value::String(m)) if m == "none" => {}
        Some(_) => return Err(refuse("must use token_endpoint_auth_method none (only public clients are supported)")),
    }
    if document.contains_key("client_secret") || document.contains_key("client_secret_expires_at") {
        return Err(refuse("must not contain a client secret"));
    }
    let refresh = match strings(document.get("grant_types"), "grant_types")? {
        None => true,
        Some(grants) => {
            if let Some(bad) = grants.iter().find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token")) {
                return Err(refuse(format!(
                    "asks for grant type {bad:?} (supported: authorization_code, refresh_token)"
                )));
            }
            if !grants.iter().any(|g| g == "authorization_code") {
                return Err(refuse("must include the authorization_code grant type"));
            }
            grants.iter().any(|g| g == "refresh_token")
        }
    };
    if let Some(types) = strings(document.get("response_types"), "response_types")?
        && !types.iter().any(|t| t == "code")
    {
        return Err(refuse("must include the code response type"));
    }
    Ok(ClientMetadata { client_id: client_id.clone(), client_name: client_name.to_owned(), redirect_uris, refresh })
}

/// How long to keep a document served with this `Cache-Control` header: its `max-age`
/// (`no-store` and `no-cache` count as 0), [`DEFAULT_CACHE`] without one, always within
/// [`MIN_CACHE`] and [`MAX_CACHE`].
pub fn cache_lifetime(cache_control: Option<&str>) -> Duration {
    let mut lifetime = None;
    for directive in cache_control.unwrap_or("").split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').map_or((directive, None), |(n, v)| (n.trim(), Some(v.trim())));
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            lifetime = Some(Duration::ZERO);
            break;
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Some(secs) = value.map(|v| v.trim_matches('"')).and_then(|v| v.parse::<u64>().ok())
        {
            lifetime = Some(Duration::from_secs(secs));
        }
    }
    lifetime.unwrap_or(DEFAULT_CACHE).clamp(MIN_CACHE, MAX_CACHE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn client_id_urls_must_be_canonical_https_urls_with_a_path() {
        assert!(check_client_id_url("https://app.example.com/oauth/client.json", false).is_ok());
        assert!(check_client_id_url("https://app.example.com/client?v=1", false).is_ok());
        for (bad, why) in [
            ("http://app.example.com/client.json", "http"),
            ("https://app.example.com", "no path"),
            ("https://app.example.com/", "root path"),
            ("https://user:pw@app.example.com/c.json", "user information"),
            ("https://app.example.com/c.json#x", "fragment"),
            ("https://app.example.com/a/../c.json", "dot segment"),
            ("https://APP.example.com/c.json", "upper-case host"),
            ("https://app.example.com:443/c.json", "default port"),
            ("ftp://app.example.com/c.json", "scheme"),
            ("https://app.example.com/c json", "space"),
        ] {
            assert!(matches!(check_client_id_url(bad, false), Err(UrlError::Shape(_))), "{why}: {bad}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(MAX_CLIENT_ID_URL_LEN));
        assert!(check_client_id_url(&long, false).is_err());
    }

    #[test]
    fn client_id_urls_naming_non_public_addresses_are_refused_before_any_fetch() {
        for (url, address) in [
            ("https://127.0.0.1/c.json", "127.0.0.1"),
            ("https://10.0.0.1/c.json", "10.0.0.1"),
            ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
            ("https://[::1]/c.json", "::1"),
            ("https://[::ffff:7f00:1]/c.json", "::ffff:127.0.0.1"),
            ("https://[fd00::1]/c.json", "fd00::1"),
        ] {
            assert_eq!(check_client_id_url(url, false), Err(UrlError::Address(ip(address))), "{url}");
        }
        assert!(check_client_id_url("https://93.184.215.14/c.json", false).is_ok());
    }

    #[test]
    fn the_test_relaxation_allows_http_on_loopback_only() {
        assert!(check_client_id_url("http://127.0.0.1:8080/c.json", false).is_err());
        assert!(check_client_id_url("http://127.0.0.1:8080/c.json", true).is_ok());
        assert!(check_client_id_url("http://[::1]:8080/c.json", true).is_ok());
        assert!(check_client_id_url("https://127.0.0.1:8080/c.json", true).is_ok());
        assert!(matches!(check_client_id_url("http://app.example.com/c.json", true), Err(UrlError::Shape(_))));
        assert!(matches!(check_client_id_url("http://10.0.0.1/c.json", true), Err(UrlError::Address(_))));
        assert!(matches!(check_client_id_url("https://192.168.1.1/c.json", true), Err(UrlError::Address(_))));
    }

    #[test]
    fn document_client_ids_are_told_apart_from_registered_ones() {
        assert!(is_document_client_id("https://app.example.com/c.json"));
        assert!(is_document_client_id("HTTPS://app.example.com/c.json"));
        assert!(is_document_client_id("http://127.0.0.1:9/c.json"));
        assert!(!is_document_client_id("bc_abcdefghijklmnopqrstuv"));
        assert!(!is_document_client_id("https"));
        assert!(!is_document_client_id("é"));
    }

    const URL: &str = "https://app.example.com/client.json";

    fn document(overrides: Value) -> Vec<u8> {
        let mut doc = serde_json::json!({
            "client_id": URL,
            "client_name": "Example app",
            "redirect_uris": ["http://127.0.0.1:3000/callback", "https://app.example.com/cb"],
            "token_endpoint_auth_method": "none",
        });
        for (k, v) in overrides.as_object().unwrap() {
            if v.is_null() {
                doc.as_object_mut().unwrap().remove(k);
            } else {
                doc[k] = v.clone();
            }
        }
        serde_json::to_vec(&doc).unwrap()
    }

    #[test]
    fn a_valid_document_describes_a_public_client() {
        let client = parse_document(URL, &document(serde_json::json!({}))).unwrap();
        assert_eq!(client.client_id, URL);
        assert_eq!(client.client_name, "Example app");
        assert_eq!(client.redirect_uris, vec!["http://127.0.0.1:3000/callback", "https://app.example.com/cb"]);
        assert!(client.refresh);
        assert!(!client.localhost_only());
        let no_refresh = parse_document(URL, &document(serde_json::json!({"grant_types": ["authorization_code"]})));
        assert!(!no_refresh.unwrap().refresh);
        let local = parse_document(URL, &document(serde_json::json!({"redirect_uris": ["http://localhost:1/cb"]})));
        assert!(local.unwrap().localhost_only());
    }

    #[test]
    fn documents_missing_fields_or_naming_another_client_are_refused() {
        for (overrides, why) in [
            (serde_json::json!({"client_id": null}), "no client_id"),
            (serde_json::json!({"client_id": "https://app.example.com/other.json"}), "another client_id"),
            (serde_json::json!({"client_id": "https://app.example.com/client.json/"}), "near miss"),
            (serde_json::json!({"client_id": 7}), "client_id not a string"),
            (serde_json::json!({"client_name": null}), "no client_name"),
            (serde_json::json!({"client_name": " "}), "empty client_name"),
            (serde_json::json!({"client_name": "a\u{7}"}), "control character"),
            (serde_json::json!({"redirect_uris": null}), "no redirect_uris"),
            (serde_json::json!({"redirect_uris": []}), "empty redirect_uris"),
            (serde_json::json!({"redirect_uris": "https://app.example.com/cb"}), "redirect_uris not an array"),
            (serde_json::json!({"redirect_uris": ["http://evil.example/cb"]}), "plain http redirect"),
            (serde_json::json!({"token_endpoint_auth_method": "private_key_jwt"}), "confidential client"),
            (serde_json::json!({"client_secret": "s"}), "client secret"),
            (serde_json::json!({"grant_types": ["implicit", "authorization_code"]}), "unknown grant"),
            (serde_json::json!({"grant_types": ["refresh_token"]}), "no authorization_code"),
            (serde_json::json!({"response_types": ["token"]}), "no code response type"),
        ] {
            assert!(parse_document(URL, &document(overrides)).is_err(), "{why}");
        }
        assert!(parse_document(URL, b"<html></html>").is_err());
        assert!(parse_document(URL, b"[1, 2]").is_err());
    }

    #[test]
    fn cache_lifetimes_follow_max_age_within_bounds() {
        assert_eq!(cache_lifetime(None), DEFAULT_CACHE);
        assert_eq!(cache_lifetime(Some("public, max-age=600")), Duration::from_secs(600));
        assert_eq!(cache_lifetime(Some("max-age=5")), MIN_CACHE);
        assert_eq!(cache_lifetime(Some("max-age=99999999")), MAX_CACHE);
        assert_eq!(cache_lifetime(Some("no-store")), MIN_CACHE);
        assert_eq!(cache_lifetime(Some("max-age=600, no-cache")), MIN_CACHE);
        assert_eq!(cache_lifetime(Some("max-age=banana")), DEFAULT_CACHE);
    }
}
