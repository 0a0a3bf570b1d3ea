//! Kontrol: the registry and token authority of a kite mesh, itself a kite; its storage;
//! and the kite's side of it (register, find kites, tokens).
//!
//! Bottom to top (a module imports only those on its left): `cache`, `register_url`,
//! `query`, `storage` ← `keys` (verifier and token caches) ← `config` (options, method
//! names, answers), `metrics` (its counters, the timed storage) ← `state` (the `Kontrol`
//! handle) ← `key_pairs` ← `heartbeats` ← `register`, `lookup` (the dnode handlers) ←
//! `http`, `ui` (the live view) ← `service` (builds Kontrol and installs it all). `client` (the kite's side over dnode) needs only `config`;
//! `client_http` (its HTTP registration) sits above `client`.

mod cache;
mod client;
mod client_http;
mod config;
mod heartbeats;
mod http;
mod key_pairs;
mod keys;
mod lookup;
pub mod metrics;
mod options;
pub mod query;
mod register;
mod register_mode;
mod register_url;
mod service;
mod state;
pub mod storage;
mod ui;

pub use client::{KONTROL_REDIAL_MAX, RENEW_BEFORE, RETRY_INTERVAL};
pub use config::{
    allow_all_machines, KiteWithToken, KontrolConfig, MachineCheck, RegisterResult, METHOD_GET_KEY,
    METHOD_GET_KITES, METHOD_GET_TOKEN, METHOD_REGISTER, METHOD_REGISTER_MACHINE,
    METHOD_UNREGISTER,
};
pub use options::KontrolOptions;
pub use register_mode::RegisterMode;
pub use state::Kontrol;
pub use storage::{Event, KiteRecord, Storage, StorageError, StorageResult};
