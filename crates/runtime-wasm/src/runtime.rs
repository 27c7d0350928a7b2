//! [`WasmRuntime`]: validation, loading (compile or disk cache, then `InstancePre`), and the
//! servers built from loaded components.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use berth_core::backend::{Backend, ServerDescription};
use berth_core::net::IpNetwork;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Cache, Engine};

use crate::bindings::types;
use crate::call::{Answer, CallMetrics, Executor, Export, Guest, ReadyInstances, ServerId};
use crate::egress::Allowlist;
use crate::engine::{Ticker, build_engine, build_linker};
use crate::error::{Error, Result};
use crate::server::{Usage, WasmServer, capabilities};
use crate::store::{CallContext, CallState, StoreLimits, no_client};
use crate::validate::{check_header, check_world};
use crate::{CacheStats, CallStats, ReadyStats, ServerSpec, WasmSettings};

/// The WebAssembly runtime: one engine (with its epoch ticker), the loaded components, and the
/// limits every call gets. Cheap to clone.
#[derive(Clone)]
pub struct WasmRuntime {
    inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) settings: WasmSettings,
    pub(crate) executor: Arc<Executor>,
    /// The id of the next server made ([`ServerId`](crate::call::ServerId)).
    next_server: AtomicU64,
    linker: Linker<CallState>,
    /// Components by SHA-256, while something (a server, a catalog) holds them.
    loaded: Mutex<HashMap<String, Weak<LoadedComponent>>>,
    pub(crate) usage: Usage,
    /// `settings.egress_private_networks`, shared by every server's allowlist.
    pub(crate) private_networks: Arc<[IpNetwork]>,
    compile_cache: Option<Cache>,
    _ticker: Ticker,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

/// A compiled, type-checked component, ready to instantiate (`InstancePre`), with what its
/// `info()` said when it was loaded.
pub struct LoadedComponent {
    sha256: String,
    guest: Guest,
    info: types::ServerInfo,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("sha256", &self.sha256)
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    /// The SHA-256 of the component's bytes (lowercase hex).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// `serverInfo.name` as the guest reported it.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// `serverInfo.version` as the guest reported it.
    pub fn version(&self) -> &str {
        &self.info.version
    }

    /// The guest's instructions, if any.
    pub fn instructions(&self) -> Option<&str> {
        self.info.instructions.as_deref()
    }

    pub(crate) fn guest(&self) -> &Guest {
        &self.guest
    }

    pub(crate) fn description(&self) -> ServerDescription {
        ServerDescription {
            name: self.info.name.clone(),
            version: self.info.version.clone(),
            capabilities: capabilities(),
            instructions: self.info.instructions.clone(),
        }
    }
}

impl WasmRuntime {
    /// Builds the engine (pooling allocator, epoch interruption, compilation cache) and starts
    /// the epoch ticker thread, which stops once the runtime and every server made from it are
    /// dropped.
    pub fn new(settings: WasmSettings) -> Result<Self> {
        let (engine, compile_cache) = build_engine(&settings)?;
        let linker = build_linker(&engine)?;
        let ticker = Ticker::start(engine.weak())?;
        let slots = usize::try_from(settings.max_instances.max(1)).unwrap_or(1);
        let ready = usize::try_from(settings.ready_instances).unwrap_or(0).min(slots / 2);
        let executor = Arc::new(Executor {
            engine,
            limits: StoreLimits { max_memory_bytes: settings.max_memory_bytes, call_timeout: settings.call_timeout },
            slots: Arc::new(Semaphore::new(slots)),
            ready: ReadyInstances::new(ready),
            metrics: CallMetrics::default(),
        });
        let private_networks = Arc::from(settings.egress_private_networks.as_slice());
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                private_networks,
                settings,
                executor,
                next_server: AtomicU64::new(0),
                linker,
                loaded: Mutex::new(HashMap::new()),
                usage: Usage::default(),
                compile_cache,
                _ticker: ticker,
            }),
        })
    }

    /// The settings the runtime was built with.
    pub fn settings(&self) -> &WasmSettings {
        &self.inner.settings
    }

    fn engine(&self) -> &Engine {
        &self.inner.executor.engine
    }

    /// Compiles `bytes` and checks them against the `berth:mcp@0.1.0` world: the component
    /// must export `berth:mcp/server@0.1.0` with every function, and import nothing but WASI
    /// 0.2 (without sockets), `wasi:http` and `berth:mcp`.
    ///
    /// Compiling takes a while (up to seconds for a large component) and blocks: call it off
    /// the async executor (`spawn_blocking`). With a `cache_dir`, the compiled code is kept, so
    /// a later [`load`](Self::load) of the same bytes does not compile again.
    pub fn validate(&self, bytes: &[u8]) -> Result<()> {
        check_header(bytes)?;
        let component = Component::new(self.engine(), bytes)
            .map_err(|e| Error::Invalid(format!("the component does not compile: {e:#}")))?;
        check_world(self.engine(), &self.inner.linker, &component).map(drop)
    }

    /// Loads a component: from memory if it is loaded already, else compiled (or read from the
    /// disk cache), type-checked and pre-instantiated; then calls its `info()` once.
    ///
    /// `sha256` must be the SHA-256 of `bytes` (hex); it keys the in-memory cache, so a
    /// mismatch is refused.
    pub async fn load(&self, sha256: &str, bytes: &[u8]) -> Result<Arc<LoadedComponent>> {
        let key = sha256.to_ascii_lowercase();
        if let Some(loaded) = self.loaded().get(&key).and_then(Weak::upgrade) {
            return Ok(loaded);
        }
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != key {
            return Err(Error::Invalid(format!("the component's SHA-256 is {actual}, not {key}")));
        }
        check_header(bytes)?;
        let engine = self.engine().clone();
        let owned = bytes.to_vec();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, owned))
            .await
            .map_err(|e| Error::Compile(format!("the compiler task failed: {e}")))?
            .map_err(|e| Error::Compile(format!("{e:#}")))?;
        let checked = check_world(self.engine(), &self.inner.linker, &component)?;
        let guest = Guest::new(&checked).map_err(Error::Invalid)?;

        let context = CallContext {
            peer: no_client(),
            spec: Arc::new(ServerSpec::default()),
            egress: Arc::new(Allowlist::default()),
        };
        let (outcome, stats) = self.inner.executor.run(&guest, context, Export::Info, None).await;
        self.inner.usage.record(stats);
        let info = match outcome {
            Ok(Answer::Info(info)) => info,
            Ok(_) => return Err(Error::Start("info() returned something else".to_owned())),
            Err(failure) => return Err(Error::Start(failure.message())),
        };
        let loaded = Arc::new(LoadedComponent { sha256: key.clone(), guest, info });
        let mut cache = self.loaded();
        cache.retain(|_, component| component.strong_count() > 0);
        if let Some(existing) = cache.get(&key).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        cache.insert(key, Arc::downgrade(&loaded));
        Ok(loaded)
    }

    fn loaded(&self) -> MutexGuard<'_, HashMap<String, Weak<LoadedComponent>>> {
        self.inner.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A server: `component` with its own configuration, secrets and egress allowlist.
    pub fn server(&self, component: Arc<LoadedComponent>, spec: ServerSpec) -> Arc<dyn Backend> {
        self.wasm_server(component, spec)
    }

    /// Like [`server`](Self::server), keeping the concrete type to read its usage.
    pub fn wasm_server(&self, component: Arc<LoadedComponent>, spec: ServerSpec) -> Arc<WasmServer> {
        let id: ServerId = self.inner.next_server.fetch_add(1, Ordering::Relaxed);
        Arc::new(WasmServer::new(self.inner.clone(), id, component, spec))
    }

    /// CPU and wall time of every call this runtime ran (including load-time `info()` calls).
    pub fn usage(&self) -> CallStats {
        self.inner.usage.total()
    }

    /// Instances made ahead of calls, and calls that ran in one.
    pub fn ready_stats(&self) -> ReadyStats {
        self.inner.executor.ready.stats()
    }

    /// Hits and misses of the on-disk compilation cache since the runtime started (zero
    /// without a `cache_dir`).
    pub fn cache_stats(&self) -> CacheStats {
        match &self.inner.compile_cache {
            Some(cache) => CacheStats { hits: cache.cache_hits(), misses: cache.cache_misses() },
            None => CacheStats::default(),
        }
    }
}
