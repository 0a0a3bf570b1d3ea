//! The authentication error type. Its messages follow the reference's wording, because they
//! travel to the caller inside an `authenticationError` as `"<type>: <message>"` and Go
//! clients match on some of them (a token error containing "token is expired" triggers a
//! token renewal).

use std::path::PathBuf;
use std::time::Duration;

/// Why a kite key or token was rejected, or why a key or key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The JWT could not be split or decoded (segments, base64, JSON).
    #[error("{0}")]
    Malformed(String),
    /// The JWT is not signed with RS256 (`none`, HMAC, RS512, … are all refused).
    #[error("invalid signing method")]
    InvalidSigningMethod {
        /// The `alg` header that was found.
        alg: String,
    },
    /// A token's `iss` is not the configured Kontrol user.
    #[error("issuer is not trusted: {0}")]
    UntrustedIssuer(String),
    /// `exp` is in the past.
    #[error("token is expired by {}", go_duration(*.by))]
    Expired {
        /// How long ago the token expired.
        by: Duration,
    },
    /// `iat` is in the future.
    #[error("Token used before issued")]
    UsedBeforeIssued,
    /// `nbf` is in the future.
    #[error("token is not valid yet")]
    NotValidYet,
    /// A token's signature does not check with the Kontrol key. Reported as an expired
    /// token so that the caller fetches a new one (Kontrol may have rotated its key).
    #[error("token is expired")]
    TokenSignature,
    /// A kite key's signature does not check with the key it names.
    #[error("crypto/rsa: verification error")]
    InvalidSignature,
    /// A token without `aud`.
    #[error("token has no audience")]
    NoAudience,
    /// A kite key or token without `sub`.
    #[error("token has no username")]
    NoUsername,
    /// The audience does not match the local kite (message from the audience check).
    #[error("{0}")]
    Audience(String),
    /// A kite key without a `kontrolKey` claim.
    #[error("no kontrol key found")]
    NoKontrolKey,
    /// The kite key's `kontrolKey` is neither the configured key nor accepted by the
    /// verify function.
    #[error("kontrol key is not trusted")]
    KeyNotTrusted,
    /// The kite key's `kontrolKey` was recently rejected (cached verdict).
    #[error("invalid kontrol key found")]
    CachedUntrusted,
    /// The verify function failed for another reason (not cached).
    #[error("{0}")]
    VerifyFunc(String),
    /// A custom authenticator refused the credential, for the reason given.
    #[error("{0}")]
    Rejected(String),
    /// Tokens cannot be checked: no Kontrol key is configured.
    #[error("kontrol key is not set in config")]
    NoKontrolKeyConfigured,
    /// A PEM key could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Key generation or signing failed.
    #[error("cannot sign: {0}")]
    Signing(String),
    /// Neither `KITE_HOME` nor a home directory is available.
    #[error("cannot find the kite home directory: set KITE_HOME")]
    NoHome,
    /// Reading or writing the kite.key file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl AuthError {
    /// Whether the credential was refused because it expired (or its signature no longer
    /// checks, which the reference reports the same way so that the caller renews it).
    pub fn is_expired(&self) -> bool {
        matches!(self, AuthError::Expired { .. } | AuthError::TokenSignature)
    }
}

/// Formats whole seconds the way Go's `time.Duration` prints them (`45s`, `2m5s`, `1h0m0s`).
pub(crate) fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_format() {
        assert_eq!(go_duration(Duration::from_secs(0)), "0s");
        assert_eq!(go_duration(Duration::from_secs(45)), "45s");
        assert_eq!(go_duration(Duration::from_secs(125)), "2m5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_secs(49 * 3600 + 61)), "49h1m1s");
    }

    #[test]
    fn messages_match_the_reference() {
        assert_eq!(
            AuthError::Expired {
                by: Duration::from_secs(300)
            }
            .to_string(),
            "token is expired by 5m0s"
        );
        assert_eq!(AuthError::TokenSignature.to_string(), "token is expired");
        assert_eq!(
            AuthError::UntrustedIssuer("x".into()).to_string(),
            "issuer is not trusted: x"
        );
        assert_eq!(
            AuthError::InvalidSigningMethod { alg: "none".into() }.to_string(),
            "invalid signing method"
        );
    }
}
