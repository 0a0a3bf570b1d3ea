//! The crate's error type: what a call, a dial or a kite operation can fail with.

use std::time::Duration;

use crate::protocol::{format_duration, ErrorKind, KiteError};
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
    #[error("timeout: No response to {method:?} method{} in {}", at(url), format_duration(*after))]
    Timeout {
        /// The method called (or what was waited for, e.g. `connect to kontrol`).
        method: String,
        /// The URL of the kite waited on (empty when unknown).
        url: String,
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
    /// Dialing a kite or Kontrol failed; the [`DialError`] names the URL and the cause.
    #[error("dial failed: {0}")]
    Connect(Box<DialError>),
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
            // The wire text stays the reference's (peers and tests compare it).
            Error::Timeout { method, after, .. } => KiteError::new(
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

    /// One stable code per kind of failure, shared by the bindings: the wire kind for remote
    /// and call errors (`methodNotFound`, `timeout`, `disconnect`, …), and `dialError`,
    /// `configError`, `duplicateMethod`, `authError`, `ioError` for local ones.
    pub fn code(&self) -> &str {
        match self {
            Error::Remote(e) => e.kind.as_str(),
            Error::Timeout { .. } => ErrorKind::Timeout.as_str(),
            Error::Disconnected => ErrorKind::Disconnect.as_str(),
            Error::Send(_) => ErrorKind::SendError.as_str(),
            Error::InvalidResponse(_) => ErrorKind::InvalidResponse.as_str(),
            Error::Connect(_) => "dialError",
            Error::Tls { .. } => "tlsError",
            Error::Config(_) => "configError",
            Error::DuplicateMethod(_) => "duplicateMethod",
            Error::Auth(_) => "authError",
            Error::Io(_) => "ioError",
        }
    }

    /// The dial failure, when this error is one.
    pub fn dial_error(&self) -> Option<&DialError> {
        match self {
            Error::Connect(d) => Some(d),
            _ => None,
        }
    }
}

impl From<Error> for KiteError {
    /// A failed call inside a handler, passed on to the handler's caller: a remote error as
    /// it came, a local one as its caller-side kind ([`Error::to_kite_error`]).
    fn from(e: Error) -> Self {
        e.to_kite_error()
    }
}

impl From<anyhow::Error> for KiteError {
    /// A handler's `anyhow` error: a [`KiteError`] (or [`Error`]) inside keeps its kind;
    /// anything else is a `genericError` with the outermost message only. The whole chain
    /// of causes goes to the log, not to the caller.
    fn from(e: anyhow::Error) -> Self {
        let e = match e.downcast::<KiteError>() {
            Ok(k) => return k,
            Err(e) => e,
        };
        match e.downcast::<Error>() {
            Ok(k) => k.to_kite_error(),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "handler failed");
                KiteError::generic(e.to_string())
            }
        }
    }
}

impl From<DialError> for Error {
    /// A TLS failure becomes [`Error::Tls`] (not retried, not a dial cause to wait out);
    /// every other failure [`Error::Connect`].
    fn from(e: DialError) -> Self {
        if e.cause == DialCause::Tls {
            return Error::Tls {
                url: e.url,
                reason: e.detail,
            };
        }
        Error::Connect(Box::new(e))
    }
}

/// Why a dial failed, as far as the network told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialCause {
    /// Nothing listens at the address: the TCP connection was refused.
    Refused,
    /// The host name does not resolve.
    Unresolved,
    /// The TLS handshake failed (certificate, name, protocol).
    Tls,
    /// No session opened within the dial timeout.
    TimedOut,
    /// Something answered, but not as a kite (an HTTP error status, not SockJS).
    NotAKite,
    /// The URL is not a kite URL.
    InvalidUrl,
    /// Another network or protocol failure.
    Other,
}

impl DialCause {
    /// A stable code: `refused`, `unresolved`, `tls`, `timeout`, `notAKite`, `invalidUrl`,
    /// `other`.
    pub fn code(self) -> &'static str {
        match self {
            DialCause::Refused => "refused",
            DialCause::Unresolved => "unresolved",
            DialCause::Tls => "tls",
            DialCause::TimedOut => "timeout",
            DialCause::NotAKite => "notAKite",
            DialCause::InvalidUrl => "invalidUrl",
            DialCause::Other => "other",
        }
    }

    fn text(self) -> &'static str {
        match self {
            DialCause::Refused => "connection refused",
            DialCause::Unresolved => "host not found",
            DialCause::Tls => "TLS handshake failed",
            DialCause::TimedOut => "timed out",
            DialCause::NotAKite => "not a kite",
            DialCause::InvalidUrl => "invalid URL",
            DialCause::Other => "cannot connect",
        }
    }
}

/// A failed dial: which URL, where that URL came from, and why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialError {
    /// The URL dialed.
    pub url: String,
    /// Where the URL came from (`kite.key at /home/u/.kite/kite.key`, `KITE_KONTROL_URL`,
    /// `--kontrol-url`), when known.
    pub origin: Option<String>,
    /// The kind of failure.
    pub cause: DialCause,
    /// The underlying error's text.
    pub detail: String,
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.cause.text(), self.url)?;
        if let Some(o) = &self.origin {
            write!(f, " (URL from {o})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

impl std::error::Error for DialError {}

impl DialError {
    /// Classifies a SockJS connect error of a dial to `url`.
    pub fn new(url: &str, e: &ConnectError) -> DialError {
        if let ConnectError::Tls { url, reason } = e {
            return DialError {
                url: url.clone(),
                origin: None,
                cause: DialCause::Tls,
                detail: reason.clone(),
            };
        }
        let detail = e.to_string();
        let cause = match e {
            ConnectError::InvalidUrl(_) => DialCause::InvalidUrl,
            ConnectError::Refused(_) => DialCause::NotAKite,
            ConnectError::Timeout => DialCause::TimedOut,
            _ => classify(&detail),
        };
        DialError {
            url: url.to_string(),
            origin: None,
            cause,
            detail,
        }
    }

    /// The same failure, naming where the URL came from.
    pub fn with_origin(mut self, origin: Option<String>) -> DialError {
        self.origin = origin;
        self
    }
}

/// The cause of a network failure from its text (the transports' errors carry the OS and
/// TLS library messages, whose wording is stable: `Connection refused (os error 111)`,
/// `failed to lookup address information`, `invalid peer certificate`).
fn classify(text: &str) -> DialCause {
    let t = text.to_ascii_lowercase();
    if t.contains("connection refused") {
        DialCause::Refused
    } else if t.contains("lookup address")
        || t.contains("dns error")
        || t.contains("name or service not known")
        || t.contains("no such host")
        || t.contains("name resolution")
    {
        DialCause::Unresolved
    } else if t.contains("tls") || t.contains("certificate") || t.contains("handshake failure") {
        DialCause::Tls
    } else if t.contains("timed out") {
        DialCause::TimedOut
    } else {
        DialCause::Other
    }
}

/// ` from URL` for a timeout message, or nothing.
fn at(url: &str) -> String {
    if url.is_empty() {
        String::new()
    } else {
        format!(" from {url}")
    }
}

impl From<KiteError> for Error {
    fn from(e: KiteError) -> Self {
        Error::Remote(e)
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
            url: "http://127.0.0.1:1/kite".into(),
            after: Duration::from_secs(15),
        };
        assert_eq!(
            e.to_string(),
            "timeout: No response to \"square\" method from http://127.0.0.1:1/kite in 15s"
        );
        assert_eq!(e.code(), "timeout");
        assert_eq!(
            e.to_kite_error().message,
            "No response to \"square\" method in 15s"
        );
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }
}

#[cfg(test)]
mod dial_tests {
    use super::*;

    #[test]
    fn dial_causes_from_transport_errors() {
        let io = |t: &str| ConnectError::Io(t.to_string());
        let cases = [
            (io("IO error: Connection refused (os error 111)"), DialCause::Refused),
            (
                io("error sending request: client error (Connect): dns error: failed to lookup address information: Name or service not known"),
                DialCause::Unresolved,
            ),
            (
                io("TLS error: invalid peer certificate: UnknownIssuer"),
                DialCause::Tls,
            ),
            (ConnectError::Timeout, DialCause::TimedOut),
            (ConnectError::Refused(404), DialCause::NotAKite),
            (ConnectError::InvalidUrl("x".into()), DialCause::InvalidUrl),
            (io("connection reset by peer"), DialCause::Other),
        ];
        for (e, cause) in cases {
            let d = DialError::new("http://h:1/kite", &e);
            assert_eq!(d.cause, cause, "{e}");
            let err = Error::from(d);
            // A TLS failure is its own error (not retried into a timeout); the rest dial errors.
            let code = if cause == DialCause::Tls {
                "tlsError"
            } else {
                "dialError"
            };
            assert_eq!(err.code(), code);
            assert!(err.to_string().contains("http://h:1/kite"), "{err}");
        }
    }

    #[test]
    fn dial_error_names_the_origin_of_the_url() {
        let d = DialError::new(
            "http://127.0.0.1:6000/kite",
            &ConnectError::Io("Connection refused (os error 111)".into()),
        )
        .with_origin(Some("kite.key at /tmp/k/kite.key".into()));
        assert_eq!(
            d.to_string(),
            "connection refused at http://127.0.0.1:6000/kite (URL from kite.key at \
             /tmp/k/kite.key): SockJS connection failed: Connection refused (os error 111)"
        );
    }
}
