//! The Kontrol benchmark: registrations/s, and `getKites`/s with p50/p99 latency while
//! 10,000 kites are registered, on SQLite and on PostgreSQL.
//!
//! ```text
//! cargo run --release -p kite-rs-bench --bin kontrol-bench [-- --kites 10000 --registrations 1000 --concurrency 32 --seconds 5]
//! ```
//!
//! For each backend a Kontrol (default settings: heartbeats every 10 s) listens on
//! 127.0.0.1:0 in this process, and the load comes from kites in this process too, each over
//! its own websocket connection to Kontrol:
//!
//! - **seed**: `kites − registrations` records are written straight through the `Storage`
//!   trait (`upsert`, `concurrency` at a time): registering them all through real connections
//!   would mean thousands of websockets and heartbeats on this one machine;
//! - **register**: `registrations` kites, already connected, call `register` over dnode,
//!   `concurrency` at a time (Kontrol checks each kite key, writes the kite and starts its
//!   heartbeats); they stay connected and heartbeating for the rest of the run, so that
//!   `kites` kites are registered in all;
//! - **getKites**: `concurrency` connected kites call `getKites` back to back for `seconds`
//!   (after a short warm-up) with a query matching 1 of the kites, then one matching 100; every
//!   result carries a token.
//!
//! Beside each rate, the CPU time per call: of this process (Kontrol and its callers
//! together, as they share it), and for PostgreSQL also of the database server (its
//! postmaster and sessions), read from `/proc` before and after the measured window.
//!
//! PostgreSQL runs on a server of its own, started the way the tests start theirs
//! (`core/tests/common/postgres.rs`: Debian's binaries, a scratch cluster, 127.0.0.1 on a free
//! port); without those binaries it is skipped with a message saying how to install them.

/// The allocator of the `kontrol` program (cli/src/common), so that Kontrol is measured as
/// it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../core/tests/common/postgres.rs"]
mod postgres_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::stream::{self, StreamExt};
use kite::kontrol::{KiteRecord, Kontrol, KontrolConfig, Storage};
use kite::protocol::Kite as KiteIdentity;
use kite::{Client, Config, Kite};
use serde_json::{json, Value};

#[derive(Parser, Clone)]
#[command(about = "Benchmark Kontrol: registrations/s, getKites/s and p50/p99 latency")]
struct Args {
    /// Kites registered while getKites is measured (seeded plus really registered).
    #[arg(long, default_value_t = 10_000)]
    kites: usize,
    /// Kites registering through dnode `register`, each over its own connection.
    #[arg(long, default_value_t = 1_000)]
    registrations: usize,
    /// Concurrent registrations, and concurrent getKites callers (one connection each).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds measured per getKites query (after a one-second warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Backends to run: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
}

/// What one backend measured.
struct Figures {
    backend: &'static str,
    seeded_per_sec: f64,
    registered_per_sec: f64,
    one: Load,
    hundred: Load,
}

/// getKites under load.
struct Load {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    calls: usize,
    /// CPU time of this process per call (Kontrol and the callers).
    cpu: Duration,
    /// CPU time of the database server per call, when it runs apart.
    db_cpu: Option<Duration>,
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 per second on every mainstream configuration.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time of a process and of its children (the database server's sessions).
fn tree_cpu_time(pid: u32) -> Option<Duration> {
    let mut total = cpu_time(pid)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let parent = std::fs::read_to_string(format!("/proc/{child}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            });
        if parent == Some(pid) {
            total += cpu_time(child).unwrap_or_default();
        }
    }
    Some(total)
}

/// Where CPU time is read for a figure: this process, and the database server if apart.
#[derive(Clone, Copy)]
struct CpuSources {
    db_pid: Option<u32>,
}

impl CpuSources {
    fn now(&self) -> (Duration, Option<Duration>) {
        (
            cpu_time(std::process::id()).unwrap_or_default(),
            self.db_pid.and_then(tree_cpu_time),
        )
    }
}

/// Seeded kites: user `bench`, environment `prod`, 100 names with 100 kites each (query
/// "100 of N" matches one name), a host name of their own (query "1 of N").
fn seeded(n: usize, key_id: &str) -> KiteRecord {
    KiteRecord {
        kite: KiteIdentity {
            username: "bench".into(),
            environment: "prod".into(),
            name: format!("svc-{}", n % 100),
            version: "1.0.0".into(),
            region: "eu".into(),
            hostname: format!("host-{n}"),
            id: uuid::Uuid::new_v4().to_string(),
        },
        url: format!("http://10.0.{}.{}:4000/kite", n / 250, n % 250),
        key_id: key_id.to_string(),
    }
}

async fn start_kontrol(storage: Arc<dyn Storage>) -> Result<(Kontrol, String), kite::Error> {
    let kite = Kite::with_config(
        "kontrol",
        "0.0.4",
        Config {
            ip: "127.0.0.1".into(),
            username: "kontrol".into(),
            ..Config::default()
        },
    )?;
    let kontrol = Kontrol::new(kite, storage, KontrolConfig::default()).await?;
    kontrol.listen().await?;
    let url = kontrol
        .kite()
        .url()
        .ok_or_else(|| kite::Error::Config("kontrol has no URL".into()))?;
    Ok((kontrol, url))
}

/// A kite of `bench` with `key`, and its connection to Kontrol at `url`.
async fn connected_kite(name: &str, key: &str, url: &str) -> Result<(Kite, Client), kite::Error> {
    let mut config = Config {
        ip: "127.0.0.1".into(),
        environment: "prod".into(),
        region: "eu".into(),
        ..Config::default()
    };
    config.use_kite_key(key)?;
    config.id = uuid::Uuid::new_v4().to_string();
    config.kontrol_url = url.to_string();
    let k = Kite::with_config(name, "1.0.0", config)?;
    let c = k.kontrol().await?;
    Ok((k, c))
}

/// Closes kites and their connections (so that they stop redialling Kontrol).
fn close_all(kites: &[(Kite, Client)]) {
    for (k, c) in kites {
        c.close();
        k.close();
    }
}

/// Seconds as a rate of `n`.
fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}

/// `callers` call getKites with `query` back to back; latencies of the calls in the measured
/// window.
async fn get_kites_load(
    callers: &[Client],
    query: Value,
    expect: usize,
    warmup: Duration,
    measure: Duration,
    cpu: CpuSources,
) -> Result<Load, kite::Error> {
    let start = Instant::now();
    let from = start + warmup;
    let until = from + measure;
    let runs = callers.iter().cloned().map(|c| {
        let args = [json!({ "query": query.clone() })];
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let t = Instant::now();
                if t >= until {
                    return Ok::<_, kite::Error>(latencies);
                }
                let result = c.call("getKites", &args).await?;
                let found = result["kites"].as_array().map_or(0, Vec::len);
                if found != expect {
                    return Err(kite::Error::InvalidResponse(format!(
                        "getKites found {found} kites, expected {expect}"
                    )));
                }
                if t >= from {
                    latencies.push(t.elapsed());
                }
            }
        })
    });
    let runs: Vec<_> = runs.collect();
    tokio::time::sleep_until(from.into()).await;
    let (cpu_from, db_from) = cpu.now();
    tokio::time::sleep_until(until.into()).await;
    let (cpu_until, db_until) = cpu.now();
    let mut all = Vec::new();
    for run in futures_util::future::join_all(runs).await {
        all.extend(run.map_err(|e| kite::Error::Config(e.to_string()))??);
    }
    all.sort();
    let at = |q: usize| all.get((all.len() * q / 100).min(all.len().saturating_sub(1)));
    let per_call = |d: Duration| d / u32::try_from(all.len().max(1)).unwrap_or(u32::MAX);
    Ok(Load {
        per_sec: rate(all.len(), measure),
        p50: at(50).copied().unwrap_or_default(),
        p99: at(99).copied().unwrap_or_default(),
        calls: all.len(),
        cpu: per_call(cpu_until.saturating_sub(cpu_from)),
        db_cpu: db_from
            .zip(db_until)
            .map(|(a, b)| per_call(b.saturating_sub(a))),
    })
}
/// Writes `seeds` kite records straight through `Storage::upsert`, `concurrency` at a time;
/// returns records/s.
async fn seed(
    storage: &Arc<dyn Storage>,
    key_id: &str,
    seeds: usize,
    concurrency: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let results: Vec<_> = stream::iter(0..seeds)
        .map(|n| {
            let storage = storage.clone();
            let record = seeded(n, key_id);
            async move { storage.upsert(&record).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(rate(seeds, started.elapsed()))
}

async fn bench(
    backend: &'static str,
    storage: Arc<dyn Storage>,
    args: &Args,
    cpu: CpuSources,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let (kontrol, url) = start_kontrol(storage.clone()).await?;
    let key_id = kontrol.current_key().await?.id;
    let concurrency = args.concurrency.max(1);

    // Seed through the Storage trait.
    let seeds = args.kites.saturating_sub(args.registrations);
    eprintln!("[{backend}] seeding {seeds} kites through Storage::upsert");
    let seeded_per_sec = seed(&storage, &key_id, seeds, concurrency).await?;

    // Real registrations over connections dialed beforehand.
    eprintln!(
        "[{backend}] connecting {} kites, then registering them",
        args.registrations
    );
    let key = kontrol.new_kite_key("bench").await?;
    let kites: Vec<(Kite, Client)> = stream::iter(0..args.registrations)
        .map(|_| connected_kite("reg", &key, &url))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let results: Vec<_> = stream::iter(kites.iter().enumerate())
        .map(|(n, (k, _))| async move {
            k.register(&format!("http://10.1.{}.{}:4000/kite", n / 250, n % 250))
                .await
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let took = started.elapsed();
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let registered_per_sec = rate(args.registrations, took);

    // getKites with `kites` registered.
    let total = storage
        .get(&kite::protocol::KiteQuery {
            username: "bench".into(),
            ..Default::default()
        })
        .await?
        .len();
    eprintln!("[{backend}] {total} kites registered; measuring getKites");
    let mut callers = Vec::new();
    for _ in 0..concurrency {
        callers.push(connected_kite("caller", &key, &url).await?);
    }
    let clients: Vec<Client> = callers.iter().map(|(_, c)| c.clone()).collect();
    let warmup = Duration::from_secs(1);
    let measure = Duration::from_secs_f64(args.seconds);
    let probe = seeds / 2;
    let one = json!({
        "username": "bench", "environment": "prod", "name": format!("svc-{}", probe % 100),
        "version": "1.0.0", "region": "eu", "hostname": format!("host-{probe}"),
    });
    let hundred = json!({"username": "bench", "environment": "prod", "name": "svc-7"});
    let one = get_kites_load(&clients, one, 1, warmup, measure, cpu).await?;
    let hundred_expect = (0..seeds).filter(|n| n % 100 == 7).count();
    let hundred = get_kites_load(&clients, hundred, hundred_expect, warmup, measure, cpu).await?;
    close_all(&callers);
    close_all(&kites);
    kontrol.close();
    Ok(Figures {
        backend,
        seeded_per_sec,
        registered_per_sec,
        one,
        hundred,
    })
}

async fn sqlite(args: &Args) -> Result<Option<Figures>, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("kontrol-bench-{}", uuid::Uuid::new_v4().simple()));
    let storage = kite::kontrol::storage::sqlite::Sqlite::open(dir.join("kontrol.db")).await?;
    let figures = bench(
        "sqlite",
        Arc::new(storage),
        args,
        CpuSources { db_pid: None },
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    figures.map(Some)
}

async fn postgres(args: &Args) -> Result<Option<Figures>, Box<dyn std::error::Error>> {
    use kite::kontrol::storage::postgres::Postgres;
    use postgres_server::{find_server_bin, PgServer};
    if let Err(why) = find_server_bin() {
        eprintln!("[postgres] skipped: {why}");
        return Ok(None);
    }
    eprintln!("[postgres] starting a PostgreSQL server");
    let server = tokio::task::spawn_blocking(PgServer::start).await?;
    let db = server.create_database().await;
    let config = kite::kontrol::storage::postgres::PostgresConfig {
        // Enough connections for the concurrent callers.
        max_connections: args.concurrency.clamp(10, 64) as u32,
        ..server.config(&db)
    };
    let storage = Postgres::connect(&config).await?;
    let cpu = CpuSources {
        db_pid: server.postmaster_pid(),
    };
    let figures = bench("postgres", Arc::new(storage), args, cpu).await;
    drop(server);
    figures.map(Some)
}

/// `process µs` or `process µs + db µs`.
fn cpu_cell(l: &Load) -> String {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    match l.db_cpu {
        Some(db) => format!("{:.0} µs + {:.0} µs db", us(l.cpu), us(db)),
        None => format!("{:.0} µs", us(l.cpu)),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut rows = Vec::new();
    for backend in &args.backends {
        let figures = match backend.as_str() {
            "sqlite" => sqlite(&args).await?,
            "postgres" => postgres(&args).await?,
            other => return Err(format!("unknown backend {other:?}").into()),
        };
        rows.extend(figures);
    }
    let seeds = args.kites.saturating_sub(args.registrations);
    println!();
    println!(
        "Kontrol with {} registered kites: {seeds} seeded through Storage::upsert, {} registered \
         through dnode `register`, each over its own websocket ({} at a time).",
        args.kites, args.registrations, args.concurrency
    );
    println!(
        "getKites: {} callers, one connection each, back to back for {} s per query; every result \
         carries a token. Load and Kontrol share this process and machine ({} CPUs).",
        args.concurrency,
        args.seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    let many = (0..seeds).filter(|n| n % 100 == 7).count();
    println!(
        "| backend  | seed upserts/s | registrations/s | getKites → 1 kite /s | p50 | p99 | CPU/call | getKites → {many} kites /s | p50 | p99 | CPU/call |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in &rows {
        println!(
            "| {:<8} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {:.0} | {} | {} | {} |",
            f.backend,
            f.seeded_per_sec,
            f.registered_per_sec,
            f.one.per_sec,
            ms(f.one.p50),
            ms(f.one.p99),
            cpu_cell(&f.one),
            f.hundred.per_sec,
            ms(f.hundred.p50),
            ms(f.hundred.p99),
            cpu_cell(&f.hundred),
        );
    }
    println!();
    println!(
        "CPU/call: CPU time of this process (Kontrol and its callers) per call in the measured \
         window, + that of the PostgreSQL server (postmaster and sessions) where it applies."
    );
    println!();
    for f in &rows {
        println!(
            "{}: {} + {} getKites calls measured",
            f.backend, f.one.calls, f.hundred.calls
        );
    }
    Ok(())
}
