//! Small bounded caches for the token path: verified tokens until they expire, and short-lived
//! facts (a grant's revocation state, an issuer's keys) for a fixed time to live.
//!
//! Both are a `RwLock<HashMap>`: reads take the shared lock only, so concurrent requests of
//! different tokens do not contend. A full map first drops what is stale and is cleared when
//! that is not enough, so memory stays bounded under a flood of distinct tokens.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Verified tokens, kept until their own expiry.
#[derive(Debug)]
pub struct TokenCache<V> {
    entries: RwLock<HashMap<Box<str>, (V, i64)>>,
    capacity: usize,
}

impl<V: Clone> TokenCache<V> {
    /// An empty cache holding at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), capacity }
    }

    /// The cached value of `token` if it has not expired at `now` (seconds since the epoch).
    pub fn get(&self, token: &str, now: i64) -> Option<V> {
        let entries = self.entries.read().ok()?;
        let (value, expires_at) = entries.get(token)?;
        (*expires_at > now).then(|| value.clone())
    }

    /// Remembers `token` until `expires_at` (seconds since the epoch).
    pub fn insert(&self, token: &str, value: V, expires_at: i64, now: i64) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= self.capacity {
                entries.retain(|_, (_, exp)| *exp > now);
                if entries.len() >= self.capacity {
                    entries.clear();
                }
            }
            entries.insert(token.into(), (value, expires_at));
        }
    }

    /// Forgets every token.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }
}

/// Values trusted for a fixed time after they were fetched.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    entries: RwLock<HashMap<K, (V, Instant)>>,
    ttl: Duration,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache whose entries live for `ttl`, holding at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), ttl, capacity }
    }

    /// The value of `key` if it was fetched less than the time to live ago.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_within(key, self.ttl)
    }

    /// The value of `key` if it was fetched less than `age` ago.
    pub fn get_within(&self, key: &K, age: Duration) -> Option<V> {
        let entries = self.entries.read().ok()?;
        let (value, at) = entries.get(key)?;
        (at.elapsed() < age).then(|| value.clone())
    }

    /// Stores `value` as fetched now.
    pub fn insert(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= self.capacity {
                let ttl = self.ttl;
                entries.retain(|_, (_, at)| at.elapsed() < ttl);
                if entries.len() >= self.capacity {
                    entries.clear();
                }
            }
            entries.insert(key, (value, Instant::now()));
        }
    }

    /// Drops `key`.
    pub fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_served_until_their_expiry_and_the_map_stays_bounded() {
        let cache = TokenCache::new(2);
        cache.insert("a", 1, 100, 0);
        assert_eq!(cache.get("a", 99), Some(1));
        assert_eq!(cache.get("a", 100), None);
        cache.insert("b", 2, 10, 0);
        cache.insert("c", 3, 200, 50);
        assert_eq!(cache.get("b", 50), None, "the expired entry made room");
        assert_eq!(cache.get("a", 50), Some(1));
        cache.insert("d", 4, 200, 50);
        assert_eq!(cache.get("d", 50), Some(4));
        assert!(cache.get("a", 50).is_none(), "a full map of live entries is cleared");
    }

    #[test]
    fn ttl_entries_expire() {
        let cache = TtlCache::new(Duration::from_millis(20), 10);
        cache.insert("k", true);
        assert_eq!(cache.get(&"k"), Some(true));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get(&"k"), None);
        assert_eq!(cache.get_within(&"k", Duration::from_secs(5)), Some(true));
        cache.remove(&"k");
        assert_eq!(cache.get_within(&"k", Duration::from_secs(5)), None);
    }
}
