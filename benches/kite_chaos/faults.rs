//! One fault and the recovery from it: Kontrol killed (`kill -9`) and restarted, PostgreSQL
//! crashed and started again, etcd killed and started again; meanwhile a probe dials
//! Kontrol afresh every 100 ms and asks `getKites`, so that the time until Kontrol answers
//! again (and lists every worker) is not hidden behind a client's redial backoff.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kite::Kite;
use tokio_util::sync::CancellationToken;

use crate::load::{list, Registrations};
use crate::servers::{Db, KontrolProcess};

/// Between two probes.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// A probe's dial, and its `getKites`, each get this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The faults a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    KillKontrol,
    CrashPostgres,
    RestartEtcd,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillKontrol => "kill -9 kontrol",
            Fault::CrashPostgres => "crash postgres",
            Fault::RestartEtcd => "restart etcd",
        }
    }
}

/// What a fault came to (times from the moment the server was back, unless said).
#[derive(Debug, Clone)]
pub struct Recovery {
    pub fault: Fault,
    /// From the fault until the server was back (restarted and ready).
    pub down: Duration,
    /// Until a fresh connection's `getKites` was answered.
    pub answers: Option<Duration>,
    /// Until every worker was registered again: each one's registration after the fault
    /// (Kontrol restarted), or `getKites` listing all of them (a database restarted).
    pub registered: Option<Duration>,
    /// Probes that failed from the fault until Kontrol answered again.
    pub probe_failures: usize,
    /// Worker registrations from the fault on.
    pub register_events: usize,
}

/// Probe results: when, and how many workers `getKites` listed (`None`: it failed).
type Probes = Arc<Mutex<Vec<(Instant, Option<usize>)>>>;

fn probe_loop(kite: Kite, url: String, probes: Probes, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.is_cancelled() {
            tick.tick().await;
            let c = kite.client(&url);
            let r = match c.dial_timeout(PROBE_TIMEOUT).await {
                Ok(()) => list(&c, PROBE_TIMEOUT).await.ok(),
                Err(_) => None,
            };
            c.close();
            probes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((Instant::now(), r));
        }
    });
}

/// The servers a fault acts on.
pub struct Target<'a> {
    pub kontrol: &'a mut KontrolProcess,
    pub db: &'a mut Db,
}

/// Injects `fault`, keeps the server down for `downtime`, brings it back and waits until
/// every one of `workers` is registered again (or `give_up` after it is back).
pub async fn run(
    fault: Fault,
    target: Target<'_>,
    prober: &Kite,
    registrations: &Registrations,
    workers: usize,
    downtime: Duration,
    give_up: Duration,
) -> Result<Recovery, String> {
    let probes: Probes = Arc::default();
    let stop = CancellationToken::new();
    let _stop_probes = stop.clone().drop_guard();
    let t0 = Instant::now();
    probe_loop(
        prober.clone(),
        target.kontrol.url(),
        probes.clone(),
        stop.clone(),
    );
    inject(fault, target, downtime).await?;
    let back = Instant::now();
    let deadline = back + give_up;
    let registered_at = loop {
        let at = match fault {
            Fault::KillKontrol => {
                let first = registrations.first_since(workers, t0);
                first
                    .iter()
                    .copied()
                    .collect::<Option<Vec<_>>>()
                    .and_then(|all| all.into_iter().max())
            }
            _ => lock(&probes)
                .iter()
                .find(|(at, n)| *at >= back && *n == Some(workers))
                .map(|(at, _)| *at),
        };
        if at.is_some() || Instant::now() >= deadline {
            break at;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The probe that answered after the server was back, if it has not yet.
    while Instant::now() < deadline
        && !lock(&probes)
            .iter()
            .any(|(at, n)| *at >= back && n.is_some())
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let probes = lock(&probes).clone();
    let answered_at = probes
        .iter()
        .find(|(at, n)| *at >= back && n.is_some())
        .map(|(at, _)| *at);
    let since_back = |at: Instant| at.saturating_duration_since(back);
    Ok(Recovery {
        fault,
        down: back - t0,
        answers: answered_at.map(since_back),
        registered: registered_at.map(since_back),
        probe_failures: probes
            .iter()
            .filter(|(at, n)| n.is_none() && answered_at.is_none_or(|a| *at <= a))
            .count(),
        register_events: registrations.count_since(t0),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Brings the server down, waits `downtime`, brings it back (ready).
async fn inject(fault: Fault, target: Target<'_>, downtime: Duration) -> Result<(), String> {
    match fault {
        Fault::KillKontrol => {
            target.kontrol.kill().await;
            tokio::time::sleep(downtime).await;
            target.kontrol.start().await
        }
        Fault::CrashPostgres => {
            target.db.crash_postgres().await?;
            tokio::time::sleep(downtime).await;
            target.db.resume_postgres().await
        }
        Fault::RestartEtcd => {
            target.db.stop_etcd()?;
            tokio::time::sleep(downtime).await;
            target.db.restart_etcd().await
        }
    }
}
