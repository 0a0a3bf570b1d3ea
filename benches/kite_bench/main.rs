//! The kite peer benchmark: calls/s, latency and server CPU per call of `square` on our
//! kite server, the Go reference server and the kite.js server (SockJS mode) — and on our
//! kite with JavaScript (Node) or Python handlers — under the same load generator in the
//! same run, plus server memory per connection.
//!
//! ```text
//! bash scripts/setup.sh        # Go and kite.js peers, the Node addon, the Python venv
//! cargo run --release -p kite-rs-bench --bin kite-bench [-- --seconds 3]                     # rust, go, kitejs
//! cargo run --release -p kite-rs-bench --bin kite-bench -- --servers node,kitejs,rust         # the Node binding
//! cargo run --release -p kite-rs-bench --bin kite-bench -- --servers python,python-def,rust,go  # the Python binding
//! cargo run --release -p kite-rs-bench --bin kite-bench -- --case 64x1 --repeat 1 --memory-connections 0  # one case
//! cargo run --release -p kite-rs-bench --bin kite-bench -- --servers rust,rust-tls --case 8x16  # TLS vs plain
//! cargo run --release -p kite-rs-bench --bin kite-bench -- --servers rust,rust-metrics --compare --case 8x16 --memory-connections 0  # metrics off vs on
//! bash scripts/bench-compare.sh [OLD_COMMIT]   # our server of an old commit vs this tree
//! ```
//!
//! `rust-tls` is our kite serving HTTPS with a certificate of a CA made for the run (rcgen);
//! the load generator then speaks TLS (rustls, trusting that CA) under the same websocket.
//! `rust-tunnel` is our kite behind our tunnel proxy (`kite::proxy::TunnelProxy`), both in
//! one server process: the load generator dials the proxy's public URL and every call takes
//! the extra hop through the tunnel the kite dialed
//! (`kite-bench -- --servers rust,rust-tunnel --case 8x16`).
//!
//! Every server runs as its own process (ours is this binary re-executed with `--serve`, on
//! tokio's default multi-thread runtime: one worker per core), speaking SockJS over a
//! websocket; the load generator speaks websocket, SockJS framing and dnode directly, so
//! that it costs the same whatever the server. Each case runs `--repeat` times (3), in
//! rounds over the servers, and the run with the median rate is shown.
//!
//! `--server-bin NAME=PATH` makes NAME (listed in `--servers`) the kite-bench binary PATH
//! run with `--serve`: the build of another commit, for instance, measured by this load
//! generator. With `--compare` and two servers, the second is compared with the first: one
//! table per case with the median of each figure over the rounds and new/old in percent
//! (scripts/bench-compare.sh runs it so).

mod load;
mod report;
mod servers;
mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use report::Results;

#[derive(Parser, Clone)]
#[command(
    about = "Benchmark kite servers: calls/s, p50/p99 and memory per connection",
    // A later option wins (scripts/bench-compare.sh passes defaults before the user's).
    args_override_self = true
)]
struct Args {
    /// Seconds measured per case (after a short warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Servers to run, in this order in each round: rust, go, kitejs, node (kite-rs with
    /// JavaScript handlers), python (kite-rs with `async def` handlers), python-def (plain
    /// `def` handlers), rust-tls (our kite over TLS), rust-tunnel (our kite reached through
    /// our tunnel proxy), rust-metrics (our kite with its Prometheus metrics on), or a name
    /// given by --server-bin.
    #[arg(long, value_delimiter = ',', default_value = "rust,go,kitejs")]
    servers: Vec<String>,
    /// NAME=PATH: the server NAME is the kite-bench binary PATH, run with `--serve` (any
    /// program that serves `square` without authentication, prints `{"port": N}` and stops
    /// when its stdin closes). Repeatable.
    #[arg(long = "server-bin", value_parser = parse_server_bin)]
    server_bin: Vec<(String, PathBuf)>,
    /// Compare the second server of --servers with the first: per case, the median of each
    /// figure over the rounds and second/first in percent.
    #[arg(long)]
    compare: bool,
    /// Python interpreter with kite-rs installed (for the python servers). Default: the
    /// repository's `.venv` (made by scripts/setup.sh), else `python3`.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Connections opened for the memory measurement, in every round (0 to skip).
    #[arg(long, default_value_t = 2000)]
    memory_connections: usize,
    /// Runs of each case per server (in rounds over the servers); the median run is shown.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Run only this case, e.g. `64x1` (for profiling); the others print as skipped.
    #[arg(long)]
    case: Option<String>,
    /// Internal: serve the Rust kite and print its ready line.
    #[arg(long, hide = true)]
    serve: bool,
    /// Internal: serve the Rust kite behind our tunnel proxy and print the ready line.
    #[arg(long, hide = true)]
    serve_tunnel: bool,
    /// Internal: with --serve, serve TLS with this certificate and key (PEM).
    #[arg(long, hide = true, num_args = 2)]
    tls: Option<Vec<PathBuf>>,
    /// Internal: with --serve, turn the kite's Prometheus metrics on.
    #[arg(long, hide = true)]
    metrics: bool,
}

fn parse_server_bin(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAME=PATH, got {s:?}")),
    }
}

/// The cases: connections x calls in flight on each.
const CASES: [(usize, usize); 3] = [(1, 1), (8, 16), (64, 1)];

/// The built-in servers.
const BUILTIN: [&str; 9] = [
    "rust",
    "rust-tls",
    "rust-tunnel",
    "rust-metrics",
    "go",
    "kitejs",
    "node",
    "python",
    "python-def",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // Our server runs on the runtime the core recommends (`kite::runtime`: fair to thousands
    // of connections); the load, on tokio's default.
    let runtime = if args.serve || args.serve_tunnel {
        kite::runtime::builder().build()?
    } else {
        tokio::runtime::Runtime::new()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.serve {
        return servers::serve_rust(args.tls.clone(), args.metrics).await;
    }
    if args.serve_tunnel {
        return servers::serve_tunnel().await;
    }
    let bins: HashMap<String, PathBuf> = args.server_bin.iter().cloned().collect();
    if let Some(bad) = args
        .servers
        .iter()
        .find(|s| !BUILTIN.contains(&s.as_str()) && !bins.contains_key(*s))
    {
        return Err(format!(
            "unknown server {bad:?} (known: {}, or a --server-bin name)",
            BUILTIN.join(", ")
        )
        .into());
    }
    if let Some(unused) = bins.keys().find(|n| !args.servers.contains(n)) {
        return Err(format!("--server-bin {unused}=… is not in --servers").into());
    }
    if args.compare && args.servers.len() != 2 {
        return Err("--compare needs exactly two servers (--servers old,new)".into());
    }
    let mut results: Vec<Results> = Vec::new();
    for name in &args.servers {
        if !results.iter().any(|r| &r.name == name) {
            results.push(Results::new(name, CASES.len()));
        }
    }
    // Rounds: every server in turn, `--repeat` times, so that a noisy moment of a shared
    // machine hits one run of each server rather than all runs of one; each cell is then
    // the median over the runs.
    let rounds = args.repeat.max(1);
    for round in 0..rounds {
        for r in results.iter_mut() {
            if r.start_error.is_some() {
                continue;
            }
            let server = match servers::spawn(
                &r.name,
                bins.get(&r.name).map(PathBuf::as_path),
                args.python.as_deref(),
            )
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("skipping {}: {e}", r.name);
                    r.start_error = Some(e);
                    continue;
                }
            };
            eprintln!(
                "measuring {} on port {} (round {} of {rounds})",
                r.name,
                server.port,
                round + 1,
            );
            measure(&args, &server, r).await;
        }
    }
    results.retain(|r| r.start_error.is_none());
    if args.compare {
        if let [old, new] = results.as_slice() {
            report::compare(old, new, &CASES, args.seconds, rounds);
        } else {
            return Err("--compare: a server did not start".into());
        }
    } else {
        report::table(&results, args.seconds, rounds);
    }
    Ok(())
}

/// One round on one server: every case, then the memory per connection.
async fn measure(args: &Args, server: &servers::Server, r: &mut Results) {
    for (i, (c, k)) in CASES.into_iter().enumerate() {
        if args
            .case
            .as_ref()
            .is_some_and(|only| *only != format!("{c}x{k}"))
        {
            r.errors[i] = Some("skipped".into());
            continue;
        }
        let pid = server.child.id().unwrap_or(0);
        let before = servers::cpu_time(pid);
        let gen_before = servers::cpu_time(std::process::id());
        match load::run_case(
            server.port,
            &server.prefix,
            server.tls.as_ref(),
            c,
            k,
            args.seconds,
        )
        .await
        {
            Ok(mut f) => {
                // Calls made in the warm-up are not counted; the CPU times include it, so
                // scale the calls to the whole case.
                let calls = (f.rate * (args.seconds + 0.5)).max(1.0);
                let per_call =
                    |b: Duration, a: Duration| a.saturating_sub(b).as_secs_f64() * 1e6 / calls;
                if let (Some(b), Some(a)) = (before, servers::cpu_time(pid)) {
                    f.cpu_us = Some(per_call(b, a));
                }
                if let (Some(b), Some(a)) = (gen_before, servers::cpu_time(std::process::id())) {
                    f.gen_us = Some(per_call(b, a));
                }
                r.runs[i].push(f);
            }
            Err(e) => r.errors[i] = Some(e),
        }
    }
    if args.memory_connections == 0 {
        r.memory_error = Some("skipped".into());
        return;
    }
    match load::memory(server, args.memory_connections).await {
        Ok(m) => r.memory.push(m),
        Err(e) => r.memory_error = Some(e),
    }
}
