//! Forwarding one HTTP request to a backend kite, byte for byte: the request and the
//! response pass through (bodies streamed), and a websocket upgrade becomes a two-way byte
//! copy between the client's and the backend's connections. Nothing is parsed.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

/// Headers that belong to one hop (RFC 9110 §7.6.1), not forwarded — except `Connection`
/// and `Upgrade` of a websocket handshake.
const HOP_BY_HOP: [header::HeaderName; 6] = [
    header::CONNECTION,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::PROXY_AUTHORIZATION,
];

/// How a request is forwarded.
#[derive(Clone)]
pub(crate) struct Forwarder {
    /// Time to connect to the backend and receive its response head.
    pub(crate) timeout: Duration,
    /// TLS for `https` backends.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

fn error(status: StatusCode, message: String) -> Response {
    tracing::debug!(%status, "{message}");
    (status, message).into_response()
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

type Stream = tokio_util::either::Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

impl Forwarder {
    async fn open(&self, target: &Url) -> Result<Stream, String> {
        let host = target.host_str().ok_or("the backend URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = target
            .port_or_known_default()
            .ok_or("the backend URL has no port")?;
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        if !matches!(target.scheme(), "https" | "wss") {
            return Ok(tokio_util::either::Either::Left(tcp));
        }
        let tls = self
            .tls
            .clone()
            .ok_or("no TLS configuration to reach an https backend")?;
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| "the backend host is not a valid TLS server name")?;
        let s = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        Ok(tokio_util::either::Either::Right(s))
    }

    /// Sends `req` to `target` (scheme, host, port, path and query all taken from it) and
    /// returns the backend's response; 502 when the backend cannot be reached, 504 when it
    /// does not answer within the timeout.
    pub(crate) async fn forward(&self, mut req: Request, target: Url) -> Response {
        let upgrade = is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let outgoing = match outgoing(req, &target, upgrade) {
            Ok(r) => r,
            Err(resp) => return *resp,
        };
        let mut resp =
            match tokio::time::timeout(self.timeout, self.exchange(&target, outgoing)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    return error(
                        StatusCode::BAD_GATEWAY,
                        format!("the kite behind the proxy at {target} is unreachable: {e}"),
                    )
                }
                Err(_) => {
                    return error(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!(
                            "the kite behind the proxy at {target} did not answer within {}",
                            crate::protocol::format_duration(self.timeout)
                        ),
                    )
                }
            };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            if let Some(client_upgrade) = client_upgrade {
                tokio::spawn(async move {
                    let (Ok(client), Ok(backend)) = tokio::join!(client_upgrade, backend_upgrade)
                    else {
                        tracing::debug!("websocket upgrade through the proxy failed");
                        return;
                    };
                    let (mut c, mut b) = (TokioIo::new(client), TokioIo::new(backend));
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut b).await;
                });
            }
            let (parts, _) = resp.into_parts();
            return Response::from_parts(parts, Body::empty());
        }
        let (mut parts, body) = resp.into_parts();
        for h in HOP_BY_HOP {
            parts.headers.remove(h);
        }
        Response::from_parts(parts, Body::new(body))
    }

    /// One HTTP/1.1 exchange on a new connection to the backend (kept open for an upgrade).
    async fn exchange(
        &self,
        target: &Url,
        outgoing: Request,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let stream = self.open(target).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "backend connection ended");
            }
        });
        sender
            .send_request(outgoing)
            .await
            .map_err(|e| format!("request failed: {e}"))
    }
}

/// The request for the backend: `req` with `target`'s path and query, its `Host`, without
/// hop-by-hop headers (but `Connection`/`Upgrade` of a websocket handshake), and with
/// `X-Forwarded-For` set to the client's address — replaced, not appended to, since a
/// backend that trusts the proxy (`KITE_TRUSTED_PROXIES`) takes its first address as the
/// client's, and a client could have put any address there.
fn outgoing(req: Request, target: &Url, upgrade: bool) -> Result<Request, Box<Response>> {
    let (mut parts, body) = req.into_parts();
    let client = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    match client.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()) {
        Some(v) => {
            parts.headers.insert("x-forwarded-for", v);
        }
        None => {
            parts.headers.remove("x-forwarded-for");
        }
    }
    let path = match target.query() {
        Some(q) => format!("{}?{q}", target.path()),
        None => target.path().to_string(),
    };
    parts.uri = path
        .parse()
        .map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, "invalid path".into())))?;
    parts.version = http::Version::HTTP_11;
    for h in HOP_BY_HOP {
        if !(upgrade && (h == header::CONNECTION || h == header::UPGRADE)) {
            parts.headers.remove(h);
        }
    }
    if upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let authority = match target.port() {
        Some(p) => format!("{}:{p}", target.host_str().unwrap_or_default()),
        None => target.host_str().unwrap_or_default().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&authority) {
        parts.headers.insert(header::HOST, v);
    }
    Ok(Request::from_parts(parts, body))
}
