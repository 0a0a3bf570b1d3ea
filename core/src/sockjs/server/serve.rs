//! Serving an axum app over HTTP/1.1 with upgrades, the peer address as
//! [`ConnectInfo`](axum::extract::ConnectInfo), a timeout for clients that never finish
//! sending their request head, and graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Options of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time a client has to send a complete request head; slower connections are closed.
    /// Default: 10 s.
    pub header_read_timeout: Duration,
    /// When cancelled, stop accepting and let open connections finish.
    /// Default: a token that is never cancelled.
    pub shutdown: CancellationToken,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            shutdown: CancellationToken::new(),
        }
    }
}

/// Serves `app` on `listener` until `options.shutdown` is cancelled, then waits up to 5 s
/// for open HTTP exchanges to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
) -> std::io::Result<()> {
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = options.shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let shutdown = options.shutdown.clone();
        tracker.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    // Open connections get a few seconds to finish; websockets are closed with the runtime.
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    Ok(())
}
