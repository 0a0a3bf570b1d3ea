//! Kontrol's storage: registered kites and Kontrol key pairs, behind one async trait
//! implemented by every backend (memory, SQLite, PostgreSQL, etcd). [`open`] opens the
//! backend a string names (`memory`, `sqlite:PATH`, `postgres://…`, `etcd://…`).
//!
//! Backends store and match; the Kontrol layer validates queries, applies version
//! constraints, shuffles results and mints tokens. A backend's `get` receives a query whose
//! fields are either empty (wildcard) or exact values — a version *constraint* has already
//! been removed from it and is applied by the caller.

#[cfg(feature = "etcd")]
pub mod etcd;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod spec;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use spec::{open, StorageSpec};

use std::time::Duration;

use futures_util::stream::BoxStream;

use crate::auth::KeyPair;
use crate::protocol::{Kite, KiteQuery};

/// A registered kite: its identity, URL and the id of the key pair its kite key is signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KiteRecord {
    /// Identity (every field non-empty, no `/`).
    pub kite: Kite,
    /// URL other kites dial.
    pub url: String,
    /// Id of the Kontrol key pair of the kite's kite key.
    pub key_id: String,
}

/// A change in the registry, for watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A kite registered (or its URL changed).
    Register(KiteRecord),
    /// A kite was removed (deregistered, heartbeats stopped, or expired).
    Deregister(Kite),
}

/// Storage failures. Messages are shown to callers, so they never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No such key pair.
    #[error("key pair not found")]
    KeyNotFound,
    /// The key pair exists but was deleted (soft): kites using it must be re-signed.
    #[error("key pair is deleted")]
    KeyDeleted,
    /// The database is unreachable or failed; Kontrol keeps running and retries.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The data is invalid for this backend.
    #[error("invalid data: {0}")]
    Invalid(String),
}

/// Result of storage operations.
pub type StorageResult<T> = Result<T, StorageError>;

/// The registry of kites. Every method is safe to call concurrently, from several Kontrol
/// processes sharing one database.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Inserts or replaces the kite (keyed by its id) and marks it alive now.
    async fn upsert(&self, record: &KiteRecord) -> StorageResult<()>;

    /// Marks the kite alive now (a heartbeat); `false` when it is not registered.
    async fn touch(&self, kite: &Kite) -> StorageResult<bool>;

    /// Removes the kite; `false` when it was not registered.
    async fn delete(&self, kite: &Kite) -> StorageResult<bool>;

    /// Kites matching `query`: every non-empty field must be equal (username is always
    /// set; `version` is exact here).
    async fn get(&self, query: &KiteQuery) -> StorageResult<Vec<KiteRecord>>;

    /// The kite with this id, if registered.
    async fn get_by_id(&self, id: &str) -> StorageResult<Option<KiteRecord>>;

    /// Removes kites not marked alive for `older_than` (a Kontrol that died cannot remove
    /// the kites it was watching); returns them.
    async fn expire(&self, older_than: Duration) -> StorageResult<Vec<Kite>>;

    /// Registry changes from now on, from every Kontrol sharing this storage.
    async fn watch(&self) -> StorageResult<BoxStream<'static, Event>>;

    /// Adds a key pair.
    async fn add_key(&self, pair: &KeyPair) -> StorageResult<()>;

    /// Soft-deletes a key pair: it is still found (as [`StorageError::KeyDeleted`]) so that
    /// kites using it can be re-signed.
    async fn delete_key(&self, id: &str) -> StorageResult<()>;

    /// The key pair with this id; `KeyDeleted` if it was deleted.
    async fn key_by_id(&self, id: &str) -> StorageResult<KeyPair>;

    /// The key pair with this public key (PEM, compared trimmed); `KeyDeleted` if deleted.
    async fn key_by_public(&self, public_pem: &str) -> StorageResult<KeyPair>;

    /// Key pairs that are not deleted, oldest first.
    async fn active_keys(&self) -> StorageResult<Vec<KeyPair>>;

    /// A count that changes when registrations may have been lost behind Kontrol's back
    /// (PostgreSQL restarted: a crash empties its unlogged kite table); Kontrol then writes
    /// every heartbeating kite back at its next heartbeat. Default: always 0.
    fn epoch(&self) -> u64 {
        0
    }
}

/// Whether `record` matches `query` (exact, non-empty fields only).
pub fn matches(record: &Kite, query: &KiteQuery) -> bool {
    record
        .values()
        .iter()
        .zip(query.values())
        .all(|(have, want)| want.is_empty() || *have == want)
}
