//! # kite
//!
//! A Rust implementation of [Kite](https://github.com/koding/kite), the micro-service
//! framework: every kite is both an RPC server and a client, speaking dnode-style JSON over
//! SockJS, authenticating callers with JWTs and finding other kites through Kontrol.
//!
//! The crate is layered; each layer only uses the ones below it, and no two files import
//! each other (`lib.rs` only declares and re-exports):
//!
//! | module | layer |
//! |---|---|
//! | [`protocol`] | IO-free wire types: Kite identity, call options, responses, errors |
//! | [`auth`], [`tls`], [`runtime`] | JWT kite keys and tokens; the TLS trust of dials; the tokio runtime kites serve best on |
//! | [`dnode`], [`metrics`] | dnode messages; values plus the functions beside them, at explicit paths. A kite's Prometheus registry and the handles each layer counts with |
//! | [`sockjs`] | SockJS 0.3.3 server (axum) and client (websocket, XHR polling) |
//! | [`Error`] | what a call, a dial or a kite operation fails with |
//! | [`telemetry`] | OTLP trace export and the W3C trace context carried in call options |
//! | [`peer`] | one dnode [`Connection`]: read loop, callback table, calls; hands incoming calls up through [`peer::Dispatch`] |
//! | [`server`] | the [`Kite`]: method table, authentication, [`Request`], default methods; implements `Dispatch` |
//! | [`client`] | [`Client`]: dialing, redialing, calls, events |
//! | [`kontrol`] | Kontrol: the registry service, its storage, and a kite's Kontrol client |
//! | [`proxy`] | reverse and tunnel proxies for kites behind NAT, and the kite's side of them |
//!
//! Every byte from the network is hostile. The modules that handle wire values (durations,
//! sizes, indices, counts: `protocol`, dnode messages, the SockJS session, frames and
//! server, the connection, the default methods, token and key checks, Kontrol's HTTP and
//! client) deny `clippy::arithmetic_side_effects`: their arithmetic is checked or
//! saturating, so nothing a peer sends can overflow into a panic.

pub mod auth;
pub mod client;
pub mod dnode;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod kontrol;
pub mod logging;
pub mod metrics;
pub mod peer;
pub mod protocol;
pub mod proxy;
pub mod runtime;
pub mod server;
pub mod sockjs;
pub mod telemetry;
pub mod tls;

pub use client::Client;
pub use dnode::{Arguments, Callback, Function, IntoPayload, Payload};
pub use error::{DialCause, DialError, Error};
pub use peer::Connection;
pub use protocol::{ErrorKind, KiteError};
pub use server::{Config, Kite, Method, MethodHandling, Request, WeakKite};
