//! The map from session keys to handles, per-tenant caps and idle expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use actix::Actor;
use berth_core::backend::Backend;
use berth_core::{ServerId, TenantId, VersionId};
use berth_protocol::ProtocolVersion;
use serde_json::{Value, json};

use crate::actor::{Kind, Session, Shared};
use crate::config::SessionConfig;
use crate::error::SessionError;
use crate::handle::SessionHandle;
use crate::hooks::{NoHooks, RequestContext, SessionHooks};
use crate::ids;

/// Who a session belongs to. Modern sessions are keyed by the whole value; a legacy session
/// answers only requests from the same tenant, server and principal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// Tenant id.
    pub tenant: TenantId,
    /// Tenant slug (binds sealed request state).
    pub tenant_slug: String,
    /// Server id.
    pub server: ServerId,
    /// Server slug (binds sealed request state).
    pub server_slug: String,
    /// The server version the session runs.
    pub version: VersionId,
    /// Authenticated principal label (API key id, token subject, or `anonymous`).
    pub principal: String,
}

impl Owner {
    fn same_client(&self, other: &Owner) -> bool {
        self.tenant == other.tenant && self.server == other.server && self.principal == other.principal
    }
}

struct Entry {
    owner: Owner,
    handle: SessionHandle,
}

/// Session caps from the tenant's plan and the caller's key, on top of the node-wide
/// [`SessionConfig::max_sessions_per_tenant`]. `None` means no extra cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionLimits {
    /// Concurrent sessions of the whole tenant on this node.
    pub per_tenant: Option<usize>,
    /// Concurrent sessions of this principal (API key) on this node.
    pub per_principal: Option<usize>,
}

/// How a session is opened, besides its owner and backend.
#[derive(Debug, Clone, Default)]
pub struct Opening {
    /// Caps to check before the session starts.
    pub limits: SessionLimits,
    /// `clientInfo` from `initialize` (legacy).
    pub client: Option<Value>,
    /// The context of the request that opens it.
    pub context: Option<RequestContext>,
}

pub(crate) struct RegistryInner {
    pub(crate) config: Arc<SessionConfig>,
    epoch: Instant,
    legacy: RwLock<HashMap<Arc<str>, Entry>>,
    modern: RwLock<HashMap<Owner, SessionHandle>>,
    per_tenant: Mutex<HashMap<TenantId, usize>>,
    per_principal: Mutex<HashMap<(TenantId, String), usize>>,
    hooks: Arc<dyn SessionHooks>,
}

impl RegistryInner {
    /// Called by a stopping session.
    pub(crate) fn forget(&self, kind: &Kind, owner: &Owner) {
        let removed = match kind {
            Kind::Legacy { id, .. } => self.legacy.write().map(|mut m| m.remove(id).is_some()).unwrap_or(false),
            Kind::Modern => self.modern.write().map(|mut m| m.remove(owner).is_some()).unwrap_or(false),
        };
        if removed {
            self.release(owner);
        }
    }

    fn release(&self, owner: &Owner) {
        if let Ok(mut counts) = self.per_tenant.lock()
            && let Some(n) = counts.get_mut(&owner.tenant)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&owner.tenant);
            }
        }
        let key = (owner.tenant, owner.principal.clone());
        if let Ok(mut counts) = self.per_principal.lock()
            && let Some(n) = counts.get_mut(&key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&key);
            }
        }
    }

    fn reserve(&self, owner: &Owner, limits: SessionLimits) -> Result<(), SessionError> {
        let cap = limits
            .per_tenant
            .map_or(self.config.max_sessions_per_tenant, |plan| plan.min(self.config.max_sessions_per_tenant));
        let mut tenants = self.per_tenant.lock().map_err(|_| SessionError::Busy)?;
        let n = tenants.entry(owner.tenant).or_insert(0);
        if *n >= cap {
            return Err(SessionError::TooMany(cap));
        }
        let mut principals = self.per_principal.lock().map_err(|_| SessionError::Busy)?;
        let m = principals.entry((owner.tenant, owner.principal.clone())).or_insert(0);
        if let Some(cap) = limits.per_principal
            && *m >= cap
        {
            return Err(SessionError::TooManyForKey(cap));
        }
        *n += 1;
        *m += 1;
        Ok(())
    }

    fn start(
        self: &Arc<Self>,
        kind: Kind,
        owner: Owner,
        backend: Arc<dyn Backend>,
        capabilities: Value,
        opening: Opening,
    ) -> SessionHandle {
        let shared = Arc::new(Shared::default());
        crate::actor::touch(&shared, self.epoch);
        let (id, version) = match &kind {
            Kind::Legacy { id, version } => (Some(id.clone()), *version),
            Kind::Modern => (None, ProtocolVersion::V2026_07_28),
        };
        // Backends with per-client state (stdio containers, upstream sessions) give each session its own.
        let backend = backend.session().unwrap_or(backend);
        let session = Session::new(
            kind,
            owner,
            backend,
            capabilities,
            self.config.clone(),
            Arc::downgrade(self),
            self.hooks.clone(),
            opening,
        );
        SessionHandle::new(session.start(), shared, self.epoch, id, version)
    }
}

/// All sessions of this node.
#[derive(Clone)]
pub struct SessionRegistry {
    inner: Arc<RegistryInner>,
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRegistry").field("sessions", &self.len()).finish()
    }
}

/// The `initialize` result for a legacy session.
pub fn initialize_result(backend: &dyn Backend, version: ProtocolVersion) -> Value {
    let description = backend.describe();
    let mut result = json!({
        "protocolVersion": version.as_str(),
        "capabilities": description.capabilities,
        "serverInfo": { "name": description.name, "version": description.version },
    });
    if let (Some(instructions), Value::Object(map)) = (&description.instructions, &mut result) {
        map.insert("instructions".into(), json!(instructions));
    }
    result
}

impl SessionRegistry {
    /// Creates the registry and starts its idle sweeper on the current actix arbiter.
    pub fn new(config: SessionConfig) -> Self {
        Self::with_hooks(config, Arc::new(NoHooks))
    }

    /// Creates the registry with hooks that see every session and call.
    pub fn with_hooks(config: SessionConfig, hooks: Arc<dyn SessionHooks>) -> Self {
        let inner = Arc::new(RegistryInner {
            config: Arc::new(config),
            epoch: Instant::now(),
            legacy: RwLock::new(HashMap::new()),
            modern: RwLock::new(HashMap::new()),
            per_tenant: Mutex::new(HashMap::new()),
            per_principal: Mutex::new(HashMap::new()),
            hooks,
        });
        let weak = Arc::downgrade(&inner);
        let every = inner.config.sweep_interval;
        actix::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                sweep(&inner);
            }
        });
        Self { inner }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// Starts a legacy session after `initialize`; returns its handle (with its new id).
    pub fn initialize(
        &self,
        owner: Owner,
        backend: Arc<dyn Backend>,
        version: ProtocolVersion,
        capabilities: Value,
    ) -> Result<SessionHandle, SessionError> {
        self.open_legacy(owner, backend, version, capabilities, Opening::default())
    }

    /// Starts a legacy session after `initialize`, checking `opening.limits` first.
    pub fn open_legacy(
        &self,
        owner: Owner,
        backend: Arc<dyn Backend>,
        version: ProtocolVersion,
        capabilities: Value,
        opening: Opening,
    ) -> Result<SessionHandle, SessionError> {
        self.inner.reserve(&owner, opening.limits)?;
        let id: Arc<str> = ids::mint(&self.inner.config.session_key, &self.inner.config.node_id).into();
        let handle =
            self.inner.start(Kind::Legacy { id: id.clone(), version }, owner.clone(), backend, capabilities, opening);
        match self.inner.legacy.write() {
            Ok(mut map) => {
                map.insert(id, Entry { owner, handle: handle.clone() });
                Ok(handle)
            }
            Err(_) => {
                handle.terminate();
                self.inner.release(&owner);
                Err(SessionError::Busy)
            }
        }
    }

    /// Finds the legacy session `id` for this client. Forged ids, unknown or expired sessions,
    /// and sessions of another tenant, server or principal are all `NotFound`.
    pub fn legacy(&self, id: &str, client: &Owner) -> Result<SessionHandle, SessionError> {
        ids::verify(&self.inner.config.session_key, id).ok_or(SessionError::NotFound)?;
        let map = self.inner.legacy.read().map_err(|_| SessionError::Busy)?;
        let entry = map.get(id).ok_or(SessionError::NotFound)?;
        if !entry.owner.same_client(client) {
            return Err(SessionError::NotFound);
        }
        entry.handle.touch();
        Ok(entry.handle.clone())
    }

    /// The modern session of `owner`, created on first use with the backend from `backend`.
    pub fn modern(
        &self,
        owner: &Owner,
        backend: impl FnOnce() -> Arc<dyn Backend>,
    ) -> Result<SessionHandle, SessionError> {
        self.open_modern(owner, Opening::default(), backend)
    }

    /// The modern session of `owner`; a new one is checked against `opening.limits` first.
    pub fn open_modern(
        &self,
        owner: &Owner,
        opening: Opening,
        backend: impl FnOnce() -> Arc<dyn Backend>,
    ) -> Result<SessionHandle, SessionError> {
        if let Some(handle) = self.inner.modern.read().ok().and_then(|m| m.get(owner).cloned()) {
            handle.touch();
            return Ok(handle);
        }
        let mut map = self.inner.modern.write().map_err(|_| SessionError::Busy)?;
        if let Some(handle) = map.get(owner) {
            return Ok(handle.clone());
        }
        self.inner.reserve(owner, opening.limits)?;
        let handle = self.inner.start(Kind::Modern, owner.clone(), backend(), json!({}), opening);
        map.insert(owner.clone(), handle.clone());
        Ok(handle)
    }

    /// Sessions on this node.
    pub fn len(&self) -> usize {
        let legacy = self.inner.legacy.read().map(|m| m.len()).unwrap_or(0);
        let modern = self.inner.modern.read().map(|m| m.len()).unwrap_or(0);
        legacy + modern
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions of one tenant.
    pub fn tenant_sessions(&self, tenant: TenantId) -> usize {
        self.inner.per_tenant.lock().ok().and_then(|c| c.get(&tenant).copied()).unwrap_or(0)
    }

    /// Ends every session matching `filter` (kill switch).
    pub fn terminate_where(&self, filter: impl Fn(&Owner) -> bool) {
        self.for_each_where(&filter, SessionHandle::terminate);
    }

    /// The kill switch: ends every session matching `filter`; their in-flight calls are
    /// answered with a JSON-RPC error carrying `reason` before their streams end. Returns how
    /// many sessions were told.
    pub fn kill_where(&self, filter: impl Fn(&Owner) -> bool, reason: &str) -> usize {
        let mut n = 0;
        self.for_each_where(&filter, |handle| {
            handle.kill(reason);
            n += 1;
        });
        n
    }

    /// The owners of the sessions on this node, each once.
    pub fn owners(&self) -> Vec<Owner> {
        let mut owners = std::collections::HashSet::new();
        self.for_each_owner(|owner| {
            if !owners.contains(owner) {
                owners.insert(owner.clone());
            }
        });
        owners.into_iter().collect()
    }

    /// Ends the in-flight calls of `tools` in sessions matching `filter` (tools disabled).
    pub fn kill_tool_calls_where(&self, filter: impl Fn(&Owner) -> bool, tools: &[String], reason: &str) {
        self.for_each_where(&filter, |handle| handle.kill_tool_calls(tools, reason));
    }

    fn for_each_where(&self, filter: &impl Fn(&Owner) -> bool, mut each: impl FnMut(&SessionHandle)) {
        if let Ok(map) = self.inner.legacy.read() {
            for entry in map.values().filter(|e| filter(&e.owner)) {
                each(&entry.handle);
            }
        }
        if let Ok(map) = self.inner.modern.read() {
            for (owner, handle) in map.iter() {
                if filter(owner) {
                    each(handle);
                }
            }
        }
    }

    fn for_each_owner(&self, mut each: impl FnMut(&Owner)) {
        if let Ok(map) = self.inner.legacy.read() {
            map.values().for_each(|entry| each(&entry.owner));
        }
        if let Ok(map) = self.inner.modern.read() {
            map.keys().for_each(&mut each);
        }
    }

    /// Sessions of one principal of one tenant on this node.
    pub fn principal_sessions(&self, tenant: TenantId, principal: &str) -> usize {
        self.inner.per_principal.lock().ok().and_then(|c| c.get(&(tenant, principal.to_owned())).copied()).unwrap_or(0)
    }

    /// Runs one idle sweep now (tests; the sweeper does this every `sweep_interval`).
    pub fn sweep_now(&self) {
        sweep(&self.inner);
    }
}

fn sweep(inner: &RegistryInner) {
    let now = u64::try_from(inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
    let idle = |handle: &SessionHandle, limit: std::time::Duration| {
        now.saturating_sub(handle.last_seen_ms()) >= u64::try_from(limit.as_millis()).unwrap_or(u64::MAX)
    };
    if let Ok(map) = inner.legacy.read() {
        for entry in map.values().filter(|e| idle(&e.handle, inner.config.legacy_idle)) {
            entry.handle.send_idle_check();
        }
    }
    if let Ok(map) = inner.modern.read() {
        for handle in map.values().filter(|h| idle(h, inner.config.modern_idle)) {
            handle.send_idle_check();
        }
    }
}
