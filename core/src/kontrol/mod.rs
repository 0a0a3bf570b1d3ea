//! Kontrol: the registry and token authority of a kite mesh, itself a kite, and its storage.

pub mod storage;

pub use storage::{Event, KiteRecord, Storage, StorageError, StorageResult};
