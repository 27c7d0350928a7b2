//! Outbound HTTP: the `wasi:http` hooks that let a guest reach only the hosts on its server
//! version's egress allowlist, only at publicly routable addresses, with bounded timeouts.
//!
//! A host entry is an exact host name or IP literal (`api.example.com`, `127.0.0.1`) or a
//! wildcard for subdomains (`*.example.com` matches `a.example.com` and `a.b.example.com`, not
//! `example.com`). Matching ignores case, a trailing dot and the port. Anything else fails with
//! `HttpRequestDenied` before a connection is attempted.
//!
//! The allowlist is the tenant's word, so it is not trusted with addresses: a permitted name is
//! resolved here, and if any of its addresses is loopback, private, link-local or otherwise not
//! publicly routable ([`is_public_address`]) the request fails with `DestinationIpProhibited`,
//! unless the address is in one of the operator's `BERTH_WASM_EGRESS_PRIVATE_NETWORKS`. The
//! connection then goes to the checked addresses themselves, so a second resolution (DNS
//! rebinding) cannot swap them. Without this, a tenant could list a name of its own that
//! resolves to `127.0.0.1` and reach what listens there: Berth's API, its PostgreSQL, other
//! tenants' containers' published ports.
//!
//! Cost is bounded: a call may send [`MAX_REQUESTS_PER_CALL`] requests, and the process keeps at
//! most [`MAX_CONNECTIONS`] outbound connections open for all guests together; past either, a
//! request fails with `ConnectionLimitReached` without connecting.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use berth_core::net::{IpNetwork, is_public_address};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Outbound requests one call may send (each its own connection).
const MAX_REQUESTS_PER_CALL: u32 = 64;
/// Outbound connections open at once in the process, for every guest together: a request holds
/// one from before it connects until its connection closes.
const MAX_CONNECTIONS: usize = 512;

static CONNECTIONS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(MAX_CONNECTIONS)));

/// A server version's egress allowlist, with the non-public networks the operator lets every
/// guest reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Allowlist {
    exact: Vec<String>,
    suffixes: Vec<String>,
    private_networks: Arc<[IpNetwork]>,
}

/// `host` without the brackets of an IPv6 literal (`[::1]` is `::1`).
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

fn normalize(host: &str) -> String {
    unbracket(host.trim().trim_end_matches('.')).to_ascii_lowercase()
}

impl Allowlist {
    /// Builds the allowlist from `ServerSpec::egress` entries (empty entries are ignored) and the
    /// operator's `private_networks`.
    pub(crate) fn new(entries: &[String], private_networks: Arc<[IpNetwork]>) -> Self {
        let mut list = Self { private_networks, ..Self::default() };
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

    /// Whether a permitted host may be reached at `ip`.
    pub(crate) fn reaches(&self, ip: IpAddr) -> bool {
        is_public_address(ip, false) || self.private_networks.iter().any(|network| network.contains(ip))
    }
}

/// The `wasi:http` hooks of one call.
pub(crate) struct EgressHooks {
    allowlist: Arc<Allowlist>,
    /// Upper bound for each of the connect, first-byte and between-bytes timeouts.
    timeout: Duration,
    /// Requests this call has sent.
    sent: u32,
}

impl EgressHooks {
    pub(crate) fn new(allowlist: Arc<Allowlist>, timeout: Duration) -> Self {
        Self { allowlist, timeout, sent: 0 }
    }

    /// Counts a request against the call's share and takes one of `connections`; refuses it
    /// when either is used up.
    fn admit(&mut self, connections: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, &'static str> {
        if self.sent >= MAX_REQUESTS_PER_CALL {
            return Err("call");
        }
        let permit = connections.clone().try_acquire_owned().map_err(|_| "process")?;
        self.sent += 1;
        Ok(permit)
    }

    fn bounded(&self, options: Option<RequestOptions>) -> Timeouts {
        let clamp = |asked: Option<Duration>| asked.map_or(self.timeout, |d| d.min(self.timeout));
        let options = options.unwrap_or_default();
        Timeouts {
            connect: clamp(options.connect_timeout),
            first_byte: clamp(options.first_byte_timeout),
            // A zero interval would fire before any byte could arrive.
            between_bytes: clamp(options.between_bytes_timeout).max(Duration::from_millis(1)),
        }
    }
}

/// The timeouts of one request: the guest's, bounded by the call's time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timeouts {
    /// Resolving the name, connecting, the TLS and HTTP handshakes (each).
    connect: Duration,
    /// From sending the request to the response's head.
    first_byte: Duration,
    /// Between two frames of the response's body.
    between_bytes: Duration,
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
            metrics::counter!("berth_wasm_egress_denied_total", "reason" => "host").increment(1);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let permit = match self.admit(&CONNECTIONS) {
            Ok(permit) => permit,
            Err(limit) => {
                tracing::debug!(host = %host, limit, "outbound request refused: too many requests");
                metrics::counter!("berth_wasm_egress_denied_total", "reason" => "limit").increment(1);
                return Box::new(async { Err(HttpError::ConnectionLimitReached) });
            }
        };
        let timeouts = self.bounded(options);
        let allowlist = self.allowlist.clone();
        Box::new(send(request, timeouts, allowlist, permit))
    }
}

/// Where a request goes: the host as TLS names it, its port, and whether it is `https`.
struct Target {
    host: String,
    port: u16,
    tls: bool,
}

impl Target {
    fn of(uri: &http::Uri) -> wasmtime_wasi_http::Result<Self> {
        let tls = match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
            _ => return Err(HttpError::HttpProtocolError),
        };
        let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?;
        let host = unbracket(authority.host()).to_owned();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self { host, port, tls })
    }

    /// The addresses of the host: the literal itself, or what the name resolves to.
    async fn addresses(&self) -> wasmtime_wasi_http::Result<Vec<SocketAddr>> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let found = tokio::net::lookup_host((self.host.as_str(), self.port)).await.map_err(|e| {
            tracing::debug!(host = %self.host, error.message = %e, "outbound request: the host name did not resolve");
            HttpError::DnsError { rcode: None, info_code: None }
        })?;
        let addrs: Vec<SocketAddr> = found.collect();
        if addrs.is_empty() {
            return Err(HttpError::DestinationNotFound);
        }
        Ok(addrs)
    }
}

/// Sends `request` to checked addresses of its host, over HTTP/1.1 (with TLS for `https`),
/// holding `permit` until the connection closes.
async fn send(
    mut request: http::Request<WasiBody>,
    timeouts: Timeouts,
    allowlist: Arc<Allowlist>,
    permit: OwnedSemaphorePermit,
) -> SendResult {
    let target = Target::of(request.uri())?;
    let addrs =
        tokio::time::timeout(timeouts.connect, target.addresses()).await.map_err(|_| HttpError::DnsTimeout)??;
    if let Some(refused) = addrs.iter().find(|addr| !allowlist.reaches(addr.ip())) {
        tracing::debug!(
            host = %target.host,
            address = %refused.ip(),
            "outbound request refused: the host resolves to a non-public address"
        );
        metrics::counter!("berth_wasm_egress_denied_total", "reason" => "address").increment(1);
        return Err(HttpError::DestinationIpProhibited);
    }
    let stream =
        tokio::time::timeout(timeouts.connect, connect(&addrs)).await.map_err(|_| HttpError::ConnectionTimeout)??;
    let stream: Box<dyn Stream> = if target.tls {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        let tls = tokio::time::timeout(timeouts.connect, tls_connector().connect(name, stream))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(HttpError::Tls)?;
        Box::new(tls)
    } else {
        Box::new(stream)
    };
    let (mut sender, connection) =
        tokio::time::timeout(timeouts.connect, hyper::client::conn::http1::handshake(TokioIo::new(stream)))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;

    // On the wire the request line carries the path only; the `Host` header names the host.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| HttpError::HttpRequestUriInvalid)?;

    // The connection's I/O runs while the response is awaited; what is left of it (the body)
    // goes back to wasi-http as the I/O future.
    let mut connection = Some(Box::pin(connection));
    let response = tokio::time::timeout(timeouts.first_byte, sender.send_request(request));
    tokio::pin!(response);
    let response = loop {
        match connection.as_mut() {
            Some(io) => tokio::select! {
                answer = &mut response => break answer,
                ended = io => {
                    connection = None;
                    ended.map_err(hyper_error)?;
                }
            },
            None => break (&mut response).await,
        }
    };
    let response = response.map_err(|_| HttpError::ConnectionReadTimeout)?.map_err(hyper_error)?;
    let response = response.map(|body| {
        let body = Paced {
            body,
            pause: timeouts.between_bytes,
            deadline: Box::pin(tokio::time::sleep(timeouts.between_bytes)),
        };
        http_body_util::BodyExt::boxed_unsync(body)
    });
    let io: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> = Box::new(async move {
        let _permit = permit;
        match connection {
            Some(io) => io.await.map_err(hyper_error),
            None => Ok(()),
        }
    });
    Ok((response, io))
}

fn hyper_error(e: hyper::Error) -> HttpError {
    if e.is_timeout() { HttpError::HttpResponseTimeout } else { HttpError::Hyper(e) }
}

/// Connects to the first of `addrs` that accepts.
async fn connect(addrs: &[SocketAddr]) -> wasmtime_wasi_http::Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
        Some(e) => HttpError::Connect(e),
        None => HttpError::DestinationNotFound,
    })
}

/// TLS with the Mozilla roots (webpki-roots), as wasmtime-wasi-http's own client, made once.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = match rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
            // ring supports the default versions; this keeps a library error from panicking.
            Err(_) => rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth(),
        };
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// A connection, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A response body that fails when no frame arrives within `pause` of the last one.
struct Paced {
    body: hyper::body::Incoming,
    pause: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Body for Paced {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.pause;
                self.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(hyper_error(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::new(&entries.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), Arc::from([]))
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
        let timeouts = hooks.bounded(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(60)),
            first_byte_timeout: Some(Duration::from_millis(10)),
            between_bytes_timeout: None,
        }));
        assert_eq!(
            timeouts,
            Timeouts {
                connect: Duration::from_secs(2),
                first_byte: Duration::from_millis(10),
                between_bytes: Duration::from_secs(2)
            }
        );
        let zero =
            hooks.bounded(Some(RequestOptions { between_bytes_timeout: Some(Duration::ZERO), ..Default::default() }));
        assert_eq!(zero.between_bytes, Duration::from_millis(1));
    }

    #[test]
    fn requests_are_bounded_per_call_and_per_process() {
        let connections = Arc::new(Semaphore::new(2));
        let mut first = EgressHooks::new(Arc::new(Allowlist::default()), Duration::from_secs(1));
        let mut second = EgressHooks::new(Arc::new(Allowlist::default()), Duration::from_secs(1));
        let held = first.admit(&connections).unwrap();
        let _also = second.admit(&connections).unwrap();
        assert_eq!(first.admit(&connections).unwrap_err(), "process", "the process's connections are all taken");
        drop(held);
        let _again = first.admit(&connections).unwrap();
        assert_eq!(first.sent, 2, "a refused request is not counted");

        let plenty = Arc::new(Semaphore::new(1_000));
        let mut call = EgressHooks::new(Arc::new(Allowlist::default()), Duration::from_secs(1));
        for _ in 0..MAX_REQUESTS_PER_CALL {
            drop(call.admit(&plenty).unwrap());
        }
        assert_eq!(call.admit(&plenty).unwrap_err(), "call", "the call's share is used up");
        assert_eq!(plenty.available_permits(), 1_000);
    }

    #[test]
    fn only_public_addresses_are_reached_unless_the_operator_names_a_network() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let strict = list(&["api.example.com"]);
        assert!(strict.reaches(ip("93.184.215.14")));
        for refused in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.1", "169.254.169.254", "fd00::1", "0.0.0.0"] {
            assert!(!strict.reaches(ip(refused)), "{refused}");
        }
        let networks: Vec<IpNetwork> = vec!["10.1.0.0/16".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let relaxed = Allowlist::new(&["api.example.com".to_owned()], Arc::from(networks));
        assert!(relaxed.reaches(ip("10.1.2.3")));
        assert!(relaxed.reaches(ip("127.0.0.1")));
        assert!(relaxed.reaches(ip("::ffff:127.0.0.1")));
        assert!(!relaxed.reaches(ip("127.0.0.2")));
        assert!(!relaxed.reaches(ip("10.2.0.1")));
        assert!(!relaxed.reaches(ip("169.254.169.254")));
    }
}
