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
//! | [`bridge`] | how tokio threads call into JavaScript (one weak threadsafe function per kite), the trampoline and its `Request` class |
//! | [`convert`] | JavaScript ↔ JSON values, functions ↔ dnode callbacks |
//! | [`errors`] | `KiteError`s: `Error`s whose `code` is the kite error kind |

#[macro_use]
extern crate napi_derive;

/// The addon's allocator (Rust allocations only; V8 keeps its own).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bridge;
mod client;
mod convert;
mod errors;
mod kite;
mod kontrol;
mod method;
mod request;

pub use client::{Client, ClientOptions};
pub use kite::{HandleCounts, Kite, KiteOptions, TlsOptions};
pub use kontrol::{KiteQuery, Kontrol, KontrolOptions, RegisterResult};
pub use method::{Method, MethodOptions, ThrottleOptions};
pub use request::{Auth, Connection, KiteIdentity, TellOptions};

use napi::bindgen_prelude::Object;
use napi::Env;

/// Makes an `Error` that reaches a caller with this kite error kind when a handler throws it:
/// `throw kiteError('argumentError', 'want a number')`. `appCode` travels as the wire
/// error's `code`.
#[napi(ts_return_type = "KiteError")]
pub fn kite_error<'e>(
    env: &'e Env,
    code: String,
    message: String,
    app_code: Option<String>,
) -> napi::Result<Object<'e>> {
    let mut e = ::kite::protocol::KiteError::new(::kite::ErrorKind::parse(&code), message);
    if let Some(c) = app_code {
        e.code = c;
    }
    errors::kite_error_object(env, &e)
}
