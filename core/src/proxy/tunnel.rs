//! The tunnel proxy (the reference's `tunnelproxy`): a kite named `tunnelproxy` for kites
//! that can only dial out. Such a kite keeps a connection to the proxy and calls
//! `register`, which answers its public URL, `{scheme}://{public host}/proxy/{kite id}`.
//! Every SockJS session a client opens there (websocket or XHR) gets its own tunnel: the
//! proxy calls the kite's `kite.tunnel` with
//! `{"url": "ws://{public host}/tunnel/{token}/000/{token}/websocket"}` (a random token per
//! tunnel, valid until the tunnel opens), the kite dials that SockJS websocket, and the
//! proxy copies messages between the client's session and the tunnel, without parsing
//! them. Unlike the reference, whose tunnel URL repeats the client's transport path
//! (websocket clients only), XHR clients work too.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Request};
use axum::response::IntoResponse;
use axum::routing::any;
use http::StatusCode;
use rand::Rng;
use serde_json::json;
use tokio::sync::oneshot;
use tower::ServiceExt;

use super::register::METHOD_TUNNEL;
use super::reverse::METHOD_PROXY_REGISTER;
use super::table::Registry;
use crate::protocol::KiteError;
use crate::sockjs::{CloseReason, ServerConfig, Session, SockJsServer};
use crate::{Error, Kite, Method, Request as KiteRequest};

/// Version of the tunnel proxy kite (the reference's).
pub const TUNNEL_PROXY_VERSION: &str = "0.0.2";

/// Options of a [`TunnelProxy`] (the reference's `tunnelproxy` flags).
#[derive(Debug, Clone)]
pub struct TunnelProxyConfig {
    /// `host:port` of the public URLs and of the tunnel URLs kites dial (`-public-host`).
    /// Default: empty — `127.0.0.1:{the port the kite listens on}`.
    pub public_host: String,
    /// Scheme of the public URLs (`https` makes tunnels `wss`). Default: `http`.
    pub scheme: String,
    /// Most kites registered at once. Default: 10,000.
    pub max_kites: usize,
    /// Most tunnels (open or being opened) per kite; further clients are refused. Default: 1,000.
    pub max_tunnels_per_kite: usize,
    /// Time a kite has to answer `kite.tunnel` and dial the tunnel. Default: 10 s.
    pub tunnel_timeout: Duration,
    /// SockJS options of the public `/proxy/{id}` services and of `/tunnel`.
    pub sockjs: ServerConfig,
}

impl Default for TunnelProxyConfig {
    fn default() -> Self {
        TunnelProxyConfig {
            public_host: String::new(),
            scheme: "http".into(),
            max_kites: 10_000,
            max_tunnels_per_kite: 1_000,
            tunnel_timeout: Duration::from_secs(10),
            sockjs: ServerConfig::default(),
        }
    }
}

/// What the proxy keeps for a registered kite.
struct Private {
    /// The SockJS service of the kite's public URL, mounted at `/proxy/{id}`.
    router: axum::Router,
    /// Its tunnels, open or being opened.
    tunnels: AtomicUsize,
}

struct Shared {
    kite: crate::WeakKite,
    config: TunnelProxyConfig,
    kites: Arc<Registry<Arc<Private>>>,
    /// Tunnels being opened: token → the SockJS service at `/tunnel/{token}` the kite
    /// dials, which hands the kite's session over.
    pending: Mutex<HashMap<String, axum::Router>>,
    /// Tunnels open (both sessions joined).
    open: AtomicUsize,
}

/// A tunnel proxy kite. Cheap to clone.
#[derive(Clone)]
pub struct TunnelProxy {
    kite: Kite,
    shared: Arc<Shared>,
}

impl TunnelProxy {
    /// Makes `kite` (usually named [`super::TUNNEL_PROXY_NAME`]) a tunnel proxy: the
    /// `register` method and the `/proxy/` and `/tunnel/` routes. Listen with [`Kite::listen`].
    pub fn new(kite: Kite, config: TunnelProxyConfig) -> Result<TunnelProxy, Error> {
        let shared = Arc::new(Shared {
            kite: kite.downgrade(),
            kites: Registry::new(config.max_kites),
            config,
            pending: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
        });
        let s = shared.clone();
        kite.add_method(Method::new(
            METHOD_PROXY_REGISTER,
            move |req: KiteRequest| {
                let s = s.clone();
                async move { s.register(&req) }
            },
        ))?;
        let s = shared.clone();
        let public = move |Path(params): Path<Vec<(String, String)>>, req: Request| {
            let s = s.clone();
            async move {
                let id = params.first().map(|(_, v)| v.clone()).unwrap_or_default();
                match s.kites.get(&id) {
                    Some((_, private)) => private.router.clone().oneshot(req).await.into_response(),
                    None => (
                        StatusCode::NOT_FOUND,
                        format!("no kite with id {id:?} is registered to this tunnel proxy"),
                    )
                        .into_response(),
                }
            }
        };
        let s = shared.clone();
        let tunnel = move |Path(params): Path<Vec<(String, String)>>, req: Request| {
            let s = s.clone();
            async move {
                let token = params.first().map(|(_, v)| v.clone()).unwrap_or_default();
                let router = s
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&token)
                    .cloned();
                match router {
                    Some(r) => r.oneshot(req).await.into_response(),
                    None => (StatusCode::NOT_FOUND, "unknown tunnel").into_response(),
                }
            }
        };
        kite.merge_routes(
            axum::Router::new()
                .route("/proxy/{id}", any(public.clone()))
                .route("/proxy/{id}/{*rest}", any(public))
                .route("/tunnel/{token}/{*rest}", any(tunnel)),
        );
        Ok(TunnelProxy { kite, shared })
    }

    /// The proxy kite.
    pub fn kite(&self) -> &Kite {
        &self.kite
    }

    /// Ids of the kites registered now, sorted.
    pub fn kites(&self) -> Vec<String> {
        self.shared.kites.ids()
    }

    /// Tunnels open now, and tunnels being opened.
    pub fn tunnels(&self) -> (usize, usize) {
        let pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        (self.shared.open.load(Ordering::Acquire), pending)
    }
}

/// A random token of 32 letters and digits (a SockJS session id).
fn token() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// Counts a tunnel of a kite while it lives.
struct Slot(Arc<Private>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.tunnels.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Removes a pending tunnel when its opening ends, whichever way.
struct Pending<'a>(&'a Shared, String);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl Shared {
    fn public_host(&self) -> String {
        if !self.config.public_host.is_empty() {
            return self.config.public_host.clone();
        }
        let port = self.kite.upgrade().and_then(|k| k.port()).unwrap_or(0);
        format!("127.0.0.1:{port}")
    }

    fn register(self: &Arc<Self>, req: &KiteRequest) -> Result<String, KiteError> {
        let id = req.caller().id.clone();
        let url = format!("{}://{}/proxy/{id}", self.config.scheme, self.public_host());
        // Registered already on this connection: its service (and sessions) stay.
        if self
            .kites
            .get(&id)
            .is_some_and(|(c, _)| c.key() == req.client().key())
        {
            return Ok(url);
        }
        let weak = Arc::downgrade(self);
        let kite_id = id.clone();
        let server = SockJsServer::new(self.config.sockjs.clone(), move |session: Session| {
            let (s, id) = (weak.upgrade(), kite_id.clone());
            async move {
                if let Some(s) = s {
                    s.serve_client(&id, session).await;
                }
            }
        });
        let private = Arc::new(Private {
            router: server.router(&format!("/proxy/{id}")),
            tunnels: AtomicUsize::new(0),
        });
        self.kites.enter(&id, req.client(), private)?;
        tracing::info!(kite = %req.caller(), %url, "kite registered to the tunnel proxy");
        Ok(url)
    }

    /// A client opened a session on kite `id`'s public URL: open a tunnel through the kite
    /// and join the two sessions until either ends.
    async fn serve_client(&self, id: &str, client: Session) {
        let refuse = |why: &str| {
            tracing::debug!(kite = id, "tunnel refused: {why}");
            client.close_with(CloseReason::new(3000, why));
        };
        let Some((conn, private)) = self.kites.get(id) else {
            return refuse("the kite left the proxy");
        };
        if private.tunnels.fetch_add(1, Ordering::AcqRel) >= self.config.max_tunnels_per_kite {
            private.tunnels.fetch_sub(1, Ordering::AcqRel);
            return refuse("too many tunnels to this kite");
        }
        let _slot = Slot(private);
        let token = token();
        let (tx, rx) = oneshot::channel();
        let tx = Mutex::new(Some(tx));
        // The first session on `/tunnel/{token}` is the tunnel (another one is closed);
        // the service lives until the tunnel ends.
        let arrived = SockJsServer::new(self.config.sockjs.clone(), move |session: Session| {
            let tx = tx.lock().unwrap_or_else(|e| e.into_inner()).take();
            async move {
                match tx.map(|tx| tx.send(session.clone())) {
                    Some(Ok(())) => session.closed().await,
                    _ => {
                        session.close_with(CloseReason::new(3000, "unknown tunnel"));
                    }
                }
            }
        });
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), arrived.router(&format!("/tunnel/{token}")));
        let pending = Pending(self, token.clone());
        let ws = if self.config.scheme == "https" {
            "wss"
        } else {
            "ws"
        };
        let url = format!(
            "{ws}://{}/tunnel/{token}/000/{token}/websocket",
            self.public_host()
        );
        let timeout = self.config.tunnel_timeout;
        let opened = tokio::time::timeout(timeout, async {
            conn.call(METHOD_TUNNEL, [json!({ "url": url })], Some(timeout))
                .await
                .map_err(|e| e.to_string())?;
            rx.await.map_err(|_| "the proxy is closing".to_string())
        })
        .await;
        drop(pending);
        let tunnel = match opened {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return refuse(&format!("the kite did not open a tunnel: {e}")),
            Err(_) => return refuse("the kite did not open a tunnel in time"),
        };
        self.open.fetch_add(1, Ordering::AcqRel);
        join(&client, &tunnel).await;
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Copies messages both ways until either session ends, then closes both.
async fn join(a: &Session, b: &Session) {
    let copy = |from: Session, to: Session| async move {
        while let Some(m) = from.recv().await {
            if to.send(m).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = copy(a.clone(), b.clone()) => {}
        _ = copy(b.clone(), a.clone()) => {}
    }
    a.close();
    b.close();
}
