//! Kontrol's shared state: the `Kontrol` handle, what it holds (kite, storage, caches,
//! live registrations) and the storage-error mapping; below every part of the service.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::KontrolConfig;
use super::keys::{TokenCache, VerifierCache};
use super::storage::{KiteRecord, Storage, StorageError};
use crate::protocol::KiteError;
use crate::server::Kite;

pub(super) struct Registration {
    pub(super) generation: u64,
    pub(super) alive: Arc<Notify>,
    /// The registered record.
    pub(super) record: KiteRecord,
    /// The kite key it registered with: only that key may unregister it.
    pub(super) key: String,
    /// When it registered (the age the `/ui` page shows).
    pub(super) since: std::time::SystemTime,
}

pub(crate) struct Inner {
    pub(crate) kite: Kite,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: KontrolConfig,
    pub(crate) tokens: TokenCache,
    pub(crate) verifiers: VerifierCache,
    pub(super) registrations: Mutex<HashMap<String, Registration>>,
    pub(super) generation: AtomicU64,
    pub(super) closed: CancellationToken,
    /// Kontrol's own metrics, when its kite's are on.
    pub(super) metrics: Option<super::metrics::KontrolMetrics>,
    /// Storage failures seen so far. After one, every heartbeating kite is written to
    /// storage at its next heartbeat instead of at its next periodic refresh: a database
    /// that failed may come back without it (a crash empties PostgreSQL's unlogged kite
    /// table), and the periodic refresh can be two heartbeats away.
    pub(super) storage_faults: AtomicU64,
}

/// Kontrol: the registry and token authority. Cheap to clone.
#[derive(Clone)]
pub struct Kontrol {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Kontrol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kontrol")
            .field("kite", &self.inner.kite)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Inner {
    /// Changes after a storage failure, or when storage may have lost registrations
    /// ([`Storage::epoch`]).
    pub(super) fn storage_generation(&self) -> u64 {
        self.storage_faults
            .load(std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(self.storage.epoch())
    }

    /// Counts a storage failure (see `storage_faults`).
    pub(super) fn storage_failed(&self) {
        self.storage_faults
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a storage failure and maps it to the caller's error.
    pub(super) fn storage_err(&self, e: StorageError) -> anyhow::Error {
        self.storage_failed();
        tracing::error!(error = %e, "kontrol storage");
        KiteError::generic(format!("kontrol storage: {e}")).into()
    }
}
