//! The SockJS client: websocket, XHR polling, or `auto` (websocket first, XHR polling when
//! the websocket handshake is refused). [`connect`] returns an open [`Session`].
//!
//! URL shapes follow the reference kite client: for a service at `http://host:port/kite`
//! the websocket is `ws://host:port/kite/{3 digits}/{20 random chars}/websocket` (sent with
//! `Origin: http://host:port`), and XHR polling uses `POST …/xhr` and `POST …/xhr_send`
//! on the same session path.

mod xhr;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::either::Either;
use url::Url;

use super::frame::{parse_frame, CloseReason, Frame};
use super::limits::SessionLimits;
use super::session::Session;
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
        url: url.to_string(),
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
    // The TLS handshake has its own deadline (a typed error naming the URL); the whole
    // dial gets a little more so that the more precise error wins.
    let deadline = Instant::now() + config.connect_timeout;
    let outer = deadline + Duration::from_millis(100);
    if url.starts_with("ws://") || url.starts_with("wss://") {
        return tokio::time::timeout_at(outer, connect_raw(url, config, deadline))
            .await
            .map_err(|_| ConnectError::Timeout)?;
    }
    let target = target(url)?;
    let fut = async {
        match config.transport {
            Transport::WebSocket => connect_ws(&target, config, deadline).await,
            Transport::XhrPolling => xhr::connect(&target, config).await,
            Transport::Auto => match connect_ws(&target, config, deadline).await {
                Err(ConnectError::Refused(status)) => {
                    tracing::debug!(status, "websocket refused, falling back to XHR polling");
                    xhr::connect(&target, config).await
                }
                other => other,
            },
        }
    };
    tokio::time::timeout_at(outer, fut)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

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
fn tls_io_error(url: &str, e: &std::io::Error) -> ConnectError {
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
fn plain_on_tls(url: &str, body: Option<&[u8]>) -> Option<ConnectError> {
    let body = std::str::from_utf8(body?).ok()?;
    body.contains(crate::tls::PLAIN_ON_TLS_BODY)
        .then(|| ConnectError::Tls {
            url: url.to_string(),
            reason: crate::tls::plain_on_tls_reason(),
        })
}

type Stream = Either<TcpStream, TlsStream<TcpStream>>;

/// TCP to the host of `dial`, then TLS for `https://`/`wss://` (the handshake bounded by
/// `deadline`); errors name `url`.
async fn open_stream(
    dial: &str,
    url: &str,
    config: &ClientConfig,
    deadline: Instant,
) -> Result<Stream, ConnectError> {
    let bad = || ConnectError::InvalidUrl(url.to_string());
    let u = Url::parse(dial).map_err(|_| bad())?;
    let host = match u.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err(bad()),
    };
    let port = u.port_or_known_default().ok_or_else(bad)?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| ConnectError::Io(format!("{url}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    if !is_tls_url(dial) {
        return Ok(Either::Left(tcp));
    }
    let tls = tls_for(url, config)?;
    let name = rustls_pki_types::ServerName::try_from(host).map_err(|_| ConnectError::Tls {
        url: url.to_string(),
        reason: "the host is not a valid TLS server name".into(),
    })?;
    let handshake = tokio_rustls::TlsConnector::from(tls).connect(name, tcp);
    match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(s)) => Ok(Either::Right(s)),
        Ok(Err(e)) => Err(tls_io_error(url, &e)),
        Err(_) => Err(ConnectError::Tls {
            url: url.to_string(),
            reason: format!(
                "TLS handshake did not complete within {}",
                crate::error::format_duration(config.connect_timeout)
            ),
        }),
    }
}

/// The websocket handshake's failure as a connect error.
fn ws_error(url: &str, e: WsError) -> ConnectError {
    match e {
        WsError::Http(resp) => plain_on_tls(url, resp.body().as_deref())
            .unwrap_or(ConnectError::Refused(resp.status().as_u16())),
        WsError::Io(e) => ConnectError::Io(format!("{url}: {e}")),
        other => ConnectError::Protocol(other.to_string()),
    }
}

/// A raw websocket (no SockJS framing).
async fn connect_raw(
    url: &str,
    config: &ClientConfig,
    deadline: Instant,
) -> Result<Session, ConnectError> {
    let request = url
        .into_client_request()
        .map_err(|_| ConnectError::InvalidUrl(url.to_string()))?;
    let stream = open_stream(url, url, config, deadline).await?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        request,
        stream,
        Some(ws_config(config.max_message_size)),
    )
    .await
    .map_err(|e| ws_error(url, e))?;
    let session = Session::new(random_session_id(), "websocket-raw", None, config.limits);
    session.open();
    tokio::spawn(pump(ws, session.clone(), Framing::Raw, None, None));
    Ok(session)
}

async fn connect_ws(
    target: &Target,
    config: &ClientConfig,
    deadline: Instant,
) -> Result<Session, ConnectError> {
    use futures_util::StreamExt;
    let mut request = target
        .ws_url
        .as_str()
        .into_client_request()
        .map_err(|_| ConnectError::InvalidUrl(target.ws_url.clone()))?;
    if let Ok(origin) = target.origin.parse() {
        request.headers_mut().insert(http::header::ORIGIN, origin);
    }
    let stream = open_stream(&target.ws_url, &target.url, config, deadline).await?;
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        request,
        stream,
        Some(ws_config(config.max_message_size)),
    )
    .await
    .map_err(|e| ws_error(&target.url, e))?;
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
