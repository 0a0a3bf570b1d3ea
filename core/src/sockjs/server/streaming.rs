//! Streaming transports: `xhr_streaming`, `eventsource` and `htmlfile`. One long response
//! carries many frames, each written as its own HTTP chunk, until the response limit is
//! reached, the session closes or the client goes away.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use tokio::sync::mpsc;

use super::super::frame::{self, CloseReason};
use super::super::session::{Attach, Outgoing, Session};
use super::http::{self as h, CT_HTML, CT_JS};
use super::polling::{callback_param, AttachGuard};
use super::sessions::{Ctx, Inner};

/// Which streaming transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    XhrStreaming,
    EventSource,
    HtmlFile,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::XhrStreaming => "xhr_streaming",
            Kind::EventSource => "eventsource",
            Kind::HtmlFile => "htmlfile",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Kind::XhrStreaming => CT_JS,
            Kind::EventSource => "text/event-stream",
            Kind::HtmlFile => CT_HTML,
        }
    }

    fn prelude(self, callback: &str) -> String {
        match self {
            // 2 KiB of `h` so that old browsers start delivering the stream.
            Kind::XhrStreaming => {
                let mut s = "h".repeat(2048);
                s.push('\n');
                s
            }
            Kind::EventSource => "\r\n".to_string(),
            Kind::HtmlFile => {
                let mut s = format!(
                    r#"<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>"#
                );
                // Browsers only start rendering after 1 KiB.
                let pad = 1025usize.saturating_sub(s.len());
                s.push_str(&" ".repeat(pad));
                s.push_str("\r\n\r\n");
                s
            }
        }
    }

    fn frame(self, f: &str) -> String {
        match self {
            Kind::XhrStreaming => {
                let mut s = String::with_capacity(f.len().saturating_add(1));
                s.push_str(f);
                s.push('\n');
                s
            }
            Kind::EventSource => format!("data: {f}\r\n\r\n"),
            Kind::HtmlFile => {
                let mut s = String::with_capacity(f.len().saturating_add(32));
                s.push_str("<script>\np(");
                frame::push_quoted(&mut s, f);
                s.push_str(");\n</script>\r\n");
                s
            }
        }
    }
}

pub(super) async fn serve(ctx: Ctx, session_id: String, kind: Kind) -> Response {
    let callback = if kind == Kind::HtmlFile {
        match callback_param(&ctx) {
            Ok(cb) => cb,
            Err(r) => return *r,
        }
    } else {
        String::new()
    };
    let session = match ctx.server.get_or_create(&session_id, kind.name(), &ctx) {
        Ok(s) => s,
        Err(refused) => {
            return h::text(
                StatusCode::SERVICE_UNAVAILABLE,
                h::CT_PLAIN,
                format!("{}\n", refused.reason),
            )
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let prelude = kind.prelude(&callback);
    tokio::spawn(stream(ctx.server.clone(), session, kind, tx, prelude));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut r = h::text(StatusCode::OK, kind.content_type(), Body::from_stream(body));
    let headers = r.headers_mut();
    if kind == Kind::XhrStreaming {
        h::cors(ctx.req.headers(), headers);
    }
    h::no_cache(headers);
    h::cookie(&ctx.server.config, ctx.req.headers(), headers);
    r
}

async fn stream(
    server: Arc<Inner>,
    session: Session,
    kind: Kind,
    tx: mpsc::Sender<Bytes>,
    prelude: String,
) {
    let write = |s: String| {
        let tx = tx.clone();
        async move { tx.send(Bytes::from(s)).await.is_ok() }
    };
    if !write(prelude).await {
        return;
    }
    let mut written = 0usize;
    match session.attach() {
        Attach::Opened => {
            server.start(&session);
            let f = kind.frame(frame::OPEN);
            written = written.saturating_add(f.len());
            if !write(f).await {
                session.detach(true);
                return;
            }
        }
        Attach::Attached => {}
        Attach::AnotherOpen => {
            write(kind.frame(&CloseReason::another_connection().frame())).await;
            return;
        }
        Attach::Closed(msgs, reason) => {
            if !msgs.is_empty() {
                write(kind.frame(&frame::array_frame(&msgs))).await;
            }
            write(kind.frame(&reason.frame())).await;
            session.detach(false);
            return;
        }
    }
    let guard = AttachGuard::new(session.clone());
    let period = server.config.heartbeat_delay;
    let start = tokio::time::Instant::now();
    let mut heartbeat =
        tokio::time::interval_at(start.checked_add(period).unwrap_or(start), period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let f = tokio::select! {
            biased;
            _ = tx.closed() => return, // client went away: the guard aborts the session
            out = session.next_outgoing() => match out {
                Outgoing::Messages(m) => kind.frame(&frame::array_frame(&m)),
                Outgoing::Close(r) => {
                    write(kind.frame(&r.frame())).await;
                    guard.finish();
                    return;
                }
            },
            _ = heartbeat.tick() => kind.frame(frame::HEARTBEAT),
        };
        written = written.saturating_add(f.len());
        if !write(f).await {
            return;
        }
        if written >= server.config.response_limit {
            guard.finish();
            return;
        }
    }
}
