//! Routes, credentials and backends, cached so a call needs no database round trip.
//!
//! Entries live for [`Catalog::TTL`] (one second), which bounds how long a disabled server,
//! revoked key or new version takes to be noticed on this node. Unknown routes and prefixes
//! are cached too, so scanners cannot turn requests into queries. Each map is capped; a full
//! map is cleared rather than grown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use berth_auth::StoredKey;
use berth_core::backend::{Backend, BackendError, BackendResolver};
use berth_core::{ApiKeyId, Slug, VersionId};
use berth_storage::PgPool;
use berth_storage::routing::Route;
use chrono::{DateTime, Utc};

/// The catalog failed to reach the database.
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

/// Cached lookups over the system of record.
pub struct Catalog {
    pool: PgPool,
    routes: CacheMap<(Slug, Slug), Option<Arc<Route>>>,
    keys: CacheMap<String, Option<Arc<StoredKey>>>,
    /// Backends by (version, server revision).
    backends: RwLock<HashMap<BackendKey, Arc<dyn Backend>>>,
    touched: Mutex<HashMap<ApiKeyId, Instant>>,
}

fn get_fresh<K: std::hash::Hash + Eq, T: Clone>(map: &CacheMap<K, T>, key: &K) -> Option<T> {
    let map = map.read().ok()?;
    let entry = map.get(key)?;
    (entry.at.elapsed() < Catalog::TTL).then(|| entry.value.clone())
}

fn put<K: std::hash::Hash + Eq, T>(map: &CacheMap<K, T>, key: K, value: T) {
    if let Ok(mut map) = map.write() {
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, Cached { at: Instant::now(), value });
    }
}

impl Catalog {
    /// How long an entry is trusted.
    pub const TTL: Duration = Duration::from_secs(1);

    /// An empty catalog over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            routes: RwLock::new(HashMap::new()),
            keys: RwLock::new(HashMap::new()),
            backends: RwLock::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// The route of `/t/{tenant}/{server}/mcp`, if it exists.
    pub async fn route(&self, tenant: &Slug, server: &Slug) -> Result<Option<Arc<Route>>, Unavailable> {
        let key = (tenant.clone(), server.clone());
        if let Some(hit) = get_fresh(&self.routes, &key) {
            return Ok(hit);
        }
        let mut conn = self.pool.acquire().await.map_err(|_| Unavailable)?;
        let route = berth_storage::routing::find_route(&mut conn, tenant, server)
            .await
            .map_err(|e| {
                tracing::warn!(error.message = %e, "route lookup failed");
                Unavailable
            })?
            .map(Arc::new);
        put(&self.routes, key, route.clone());
        Ok(route)
    }

    /// The stored key for a prefix, if any (the caller still verifies the secret).
    pub async fn key(&self, prefix: &str) -> Result<Option<Arc<StoredKey>>, Unavailable> {
        if let Some(hit) = get_fresh(&self.keys, &prefix.to_owned()) {
            return Ok(hit);
        }
        let mut conn = self.pool.acquire().await.map_err(|_| Unavailable)?;
        let key = berth_storage::api_keys::find_by_prefix_for_verification(&mut conn, prefix)
            .await
            .map_err(|e| {
                tracing::warn!(error.message = %e, "key lookup failed");
                Unavailable
            })?
            .map(Arc::new);
        put(&self.keys, prefix.to_owned(), key.clone());
        Ok(key)
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
