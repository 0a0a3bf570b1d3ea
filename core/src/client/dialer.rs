//! The TLS configuration and HTTP client that every dial of one kite shares.

use std::sync::Arc;
use std::time::Duration;

use crate::server::Kite;
use crate::sockjs;
use crate::Error;

/// The TLS configuration and XHR HTTP client a kite's dials share (built once per kite).
#[derive(Clone)]
pub(crate) struct Dialer {
    tls: Result<Arc<rustls::ClientConfig>, String>,
    http: Option<reqwest::Client>,
}

impl Dialer {
    pub(crate) fn new(trust: crate::tls::TlsTrust, timeout: Duration) -> Dialer {
        let tls = crate::tls::client_config(&trust);
        let http = match sockjs::client::http_client(tls.clone().ok(), timeout) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the HTTP client; one per session");
                None
            }
        };
        Dialer { tls, http }
    }

    /// The TLS configuration for dialing `url`: an error only for TLS URLs (a plain URL
    /// does not care that the trust configuration is broken).
    pub(crate) fn tls_for(&self, url: &str) -> Result<Option<Arc<rustls::ClientConfig>>, Error> {
        match &self.tls {
            Ok(c) => Ok(Some(c.clone())),
            Err(reason) if sockjs::client::is_tls_url(url) => Err(Error::Tls {
                url: url.to_string(),
                reason: reason.clone(),
            }),
            Err(_) => Ok(None),
        }
    }

    /// The shared HTTP client (carrying the TLS configuration).
    pub(crate) fn http(&self) -> Option<reqwest::Client> {
        self.http.clone()
    }
}

/// The TLS configuration and HTTP client of `kite`'s dials, built once per kite.
pub(crate) fn dialer(kite: &Kite) -> Dialer {
    let slot = kite.extension::<std::sync::OnceLock<Dialer>>();
    slot.get_or_init(|| {
        let c = kite.config();
        Dialer::new(c.tls_trust(), c.handshake_timeout)
    })
    .clone()
}
