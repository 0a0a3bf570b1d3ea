//! # kite-rs for Node.js
//!
//! The Node binding of kite-rs, built with napi-rs: glue only, every protocol decision is the
//! core's (crate `kite`): configuration overrides, register modes, error codes and log
//! records come from it. JavaScript gets the whole peer.
//!
//! The modules form layers; each imports only modules listed above it (`lib.rs` only declares
//! them and re-exports the classes):
//!
//! | module | role |
//! |---|---|
//! | [`jsfn`] | JavaScript functions kept for later calls; `Keepalive` (keeps Node running) |
//! | [`js`] | the parts written in JavaScript (`lib/`): the `KiteError` class, the bridge factory |
//! | [`errors`] | `KiteError`s (the JavaScript class of `lib/errors.js`) from and to wire errors, codes from `kite::Error::code` |
//! | [`logging`] | the core's log records (`kite::logging`) to a JavaScript logger (`setLogger`) or stderr |
//! | [`traces`] | a traced request's span through its JavaScript handler to the calls it makes |
//! | [`types`] | plain objects: `KiteIdentity`, `Auth`, `TellOptions`, `RegisterResult`, `KiteQuery` |
//! | [`options`] | `KiteOptions` and the kite they configure (through `kite::server::Options`) |
//! | [`bridge`] | the queue of work for the JavaScript thread and the tables of kept functions (any thread) |
//! | [`convert`] | JavaScript ↔ JSON values, functions ↔ dnode callbacks |
//! | [`request`] | the native side of `Request` objects (`lib/request.js`), `Connection`, `tell` |
//! | [`dispatch`] | the JavaScript thread's side of the bridge: creating it, running jobs, settling calls |
//! | [`routes`] | JavaScript HTTP route handlers |
//! | [`method`] | `Method` (pre/post handlers, final functions, settings); JavaScript handlers for the core |
//! | [`client`] | `Client` (dial, dial forever, `tell`, events) |
//! | [`state`] | what a `Kite` holds, shared with its `Kontrol`: listening, clients, closing |
//! | [`kite`] | `Kite` (handlers, events, serving, clients) |
//! | [`kontrol`] | `Kontrol` (running one) and the kite's side of it (register modes, `getKites`, tokens) |

// Functions exported to JavaScript (`#[napi]`) are called from JS, never from Rust: the
// lib's unit-test build would call them dead.
#![cfg_attr(test, allow(dead_code))]

#[macro_use]
extern crate napi_derive;

/// The addon's allocator (Rust allocations only; V8 keeps its own).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every kite of the addon runs on the core's runtime, [`kite::runtime::builder`] (fair to
/// thousands of connections at once), instead of napi-rs's default one. Runs when the addon
/// loads; should the runtime fail to start, napi-rs builds its default one on first use.
#[napi_derive::module_init]
fn init_runtime() {
    if let Ok(rt) = ::kite::runtime::builder().build() {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

mod bridge;
mod client;
mod convert;
mod dispatch;
mod errors;
mod js;
mod jsfn;
mod kite;
mod kontrol;
mod logging;
mod method;
mod options;
mod proxy;
mod request;
mod routes;
mod state;
mod traces;
mod types;

pub use client::{Client, ClientOptions};
pub use kite::{HandleCounts, Kite};
pub use kontrol::{Kontrol, KontrolOptions};
pub use method::{Method, MethodOptions, ThrottleOptions};
pub use options::{KiteOptions, TlsOptions};
pub use request::Connection;
pub use routes::{HttpRequestObject, HttpResponseObject};
pub use types::{Auth, KiteIdentity, KiteQuery, RegisterResult, TellOptions};
