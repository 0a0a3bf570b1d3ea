//! TLS and HTTP helpers that both client transports (websocket, XHR polling) dial with.
//! Above `options`.

use std::sync::Arc;
use std::time::Duration;

use super::options::{ClientConfig, ConnectError};

/// An HTTP client for XHR polling with `tls` (when given) and the connect timeout.
pub fn http_client(
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        builder = builder.use_preconfigured_tls((*tls).clone());
    }
    builder.build().map_err(|e| e.to_string())
}

/// Whether `url` is dialed over TLS (`https://`, `wss://`).
pub fn is_tls_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("wss://")
}

/// The TLS configuration for dialing `url`: the given one, else the process-wide one.
pub(crate) fn tls_for(
    url: &str,
    config: &ClientConfig,
) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    match &config.tls {
        Some(c) => Ok(c.clone()),
        None => crate::tls::default_client_config().map_err(|reason| ConnectError::Tls {
            url: url.to_string(),
            reason,
        }),
    }
}

/// A TLS failure of an I/O operation, in plain words.
pub(super) fn tls_io_error(url: &str, e: &std::io::Error) -> ConnectError {
    use std::io::ErrorKind as K;
    let reason = match crate::tls::find_rustls_error(e) {
        Some(r) => crate::tls::describe(r),
        None => match e.kind() {
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted => {
                "the server closed the connection during the TLS handshake".into()
            }
            _ => format!("TLS handshake failed: {e}"),
        },
    };
    ConnectError::Tls {
        url: url.to_string(),
        reason,
    }
}

/// The answer of a TLS port to a plain request (ours and Go's say the same).
pub(super) fn plain_on_tls(url: &str, body: Option<&[u8]>) -> Option<ConnectError> {
    let body = std::str::from_utf8(body?).ok()?;
    body.contains(crate::tls::PLAIN_ON_TLS_BODY)
        .then(|| ConnectError::Tls {
            url: url.to_string(),
            reason: crate::tls::plain_on_tls_reason(),
        })
}
