//! The client's options and errors and the session URLs it dials: the bottom of
//! `sockjs::client`, below the TLS helpers (`dial`) and the transports.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use url::Url;

use super::super::frame::CloseReason;
use super::super::limits::SessionLimits;

/// Which transport a client uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// A websocket with SockJS framing.
    WebSocket,
    /// XHR polling: one long POST at a time to receive, one POST per batch to send.
    XhrPolling,
    /// Websocket, falling back to XHR polling when the websocket handshake is refused.
    #[default]
    Auto,
}

impl FromStr for Transport {
    type Err = String;

    /// Accepts the reference's names (`WebSocket`, `XHRPolling`) and lower-case forms
    /// (`websocket`, `xhr-polling`, `xhr`, `auto`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "websocket" | "ws" => Ok(Transport::WebSocket),
            "xhrpolling" | "xhr" => Ok(Transport::XhrPolling),
            "auto" | "" => Ok(Transport::Auto),
            _ => Err(format!(
                "unknown transport {s:?} (expected WebSocket, XHRPolling or auto)"
            )),
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::WebSocket => "WebSocket",
            Transport::XhrPolling => "XHRPolling",
            Transport::Auto => "auto",
        })
    }
}

/// Client options.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Transport. Default: [`Transport::Auto`].
    pub transport: Transport,
    /// Time allowed to connect and receive the open frame. Default: 30 s.
    pub connect_timeout: Duration,
    /// Longest an XHR poll may take before it is retried. The server answers an idle poll
    /// with a heartbeat after its heartbeat delay (10 s), so this only fires on a stuck
    /// network. Default: 60 s.
    pub poll_timeout: Duration,
    /// Largest message accepted from the server. Default: 16 MiB.
    pub max_message_size: usize,
    /// Per-session queue limits.
    pub limits: SessionLimits,
    /// TLS configuration for `https://` and `wss://` URLs. Default: none — the process-wide
    /// one built from the environment ([`crate::tls::default_client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The HTTP client of XHR polling (sessions sharing one share its connections; it
    /// must carry the TLS configuration). Default: none — one per session.
    pub http: Option<reqwest::Client>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            transport: Transport::Auto,
            connect_timeout: Duration::from_secs(30),
            poll_timeout: Duration::from_secs(60),
            max_message_size: 16 * 1024 * 1024,
            limits: SessionLimits::default(),
            tls: None,
            http: None,
        }
    }
}

/// Why a client could not open a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not an absolute http(s) or ws(s) URL.
    #[error("invalid SockJS URL {0:?}")]
    InvalidUrl(String),
    /// The server answered the handshake with this HTTP status instead of opening a session.
    #[error("SockJS handshake refused with HTTP {0}")]
    Refused(u16),
    /// Network or TLS failure.
    #[error("SockJS connection failed: {0}")]
    Io(String),
    /// No open frame within the connect timeout.
    #[error("SockJS connection timed out")]
    Timeout,
    /// The server sent something other than an open frame.
    #[error("SockJS protocol error: {0}")]
    Protocol(String),
    /// TLS failed: the certificate, the handshake, the trust configuration, or plain HTTP
    /// and TLS mixed up.
    #[error("TLS failure dialing {url}: {reason}")]
    Tls {
        /// The URL dialed.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server closed the session at once.
    #[error("SockJS session closed by the server: {0}")]
    Closed(CloseReason),
}

/// The service URL split into what the transports need.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The service URL as given (what errors name).
    pub(crate) url: String,
    /// `http(s)://host:port/prefix/{server}/{session}`
    pub(crate) session_url: String,
    /// The service URL's query (`?kiteID=…` of the reference's tunnel proxy URLs), kept on
    /// every transport URL; empty when there is none.
    pub(crate) query: String,
    /// `ws(s)://host:port/prefix/{server}/{session}/websocket`
    pub(crate) ws_url: String,
    /// `http(s)://host:port`
    pub(crate) origin: String,
    pub(crate) session_id: String,
}

pub(super) fn random_session_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

pub(crate) fn target(url: &str) -> Result<Target, ConnectError> {
    let bad = || ConnectError::InvalidUrl(url.to_string());
    let mut u = Url::parse(url).map_err(|_| bad())?;
    let (http, ws) = match u.scheme() {
        "http" | "ws" => ("http", "ws"),
        "https" | "wss" => ("https", "wss"),
        _ => return Err(bad()),
    };
    u.set_scheme(http).map_err(|_| bad())?;
    let host = u.host_str().ok_or_else(bad)?.to_string();
    let port = u.port_or_known_default().ok_or_else(bad)?;
    let host_port = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let path = u.path().trim_end_matches('/').to_string();
    let query = u.query().map(|q| format!("?{q}")).unwrap_or_default();
    let server_id = format!("{:03}", rand::rng().random_range(0..1000));
    let session_id = random_session_id();
    Ok(Target {
        url: url.to_string(),
        session_url: format!("{http}://{host_port}{path}/{server_id}/{session_id}"),
        ws_url: format!("{ws}://{host_port}{path}/{server_id}/{session_id}/websocket{query}"),
        query,
        origin: format!("{http}://{host_port}"),
        session_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_shapes() {
        let t = target("http://example.com:3636/kite").unwrap();
        let parts: Vec<&str> = t.ws_url.split('/').collect();
        assert_eq!(&parts[..4], &["ws:", "", "example.com:3636", "kite"]);
        assert_eq!(parts[4].len(), 3);
        assert!(parts[4].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(parts[5].len(), 20);
        assert_eq!(parts[6], "websocket");
        assert_eq!(t.origin, "http://example.com:3636");
        assert!(t.session_url.starts_with("http://example.com:3636/kite/"));
        let t = target("https://h/a/b/").unwrap();
        assert!(t.ws_url.starts_with("wss://h:443/a/b/"));
        assert!(target("ftp://x").is_err());
        // The reference's tunnel proxy hands out URLs with a query: it stays on every URL.
        let t = target("http://h:1/proxy?kiteID=k").unwrap();
        assert!(t.ws_url.starts_with("ws://h:1/proxy/"), "{}", t.ws_url);
        assert!(t.ws_url.ends_with("/websocket?kiteID=k"), "{}", t.ws_url);
        assert_eq!(t.query, "?kiteID=k");
        assert!(target("not a url").is_err());
    }

    #[test]
    fn transport_names() {
        assert_eq!(
            "WebSocket".parse::<Transport>().unwrap(),
            Transport::WebSocket
        );
        assert_eq!(
            "XHRPolling".parse::<Transport>().unwrap(),
            Transport::XhrPolling
        );
        assert_eq!(
            "xhr-polling".parse::<Transport>().unwrap(),
            Transport::XhrPolling
        );
        assert_eq!("auto".parse::<Transport>().unwrap(), Transport::Auto);
        assert!("carrier-pigeon".parse::<Transport>().is_err());
    }
}
