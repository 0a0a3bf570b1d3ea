//! Load generator for the Python binding's benchmark (`bindings-python/bench/bench.py`): C
//! connections, each keeping K calls of one method in flight, against any kite URL. Prints
//! one JSON line: calls/s and latency percentiles over the measured window.
//!
//! ```text
//! cargo run --release -p kite-rs-python --example loadgen -- --url http://127.0.0.1:3636/kite
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kite::{Config, Kite};
use serde_json::{json, Value};

struct Args {
    url: String,
    connections: usize,
    in_flight: usize,
    seconds: f64,
    warmup: f64,
    method: String,
    args: Value,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        connections: 8,
        in_flight: 16,
        seconds: 3.0,
        warmup: 0.5,
        method: "square".into(),
        args: json!([3]),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = val()?,
            "--connections" => a.connections = val()?.parse().map_err(|e| format!("{e}"))?,
            "--in-flight" => a.in_flight = val()?.parse().map_err(|e| format!("{e}"))?,
            "--seconds" => a.seconds = val()?.parse().map_err(|e| format!("{e}"))?,
            "--warmup" => a.warmup = val()?.parse().map_err(|e| format!("{e}"))?,
            "--method" => a.method = val()?,
            "--args" => a.args = serde_json::from_str(&val()?).map_err(|e| format!("{e}"))?,
            "-h" | "--help" => {
                return Err(
                    "usage: loadgen --url URL [--connections C] [--in-flight K] \
                     [--seconds S] [--warmup W] [--method square] [--args '[3]']"
                        .into(),
                )
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.url.is_empty() {
        return Err("--url is required".into());
    }
    Ok(a)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let local = Kite::with_config(
        "loadgen",
        "1.0.0",
        Config {
            username: "loadgen".into(),
            ..Config::default()
        },
    )?;
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let c = local.client(&args.url);
        c.set_transport(kite::sockjs::Transport::WebSocket);
        c.dial().await?;
        clients.push(c);
    }
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in &clients {
        for _ in 0..args.in_flight {
            let (c, measuring, stop, count, errors) = (
                c.clone(),
                measuring.clone(),
                stop.clone(),
                count.clone(),
                errors.clone(),
            );
            let (method, call_args) = (args.method.clone(), args.args.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = c
                        .call(&method, &call_args)
                        .timeout(Duration::from_secs(10))
                        .await;
                    if measuring.load(Ordering::Relaxed) {
                        match r {
                            Ok(_) => {
                                count.fetch_add(1, Ordering::Relaxed);
                                lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                lat
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    lat.sort_unstable();
    println!(
        "{}",
        json!({
            "connections": args.connections,
            "in_flight": args.in_flight,
            "calls": n,
            "errors": errors.load(Ordering::Relaxed),
            "calls_per_s": (n as f64 / elapsed).round(),
            "p50_ms": percentile(&lat, 0.5),
            "p99_ms": percentile(&lat, 0.99),
        })
    );
    for c in &clients {
        c.close();
    }
    Ok(())
}
