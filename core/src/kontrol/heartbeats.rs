//! Liveness: the heartbeat watch of each registered kite (dnode or HTTP), Kontrol's own
//! record refresh and the cleaner of expired rows. Above `state`; used by the handlers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::config::heartbeat_secs;
use super::state::{Inner, Kontrol, Registration};
use super::storage::KiteRecord;

impl Kontrol {
    /// Keeps Kontrol's own record fresh (like any heartbeating kite's) for as long as it
    /// runs, so that no cleaner — its own or another Kontrol's on shared storage — drops it.
    pub(super) fn spawn_self_refresh(&self, record: KiteRecord) {
        let weak = Arc::downgrade(&self.inner);
        let period = Duration::from_secs(heartbeat_secs(&self.inner.config))
            .min(self.inner.config.expire_after / 2)
            .max(Duration::from_millis(10));
        let closed = self.inner.closed.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = closed.cancelled() => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = inner.storage.upsert(&record).await {
                    inner.storage_failed();
                    tracing::warn!(error = %e, "cannot refresh Kontrol's own record");
                }
            }
        });
    }

    pub(super) fn spawn_cleaner(&self) {
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.config.heartbeat_interval;
        let closed = self.inner.closed.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = closed.cancelled() => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                let age = inner.config.expire_after;
                match inner.storage.expire(age).await {
                    Ok(gone) if !gone.is_empty() => {
                        tracing::info!(count = gone.len(), "expired kites removed")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        inner.storage_failed();
                        tracing::warn!(error = %e, "cleaner could not reach storage")
                    }
                }
            }
        });
    }

    /// Starts (or restarts) the liveness watch of a registered kite; returns what heartbeats
    /// notify.
    pub(crate) fn watch_heartbeats(&self, record: &KiteRecord, key: &str) -> Arc<Notify> {
        let kite = &record.kite;
        let alive = Arc::new(Notify::new());
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
        self.inner
            .registrations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                kite.id.clone(),
                Registration {
                    generation,
                    alive: alive.clone(),
                    record: record.clone(),
                    key: key.to_string(),
                    since: std::time::SystemTime::now(),
                },
            );
        let weak = Arc::downgrade(&self.inner);
        let record = record.clone();
        let kite = kite.clone();
        let notify = alive.clone();
        tokio::spawn(async move {
            let Some(inner) = weak.upgrade() else { return };
            // Heartbeats come every `beat` (what kites are asked for, whole seconds).
            let beat = Duration::from_secs(heartbeat_secs(&inner.config));
            let grace = inner.config.heartbeat_interval.max(beat) + inner.config.heartbeat_delay;
            // Storage must see the kite alive within `window`: an etcd lease lasts at least
            // interval + delay, and the cleaner removes kites older than `expire_after` (half
            // of it leaves room for the clocks of Kontrols sharing storage). A heartbeat
            // refreshes storage unless the next one is due half a beat before the window
            // closes, so refreshes are at most `window - beat/2` apart.
            let window = grace.min(inner.config.expire_after / 2);
            let fresh_for = window.saturating_sub(beat + beat / 2);
            let closed = inner.closed.clone();
            // Storage failures and restarts seen when it was last refreshed: after another,
            // the next heartbeat refreshes it (the database may have come back without it).
            let mut faults_seen = inner.storage_generation();
            drop(inner);
            let mut last_refresh = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = notify.notified() => {
                        let Some(inner) = weak.upgrade() else { return };
                        // Unregistered (or registered again): its old heartbeats must not
                        // write it back.
                        if !is_current(&inner, &kite.id, generation) {
                            return;
                        }
                        let faults = inner.storage_generation();
                        if last_refresh.elapsed() > fresh_for || faults != faults_seen {
                            // Counted as done only once storage took it: a failed refresh
                            // is tried again at the next heartbeat.
                            let refreshed = refresh(&inner, &record).await;
                            if refreshed {
                                last_refresh = tokio::time::Instant::now();
                                faults_seen = faults;
                            } else {
                                inner.storage_failed();
                            }
                        }
                    }
                    _ = tokio::time::sleep(grace) => break,
                    _ = closed.cancelled() => return,
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            let current = {
                let mut regs = inner
                    .registrations
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let current = regs
                    .get(&kite.id)
                    .is_some_and(|r| r.generation == generation);
                if current {
                    regs.remove(&kite.id);
                }
                current
            };
            if current {
                tracing::info!(kite = %kite, "no heartbeat; kite removed");
                if let Err(e) = inner.storage.delete(&kite).await {
                    tracing::warn!(kite = %kite, error = %e, "could not remove kite");
                }
            }
        });
        alive
    }

    /// A heartbeat for an HTTP-registered kite; false when Kontrol does not know it.
    pub(crate) fn http_heartbeat(&self, id: &str) -> bool {
        let regs = self
            .inner
            .registrations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match regs.get(id) {
            Some(r) => {
                r.alive.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Marks a heartbeating kite alive in storage, writing it back when storage lost it; false
/// when storage failed.
async fn refresh(inner: &Inner, record: &KiteRecord) -> bool {
    let kite = &record.kite;
    match inner.storage.touch(kite).await {
        Ok(true) => true,
        // Removed behind our back while its heartbeats arrive (another Kontrol's cleaner, a
        // lost etcd lease, a database restored without it): write it back.
        Ok(false) => {
            tracing::info!(kite = %kite, "heartbeating kite missing from storage; registering it again");
            // Others may be missing too: have every kite written back at its next heartbeat.
            inner.storage_failed();
            match inner.storage.upsert(record).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(kite = %kite, error = %e, "could not register kite again");
                    false
                }
            }
        }
        Err(e) => {
            tracing::warn!(kite = %kite, error = %e, "could not refresh kite");
            false
        }
    }
}

fn is_current(inner: &Inner, id: &str, generation: u64) -> bool {
    inner
        .registrations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .is_some_and(|r| r.generation == generation)
}
