//! A small bounded cache with per-entry expiry, for Kontrol's hot path (verified kite keys,
//! key pairs): constant time per lookup and insert, never more than twice its capacity.
//!
//! Entries live in two generations: inserts go to the young one; when it is full it becomes
//! the old one and the previous old generation is dropped whole. A hit in the old
//! generation is moved back to the young one, so entries in use survive. No insert ever
//! walks the cache (a cache that sweeps itself on every insert gets slower as it fills).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Values by exact string key, each valid until its own deadline; at most `2 × capacity`.
pub(crate) struct TtlCache<V> {
    capacity: usize,
    generations: Mutex<Generations<V>>,
}

struct Generations<V> {
    young: HashMap<String, (V, Instant)>,
    old: HashMap<String, (V, Instant)>,
}

impl<V: Clone> TtlCache<V> {
    /// A cache of at most `2 × capacity` entries (`capacity` at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        TtlCache {
            capacity: capacity.max(1),
            generations: Mutex::new(Generations {
                young: HashMap::new(),
                old: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<V>> {
        self.generations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value under `key` if its deadline is after `now`; expired entries are removed.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<V> {
        let mut g = self.lock();
        if let Some((v, until)) = g.young.get(key) {
            if *until > now {
                return Some(v.clone());
            }
            g.young.remove(key);
            return None;
        }
        let (v, until) = g.old.remove(key)?;
        if until <= now {
            return None;
        }
        g.insert(self.capacity, key.to_string(), v.clone(), until);
        Some(v)
    }

    /// Stores `value` under `key` until `until`.
    pub(crate) fn insert(&self, key: &str, value: V, until: Instant) {
        self.lock()
            .insert(self.capacity, key.to_string(), value, until);
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        let mut g = self.lock();
        g.young.clear();
        g.old.clear();
    }

    /// Number of entries held (expired ones not yet dropped included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }
}

impl<V> Generations<V> {
    fn insert(&mut self, capacity: usize, key: String, value: V, until: Instant) {
        if self.young.len() >= capacity && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.old.remove(&key);
        self.young.insert(key, (value, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_expire_at_their_deadline() {
        let c = TtlCache::new(8);
        let t0 = Instant::now();
        c.insert("a", 1, t0 + Duration::from_secs(10));
        c.insert("b", 2, t0 + Duration::from_secs(1));
        assert_eq!(c.get("a", t0 + Duration::from_secs(9)), Some(1));
        assert_eq!(c.get("b", t0 + Duration::from_secs(1)), None);
        assert_eq!(c.get("b", t0), None, "an expired entry is removed");
        assert_eq!(c.get("missing", t0), None);
    }

    #[test]
    fn bounded_and_keeps_entries_in_use() {
        let c = TtlCache::new(100);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        c.insert("hot", 0, later);
        for i in 0..10_000 {
            c.insert(&format!("k{i}"), i, later);
            // Read every 50 inserts: the hot entry moves back to the young generation.
            if i % 50 == 0 {
                assert_eq!(c.get("hot", t0), Some(0), "after {i} inserts");
            }
            assert!(c.len() <= 200, "{} entries after {i} inserts", c.len());
        }
        assert_eq!(c.get("k9999", t0), Some(9999));
        assert_eq!(c.get("k0", t0), None, "old entries are dropped");
        c.clear();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn reinserting_a_key_replaces_it() {
        let c = TtlCache::new(2);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        c.insert("a", 1, later);
        c.insert("b", 2, later);
        c.insert("c", 3, later); // a, b become old
        c.insert("a", 4, later);
        assert_eq!(c.get("a", t0), Some(4));
        assert_eq!(c.len(), 3);
    }
}
