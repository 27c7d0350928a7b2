//! [`ContainerRuntime`]: the Docker connection, the pools of every version, reconciliation and
//! the janitor; [`ContainerServer`], the [`Backend`] of one container version, and the
//! per-session backends it hands out.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use berth_core::backend::{Backend, BackendError, BackendRequest, BoxFuture, Peer, ServerDescription, ServerEvent};
use berth_core::{ContainerSpec, Transport, VersionId};
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::ContainerSettings;
use crate::bridge::Link;
use crate::docker::{Docker, Labels};
use crate::error::{Error, Result};
use crate::pool::{HttpReplica, StdioInstance, VersionPool};

/// A container start that failed, kept for the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    /// When it failed.
    pub at: SystemTime,
    /// The container's short id (it has been removed since).
    pub container: String,
    /// The image.
    pub image: String,
    /// Why, in words safe to show to the tenant.
    pub reason: String,
    /// The container's last output (stdout and stderr), at most 64 KiB.
    pub logs: String,
}

/// Receives every failed start (the data plane stores them for the admin API).
pub type FailureSink = Arc<dyn Fn(&VersionKey, &StartFailure) + Send + Sync>;

pub(crate) struct RuntimeInner {
    pub(crate) docker: Docker,
    sink: Mutex<Option<FailureSink>>,
    pub(crate) settings: ContainerSettings,
    pub(crate) relay_dir: PathBuf,
    pools: Mutex<HashMap<(VersionId, String), Arc<VersionPool>>>,
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    failures: Mutex<HashMap<String, VecDeque<StartFailure>>>,
}

impl RuntimeInner {
    pub(crate) fn record_failure(&self, key: &VersionKey, failure: StartFailure) {
        if let Some(sink) = self.sink.lock().ok().and_then(|s| s.clone()) {
            sink(key, &failure);
        }
        if let Ok(mut failures) = self.failures.lock() {
            let list = failures.entry(key.version.to_string()).or_default();
            list.push_back(failure);
            while list.len() > self.settings.kept_failures.max(1) {
                list.pop_front();
            }
        }
    }
}

/// Runs container versions on one Docker daemon.
#[derive(Clone)]
pub struct ContainerRuntime {
    inner: Arc<RuntimeInner>,
}

impl std::fmt::Debug for ContainerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerRuntime").field("docker", &self.inner.docker).finish_non_exhaustive()
    }
}

/// Who a container version belongs to, for container names and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionKey {
    /// Tenant id.
    pub tenant_id: berth_core::TenantId,
    /// Tenant slug.
    pub tenant: String,
    /// Server slug.
    pub server: String,
    /// Version id.
    pub version: VersionId,
    /// Version number.
    pub number: i32,
}

impl ContainerRuntime {
    /// Connects to Docker, removes the containers of Berth processes that are gone, and starts
    /// the janitor (health, warm-pool refills, idle drains, periodic reconciliation).
    pub async fn new(settings: ContainerSettings) -> Result<Self> {
        // HTTP containers with egress are reached with rmcp's reqwest client, whose rustls has
        // no provider of its own; a second install is a no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let docker = Docker::connect(&settings).await?;
        docker.reconcile().await?;
        let relay_dir =
            crate::netns::socket_dir().map_err(|e| Error::Docker(format!("cannot create the relay directory: {e}")))?;
        let inner = Arc::new(RuntimeInner {
            docker,
            sink: Mutex::new(None),
            settings,
            relay_dir,
            pools: Mutex::new(HashMap::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            failures: Mutex::new(HashMap::new()),
        });
        tokio::spawn(janitor(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// The backend of one container version. The first call for a version starts a container to
    /// read the server's description (which then waits in the warm pool); later calls reuse it.
    pub async fn server(&self, key: VersionKey, spec: ContainerSpec) -> Result<Arc<ContainerServer>> {
        spec.validate().map_err(|e| Error::Invalid(e.to_string()))?;
        let spec_key = serde_json::to_string(&spec).unwrap_or_default();
        let pool = {
            let mut pools = self.inner.pools.lock().map_err(|_| Error::Docker("poisoned".into()))?;
            pools
                .entry((key.version, spec_key))
                .or_insert_with(|| {
                    let labels = Labels {
                        tenant: key.tenant.clone(),
                        server: key.server.clone(),
                        version: key.version.to_string(),
                        number: key.number,
                    };
                    Arc::new(VersionPool::new(
                        Arc::downgrade(&self.inner),
                        self.inner.docker.clone(),
                        key.clone(),
                        labels,
                        spec,
                    ))
                })
                .clone()
        };
        let description = pool
            .description
            .get_or_try_init(|| async {
                match pool.spec.transport {
                    Transport::Stdio => {
                        let instance = pool.start_stdio().await?;
                        let description = instance.link.description().clone();
                        pool.keep_warm(instance);
                        pool.refill();
                        Ok::<_, Error>(description)
                    }
                    Transport::Http => {
                        let (_, link) = pool.http_link().await?;
                        Ok(link.description().clone())
                    }
                }
            })
            .await?
            .clone();
        Ok(Arc::new(ContainerServer { pool, description }))
    }

    /// Sends every failed start to `sink` as well (the data plane stores them).
    pub fn on_failure(&self, sink: FailureSink) {
        if let Ok(mut slot) = self.inner.sink.lock() {
            *slot = Some(sink);
        }
    }

    /// The failed starts kept for a version, oldest first.
    pub fn failures(&self, version: VersionId) -> Vec<StartFailure> {
        self.inner
            .failures
            .lock()
            .ok()
            .and_then(|f| f.get(&version.to_string()).map(|l| l.iter().cloned().collect()))
            .unwrap_or_default()
    }

    /// Removes the containers of Berth processes that are gone; returns how many.
    pub async fn reconcile(&self) -> Result<usize> {
        self.inner.docker.reconcile().await
    }

    /// Ids of the containers this process runs now.
    pub async fn containers(&self) -> Result<Vec<String>> {
        self.inner.docker.own_containers().await
    }

    /// Warm stdio containers ready for a version (every spec of it).
    pub fn warm(&self, version: VersionId) -> usize {
        self.inner
            .pools
            .lock()
            .map(|p| p.iter().filter(|((v, _), _)| *v == version).map(|(_, pool)| pool.warm_count()).sum())
            .unwrap_or(0)
    }

    /// Removes every container of this runtime and starts no more (graceful shutdown).
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let pools: Vec<Arc<VersionPool>> =
            self.inner.pools.lock().map(|mut p| p.drain().map(|(_, v)| v).collect()).unwrap_or_default();
        for pool in &pools {
            pool.drain();
            pool.drain_replicas().await;
        }
        // Starts already under way finish first; then everything left goes.
        for _ in 0..50 {
            let ids = self.inner.docker.own_containers().await.unwrap_or_default();
            if ids.is_empty() {
                break;
            }
            for id in ids {
                self.inner.docker.remove(&id).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Empty once the relays are gone; a directory still in use stays.
        let _ = std::fs::remove_dir(&self.inner.relay_dir);
    }
}

async fn janitor(runtime: Weak<RuntimeInner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        rounds += 1;
        let Some(inner) = runtime.upgrade() else { break };
        let idle_after = Duration::from_secs(inner.settings.idle_pool_secs);
        let pools: Vec<Arc<VersionPool>> =
            inner.pools.lock().map(|p| p.values().cloned().collect()).unwrap_or_default();
        // Pools still starting their first container are left to `server`.
        for pool in pools.into_iter().filter(|p| p.description.initialized()) {
            let idle = pool.sessions.load(Ordering::SeqCst) == 0
                && pool.last_used.lock().map(|at| at.elapsed() >= idle_after).unwrap_or(false);
            if idle {
                let drained = pool.drain() + pool.drain_replicas().await;
                if drained > 0 {
                    tracing::info!(image = %pool.spec.image, drained, "stopped the containers of an idle version");
                }
            } else {
                pool.refill();
            }
        }
        if rounds.is_multiple_of(12) {
            let _ = inner.docker.reconcile().await;
        }
    }
}

/// The [`Backend`] of one container version. Sessions get their own through
/// [`Backend::session`]; calls on the shared value are refused.
pub struct ContainerServer {
    pool: Arc<VersionPool>,
    description: ServerDescription,
}

impl std::fmt::Debug for ContainerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerServer").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl Backend for ContainerServer {
    fn describe(&self) -> &ServerDescription {
        &self.description
    }

    fn handle(&self, request: BackendRequest, peer: Arc<dyn Peer>) -> BoxFuture<'static, Result<Value, BackendError>> {
        // Not reached through sessions (they call `session`); a one-off backend serves it.
        let session = SessionContainer::new(self.pool.clone(), self.description.clone());
        Box::pin(async move { session.call(request, peer).await })
    }

    fn session(&self) -> Option<Arc<dyn Backend>> {
        Some(Arc::new(SessionContainer::new(self.pool.clone(), self.description.clone())))
    }
}

enum Bound {
    Stdio(Arc<StdioInstance>),
    Http(Arc<HttpReplica>, Arc<Link>),
}

impl Bound {
    fn link(&self) -> &Link {
        match self {
            Bound::Stdio(instance) => &instance.link,
            Bound::Http(_, link) => link,
        }
    }

    fn is_usable(&self) -> bool {
        match self {
            Bound::Stdio(instance) => !instance.link.is_closed(),
            Bound::Http(replica, link) => !link.is_closed() && !replica.dead.load(Ordering::SeqCst),
        }
    }
}

/// One client session's backend: its own stdio container (taken from the warm pool on the
/// first call, removed when the session ends), or its own MCP session with an HTTP replica.
/// A connection that broke is replaced on the next call.
struct SessionContainer {
    pool: Arc<VersionPool>,
    description: ServerDescription,
    bound: Arc<tokio::sync::Mutex<Option<Bound>>>,
    events_tx: mpsc::Sender<ServerEvent>,
    events_rx: Mutex<Option<mpsc::Receiver<ServerEvent>>>,
}

impl SessionContainer {
    fn new(pool: Arc<VersionPool>, description: ServerDescription) -> Self {
        pool.sessions.fetch_add(1, Ordering::SeqCst);
        pool.touch();
        let (events_tx, events_rx) = mpsc::channel(64);
        Self { pool, description, bound: Arc::default(), events_tx, events_rx: Mutex::new(Some(events_rx)) }
    }

    fn call(
        &self,
        request: BackendRequest,
        peer: Arc<dyn Peer>,
    ) -> impl Future<Output = Result<Value, BackendError>> + Send + 'static {
        let (pool, bound, events) = (self.pool.clone(), self.bound.clone(), self.events_tx.clone());
        async move {
            let current = {
                let mut slot = bound.lock().await;
                let reusable = slot.as_ref().filter(|b| b.is_usable()).map(|b| match b {
                    Bound::Stdio(i) => Bound::Stdio(i.clone()),
                    Bound::Http(r, l) => Bound::Http(r.clone(), l.clone()),
                });
                match reusable {
                    Some(b) => b,
                    None => {
                        // Drop the broken one first: its container is removed.
                        *slot = None;
                        let fresh = match pool.spec.transport {
                            Transport::Stdio => Bound::Stdio(Arc::new(pool.take_stdio().await.map_err(unavailable)?)),
                            Transport::Http => {
                                let (replica, link) = pool.http_link().await.map_err(unavailable)?;
                                Bound::Http(replica, Arc::new(link))
                            }
                        };
                        fresh.link().bridge().bind_events(events.clone());
                        let copy = match &fresh {
                            Bound::Stdio(i) => Bound::Stdio(i.clone()),
                            Bound::Http(r, l) => Bound::Http(r.clone(), l.clone()),
                        };
                        *slot = Some(fresh);
                        copy
                    }
                }
            };
            pool.touch();
            let outcome = current.link().call(&request.method, request.params, peer).await;
            if let (Err(BackendError::Unavailable(_)), Bound::Http(replica, link)) = (&outcome, &current)
                && link.is_closed()
            {
                replica.dead.store(true, Ordering::SeqCst);
            }
            outcome
        }
    }
}

fn unavailable(e: Error) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

impl Drop for SessionContainer {
    fn drop(&mut self) {
        self.pool.sessions.fetch_sub(1, Ordering::SeqCst);
        self.pool.touch();
    }
}

impl Backend for SessionContainer {
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
