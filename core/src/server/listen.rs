//! Serving: the kite's HTTP app (`/kite` plus extra routes), listening, and the URLs the
//! kite is reached at.

use std::net::SocketAddr;
use std::sync::Arc;

use super::kite::{lock, Kite};
use crate::peer::{Connection, Dispatch};
use crate::sockjs::{ServeOptions, Session, SockJsServer};
use crate::Error;

/// `GET /metrics`: the kite's registry in the Prometheus text format.
fn metrics_route(metrics: Arc<crate::metrics::Metrics>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
                    metrics.encode(),
                )
            }
        }),
    )
}

impl Kite {
    /// Serves a session opened elsewhere (a tunnel a proxy asked for) as an accepted
    /// connection: its calls are authenticated like any other. Returns when it ends.
    pub async fn serve_session(&self, session: Session) {
        self.clone().accept(session).await
    }

    /// Serves an accepted session until it ends.
    async fn accept(self, session: Session) {
        let dispatch: Arc<dyn Dispatch> = Arc::new(self.clone());
        let conn = Connection::new(session, dispatch, self.peer_config(), false, None);
        conn.run().await;
    }

    /// Adds HTTP routes served beside `/kite` (e.g. a health check).
    pub fn merge_routes(&self, router: axum::Router) {
        let mut r = lock(&self.inner.routes);
        *r = std::mem::take(&mut *r).merge(router);
    }

    /// The kite's HTTP app: the `/kite` SockJS service plus the extra routes.
    pub fn router(&self) -> axum::Router {
        let sockjs = {
            let mut s = lock(&self.inner.sockjs);
            s.get_or_insert_with(|| {
                // Weak: the kite owns this server (a strong handle would keep both alive
                // forever); a session that arrives after the kite is gone is closed.
                let kite = self.downgrade();
                let mut config = self.config().sockjs.clone();
                config.metrics = self.metrics().map(|m| m.sockjs().clone());
                SockJsServer::new(config, move |session: Session| {
                    let kite = kite.upgrade();
                    async move {
                        match kite {
                            Some(kite) => kite.accept(session).await,
                            None => {
                                session.close();
                            }
                        }
                    }
                })
            })
            .clone()
        };
        let extra = lock(&self.inner.routes).clone();
        let app = extra.merge(sockjs.router("/kite"));
        match self.metrics() {
            Some(metrics) => app.merge(metrics_route(metrics.clone())),
            None => app,
        }
    }

    /// Binds the configured IP and port (0 = ephemeral) and serves in the background.
    /// Returns the bound address; [`Kite::port`] and [`Kite::ready`] report it too.
    pub async fn listen(&self) -> Result<SocketAddr, Error> {
        let c = self.config();
        self.listen_on(&c.ip, c.port).await
    }

    /// [`Kite::listen`] on `ip` and `port` (0 = ephemeral) instead of the configured ones.
    pub async fn listen_on(&self, ip: &str, port: u16) -> Result<SocketAddr, Error> {
        let c = self.config();
        let listener = tokio::net::TcpListener::bind((ip, port)).await?;
        let addr = listener.local_addr()?;
        let app = self.router();
        let options = ServeOptions {
            header_read_timeout: c.header_read_timeout,
            max_connections: c.max_connections,
            shutdown: self.inner.closed.clone(),
            tls: match &c.tls {
                Some((cert, key)) => Some(crate::sockjs::server::tls_config(cert, key)?),
                None => None,
            },
        };
        // A listening kite stays alive until closed, handles or not.
        let serving = self.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::sockjs::serve(listener, app, options).await {
                tracing::error!(error = %e, "kite server stopped");
            }
            drop(serving);
        });
        tracing::info!(kite = %self.identity(), %addr, "serving");
        self.inner.bound.send_replace(Some(addr));
        Ok(addr)
    }

    /// Serves until [`Kite::close`] is called and its drain is over.
    pub async fn run(&self) -> Result<(), Error> {
        self.listen().await?;
        self.inner.closed.cancelled().await;
        Ok(())
    }

    /// The bound port, once listening.
    pub fn port(&self) -> Option<u16> {
        self.inner.bound.borrow().map(|a| a.port())
    }

    /// Waits until the kite is listening; returns its address.
    pub async fn ready(&self) -> SocketAddr {
        let mut rx = self.inner.bound.subscribe();
        loop {
            if let Some(a) = *rx.borrow_and_update() {
                return a;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The URL to register to Kontrol, what kites on other hosts dial:
    /// [`Config::register_url`](crate::Config::register_url) (`KITE_REGISTER_URL`) when set,
    /// else `http(s)://HOST:PORT/kite` where HOST is the bound address or, when listening on
    /// every interface, the machine's first non-loopback address
    /// ([`addrs::register_host`](super::addrs::register_host)). None until listening.
    pub fn register_url(&self) -> Option<String> {
        if let Some(u) = self.config().register_url.clone() {
            return Some(u);
        }
        self.register_url_from(&super::addrs::interface_addrs())
    }

    /// [`Kite::register_url`] with the interface list given (tests inject one).
    pub fn register_url_from(&self, interfaces: &[super::addrs::InterfaceAddr]) -> Option<String> {
        let addr = (*self.inner.bound.borrow())?;
        let c = self.config();
        if let Some(u) = c.register_url.clone() {
            return Some(u);
        }
        let scheme = if c.tls.is_some() { "https" } else { "http" };
        let host = super::addrs::url_host(super::addrs::register_host(addr.ip(), interfaces));
        Some(format!("{scheme}://{host}:{}/kite", addr.port()))
    }

    /// The URL to dial this kite from the same host: `http(s)://HOST:PORT/kite`
    /// (127.0.0.1 when listening on all interfaces). Register [`Kite::register_url`].
    pub fn url(&self) -> Option<String> {
        let addr = (*self.inner.bound.borrow())?;
        let scheme = if self.config().tls.is_some() {
            "https"
        } else {
            "http"
        };
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            super::addrs::url_host(addr.ip())
        };
        Some(format!("{scheme}://{host}:{}/kite", addr.port()))
    }

    /// The end of [`Kite::close`]: stops serving and closes every connection.
    pub(crate) fn finish_close(&self) {
        self.inner.closed.cancel();
        // What the kite owns that may hold the kite (its SockJS service, the Kontrol
        // client's state) goes, so that a closed kite is freed with its last handle.
        let sockjs = lock(&self.inner.sockjs).take();
        drop(sockjs);
        self.clear_extensions();
    }
}
