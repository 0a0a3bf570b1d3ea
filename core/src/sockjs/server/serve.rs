//! Serving an axum app over HTTP/1.1 with upgrades, the peer address as
//! [`ConnectInfo`](axum::extract::ConnectInfo), a timeout for clients that never finish
//! sending their request head, and graceful shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
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
    /// Serve HTTPS with this TLS configuration (see [`tls_config`]). Default: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections served at once; while this many are open, new ones wait in the listen
    /// backlog (they are not refused). Default: 20,000.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            shutdown: CancellationToken::new(),
            tls: None,
            max_connections: 20_000,
        }
    }
}

/// One of [`ServeOptions::max_connections`], held while the connection (or the websocket it
/// was upgraded to) lives; requests carry it in their extensions.
#[derive(Clone)]
pub(crate) struct ConnectionSlot(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// Serves `app` on `listener` until `options.shutdown` is cancelled, then waits up to 5 s
/// for open HTTP exchanges to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
) -> std::io::Result<()> {
    let tracker = tokio_util::task::TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(
        options
            .max_connections
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
    ));
    loop {
        // At the connection limit, wait for one to end before accepting the next.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = options.shutdown.cancelled() => break,
        };
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
        let shutdown = options.shutdown.clone();
        let timeout = options.header_read_timeout;
        match options.tls.clone() {
            None => {
                let slot = ConnectionSlot(Arc::new(slot));
                tracker.spawn(serve_connection(
                    stream, slot, remote, app, timeout, shutdown,
                ));
            }
            Some(tls) => {
                let slot = ConnectionSlot(Arc::new(slot));
                tracker.spawn(async move {
                    if plain_http_on_tls(&stream, timeout).await {
                        answer_plain_on_tls(stream).await;
                        return;
                    }
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, slot, remote, app, timeout, shutdown).await
                        }
                        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    // Open connections get a few seconds to finish; websockets are closed with the runtime.
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    Ok(())
}

/// Whether a client of a TLS port opened with plain text (an HTTP method) instead of a TLS
/// record (first byte 0x16).
async fn plain_http_on_tls(stream: &tokio::net::TcpStream, timeout: Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(timeout, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0].is_ascii_uppercase()
    )
}

/// What Go's `net/http` answers plain HTTP on a TLS port (a 400 that says so, then close),
/// as HTTP/1.1: websocket clients refuse a 1.0 status line before reading it.
async fn answer_plain_on_tls(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\n\r\n{}\n",
        crate::tls::PLAIN_ON_TLS_BODY
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn serve_connection<I>(
    io: I,
    slot: ConnectionSlot,
    remote: SocketAddr,
    app: Router,
    timeout: Duration,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut()
            .insert(ConnectInfo::<SocketAddr>(remote));
        req.extensions_mut().insert(slot.clone());
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
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
}

/// A TLS server configuration from PEM files: a certificate chain and its private key.
pub fn tls_config(cert: &Path, key: &Path) -> std::io::Result<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {e}"))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(&cert.display().to_string(), &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&cert.display().to_string(), &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(&key.display().to_string(), &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("TLS certificate", &e))?;
    Ok(Arc::new(config))
}
