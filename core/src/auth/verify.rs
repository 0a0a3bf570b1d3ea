//! Verification of kite keys and tokens against a trusted Kontrol.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;

use super::claims::{decoding_key, RawJwt};
use super::{now_unix, verify_audience, AuthError, KiteClaims, VERIFY_TTL};
use crate::protocol::Kite;

/// Decides whether a Kontrol public key (PEM) found in a kite key is trusted. Return
/// `Err(KEY_NOT_TRUSTED.into())` for an untrusted key (the verdict is cached); any other
/// error is passed on to the caller and not cached.
pub type VerifyFn = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Checks a token's audience (second argument) against the local kite.
pub type AudienceFn = Arc<dyn Fn(&Kite, &str) -> Result<(), String> + Send + Sync>;

/// The error text a [`VerifyFn`] returns for an untrusted key.
pub const KEY_NOT_TRUSTED: &str = "kontrol key is not trusted";

/// Verifies kite keys and tokens for one kite. Cheap to clone; clones share the key cache.
#[derive(Clone)]
pub struct Verifier {
    kontrol_user: String,
    kontrol_key: Option<Arc<TrustedKey>>,
    verify_fn: Option<VerifyFn>,
    audience_fn: AudienceFn,
    cache: Option<Arc<KeyCache>>,
}

struct TrustedKey {
    pem: String,
    key: DecodingKey,
}

impl Verifier {
    /// A verifier trusting `kontrol_key` (PEM; without it tokens cannot be checked) and
    /// tokens issued by `kontrol_user`. Defaults: no verify function (only the configured
    /// key is trusted for kite keys), verdict cache TTL [`VERIFY_TTL`] (5 min), audience
    /// rule [`verify_audience`].
    pub fn new(
        kontrol_user: impl Into<String>,
        kontrol_key: Option<&str>,
    ) -> Result<Verifier, AuthError> {
        let kontrol_key = match kontrol_key {
            Some(pem) => Some(Arc::new(TrustedKey {
                pem: pem.trim().to_string(),
                key: decoding_key(pem)?,
            })),
            None => None,
        };
        Ok(Verifier {
            kontrol_user: kontrol_user.into(),
            kontrol_key,
            verify_fn: None,
            audience_fn: Arc::new(verify_audience),
            cache: Some(Arc::new(KeyCache::new(VERIFY_TTL))),
        })
    }

    /// Also trusts kite keys whose `kontrolKey` this function accepts (Kontrol uses it to
    /// accept all its current and rotated-away keys).
    pub fn with_verify_fn(
        mut self,
        f: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Verifier {
        self.verify_fn = Some(Arc::new(f));
        self
    }

    /// How long the verify function's verdicts are cached; `None` disables the cache.
    /// Default: 5 min.
    pub fn with_verify_ttl(mut self, ttl: Option<Duration>) -> Verifier {
        self.cache = ttl.map(|t| Arc::new(KeyCache::new(t)));
        self
    }

    /// Replaces the audience rule. Default: [`verify_audience`].
    pub fn with_audience_fn(
        mut self,
        f: impl Fn(&Kite, &str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Verifier {
        self.audience_fn = Arc::new(f);
        self
    }

    /// The Kontrol username tokens must be issued by.
    pub fn kontrol_user(&self) -> &str {
        &self.kontrol_user
    }

    /// The configured Kontrol public key (trimmed PEM).
    pub fn kontrol_key(&self) -> Option<&str> {
        self.kontrol_key.as_deref().map(|k| k.pem.as_str())
    }

    /// Verifies a kite key: RS256, its `kontrolKey` trusted (equal to the configured key or
    /// accepted by the verify function), signed by that key, time claims valid, `sub` set.
    pub fn verify_kite_key(&self, jwt: &str) -> Result<KiteClaims, AuthError> {
        let raw = RawJwt::parse(jwt)?;
        raw.require_rs256()?;
        let pem = raw.claims.kontrol_key.trim();
        if pem.is_empty() {
            return Err(AuthError::NoKontrolKey);
        }
        let key = decoding_key(pem)?;
        let now = Instant::now();
        let signed = match self.known_trust(pem, now) {
            Some(verdict) => {
                verdict?;
                false
            }
            None => {
                // A key not seen before is put to the verify function (and its verdict
                // cached) only when it signed this very kite key: forged keys carrying
                // made-up `kontrolKey`s leave nothing behind.
                if !raw.signature_ok(&key) {
                    return Err(AuthError::InvalidSignature);
                }
                self.ask(pem, now)?;
                true
            }
        };
        raw.claims.check_times(now_unix())?;
        if !signed && !raw.signature_ok(&key) {
            return Err(AuthError::InvalidSignature);
        }
        if raw.claims.sub.is_empty() {
            return Err(AuthError::NoUsername);
        }
        Ok(raw.claims)
    }

    /// Verifies a token for the `local` kite: RS256, issued by the Kontrol user, signed by
    /// the Kontrol key (a bad signature reads "token is expired" so the caller renews),
    /// time claims valid, `aud` and `sub` set, audience matching `local`.
    pub fn verify_token(&self, jwt: &str, local: &Kite) -> Result<KiteClaims, AuthError> {
        let raw = RawJwt::parse(jwt)?;
        let key = self
            .kontrol_key
            .as_deref()
            .ok_or(AuthError::NoKontrolKeyConfigured)?;
        raw.require_rs256()?;
        if raw.claims.iss != self.kontrol_user {
            return Err(AuthError::UntrustedIssuer(raw.claims.iss));
        }
        let times = raw.claims.check_times(now_unix());
        if !raw.signature_ok(&key.key) {
            return Err(AuthError::TokenSignature);
        }
        times?;
        if raw.claims.aud.is_empty() {
            return Err(AuthError::NoAudience);
        }
        if raw.claims.sub.is_empty() {
            return Err(AuthError::NoUsername);
        }
        (self.audience_fn)(local, &raw.claims.aud).map_err(AuthError::Audience)?;
        Ok(raw.claims)
    }

    /// The verdict on `pem` (trimmed) without asking the verify function: the configured
    /// key, or a cached verdict; `None` when unknown.
    fn known_trust(&self, pem: &str, now: Instant) -> Option<Result<(), AuthError>> {
        if self.kontrol_key.as_deref().is_some_and(|k| k.pem == pem) {
            return Some(Ok(()));
        }
        match self.cache.as_deref().and_then(|c| c.get(pem, now)) {
            Some(true) => Some(Ok(())),
            Some(false) => Some(Err(AuthError::CachedUntrusted)),
            None => None,
        }
    }

    /// Asks the verify function whether `pem` may sign kite keys, caching the verdict.
    fn ask(&self, pem: &str, now: Instant) -> Result<(), AuthError> {
        let verdict = match &self.verify_fn {
            Some(f) => f(pem),
            None => Err(KEY_NOT_TRUSTED.to_string()),
        };
        match verdict {
            Ok(()) => {
                self.remember(pem, true, now);
                Ok(())
            }
            Err(e) if e == KEY_NOT_TRUSTED => {
                self.remember(pem, false, now);
                Err(AuthError::KeyNotTrusted)
            }
            Err(e) => Err(AuthError::VerifyFunc(e)),
        }
    }

    fn remember(&self, pem: &str, trusted: bool, now: Instant) {
        if let Some(c) = &self.cache {
            c.set(pem, trusted, now);
        }
    }

    /// Number of verdicts in the cache (bounded by [`VERIFY_CACHE_CAPACITY`]).
    pub fn cached_verdicts(&self) -> usize {
        self.cache.as_deref().map_or(0, KeyCache::len)
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("kontrol_user", &self.kontrol_user)
            .field("kontrol_key", &self.kontrol_key())
            .field("verify_fn", &self.verify_fn.is_some())
            .field("verify_ttl", &self.cache.as_ref().map(|c| c.ttl))
            .finish_non_exhaustive()
    }
}

/// Most verdicts the verify cache holds; the oldest is dropped to make room.
pub const VERIFY_CACHE_CAPACITY: usize = 1024;

/// Verdicts of the verify function per PEM key, each valid for `ttl`, at most
/// [`VERIFY_CACHE_CAPACITY`] of them. Every entry lives equally long, so insertion order is
/// expiry order: a queue of insertions finds the expired and the oldest in O(1).
struct KeyCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    verdicts: HashMap<String, (bool, Instant)>,
    /// Keys in insertion order, with their insertion time (stale pairs are skipped).
    order: VecDeque<(String, Instant)>,
}

impl KeyCache {
    fn new(ttl: Duration) -> KeyCache {
        KeyCache {
            ttl,
            capacity: VERIFY_CACHE_CAPACITY,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .verdicts
            .len()
    }

    fn get(&self, pem: &str, now: Instant) -> Option<bool> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .verdicts
            .get(pem)
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(v, _)| *v)
    }

    fn set(&self, pem: &str, trusted: bool, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Entries { verdicts, order } = &mut *entries;
        // Drop the expired from the front, then the oldest while full.
        while let Some((key, at)) = order.front() {
            let expired = now.saturating_duration_since(*at) >= self.ttl;
            let full =
                verdicts.len() >= self.capacity || order.len() > self.capacity.saturating_mul(2);
            if !expired && !full {
                break;
            }
            if verdicts.get(key).is_some_and(|(_, t)| t == at) {
                verdicts.remove(key);
            }
            order.pop_front();
        }
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        verdicts.insert(pem.to_string(), (trusted, now));
        order.push_back((pem.to_string(), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_entries_expire_after_ttl() {
        let c = KeyCache::new(Duration::from_secs(300));
        let t0 = Instant::now();
        c.set("a", true, t0);
        c.set("b", false, t0);
        assert_eq!(c.get("a", t0 + Duration::from_secs(299)), Some(true));
        assert_eq!(c.get("b", t0 + Duration::from_secs(299)), Some(false));
        assert_eq!(c.get("a", t0 + Duration::from_secs(300)), None);
        assert_eq!(c.get("c", t0), None);
        // Expired entries are dropped on the next insert.
        c.set("c", true, t0 + Duration::from_secs(301));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn cache_is_bounded_and_drops_the_oldest() {
        let c = KeyCache::new(Duration::from_secs(300));
        let t0 = Instant::now();
        for i in 0..VERIFY_CACHE_CAPACITY * 10 {
            c.set(&format!("key{i}"), false, t0);
            assert!(c.len() <= VERIFY_CACHE_CAPACITY);
        }
        let last = VERIFY_CACHE_CAPACITY * 10 - 1;
        assert_eq!(c.get(&format!("key{last}"), t0), Some(false));
        assert_eq!(c.get("key0", t0), None);
        let order = c.entries.lock().unwrap().order.len();
        assert!(order <= VERIFY_CACHE_CAPACITY * 2 + 1, "{order}");
    }
}
