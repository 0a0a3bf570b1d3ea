//! Polling transports: `xhr` and `jsonp` (one frame per request), and the matching send
//! endpoints `xhr_send` and `jsonp_send`.
#![deny(clippy::arithmetic_side_effects)]

use axum::response::Response;
use http::header::{self, HeaderMap};
use http::StatusCode;

use super::super::frame::{self, parse_client_payload, CloseReason, PayloadError};
use super::super::session::{Attach, Outgoing, Session};
use super::http::{self as h, CT_JS, CT_PLAIN};
use super::sessions::{read_body, BodyError, Ctx, Inner};
use std::sync::Arc;

/// Detaches the receiver when dropped: as an abort if the request future was dropped
/// (client went away), normally if [`AttachGuard::finish`] ran.
pub(super) struct AttachGuard {
    session: Option<Session>,
}

impl AttachGuard {
    pub(super) fn new(session: Session) -> Self {
        Self {
            session: Some(session),
        }
    }

    pub(super) fn finish(mut self) {
        if let Some(s) = self.session.take() {
            s.detach(false);
        }
    }
}

impl Drop for AttachGuard {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            tracing::debug!(session = s.id(), "sockjs receiver aborted");
            s.detach(true);
        }
    }
}

/// Waits for one frame for a polling receiver: the open frame, messages, the close frame
/// or a heartbeat.
async fn poll_frame(server: &Arc<Inner>, session: &Session) -> String {
    match session.attach() {
        Attach::Opened => {
            server.start(session);
            session.detach(false);
            frame::OPEN.to_string()
        }
        Attach::AnotherOpen => CloseReason::another_connection().frame(),
        Attach::Closed(msgs, reason) => {
            session.detach(false);
            if msgs.is_empty() {
                reason.frame()
            } else {
                frame::array_frame(&msgs)
            }
        }
        Attach::Attached => {
            let guard = AttachGuard::new(session.clone());
            let out = tokio::select! {
                out = session.next_outgoing() => match out {
                    Outgoing::Messages(m) => frame::array_frame(&m),
                    Outgoing::Close(r) => r.frame(),
                },
                _ = tokio::time::sleep(server.config.heartbeat_delay) => frame::HEARTBEAT.to_string(),
            };
            guard.finish();
            out
        }
    }
}

fn headers(ctx: &Ctx, out: &mut HeaderMap, cors: bool) {
    if cors {
        h::cors(ctx.req.headers(), out);
    }
    h::no_cache(out);
    h::cookie(&ctx.server.config, ctx.req.headers(), out);
}

pub(super) async fn xhr(ctx: Ctx, session_id: String) -> Response {
    let mut body = match ctx.server.get_or_create(&session_id, "xhr", &ctx) {
        Ok(session) => poll_frame(&ctx.server, &session).await,
        Err(refused) => refused.frame(),
    };
    body.push('\n');
    let mut r = h::text(StatusCode::OK, CT_JS, body);
    headers(&ctx, r.headers_mut(), true);
    r
}

/// The `c` (or `callback`) query parameter of JSONP and htmlfile, validated (`Err`: the
/// refusal, boxed as it is the rare path).
pub(super) fn callback_param(ctx: &Ctx) -> Result<String, Box<Response>> {
    let query = ctx.req.uri().query().unwrap_or("");
    let cb = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "c" || k == "callback")
        .map(|(_, v)| v.into_owned());
    match cb {
        None => Err(Box::new(h::server_error("\"callback\" parameter required"))),
        Some(cb)
            if cb.is_empty()
                || !cb
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            Err(Box::new(h::server_error("invalid \"callback\" parameter")))
        }
        Some(cb) => Ok(cb),
    }
}

pub(super) async fn jsonp(ctx: Ctx, session_id: String) -> Response {
    let callback = match callback_param(&ctx) {
        Ok(cb) => cb,
        Err(r) => return *r,
    };
    let f = match ctx.server.get_or_create(&session_id, "jsonp", &ctx) {
        Ok(session) => poll_frame(&ctx.server, &session).await,
        Err(refused) => refused.frame(),
    };
    let mut body = String::with_capacity(f.len().saturating_add(callback.len()).saturating_add(16));
    body.push_str("/**/");
    body.push_str(&callback);
    body.push('(');
    frame::push_quoted(&mut body, &f);
    body.push_str(");\r\n");
    let mut r = h::text(StatusCode::OK, CT_JS, body);
    headers(&ctx, r.headers_mut(), false);
    r
}

/// Reads a send body and delivers its messages; `Err` is the error response.
async fn deliver(ctx: Ctx, session_id: &str, form: bool) -> Result<Ctx, Response> {
    let Some(session) = ctx.server.lookup(session_id) else {
        return Err(h::not_found());
    };
    let limit = ctx.server.config.max_message_size;
    let content_type = ctx
        .req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (parts, body) = ctx.req.into_parts();
    let ctx = Ctx {
        server: ctx.server,
        req: axum::extract::Request::from_parts(parts, axum::body::Body::empty()),
        remote: ctx.remote,
    };
    let timeout = ctx.server.config.body_read_timeout;
    let raw = match read_body(body, limit.saturating_mul(2).max(1024), timeout).await {
        Ok(b) => b,
        Err(BodyError::TooBig) => {
            return Err(h::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                CT_PLAIN,
                "Message too big.\n",
            ))
        }
        Err(BodyError::Io) => return Err(h::server_error("Broken request body.")),
        Err(BodyError::TimedOut) => {
            tracing::debug!(session = session_id, "send body not received in time");
            return Err(h::text(
                StatusCode::REQUEST_TIMEOUT,
                CT_PLAIN,
                "Request body not received in time.\n",
            ));
        }
    };
    let payload: Vec<u8> = if form && content_type.starts_with("application/x-www-form-urlencoded")
    {
        url::form_urlencoded::parse(&raw)
            .find(|(k, _)| k == "d")
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default()
    } else {
        raw.to_vec()
    };
    if payload.len() > limit {
        return Err(h::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            CT_PLAIN,
            "Message too big.\n",
        ));
    }
    let messages = match parse_client_payload(&payload) {
        Ok(m) => m,
        Err(e @ (PayloadError::Empty | PayloadError::BrokenJson)) => {
            return Err(h::server_error(&e.to_string()))
        }
    };
    for m in messages {
        if session.push_inbound(m).await.is_err() {
            break;
        }
    }
    Ok(ctx)
}

pub(super) async fn xhr_send(ctx: Ctx, session_id: String) -> Response {
    match deliver(ctx, &session_id, false).await {
        Ok(ctx) => {
            let mut r = h::text(StatusCode::NO_CONTENT, CT_PLAIN, axum::body::Body::empty());
            headers(&ctx, r.headers_mut(), true);
            r
        }
        Err(r) => r,
    }
}

pub(super) async fn jsonp_send(ctx: Ctx, session_id: String) -> Response {
    match deliver(ctx, &session_id, true).await {
        Ok(ctx) => {
            let mut r = h::text(StatusCode::OK, CT_PLAIN, "ok");
            headers(&ctx, r.headers_mut(), false);
            r
        }
        Err(r) => r,
    }
}
