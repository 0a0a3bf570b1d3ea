//! SockJS, the transport of every kite: a complete SockJS 0.3.3 server for axum and a
//! client (websocket, XHR polling, or both with fallback).
//!
//! No maintained Rust crate serves SockJS, so this module implements it by hand, following
//! the protocol's own test suite (`sockjs-protocol`) and sockjs-node where the protocol
//! leaves details open.
//!
//! Everything above this layer talks to a [`Session`]: `recv()`, `send()` and `close()`,
//! the same whatever the transport and on both the server and the client.
//!
//! ```no_run
//! use kite::sockjs::{SockJsServer, ServerConfig, Session};
//!
//! # async fn run() -> std::io::Result<()> {
//! let echo = SockJsServer::new(ServerConfig::default(), |session: Session| async move {
//!     while let Some(msg) = session.recv().await {
//!         if session.send(msg).await.is_err() {
//!             break;
//!         }
//!     }
//! });
//! let app = axum::Router::new().merge(echo.router("/echo"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! kite::sockjs::serve(listener, app, Default::default()).await
//! # }
//! ```

pub mod client;
mod config;
pub mod frame;
mod limits;
mod parts;
pub mod server;
mod session;
mod ws;

pub use client::{connect, ClientConfig, ConnectError, Transport};
pub use config::ServerConfig;
pub use frame::CloseReason;
pub use limits::{SendError, SessionLimits, TryRecvError, TrySendError, INBOUND_CAPACITY};
pub use server::{serve, ServeOptions, SockJsServer};
pub use session::Session;
