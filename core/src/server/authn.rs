//! Authentication of incoming calls (§5): picks the authenticator by type; the built-in
//! `kiteKey` and `token` authenticators use the kite's [`crate::auth::Verifier`].
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::Arc;

use super::config::Config;
use crate::auth::{AuthError, Verifier};
use crate::dnode::BoxFuture;
use crate::metrics::{AuthRefusal, Metrics};
use crate::protocol::{Auth, Kite as KiteIdentity, KiteError};

/// Checks one authentication type: returns the authenticated username, or why not.
pub type Authenticator =
    Arc<dyn Fn(AuthCheck) -> BoxFuture<'static, Result<String, AuthError>> + Send + Sync>;

/// What an [`Authenticator`] gets.
#[derive(Debug, Clone)]
pub struct AuthCheck {
    /// The credential sent with the call.
    pub auth: Auth,
    /// The caller's claimed identity.
    pub caller: KiteIdentity,
    /// This kite's identity.
    pub local: KiteIdentity,
    /// The kite's verifier of kite keys and tokens (its current trusted Kontrol key).
    pub verifier: Verifier,
}

/// Keys learned at runtime from Kontrol (a re-signed kite key, a rotated Kontrol key):
/// the only part of a kite's trust that changes after construction, swapped whole.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The kite key sent as `kiteKey` authentication.
    pub kite_key: String,
    /// Kontrol's public key (PEM), trusted for kite keys and tokens.
    pub kontrol_key: String,
    /// Kontrol's username, the expected issuer of tokens.
    pub kontrol_user: String,
}

/// The verifier for a configuration (verify TTL) and the keys (trusted Kontrol user and key).
pub(crate) fn build_verifier(c: &Config, keys: &Keys) -> Verifier {
    let key = (!keys.kontrol_key.is_empty()).then_some(keys.kontrol_key.as_str());
    let verifier = match Verifier::new(keys.kontrol_user.clone(), key) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "the configured Kontrol key is unusable; no key is trusted");
            #[allow(clippy::expect_used)]
            Verifier::new(keys.kontrol_user.clone(), None)
                .expect("a verifier without a key cannot fail")
        }
    };
    verifier.with_verify_ttl(Some(c.verify_ttl))
}

/// The `kiteKey` and `token` authenticators. They find the verifier in the [`AuthCheck`]
/// (the kite's current one), so they hold no handle to the kite.
pub(crate) fn default_authenticators() -> HashMap<String, Authenticator> {
    let kite_key: Authenticator = Arc::new(|c: AuthCheck| {
        Box::pin(async move {
            c.verifier
                .verify_kite_key(&c.auth.key)
                .map(|claims| claims.sub)
        })
    });
    let token: Authenticator = Arc::new(|c: AuthCheck| {
        Box::pin(async move {
            c.verifier
                .verify_token(&c.auth.key, &c.local)
                .map(|claims| claims.sub)
        })
    });
    HashMap::from([
        (Auth::KITE_KEY.to_string(), kite_key),
        (Auth::TOKEN.to_string(), token),
    ])
}

/// The wire error for a refused credential: `authenticationError`, `"<type>: <reason>"`
/// (the reference's wording; an expired token's reason says "token is expired").
pub(crate) fn refusal(kind: &str, e: &AuthError) -> KiteError {
    KiteError::authentication(format!("{kind}: {e}"))
}

/// Authenticates a call; returns the username the request runs as.
pub(crate) async fn authenticate(
    authenticators: &HashMap<String, Authenticator>,
    verifier: crate::auth::Verifier,
    auth: Option<&Auth>,
    caller: &KiteIdentity,
    local: &KiteIdentity,
    metrics: Option<&Metrics>,
) -> Result<String, KiteError> {
    let refused = |why: AuthRefusal<'_>| {
        if let Some(m) = metrics {
            m.auth_refused(why);
        }
    };
    let Some(auth) = auth else {
        refused(AuthRefusal::Missing);
        return Err(KiteError::authentication(
            "No authentication information is provided",
        ));
    };
    let Some(check) = authenticators.get(&auth.kind) else {
        refused(AuthRefusal::UnknownType);
        return Err(KiteError::authentication(format!(
            "Unknown authentication type: {}",
            auth.kind
        )));
    };
    let c = AuthCheck {
        auth: auth.clone(),
        caller: caller.clone(),
        local: local.clone(),
        verifier,
    };
    check(c).await.map_err(|e| {
        refused(AuthRefusal::Refused(&e));
        if e.is_expired() {
            tracing::debug!(kind = %auth.kind, "expired credential refused");
        }
        refusal(&auth.kind, &e)
    })
}
