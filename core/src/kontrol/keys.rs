//! Kontrol's key pairs: the current signing pair, verification of kite keys against every
//! pair Kontrol knows (deleted ones included, so their kites can be moved), re-signing, and
//! the token cache.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cache::TtlCache;
use crate::auth::{
    mint_token, sign, AuthError, KeyPair, KiteClaims, Verifier, TOKEN_LEEWAY, TOKEN_TTL,
};
use crate::kontrol::storage::{Storage, StorageError};

/// Current time in Unix seconds (0 before 1970).
fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Tokens minted, per (audience, user, issuer, key pair), reused until shortly before expiry
/// (like the reference). Bounded: audiences come from callers' queries.
pub(crate) struct TokenCache {
    tokens: TtlCache<String>,
    /// Tokens minted (`kontrol_tokens_issued_total` when metrics are on).
    pub(crate) minted: prometheus_client::metrics::counter::Counter,
}

/// Tokens held, per generation (see [`TtlCache`]).
const TOKEN_CAPACITY: usize = 16_384;

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            tokens: TtlCache::new(TOKEN_CAPACITY),
            minted: Default::default(),
        }
    }
}

impl TokenCache {
    pub(crate) fn get_or_mint(
        &self,
        pair: &KeyPair,
        issuer: &str,
        username: &str,
        audience: &str,
        force: bool,
    ) -> Result<String, AuthError> {
        let key = format!("{audience}\u{0}{username}\u{0}{issuer}\u{0}{}", pair.id);
        let now = Instant::now();
        if !force {
            if let Some(t) = self.tokens.get(&key, now) {
                return Ok(t);
            }
        }
        let token = mint_token(pair, issuer, username, audience, TOKEN_TTL, TOKEN_LEEWAY)?;
        self.minted.inc();
        // Reuse for TTL − leeway, like the reference.
        self.tokens.insert(
            &key,
            token.clone(),
            now + TOKEN_TTL.saturating_sub(TOKEN_LEEWAY),
        );
        Ok(token)
    }
}

/// How long a key pair looked up in storage is used without asking storage again. Changes
/// made through this Kontrol are seen at once (it clears its caches); changes made through
/// another Kontrol sharing the storage within this time.
const PAIR_TTL: Duration = Duration::from_secs(5);

/// How long a kite key whose signature checked is taken as checked (never past its `exp`).
const VERIFIED_TTL: Duration = Duration::from_secs(5 * 60);

/// Kite keys held as checked, per generation (see [`TtlCache`]): about 2 kB each.
const VERIFIED_CAPACITY: usize = 4096;

/// Key pairs held, per generation; only pairs found in storage are cached.
const PAIR_CAPACITY: usize = 64;

/// Kite key verification with caches, so that a caller's kite key costs an RSA check and a
/// storage lookup once, not on every call.
///
/// - `verified`: kite keys whose signature and time claims checked, keyed by their exact
///   text, until the earlier of their `exp` and [`VERIFIED_TTL`]. Only successes are kept,
///   so filling it takes validly signed kite keys; it is bounded all the same.
/// - `by_public`, `by_id`: key pairs found in storage (active, or deleted), for
///   [`PAIR_TTL`]. A kite key's `kontrolKey` is looked up on every call (through this
///   cache), so a pair that storage stops knowing stops being trusted within that time.
/// - `parsed`: public keys parsed for verification, per PEM.
pub(crate) struct VerifierCache {
    verified: TtlCache<Arc<KiteClaims>>,
    by_public: TtlCache<Option<KeyPair>>,
    by_id: TtlCache<Option<KeyPair>>,
    parsed: TtlCache<Verifier>,
}

impl Default for VerifierCache {
    fn default() -> Self {
        VerifierCache {
            verified: TtlCache::new(VERIFIED_CAPACITY),
            by_public: TtlCache::new(PAIR_CAPACITY),
            by_id: TtlCache::new(PAIR_CAPACITY),
            parsed: TtlCache::new(PAIR_CAPACITY),
        }
    }
}

/// A kite key checked against the Kontrol key pair it names.
pub(crate) struct CheckedKey {
    pub claims: KiteClaims,
    /// The pair the key is signed with; `None` when that pair was deleted (the kite must be
    /// re-signed with the current pair).
    pub pair: Option<KeyPair>,
}

impl VerifierCache {
    /// Verifies a kite key: its `kontrolKey` must be one of Kontrol's pairs (active or
    /// deleted) and the signature must check with it.
    pub(crate) async fn check_kite_key(
        &self,
        storage: &dyn Storage,
        jwt: &str,
    ) -> Result<CheckedKey, String> {
        let now = Instant::now();
        if let Some(claims) = self.verified.get(jwt, now) {
            // Still one of Kontrol's pairs? (Cached for PAIR_TTL.)
            let pair = self
                .pair_by_public(storage, claims.kontrol_key.trim())
                .await?;
            return Ok(CheckedKey {
                claims: KiteClaims::clone(&claims),
                pair,
            });
        }
        let unverified = crate::auth::parse_unverified(jwt).map_err(|e| e.to_string())?;
        let pem = unverified.kontrol_key.trim();
        if pem.is_empty() {
            return Err("no kontrol key found".into());
        }
        let pair = self.pair_by_public(storage, pem).await?;
        let verifier = self.verifier(pem, now)?;
        let claims = verifier.verify_kite_key(jwt).map_err(|e| e.to_string())?;
        let until = verified_until(now, now_unix(), claims.exp);
        self.verified.insert(jwt, Arc::new(claims.clone()), until);
        Ok(CheckedKey { claims, pair })
    }

    /// The pair with this public key: `Some` if active, `None` if deleted; not trusted when
    /// storage does not know it.
    async fn pair_by_public(
        &self,
        storage: &dyn Storage,
        pem: &str,
    ) -> Result<Option<KeyPair>, String> {
        let now = Instant::now();
        if let Some(pair) = self.by_public.get(pem, now) {
            return Ok(pair);
        }
        let pair = match storage.key_by_public(pem).await {
            Ok(p) => Some(p),
            Err(StorageError::KeyDeleted) => None,
            Err(StorageError::KeyNotFound) => return Err(crate::auth::KEY_NOT_TRUSTED.into()),
            Err(e) => return Err(e.to_string()),
        };
        self.by_public.insert(pem, pair.clone(), now + PAIR_TTL);
        Ok(pair)
    }

    /// The pair with this id: `Ok(Some)` if active, `Ok(None)` if deleted or unknown.
    pub(crate) async fn pair_by_id(
        &self,
        storage: &dyn Storage,
        id: &str,
    ) -> Result<Option<KeyPair>, StorageError> {
        let now = Instant::now();
        if let Some(pair) = self.by_id.get(id, now) {
            return Ok(pair);
        }
        let pair = match storage.key_by_id(id).await {
            Ok(p) => Some(p),
            Err(StorageError::KeyDeleted) => None,
            // Unknown ids are not cached: anyone can name one.
            Err(StorageError::KeyNotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.by_id.insert(id, pair.clone(), now + PAIR_TTL);
        Ok(pair)
    }

    /// Forgets every key pair looked up (after this Kontrol added or deleted one). Checked
    /// signatures stay: they do not depend on the pair's state.
    pub(crate) fn forget_pairs(&self) {
        self.by_public.clear();
        self.by_id.clear();
    }

    fn verifier(&self, pem: &str, now: Instant) -> Result<Verifier, String> {
        if let Some(v) = self.parsed.get(pem, now) {
            return Ok(v);
        }
        let v = Verifier::new(String::new(), Some(pem))
            .map_err(|e| e.to_string())?
            .with_verify_ttl(None);
        self.parsed.insert(pem, v.clone(), now + PAIR_TTL);
        Ok(v)
    }
}

/// Until when a kite key verified at `now` (`unix` in Unix seconds) is taken as verified:
/// [`VERIFIED_TTL`], and never past its `exp` (0: none).
fn verified_until(now: Instant, unix: i64, exp: i64) -> Instant {
    let until = now + VERIFIED_TTL;
    if exp == 0 {
        return until;
    }
    // Verification passed, so `exp` is `unix` or later; whole seconds left, rounded down.
    let left = u64::try_from(exp.saturating_sub(unix)).unwrap_or(0);
    until.min(now + Duration::from_secs(left))
}

/// Re-signs a kite key's claims with `pair` (its `kontrolKey` becomes the pair's public key).
pub(crate) fn resign(claims: &KiteClaims, pair: &KeyPair) -> Result<String, AuthError> {
    let mut c = claims.clone();
    c.kontrol_key = pair.public_pem.trim().to_string();
    sign(pair, &c)
}

/// The pair Kontrol signs new kite keys and tokens with: the newest active one.
pub(crate) async fn current(storage: &dyn Storage) -> Result<KeyPair, StorageError> {
    storage
        .active_keys()
        .await?
        .pop()
        .ok_or(StorageError::KeyNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{mint_kite_key, KeyPair};
    use crate::kontrol::storage::memory::Memory;
    use crate::kontrol::storage::{Event, KiteRecord, StorageResult};
    use crate::protocol::{Kite, KiteQuery};
    use futures_util::stream::BoxStream;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The memory storage, counting key pair lookups.
    #[derive(Default)]
    struct Counting {
        inner: Memory,
        lookups: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Storage for Counting {
        async fn upsert(&self, r: &KiteRecord) -> StorageResult<()> {
            self.inner.upsert(r).await
        }
        async fn touch(&self, k: &Kite) -> StorageResult<bool> {
            self.inner.touch(k).await
        }
        async fn delete(&self, k: &Kite) -> StorageResult<bool> {
            self.inner.delete(k).await
        }
        async fn get(&self, q: &KiteQuery) -> StorageResult<Vec<KiteRecord>> {
            self.inner.get(q).await
        }
        async fn get_by_id(&self, id: &str) -> StorageResult<Option<KiteRecord>> {
            self.inner.get_by_id(id).await
        }
        async fn expire(&self, d: Duration) -> StorageResult<Vec<Kite>> {
            self.inner.expire(d).await
        }
        async fn watch(&self) -> StorageResult<BoxStream<'static, Event>> {
            self.inner.watch().await
        }
        async fn add_key(&self, p: &KeyPair) -> StorageResult<()> {
            self.inner.add_key(p).await
        }
        async fn delete_key(&self, id: &str) -> StorageResult<()> {
            self.inner.delete_key(id).await
        }
        async fn key_by_id(&self, id: &str) -> StorageResult<KeyPair> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            self.inner.key_by_id(id).await
        }
        async fn key_by_public(&self, pem: &str) -> StorageResult<KeyPair> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            self.inner.key_by_public(pem).await
        }
        async fn active_keys(&self) -> StorageResult<Vec<KeyPair>> {
            self.inner.active_keys().await
        }
    }

    #[tokio::test]
    async fn kite_keys_are_checked_once_and_pairs_rechecked_after_changes() {
        let storage = Counting::default();
        let pair = KeyPair::generate().unwrap();
        storage.add_key(&pair).await.unwrap();
        let cache = VerifierCache::default();
        let key = mint_kite_key(&pair, "kontrol", "alice", "http://k/kite").unwrap();

        let first = cache.check_kite_key(&storage, &key).await.unwrap();
        assert_eq!(first.claims.sub, "alice");
        assert_eq!(first.pair.as_ref().map(|p| &p.id), Some(&pair.id));
        let second = cache.check_kite_key(&storage, &key).await.unwrap();
        assert_eq!(second.claims, first.claims);
        assert_eq!(storage.lookups.load(Ordering::SeqCst), 1, "pair cached");

        // The pair deleted through this Kontrol: seen at once.
        storage.delete_key(&pair.id).await.unwrap();
        cache.forget_pairs();
        let deleted = cache.check_kite_key(&storage, &key).await.unwrap();
        assert!(deleted.pair.is_none(), "a deleted pair is reported");
        assert_eq!(storage.lookups.load(Ordering::SeqCst), 2);

        // A different string is checked on its own: a tampered signature fails, every time.
        let tampered = format!("{}x", &key[..key.len() - 1]);
        for _ in 0..2 {
            assert!(cache.check_kite_key(&storage, &tampered).await.is_err());
        }
        // A key of a pair storage does not know is not trusted, however often it comes.
        let stranger = KeyPair::generate().unwrap();
        let foreign = mint_kite_key(&stranger, "kontrol", "mallory", "http://k/kite").unwrap();
        for _ in 0..2 {
            let err = cache.check_kite_key(&storage, &foreign).await.err();
            assert_eq!(err.as_deref(), Some(crate::auth::KEY_NOT_TRUSTED));
        }
    }

    #[test]
    fn verified_keys_never_outlive_their_expiry() {
        let now = Instant::now();
        assert_eq!(verified_until(now, 1000, 0), now + VERIFIED_TTL);
        assert_eq!(
            verified_until(now, 1000, 1030),
            now + Duration::from_secs(30)
        );
        assert_eq!(verified_until(now, 1000, 1000), now);
        assert_eq!(verified_until(now, 1000, 1000 + 86_400), now + VERIFIED_TTL);
        assert_eq!(verified_until(now, 1000, 10), now, "expired: not kept");
    }
}
