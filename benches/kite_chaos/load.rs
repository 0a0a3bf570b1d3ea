//! The load of a chaos run: worker kites registered forever to Kontrol, each counting how
//! many times it executed every call id; and a caller that spreads a steady call rate over
//! them (each call with an id of its own) and asks Kontrol for them with `getKites`. What
//! happens is tallied per window (the steady start, then one window per fault).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kite::kontrol::METHOD_GET_KITES;
use kite::protocol::KiteQuery;
use kite::{Client, Config, Kite, Request};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The workers' name, what `getKites` asks for.
pub const WORKER: &str = "chaos-worker";
/// The workers' method: returns its argument, the call id, and counts its executions.
const METHOD: &str = "count";
/// Environment of every kite of the run.
const ENVIRONMENT: &str = "chaos";

/// Locks a mutex, going on after a panic elsewhere (counting is still right).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The query matching every worker.
pub fn workers_query() -> KiteQuery {
    KiteQuery {
        username: "chaos".into(),
        environment: ENVIRONMENT.into(),
        name: WORKER.into(),
        ..KiteQuery::default()
    }
}

fn config(key: &str) -> Result<Config, String> {
    let mut config = Config {
        ip: "127.0.0.1".into(),
        port: 0,
        environment: ENVIRONMENT.into(),
        region: "local".into(),
        ..Config::default()
    };
    config.use_kite_key(key).map_err(|e| e.to_string())?;
    config.id = uuid::Uuid::new_v4().to_string();
    Ok(config)
}

/// Registrations of the workers: (worker, when), every one since the start.
#[derive(Default)]
pub struct Registrations(Mutex<Vec<(usize, Instant)>>);

impl Registrations {
    /// For each of `n` workers, its first registration at or after `since`.
    pub fn first_since(&self, n: usize, since: Instant) -> Vec<Option<Instant>> {
        let mut first = vec![None; n];
        for &(i, at) in lock(&self.0).iter() {
            if at >= since {
                if let Some(slot @ None) = first.get_mut(i) {
                    *slot = Some(at);
                }
            }
        }
        first
    }

    /// How many registrations happened at or after `since`.
    pub fn count_since(&self, since: Instant) -> usize {
        lock(&self.0).iter().filter(|(_, at)| *at >= since).count()
    }
}

/// The worker kites and what they saw.
pub struct Workers {
    pub kites: Vec<Kite>,
    pub registrations: Arc<Registrations>,
    /// Executions per call id, over all workers.
    pub executions: Arc<Mutex<HashMap<u64, u32>>>,
}

impl Workers {
    /// Starts `n` workers, each listening on its own port and registering forever; returns
    /// once all have registered (or fails after `within`).
    pub async fn start(n: usize, key: &str, within: Duration) -> Result<Workers, String> {
        let registrations = Arc::new(Registrations::default());
        let executions: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
        let mut kites = Vec::with_capacity(n);
        for i in 0..n {
            let k = Kite::with_config(WORKER, "1.0.0", config(key)?).map_err(|e| e.to_string())?;
            let counts = executions.clone();
            k.handle(METHOD, move |r: Request| {
                let counts = counts.clone();
                async move {
                    let id: u64 = r.args().one()?;
                    *lock(&counts).entry(id).or_insert(0) += 1;
                    Ok::<_, kite::KiteError>(id)
                }
            })
            .map_err(|e| e.to_string())?;
            let regs = registrations.clone();
            k.on_register(move |_| lock(&regs.0).push((i, Instant::now())));
            k.listen().await.map_err(|e| e.to_string())?;
            kites.push(k);
        }
        let registering = kites.iter().map(|k| {
            let k = k.clone();
            async move {
                let url = k.url().unwrap_or_default();
                k.register_forever(&url).await;
            }
        });
        tokio::time::timeout(within, futures_util::future::join_all(registering))
            .await
            .map_err(|_| format!("the {n} workers did not all register within {within:?}"))?;
        Ok(Workers {
            kites,
            registrations,
            executions,
        })
    }

    /// Closes every worker (they unregister from Kontrol).
    pub async fn close(&self) {
        futures_util::future::join_all(self.kites.iter().map(Kite::shutdown)).await;
    }
}

/// What the calls and `getKites` of one window came to.
#[derive(Default, Clone, Debug)]
pub struct Tally {
    pub sent: u64,
    pub answered: u64,
    /// Failed with an error (or a wrong answer) before the timeout.
    pub failed: u64,
    /// Neither answered nor failed within the call timeout.
    pub lost: u64,
    /// Executed by a worker more than once (filled in at the end).
    pub twice: u64,
    /// Periodic `getKites` to Kontrol that answered, and that failed or timed out.
    pub get_kites_ok: u64,
    pub get_kites_failed: u64,
    /// Answers of those `getKites` that listed fewer kites than there are workers.
    pub get_kites_short: u64,
    pub first_error: Option<String>,
    pub first_get_kites_error: Option<String>,
}

/// State the caller's tasks share.
#[derive(Default)]
struct Shared {
    /// The window new calls and `getKites` count in.
    window: AtomicUsize,
    /// The first call id of each window after the first.
    window_starts: Mutex<Vec<u64>>,
    tallies: Mutex<Vec<Tally>>,
    next_id: AtomicU64,
    in_flight: AtomicUsize,
}

impl Shared {
    fn with(&self, window: usize, f: impl FnOnce(&mut Tally)) {
        let mut t = lock(&self.tallies);
        if t.len() <= window {
            t.resize(window + 1, Tally::default());
        }
        if let Some(tally) = t.get_mut(window) {
            f(tally);
        }
    }
}

/// The caller: a kite of its own that calls the workers and asks Kontrol for them.
pub struct Caller {
    kite: Kite,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

/// The caller's settings.
pub struct Load {
    pub rate: f64,
    pub call_timeout: Duration,
    pub get_kites_every: Duration,
    pub workers: usize,
}

impl Caller {
    /// A caller kite (not listening, not registered) with `key`.
    pub fn new(key: &str) -> Result<Caller, String> {
        let kite =
            Kite::with_config("chaos-caller", "1.0.0", config(key)?).map_err(|e| e.to_string())?;
        Ok(Caller {
            kite,
            shared: Arc::default(),
            stop: CancellationToken::new(),
        })
    }

    pub fn kite(&self) -> &Kite {
        &self.kite
    }

    /// Clients of all `n` workers from `getKites` (carrying Kontrol's tokens), connected.
    pub async fn connect_workers(&self, n: usize) -> Result<Vec<Client>, String> {
        let clients = self
            .kite
            .get_kites(&workers_query())
            .await
            .map_err(|e| format!("getKites: {e}"))?;
        if clients.len() != n {
            return Err(format!("getKites listed {} workers of {n}", clients.len()));
        }
        for c in &clients {
            c.dial()
                .await
                .map_err(|e| format!("dial {}: {e}", c.url()))?;
        }
        Ok(clients)
    }

    /// Starts the calls (round robin over `clients`) and the periodic `getKites`.
    pub fn start(&self, clients: Vec<Client>, load: &Load) {
        let calls = call_loop(
            self.shared.clone(),
            clients,
            load.rate,
            load.call_timeout,
            self.stop.clone(),
        );
        tokio::spawn(calls);
        let lists = get_kites_loop(
            self.kite.clone(),
            self.shared.clone(),
            load.get_kites_every,
            load.workers,
            self.stop.clone(),
        );
        tokio::spawn(lists);
    }

    /// Counts what follows in a new window; returns its index.
    pub fn next_window(&self) -> usize {
        let first = self.shared.next_id.load(Ordering::SeqCst);
        lock(&self.shared.window_starts).push(first);
        self.shared.window.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Stops sending and waits for the calls in flight (at most `grace`); returns each
    /// window's tally, executions counted twice included.
    pub async fn finish(
        &self,
        executions: &Mutex<HashMap<u64, u32>>,
        grace: Duration,
    ) -> Vec<Tally> {
        self.stop.cancel();
        let deadline = Instant::now() + grace;
        while self.shared.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let starts = lock(&self.shared.window_starts).clone();
        let twice: Vec<(u64, u32)> = lock(executions)
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (*id, *n))
            .collect();
        for (id, _) in &twice {
            let window = starts.partition_point(|first| first <= id);
            self.shared.with(window, |t| t.twice += 1);
        }
        lock(&self.shared.tallies).clone()
    }

    /// Closes the caller kite.
    pub async fn close(&self) {
        self.stop.cancel();
        self.kite.shutdown().await;
    }
}

/// Sends `rate` calls per second until `stop`, each with a new id, round robin.
async fn call_loop(
    shared: Arc<Shared>,
    clients: Vec<Client>,
    rate: f64,
    timeout: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let window = shared.window.load(Ordering::SeqCst);
        let Some(client) = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_rem(clients.len()))
            .and_then(|i| clients.get(i))
            .cloned()
        else {
            return;
        };
        shared.with(window, |t| t.sent += 1);
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        tokio::spawn(async move {
            let r = client.call(METHOD, json!([id])).timeout(timeout).await;
            shared.with(window, |t| match r {
                Ok(v) if v.as_u64() == Some(id) => t.answered += 1,
                Ok(v) => {
                    t.failed += 1;
                    t.first_error
                        .get_or_insert_with(|| format!("call {id} answered {v}"));
                }
                Err(kite::Error::Timeout { .. }) => t.lost += 1,
                Err(e) => {
                    t.failed += 1;
                    t.first_error.get_or_insert_with(|| e.to_string());
                }
            });
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// `getKites` for the workers through the caller's own connection to Kontrol (which
/// redials with backoff), every `every`, each given `every` or 2 s to answer.
async fn get_kites_loop(
    kite: Kite,
    shared: Arc<Shared>,
    every: Duration,
    workers: usize,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let window = shared.window.load(Ordering::SeqCst);
        let within = every.max(Duration::from_secs(2));
        let asked = async {
            let c = kite.kontrol().await?;
            list(&c, within).await
        };
        let r = tokio::time::timeout(within, asked).await;
        shared.with(window, |t| match r {
            Ok(Ok(n)) => {
                t.get_kites_ok += 1;
                if n < workers {
                    t.get_kites_short += 1;
                }
            }
            Ok(Err(e)) => {
                t.get_kites_failed += 1;
                t.first_get_kites_error.get_or_insert_with(|| e.to_string());
            }
            Err(_) => {
                t.get_kites_failed += 1;
                t.first_get_kites_error
                    .get_or_insert_with(|| format!("no answer within {within:?}"));
            }
        });
    }
}

/// How many workers `getKites` lists through `client` (a connection to Kontrol).
pub async fn list(client: &Client, timeout: Duration) -> Result<usize, kite::Error> {
    let v: Value = client
        .call(METHOD_GET_KITES, &[json!({ "query": workers_query() })])
        .timeout(timeout)
        .await?;
    Ok(v.get("kites").and_then(Value::as_array).map_or(0, Vec::len))
}
