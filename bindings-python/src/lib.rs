//! `kite_rs._native`: the Python binding of the kite core.
//!
//! Glue only: the protocol, networking, authentication and every default live in the `kite`
//! crate; this crate converts values, runs Python handlers and hooks on asyncio event loops
//! and turns errors into Python exceptions. The Python package (`python/kite_rs`) re-exports
//! these classes with the exception classes and typing stubs.
//!
//! The modules form layers: each imports only modules listed above it; `lib.rs` only declares
//! them and registers the classes.
//!
//! | module | role |
//! |---|---|
//! | [`lifecycle`] | no Python from our threads once the interpreter shuts down |
//! | [`errors`] | exceptions <-> wire errors (kinds from `kite::Error::code`); `Failure` of futures |
//! | [`values`] | JSON <-> Python objects without functions |
//! | [`identity`] | `KiteInfo`, `Auth` |
//! | [`logging`] | the core's log records (`kite::logging`) to Python `logging` |
//! | [`bridge`] | one job queue per asyncio loop, woken through a socket the loop watches; worker threads |
//! | [`traces`] | a traced request's span in its handler task's context; `flush_traces` |
//! | [`arg`] | outgoing values with functions inside |
//! | [`outbox`] | the ordered calls of received remote functions |
//! | [`convert`] | Python objects <-> dnode arguments, functions in both directions; `RemoteFunction` |
//! | [`config`] | `Kite(**options)` through `kite::server::Options` |
//! | [`signature`] | handler signatures read at registration: role, parameters, annotation checks |
//! | [`shared`] | what a kite's handlers, clients and hooks share; hooks on the kite's loop |
//! | [`client`] | `Client` and `Connection` |
//! | [`request`] | `Request` |
//! | [`reply`] | what a handler produced, `Reply` |
//! | [`handler`] | Python handlers: async and thread-pool calls |
//! | [`hooks`] | authenticators and HTTP route handlers, run on the kite's loop |
//! | [`method`] | `Method`, `MethodHandling`, registering a handler |
//! | [`registry`] | the kite's side of Kontrol: register modes (`Kite::register_with`), kites, tokens |
//! | [`signalling`] | WebRTC signalling and proxy registration for the `Kite` class |
//! | [`kite`] | the `Kite` class: configuration, methods, hooks, serving, clients |
//! | [`mesh`] | the `Kite` class's side of the mesh: Kontrol, proxies, WebRTC signalling |
//! | [`kontrol`] | `Kontrol` |

use pyo3::prelude::*;

// Requests, conversions and results are allocated on tokio threads and freed on the event
// loop's thread (and back); glibc's allocator spends a good share of a call consolidating
// such cross-thread frees, mimalloc does not. This covers Rust allocations only: Python
// objects keep Python's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod arg;
mod bridge;
mod client;
mod config;
mod convert;
mod errors;
mod handler;
mod hooks;
mod identity;
mod kite;
mod kontrol;
mod lifecycle;
mod logging;
mod mesh;
mod method;
mod outbox;
mod registry;
mod reply;
mod request;
mod shared;
mod signalling;
mod signature;
mod traces;
mod values;

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    bridge::configure_runtime();
    lifecycle::install(m)?;
    logging::install(py);
    m.add_class::<kite::Kite>()?;
    m.add_class::<method::Method>()?;
    m.add_class::<kontrol::Kontrol>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Connection>()?;
    m.add_class::<request::Request>()?;
    m.add_class::<identity::KiteInfo>()?;
    m.add_class::<identity::Auth>()?;
    m.add_class::<convert::RemoteFunction>()?;
    m.add_class::<hooks::PyHttpRequest>()?;
    m.add_class::<method::PyMethodHandling>()?;
    m.add_function(wrap_pyfunction!(traces::flush_traces, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
