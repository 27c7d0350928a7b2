//! Outbound HTTP: the `wasi:http` hooks that let a guest reach only the hosts on its server
//! version's egress allowlist, with bounded timeouts.
//!
//! A host entry is an exact host name or IP literal (`api.example.com`, `127.0.0.1`) or a
//! wildcard for subdomains (`*.example.com` matches `a.example.com` and `a.b.example.com`, not
//! `example.com`). Matching ignores case, a trailing dot and the port. Anything else fails with
//! `HttpRequestDenied` before a connection is attempted.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// A server version's egress allowlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Allowlist {
    exact: Vec<String>,
    suffixes: Vec<String>,
}

fn normalize(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.to_ascii_lowercase()
}

impl Allowlist {
    /// Builds the allowlist from `ServerSpec::egress` entries; empty entries are ignored.
    pub(crate) fn new(entries: &[String]) -> Self {
        let mut list = Self::default();
        for entry in entries {
            let entry = entry.trim();
            if let Some(domain) = entry.strip_prefix("*.") {
                let domain = normalize(domain);
                if !domain.is_empty() {
                    list.suffixes.push(format!(".{domain}"));
                }
            } else {
                let host = normalize(entry);
                if !host.is_empty() {
                    list.exact.push(host);
                }
            }
        }
        list
    }

    /// Whether a request to `host` may leave the sandbox.
    pub(crate) fn permits(&self, host: &str) -> bool {
        let host = normalize(host);
        if host.is_empty() {
            return false;
        }
        self.exact.contains(&host)
            || self.suffixes.iter().any(|suffix| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
    }
}

/// The `wasi:http` hooks of one call.
pub(crate) struct EgressHooks {
    allowlist: Arc<Allowlist>,
    /// Upper bound for each of the connect, first-byte and between-bytes timeouts.
    timeout: Duration,
}

impl EgressHooks {
    pub(crate) fn new(allowlist: Arc<Allowlist>, timeout: Duration) -> Self {
        Self { allowlist, timeout }
    }

    fn bounded(&self, options: Option<RequestOptions>) -> RequestOptions {
        let clamp = |asked: Option<Duration>| Some(asked.map_or(self.timeout, |d| d.min(self.timeout)));
        let options = options.unwrap_or_default();
        RequestOptions {
            connect_timeout: clamp(options.connect_timeout),
            first_byte_timeout: clamp(options.first_byte_timeout),
            between_bytes_timeout: clamp(options.between_bytes_timeout),
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let host = request.uri().host().unwrap_or_default().to_owned();
        if !self.allowlist.permits(&host) {
            tracing::debug!(host = %host, "outbound request refused: host not on the egress allowlist");
            metrics::counter!("berth_wasm_egress_denied_total").increment(1);
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let options = self.bounded(options);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::new(&entries.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn exact_hosts_match_ignoring_case_and_trailing_dot() {
        let allow = list(&["api.example.com", "127.0.0.1", "[::1]"]);
        assert!(allow.permits("api.example.com"));
        assert!(allow.permits("API.Example.com."));
        assert!(allow.permits("127.0.0.1"));
        assert!(allow.permits("[::1]"));
        assert!(!allow.permits("example.com"));
        assert!(!allow.permits("api.example.com.evil.net"));
        assert!(!allow.permits("127.0.0.2"));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let allow = list(&["*.example.com"]);
        assert!(allow.permits("a.example.com"));
        assert!(allow.permits("a.b.example.com"));
        assert!(!allow.permits("example.com"));
        assert!(!allow.permits("badexample.com"));
        assert!(!allow.permits(".example.com"));
    }

    #[test]
    fn an_empty_allowlist_permits_nothing() {
        let allow = list(&["", "*."]);
        assert!(!allow.permits(""));
        assert!(!allow.permits("localhost"));
    }

    #[test]
    fn timeouts_are_bounded() {
        let hooks = EgressHooks::new(Arc::new(Allowlist::default()), Duration::from_secs(2));
        let options = hooks.bounded(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(60)),
            first_byte_timeout: Some(Duration::from_millis(10)),
            between_bytes_timeout: None,
        }));
        assert_eq!(options.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(options.first_byte_timeout, Some(Duration::from_millis(10)));
        assert_eq!(options.between_bytes_timeout, Some(Duration::from_secs(2)));
    }
}
