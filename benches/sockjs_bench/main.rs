//! Benchmark: websocket round trips/s and one-way messages/s through the SockJS layer,
//! against a plain tokio-tungstenite echo server, in the same process and the same run.
//!
//! ```text
//! cargo run --release -p kite-rs-bench --bin sockjs-bench
//! cargo run --release -p kite-rs-bench --bin sockjs-bench -- --connections 8 --in-flight 16 --seconds 5
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

mod load;
mod servers;

use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::time::Instant;

use load::{
    connect_all, join_all, push_conn, rt_conn, sink_conn, Framing, RtResult, PUSH_FRAMES,
    PUSH_RECEIVED,
};
use servers::{plain_server, sockjs_server, SINK_RECEIVED};

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

/// One task per connection, running the case until `end`.
fn spawn_load(
    case: Case,
    conns: Vec<load::Ws>,
    framing: Framing,
    size: usize,
    start: Instant,
    end: Instant,
) -> Vec<tokio::task::JoinHandle<Task>> {
    conns
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
        .collect()
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
    let handles = spawn_load(case, conns, framing, size, start, end);
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
    let cases = cases(&args);

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

    let rows = measure(cases, plain_port, sockjs_port, &args).await;
    print_table(&rows);
    Ok(())
}

/// The cases `--connections`, `--in-flight` and `--no-oneway` ask for.
fn cases(args: &Args) -> Vec<Case> {
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
    cases
}

/// A case's best run on each server: (case, plain, sockjs).
type Row = (Case, Result<Measured, String>, Result<Measured, String>);

/// Every case, `--repeat` times, plain and SockJS alternating; each server's best run.
async fn measure(cases: Vec<Case>, plain_port: u16, sockjs_port: u16, args: &Args) -> Vec<Row> {
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
                let m = run_case(case, port, framing, args).await;
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

    rows
}

/// The table of every case, and the target of the SockJS issue.
fn print_table(rows: &[Row]) {
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
    for (case, plain, sockjs) in rows {
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
    print_goal(target);
}

/// Whether the SockJS layer keeps 85% of the plain rate at 8x16: (rate ratio, CPU ratio).
fn print_goal(target: Option<(Option<f64>, Option<f64>)>) {
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
}
