//! # kite-rs for Node.js
//!
//! The Node binding of kite-rs, built with napi-rs: glue only, every protocol decision is the
//! core's (crate `kite`). JavaScript gets the whole peer:
//!
//! | module | classes |
//! |---|---|
//! | [`kite`] | `Kite` (options, handlers, events, serving, clients) |
//! | [`method`] | `Method` (pre/post handlers, final functions, settings); JavaScript handlers for the core |
//! | [`client`] | `Client` (dial, dial forever, `tell`, events) |
//! | [`kontrol`] | `Kontrol` (running one); the types of `register`, `getKites`, `getToken` |
//! | [`request`] | the native side of request objects, `Connection`, `tell` |
//! | [`bridge`] | how tokio threads call into JavaScript (one weak threadsafe function per kite); callbacks and listeners that throw are reported, never fatal |
//! | [`js`] | the parts written in JavaScript (`lib/`): the `KiteError` class, `Request` objects, `invoke` |
//! | [`logging`] | the core's log records to a JavaScript logger (`setLogger`) or stderr |
//! | [`convert`] | JavaScript ↔ JSON values, functions ↔ dnode callbacks |
//! | [`errors`] | `KiteError`s (the JavaScript class of `lib/errors.js`) from and to wire errors |

#[macro_use]
extern crate napi_derive;

/// The addon's allocator (Rust allocations only; V8 keeps its own).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bridge;
mod client;
mod convert;
mod errors;
mod js;
mod kite;
mod kontrol;
mod logging;
mod method;
mod request;
mod routes;

pub use client::{Client, ClientOptions};
pub use kite::{HandleCounts, Kite, KiteOptions, TlsOptions};
pub use kontrol::{KiteQuery, Kontrol, KontrolOptions, RegisterResult};
pub use method::{Method, MethodOptions, ThrottleOptions};
pub use request::{Auth, Connection, KiteIdentity, TellOptions};
pub use routes::{HttpRequestObject, HttpResponseObject};
