//! Hostile peers against the limits of issue 15: values from the wire that used to panic,
//! strings and nesting the reference answers, and the per-peer bounds on memory (calls
//! and bytes in flight, callbacks, sessions, connections) and time (request heads and
//! bodies) — each holding while a well-behaved client on the same kite keeps answering.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use kite::{Callback, Config, Kite, Request};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as Ws;

const WAIT: Duration = Duration::from_secs(20);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// Waits until `cond` holds, re-checking on a short timer (bounded by WAIT).
async fn eventually(mut cond: impl FnMut() -> bool) {
    within(async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

fn open_config() -> Config {
    Config {
        ip: "127.0.0.1".into(),
        disable_authentication: true,
        ..Config::default()
    }
}

/// A kite with `echo` and `square`, listening.
async fn target(config: Config) -> Kite {
    let k = Kite::with_config("target", "1.0.0", config).unwrap();
    k.handle("echo", |r: Request| async move {
        let v: Value = r.args().one()?;
        Ok::<_, kite::KiteError>(v)
    })
    .unwrap();
    k.handle_typed("square", |_r: Request, (n,): (f64,)| async move {
        Ok::<_, kite::KiteError>(n * n)
    })
    .unwrap();
    within(k.listen()).await.unwrap();
    k
}

/// A well-behaved client of `k`.
async fn healthy(k: &Kite) -> kite::Client {
    let me = Kite::with_config("healthy", "1.0.0", Config::default()).unwrap();
    let c = me.client(&k.url().unwrap());
    within(c.dial()).await.unwrap();
    // The client kite must outlive this function.
    std::mem::forget(me);
    c
}

/// The healthy client's `square` round trip, which must stay fast.
async fn healthy_square(c: &kite::Client) -> Duration {
    let t = Instant::now();
    assert_eq!(within(c.call("square", [3])).await.unwrap(), json!(9.0));
    t.elapsed()
}

/// One call message with a responseCallback (id `cb`) and, optionally, a function at
/// withArgs[1] (id `cb + 1`).
fn call_text(method: &str, with_args: &str, cb: u64, with_fn: bool) -> String {
    let mut callbacks = format!(r#""{cb}":[0,"responseCallback"]"#);
    if with_fn {
        callbacks.push_str(&format!(r#","{}":[0,"withArgs",1]"#, cb + 1));
    }
    format!(
        r#"{{"method":"{method}","arguments":[{{"kite":{{"name":"hostile"}},"withArgs":{with_args},"responseCallback":"[Function]"}}],"callbacks":{{{callbacks}}}}}"#
    )
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_ws(k: &Kite) -> RawWs {
    let url = format!("ws://{}/kite/websocket", k.ready().await);
    within(tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .0
}

/// The text of the next message calling callback `id`.
async fn reply_text(ws: &mut RawWs, id: u64) -> String {
    let prefix = format!(r#"{{"method":{id},"#);
    loop {
        match within(ws.next()).await {
            Some(Ok(Ws::Text(t))) if t.starts_with(&prefix) => return t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("connection lost: {other:?}"),
        }
    }
}

/// The next reply to callback `id` (other messages, e.g. heartbeat pings, are skipped).
async fn reply(ws: &mut RawWs, id: u64) -> Value {
    loop {
        match within(ws.next()).await {
            Some(Ok(Ws::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["method"] == json!(id) {
                    return v["arguments"][0].clone();
                }
            }
            Some(Ok(_)) => continue,
            other => panic!("connection lost: {other:?}"),
        }
    }
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

// ---- defect 3: nothing from the wire panics ----

#[tokio::test]
async fn heartbeat_intervals_at_the_extremes_do_not_panic() {
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let k = target(open_config()).await;
    let good = healthy(&k).await;
    let mut ws = raw_ws(&k).await;
    let mut id = 100;
    for interval in [
        "1e19",
        "1.7976931348623157e308",
        "1e-300",
        "5e-324",
        "18446744073709551615",
    ] {
        id += 10;
        let text = call_text(
            "kite.heartbeat",
            &format!(r#"[{interval},"[Function]"]"#),
            id,
            true,
        );
        ws.send(Ws::text(text)).await.unwrap();
        let r = reply(&mut ws, id).await;
        assert_eq!(r["error"], Value::Null, "{interval}: {r}");
        healthy_square(&good).await;
    }
    // The heartbeat tasks have started (their first tick is due at the clamped interval).
    healthy_square(&good).await;
    assert_eq!(
        panics.load(Ordering::SeqCst),
        0,
        "a wire value panicked a task"
    );
}

#[tokio::test]
async fn one_heartbeat_per_connection() {
    let k = target(open_config()).await;
    let mut ws = raw_ws(&k).await;
    // 50 heartbeats of 10 ms on one connection: each replaces the one before, so a peer
    // cannot pile up ping tasks.
    let mut last_fn = 0;
    for i in 0..50u64 {
        let id = 1000 + i * 2;
        ws.send(Ws::text(call_text(
            "kite.heartbeat",
            r#"[0.01,"[Function]"]"#,
            id,
            true,
        )))
        .await
        .unwrap();
        assert_eq!(reply(&mut ws, id).await["error"], Value::Null);
        last_fn = id + 1;
    }
    // For a while, only the last heartbeat's function is pinged.
    let mut pings = 0;
    let window = tokio::time::sleep(Duration::from_millis(300));
    tokio::pin!(window);
    loop {
        tokio::select! {
            _ = &mut window => break,
            m = ws.next() => match m {
                Some(Ok(Ws::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_eq!(v["method"], json!(last_fn), "an earlier heartbeat still pings: {v}");
                    pings += 1;
                }
                other => panic!("{other:?}"),
            },
        }
    }
    assert!(pings >= 3, "{pings} pings in 300 ms at 10 ms");
}

// ---- defect 6: lone surrogates and deep nesting are answered ----

#[tokio::test]
async fn lone_surrogates_are_read_as_replacement_characters() {
    let k = target(open_config()).await;
    // In the dnode text (JSON.stringify of a cut emoji), over the raw websocket.
    let mut ws = raw_ws(&k).await;
    ws.send(Ws::text(call_text("echo", r#"["x\ud83d"]"#, 1, false)))
        .await
        .unwrap();
    let r = reply(&mut ws, 1).await;
    assert_eq!(r["result"], json!("x\u{fffd}"), "{r}");
    ws.send(Ws::text(call_text(
        "echo",
        r#"["\udc00\ud83d\ude00"]"#,
        2,
        false,
    )))
    .await
    .unwrap();
    assert_eq!(reply(&mut ws, 2).await["result"], json!("\u{fffd}😀"));
    // Inside the method name too: answered (method not found), not dropped.
    ws.send(Ws::text(call_text("ec\\ud800ho", "[]", 3, false)))
        .await
        .unwrap();
    assert_eq!(reply(&mut ws, 3).await["error"]["type"], "methodNotFound");

    // In the SockJS framing of a framed websocket session.
    let url = format!("ws://{}/kite/000/abcdef/websocket", k.ready().await);
    let (mut framed, _) = within(tokio_tungstenite::connect_async(url)).await.unwrap();
    let inner = call_text("echo", r#"["y"]"#, 4, false).replace(r#"["y"]"#, r#"["y\ud83d"]"#);
    // The dnode text holds a raw lone surrogate, escaped (as `\ud83d`) only by SockJS.
    let sockjs = format!(
        "[{}]",
        serde_json::to_string(&inner)
            .unwrap()
            .replace(r"\\ud83d", r"\ud83d")
    );
    framed.send(Ws::text(sockjs)).await.unwrap();
    loop {
        match within(framed.next()).await {
            Some(Ok(Ws::Text(t))) if t.starts_with('a') => {
                let msgs: Vec<String> = serde_json::from_str(&t[1..]).unwrap();
                let v: Value = serde_json::from_str(&msgs[0]).unwrap();
                assert_eq!(v["arguments"][0]["result"], json!("y\u{fffd}"), "{v}");
                break;
            }
            Some(Ok(Ws::Text(t))) if t.starts_with('c') => panic!("session closed: {t}"),
            Some(Ok(_)) => continue,
            other => panic!("connection lost: {other:?}"),
        }
    }
}

#[tokio::test]
async fn deep_nesting_is_answered_up_to_the_reference_limit() {
    let k = target(open_config()).await;
    let good = healthy(&k).await;
    let mut ws = raw_ws(&k).await;
    let mut id = 0;
    for depth in [127, 200, 1000, 9_990] {
        id += 1;
        let deep = format!("[{}1{}]", "[".repeat(depth), "]".repeat(depth));
        ws.send(Ws::text(call_text("echo", &deep, id, false)))
            .await
            .unwrap();
        // The answer is checked as text: a value this deep is not for a test's stack.
        let text = reply_text(&mut ws, id).await;
        let want = format!(
            r#"{{"error":null,"result":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(text.contains(&want), "depth {depth}: {:.200}", text);
        healthy_square(&good).await;
    }
    // Beyond the limit: a clear error, not a timeout.
    id += 1;
    let depth = 20_000;
    let deep = format!("[{}1{}]", "[".repeat(depth), "]".repeat(depth));
    ws.send(Ws::text(call_text("echo", &deep, id, false)))
        .await
        .unwrap();
    let r = reply(&mut ws, id).await;
    assert_eq!(r["error"]["type"], "argumentError", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("10000"),
        "{r}"
    );
    healthy_square(&good).await;
}

// ---- defect 2: bounded memory per peer ----

/// A kite whose `hold` method waits until released, counting the calls that started.
async fn holding_kite(config: Config) -> (Kite, Arc<AtomicUsize>) {
    let k = target(config).await;
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    k.handle("hold", move |_r: Request| {
        s.fetch_add(1, Ordering::SeqCst);
        async move {
            std::future::pending::<()>().await;
            Ok::<_, kite::KiteError>(())
        }
    })
    .unwrap();
    (k, started)
}

#[tokio::test]
async fn calls_in_flight_per_connection_are_bounded() {
    let (k, started) = holding_kite(Config {
        max_calls_in_flight: 16,
        ..open_config()
    })
    .await;
    let good = healthy(&k).await;
    let mut ws = raw_ws(&k).await;
    for i in 0..1000 {
        ws.send(Ws::text(call_text("hold", "[]", i, false)))
            .await
            .unwrap();
    }
    eventually(|| started.load(Ordering::SeqCst) >= 16).await;
    // The connection's reading has paused; the rest of the kite has not.
    for _ in 0..20 {
        assert!(healthy_square(&good).await < Duration::from_secs(1));
    }
    assert_eq!(started.load(Ordering::SeqCst), 16);
}

#[tokio::test]
async fn bytes_in_flight_per_connection_are_bounded() {
    let (k, started) = holding_kite(Config {
        max_bytes_in_flight: 1024 * 1024,
        ..open_config()
    })
    .await;
    let good = healthy(&k).await;
    let mut ws = raw_ws(&k).await;
    let big = format!(r#"["{}"]"#, "x".repeat(256 * 1024));
    let writer = tokio::spawn(async move {
        for i in 0..100 {
            if ws
                .send(Ws::text(call_text("hold", &big, i, false)))
                .await
                .is_err()
            {
                break;
            }
        }
        ws
    });
    eventually(|| started.load(Ordering::SeqCst) >= 4).await;
    for _ in 0..20 {
        assert!(healthy_square(&good).await < Duration::from_secs(1));
    }
    let n = started.load(Ordering::SeqCst);
    assert!(n <= 5, "{n} calls of 256 KiB in flight under a 1 MiB limit");
    writer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_cannot_grow_memory() {
    // The issue's reproduction: 1 MB echo calls from a client that never reads.
    let k = target(open_config()).await;
    let good = healthy(&k).await;
    let baseline = healthy_square(&good).await;
    let before = rss_bytes();
    let mut ws = raw_ws(&k).await;
    let mb = format!(r#"["{}"]"#, "x".repeat(1024 * 1024));
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        for i in 0..300 {
            if ws
                .send(Ws::text(call_text("echo", &mb, i, false)))
                .await
                .is_err()
            {
                break;
            }
            counter.fetch_add(1, Ordering::SeqCst);
        }
        ws
    });
    // The writer stalls once the server stops reading; the kite keeps answering others.
    let mut worst = Duration::ZERO;
    let mut last = usize::MAX;
    for _ in 0..200 {
        worst = worst.max(healthy_square(&good).await);
        let now = sent.load(Ordering::SeqCst);
        if now == last && now < 300 {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let grown = rss_bytes().saturating_sub(before);
    let stalled_at = sent.load(Ordering::SeqCst);
    eprintln!(
        "flood: writer stalled after {stalled_at} MB, RSS +{} MB, healthy worst {worst:?} (baseline {baseline:?})",
        grown / (1024 * 1024)
    );
    writer.abort();
    assert!(stalled_at < 300, "the server kept reading");
    assert!(
        grown < 150 * 1024 * 1024,
        "RSS grew by {} MB with {stalled_at} MB sent",
        grown / (1024 * 1024)
    );
    assert!(
        worst < baseline * 20 + Duration::from_millis(500),
        "healthy client slowed to {worst:?} (baseline {baseline:?})"
    );
}

#[tokio::test]
async fn callbacks_per_connection_are_bounded() {
    let k = target(Config {
        max_callbacks: 64,
        ..open_config()
    })
    .await;
    k.handle("subscribe", |_r: Request| async move {
        Ok::<_, kite::KiteError>(
            kite::Payload::new(json!({})).with_callback(["cancel"], Callback::new(|_| {})),
        )
    })
    .unwrap();
    let good = healthy(&k).await;
    let mut ws = raw_ws(&k).await;
    let (mut ok, mut refused) = (0, 0);
    for i in 0..200 {
        ws.send(Ws::text(call_text("subscribe", "[]", i, false)))
            .await
            .unwrap();
        let r = reply(&mut ws, i).await;
        if r["error"].is_null() {
            assert_eq!(r["result"]["cancel"], "[Function]");
            ok += 1;
        } else {
            assert_eq!(r["error"]["type"], "requestLimitError", "{r}");
            assert!(r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("too many callbacks"));
            refused += 1;
        }
    }
    assert_eq!((ok, refused), (64, 136));
    healthy_square(&good).await;
}

/// POST `/kite/000/{sid}/xhr`, optionally with an `X-Forwarded-For`; the body.
async fn xhr_open(http: &reqwest::Client, k: &Kite, sid: &str, xff: Option<&str>) -> String {
    let url = format!("http://{}/kite/000/{sid}/xhr", k.ready().await);
    let mut req = http.post(url);
    if let Some(x) = xff {
        req = req.header("X-Forwarded-For", x);
    }
    within(req.send()).await.unwrap().text().await.unwrap()
}

const REFUSED: &str = "c[1013,\"Too many sessions\"]\n";

#[tokio::test]
async fn xhr_sessions_are_bounded_per_client_and_in_total() {
    let mut config = open_config();
    config.sockjs.max_sessions_per_client = 5;
    config.sockjs.max_sessions = 8;
    let k = target(config).await;
    let good = healthy(&k).await;
    let http = reqwest::Client::new();
    // One address: 5 sessions, then refusals. X-Forwarded-For from an untrusted peer
    // changes nothing.
    for i in 0..10 {
        let body = xhr_open(&http, &k, &format!("a{i}"), Some(&format!("10.0.0.{i}"))).await;
        let want = if i < 5 { "o\n" } else { REFUSED };
        assert_eq!(body, want, "session {i}");
    }
    // An existing session still polls.
    assert_ne!(xhr_open(&http, &k, "a0", None).await, REFUSED);
    healthy_square(&good).await;

    // Behind a trusted proxy, each forwarded client has its own allowance, and the
    // total still holds.
    let mut config = open_config();
    config.sockjs.max_sessions_per_client = 2;
    config.sockjs.max_sessions = 5;
    config.sockjs.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let k = target(config).await;
    let mut opened = 0;
    for client in 0..4 {
        for s in 0..3 {
            let xff = format!("10.1.0.{client}, 127.0.0.1");
            let body = xhr_open(&http, &k, &format!("b{client}-{s}"), Some(&xff)).await;
            if body == "o\n" {
                opened += 1;
                assert!(s < 2, "a third session for client {client}");
            } else {
                assert_eq!(body, REFUSED);
            }
        }
    }
    assert_eq!(opened, 5);
}

#[tokio::test]
async fn connections_in_total_are_bounded() {
    let k = target(Config {
        max_connections: 3,
        ..open_config()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(raw_ws(&k).await);
    }
    let url = format!("ws://{}/kite/websocket", k.ready().await);
    // The fourth waits (in the listen backlog) while three websockets are open…
    let fourth = tokio::spawn(tokio_tungstenite::connect_async(url));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!fourth.is_finished(), "a fourth connection was served");
    // …and is served as soon as one closes.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let (mut ws, _) = within(fourth).await.unwrap().unwrap();
    ws.send(Ws::text(call_text("square", "[5]", 9, false)))
        .await
        .unwrap();
    assert_eq!(reply(&mut ws, 9).await["result"], json!(25.0));
}

// ---- defect 7: documented timeouts ----

#[tokio::test]
async fn request_heads_and_send_bodies_are_timed_out() {
    assert_eq!(
        Config::default().header_read_timeout,
        kite::sockjs::ServeOptions::default().header_read_timeout
    );
    assert_eq!(
        Config::default().header_read_timeout,
        Duration::from_secs(10)
    );
    let mut config = Config {
        header_read_timeout: Duration::from_millis(500),
        ..open_config()
    };
    config.sockjs.body_read_timeout = Duration::from_millis(500);
    let k = target(config).await;
    let addr = k.ready().await;

    // A head that never ends is cut after the header timeout (not the 15 s handshake one).
    let t = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /kite/info HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = within(tcp.read_to_end(&mut buf)).await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // A send body trickling a byte at a time gets 408.
    let http = reqwest::Client::new();
    assert_eq!(xhr_open(&http, &k, "slow", None).await, "o\n");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"POST /kite/000/slow/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[",
    )
    .await
    .unwrap();
    let t = Instant::now();
    // Read the answer on a clone of the socket while this one trickles.
    let std = tcp.into_std().unwrap();
    let mut rd = tokio::net::TcpStream::from_std(std.try_clone().unwrap()).unwrap();
    let mut wr = tokio::net::TcpStream::from_std(std).unwrap();
    let mut answer = vec![0u8; 256];
    let read = async {
        let n = rd.read(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer[..n]).to_string()
    };
    let write = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let head = within(async {
        tokio::select! {
            h = read => h,
            _ = write => String::new(),
        }
    })
    .await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
}
