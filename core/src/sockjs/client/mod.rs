//! The SockJS client: websocket, XHR polling, or `auto` (websocket first, XHR polling when
//! the websocket handshake is refused). [`connect`] returns an open [`Session`].
//!
//! URL shapes follow the reference kite client: for a service at `http://host:port/kite`
//! the websocket is `ws://host:port/kite/{3 digits}/{20 random chars}/websocket` (sent with
//! `Origin: http://host:port`), and XHR polling uses `POST …/xhr` and `POST …/xhr_send`
//! on the same session path.
//!
//! Bottom to top: `options` (options, errors, session URLs) ← `dial` (TLS and HTTP helpers)
//! ← `xhr` (XHR polling) ← this module (the websocket transport and [`connect`]).

mod dial;
mod options;
mod xhr;

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::either::Either;
use url::Url;

use super::frame::{parse_frame, Frame};
use super::session::Session;
use super::ws::{pump, ws_config, Framing};
pub use dial::{http_client, is_tls_url};
use dial::{plain_on_tls, tls_for, tls_io_error};
use options::Target;
use options::{random_session_id, target};
pub use options::{ClientConfig, ConnectError, Transport};

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

/// Opens a SockJS session over the websocket at exactly `url`
/// (`ws(s)://host:port/prefix/{server}/{session}/websocket`, with SockJS framing): what a
/// tunnel proxy hands a kite to dial (`kite.tunnel`).
pub async fn connect_websocket(url: &str, config: &ClientConfig) -> Result<Session, ConnectError> {
    let bad = || ConnectError::InvalidUrl(url.to_string());
    let u = Url::parse(url).map_err(|_| bad())?;
    let http = match u.scheme() {
        "ws" => "http",
        "wss" => "https",
        _ => return Err(bad()),
    };
    let host = u.host_str().ok_or_else(bad)?;
    let origin = match u.port() {
        Some(p) => format!("{http}://{host}:{p}"),
        None => format!("{http}://{host}"),
    };
    let target = Target {
        url: url.to_string(),
        session_url: String::new(),
        query: String::new(),
        ws_url: url.to_string(),
        origin,
        session_id: random_session_id(),
    };
    let deadline = Instant::now() + config.connect_timeout;
    tokio::time::timeout_at(
        deadline + Duration::from_millis(100),
        connect_ws(&target, config, deadline),
    )
    .await
    .map_err(|_| ConnectError::Timeout)?
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
                crate::protocol::format_duration(config.connect_timeout)
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
