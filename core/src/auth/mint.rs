//! Minting kite keys and tokens as Kontrol does (used by the Kontrol service and by tests).

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::{now_unix, AuthError, KeyPair, KiteClaims, TOKEN_LEEWAY};
use crate::protocol::KiteQuery;

/// Signs `claims` with RS256 using the pair's private key.
pub fn sign(pair: &KeyPair, claims: &KiteClaims) -> Result<String, AuthError> {
    let key = EncodingKey::from_rsa_pem(pair.private_pem.trim().as_bytes())
        .map_err(|e| AuthError::InvalidKey(e.to_string()))?;
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key)
        .map_err(|e| AuthError::Signing(e.to_string()))
}

/// Mints a kite key for `username`: claims `iss` (Kontrol's username), `sub`, `iat` (now
/// minus [`TOKEN_LEEWAY`], as the reference back-dates it), `jti` (a new UUID),
/// `kontrolURL` and `kontrolKey` (the signer's public PEM, trimmed). A kite key never expires.
pub fn mint_kite_key(
    pair: &KeyPair,
    issuer: &str,
    username: &str,
    kontrol_url: &str,
) -> Result<String, AuthError> {
    let claims = KiteClaims {
        iss: issuer.to_string(),
        sub: username.to_string(),
        iat: now_unix() - secs(TOKEN_LEEWAY),
        jti: uuid::Uuid::new_v4().to_string(),
        kontrol_url: kontrol_url.to_string(),
        kontrol_key: pair.public_pem.trim().to_string(),
        ..KiteClaims::default()
    };
    sign(pair, &claims)
}

/// Mints a token for `username` (`sub`) valid for kites matching `audience`: `exp` = now +
/// `ttl` + `leeway`, `iat` = `nbf` = now − `leeway`, `jti` a new UUID — the reference
/// Kontrol's layout. Kontrol uses [`super::TOKEN_TTL`] and [`TOKEN_LEEWAY`].
pub fn mint_token(
    pair: &KeyPair,
    issuer: &str,
    username: &str,
    audience: &str,
    ttl: Duration,
    leeway: Duration,
) -> Result<String, AuthError> {
    let now = now_unix();
    let claims = KiteClaims {
        iss: issuer.to_string(),
        sub: username.to_string(),
        aud: audience.to_string(),
        exp: now + secs(ttl) + secs(leeway),
        iat: now - secs(leeway),
        nbf: now - secs(leeway),
        jti: uuid::Uuid::new_v4().to_string(),
        ..KiteClaims::default()
    };
    sign(pair, &claims)
}

/// The audience Kontrol puts in a token for a query: `/username`, `/username/environment` or
/// `/username/environment/name`, stopping before the first empty field after username (an
/// empty environment with a name still yields `/username//name`).
pub fn audience_for_query(q: &KiteQuery) -> String {
    if !q.name.is_empty() {
        format!("/{}/{}/{}", q.username, q.environment, q.name)
    } else if !q.environment.is_empty() {
        format!("/{}/{}", q.username, q.environment)
    } else {
        format!("/{}", q.username)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}
