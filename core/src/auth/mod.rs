//! Authentication with JWTs, as the reference does it. It sits above [`crate::protocol`]
//! (it uses the [`Kite`](crate::protocol::Kite) identity for audiences) and below the server,
//! client and Kontrol, which call it.
//!
//! Two credentials exist, both RS256 JWTs signed by a Kontrol key pair ([`KiteClaims`]):
//!
//! - a **kite key** (`kiteKey`) identifies a user's machine: `iss` (Kontrol's username),
//!   `sub` (the username), `iat`, `jti`, `kontrolKey` (the signer's public PEM) and
//!   `kontrolURL`. It is valid when its `kontrolKey` is trusted and signed it
//!   ([`Verifier::verify_kite_key`]). It lives in `$KITE_HOME/kite.key` ([`read_kite_key`]).
//! - a **token** (`token`) lets `sub` call kites matching `aud` for 48 h (+5 min leeway):
//!   [`Verifier::verify_token`]. A bad signature is reported as "token is expired" so that
//!   the caller fetches a new one.
//!
//! Kontrol mints both with [`mint_kite_key`] and [`mint_token`]. Only RS256 is accepted.
//! Everything but the kite.key functions ([`kite_home`], [`read_kite_key`],
//! [`write_kite_key`]) is IO-free.

mod audience;
mod claims;
mod error;
mod keyfile;
mod keys;
mod mint;
mod verify;

#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use audience::verify_audience;
pub use claims::{parse_kite_key, parse_unverified, KiteClaims};
pub use error::AuthError;
pub use keyfile::{kite_home, kite_key_path, read_kite_key, write_kite_key, KITE_KEY_FILE};
pub use keys::{KeyPair, KEY_BITS};
pub use mint::{audience_for_query, mint_kite_key, mint_token, sign};
pub use verify::{AudienceFn, Verifier, VerifyFn, KEY_NOT_TRUSTED, VERIFY_CACHE_CAPACITY};

/// How long a Kontrol token is valid (before the leeway is added): 48 h.
pub const TOKEN_TTL: Duration = Duration::from_secs(48 * 60 * 60);

/// Clock-skew allowance Kontrol builds into tokens (`exp` later, `iat`/`nbf` earlier): 5 min.
pub const TOKEN_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// How long a verify function's verdict on a Kontrol key is cached by default: 5 min.
pub const VERIFY_TTL: Duration = Duration::from_secs(5 * 60);

/// Current time in Unix seconds (0 if the clock is before 1970).
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
