//! The crate's error type: what a call, a dial or a kite operation can fail with.

use std::time::Duration;

use crate::protocol::{ErrorKind, KiteError};
use crate::sockjs::ConnectError;

/// Errors of kite operations. A remote kite's error is kept whole as [`Error::Remote`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The remote kite answered with an error (`methodNotFound`, `argumentError`,
    /// `genericError`, `authenticationError`, `requestLimitError`, …).
    #[error("{0}")]
    Remote(KiteError),
    /// No response within the call's timeout.
    #[error("timeout: No response to {method:?} method in {}", format_duration(*after))]
    Timeout {
        /// The method called.
        method: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The connection dropped before the response arrived.
    #[error("disconnect: Remote kite has disconnected")]
    Disconnected,
    /// The call could not be sent (not connected, closed, or unserializable arguments).
    #[error("sendError: {0}")]
    Send(String),
    /// The response was not `{"error", "result"}` with one argument.
    #[error("invalidResponse: {0}")]
    InvalidResponse(String),
    /// Dialing failed.
    #[error("dial failed: {0}")]
    Connect(#[from] ConnectError),
    /// A TLS failure dialing `url` (error type `tlsError`): an untrusted, expired or
    /// wrong-host certificate, a stalled handshake, a CA file that does not parse, plain
    /// HTTP and TLS mixed up. Returned at once, never retried into a timeout.
    #[error("tlsError: {url}: {reason}")]
    Tls {
        /// The URL dialed.
        url: String,
        /// What went wrong, in plain words.
        reason: String,
    },
    /// Bad configuration (name, version, key file, …).
    #[error("configuration: {0}")]
    Config(String),
    /// A method name was registered twice.
    #[error("method {0:?} is already registered")]
    DuplicateMethod(String),
    /// Authentication material could not be read or used.
    #[error("authentication: {0}")]
    Auth(String),
    /// An I/O error (binding a port, reading a file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The error as the wire's `{"type","message","code","id"}`; local failures get the
    /// caller-side kinds (`timeout`, `disconnect`, `sendError`, `invalidResponse`).
    pub fn to_kite_error(&self) -> KiteError {
        match self {
            Error::Remote(e) => e.clone(),
            Error::Timeout { method, after } => KiteError::new(
                ErrorKind::Timeout,
                format!(
                    "No response to {method:?} method in {}",
                    format_duration(*after)
                ),
            ),
            Error::Disconnected => {
                KiteError::new(ErrorKind::Disconnect, "Remote kite has disconnected")
            }
            Error::Send(m) => KiteError::new(ErrorKind::SendError, m.clone()),
            Error::InvalidResponse(m) => KiteError::new(ErrorKind::InvalidResponse, m.clone()),
            Error::Tls { url, reason } => KiteError::new(
                ErrorKind::Other(crate::tls::TLS_ERROR.into()),
                format!("{url}: {reason}"),
            ),
            other => KiteError::generic(other.to_string()),
        }
    }

    /// The error kind, for matching without caring where the error came from.
    pub fn kind(&self) -> ErrorKind {
        self.to_kite_error().kind
    }
}

/// A dial failure as the crate's error: TLS failures become [`Error::Tls`].
pub(crate) fn dial_error(e: ConnectError) -> Error {
    match e {
        ConnectError::Tls { url, reason } => Error::Tls { url, reason },
        other => Error::from(other),
    }
}

impl From<KiteError> for Error {
    fn from(e: KiteError) -> Self {
        Error::Remote(e)
    }
}

/// Go-style duration text (`15s`, `1.5s`, `250ms`), as in the reference's timeout message.
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}µs", d.as_micros());
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let s = format!("{secs:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return format!("{s}s");
    }
    let m = d.as_secs() / 60;
    let s = d.as_secs() % 60;
    if m < 60 {
        format!("{m}m{s}s")
    } else {
        format!("{}h{}m{s}s", m / 60, m % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go() {
        assert_eq!(format_duration(Duration::from_secs(15)), "15s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600 * 48)), "48h0m0s");
    }

    #[test]
    fn timeout_message() {
        let e = Error::Timeout {
            method: "square".into(),
            after: Duration::from_secs(15),
        };
        assert_eq!(
            e.to_kite_error().message,
            "No response to \"square\" method in 15s"
        );
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }
}
