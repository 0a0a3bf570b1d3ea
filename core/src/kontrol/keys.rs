//! Kontrol's key pairs: the current signing pair, verification of kite keys against every
//! pair Kontrol knows (deleted ones included, so their kites can be moved), re-signing, and
//! the token cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::{
    mint_token, sign, AuthError, KeyPair, KiteClaims, Verifier, TOKEN_LEEWAY, TOKEN_TTL,
};
use crate::kontrol::storage::{Storage, StorageError};

/// Tokens minted, per (audience, user, issuer, key pair), reused until shortly before expiry.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
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
        let mut cache = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if !force {
            if let Some((t, until)) = cache.get(&key) {
                if *until > now {
                    return Ok(t.clone());
                }
            }
        }
        let token = mint_token(pair, issuer, username, audience, TOKEN_TTL, TOKEN_LEEWAY)?;
        // Reuse for TTL − leeway, like the reference.
        cache.insert(
            key,
            (token.clone(), now + TOKEN_TTL.saturating_sub(TOKEN_LEEWAY)),
        );
        if cache.len() > 100_000 {
            cache.retain(|_, (_, until)| *until > now);
        }
        Ok(token)
    }
}

/// Verifiers per public key, so each PEM is parsed once.
#[derive(Default)]
pub(crate) struct VerifierCache {
    by_pem: Mutex<HashMap<String, (Verifier, Instant)>>,
}

/// How long a key looked up in storage is trusted without asking storage again.
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

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
        let unverified = crate::auth::parse_unverified(jwt).map_err(|e| e.to_string())?;
        let pem = unverified.kontrol_key.trim().to_string();
        if pem.is_empty() {
            return Err("no kontrol key found".into());
        }
        let pair = match storage.key_by_public(&pem).await {
            Ok(p) => Some(p),
            Err(StorageError::KeyDeleted) => None,
            Err(StorageError::KeyNotFound) => return Err(crate::auth::KEY_NOT_TRUSTED.into()),
            Err(e) => return Err(e.to_string()),
        };
        let verifier = self.verifier(&pem)?;
        let claims = verifier.verify_kite_key(jwt).map_err(|e| e.to_string())?;
        Ok(CheckedKey { claims, pair })
    }

    fn verifier(&self, pem: &str) -> Result<Verifier, String> {
        let now = Instant::now();
        let mut map = self.by_pem.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, at)) = map.get(pem) {
            if now.duration_since(*at) < KEY_CACHE_TTL {
                return Ok(v.clone());
            }
        }
        let v = Verifier::new(String::new(), Some(pem))
            .map_err(|e| e.to_string())?
            .with_verify_ttl(None);
        map.insert(pem.to_string(), (v.clone(), now));
        Ok(v)
    }
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
