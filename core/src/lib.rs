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
//! | [`sockjs`] | SockJS 0.3.3 server (axum) and client (websocket, XHR polling) |
//!
//! The dnode, server, client, authentication and Kontrol layers build on [`sockjs`].

pub mod sockjs;
