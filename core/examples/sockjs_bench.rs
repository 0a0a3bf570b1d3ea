//! Benchmark: websocket round trips/s and one-way messages/s through the SockJS layer,
//! against a plain tokio-tungstenite echo server, in the same process and the same run.
//!
//! ```text
//! cargo run --release --example sockjs-bench
//! cargo run --release --example sockjs-bench -- --connections 8 --in-flight 16 --seconds 5
//! ```
//!
//! Two servers run on the same multi-thread tokio runtime as the load generator:
//! - **plain**: tokio-tungstenite (`accept_hdr_async`), one task per connection;
//!   `/echo` echoes every text message (`read.forward(write)`, flushing when the socket
//!   has nothing more to read), `/push` floods the client, `/sink` counts.
//! - **sockjs**: `kite::sockjs::SockJsServer` services `/echo`, `/push`, `/sink` served by
//!   `kite::sockjs::serve`, reached at `ws://…/<service>/000/<id>/websocket`.
//!
//! The load generator is the same code for both; only the framing differs (plain: one
//! websocket text message per message; SockJS: `["msg"]` out, `o`/`h`/`a[…]` in, where an
//! `a[…]` frame may carry several messages).
//!
//! Cases:
//! - round trips `C×K`: C connections each keep K messages in flight (send K, then one
//!   more per echo received); round trips/s and per-message latency (p50/p99), counted
//!   over `--seconds` after `--warmup`.
//! - `push`: the server sends to C connections as fast as it can (server → client).
//! - `sink`: C connections send to the server as fast as they can (client → server),
//!   counted where the server application receives them.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures_util::{future, FutureExt, SinkExt, StreamExt, TryStreamExt};
use kite::sockjs::{serve, ServerConfig, Session, SockJsServer};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[derive(Parser, Debug)]
#[command(
    about = "SockJS layer vs plain tokio-tungstenite: round trips/s, latency, one-way messages/s"
)]
struct Args {
    /// Run only this round-trip case (connections); also the connection count of the
    /// one-way cases. Default: the cases 1×1, 8×16, 64×1, and 8 one-way connections.
    #[arg(long)]
    connections: Option<usize>,
    /// Messages in flight per connection for the single round-trip case (default 1 when
    /// only --connections is given).
    #[arg(long)]
    in_flight: Option<usize>,
    /// Measured seconds per case and server.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Warm-up seconds before measuring.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Message size in bytes (at least 16: a sequence number is embedded).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Skip the one-way (push/sink) cases.
    #[arg(long)]
    no_oneway: bool,
    /// Run every case this many times (plain and SockJS alternating) and keep each
    /// server's best run, which filters out interference from other load on the machine.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Only run against one server (for profiling): `plain` or `sockjs`.
    #[arg(long, value_parser = ["plain", "sockjs"])]
    only: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Plain,
    SockJs,
}

impl Framing {
    fn name(self) -> &'static str {
        match self {
            Framing::Plain => "plain",
            Framing::SockJs => "sockjs",
        }
    }
}

type Ws = WebSocketStream<TcpStream>;

/// Messages received by the `/sink` applications (both servers).
static SINK_RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Messages (and websocket frames) received by `/push` clients.
static PUSH_RECEIVED: AtomicU64 = AtomicU64::new(0);
static PUSH_FRAMES: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------------------
// servers

/// The plain tokio-tungstenite server: `/echo`, `/push`, `/sink`.
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
async fn plain_server(listener: TcpListener, size: usize) {
    let payload: Arc<str> = "p".repeat(size).into();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let payload = payload.clone();
        tokio::spawn(async move {
            let mut path = String::new();
            let cb = |req: &Request, resp: Response| {
                path = req.uri().path().to_string();
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else {
                return;
            };
            match path.as_str() {
                "/echo" => {
                    // The tokio-tungstenite echo example: forward() feeds while messages are
                    // ready and flushes when the read side would block.
                    let (write, read) = ws.split();
                    let _ = read
                        .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
                        .forward(write)
                        .await;
                }
                "/push" => {
                    let mut ws = ws;
                    'outer: loop {
                        for _ in 0..64 {
                            if ws.feed(Message::text(payload.to_string())).await.is_err() {
                                break 'outer;
                            }
                        }
                        if ws.flush().await.is_err() {
                            break;
                        }
                    }
                }
                "/sink" => {
                    let mut ws = ws;
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_text() {
                            SINK_RECEIVED.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                _ => {}
            }
        });
    }
}

/// The SockJS services `/echo`, `/push`, `/sink`, served by `kite::sockjs::serve`.
async fn sockjs_server(listener: TcpListener, size: usize) {
    let config = ServerConfig::default();
    let echo = SockJsServer::new(config.clone(), |session: Session| async move {
        while let Some(msg) = session.recv().await {
            if session.send(msg).await.is_err() {
                break;
            }
        }
    });
    let payload: Arc<str> = "p".repeat(size).into();
    let push = SockJsServer::new(config.clone(), move |session: Session| {
        let payload = payload.clone();
        async move { while session.send(payload.to_string()).await.is_ok() {} }
    });
    let sink = SockJsServer::new(config, |session: Session| async move {
        while session.recv().await.is_some() {
            SINK_RECEIVED.fetch_add(1, Ordering::Relaxed);
        }
    });
    let app = axum::Router::new()
        .merge(echo.router("/echo"))
        .merge(push.router("/push"))
        .merge(sink.router("/sink"));
    if let Err(e) = serve(listener, app, Default::default()).await {
        eprintln!("sockjs server failed: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// load generator

/// Opens a client websocket to `service` (`echo`, `push`, `sink`) on the given server.
async fn connect(port: u16, framing: Framing, service: &str) -> Result<Ws, String> {
    let url = match framing {
        Framing::Plain => format!("ws://127.0.0.1:{port}/{service}"),
        Framing::SockJs => {
            let id: u64 = rand::random();
            format!("ws://127.0.0.1:{port}/{service}/000/{id:016x}/websocket")
        }
    };
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if framing == Framing::SockJs {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "o" => {}
            other => return Err(format!("{url}: expected open frame, got {other:?}")),
        }
    }
    Ok(ws)
}

/// The wire form of message `seq`: `size` bytes starting with the zero-padded sequence
/// number, as a plain text message or a SockJS client array `["…"]`.
fn encode(framing: Framing, seq: u64, size: usize, pad: &str) -> Message {
    let mut s = String::with_capacity(size + 4);
    if framing == Framing::SockJs {
        s.push_str("[\"");
    }
    let _ = write!(s, "{seq:016}");
    s.push_str(&pad[..size - 16]);
    if framing == Framing::SockJs {
        s.push_str("\"]");
    }
    Message::text(s)
}

/// Calls `f` for every message carried by a received websocket message; returns the
/// number of messages, or an error for a close/broken frame.
fn decode(framing: Framing, msg: &Message, mut f: impl FnMut(&str)) -> Result<usize, String> {
    let text = match msg {
        Message::Text(t) => t.as_str(),
        Message::Close(c) => return Err(format!("closed by server: {c:?}")),
        _ => return Ok(0),
    };
    match framing {
        Framing::Plain => {
            f(text);
            Ok(1)
        }
        Framing::SockJs => match text.as_bytes().first() {
            Some(b'h') | Some(b'o') => Ok(0),
            Some(b'a') => {
                // Borrowed parse; our payloads have no escapes. Fall back to owned strings.
                if let Ok(v) = serde_json::from_str::<Vec<&str>>(&text[1..]) {
                    v.iter().for_each(|m| f(m));
                    Ok(v.len())
                } else {
                    let v: Vec<String> = serde_json::from_str(&text[1..])
                        .map_err(|e| format!("bad SockJS frame: {e}"))?;
                    v.iter().for_each(|m| f(m));
                    Ok(v.len())
                }
            }
            _ => Err(format!("unexpected SockJS frame {:.40}", text)),
        },
    }
}

#[derive(Default)]
struct RtResult {
    /// Round trips completed inside the measured window.
    round_trips: u64,
    /// Websocket messages received inside the window.
    frames: u64,
    /// Round-trip latencies (ns) of the messages completed inside the window.
    latencies: Vec<u32>,
    errors: Vec<String>,
}

/// One round-trip connection: keeps `k` messages in flight until `end`.
async fn rt_conn(
    mut ws: Ws,
    framing: Framing,
    k: usize,
    size: usize,
    start: Instant,
    end: Instant,
) -> RtResult {
    let pad = "x".repeat(size);
    let mut res = RtResult {
        latencies: Vec::with_capacity(1 << 16),
        ..Default::default()
    };
    let mut seq = 0u64;
    let mut inflight: VecDeque<(u64, Instant)> = VecDeque::with_capacity(k);
    for _ in 0..k {
        inflight.push_back((seq, Instant::now()));
        if let Err(e) = ws.feed(encode(framing, seq, size, &pad)).await {
            res.errors.push(e.to_string());
            return res;
        }
        seq += 1;
    }
    if let Err(e) = ws.flush().await {
        res.errors.push(e.to_string());
        return res;
    }
    let mut next = ws.next().await;
    'run: loop {
        // Handle every websocket message that is ready, then answer with one flush.
        let mut to_send = 0usize;
        loop {
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    res.errors.push(e.to_string());
                    break 'run;
                }
                None => {
                    res.errors.push("connection closed by server".into());
                    break 'run;
                }
            };
            let now = Instant::now();
            let in_window = now >= start && now < end;
            let mut bad = None;
            let n = decode(framing, &msg, |m| {
                let got: Option<u64> = m.get(..16).and_then(|s| s.parse().ok());
                match inflight.pop_front() {
                    Some((want, sent)) if got == Some(want) && m.len() == size => {
                        if in_window {
                            let ns = now.duration_since(sent).as_nanos();
                            res.latencies.push(ns.min(u32::MAX as u128) as u32);
                        }
                    }
                    other => bad = Some(format!("expected {other:?}, got {:.20}", m)),
                }
            });
            match (n, bad) {
                (Err(e), _) | (_, Some(e)) => {
                    res.errors.push(e);
                    break 'run;
                }
                (Ok(n), None) => {
                    if in_window {
                        res.round_trips += n as u64;
                        res.frames += 1;
                    }
                    to_send += n;
                }
            }
            match ws.next().now_or_never() {
                Some(m) => next = m,
                None => break,
            }
        }
        if Instant::now() >= end {
            break;
        }
        for _ in 0..to_send {
            inflight.push_back((seq, Instant::now()));
            if let Err(e) = ws.feed(encode(framing, seq, size, &pad)).await {
                res.errors.push(e.to_string());
                break 'run;
            }
            seq += 1;
        }
        if let Err(e) = ws.flush().await {
            res.errors.push(e.to_string());
            break;
        }
        next = ws.next().await;
    }
    shutdown(ws).await;
    res
}

/// `push` client: counts what the server sends until `end`.
async fn push_conn(mut ws: Ws, framing: Framing, end: Instant) -> Vec<String> {
    let mut errors = Vec::new();
    while let Some(m) = ws.next().await {
        match m
            .map_err(|e| e.to_string())
            .and_then(|m| decode(framing, &m, |_| {}))
        {
            Ok(n) => {
                PUSH_RECEIVED.fetch_add(n as u64, Ordering::Relaxed);
                PUSH_FRAMES.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                errors.push(e);
                break;
            }
        }
        if Instant::now() >= end {
            break;
        }
    }
    // The server never stops pushing: just drop the connection.
    drop(ws);
    errors
}

/// `sink` client: sends as fast as it can until `end`.
async fn sink_conn(mut ws: Ws, framing: Framing, size: usize, end: Instant) -> Vec<String> {
    let pad = "x".repeat(size);
    let mut seq = 0;
    let mut errors = Vec::new();
    'run: while Instant::now() < end {
        for _ in 0..64 {
            if let Err(e) = ws.feed(encode(framing, seq, size, &pad)).await {
                errors.push(e.to_string());
                break 'run;
            }
            seq += 1;
        }
        if let Err(e) = ws.flush().await {
            errors.push(e.to_string());
            break;
        }
    }
    shutdown(ws).await;
    errors
}

/// Closes the websocket politely, draining what is still in flight (bounded).
async fn shutdown(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

async fn connect_all(
    port: u16,
    framing: Framing,
    service: &str,
    n: usize,
) -> Result<Vec<Ws>, String> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(connect(port, framing, service).await?);
    }
    Ok(v)
}

/// Waits for the connection tasks; aborts them if they hang well past the end.
async fn join_all<T>(
    handles: Vec<tokio::task::JoinHandle<T>>,
    end: Instant,
) -> Result<Vec<T>, String> {
    let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
    match tokio::time::timeout_at(end + Duration::from_secs(5), future::join_all(handles)).await {
        Ok(rs) => rs
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect(),
        Err(_) => {
            aborts.iter().for_each(|a| a.abort());
            Err("timed out (server stalled?)".into())
        }
    }
}

struct Measured {
    rate: f64,
    /// Websocket messages received by clients per second (shows SockJS batching).
    frames_rate: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    /// Process CPU time (servers + load generator) per message or round trip, in µs.
    cpu_us: Option<f64>,
}

fn percentile(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i] as f64 / 1000.0)
}

#[derive(Debug, Clone, Copy)]
enum Case {
    RoundTrip { c: usize, k: usize },
    Push { c: usize },
    Sink { c: usize },
}

impl Case {
    fn label(self) -> String {
        match self {
            Case::RoundTrip { c, k } => format!("rt {c}x{k}"),
            Case::Push { c } => format!("push s->c x{c}"),
            Case::Sink { c } => format!("sink c->s x{c}"),
        }
    }
}

/// CPU time used so far by this process's threads (servers and load generator), from
/// `/proc/self/task/*/schedstat` (Linux); `None` elsewhere.
fn process_cpu() -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        let Ok(text) = std::fs::read_to_string(path) else {
            continue; // the thread just exited
        };
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// Counters sampled at the start and the end of the measured window.
struct Window {
    cpu: Option<Duration>,
    push: (u64, u64),
    sink: u64,
}

impl Window {
    fn sample() -> Self {
        Self {
            cpu: process_cpu(),
            push: (
                PUSH_RECEIVED.load(Ordering::Relaxed),
                PUSH_FRAMES.load(Ordering::Relaxed),
            ),
            sink: SINK_RECEIVED.load(Ordering::Relaxed),
        }
    }
}

enum Task {
    Rt(RtResult),
    Other(Vec<String>),
}

async fn run_case(
    case: Case,
    port: u16,
    framing: Framing,
    args: &Args,
) -> Result<Measured, String> {
    let size = args.size;
    let (service, c) = match case {
        Case::RoundTrip { c, .. } => ("echo", c),
        Case::Push { c } => ("push", c),
        Case::Sink { c } => ("sink", c),
    };
    let conns = connect_all(port, framing, service, c).await?;
    let start = Instant::now() + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.seconds);
    let handles = conns
        .into_iter()
        .map(|ws| match case {
            Case::RoundTrip { k, .. } => {
                tokio::spawn(
                    async move { Task::Rt(rt_conn(ws, framing, k, size, start, end).await) },
                )
            }
            Case::Push { .. } => {
                tokio::spawn(async move { Task::Other(push_conn(ws, framing, end).await) })
            }
            Case::Sink { .. } => {
                tokio::spawn(async move { Task::Other(sink_conn(ws, framing, size, end).await) })
            }
        })
        .collect();
    tokio::time::sleep_until(start).await;
    let w0 = Window::sample();
    tokio::time::sleep_until(end).await;
    let w1 = Window::sample();
    let secs = args.seconds;
    let mut m = Measured {
        rate: 0.0,
        frames_rate: f64::NAN,
        p50_us: None,
        p99_us: None,
        cpu_us: None,
    };
    let mut lat = Vec::new();
    let (mut rts, mut frames) = (0, 0);
    for t in join_all(handles, end).await? {
        match t {
            Task::Rt(r) => {
                if let Some(e) = r.errors.first() {
                    return Err(e.clone());
                }
                rts += r.round_trips;
                frames += r.frames;
                lat.extend_from_slice(&r.latencies);
            }
            Task::Other(errors) => {
                if let Some(e) = errors.first() {
                    return Err(e.clone());
                }
            }
        }
    }
    let count = match case {
        Case::RoundTrip { .. } => {
            lat.sort_unstable();
            m.frames_rate = frames as f64 / secs;
            m.p50_us = percentile(&lat, 0.50);
            m.p99_us = percentile(&lat, 0.99);
            rts
        }
        Case::Push { .. } => {
            m.frames_rate = (w1.push.1 - w0.push.1) as f64 / secs;
            w1.push.0 - w0.push.0
        }
        Case::Sink { .. } => w1.sink - w0.sink,
    };
    m.rate = count as f64 / secs;
    if let (Some(a), Some(b)) = (w0.cpu, w1.cpu) {
        if count > 0 {
            m.cpu_us = Some((b - a).as_secs_f64() * 1e6 / count as f64);
        }
    }
    // Let the servers finish tearing down the connections before the next run.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(m)
}

fn fmt_rate(r: f64) -> String {
    if r.is_nan() {
        "-".into()
    } else {
        format!("{r:.0}")
    }
}

fn fmt_cpu(us: Option<f64>) -> String {
    us.map_or("-".into(), |us| format!("{us:.2}"))
}

fn fmt_lat(m: &Measured) -> String {
    match (m.p50_us, m.p99_us) {
        (Some(a), Some(b)) => format!("{a:.0}/{b:.0}"),
        _ => "-".into(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.size < 16 {
        return Err("--size must be at least 16".into());
    }
    let oneway_c = args.connections.unwrap_or(8);
    let mut cases = match (args.connections, args.in_flight) {
        (None, None) => vec![
            Case::RoundTrip { c: 1, k: 1 },
            Case::RoundTrip { c: 8, k: 16 },
            Case::RoundTrip { c: 64, k: 1 },
        ],
        (c, k) => vec![Case::RoundTrip {
            c: c.unwrap_or(8),
            k: k.unwrap_or(1),
        }],
    };
    if !args.no_oneway {
        cases.push(Case::Push { c: oneway_c });
        cases.push(Case::Sink { c: oneway_c });
    }

    let plain_listener = TcpListener::bind("127.0.0.1:0").await?;
    let sockjs_listener = TcpListener::bind("127.0.0.1:0").await?;
    let plain_port = plain_listener.local_addr()?.port();
    let sockjs_port = sockjs_listener.local_addr()?.port();
    tokio::spawn(plain_server(plain_listener, args.size));
    tokio::spawn(sockjs_server(sockjs_listener, args.size));

    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    println!(
        "sockjs-bench: {} worker threads, {} B messages, {:.1} s warm-up + {:.1} s per run, \
         best of {}; servers and load generator share the runtime",
        workers,
        args.size,
        args.warmup,
        args.seconds,
        args.repeat.max(1)
    );
    println!("plain: tokio-tungstenite on :{plain_port}; sockjs: kite::sockjs on :{sockjs_port}");
    println!();

    let mut rows = Vec::new();
    for case in cases {
        let mut best: [Result<Measured, String>; 2] =
            [Err("not run".into()), Err("not run".into())];
        for _ in 0..args.repeat.max(1) {
            for (i, (framing, port)) in
                [(Framing::Plain, plain_port), (Framing::SockJs, sockjs_port)]
                    .into_iter()
                    .enumerate()
            {
                if args.only.as_deref().is_some_and(|o| o != framing.name()) {
                    continue;
                }
                let m = run_case(case, port, framing, &args).await;
                match &m {
                    Ok(m) => eprintln!(
                        "  {:<16} {:<6} {:>10} msg/s {:>10} ws-msg/s in  p50/p99 {:>10} us  cpu {} us/msg",
                        case.label(),
                        framing.name(),
                        fmt_rate(m.rate),
                        fmt_rate(m.frames_rate),
                        fmt_lat(m),
                        fmt_cpu(m.cpu_us)
                    ),
                    Err(e) => eprintln!("  {:<16} {:<6} FAILED: {e}", case.label(), framing.name()),
                }
                let better = match (&best[i], &m) {
                    (Ok(b), Ok(m)) => m.rate > b.rate,
                    (Err(_), _) => true,
                    (Ok(_), Err(_)) => false,
                };
                if better {
                    best[i] = m;
                }
            }
        }
        let [plain, sockjs] = best;
        rows.push((case, plain, sockjs));
    }

    println!();
    println!(
        "{:<15} {:>12} {:>12} {:>6} {:>15} {:>15} {:>13} {:>8}",
        "case",
        "plain /s",
        "sockjs /s",
        "ratio",
        "plain p50/p99",
        "sockjs p50/p99",
        "cpu us/msg",
        "msg/fr"
    );
    println!(
        "{:<15} {:>12} {:>12} {:>6} {:>15} {:>15} {:>13} {:>8}",
        "", "", "", "s/p", "(us)", "(us)", "plain/sockjs", "sockjs"
    );
    println!("{}", "-".repeat(103));
    let mut target = None;
    for (case, plain, sockjs) in &rows {
        let unit = match case {
            Case::RoundTrip { .. } => "rt",
            _ => "msg",
        };
        let cell = |m: &Result<Measured, String>| match m {
            Ok(m) => format!("{} {unit}", fmt_rate(m.rate)),
            Err(_) => "FAILED".into(),
        };
        let lat = |m: &Result<Measured, String>| match m {
            Ok(m) => fmt_lat(m),
            Err(_) => "-".into(),
        };
        let cpu = |m: &Result<Measured, String>| match m {
            Ok(m) => fmt_cpu(m.cpu_us),
            Err(_) => "-".into(),
        };
        let ratio = match (plain, sockjs) {
            (Ok(p), Ok(s)) if p.rate > 0.0 => Some(s.rate / p.rate),
            _ => None,
        };
        let cpu_ratio = match (plain, sockjs) {
            (Ok(p), Ok(s)) => p.cpu_us.zip(s.cpu_us).map(|(p, s)| p / s),
            _ => None,
        };
        let batching = match sockjs {
            Ok(s) if s.frames_rate > 0.0 => format!("{:.2}", s.rate / s.frames_rate),
            _ => "-".into(),
        };
        if let Case::RoundTrip { c: 8, k: 16 } = case {
            target = Some((ratio, cpu_ratio));
        }
        println!(
            "{:<15} {:>12} {:>12} {:>6} {:>15} {:>15} {:>13} {:>8}",
            case.label(),
            cell(plain),
            cell(sockjs),
            ratio.map_or("-".into(), |r| format!("{r:.3}")),
            lat(plain),
            lat(sockjs),
            format!("{}/{}", cpu(plain), cpu(sockjs)),
            batching
        );
    }
    println!();
    println!(
        "ratio = sockjs/plain rate; cpu = process CPU (servers + load generator) per message \
         or round trip; msg/fr = SockJS messages per websocket frame received by the client"
    );
    let goal = "target: 8x16 round trips, sockjs/plain >= 0.85";
    match target {
        Some((Some(r), cpu_ratio)) => println!(
            "{goal}: {} (ratio {r:.3}: SockJS costs {:.1}% of the plain rate{})",
            if r >= 0.85 { "MET" } else { "NOT MET" },
            (1.0 - r) * 100.0,
            cpu_ratio.map_or(String::new(), |c| format!(
                "; CPU-per-round-trip ratio plain/sockjs {c:.3}"
            ))
        ),
        Some((None, _)) => println!("{goal}: UNKNOWN (a run failed or was skipped)"),
        None => println!("{goal}: not run (it runs without --connections/--in-flight)"),
    }
    Ok(())
}
