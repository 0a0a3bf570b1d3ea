//! The kite peer benchmark: calls/s, latency and server CPU per call of `square` on our
//! kite server, the Go reference server and the kite.js server (SockJS mode) — and on our
//! kite with JavaScript (Node) or Python handlers — under the same load generator in the
//! same run, plus server memory per connection.
//!
//! ```text
//! bash scripts/setup.sh        # Go and kite.js peers, the Node addon, the Python venv
//! cargo run --release --example kite-bench [-- --seconds 3]                     # rust, go, kitejs
//! cargo run --release --example kite-bench -- --servers node,kitejs,rust         # the Node binding
//! cargo run --release --example kite-bench -- --servers python,python-def,rust,go  # the Python binding
//! cargo run --release --example kite-bench -- --case 64x1 --memory-connections 0  # one case
//! ```
//!
//! Every server runs as its own process (ours is this binary re-executed with `--serve`),
//! speaking SockJS over a websocket; the load generator speaks SockJS framing and dnode
//! directly, so that it costs the same whatever the server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Clone)]
#[command(about = "Benchmark kite servers: calls/s, p50/p99 and memory per connection")]
struct Args {
    /// Seconds measured per case (after a short warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Servers to run: rust, go, kitejs, node (kite-rs with JavaScript handlers), python
    /// (kite-rs with `async def` handlers), python-def (plain `def` handlers).
    #[arg(long, value_delimiter = ',', default_value = "rust,go,kitejs")]
    servers: Vec<String>,
    /// Python interpreter with kite-rs installed (for the python servers). Default: the
    /// repository's `.venv` (made by scripts/setup.sh), else `python3`.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Connections opened for the memory measurement (0 to skip).
    #[arg(long, default_value_t = 2000)]
    memory_connections: usize,
    /// Run only this case, e.g. `64x1` (for profiling); the others print as skipped.
    #[arg(long)]
    case: Option<String>,
    /// Internal: serve the Rust kite and print its ready line.
    #[arg(long, hide = true)]
    serve: bool,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn serve_rust() -> Result<(), Box<dyn std::error::Error>> {
    let k = kite::Kite::with_config(
        "bench",
        "1.0.0",
        kite::Config {
            ip: "127.0.0.1".into(),
            ..kite::Config::default()
        },
    )?;
    k.handle("square", |r: kite::Request| async move {
        let n: f64 = r.args().one()?;
        Ok(n * n)
    })?
    .disable_authentication();
    let addr = k.listen().await?;
    println!("{{\"port\": {}}}", addr.port());
    // Until stdin closes.
    let mut line = String::new();
    let _ = BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
    Ok(())
}

struct Server {
    name: &'static str,
    child: tokio::process::Child,
    port: u16,
}

async fn spawn(name: &'static str, args: &Args) -> Result<Server, String> {
    let root = repo_root();
    let mut cmd = match name {
        "rust" => {
            let mut c =
                tokio::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.arg("--serve");
            c
        }
        "go" => {
            let bin = root.join("tests/interop/go/bin/server");
            if !bin.exists() {
                return Err(format!(
                    "{} missing: run tests/interop/go/build.sh (scripts/setup.sh)",
                    bin.display()
                ));
            }
            tokio::process::Command::new(bin)
        }
        "kitejs" => {
            let dir = root.join("tests/interop/kitejs");
            if !dir.join("node_modules").exists() {
                return Err("kite.js missing: run scripts/setup.sh".into());
            }
            let mut c = tokio::process::Command::new("node");
            c.arg(dir.join("server.js")).arg("--sockjs");
            c
        }
        "node" => {
            // The interop server: `square` is a plain JavaScript function.
            let script = root.join("bindings-node/test/interop/server.mjs");
            if !root.join("bindings-node").join(NODE_ADDON).exists() {
                return Err("the Node addon is not built: run scripts/setup.sh".into());
            }
            let mut c = tokio::process::Command::new("node");
            c.arg(script);
            c
        }
        "python" | "python-def" => {
            let python = args.python.clone().unwrap_or_else(|| {
                let venv = root.join(".venv/bin/python");
                if venv.exists() {
                    venv
                } else {
                    PathBuf::from("python3")
                }
            });
            let mut c = tokio::process::Command::new(python);
            c.arg(root.join("examples/python/math.py"))
                .args(["--port", "0"]);
            if name == "python-def" {
                c.arg("--sync");
            }
            c
        }
        other => return Err(format!("unknown server {other}")),
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("{name}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| format!("{name}: no ready line"))?
        .map_err(|e| e.to_string())?
        .ok_or(format!("{name}: exited"))?;
    // `{"port": N, …}` (rust, go, kitejs, node) or a line with the kite's URL (python).
    let port = match serde_json::from_str::<Value>(&line) {
        Ok(v) => v["port"].as_u64(),
        Err(_) => line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok()),
    }
    .and_then(|p| u16::try_from(p).ok())
    .ok_or_else(|| format!("{name}: no port in its first line {line:?}"))?;
    // Keep reading its stdout so that a chatty server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { name, child, port })
}

/// The napi addon's file name (see package.json).
const NODE_ADDON: &str = "kite-rs.linux-x64-gnu.node";

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 per second on every mainstream configuration.
    Some(Duration::from_millis(ticks * 10))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn connect(port: u16) -> Result<Ws, String> {
    let url = format!(
        "ws://127.0.0.1:{port}/kite/000/{:016x}/websocket",
        rand::random::<u64>()
    );
    // The load generator should cost as little as possible, so that the servers get the
    // machine: small read buffers (tungstenite zeroes its whole read buffer, 128 KiB by
    // default, on every read), precomputed frames, typed response parsing, no per-message
    // timers.
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 8 * 1024;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| e.to_string())?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str() == "o" => Ok(ws),
        other => Err(format!("expected open frame, got {other:?}")),
    }
}

/// The SockJS frame calling `square(3)` with response callback `id`: the dnode message,
/// JSON-quoted inside a SockJS array (built once; only the id changes).
fn call_frame(id: u64) -> Message {
    static PARTS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let (head, tail) = PARTS.get_or_init(|| {
        let inner = r#"{"method":"square","arguments":[{"kite":{"username":"bench","environment":"bench","name":"bench","version":"1.0.0","region":"bench","hostname":"bench","id":"bench"},"authentication":null,"withArgs":[3],"responseCallback":"[Function]"}],"callbacks":{"ID":[0,"responseCallback"]}}"#;
        let quoted = serde_json::to_string(&[inner]).unwrap_or_default();
        let (h, t) = quoted.split_once("ID").unwrap_or_default();
        (h.to_string(), t.to_string())
    });
    let mut s = String::with_capacity(head.len() + tail.len() + 20);
    s.push_str(head);
    s.push_str(&id.to_string());
    s.push_str(tail);
    Message::text(s)
}

#[derive(serde::Deserialize)]
struct Answer {
    method: u64,
    arguments: (AnswerArgs,),
}

#[derive(serde::Deserialize)]
struct AnswerArgs {
    result: Option<f64>,
}

/// Callback ids answered in a server frame.
fn answered(frame: &str, out: &mut Vec<u64>) -> Result<(), String> {
    let Some(rest) = frame.strip_prefix('a') else {
        return if frame == "h" {
            Ok(())
        } else {
            Err(format!("unexpected frame {frame:.80}"))
        };
    };
    let msgs: Vec<String> = serde_json::from_str(rest).map_err(|e| e.to_string())?;
    for m in msgs {
        match serde_json::from_str::<Answer>(&m) {
            Ok(a) if a.arguments.0.result == Some(9.0) => out.push(a.method),
            _ => return Err(format!("bad response {m:.120}")),
        }
    }
    Ok(())
}

/// One connection keeping `in_flight` calls outstanding until `end`; returns latencies (µs).
async fn load(
    mut ws: Ws,
    in_flight: usize,
    start: Instant,
    end: Instant,
) -> Result<Vec<u32>, String> {
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let mut next = 0u64;
    let mut lat = Vec::new();
    for _ in 0..in_flight {
        sent.insert(next, Instant::now());
        ws.send(call_frame(next)).await.map_err(|e| e.to_string())?;
        next += 1;
    }
    let mut ids = Vec::new();
    // One deadline for the whole run rather than a timer per message.
    let deadline = tokio::time::sleep_until((end + Duration::from_secs(10)).into());
    tokio::pin!(deadline);
    while Instant::now() < end {
        let msg = tokio::select! {
            biased;
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => t,
                other => return Err(format!("connection ended: {other:?}")),
            },
            _ = &mut deadline => return Err("no response for 10 s after the end".into()),
        };
        ids.clear();
        answered(&msg, &mut ids)?;
        let now = Instant::now();
        for id in &ids {
            if let Some(t0) = sent.remove(id) {
                if t0 >= start {
                    lat.push(now.duration_since(t0).as_micros().min(u32::MAX as u128) as u32);
                }
                sent.insert(next, Instant::now());
                ws.feed(call_frame(next)).await.map_err(|e| e.to_string())?;
                next += 1;
            }
        }
        ws.flush().await.map_err(|e| e.to_string())?;
    }
    let _ = ws.close(None).await;
    Ok(lat)
}

struct Figures {
    rate: f64,
    p50: f64,
    p99: f64,
    /// Server CPU time per call (µs), over the whole case (warm-up included).
    cpu_us: Option<f64>,
}

async fn run_case(
    port: u16,
    conns: usize,
    in_flight: usize,
    seconds: f64,
) -> Result<Figures, String> {
    let mut sockets = Vec::with_capacity(conns);
    for _ in 0..conns {
        sockets.push(connect(port).await?);
    }
    let warm = Duration::from_millis(500);
    let start = Instant::now() + warm;
    let end = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(load(ws, in_flight, start, end)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|v| *v as f64 / 1000.0)
            .unwrap_or(f64::NAN)
    };
    Ok(Figures {
        rate: all.len() as f64 / seconds,
        p50: pct(0.50),
        p99: pct(0.99),
        cpu_us: None,
    })
}

async fn memory(server: &Server, n: usize) -> Result<f64, String> {
    let pid = server.child.id().ok_or("no pid")?;
    let before = rss_kib(pid).ok_or("no RSS")?;
    let mut sockets = Vec::with_capacity(n);
    let mut ids = Vec::new();
    for i in 0..n {
        let mut ws = connect(server.port).await?;
        ws.send(call_frame(i as u64))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    ids.clear();
                    answered(&t, &mut ids)?;
                    if !ids.is_empty() {
                        break;
                    }
                }
                other => return Err(format!("{other:?}")),
            }
        }
        sockets.push(ws);
    }
    let after = rss_kib(pid).ok_or("no RSS")?;
    drop(sockets);
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.serve {
        return serve_rust().await;
    }
    let cases = [(1usize, 1usize), (8, 16), (64, 1)];
    let mut results: Vec<(
        &'static str,
        Vec<Result<Figures, String>>,
        Result<f64, String>,
    )> = Vec::new();
    const ALL: [&str; 6] = ["rust", "go", "kitejs", "node", "python", "python-def"];
    if let Some(bad) = args.servers.iter().find(|s| !ALL.contains(&s.as_str())) {
        return Err(format!("unknown server {bad:?} (known: {})", ALL.join(", ")).into());
    }
    for name in ALL {
        if !args.servers.iter().any(|s| s == name) {
            continue;
        }
        let server = match spawn(name, &args).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipping {name}: {e}");
                continue;
            }
        };
        eprintln!("measuring {} on port {}", server.name, server.port);
        let mut figures = Vec::new();
        for (c, k) in cases {
            if args
                .case
                .as_ref()
                .is_some_and(|only| *only != format!("{c}x{k}"))
            {
                figures.push(Err("skipped".into()));
                continue;
            }
            let pid = server.child.id().unwrap_or(0);
            let before = cpu_time(pid);
            let mut f = run_case(server.port, c, k, args.seconds).await;
            if let (Ok(f), Some(b), Some(a)) = (f.as_mut(), before, cpu_time(pid)) {
                // Calls made in the warm-up are not counted; the CPU time includes it, so
                // scale the calls to the whole case.
                let calls = f.rate * (args.seconds + 0.5);
                f.cpu_us = Some((a - b).as_secs_f64() * 1e6 / calls.max(1.0));
            }
            figures.push(f);
        }
        let mem = if args.memory_connections > 0 {
            memory(&server, args.memory_connections).await
        } else {
            Err("skipped".into())
        };
        results.push((name, figures, mem));
        drop(server);
    }
    println!(
        "kite square calls, {} s per case, SockJS websocket, same load generator",
        args.seconds
    );
    println!(
        "{:<10} {:>10} {:>18} {:>18} {:>18} {:>14}",
        "server", "", "1x1", "8x16", "64x1", "KiB/conn"
    );
    for (name, figures, mem) in &results {
        let cell = |f: &Result<Figures, String>| match f {
            Ok(f) => format!("{:>8.0}/s {:>4.2}/{:<4.2}", f.rate, f.p50, f.p99),
            Err(e) => format!("error: {e:.12}"),
        };
        println!(
            "{:<10} {:>10} {:>18} {:>18} {:>18} {:>14}",
            name,
            "calls p50/p99ms",
            cell(&figures[0]),
            cell(&figures[1]),
            cell(&figures[2]),
            match mem {
                Ok(m) => format!("{m:.1}"),
                Err(e) => format!("{e:.12}"),
            }
        );
    }
    println!(
        "server CPU per call (µs, user+system; steadier than calls/s when the machine is shared):"
    );
    for (name, figures, _) in &results {
        let cpu = |f: &Result<Figures, String>| match f.as_ref().ok().and_then(|f| f.cpu_us) {
            Some(us) => format!("{us:.1}"),
            None => "-".into(),
        };
        println!(
            "{:<10} {:>10} {:>18} {:>18} {:>18}",
            name,
            "cpu/call",
            cpu(&figures[0]),
            cpu(&figures[1]),
            cpu(&figures[2])
        );
    }
    let get = |n: &str, i: usize| {
        results
            .iter()
            .find(|r| r.0 == n)
            .and_then(|r| r.1[i].as_ref().ok())
            .map(|f| (f.rate, f.p99))
    };
    for (i, label) in [(1, "8x16"), (2, "64x1")] {
        if let (Some((rr, rp)), Some((gr, gp))) = (get("rust", i), get("go", i)) {
            println!(
                "{label}: rust/go calls = {:.2}x (target >= 3x), p99 rust/go = {:.2} (target <= 0.5)",
                rr / gr,
                rp / gp
            );
        }
    }
    // Targets of the bindings (issues: Python, Node), at 8x16.
    if let (Some((py, _)), Some((go, _)), Some((rust, _))) =
        (get("python", 1), get("go", 1), get("rust", 1))
    {
        println!(
            "8x16: python async def = {:.2}x go (target >= 1x), {:.0}% of rust (target >= 40%)",
            py / go,
            100.0 * py / rust
        );
    }
    if let (Some((node, _)), Some((js, _))) = (get("node", 1), get("kitejs", 1)) {
        println!(
            "8x16: node (JavaScript handlers) = {:.2}x kite.js (target >= 1.5x)",
            node / js
        );
    }
    if let Some((_, _, Ok(m))) = results.iter().find(|r| r.0 == "rust") {
        println!(
            "rust memory per connection: {:.1} kB (target <= 20 kB)",
            m * 1.024
        );
    }
    Ok(())
}
