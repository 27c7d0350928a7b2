//! Routes, credentials and backends, cached so a call needs no database round trip.
//!
//! Entries are refreshed after [`Catalog::TTL`] (one second), which bounds how long a change
//! nobody announced takes to be noticed. Kill-switch changes are announced: the control plane
//! sends a `NOTIFY` in the transaction that disables a tenant, server, version, tool or key,
//! and [`killswitch`](crate::killswitch) calls [`Catalog::invalidate`] within milliseconds.
//!
//! **Failing closed.** When a refresh fails (the database is unreachable) an expired entry may
//! still be served, but only while the node can vouch for it: an entry is *confirmed* up to the
//! later of when it was fetched and when the change listener last proved its connection alive
//! (every invalidation before that instant has been applied). An entry confirmed less than
//! `fail_closed_after` ago is served; anything older, or a lookup never cached, answers 503.
//! While the database is down the control plane cannot commit a change either, so serving
//! confirmed entries is safe; the bound covers a node cut off from a database others still
//! reach. Unknown routes and prefixes are cached too (for one TTL only), so scanners cannot
//! turn requests into queries. Each map is capped; a full map is cleared rather than grown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use berth_auth::StoredKey;
use berth_core::backend::{Backend, BackendError, BackendResolver};
use berth_core::{ApiKeyId, Slug, TenantId, VersionId};
use berth_storage::PgPool;
use berth_storage::notify::Change;
use berth_storage::quotas::Policy;
use berth_storage::routing::Route;
use chrono::{DateTime, Utc};

/// The catalog failed to reach the database and holds nothing it can vouch for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable;

const MAX_ENTRIES: usize = 100_000;

/// A backend is reused while the version and the server's revision stay the same.
type BackendKey = (VersionId, DateTime<Utc>);

/// A cache of values by key, each with the time it was fetched.
type CacheMap<K, T> = RwLock<HashMap<K, Cached<T>>>;

struct Cached<T> {
    at: Instant,
    value: T,
}

/// Whether the node can vouch for what it caches: the change listener's last proof of life.
#[derive(Debug)]
pub struct Confirmation {
    epoch: Instant,
    /// Milliseconds after `epoch` when the listener last proved itself (0: never).
    confirmed_ms: AtomicU64,
    /// Entries confirmed longer ago than this are refused when they cannot be refreshed.
    fail_closed_after: Duration,
}

impl Confirmation {
    fn new(fail_closed_after: Duration) -> Self {
        Self { epoch: Instant::now(), confirmed_ms: AtomicU64::new(0), fail_closed_after }
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Records that every change committed before `at` has been applied.
    pub fn confirm(&self, at: Instant) {
        self.confirmed_ms.fetch_max(self.ms(at), Ordering::AcqRel);
    }

    /// When the listener last proved itself, if ever.
    pub fn last(&self) -> Option<Instant> {
        match self.confirmed_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(self.epoch + Duration::from_millis(ms)),
        }
    }

    /// Whether a value fetched at `fetched` may still be served.
    fn vouches_for(&self, fetched: Instant) -> bool {
        let confirmed = self.last().map_or(fetched, |last| last.max(fetched));
        confirmed.elapsed() < self.fail_closed_after
    }

    /// The configured bound.
    pub fn fail_closed_after(&self) -> Duration {
        self.fail_closed_after
    }
}

/// Cached lookups over the system of record.
pub struct Catalog {
    pool: PgPool,
    routes: CacheMap<(Slug, Slug), Option<Arc<Route>>>,
    keys: CacheMap<String, Option<Arc<StoredKey>>>,
    /// Quotas and audit capture per tenant.
    policies: CacheMap<TenantId, Option<Arc<Policy>>>,
    /// Backends by (version, server revision).
    backends: RwLock<HashMap<BackendKey, Arc<dyn Backend>>>,
    touched: Mutex<HashMap<ApiKeyId, Instant>>,
    /// Bumped by every invalidation; a lookup that raced one is not cached.
    generation: AtomicU64,
    confirmation: Confirmation,
    /// After a failed refresh, expired entries are served without trying again until this
    /// many milliseconds after the confirmation epoch, so an outage costs requests no latency.
    backoff_until_ms: AtomicU64,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("confirmation", &self.confirmation).finish_non_exhaustive()
    }
}

/// A fresh entry, or an expired one for the fallback.
enum Lookup<T> {
    Fresh(T),
    Stale(T, Instant),
    Missing,
}

fn lookup<K: std::hash::Hash + Eq, T: Clone>(map: &CacheMap<K, T>, key: &K) -> Lookup<T> {
    let Ok(map) = map.read() else { return Lookup::Missing };
    match map.get(key) {
        Some(entry) if entry.at.elapsed() < Catalog::TTL => Lookup::Fresh(entry.value.clone()),
        Some(entry) => Lookup::Stale(entry.value.clone(), entry.at),
        None => Lookup::Missing,
    }
}

fn put<K: std::hash::Hash + Eq, T>(map: &CacheMap<K, T>, key: K, value: T, at: Instant) {
    if let Ok(mut map) = map.write() {
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, Cached { at, value });
    }
}

impl Catalog {
    /// How long an entry is used before it is refreshed.
    pub const TTL: Duration = Duration::from_secs(1);

    /// How long a refresh may take before the lookup falls back.
    pub const REFRESH_TIMEOUT: Duration = Duration::from_millis(500);

    /// How long after a failed refresh lookups fall back without trying again.
    pub const REFRESH_BACKOFF: Duration = Duration::from_millis(500);

    /// The default of `fail_closed_after`.
    pub const DEFAULT_FAIL_CLOSED_AFTER: Duration = Duration::from_secs(60);

    /// An empty catalog over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self::with_fail_closed_after(pool, Self::DEFAULT_FAIL_CLOSED_AFTER)
    }

    /// An empty catalog that serves unconfirmed entries for at most `fail_closed_after`.
    pub fn with_fail_closed_after(pool: PgPool, fail_closed_after: Duration) -> Self {
        Self {
            pool,
            routes: RwLock::new(HashMap::new()),
            keys: RwLock::new(HashMap::new()),
            policies: RwLock::new(HashMap::new()),
            backends: RwLock::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            confirmation: Confirmation::new(fail_closed_after),
            backoff_until_ms: AtomicU64::new(0),
        }
    }

    /// The pool behind the catalog.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The listener's proof of life.
    pub fn confirmation(&self) -> &Confirmation {
        &self.confirmation
    }

    /// A lookup through the cache with the fail-closed fallback.
    async fn cached<K, T, F>(
        &self,
        map: &CacheMap<K, Option<Arc<T>>>,
        key: K,
        fetch: F,
    ) -> Result<Option<Arc<T>>, Unavailable>
    where
        K: std::hash::Hash + Eq,
        F: AsyncFnOnce(&mut berth_storage::PgConnection) -> berth_storage::Result<Option<T>>,
    {
        let stale = match lookup(map, &key) {
            Lookup::Fresh(hit) => return Ok(hit),
            Lookup::Stale(value, at) => Some((value, at)),
            Lookup::Missing => None,
        };
        let generation = self.generation.load(Ordering::Acquire);
        let started = Instant::now();
        let backing_off = self.confirmation.ms(started) < self.backoff_until_ms.load(Ordering::Acquire);
        let fetched = if backing_off {
            Err(())
        } else {
            let attempt = async {
                let mut conn = self.pool.acquire().await.map_err(berth_storage::Error::from)?;
                fetch(&mut conn).await
            };
            match tokio::time::timeout(Self::REFRESH_TIMEOUT, attempt).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => {
                    tracing::warn!(error.message = %e, "catalog lookup failed");
                    Err(())
                }
                Err(_) => {
                    tracing::warn!("catalog lookup timed out");
                    Err(())
                }
            }
        };
        if fetched.is_err() && !backing_off {
            let until = self.confirmation.ms(Instant::now() + Self::REFRESH_BACKOFF);
            self.backoff_until_ms.fetch_max(until, Ordering::AcqRel);
        }
        match fetched {
            Ok(value) => {
                let value = value.map(Arc::new);
                if self.generation.load(Ordering::Acquire) == generation {
                    put(map, key, value.clone(), started);
                }
                Ok(value)
            }
            // Unknown entries are never served stale: a scanner learns nothing, a new server waits.
            Err(()) => match stale {
                Some((Some(value), at)) if self.confirmation.vouches_for(at) => {
                    metrics::counter!("berth_catalog_stale_served_total").increment(1);
                    Ok(Some(value))
                }
                _ => Err(Unavailable),
            },
        }
    }

    /// The route of `/t/{tenant}/{server}/mcp`, if it exists.
    pub async fn route(&self, tenant: &Slug, server: &Slug) -> Result<Option<Arc<Route>>, Unavailable> {
        self.cached(&self.routes, (tenant.clone(), server.clone()), async |conn| {
            berth_storage::routing::find_route(conn, tenant, server).await
        })
        .await
    }

    /// The stored key for a prefix, if any (the caller still verifies the secret).
    pub async fn key(&self, prefix: &str) -> Result<Option<Arc<StoredKey>>, Unavailable> {
        self.cached(&self.keys, prefix.to_owned(), async |conn| {
            berth_storage::api_keys::find_by_prefix_for_verification(conn, prefix).await
        })
        .await
    }

    /// The quotas and audit capture of `tenant` (of a route already resolved).
    pub async fn policy(&self, tenant: TenantId) -> Result<Arc<Policy>, Unavailable> {
        let policy = self
            .cached(&self.policies, tenant, async |conn| {
                berth_storage::quotas::policy_for_enforcement(conn, tenant).await.map(Some)
            })
            .await?;
        policy.ok_or(Unavailable)
    }

    /// Drops every cached entry `change` may affect. Lookups in flight while this runs are
    /// not cached (they may have read the old state).
    pub fn invalidate(&self, change: &Change) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let tenant = change.tenant();
        if let Ok(mut routes) = self.routes.write() {
            routes.retain(|_, entry| entry.value.as_ref().is_none_or(|route| route.tenant.id != tenant));
        }
        if let Ok(mut keys) = self.keys.write() {
            keys.retain(|_, entry| entry.value.as_ref().is_none_or(|key| key.key.tenant_id != tenant));
        }
        if let Ok(mut policies) = self.policies.write() {
            policies.remove(&tenant);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops everything (the listener reconnected and may have missed changes).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut routes) = self.routes.write() {
            routes.clear();
        }
        if let Ok(mut keys) = self.keys.write() {
            keys.clear();
        }
        if let Ok(mut policies) = self.policies.write() {
            policies.clear();
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records a key's use in the database, at most once a minute per key and off the request path.
    pub fn touch_key(&self, key: &StoredKey) {
        let due = self.touched.lock().is_ok_and(|mut touched| {
            if touched.len() >= MAX_ENTRIES {
                touched.clear();
            }
            let last = touched.entry(key.key.id).or_insert_with(|| Instant::now() - Duration::from_secs(3600));
            if last.elapsed() >= Duration::from_secs(60) {
                *last = Instant::now();
                true
            } else {
                false
            }
        });
        if due {
            let (pool, tenant, id) = (self.pool.clone(), key.key.tenant_id, key.key.id);
            actix_web::rt::spawn(async move {
                if let Ok(mut conn) = pool.acquire().await {
                    let _ = berth_storage::api_keys::touch(&mut conn, tenant, id).await;
                }
            });
        }
    }

    /// The backend serving `route`'s active version, resolved once per version and server
    /// revision (a configuration change touches the server, so it takes effect).
    pub async fn backend(
        &self,
        route: &Route,
        resolver: &dyn BackendResolver,
    ) -> Result<Arc<dyn Backend>, BackendError> {
        let version = route.version.as_ref().ok_or_else(|| BackendError::Unavailable("no active version".into()))?;
        let key = (version.id, route.server.updated_at);
        if let Some(hit) = self.backends.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(hit);
        }
        let backend = resolver.resolve(&route.tenant, &route.server, version).await?;
        if let Ok(mut map) = self.backends.write() {
            if map.len() >= 10_000 {
                map.clear();
            }
            map.insert(key, backend.clone());
        }
        Ok(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfirmed_entry_is_vouched_for_only_within_the_bound() {
        let confirmation = Confirmation::new(Duration::from_millis(200));
        let fetched = Instant::now();
        assert!(confirmation.vouches_for(fetched), "a fresh fetch confirms itself");
        let old = Instant::now().checked_sub(Duration::from_millis(500)).unwrap_or(fetched);
        assert!(!confirmation.vouches_for(old), "nothing confirmed it since");
        confirmation.confirm(Instant::now());
        assert!(confirmation.vouches_for(old), "the listener applied every change up to now");
    }
}
