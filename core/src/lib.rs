//! # kite
//!
//! A Rust implementation of [Kite](https://github.com/koding/kite), the micro-service
//! framework: every kite is both an RPC server and a client, speaking dnode-style JSON over
//! SockJS, authenticating callers with JWTs and finding other kites through Kontrol.
//!
//! The crate is layered; each layer only uses the ones below it:
//!
//! | module | layer |
//! |---|---|
//! | [`protocol`] | IO-free wire types: Kite identity, call options, responses, errors |
//! | [`dnode`] | dnode messages, callbacks across the wire, argument decoding |
//! | [`sockjs`] | SockJS 0.3.3 server (axum) and client (websocket, XHR polling) |
//! | [`server`] | the [`Kite`]: methods, handlers, authentication, default methods |
//! | [`client`] | [`Client`] and [`Connection`]: dialing, calls, callbacks, events |
//! | [`auth`] | JWT kite keys and tokens: verification, minting, the kite.key file |
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
pub mod protocol;
pub mod server;
pub mod sockjs;
pub mod tls;

pub use client::{Client, Connection};
pub use dnode::{Arguments, Callback, Function};
pub use error::{DialCause, DialError, Error};
pub use protocol::{ErrorKind, KiteError};
pub use server::{Config, Kite, MethodHandling, Request, WeakKite};
