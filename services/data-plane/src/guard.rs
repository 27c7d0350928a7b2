//! DNS-rebinding protection: `Host` and `Origin` must name the public URL.
//!
//! A loopback public URL (`127.0.0.1`, `::1`, `localhost`) accepts any loopback spelling of
//! the same port, since clients on the machine use them interchangeably.

/// Allowed hosts and origins.
#[derive(Debug, Clone)]
pub struct Guard {
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl Guard {
    /// Derives the rules from `BERTH_PUBLIC_URL`.
    pub fn from_public_url(url: &url::Url) -> Self {
        let scheme = url.scheme();
        let port = url.port_or_known_default();
        let host = url.host_str().unwrap_or("localhost").to_ascii_lowercase();
        let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]" | "::1");
        let names: Vec<String> =
            if loopback { vec!["127.0.0.1".into(), "localhost".into(), "[::1]".into()] } else { vec![host] };
        let default_port = matches!((scheme, port), ("http", Some(80)) | ("https", Some(443)));
        let mut hosts = Vec::new();
        let mut origins = Vec::new();
        for name in names {
            match port {
                Some(p) => {
                    hosts.push(format!("{name}:{p}"));
                    origins.push(format!("{scheme}://{name}:{p}"));
                    if default_port {
                        hosts.push(name.clone());
                        origins.push(format!("{scheme}://{name}"));
                    }
                }
                None => {
                    hosts.push(name.clone());
                    origins.push(format!("{scheme}://{name}"));
                }
            }
        }
        Self { hosts, origins }
    }

    /// Whether the `Host` header is ours (a missing one is refused).
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| self.hosts.iter().any(|ok| ok.eq_ignore_ascii_case(h.trim())))
    }

    /// Whether the `Origin` header, when present, is ours.
    pub fn origin_ok(&self, origin: Option<&str>) -> bool {
        origin.is_none_or(|o| self.origins.iter().any(|ok| ok.eq_ignore_ascii_case(o.trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_public_urls_accept_every_loopback_spelling_of_the_port() {
        let g = Guard::from_public_url(&url::Url::parse("http://127.0.0.1:8080").unwrap());
        for ok in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080", "[::1]:8080"] {
            assert!(g.host_ok(Some(ok)), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "127.0.0.1:9090", "127.0.0.1"] {
            assert!(!g.host_ok(Some(bad)), "{bad}");
        }
        assert!(!g.host_ok(None));
        assert!(g.origin_ok(None));
        assert!(g.origin_ok(Some("http://localhost:8080")));
        assert!(!g.origin_ok(Some("http://evil.example")));
        assert!(!g.origin_ok(Some("https://127.0.0.1:8080")));
    }

    #[test]
    fn public_hosts_accept_only_themselves_with_or_without_the_default_port() {
        let g = Guard::from_public_url(&url::Url::parse("https://mcp.example.com").unwrap());
        assert!(g.host_ok(Some("mcp.example.com")));
        assert!(g.host_ok(Some("mcp.example.com:443")));
        assert!(!g.host_ok(Some("localhost")));
        assert!(g.origin_ok(Some("https://mcp.example.com")));
        assert!(!g.origin_ok(Some("http://mcp.example.com")));
    }
}
