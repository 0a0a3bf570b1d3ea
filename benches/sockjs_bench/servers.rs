//! The two servers under test, on the load generator's runtime: plain tokio-tungstenite
//! and kite's SockJS layer, each with `/echo`, `/push` and `/sink`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{future, SinkExt, StreamExt, TryStreamExt};
use kite::sockjs::{serve, ServerConfig, Session, SockJsServer};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// Messages received by the `/sink` applications (both servers).
pub static SINK_RECEIVED: AtomicU64 = AtomicU64::new(0);

/// The plain tokio-tungstenite server: `/echo`, `/push`, `/sink`.
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
pub async fn plain_server(listener: TcpListener, size: usize) {
    let payload: Arc<str> = "p".repeat(size).into();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let payload = payload.clone();
        tokio::spawn(async move {
            let mut path = String::new();
            let cb = |req: &Request, resp: Response| {
                path = req.uri().path().to_string();
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else {
                return;
            };
            match path.as_str() {
                "/echo" => {
                    // The tokio-tungstenite echo example: forward() feeds while messages are
                    // ready and flushes when the read side would block.
                    let (write, read) = ws.split();
                    let _ = read
                        .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
                        .forward(write)
                        .await;
                }
                "/push" => {
                    let mut ws = ws;
                    'outer: loop {
                        for _ in 0..64 {
                            if ws.feed(Message::text(payload.to_string())).await.is_err() {
                                break 'outer;
                            }
                        }
                        if ws.flush().await.is_err() {
                            break;
                        }
                    }
                }
                "/sink" => {
                    let mut ws = ws;
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_text() {
                            SINK_RECEIVED.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                _ => {}
            }
        });
    }
}

/// The SockJS services `/echo`, `/push`, `/sink`, served by `kite::sockjs::serve`.
pub async fn sockjs_server(listener: TcpListener, size: usize) {
    let config = ServerConfig::default();
    let echo = SockJsServer::new(config.clone(), |session: Session| async move {
        while let Some(msg) = session.recv().await {
            if session.send(msg).await.is_err() {
                break;
            }
        }
    });
    let payload: Arc<str> = "p".repeat(size).into();
    let push = SockJsServer::new(config.clone(), move |session: Session| {
        let payload = payload.clone();
        async move { while session.send(payload.to_string()).await.is_ok() {} }
    });
    let sink = SockJsServer::new(config, |session: Session| async move {
        while session.recv().await.is_some() {
            SINK_RECEIVED.fetch_add(1, Ordering::Relaxed);
        }
    });
    let app = axum::Router::new()
        .merge(echo.router("/echo"))
        .merge(push.router("/push"))
        .merge(sink.router("/sink"));
    if let Err(e) = serve(listener, app, Default::default()).await {
        eprintln!("sockjs server failed: {e}");
    }
}
