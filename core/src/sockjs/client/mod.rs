//! The SockJS client: websocket, XHR polling, or `auto` (websocket first, XHR polling when
//! the websocket handshake is refused). [`connect`] returns an open [`Session`].
//!
//! URL shapes follow the reference kite client: for a service at `http://host:port/kite`
//! the websocket is `ws://host:port/kite/{3 digits}/{20 random chars}/websocket` (sent with
//! `Origin: http://host:port`), and XHR polling uses `POST …/xhr` and `POST …/xhr_send`
//! on the same session path.

mod xhr;

use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use url::Url;

use super::frame::{parse_frame, CloseReason, Frame};
use super::session::{Session, SessionLimits};
use super::ws::{pump, ws_config, Framing};

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
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            transport: Transport::Auto,
            connect_timeout: Duration::from_secs(30),
            poll_timeout: Duration::from_secs(60),
            max_message_size: 16 * 1024 * 1024,
            limits: SessionLimits::default(),
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
    /// The server closed the session at once.
    #[error("SockJS session closed by the server: {0}")]
    Closed(CloseReason),
}

/// The service URL split into what the transports need.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `http(s)://host:port/prefix/{server}/{session}`
    pub(crate) session_url: String,
    /// `ws(s)://host:port/prefix/{server}/{session}/websocket`
    pub(crate) ws_url: String,
    /// `http(s)://host:port`
    pub(crate) origin: String,
    pub(crate) session_id: String,
}

fn random_session_id() -> String {
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
    let server_id = format!("{:03}", rand::rng().random_range(0..1000));
    let session_id = random_session_id();
    Ok(Target {
        session_url: format!("{http}://{host_port}{path}/{server_id}/{session_id}"),
        ws_url: format!("{ws}://{host_port}{path}/{server_id}/{session_id}/websocket"),
        origin: format!("{http}://{host_port}"),
        session_id,
    })
}

/// Opens a session to the service at `url`.
///
/// An `http(s)://` URL (e.g. `http://127.0.0.1:3636/kite`, what kites register) names a
/// SockJS service, reached with `config.transport`. A `ws(s)://` URL names a plain
/// websocket endpoint without SockJS framing (one message per websocket message) — how
/// kite.js servers are addressed by default.
pub async fn connect(url: &str, config: &ClientConfig) -> Result<Session, ConnectError> {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        return tokio::time::timeout(config.connect_timeout, connect_raw(url, config))
            .await
            .map_err(|_| ConnectError::Timeout)?;
    }
    let target = target(url)?;
    let fut = async {
        match config.transport {
            Transport::WebSocket => connect_ws(&target, config).await,
            Transport::XhrPolling => xhr::connect(&target, config).await,
            Transport::Auto => match connect_ws(&target, config).await {
                Err(ConnectError::Refused(status)) => {
                    tracing::debug!(status, "websocket refused, falling back to XHR polling");
                    xhr::connect(&target, config).await
                }
                other => other,
            },
        }
    };
    tokio::time::timeout(config.connect_timeout, fut)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

/// A raw websocket (no SockJS framing).
async fn connect_raw(url: &str, config: &ClientConfig) -> Result<Session, ConnectError> {
    let request = url
        .into_client_request()
        .map_err(|_| ConnectError::InvalidUrl(url.to_string()))?;
    let (ws, _) = tokio_tungstenite::connect_async_with_config(
        request,
        Some(ws_config(config.max_message_size)),
        true,
    )
    .await
    .map_err(|e| match e {
        WsError::Http(resp) => ConnectError::Refused(resp.status().as_u16()),
        WsError::Io(e) => ConnectError::Io(e.to_string()),
        other => ConnectError::Protocol(other.to_string()),
    })?;
    let session = Session::new(random_session_id(), "websocket-raw", None, config.limits);
    session.open();
    tokio::spawn(pump(ws, session.clone(), Framing::Raw, None, None));
    Ok(session)
}

async fn connect_ws(target: &Target, config: &ClientConfig) -> Result<Session, ConnectError> {
    use futures_util::StreamExt;
    let mut request = target
        .ws_url
        .as_str()
        .into_client_request()
        .map_err(|_| ConnectError::InvalidUrl(target.ws_url.clone()))?;
    if let Ok(origin) = target.origin.parse() {
        request.headers_mut().insert(http::header::ORIGIN, origin);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        request,
        Some(ws_config(config.max_message_size)),
        true,
    )
    .await
    .map_err(|e| match e {
        WsError::Http(resp) => ConnectError::Refused(resp.status().as_u16()),
        WsError::Io(e) => ConnectError::Io(e.to_string()),
        other => ConnectError::Protocol(other.to_string()),
    })?;
    let first = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => return Err(ConnectError::Protocol(format!("unexpected {other:?}"))),
            Some(Err(e)) => return Err(ConnectError::Io(e.to_string())),
            None => {
                return Err(ConnectError::Io(
                    "connection closed before the open frame".into(),
                ))
            }
        }
    };
    match parse_frame(&first) {
        Ok(Frame::Open) => {}
        Ok(Frame::Close(r)) => return Err(ConnectError::Closed(r)),
        _ => {
            return Err(ConnectError::Protocol(format!(
                "expected open frame, got {first:?}"
            )))
        }
    }
    let session = Session::new(target.session_id.clone(), "websocket", None, config.limits);
    session.open();
    tokio::spawn(pump(ws, session.clone(), Framing::Client, None, None));
    Ok(session)
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
