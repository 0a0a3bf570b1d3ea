//! Shared helpers for the integration tests: start servers on 127.0.0.1:0 and wait on
//! readiness, never on sleeps; [`peers`] runs the interop tests' peer processes.
#![allow(dead_code, missing_docs)]

pub mod peers;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use kite::sockjs::{serve, ServeOptions, ServerConfig, Session, SockJsServer};
use tokio_util::sync::CancellationToken;

/// Upper bound for any single wait in a test, so a failure never hangs the suite.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running HTTP server; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves `app` on an ephemeral port; returns once the listener is bound.
pub async fn start_app(app: axum::Router, options: ServeOptions) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = options.shutdown.clone();
    tokio::spawn(serve(listener, app, options));
    Running { addr, shutdown }
}

pub async fn echo(session: Session) {
    while let Some(msg) = session.recv().await {
        if session.send(msg).await.is_err() {
            break;
        }
    }
}

/// The echo service at `/echo` with `config`.
pub async fn start_echo(config: ServerConfig) -> (Running, SockJsServer) {
    let server = SockJsServer::new(config, echo);
    let running = start_app(server.router("/echo"), ServeOptions::default()).await;
    (running, server)
}

/// Fast timers so that heartbeat and disconnect behaviour is observable quickly.
pub fn fast_config() -> ServerConfig {
    ServerConfig {
        heartbeat_delay: Duration::from_millis(200),
        disconnect_delay: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

/// Awaits `f` with the test bound.
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .expect("timed out waiting")
}

/// Waits until `cond` holds, re-checking on a short timer (a readiness wait, bounded by WAIT).
pub async fn eventually(mut cond: impl FnMut() -> bool) {
    within(async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

pub fn sid() -> String {
    format!("{:016x}", rand::random::<u64>())
}
