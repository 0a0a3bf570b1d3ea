//! The soak test of our kite server (scripts/soak.sh runs it): holds many SockJS websocket
//! connections open for a long time, each calling `square` at its own steady pace, and prints
//! every interval the server's RSS, the calls/s achieved, that interval's p50/p99 latency and
//! the errors; at the end a summary (RSS first/last/max and whether memory stayed flat,
//! overall p99 against the mean latency, error counts).
//!
//! ```text
//! cargo build --release -p kite-rs-bench --bin kite-bench --bin kite-soak
//! SOAK_SECONDS=120 target/release/kite-soak     # or --seconds 120; see --help
//! ```
//!
//! The server is `kite-bench --serve` (the binary next to this one, or `--kite-bench PATH`),
//! its own process; the load speaks websocket, SockJS and dnode directly (kite-bench's
//! `wire.rs`). The total rate is spread evenly: connection `i` of `N` calls every `N / rate`
//! seconds, starting at `i / N` of that period, one call in flight at most. A call's latency
//! runs from the time it was due to its answer, so a load generator or server falling behind
//! shows in the figures instead of silently lowering the rate.

// kite-bench's modules: this binary starts our server and speaks the wire with them, and
// leaves the rest (the other servers, the TLS and tunnel variants) unused.
#[allow(dead_code)]
#[path = "../kite_bench/servers.rs"]
mod servers;
#[allow(dead_code)]
#[path = "../kite_bench/wire.rs"]
mod wire;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;

use wire::{answered, Conn};

#[derive(Parser)]
#[command(about = "Soak our kite server: many connections at a steady call rate for a long time")]
struct Args {
    /// Seconds of calls (after all connections are open).
    #[arg(long, env = "SOAK_SECONDS", default_value_t = 600.0)]
    seconds: f64,
    /// Connections held open (each needs a file descriptor here and one in the server).
    #[arg(long, env = "SOAK_CONNECTIONS", default_value_t = 15_000)]
    connections: usize,
    /// Calls per second in total, spread evenly over the connections.
    #[arg(long, env = "SOAK_RATE", default_value_t = 3_000.0)]
    rate: f64,
    /// Closed loop instead of a steady rate: every connection keeps one call in flight, the
    /// next sent as soon as the last is answered, as fast as the server goes (`--rate` is
    /// ignored). This is the starvation test: with fair service every connection waits its
    /// turn, so a call's latency is about connections / (calls/s), and the p99 stays near it.
    #[arg(long, env = "SOAK_CLOSED", value_parser = clap::builder::FalseyValueParser::new())]
    closed: bool,
    /// Seconds between two printed lines.
    #[arg(long, env = "SOAK_INTERVAL", default_value_t = 10.0)]
    interval: f64,
    /// Seconds a call may wait for its answer before it counts as timed out.
    #[arg(long, env = "SOAK_TIMEOUT", default_value_t = 10.0)]
    timeout: f64,
    /// The kite-bench binary whose `--serve` is the server. Default: next to this binary.
    #[arg(long)]
    kite_bench: Option<PathBuf>,
}

/// What the connections report, taken by the printer every interval.
#[derive(Default)]
struct Tally {
    /// Latencies (µs) of the calls answered, from the time each was due.
    lat: Vec<u32>,
    /// The same from the time each was sent: without the load's own timer and scheduling.
    sent: Vec<u32>,
    /// Calls without an answer within `--timeout`.
    timeouts: u64,
    /// Calls failed: a wrong answer or the connection lost (which ends that connection).
    failed: u64,
    /// The first failure's message.
    first_error: Option<String>,
}

/// State shared by the connections and the printer.
struct Shared {
    tally: Mutex<Tally>,
    /// Connections lost (a failed call ends its connection).
    lost: AtomicUsize,
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut Tally) -> R) -> R {
        // A poisoned lock only means a task panicked while counting: keep counting.
        f(&mut self.tally.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let sane = |v: f64| (0.001..1e9).contains(&v);
    if args.connections == 0
        || ![args.seconds, args.rate, args.interval, args.timeout]
            .map(sane)
            .iter()
            .all(|ok| *ok)
    {
        return Err("connections must be positive; seconds, rate, interval and timeout between 0.001 and 1e9".into());
    }
    let bin = match &args.kite_bench {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("kite-bench"),
    };
    let server = servers::spawn("rust", Some(&bin), None).await?;
    let pid = server.child.id().ok_or("the server exited")?;
    let idle = servers::rss_kib(pid).unwrap_or(0);
    println!(
        "server {} (pid {pid}) on port {}, RSS {:.1} MiB idle",
        bin.display(),
        server.port,
        mib(idle)
    );
    let t0 = Instant::now();
    let (conns, refused) = open_all(server.port, args.connections).await;
    let rss = servers::rss_kib(pid).unwrap_or(0);
    println!(
        "opened {} connections in {:.1} s ({} refused{}); RSS {:.1} MiB, {:.1} KiB per connection",
        conns.len(),
        t0.elapsed().as_secs_f64(),
        refused.0,
        refused
            .1
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default(),
        mib(rss),
        rss.saturating_sub(idle) as f64 / conns.len().max(1) as f64,
    );
    if conns.is_empty() {
        return Err("no connection opened".into());
    }
    let clean = run(&args, pid, conns).await;
    drop(server);
    if clean && refused.0 == 0 {
        Ok(())
    } else {
        Err(
            "connections refused, calls failed or timed out, or the server exited (see above)"
                .into(),
        )
    }
}

/// Opens `n` connections, 64 handshakes at a time; returns them and the failures (count,
/// first message).
async fn open_all(port: u16, n: usize) -> (Vec<Conn>, (usize, Option<String>)) {
    let mut conns = Vec::with_capacity(n);
    let mut refused = (0, None);
    let mut opening = futures_util::stream::iter(0..n)
        .map(|_| Conn::connect(port, "/kite", None))
        .buffer_unordered(64);
    while let Some(r) = opening.next().await {
        match r {
            Ok(c) => conns.push(c),
            Err(e) => {
                refused.0 += 1;
                refused.1.get_or_insert(e);
            }
        }
    }
    (conns, refused)
}

/// The soak proper: starts every connection's schedule, prints every interval, then the
/// summary; false if there were errors.
async fn run(args: &Args, pid: u32, conns: Vec<Conn>) -> bool {
    let shared = Arc::new(Shared {
        tally: Mutex::new(Tally::default()),
        lost: AtomicUsize::new(0),
    });
    let n = conns.len();
    // `None`: closed loop, the next call sent when the last is answered.
    let period = (!args.closed).then(|| Duration::from_secs_f64(n as f64 / args.rate));
    let start = Instant::now() + Duration::from_millis(500);
    let end = start + Duration::from_secs_f64(args.seconds);
    let timeout = Duration::from_secs_f64(args.timeout);
    match period {
        Some(p) => println!(
            "{n} connections, {} calls/s in total: each calls every {:.2} s, for {} s",
            args.rate,
            p.as_secs_f64(),
            args.seconds
        ),
        None => println!(
            "{n} connections, closed loop: each keeps one call in flight, for {} s",
            args.seconds
        ),
    }
    let cpu_before = servers::cpu_time(pid);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let first = start + period.map_or(Duration::ZERO, |p| p.mul_f64(i as f64 / n as f64));
            tokio::spawn(drive(conn, first, period, end, timeout, shared.clone()))
        })
        .collect();
    let mut summary = Summary::default();
    let interval = Duration::from_secs_f64(args.interval);
    println!(
        "{:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "t s", "conns", "RSS MiB", "calls/s", "p50 ms", "p99 ms", "timeouts", "failed"
    );
    let mut at = start;
    while at < end {
        let next = (at + interval).min(end);
        tokio::time::sleep_until(next.into()).await;
        let t = shared.with(std::mem::take);
        let open = n - shared.lost.load(Ordering::Relaxed);
        summary.line(&t, next - at, next - start, pid, open);
        summary.add(t);
        at = next;
    }
    // The calls due before the end finish (answered or timed out) and are counted too.
    for t in tasks {
        let _ = t.await;
    }
    summary.add(shared.with(std::mem::take));
    let cpu = servers::cpu_time(pid)
        .zip(cpu_before)
        .map(|(a, b)| a.saturating_sub(b));
    summary.print(args, n, cpu)
}

/// One connection: a call every `period` from `first` until `end` (or, without a period, the
/// next call as soon as the last is answered), each waiting for its answer up to `timeout`.
async fn drive(
    mut conn: Conn,
    first: Instant,
    period: Option<Duration>,
    end: Instant,
    timeout: Duration,
    shared: Arc<Shared>,
) {
    let (mut frame, mut ids) = (Vec::new(), Vec::new());
    let mut due = first;
    let mut id = 0u64;
    while due < end {
        match period {
            Some(_) => tokio::time::sleep_until(due.into()).await,
            None if id == 0 => {
                tokio::time::sleep_until(due.into()).await;
                due = Instant::now();
            }
            None => {}
        }
        let sent_at = Instant::now();
        conn.call(id);
        let deadline = tokio::time::Instant::now() + timeout;
        // A write that cannot finish leaves the connection unusable (part of a frame sent):
        // it counts as failed. Reading is safe to stop (our server sends no pings to answer).
        let sent = match tokio::time::timeout_at(deadline, conn.flush()).await {
            Ok(r) => r,
            Err(_) => Err(format!("the server read nothing for {timeout:?}")),
        };
        let answer = async {
            sent?;
            loop {
                conn.read_text(&mut frame).await?;
                ids.clear();
                answered(&frame, &mut ids)?;
                // An answer to an earlier call that timed out is skipped.
                if ids.contains(&id) {
                    return Ok::<_, String>(());
                }
            }
        };
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(())) => {
                let us = |since: Instant| since.elapsed().as_micros().min(u32::MAX as u128) as u32;
                let (lat, sent) = (us(due), us(sent_at));
                shared.with(|t| {
                    t.lat.push(lat);
                    t.sent.push(sent);
                });
            }
            Err(_) => shared.with(|t| t.timeouts += 1),
            Ok(Err(e)) => {
                shared.with(|t| {
                    t.failed += 1;
                    t.first_error.get_or_insert(e);
                });
                shared.lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        id += 1;
        due = match period {
            Some(p) => due + p,
            None => Instant::now(),
        };
    }
    conn.close().await;
}

/// Everything measured over the soak.
#[derive(Default)]
struct Summary {
    /// All latencies (µs), from the time each call was due.
    lat: Vec<u32>,
    /// All latencies (µs), from the time each call was sent.
    sent: Vec<u32>,
    timeouts: u64,
    failed: u64,
    first_error: Option<String>,
    /// The server's RSS (KiB) at each printed line.
    rss: Vec<u64>,
    /// The server was gone (no `/proc` entry) at some line.
    exited: bool,
}

impl Summary {
    /// Prints one interval's line (`t` is that interval's tally, `span` its length).
    fn line(&mut self, t: &Tally, span: Duration, since: Duration, pid: u32, open: usize) {
        let rss = servers::rss_kib(pid);
        self.rss.extend(rss);
        self.exited |= rss.is_none();
        let mut lat = t.lat.clone();
        lat.sort_unstable();
        println!(
            "{:>7.0} {:>6} {:>9} {:>8.0} {:>8.2} {:>8.2} {:>8} {:>6}",
            since.as_secs_f64(),
            open,
            rss.map_or("exited".into(), |r| format!("{:.1}", mib(r))),
            lat.len() as f64 / span.as_secs_f64(),
            pct(&lat, 0.50),
            pct(&lat, 0.99),
            t.timeouts,
            t.failed,
        );
    }

    fn add(&mut self, t: Tally) {
        self.lat.extend(t.lat);
        self.sent.extend(t.sent);
        self.timeouts += t.timeouts;
        self.failed += t.failed;
        if self.first_error.is_none() {
            self.first_error = t.first_error;
        }
    }

    /// The summary: memory over the soak, latency, errors, the server's CPU per call;
    /// false if a call failed or timed out or the server exited.
    fn print(mut self, args: &Args, conns: usize, cpu: Option<Duration>) -> bool {
        self.lat.sort_unstable();
        let n = self.lat.len();
        let mean = mean_ms(&self.lat);
        let p99 = pct(&self.lat, 0.99);
        println!("summary:");
        if self.exited {
            println!("  the server EXITED during the soak (its RSS below is from before)");
        }
        if let (Some(first), Some(last), Some(max)) =
            (self.rss.first(), self.rss.last(), self.rss.iter().max())
        {
            // The mean of the first and of the last quarter of the samples (at least one each).
            let q = (self.rss.len() / 4).max(1);
            let avg = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len() as f64;
            let (early, late) = (avg(&self.rss[..q]), avg(&self.rss[self.rss.len() - q..]));
            let growth = (late / early.max(1.0) - 1.0) * 100.0;
            println!(
                "  RSS MiB: first {:.1}, last {:.1}, max {:.1}; last quarter vs first {growth:+.1}%: {}",
                mib(*first),
                mib(*last),
                mib(*max),
                if growth < 10.0 { "flat (under 10%)" } else { "GROWING (10% or more)" },
            );
            let under = (*max as f64) * 1024.0 < 300e6;
            println!(
                "  goal max RSS under 300 MB: {}",
                if under { "met" } else { "NOT met" }
            );
        }
        let per_sec = n as f64 / args.seconds;
        let asked = if args.closed {
            "closed loop".to_string()
        } else {
            format!("of {} asked", args.rate)
        };
        println!(
            "  calls answered: {n} ({per_sec:.0}/s, {asked}); p50 {:.2} ms, p99 {p99:.2} ms, mean {mean:.2} ms, p99/mean {:.2}",
            pct(&self.lat, 0.50),
            p99 / mean,
        );
        self.sent.sort_unstable();
        let sent_mean = mean_ms(&self.sent);
        println!(
            "  from send to answer (without the load's timer, which wakes on whole milliseconds): p50 {:.2} ms, p99 {:.2} ms, mean {sent_mean:.2} ms",
            pct(&self.sent, 0.50),
            pct(&self.sent, 0.99),
        );
        if args.closed {
            // Fair service under saturation: each connection is served once per round of all
            // connections, so every call waits connections / (calls/s) (Little's law).
            let fair_ms = conns as f64 / per_sec.max(f64::MIN_POSITIVE) * 1000.0;
            println!(
                "  fair service would give every call {fair_ms:.2} ms; p99 is {:.2}x that",
                p99 / fair_ms
            );
        }
        let fair = p99 <= 2.0 * mean;
        println!(
            "  goal p99 <= 2x mean: {}",
            if fair { "met" } else { "NOT met" }
        );
        println!(
            "  errors: {} timeouts (>{} s), {} failed{}",
            self.timeouts,
            args.timeout,
            self.failed,
            self.first_error
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
        );
        if let Some(cpu) = cpu {
            println!(
                "  server CPU: {:.1} s, {:.1} µs per call answered",
                cpu.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / n.max(1) as f64
            );
        }
        !self.exited && self.timeouts == 0 && self.failed == 0
    }
}

/// The `p` quantile of sorted latencies (µs), in ms; NaN if there are none.
fn pct(sorted: &[u32], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(f64::NAN, |v| *v as f64 / 1000.0)
}

/// The mean of latencies (µs), in ms; 0 if there are none.
fn mean_ms(lat: &[u32]) -> f64 {
    lat.iter().map(|v| *v as f64).sum::<f64>() / lat.len().max(1) as f64 / 1000.0
}

/// KiB to MiB.
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
