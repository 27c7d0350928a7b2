//! One version's containers: starting them (with the MCP handshake), the warm pool of stdio
//! containers, the replicas of an HTTP version, health, restarts with backoff, and the record
//! of failed starts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use berth_core::backend::ServerDescription;
use berth_core::{ContainerSpec, Transport};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use crate::bridge::{Link, lifecycle};
use crate::docker::{Docker, Labels, published_port_key, short};
use crate::error::{Error, Result};
use crate::netns::NetnsRelay;
use crate::runtime::{RuntimeInner, StartFailure, VersionKey};
use crate::stdio::{Death, StderrRing, StdioTransport};

/// A container that is removed when the last reference to it goes.
#[derive(Debug)]
pub(crate) struct Container {
    pub(crate) id: String,
    docker: Docker,
}

impl Drop for Container {
    fn drop(&mut self) {
        let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { docker.remove(&id).await });
        }
    }
}

/// A started stdio container with its MCP connection.
#[derive(Debug)]
pub(crate) struct StdioInstance {
    pub(crate) link: Link,
    /// Held for its `Drop`, which removes the container.
    #[expect(dead_code, reason = "held for its Drop")]
    pub(crate) container: Container,
}

/// How the runtime reaches an HTTP container's port.
#[derive(Debug)]
pub(crate) enum Reach {
    /// No network (the default): a relay into the container's own loopback.
    Relay(NetnsRelay),
    /// Egress granted, so the container is on the bridge: its port published on 127.0.0.1.
    Published(u16),
}

/// A started HTTP container and how to reach it.
#[derive(Debug)]
pub(crate) struct HttpReplica {
    pub(crate) container: Container,
    pub(crate) reach: Reach,
    /// The MCP endpoint's path, e.g. `/mcp`.
    path: String,
    pub(crate) dead: AtomicBool,
}

impl HttpReplica {
    /// A new MCP session with this replica.
    pub(crate) async fn connect(&self, max_message_bytes: usize, call_timeout: Duration) -> Result<Link, String> {
        match &self.reach {
            Reach::Relay(relay) => {
                // Origin-form: rmcp's unix-socket client sends the URI as the request target, and
                // servers expect a path there (the Host header falls back to `localhost`).
                let mut config = StreamableHttpClientTransportConfig::with_uri(self.path.clone());
                config.max_sse_event_size = max_message_bytes;
                let socket = relay.path().to_string_lossy().into_owned();
                let transport = StreamableHttpClientTransport::from_unix_socket_with_config(&socket, config);
                Link::connect(transport, lifecycle(), Death::default(), call_timeout).await
            }
            Reach::Published(port) => {
                let uri = format!("http://127.0.0.1:{port}{}", self.path);
                let mut config = StreamableHttpClientTransportConfig::with_uri(uri);
                config.max_sse_event_size = max_message_bytes;
                let transport = StreamableHttpClientTransport::from_config(config);
                Link::connect(transport, lifecycle(), Death::default(), call_timeout).await
            }
        }
    }
}

/// Consecutive failed starts and when the next start may be tried.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
    last: Option<String>,
}

impl Backoff {
    fn delay(failures: u32) -> Duration {
        Duration::from_millis(500u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(30))
    }
}

/// Everything about one version's containers.
pub(crate) struct VersionPool {
    pub(crate) runtime: Weak<RuntimeInner>,
    pub(crate) docker: Docker,
    pub(crate) key: VersionKey,
    pub(crate) labels: Labels,
    pub(crate) spec: ContainerSpec,
    pub(crate) description: tokio::sync::OnceCell<ServerDescription>,
    warm: Mutex<VecDeque<StdioInstance>>,
    filling: AtomicBool,
    replicas: tokio::sync::Mutex<Vec<Arc<HttpReplica>>>,
    next_replica: AtomicUsize,
    backoff: Mutex<Backoff>,
    pub(crate) sessions: AtomicUsize,
    pub(crate) last_used: Mutex<Instant>,
}

impl std::fmt::Debug for VersionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionPool").field("labels", &self.labels).finish_non_exhaustive()
    }
}

impl VersionPool {
    pub(crate) fn new(
        runtime: Weak<RuntimeInner>,
        docker: Docker,
        key: VersionKey,
        labels: Labels,
        spec: ContainerSpec,
    ) -> Self {
        Self {
            runtime,
            docker,
            key,
            labels,
            spec,
            description: tokio::sync::OnceCell::new(),
            warm: Mutex::new(VecDeque::new()),
            filling: AtomicBool::new(false),
            replicas: tokio::sync::Mutex::new(Vec::new()),
            next_replica: AtomicUsize::new(0),
            backoff: Mutex::new(Backoff::default()),
            sessions: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
        }
    }

    fn settings(&self) -> crate::ContainerSettings {
        self.runtime.upgrade().map(|r| r.settings.clone()).unwrap_or_default()
    }

    pub(crate) fn touch(&self) {
        if let Ok(mut at) = self.last_used.lock() {
            *at = Instant::now();
        }
    }

    fn check_backoff(&self) -> Result<()> {
        if self.runtime.upgrade().is_none_or(|r| r.stopping.load(Ordering::SeqCst)) {
            return Err(Error::Start("the container runtime is shutting down".into()));
        }
        let backoff = self.backoff.lock().map_err(|_| Error::Start("poisoned".into()))?;
        if let Some(not_before) = backoff.not_before
            && Instant::now() < not_before
        {
            let last = backoff.last.clone().unwrap_or_default();
            let wait = not_before.saturating_duration_since(Instant::now()).as_millis();
            return Err(Error::Start(format!("{last} (retrying in {wait} ms)")));
        }
        Ok(())
    }

    fn record_outcome(&self, outcome: std::result::Result<(), &str>) {
        if let Ok(mut backoff) = self.backoff.lock() {
            match outcome {
                Ok(()) => *backoff = Backoff::default(),
                Err(why) => {
                    backoff.not_before = Some(Instant::now() + Backoff::delay(backoff.failures));
                    backoff.failures = backoff.failures.saturating_add(1);
                    backoff.last = Some(why.to_owned());
                }
            }
        }
    }

    /// Keeps what a failed start left: the reason and the container's last output.
    async fn failed(&self, id: &str, reason: String, stderr: Option<&StderrRing>) -> Error {
        let mut logs = self.docker.logs(id, 100).await;
        if logs.trim().is_empty()
            && let Some(ring) = stderr
        {
            logs = ring.text();
        }
        let reason = match self.docker.exit_state(id).await {
            Some((code, true)) => {
                format!("{reason} (the container was killed for exceeding its memory limit, exit code {code})")
            }
            Some((code, false)) => format!("{reason} (the container exited with code {code})"),
            None => reason,
        };
        tracing::warn!(container = %short(id), image = %self.spec.image, reason = %reason, "a container failed to start");
        if let Some(runtime) = self.runtime.upgrade() {
            runtime.record_failure(
                &self.key,
                StartFailure {
                    at: SystemTime::now(),
                    container: short(id).to_owned(),
                    image: self.spec.image.clone(),
                    reason: reason.clone(),
                    logs,
                },
            );
        }
        self.docker.remove(id).await;
        self.record_outcome(Err(&reason));
        Error::Start(reason)
    }

    /// Starts a stdio container and completes the MCP handshake.
    pub(crate) async fn start_stdio(&self) -> Result<StdioInstance> {
        self.check_backoff()?;
        let settings = self.settings();
        let id = self.docker.create(&self.spec, &self.labels, true).await?;
        let container = Container { id: id.clone(), docker: self.docker.clone() };
        let attached = match self.docker.attach(&id).await {
            Ok(a) => a,
            Err(e) => return Err(self.failed(&id, format!("cannot attach: {e}"), None).await),
        };
        let (stderr, death) = (StderrRing::new(16 * 1024), Death::default());
        let transport = StdioTransport::new(
            attached.output,
            attached.input,
            settings.max_message_bytes,
            stderr.clone(),
            death.clone(),
        );
        if let Err(e) = self.docker.start(&id).await {
            return Err(self.failed(&id, e.to_string(), Some(&stderr)).await);
        }
        let connect = Link::connect(transport, lifecycle(), death, settings.call_timeout());
        let link = match tokio::time::timeout(settings.start_timeout(), connect).await {
            Ok(Ok(link)) => link,
            Ok(Err(why)) => {
                return Err(self.failed(&id, format!("the MCP handshake failed: {why}"), Some(&stderr)).await);
            }
            Err(_) => {
                let why = format!("no MCP handshake within {} s", settings.start_timeout().as_secs());
                return Err(self.failed(&id, why, Some(&stderr)).await);
            }
        };
        self.record_outcome(Ok(()));
        let _ = self.description.set(link.description().clone());
        Ok(StdioInstance { link, container })
    }

    /// A stdio container for a session: a warm one when there is one, else a new one. The pool
    /// is refilled in the background either way.
    pub(crate) async fn take_stdio(self: &Arc<Self>) -> Result<StdioInstance> {
        self.touch();
        let warm = self.warm.lock().ok().and_then(|mut w| {
            while let Some(instance) = w.pop_front() {
                if !instance.link.is_closed() {
                    return Some(instance);
                }
            }
            None
        });
        let instance = match warm {
            Some(instance) => instance,
            None => self.start_stdio().await?,
        };
        self.refill();
        Ok(instance)
    }

    /// Starts containers in the background until the warm pool is full.
    pub(crate) fn refill(self: &Arc<Self>) {
        let target = self.settings().warm_pool;
        if target == 0 || self.spec.transport != Transport::Stdio || self.filling.swap(true, Ordering::SeqCst) {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            loop {
                let have = pool.warm.lock().map(|w| w.iter().filter(|i| !i.link.is_closed()).count()).unwrap_or(target);
                if have >= target || pool.runtime.strong_count() == 0 {
                    break;
                }
                match pool.start_stdio().await {
                    Ok(instance) => {
                        if let Ok(mut warm) = pool.warm.lock() {
                            warm.retain(|i| !i.link.is_closed());
                            warm.push_back(instance);
                        }
                    }
                    Err(_) => break,
                }
            }
            pool.filling.store(false, Ordering::SeqCst);
        });
    }

    /// Puts a fresh, unused instance (the one started to read the description) into the pool.
    pub(crate) fn keep_warm(&self, instance: StdioInstance) {
        if let Ok(mut warm) = self.warm.lock() {
            warm.push_back(instance);
        }
    }

    /// Removes warm containers (the version is idle).
    pub(crate) fn drain(&self) -> usize {
        self.warm.lock().map(|mut w| w.drain(..).count()).unwrap_or(0)
    }

    pub(crate) fn warm_count(&self) -> usize {
        self.warm.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Starts one HTTP container and waits until its MCP endpoint answers.
    async fn start_http(&self) -> Result<(Arc<HttpReplica>, Link)> {
        self.check_backoff()?;
        let settings = self.settings();
        let port = self.spec.port.ok_or_else(|| Error::Invalid("an http container needs a port".into()))?;
        let path = self.spec.path.clone().unwrap_or_else(|| "/mcp".into());
        let id = self.docker.create(&self.spec, &self.labels, false).await?;
        let container = Container { id: id.clone(), docker: self.docker.clone() };
        if let Err(e) = self.docker.start(&id).await {
            return Err(self.failed(&id, e.to_string(), None).await);
        }
        let deadline = Instant::now() + settings.start_timeout();
        let pid = match self.docker.pid(&id).await {
            Ok(pid) => pid,
            Err(e) => return Err(self.failed(&id, e.to_string(), None).await),
        };
        let reach = if let Some(key) = published_port_key(&self.spec, false) {
            match self.docker.published_port(&id, &key).await {
                Ok(host_port) => Reach::Published(host_port),
                Err(e) => return Err(self.failed(&id, format!("cannot reach the container: {e}"), None).await),
            }
        } else {
            let dir = self
                .runtime
                .upgrade()
                .map(|r| r.relay_dir.clone())
                .ok_or_else(|| Error::Start("the runtime stopped".into()))?;
            match NetnsRelay::start(pid, port, &dir, short(&id)) {
                Ok(relay) => Reach::Relay(relay),
                Err(e) => return Err(self.failed(&id, format!("cannot reach the container: {e}"), None).await),
            }
        };
        let replica = Arc::new(HttpReplica { container, reach, path, dead: AtomicBool::new(false) });
        // The server needs a moment to listen: retry the handshake until the deadline.
        let mut last = String::new();
        while Instant::now() < deadline {
            if self.docker.exit_state(&id).await.is_some() {
                last = "the container exited".into();
                break;
            }
            match tokio::time::timeout(
                Duration::from_secs(5),
                replica.connect(settings.max_message_bytes, settings.call_timeout()),
            )
            .await
            {
                Ok(Ok(link)) => {
                    self.record_outcome(Ok(()));
                    let _ = self.description.set(link.description().clone());
                    return Ok((replica, link));
                }
                Ok(Err(why)) => last = why,
                Err(_) => last = "the handshake timed out".into(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let why = format!("the MCP endpoint did not answer within {} s: {last}", settings.start_timeout().as_secs());
        let replica_id = replica.container.id.clone();
        Err(self.failed(&replica_id, why, None).await)
    }

    /// Makes sure `replicas` HTTP containers run (replacing dead ones); returns a session link
    /// to one of them, round robin.
    pub(crate) async fn http_link(&self) -> Result<(Arc<HttpReplica>, Link)> {
        self.touch();
        let settings = self.settings();
        let target = settings.http_replicas.max(1);
        let mut replicas = self.replicas.lock().await;
        let mut alive = Vec::with_capacity(replicas.len());
        for replica in replicas.drain(..) {
            if !replica.dead.load(Ordering::SeqCst) && self.docker.exit_state(&replica.container.id).await.is_none() {
                alive.push(replica);
            }
        }
        *replicas = alive;
        let mut fresh = None;
        while replicas.len() < target {
            let (replica, link) = self.start_http().await?;
            replicas.push(replica.clone());
            fresh.get_or_insert((replica, link));
        }
        if let Some(first) = fresh {
            return Ok(first);
        }
        let n = self.next_replica.fetch_add(1, Ordering::Relaxed);
        let replica =
            replicas.get(n % replicas.len().max(1)).cloned().ok_or_else(|| Error::Start("no replica".into()))?;
        drop(replicas);
        match replica.connect(settings.max_message_bytes, settings.call_timeout()).await {
            Ok(link) => Ok((replica, link)),
            Err(why) => {
                replica.dead.store(true, Ordering::SeqCst);
                Err(Error::Connect(why))
            }
        }
    }

    /// Stops every replica (the version is idle).
    pub(crate) async fn drain_replicas(&self) -> usize {
        self.replicas.lock().await.drain(..).count()
    }
}
