//! Kontrol: the registry and token authority of a kite mesh, itself a kite; its storage;
//! and the kite's side of it (register, find kites, tokens).

mod cache;
mod client;
mod http;
mod keys;
mod options;
pub mod query;
mod register_mode;
mod register_url;
mod service;
pub mod storage;

pub use client::{RENEW_BEFORE, RETRY_INTERVAL};
pub use options::KontrolOptions;
pub use register_mode::RegisterMode;
pub use service::{
    allow_all_machines, KiteWithToken, Kontrol, KontrolConfig, MachineCheck, RegisterResult,
    METHOD_GET_KEY, METHOD_GET_KITES, METHOD_GET_TOKEN, METHOD_REGISTER, METHOD_REGISTER_MACHINE,
    METHOD_UNREGISTER,
};
pub use storage::{Event, KiteRecord, Storage, StorageError, StorageResult};
