//! Client ID Metadata Documents: a `client_id` that is an https URL names a JSON document,
//! published by the client, that describes it (name, redirect URIs). The authorization server
//! fetches and caches it instead of looking the client up; no row is stored.
//!
//! The fetch is built against server-side request forgery (the URL comes from anyone):
//! - the URL is checked first ([`cimd::check_client_id_url`]): https, canonical, a path, no
//!   credentials; an IP address host must be public;
//! - a host name is resolved by [`PublicOnly`], which refuses the name when any of its
//!   addresses is loopback, private, link-local, multicast, unspecified or otherwise not
//!   publicly routable ([`cimd::is_public_address`]); the connection goes to those checked
//!   addresses, so a second resolution (DNS rebinding) cannot swap them;
//! - no proxy, no redirects, `Accept: application/json` and a JSON media type required, at most
//!   [`cimd::MAX_DOCUMENT_BYTES`], 3 s to connect and 5 s in all, at most
//!   [`MAX_CONCURRENT_FETCHES`] fetches at once (more are refused, not queued), and at most
//!   [`FETCHES_PER_MINUTE`] a minute for the requests of one address (an IPv6 /64), so nobody
//!   can use Berth to send a stream of requests to a third party.
//!
//! Documents are cached by URL for their `Cache-Control` `max-age`, bounded by
//! [`cimd::MIN_CACHE`] and [`cimd::MAX_CACHE`], in a map of at most [`CACHE_CAPACITY`] entries.
//! The cache is shared by every tenant: a document is public and the same for all of them, while
//! the grants and tokens of the client stay per tenant like any other client's.
//!
//! `allow_insecure_loopback` (`BERTH_OAUTH_CIMD_ALLOW_LOOPBACK`) lets tests serve documents
//! from `http://127.0.0.1`; it must never be set in production.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use berth_auth::cache::TokenCache;
use berth_auth::cimd::{self, ClientMetadata, DocumentError, UrlError};

use crate::limits::AddressLimiter;

/// Most documents fetched at the same time by one process.
pub(crate) const MAX_CONCURRENT_FETCHES: usize = 8;
/// Most documents cached by one process.
pub(crate) const CACHE_CAPACITY: usize = 1_000;
/// Documents fetched (not found in the cache) a minute for the requests of one address.
pub(crate) const FETCHES_PER_MINUTE: u32 = 30;

/// Why a metadata document client was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DocumentRefused {
    /// The URL itself.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The host resolved to an address that may not be fetched.
    #[error("the client_id URL's host resolves to a non-public address")]
    Address,
    /// The fetch failed or was answered with something other than a document.
    #[error("the client metadata document could not be fetched: {0}")]
    Fetch(String),
    /// The document is not acceptable.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The requests of this address fetched their allowance of documents; retry after the wait.
    #[error("too many client metadata documents fetched for this address; try again in {} s", .0.as_secs() + 1)]
    TooMany(Duration),
}

/// Fetches, checks and caches metadata documents.
pub struct ClientDocuments {
    http: Option<reqwest::Client>,
    cache: TokenCache<Arc<ClientMetadata>>,
    fetches: tokio::sync::Semaphore,
    per_address: AddressLimiter,
    allow_insecure_loopback: bool,
}

impl std::fmt::Debug for ClientDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientDocuments")
            .field("allow_insecure_loopback", &self.allow_insecure_loopback)
            .finish_non_exhaustive()
    }
}

/// The address a name resolved to that may not be fetched.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to a non-public address")]
struct NonPublic(String);

/// A resolver that answers only with public addresses, and refuses a name when any of its
/// addresses is not (a mix is what a rebinding attack looks like).
#[derive(Debug, Clone, Copy)]
struct PublicOnly {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() || addrs.iter().any(|a| !cimd::is_public_address(a.ip(), allow_loopback)) {
                return Err(Box::new(NonPublic(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `e` (or one of its causes) is the resolver's refusal.
fn refused_address(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<NonPublic>() {
            return true;
        }
        cause = e.source();
    }
    false
}

fn is_json(content_type: Option<&str>) -> bool {
    let Some(media) = content_type.and_then(|v| v.split(';').next()).map(|v| v.trim().to_ascii_lowercase()) else {
        return false;
    };
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

impl ClientDocuments {
    /// A fetcher; `allow_insecure_loopback` is for tests only (see the module documentation).
    pub fn new(allow_insecure_loopback: bool) -> Self {
        // reqwest's rustls needs a process-wide provider; a second install is a no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .dns_resolver(PublicOnly { allow_loopback: allow_insecure_loopback })
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!allow_insecure_loopback)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .inspect_err(|e| {
                tracing::error!(error.message = %e, "no HTTP client: client metadata documents are unavailable");
            })
            .ok();
        if allow_insecure_loopback {
            tracing::warn!(
                "client metadata documents may be fetched over plain HTTP from loopback addresses: for tests only"
            );
        }
        Self {
            http,
            cache: TokenCache::new(CACHE_CAPACITY),
            fetches: tokio::sync::Semaphore::new(MAX_CONCURRENT_FETCHES),
            per_address: AddressLimiter::new(FETCHES_PER_MINUTE),
            allow_insecure_loopback,
        }
    }

    /// The client that the document at `client_id` describes, from the cache or fetched now on
    /// behalf of a request from `from` (its address, [`crate::client_ip`]).
    pub(crate) async fn client(
        &self,
        client_id: &str,
        from: Option<IpAddr>,
    ) -> Result<Arc<ClientMetadata>, DocumentRefused> {
        let url = cimd::check_client_id_url(client_id, self.allow_insecure_loopback).inspect_err(|e| {
            tracing::info!(client_id, error.message = %e, "client_id URL refused");
        })?;
        let now = chrono::Utc::now().timestamp();
        if let Some(client) = self.cache.get(client_id, now) {
            return Ok(client);
        }
        if let Some(from) = from
            && let Err(wait) = self.per_address.admit(from, std::time::Instant::now())
        {
            tracing::info!(client_id, "client metadata document not fetched: too many for one address");
            return Err(DocumentRefused::TooMany(wait));
        }
        match self.fetch(&url).await {
            Ok((client, lifetime)) => {
                let client = Arc::new(client);
                let expires_at = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
                self.cache.insert(client_id, client.clone(), expires_at, now);
                tracing::info!(client_id, cache_secs = lifetime.as_secs(), "client metadata document fetched");
                Ok(client)
            }
            Err(e) => {
                tracing::info!(client_id, error.message = %e, "client metadata document refused");
                Err(e)
            }
        }
    }

    async fn fetch(&self, url: &url::Url) -> Result<(ClientMetadata, Duration), DocumentRefused> {
        let fetch_error = |why: &str| DocumentRefused::Fetch(why.to_owned());
        let http = self.http.as_ref().ok_or_else(|| fetch_error("this server cannot make HTTP requests"))?;
        let _permit =
            self.fetches.try_acquire().map_err(|_| fetch_error("too many documents are being fetched; try again"))?;
        let request_error = |e: reqwest::Error| {
            if refused_address(&e) {
                DocumentRefused::Address
            } else if e.is_timeout() {
                fetch_error("no answer in time")
            } else {
                fetch_error("the connection failed")
            }
        };
        let mut response = http
            .get(url.as_str())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(request_error)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(DocumentRefused::Fetch(format!("answered {status} (redirects are not followed)")));
        }
        if status != reqwest::StatusCode::OK {
            return Err(DocumentRefused::Fetch(format!("answered {status}")));
        }
        let headers = response.headers();
        let text = |name| headers.get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok());
        if !is_json(text(reqwest::header::CONTENT_TYPE)) {
            return Err(fetch_error("the document is not served as application/json"));
        }
        let lifetime = cimd::cache_lifetime(text(reqwest::header::CACHE_CONTROL));
        let too_large =
            || DocumentRefused::Fetch(format!("the document is larger than {} bytes", cimd::MAX_DOCUMENT_BYTES));
        if response.content_length().is_some_and(|n| n > cimd::MAX_DOCUMENT_BYTES as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if body.len() + chunk.len() > cimd::MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((cimd::parse_document(url.as_str(), &body)?, lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_recognised() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/oauth-client+json")));
        assert!(!is_json(Some("text/html")));
        assert!(!is_json(Some("text/json+html")));
        assert!(!is_json(None));
    }

    #[test]
    fn the_resolvers_refusal_is_found_in_an_error_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] NonPublic);
        assert!(refused_address(&Outer(NonPublic("x".into()))));
        assert!(!refused_address(&std::io::Error::other("refused")));
    }

    #[actix_web::test]
    async fn names_resolving_to_loopback_are_refused_without_a_connection() {
        use reqwest::dns::Resolve;
        let strict = PublicOnly { allow_loopback: false };
        let refused = strict.resolve("localhost".parse().unwrap()).await.err().expect("localhost is refused");
        assert!(refused_address(refused.as_ref()), "{refused}");
        let relaxed = PublicOnly { allow_loopback: true };
        let addrs: Vec<SocketAddr> = relaxed.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
