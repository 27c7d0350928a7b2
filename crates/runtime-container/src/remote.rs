//! The remote kind: an existing MCP server URL proxied by Berth, with the upstream headers (its
//! credentials) held by Berth and added to every upstream request. The client's own token never
//! leaves Berth: the [`Backend`] port has no access to the client's request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::backend::{Backend, BackendError, BackendRequest, BoxFuture, Peer, ServerDescription, ServerEvent};
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::bridge::{Link, lifecycle};
use crate::error::{Error, Result};
use crate::stdio::Death;

/// Connects to remote MCP servers.
#[derive(Debug, Clone)]
pub struct RemoteRuntime {
    max_message_bytes: usize,
    call_timeout: Duration,
}

impl Default for RemoteRuntime {
    fn default() -> Self {
        Self::new(4 * 1024 * 1024, Duration::from_secs(300))
    }
}

/// Where and how to reach one upstream.
#[derive(Clone)]
struct Upstream {
    url: String,
    headers: Arc<BTreeMap<String, String>>,
    max_message_bytes: usize,
    call_timeout: Duration,
}

impl Upstream {
    async fn connect(&self) -> Result<Link> {
        let mut custom = std::collections::HashMap::new();
        for (name, value) in self.headers.iter() {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| Error::Invalid(format!("header {name}: {e}")))?;
            let mut value =
                HeaderValue::from_str(value).map_err(|_| Error::Invalid(format!("header {name} has a bad value")))?;
            value.set_sensitive(true);
            custom.insert(name, value);
        }
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url.clone()).custom_headers(custom);
        config.max_sse_event_size = self.max_message_bytes;
        let transport = StreamableHttpClientTransport::from_config(config);
        let connect = Link::connect(transport, lifecycle(), Death::default(), self.call_timeout);
        match tokio::time::timeout(Duration::from_secs(30), connect).await {
            Ok(Ok(link)) => Ok(link),
            Ok(Err(why)) => Err(Error::Connect(why)),
            Err(_) => Err(Error::Connect("no answer within 30 s".into())),
        }
    }
}

impl RemoteRuntime {
    /// A runtime with these bounds on upstream messages and calls.
    pub fn new(max_message_bytes: usize, call_timeout: Duration) -> Self {
        // reqwest's rustls needs a process-wide provider for HTTPS upstreams; a second install
        // is a no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self { max_message_bytes, call_timeout }
    }

    /// The backend of a remote version: connects once to read the server's description.
    /// `headers` are the decrypted upstream headers.
    pub async fn server(&self, url: &str, headers: BTreeMap<String, String>) -> Result<Arc<RemoteServer>> {
        let upstream = Upstream {
            url: url.to_owned(),
            headers: Arc::new(headers),
            max_message_bytes: self.max_message_bytes,
            call_timeout: self.call_timeout,
        };
        let probe = upstream.connect().await?;
        let description = probe.description().clone();
        drop(probe);
        Ok(Arc::new(RemoteServer { upstream, description }))
    }
}

/// The [`Backend`] of one remote version; each client session gets its own upstream session.
pub struct RemoteServer {
    upstream: Upstream,
    description: ServerDescription,
}

impl std::fmt::Debug for RemoteServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the headers: they are credentials.
        f.debug_struct("RemoteServer").field("url", &self.upstream.url).finish_non_exhaustive()
    }
}

impl Backend for RemoteServer {
    fn describe(&self) -> &ServerDescription {
        &self.description
    }

    fn handle(&self, request: BackendRequest, peer: Arc<dyn Peer>) -> BoxFuture<'static, Result<Value, BackendError>> {
        let session = RemoteSession::new(self.upstream.clone(), self.description.clone());
        Box::pin(async move { session.call(request, peer).await })
    }

    fn session(&self) -> Option<Arc<dyn Backend>> {
        Some(Arc::new(RemoteSession::new(self.upstream.clone(), self.description.clone())))
    }
}

struct RemoteSession {
    upstream: Upstream,
    description: ServerDescription,
    link: Arc<tokio::sync::Mutex<Option<Arc<Link>>>>,
    events_tx: mpsc::Sender<ServerEvent>,
    events_rx: Mutex<Option<mpsc::Receiver<ServerEvent>>>,
}

impl RemoteSession {
    fn new(upstream: Upstream, description: ServerDescription) -> Self {
        let (events_tx, events_rx) = mpsc::channel(64);
        Self { upstream, description, link: Arc::default(), events_tx, events_rx: Mutex::new(Some(events_rx)) }
    }

    fn call(
        &self,
        request: BackendRequest,
        peer: Arc<dyn Peer>,
    ) -> impl Future<Output = Result<Value, BackendError>> + Send + 'static {
        let (upstream, slot, events) = (self.upstream.clone(), self.link.clone(), self.events_tx.clone());
        async move {
            let link = {
                let mut slot = slot.lock().await;
                match slot.as_ref().filter(|l| !l.is_closed()) {
                    Some(link) => link.clone(),
                    None => {
                        let link =
                            Arc::new(upstream.connect().await.map_err(|e| BackendError::Unavailable(e.to_string()))?);
                        link.bridge().bind_events(events);
                        *slot = Some(link.clone());
                        link
                    }
                }
            };
            link.call(&request.method, request.params, peer).await
        }
    }
}

impl Backend for RemoteSession {
    fn describe(&self) -> &ServerDescription {
        &self.description
    }

    fn handle(&self, request: BackendRequest, peer: Arc<dyn Peer>) -> BoxFuture<'static, Result<Value, BackendError>> {
        Box::pin(self.call(request, peer))
    }

    fn events(&self) -> Option<BoxStream<'static, ServerEvent>> {
        let rx = self.events_rx.lock().ok()?.take()?;
        Some(Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })))
    }
}
