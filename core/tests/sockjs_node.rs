//! Interop with SockJS peers written by others, run with Node.js from
//! `tests/interop/sockjs` (dependencies pinned in its `package-lock.json`; install them
//! with `scripts/setup.sh`):
//!
//! * our server driven by **sockjs-client 1.6.1** (`client.js`), once per transport that
//!   sockjs-client can use in Node: `websocket`, `xhr-streaming`, `xhr-polling` and
//!   `eventsource` (`htmlfile`, `jsonp-polling`, `iframe-*` and `xdr-*` need a browser DOM
//!   or `XDomainRequest` and are never enabled in Node);
//! * our client against **sockjs-node 0.3.24** (`server.js`), with every client transport
//!   (`WebSocket`, `XhrPolling`, `Auto`, and `Auto` falling back when websockets are off).
//!
//! A missing `node` or `node_modules` fails the tests: they are not skipped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kite::sockjs::{
    connect, serve, ClientConfig, CloseReason, ServeOptions, ServerConfig, Session, SockJsServer,
    Transport,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::timeout;

/// Bound of any single await in these tests (client.js has its own 20 s overall timeout).
const STEP: Duration = Duration::from_secs(30);

/// Messages sent by each client.js run: covers every tricky string in client.js.
const NODE_CLIENT_MESSAGES: usize = 40;

/// `tests/interop/sockjs`, after checking that its npm dependencies are installed.
fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/sockjs");
    let dir = dir.canonicalize().unwrap_or(dir);
    let modules = dir.join("node_modules");
    assert!(
        modules.join("sockjs-client/package.json").is_file()
            && modules.join("sockjs/package.json").is_file(),
        "the SockJS interop tests need sockjs-client and sockjs-node in {}: run \
         `scripts/setup.sh` (or `npm ci` in {})",
        modules.display(),
        dir.display()
    );
    dir
}

fn node(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new("node");
    cmd.current_dir(dir).kill_on_drop(true);
    cmd
}

fn node_missing(e: std::io::Error) -> String {
    format!("cannot run `node` ({e}): install Node.js 20 with `scripts/setup.sh`")
}

/// Strings that stress framing and escaping (the same kinds client.js sends). Lone
/// surrogates, which client.js could send, cannot exist in a Rust `String`.
fn tricky_messages() -> Vec<String> {
    vec![
        "hello".into(),
        String::new(),
        "zażółć gęślą jaźń ☃ 中文 русский 😀🎉 e\u{301}".into(),
        r#"quotes " ' ` and backslashes \ \\ \u0041 \n"#.into(),
        "newlines\nand\r\nCRLF\tand tab".into(),
        "line sep \u{2028} para sep \u{2029} end".into(),
        "nonchars \u{FFFF} \u{FFFE} \u{FFF0} and BOM \u{FEFF}".into(),
        "zero-width \u{200C}\u{200D}\u{200F} \u{2060} \u{206F}".into(),
        "controls \u{0} \u{1} \u{1f} \u{7f}".into(),
        r#"["a json array", "in a string"]"#.into(),
        r#"a[] c[3000,"Go away!"] o h"#.into(),
        "</script><script>alert(1)</script>".into(),
        "x".repeat(64 * 1024),
        "é☃😀\u{2028}".repeat(8 * 1024),
    ]
}

fn describe(s: &str) -> String {
    if s.chars().count() > 80 {
        let head: String = s.chars().take(80).collect();
        format!("{head:?}… ({} bytes)", s.len())
    } else {
        format!("{s:?}")
    }
}

// ---------------------------------------------------------------------------------------
// a. our server, sockjs-client

async fn echo(session: Session) {
    while let Some(msg) = session.recv().await {
        if session.send(msg).await.is_err() {
            break;
        }
    }
}

/// Starts our echo services on 127.0.0.1:0 and returns `http://127.0.0.1:PORT`:
/// `/echo` with the protocol test suite's 4 KiB streaming response limit (so the
/// streaming transports reconnect often) and `/echo_defaults` with the default options.
async fn start_our_server() -> String {
    let small = ServerConfig {
        response_limit: 4096,
        ..ServerConfig::default()
    };
    let app = axum::Router::new()
        .merge(SockJsServer::new(small, echo).router("/echo"))
        .merge(SockJsServer::new(ServerConfig::default(), echo).router("/echo_defaults"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    tokio::spawn(serve(listener, app, ServeOptions::default()));
    format!("http://{addr}")
}

/// Runs `node client.js URL TRANSPORT N` and asserts that it succeeded.
async fn run_node_client(url: &str, transport: &str) {
    let dir = interop_dir();
    let child = node(&dir)
        .arg("client.js")
        .arg(url)
        .arg(transport)
        .arg(NODE_CLIENT_MESSAGES.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}", node_missing(e)));
    let out = timeout(STEP, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("client.js {url} {transport} did not exit within {STEP:?}"))
        .expect("wait for client.js");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = || {
        format!(
            "client.js {url} {transport} {NODE_CLIENT_MESSAGES}: {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            out.status
        )
    };
    assert!(out.status.success(), "{}", report());
    let line = stdout.lines().last().unwrap_or_default();
    let result: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("bad result line ({e}); {}", report()));
    assert_eq!(result["ok"], true, "{}", report());
    assert_eq!(result["transport"], transport, "{}", report());
    assert_eq!(
        result["received"],
        NODE_CLIENT_MESSAGES as u64,
        "{}",
        report()
    );
    println!("{line}");
}

async fn sockjs_client_against_our_server(transport: &str) {
    let base = start_our_server().await;
    for service in ["/echo", "/echo_defaults"] {
        run_node_client(&format!("{base}{service}"), transport).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_client_websocket() {
    sockjs_client_against_our_server("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_client_xhr_streaming() {
    sockjs_client_against_our_server("xhr-streaming").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_client_xhr_polling() {
    sockjs_client_against_our_server("xhr-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_client_eventsource() {
    sockjs_client_against_our_server("eventsource").await;
}

/// client.js refuses transports that sockjs-client cannot use in Node, so a typo or a
/// browser-only transport cannot pass by silently using another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_client_rejects_browser_only_transport() {
    let dir = interop_dir();
    let out = timeout(
        STEP,
        node(&dir)
            .args(["client.js", "http://127.0.0.1:9/echo", "htmlfile", "1"])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("client.js did not exit")
    .unwrap_or_else(|e| panic!("{}", node_missing(e)));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

// ---------------------------------------------------------------------------------------
// b. sockjs-node, our client

/// A running `node server.js`; killed when dropped.
struct NodeServer {
    _child: Child,
    /// Held open: server.js exits when its stdin closes.
    _stdin: ChildStdin,
    base: String,
}

async fn start_node_server() -> NodeServer {
    let dir = interop_dir();
    let mut child = node(&dir)
        .arg("server.js")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{}", node_missing(e)));
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = timeout(STEP, lines.next_line())
        .await
        .expect("server.js printed no readiness line")
        .expect("read server.js stdout");
    let Some(first) = first else {
        let status = child.try_wait().ok().flatten();
        panic!("server.js exited before listening (status {status:?}); see its stderr above");
    };
    let ready: serde_json::Value = serde_json::from_str(&first)
        .unwrap_or_else(|e| panic!("bad readiness line {first:?} from server.js: {e}"));
    let port = ready["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("no port in readiness line {first:?}"));
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    NodeServer {
        _child: child,
        _stdin: stdin,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn open(url: &str, transport: Transport) -> Session {
    let config = ClientConfig {
        transport,
        connect_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    timeout(STEP, connect(url, &config))
        .await
        .unwrap_or_else(|_| panic!("connect({url}, {transport}) hung"))
        .unwrap_or_else(|e| panic!("connect({url}, {transport}) failed: {e}"))
}

/// Sends all tricky messages (plus numbered ones) at once and checks the echoes in order.
async fn check_echo(session: &Session, what: &str) {
    let mut messages = tricky_messages();
    messages.extend((0..20).map(|i| format!("message #{i}")));
    for m in &messages {
        timeout(STEP, session.send(m.clone()))
            .await
            .unwrap_or_else(|_| panic!("{what}: send blocked"))
            .unwrap_or_else(|_| panic!("{what}: session closed while sending"));
    }
    for (i, expected) in messages.iter().enumerate() {
        let got = timeout(STEP, session.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: no echo #{i} within {STEP:?}"));
        let Some(got) = got else {
            panic!(
                "{what}: session closed ({:?}) after {i} of {} echoes",
                session.close_reason(),
                messages.len()
            );
        };
        assert!(
            got == *expected,
            "{what}: echo #{i} differs: expected {}, got {}",
            describe(expected),
            describe(&got)
        );
    }
}

async fn our_client_echo(transport: Transport, service: &str, expected_transport: &str) {
    let server = start_node_server().await;
    let url = format!("{}{service}", server.base);
    let what = format!("{transport} against sockjs-node {url}");
    let session = open(&url, transport).await;
    assert_eq!(session.transport(), expected_transport, "{what}");
    check_echo(&session, &what).await;
    assert!(session.close(), "{what}: already closed");
    timeout(STEP, session.closed())
        .await
        .unwrap_or_else(|_| panic!("{what}: close hung"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_websocket_against_sockjs_node() {
    our_client_echo(Transport::WebSocket, "/echo", "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_xhr_polling_against_sockjs_node() {
    our_client_echo(Transport::XhrPolling, "/echo", "xhr-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_auto_against_sockjs_node() {
    our_client_echo(Transport::Auto, "/echo", "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_auto_falls_back_against_sockjs_node() {
    our_client_echo(Transport::Auto, "/disabled_websocket_echo", "xhr-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_sees_sockjs_node_close() {
    let server = start_node_server().await;
    let url = format!("{}/close", server.base);
    for transport in [Transport::WebSocket, Transport::XhrPolling, Transport::Auto] {
        let what = format!("{transport} against sockjs-node {url}");
        let session = open(&url, transport).await;
        let got = timeout(STEP, session.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: session not closed within {STEP:?}"));
        assert_eq!(got, None, "{what}: expected the session to end");
        assert_eq!(
            session.close_reason(),
            Some(CloseReason::go_away()),
            "{what}: close reason"
        );
        assert!(session.is_closed(), "{what}");
    }
}
