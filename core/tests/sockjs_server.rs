//! The SockJS server, transport by transport, over real HTTP and websocket connections:
//! the behaviour the SockJS protocol test suite checks, plus limits and hostile input.
// Test helpers outside #[test] functions unwrap too (clippy's allow-unwrap-in-tests covers
// only the test functions themselves).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use kite::sockjs::{ServeOptions, ServerConfig, Session, SockJsServer};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(url: &str, body: &str) -> (StatusCode, String) {
    let r = within(http().post(url).body(body.to_string()).send())
        .await
        .expect("post");
    let status = r.status();
    (status, r.text().await.expect("body"))
}

async fn get(url: &str) -> reqwest::Response {
    within(http().get(url).send()).await.expect("get")
}

/// Reads a streaming response until `want` has arrived (frames may be split or merged).
struct Reader {
    resp: reqwest::Response,
    buf: String,
}

impl Reader {
    async fn expect(&mut self, want: &str) {
        while self.buf.len() < want.len() {
            match within(self.resp.chunk()).await.expect("chunk") {
                Some(c) => self.buf.push_str(std::str::from_utf8(&c).expect("utf8")),
                None => break,
            }
        }
        assert!(
            self.buf.starts_with(want),
            "want {want:?}, got {:?}",
            self.buf
        );
        self.buf.drain(..want.len());
    }
    async fn expect_end(&mut self) {
        assert!(self.buf.is_empty(), "left over: {:?}", self.buf);
        assert!(
            within(self.resp.chunk()).await.expect("chunk").is_none(),
            "stream should end"
        );
    }
}

#[tokio::test]
async fn greeting_info_and_iframe() {
    let (srv, _) = start_echo(ServerConfig::default()).await;
    for path in ["/echo", "/echo/"] {
        let r = get(&srv.url(path)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/plain; charset=UTF-8");
        assert_eq!(r.text().await.unwrap(), "Welcome to SockJS!\n");
    }
    for path in [
        "/echo/a",
        "/echo/a.html",
        "/echo//",
        "/echo/a/a",
        "/echo/a/a/",
        "/echo/a/a/a/a",
    ] {
        assert_eq!(get(&srv.url(path)).await.status(), 404, "{path}");
    }
    let r = within(
        http()
            .get(srv.url("/echo/info"))
            .header("origin", "test")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "test");
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    let a: serde_json::Value = r.json().await.unwrap();
    assert_eq!(a["websocket"], true);
    assert_eq!(a["cookie_needed"], false);
    assert_eq!(a["origins"], serde_json::json!(["*:*"]));
    let b: serde_json::Value = get(&srv.url("/echo/info")).await.json().await.unwrap();
    assert!(a["entropy"].is_u64() && a["entropy"] != b["entropy"]);
    let r = within(
        http()
            .request(reqwest::Method::OPTIONS, srv.url("/echo/info"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age=31536000"));
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("GET"));

    let r = get(&srv.url("/echo/iframe-1.2.3.html")).await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].clone();
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("SockJS.bootstrap_iframe()"));
    let r = within(
        http()
            .get(srv.url("/echo/iframe.html"))
            .header("if-none-match", etag)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(get(&srv.url("/echo/iframe-/.html")).await.status(), 404);
}

#[tokio::test]
async fn xhr_polling_session() {
    let (srv, _) = start_echo(ServerConfig::default()).await;
    let base = srv.url(&format!("/echo/000/{}", sid()));
    assert_eq!(
        post(&format!("{base}/xhr"), "").await,
        (StatusCode::OK, "o\n".into())
    );
    let (status, body) = post(&format!("{base}/xhr_send"), r#"["a","b\u2028"]"#).await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    // The server id is ignored: another one reaches the same session.
    let other = base.replacen("/000/", "/999/", 1);
    assert_eq!(
        post(&format!("{other}/xhr"), "").await.1,
        "a[\"a\",\"b\\u2028\"]\n"
    );
    // Empty array: accepted, nothing delivered.
    assert_eq!(
        post(&format!("{base}/xhr_send"), "[]").await.0,
        StatusCode::NO_CONTENT
    );
    // Bad payloads.
    let (s, b) = post(&format!("{base}/xhr_send"), "[\"x").await;
    assert_eq!(s, 500);
    assert!(b.contains("Broken JSON encoding."));
    let (s, b) = post(&format!("{base}/xhr_send"), "").await;
    assert_eq!(s, 500);
    assert!(b.contains("Payload expected."));
    let (s, b) = post(&format!("{base}/xhr_send"), "[1,2]").await;
    assert_eq!(s, 500);
    assert!(b.contains("Broken JSON encoding."));
    // Unknown session.
    assert_eq!(
        post(&srv.url("/echo/000/nosuch/xhr_send"), "[\"x\"]")
            .await
            .0,
        404
    );
    // Session ids with dots, empty ones and absurdly long ones are not routed.
    for bad in ["/echo/a./a/xhr", "/echo/a/a./xhr", "/echo//a/xhr"] {
        assert_eq!(post(&srv.url(bad), "").await.0, 404, "{bad}");
    }
    let long = "x".repeat(10_000);
    assert_eq!(
        post(&srv.url(&format!("/echo/000/{long}/xhr")), "").await.0,
        404
    );
    // Wrong methods get 405 with Allow.
    let r = get(&format!("{base}/xhr")).await;
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("allow"));
    assert!(!r.headers().contains_key("content-type"));
}

#[tokio::test]
async fn second_receiver_gets_2010_and_abort_interrupts() {
    let (srv, server) = start_echo(ServerConfig::default()).await;
    let base = srv.url(&format!("/echo/000/{}", sid()));
    // A streaming receiver opens the session; once "o" arrived it is attached.
    let resp = within(http().post(format!("{base}/xhr_streaming")).send())
        .await
        .unwrap();
    let mut first = Reader {
        resp,
        buf: String::new(),
    };
    first.expect(&format!("{}\n", "h".repeat(2048))).await;
    first.expect("o\n").await;
    // A second receiver is refused, and the first one keeps the session.
    assert_eq!(
        post(&format!("{base}/xhr"), "").await.1,
        "c[2010,\"Another connection still open\"]\n"
    );
    let resp = within(http().post(format!("{base}/xhr_streaming")).send())
        .await
        .unwrap();
    let mut second = Reader {
        resp,
        buf: String::new(),
    };
    second.expect(&format!("{}\n", "h".repeat(2048))).await;
    second
        .expect("c[2010,\"Another connection still open\"]\n")
        .await;
    second.expect_end().await;
    post(&format!("{base}/xhr_send"), "[\"m\"]").await;
    first.expect("a[\"m\"]\n").await;
    // Aborting the attached receiver interrupts the session at once: it leaves the table
    // and the next poll opens a new session.
    drop(first);
    eventually(|| server.session_count() == 0).await;
    assert_eq!(post(&format!("{base}/xhr"), "").await.1, "o\n");
}

#[tokio::test]
async fn close_service_repeats_close_frame() {
    let server = SockJsServer::new(ServerConfig::default(), |s: Session| async move {
        s.close();
    });
    let srv = start_app(server.router("/close"), ServeOptions::default()).await;
    let base = srv.url(&format!("/close/000/{}", sid()));
    assert_eq!(post(&format!("{base}/xhr"), "").await.1, "o\n");
    for _ in 0..2 {
        assert_eq!(
            post(&format!("{base}/xhr"), "").await.1,
            "c[3000,\"Go away!\"]\n"
        );
    }
    let r = get(&srv.url(&format!("/close/000/{}/jsonp?c=x", sid()))).await;
    assert_eq!(r.text().await.unwrap(), "/**/x(\"o\");\r\n");
}

#[tokio::test]
async fn xhr_streaming_frames_and_response_limit() {
    let (srv, _) = start_echo(ServerConfig {
        response_limit: 4096,
        ..ServerConfig::default()
    })
    .await;
    let base = srv.url(&format!("/echo/000/{}", sid()));
    let resp = within(
        http()
            .post(format!("{base}/xhr_streaming"))
            .header("origin", "test")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/javascript; charset=UTF-8"
    );
    assert_eq!(resp.headers()["access-control-allow-origin"], "test");
    let mut r = Reader {
        resp,
        buf: String::new(),
    };
    r.expect(&format!("{}\n", "h".repeat(2048))).await;
    r.expect("o\n").await;
    let msg = format!("\"{}\"", "x".repeat(128));
    for _ in 0..31 {
        assert_eq!(
            post(&format!("{base}/xhr_send"), &format!("[{msg}]"))
                .await
                .0,
            204
        );
        r.expect(&format!("a[{msg}]\n")).await;
    }
    r.expect_end().await;
    // The session survives the ended response: a poll continues it.
    assert_eq!(post(&format!("{base}/xhr_send"), "[\"y\"]").await.0, 204);
    assert_eq!(post(&format!("{base}/xhr"), "").await.1, "a[\"y\"]\n");
}

#[tokio::test]
async fn eventsource_and_htmlfile() {
    let (srv, _) = start_echo(ServerConfig::default()).await;
    let base = srv.url(&format!("/echo/000/{}", sid()));
    let resp = get(&format!("{base}/eventsource")).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut r = Reader {
        resp,
        buf: String::new(),
    };
    r.expect("\r\n").await;
    r.expect("data: o\r\n\r\n").await;
    post(&format!("{base}/xhr_send"), r#"["  \u0000\n\r "]"#).await;
    r.expect("data: a[\"  \\u0000\\n\\r \"]\r\n\r\n").await;
    drop(r);

    assert_eq!(get(&srv.url("/echo/a/a/htmlfile")).await.status(), 500);
    for bad in ["%20", "*", "abc(", "abc%28"] {
        let r = get(&srv.url(&format!("/echo/a/a/htmlfile?c={bad}"))).await;
        assert_eq!(r.status(), 500);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("invalid \"callback\" parameter"));
    }
    let base = srv.url(&format!("/echo/000/{}", sid()));
    let resp = get(&format!("{base}/htmlfile?c=%63allback")).await;
    assert_eq!(resp.headers()["content-type"], "text/html; charset=UTF-8");
    let mut r = Reader {
        resp,
        buf: String::new(),
    };
    let first = within(r.resp.chunk()).await.unwrap().unwrap();
    let head = std::str::from_utf8(&first).unwrap();
    assert!(head.len() > 1024 && head.contains("var c = parent.callback;"));
    r.expect("<script>\np(\"o\");\n</script>\r\n").await;
    post(&format!("{base}/xhr_send"), "[\"x\"]").await;
    r.expect("<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n")
        .await;
}

#[tokio::test]
async fn jsonp_polling() {
    let (srv, _) = start_echo(ServerConfig {
        cookie_needed: true,
        ..ServerConfig::default()
    })
    .await;
    let base = srv.url(&format!("/echo/000/{}", sid()));
    assert_eq!(get(&srv.url("/echo/a/a/jsonp")).await.status(), 500);
    let r = get(&format!("{base}/jsonp?c=%63allback")).await;
    assert_eq!(r.headers()["set-cookie"], "JSESSIONID=dummy; path=/");
    assert_eq!(r.text().await.unwrap(), "/**/callback(\"o\");\r\n");
    let send = |body: &'static str, ct: &'static str| {
        let url = format!("{base}/jsonp_send");
        async move {
            let r = within(
                http()
                    .post(url)
                    .header("content-type", ct)
                    .body(body)
                    .send(),
            )
            .await
            .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let form = "application/x-www-form-urlencoded";
    assert_eq!(
        send("d=%5B%22abc%22%5D", form).await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        send("[\"%61bc\"]", "text/plain").await,
        (StatusCode::OK, "ok".into())
    );
    let (s, b) = send("d=%5B%22x", form).await;
    assert_eq!(s, 500);
    assert!(b.contains("Broken JSON encoding."));
    for empty in ["", "d=", "p=p"] {
        let (s, b) = send(empty, form).await;
        assert_eq!(s, 500);
        assert!(b.contains("Payload expected."));
    }
    let r = get(&format!("{base}/jsonp?c=x")).await;
    assert_eq!(
        r.text().await.unwrap(),
        "/**/x(\"a[\\\"abc\\\",\\\"%61bc\\\"]\");\r\n"
    );
}

async fn ws_connect(
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    within(tokio_tungstenite::connect_async(url))
        .await
        .expect("ws connect")
        .0
}

async fn ws_text(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Option<String> {
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Text(t))) => return Some(t.to_string()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn websocket_framed() {
    let (srv, _) = start_echo(fast_config()).await;
    let url = srv.ws_url(&format!("/echo/000/{}/websocket", sid()));
    let mut ws = ws_connect(&url).await;
    assert_eq!(ws_text(&mut ws).await.as_deref(), Some("o"));
    ws.send(Message::text("")).await.unwrap();
    ws.send(Message::text("[]")).await.unwrap();
    ws.send(Message::text("[\"a\",\"b\"]")).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let f = ws_text(&mut ws).await.unwrap();
        if f == "h" {
            continue;
        }
        let msgs: Vec<String> = serde_json::from_str(&f[1..]).unwrap();
        got.extend(msgs);
    }
    assert_eq!(got, ["a", "b"]);
    // Heartbeats arrive on an idle connection.
    assert_eq!(ws_text(&mut ws).await.as_deref(), Some("h"));
    // Broken JSON drops the connection.
    ws.send(Message::text("[\"a")).await.unwrap();
    loop {
        match ws_text(&mut ws).await {
            Some(h) if h == "h" => continue,
            other => {
                assert_eq!(other, None);
                break;
            }
        }
    }
    // Two websockets with the same session id are independent sessions.
    let mut a = ws_connect(&url).await;
    let mut b = ws_connect(&url).await;
    assert_eq!(ws_text(&mut a).await.as_deref(), Some("o"));
    assert_eq!(ws_text(&mut b).await.as_deref(), Some("o"));
    a.send(Message::text("[\"1\"]")).await.unwrap();
    b.send(Message::text("[\"2\"]")).await.unwrap();
    assert_eq!(ws_text(&mut a).await.as_deref(), Some("a[\"1\"]"));
    assert_eq!(ws_text(&mut b).await.as_deref(), Some("a[\"2\"]"));
}

#[tokio::test]
async fn websocket_refusals() {
    let (srv, _) = start_echo(ServerConfig::default()).await;
    let url = srv.url("/echo/0/0/websocket");
    assert_eq!(get(&url).await.status(), 400);
    let r = within(
        http()
            .get(&url)
            .header("upgrade", "WebSocket")
            .header("connection", "close")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = within(
        http()
            .post(&url)
            .header("upgrade", "WebSocket")
            .header("connection", "Upgrade")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("allow"));

    let server = SockJsServer::new(
        ServerConfig {
            websocket: false,
            ..ServerConfig::default()
        },
        echo,
    );
    let off = start_app(server.router("/off"), ServeOptions::default()).await;
    let info: serde_json::Value = get(&off.url("/off/info")).await.json().await.unwrap();
    assert_eq!(info["websocket"], false);
    assert!(
        tokio_tungstenite::connect_async(off.ws_url("/off/000/abc/websocket"))
            .await
            .is_err()
    );
    assert_eq!(get(&off.url("/off/websocket")).await.status(), 404);
}

#[tokio::test]
async fn raw_websocket_echo_and_close_reason() {
    let (srv, _) = start_echo(ServerConfig::default()).await;
    let mut ws = ws_connect(&srv.ws_url("/echo/websocket")).await;
    ws.send(Message::text("Hello world!\u{ffff}"))
        .await
        .unwrap();
    assert_eq!(
        ws_text(&mut ws).await.as_deref(),
        Some("Hello world!\u{ffff}")
    );

    let server = SockJsServer::new(ServerConfig::default(), |s: Session| async move {
        s.close();
    });
    let close = start_app(server.router("/close"), ServeOptions::default()).await;
    let mut ws = ws_connect(&close.ws_url("/close/websocket")).await;
    match within(ws.next()).await {
        Some(Ok(Message::Close(Some(f)))) => {
            assert_eq!(u16::from(f.code), 3000);
            assert_eq!(f.reason.as_str(), "Go away!");
        }
        other => panic!("expected close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn oversize_messages_are_refused() {
    let config = ServerConfig {
        max_message_size: 1024,
        ..ServerConfig::default()
    };
    let (srv, _) = start_echo(config).await;
    // Websocket: close 1009 (after the c frame).
    let mut ws = ws_connect(&srv.ws_url(&format!("/echo/000/{}/websocket", sid()))).await;
    assert_eq!(ws_text(&mut ws).await.as_deref(), Some("o"));
    let big = format!("[\"{}\"]", "x".repeat(4096));
    let _ = ws.send(Message::text(big.clone())).await;
    assert_eq!(
        ws_text(&mut ws).await.as_deref(),
        Some("c[1009,\"Message too big\"]")
    );
    // xhr_send: 413, session intact.
    let base = srv.url(&format!("/echo/000/{}", sid()));
    assert_eq!(post(&format!("{base}/xhr"), "").await.1, "o\n");
    assert_eq!(post(&format!("{base}/xhr_send"), &big).await.0, 413);
    assert_eq!(post(&format!("{base}/xhr_send"), "[\"ok\"]").await.0, 204);
    assert_eq!(post(&format!("{base}/xhr"), "").await.1, "a[\"ok\"]\n");
}

/// Sends a masked websocket frame by hand (tungstenite refuses to send invalid UTF-8).
async fn raw_ws_frame(stream: &mut tokio::net::TcpStream, opcode: u8, payload: &[u8]) {
    let mut f = vec![0x80 | opcode];
    assert!(payload.len() < 126);
    f.push(0x80 | payload.len() as u8);
    let mask = [1u8, 2, 3, 4];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&f).await.unwrap();
}

#[tokio::test]
async fn hostile_input_leaves_other_sessions_alone() {
    let (srv, _) = start_echo(ServerConfig::default()).await;
    // A healthy session runs throughout.
    let mut healthy = ws_connect(&srv.ws_url(&format!("/echo/000/{}/websocket", sid()))).await;
    assert_eq!(ws_text(&mut healthy).await.as_deref(), Some("o"));

    // Invalid UTF-8 in a text frame: that connection is closed.
    let mut s = within(tokio::net::TcpStream::connect(srv.addr))
        .await
        .unwrap();
    let req = format!(
        "GET /echo/000/{}/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        sid()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    raw_ws_frame(&mut s, 1, &[b'[', b'"', 0xff, 0xfe, b'"', b']']).await;
    let mut sink = Vec::new();
    within(s.read_to_end(&mut sink)).await.unwrap();
    assert!(String::from_utf8_lossy(&sink).starts_with("HTTP/1.1 101"));

    // Garbage instead of HTTP, and a request line that never ends.
    let mut s = within(tokio::net::TcpStream::connect(srv.addr))
        .await
        .unwrap();
    s.write_all(b"\x00\x01\x02garbage\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    within(s.read_to_end(&mut buf)).await.unwrap();

    // Unknown paths and methods.
    assert_eq!(
        get(&srv.url("/echo/000/abc/nosuchtransport"))
            .await
            .status(),
        404
    );
    let r = within(http().put(srv.url("/echo/000/abc/xhr")).send())
        .await
        .unwrap();
    assert_eq!(r.status(), 405);

    healthy
        .send(Message::text("[\"still here\"]"))
        .await
        .unwrap();
    assert_eq!(
        ws_text(&mut healthy).await.as_deref(),
        Some("a[\"still here\"]")
    );
}

#[tokio::test]
async fn clients_that_never_finish_the_handshake_are_dropped() {
    let server = SockJsServer::new(
        ServerConfig {
            handshake_timeout: Duration::from_millis(200),
            ..ServerConfig::default()
        },
        echo,
    );
    let options = ServeOptions {
        header_read_timeout: Duration::from_millis(200),
        ..ServeOptions::default()
    };
    let srv = start_app(server.router("/echo"), options).await;
    // Half a request head.
    let mut s = within(tokio::net::TcpStream::connect(srv.addr))
        .await
        .unwrap();
    s.write_all(b"GET /echo/info HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    within(s.read_to_end(&mut buf)).await.unwrap();
    // Hixie-76 client that never sends its 8-byte key.
    let mut s = within(tokio::net::TcpStream::connect(srv.addr))
        .await
        .unwrap();
    let req = "GET /echo/000/abc/websocket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\nOrigin: http://x\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    within(s.read_to_end(&mut buf)).await.unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 101"));
}

#[tokio::test]
async fn hixie76_handshake_and_echo() {
    let (srv, _) = start_echo(ServerConfig::default()).await;
    let mut s = within(tokio::net::TcpStream::connect(srv.addr))
        .await
        .unwrap();
    let req = format!("GET /echo/000/abc/websocket HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\nOrigin: http://x\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n", srv.addr);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        within(s.read_exact(&mut b)).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.contains(&format!(
        "sec-websocket-location: ws://{}/echo/000/abc/websocket",
        srv.addr
    )));
    s.write_all(b"aaaaaaaa").await.unwrap();
    let mut digest = [0u8; 16];
    within(s.read_exact(&mut digest)).await.unwrap();
    assert_eq!(&digest, b"\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{");
    let mut open = [0u8; 3];
    within(s.read_exact(&mut open)).await.unwrap();
    assert_eq!(&open, b"\x00o\xff");
    s.write_all(b"\x00[\"hi\"]\xff").await.unwrap();
    let mut reply = [0u8; 9];
    within(s.read_exact(&mut reply)).await.unwrap();
    assert_eq!(&reply, b"\x00a[\"hi\"]\xff");
}

#[tokio::test]
async fn json_escaping_of_troublesome_characters() {
    let (srv, _) = start_echo(ServerConfig::default()).await;
    let base = srv.url(&format!("/echo/000/{}", sid()));
    post(&format!("{base}/xhr"), "").await;
    let chars: String = (0x200cu32..=0x200f)
        .chain(0x2028..=0x202f)
        .chain(0x2060..=0x206f)
        .chain(0xfff0..=0xffff)
        .filter_map(char::from_u32)
        .collect();
    let payload = serde_json::to_string(&[&chars]).unwrap();
    assert_eq!(post(&format!("{base}/xhr_send"), &payload).await.0, 204);
    let body = post(&format!("{base}/xhr"), "").await.1;
    let expected: String = chars
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    assert_eq!(body, format!("a[\"{expected}\"]\n"));
}

#[tokio::test]
async fn session_table_returns_to_empty() {
    let (srv, server) = start_echo(fast_config()).await;
    for _ in 0..20 {
        let base = srv.url(&format!("/echo/000/{}", sid()));
        assert_eq!(post(&format!("{base}/xhr"), "").await.1, "o\n");
        post(&format!("{base}/xhr_send"), "[\"queued\"]").await;
    }
    assert_eq!(server.session_count(), 20);
    eventually(|| server.session_count() == 0).await;
}

#[tokio::test]
async fn slow_client_cannot_grow_memory() {
    let limit = 64 * 1024;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = SockJsServer::new(
        ServerConfig {
            disconnect_delay: Duration::from_millis(300),
            limits: kite::sockjs::SessionLimits {
                send_queue_bytes: limit,
                ..Default::default()
            },
            ..ServerConfig::default()
        },
        move |s: Session| {
            let tx = tx.clone();
            async move {
                let chunk = "x".repeat(1024);
                let mut sent = 0usize;
                // Push 10 MiB at a client that never polls again.
                let result = loop {
                    if sent >= 10 * 1024 * 1024 {
                        break Ok(());
                    }
                    if let Err(e) = s.send(chunk.clone()).await {
                        break Err(e);
                    }
                    sent += chunk.len();
                    assert!(s.queued_bytes() <= limit + chunk.len());
                };
                let _ = tx.send((sent, result.is_err()));
            }
        },
    );
    let srv = start_app(server.router("/s"), ServeOptions::default()).await;
    let base = srv.url(&format!("/s/000/{}", sid()));
    assert_eq!(post(&format!("{base}/xhr"), "").await.1, "o\n");
    // The client never polls again: the sender blocks at the limit, then the disconnect
    // delay closes the session and the blocked send fails.
    let (sent, failed) = within(rx.recv()).await.unwrap();
    assert!(failed, "send should fail once the session times out");
    assert!(
        sent <= limit + 1024,
        "sent {sent} bytes into a session nobody reads"
    );
    eventually(|| server.session_count() == 0).await;
}
