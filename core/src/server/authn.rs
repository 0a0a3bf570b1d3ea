//! Authentication of incoming calls (§5): picks the authenticator by type; the built-in
//! `kiteKey` and `token` authenticators use [`crate::auth::Verifier`].
#![deny(clippy::arithmetic_side_effects)]

use super::config::Config;
use super::kite::{AuthCheck, Kite};
use crate::auth::Verifier;
use crate::protocol::{Auth, Kite as KiteIdentity, KiteError};

/// The verifier for a configuration (trusted Kontrol key and user, verify TTL).
pub(crate) fn build_verifier(c: &Config) -> Verifier {
    let key = (!c.kontrol_key.is_empty()).then_some(c.kontrol_key.as_str());
    let verifier = match Verifier::new(c.kontrol_user.clone(), key) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "the configured Kontrol key is unusable; no key is trusted");
            #[allow(clippy::expect_used)]
            Verifier::new(c.kontrol_user.clone(), None)
                .expect("a verifier without a key cannot fail")
        }
    };
    verifier.with_verify_ttl(Some(c.verify_ttl))
}

pub(crate) fn install_default_authenticators(kite: &Kite) {
    // Weak handles: the kite owns its authenticators.
    let k = kite.downgrade();
    kite.add_authenticator(Auth::KITE_KEY, move |c: AuthCheck| {
        let k = k.upgrade();
        async move {
            k.ok_or("the kite is closed")?
                .verifier()
                .verify_kite_key(&c.auth.key)
                .map(|claims| claims.sub)
                .map_err(|e| e.to_string())
        }
    });
    let k = kite.downgrade();
    kite.add_authenticator(Auth::TOKEN, move |c: AuthCheck| {
        let k = k.upgrade();
        async move {
            k.ok_or("the kite is closed")?
                .verifier()
                .verify_token(&c.auth.key, &c.local)
                .map(|claims| claims.sub)
                .map_err(|e| e.to_string())
        }
    });
}

/// Authenticates a call; returns the username the request runs as.
pub(crate) async fn authenticate(
    kite: &Kite,
    auth: Option<&Auth>,
    caller: &KiteIdentity,
) -> Result<String, KiteError> {
    let Some(auth) = auth else {
        return Err(KiteError::authentication(
            "No authentication information is provided",
        ));
    };
    let Some(check) = kite.authenticator(&auth.kind) else {
        return Err(KiteError::authentication(format!(
            "Unknown authentication type: {}",
            auth.kind
        )));
    };
    let c = AuthCheck {
        auth: auth.clone(),
        caller: caller.clone(),
        local: kite.identity(),
    };
    check(c)
        .await
        .map_err(|reason| KiteError::authentication(format!("{}: {reason}", auth.kind)))
}
