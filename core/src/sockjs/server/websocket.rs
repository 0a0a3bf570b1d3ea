//! Websocket transports: framed `/{server}/{session}/websocket` and raw `/websocket`.
//!
//! The upgrade is done here rather than with axum's extractor so that every refusal has
//! the exact status SockJS specifies, and so that legacy Hixie-76 clients (still sent by
//! some proxies, e.g. HAProxy health checks) are served too.
#![deny(clippy::arithmetic_side_effects)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::OriginalUri;
use axum::response::Response;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::super::frame;
use super::super::session::Session;
use super::super::ws::{pump, ws_config, Framing};
use super::http::{self as h, CT_PLAIN};
use super::sessions::{Ctx, Inner};

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Checks the upgrade request; `Err` is the refusal (boxed: the rare path).
fn check(ctx: &Ctx) -> Result<(), Box<Response>> {
    let req = &ctx.req;
    if req.method() != Method::GET {
        return Err(Box::new(h::method_not_allowed("GET")));
    }
    if !header_has(req.headers(), header::UPGRADE, "websocket") {
        return Err(Box::new(h::text(
            StatusCode::BAD_REQUEST,
            CT_PLAIN,
            "Can \"Upgrade\" only to \"WebSocket\".",
        )));
    }
    if !header_has(req.headers(), header::CONNECTION, "upgrade") {
        return Err(Box::new(h::text(
            StatusCode::BAD_REQUEST,
            CT_PLAIN,
            "\"Connection\" must be \"Upgrade\".",
        )));
    }
    Ok(())
}

pub(super) async fn framed(ctx: Ctx) -> Response {
    upgrade(ctx, Framing::Server).await
}

pub(super) async fn raw(ctx: Ctx) -> Response {
    upgrade(ctx, Framing::Raw).await
}

async fn upgrade(mut ctx: Ctx, framing: Framing) -> Response {
    if let Err(r) = check(&ctx) {
        return *r;
    }
    let headers = ctx.req.headers();
    if headers.get(header::SEC_WEBSOCKET_KEY).is_none()
        && headers.contains_key("sec-websocket-key1")
        && framing == Framing::Server
    {
        return hixie76::upgrade(ctx);
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return h::text(
            StatusCode::BAD_REQUEST,
            CT_PLAIN,
            "Not a valid websocket request",
        );
    };
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() == b"13");
    if !version_ok {
        let mut r = h::text(
            StatusCode::BAD_REQUEST,
            CT_PLAIN,
            "Unsupported websocket version",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut ctx.req);
    let server = ctx.server.clone();
    let remote = ctx.remote;
    // The websocket keeps its connection's place under the connection limit.
    let slot = ctx
        .req
        .extensions()
        .get::<super::serve::ConnectionSlot>()
        .cloned();
    tokio::spawn(async move {
        let _slot = slot;
        run_upgraded(on_upgrade, server, remote, framing).await;
    });
    switching_protocols(&accept)
}

/// Once the connection is upgraded: opens a session on the websocket and pumps it (with the
/// application handler) until either side closes.
async fn run_upgraded(
    on_upgrade: OnUpgrade,
    server: Arc<Inner>,
    remote: Option<SocketAddr>,
    framing: Framing,
) {
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
    };
    let config = ws_config(server.config.max_message_size);
    let ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let (transport, heartbeat) = match framing {
        Framing::Raw => ("websocket-raw", None),
        _ => ("websocket", Some(server.config.heartbeat_delay)),
    };
    let session = Session::new(String::new(), transport, remote, server.config.limits);
    session.open();
    let mut ws = ws;
    if framing == Framing::Server {
        use futures_util::SinkExt;
        if ws
            .send(tokio_tungstenite::tungstenite::Message::text(frame::OPEN))
            .await
            .is_err()
        {
            return;
        }
    }
    let app = server.start_inline(&session);
    let _open = server.count_session(transport);
    pump(ws, session, framing, heartbeat, app).await;
}

/// The `101 Switching Protocols` answer carrying `Sec-WebSocket-Accept: accept`.
fn switching_protocols(accept: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, h::hv(accept));
    r
}

/// Hixie-76 (draft 76) websockets: a key challenge answered with an MD5 digest after the
/// upgrade, then text frames delimited by `0x00` … `0xFF`.
mod hixie76 {
    use super::super::super::frame::{parse_client_payload, CloseReason};
    use super::super::super::session::Outgoing;
    use super::*;
    use md5::{Digest, Md5};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    fn key_number(key: &str) -> Option<u32> {
        let digits: String = key.chars().filter(|c| c.is_ascii_digit()).collect();
        let spaces = key.chars().filter(|c| *c == ' ').count() as u64;
        let n: u64 = digits.parse().ok()?;
        if n.checked_rem(spaces)? != 0 {
            return None;
        }
        u32::try_from(n.checked_div(spaces)?).ok()
    }

    pub(super) fn upgrade(mut ctx: Ctx) -> Response {
        let headers = ctx.req.headers();
        let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (Some(k1), Some(k2)) = (
            key_number(get("sec-websocket-key1")),
            key_number(get("sec-websocket-key2")),
        ) else {
            return h::text(
                StatusCode::BAD_REQUEST,
                CT_PLAIN,
                "Not a valid websocket request",
            );
        };
        let origin = get("origin").to_string();
        let host = get("host").to_string();
        let path = ctx
            .req
            .extensions()
            .get::<OriginalUri>()
            .map(|u| u.0.path().to_string())
            .unwrap_or_else(|| ctx.req.uri().path().to_string());
        let location = format!("ws://{host}{path}");
        let on_upgrade = hyper::upgrade::on(&mut ctx.req);
        let server = ctx.server.clone();
        let remote = ctx.remote;
        let slot = ctx
            .req
            .extensions()
            .get::<super::super::serve::ConnectionSlot>()
            .cloned();
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut io = TokioIo::new(upgraded);
            let mut challenge = [0u8; 8];
            let timeout = server.config.handshake_timeout;
            if !matches!(
                tokio::time::timeout(timeout, io.read_exact(&mut challenge)).await,
                Ok(Ok(_))
            ) {
                tracing::debug!("hixie-76 client did not finish the handshake");
                return;
            }
            let mut md5 = Md5::new();
            md5.update(k1.to_be_bytes());
            md5.update(k2.to_be_bytes());
            md5.update(challenge);
            if io.write_all(&md5.finalize()).await.is_err() {
                return;
            }
            let session = Session::new(
                String::new(),
                "websocket-hixie76",
                remote,
                server.config.limits,
            );
            session.open();
            let (rd, mut wr) = tokio::io::split(io);
            if write_frame(&mut wr, frame::OPEN).await.is_err() {
                return;
            }
            server.start(&session);
            let _open = server.count_session("websocket-hixie76");
            let max = server.config.max_message_size;
            let heartbeat = server.config.heartbeat_delay;
            tokio::join!(
                read_loop(rd, &session, max),
                write_loop(wr, &session, heartbeat)
            );
        });
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = r.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert("sec-websocket-origin", h::hv(&origin));
        h.insert("sec-websocket-location", h::hv(&location));
        r
    }

    type Io = TokioIo<hyper::upgrade::Upgraded>;

    async fn write_frame(wr: &mut tokio::io::WriteHalf<Io>, text: &str) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(text.len().saturating_add(2));
        buf.push(0);
        buf.extend_from_slice(text.as_bytes());
        buf.push(0xff);
        wr.write_all(&buf).await
    }

    async fn read_loop(rd: tokio::io::ReadHalf<Io>, session: &Session, max: usize) {
        let mut rd = tokio::io::BufReader::new(rd);
        let mut buf = Vec::new();
        loop {
            let first = tokio::select! {
                b = rd.read_u8() => b,
                _ = session.closed() => return,
            };
            match first {
                Ok(0x00) => {}
                _ => break, // 0xFF (closing handshake), garbage or EOF
            }
            buf.clear();
            let n = match (&mut rd)
                .take((max as u64).saturating_add(1))
                .read_until(0xff, &mut buf)
                .await
            {
                Ok(n) => n,
                Err(_) => break,
            };
            if n == 0 || buf.last() != Some(&0xff) {
                if n > max {
                    session.close_with(CloseReason::too_big());
                    return;
                }
                break;
            }
            buf.pop();
            let Ok(text) = std::str::from_utf8(&buf) else {
                session.close_with(CloseReason::new(1007, "Invalid UTF-8"));
                return;
            };
            if text.is_empty() {
                continue;
            }
            match parse_client_payload(text.as_bytes()) {
                Ok(msgs) => {
                    for m in msgs {
                        if session.push_inbound(m).await.is_err() {
                            return;
                        }
                    }
                }
                Err(_) => {
                    session.close_with(CloseReason::broken_framing());
                    return;
                }
            }
        }
        session.close_with(CloseReason::interrupted());
    }

    async fn write_loop(
        mut wr: tokio::io::WriteHalf<Io>,
        session: &Session,
        heartbeat: std::time::Duration,
    ) {
        let start = tokio::time::Instant::now();
        let mut tick =
            tokio::time::interval_at(start.checked_add(heartbeat).unwrap_or(start), heartbeat);
        loop {
            let r = tokio::select! {
                out = session.next_outgoing() => match out {
                    Outgoing::Messages(m) => write_frame(&mut wr, &frame::array_frame(&m)).await,
                    Outgoing::Close(reason) => {
                        if reason != CloseReason::broken_framing() {
                            let _ = write_frame(&mut wr, &reason.frame()).await;
                        }
                        let _ = wr.write_all(&[0xff, 0x00]).await;
                        let _ = wr.shutdown().await;
                        return;
                    }
                },
                _ = tick.tick() => write_frame(&mut wr, frame::HEARTBEAT).await,
            };
            if r.is_err() {
                session.close_with(CloseReason::interrupted());
                return;
            }
        }
    }
}
