//! The SockJS server: one [`SockJsServer`] per service, mounted into any axum app with
//! [`SockJsServer::router`] at any prefix (the kite mounts its service at `/kite`).
//!
//! Routes under the service prefix (SockJS 0.3.3):
//! `/` greeting, `/info`, `/iframe*.html`, raw `/websocket`, and
//! `/{server}/{session}/{transport}` for `websocket`, `xhr`, `xhr_send`, `xhr_streaming`,
//! `eventsource`, `htmlfile`, `jsonp` and `jsonp_send`.
//!
//! HTTP-based sessions live in a table keyed by session id; a watchdog task per session
//! removes it once no request has been attached for the disconnect delay. Websocket
//! sessions live exactly as long as their connection.
#![deny(clippy::arithmetic_side_effects)]

mod http;
mod polling;
mod serve;
mod streaming;
mod websocket;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};

use ::http::Method;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;

use super::config::ServerConfig;
use super::session::Session;

pub use serve::{serve, tls_config, ServeOptions};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
type Handler = Arc<dyn Fn(Session) -> BoxFuture + Send + Sync>;

/// Longest server or session id segment accepted in a URL.
const MAX_ID_LEN: usize = 256;

/// One SockJS service: its options, its session table and the application handler that is
/// started for every new session. Cheap to clone.
#[derive(Clone)]
pub struct SockJsServer {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ServerConfig,
    sessions: Mutex<HashMap<String, Session>>,
    /// HTTP-transport sessions per client address (see [`ServerConfig::max_sessions_per_client`]).
    per_client: Mutex<HashMap<IpAddr, usize>>,
    handler: Handler,
}

impl std::fmt::Debug for SockJsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockJsServer")
            .field("config", &self.inner.config)
            .field("sessions", &self.session_count())
            .finish()
    }
}

impl SockJsServer {
    /// A service that runs `handler` once for every new session. When the handler returns,
    /// the session is closed (`3000 "Go away!"`) if it is still open.
    pub fn new<F, Fut>(config: ServerConfig, handler: F) -> Self
    where
        F: Fn(Session) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |s| Box::pin(handler(s)));
        Self {
            inner: Arc::new(Inner {
                config,
                sessions: Mutex::new(HashMap::new()),
                per_client: Mutex::new(HashMap::new()),
                handler,
            }),
        }
    }

    /// The service's options.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The axum router serving this service under `prefix` (e.g. `"/kite"`, or `""` for
    /// the root); merge it into a larger app with `Router::merge`:
    /// `Router::new().merge(server.router("/kite")).route("/health", get(health))`.
    ///
    /// (Routes are registered at full paths rather than with `Router::nest`, so that both
    /// `/kite` and `/kite/` reach the greeting as SockJS requires.)
    pub fn router(&self, prefix: &str) -> Router {
        let prefix = prefix.trim_end_matches('/').to_string();
        let state = Mounted {
            inner: self.inner.clone(),
            prefix: prefix.clone().into(),
        };
        let mut router = Router::new();
        if !prefix.is_empty() {
            router = router.route(&prefix, any(dispatch));
        }
        router
            .route(&format!("{prefix}/"), any(dispatch))
            .route(&format!("{prefix}/{{*rest}}"), any(dispatch))
            .with_state(state)
    }

    /// Number of HTTP-transport sessions in the session table.
    pub fn session_count(&self) -> usize {
        self.inner.table().len()
    }
}

impl Inner {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the application handler for a newly opened session (once).
    pub(crate) fn start(&self, session: &Session) {
        if session.mark_started() {
            let fut = (self.handler)(session.clone());
            let session = session.clone();
            tokio::spawn(async move {
                fut.await;
                session.close();
            });
        }
    }

    /// The application handler for a websocket session, to be driven by the connection's
    /// own task (see [`pump`](super::ws::pump)) rather than spawned: messages then pass
    /// between the socket and the application without waking another task. `None` if the
    /// handler was already started.
    pub(crate) fn start_inline(&self, session: &Session) -> Option<BoxFuture> {
        if !session.mark_started() {
            return None;
        }
        let fut = (self.handler)(session.clone());
        let session = session.clone();
        Some(Box::pin(async move {
            fut.await;
            session.close();
        }))
    }

    pub(crate) fn lookup(&self, id: &str) -> Option<Session> {
        self.table().get(id).cloned()
    }

    /// The session with this id, created (with its watchdog) if it does not exist and the
    /// session limits allow it (`Err`: the close frame that refuses it).
    pub(crate) fn get_or_create(
        self: &Arc<Self>,
        id: &str,
        transport: &'static str,
        ctx: &Ctx,
    ) -> Result<Session, super::CloseReason> {
        let mut table = self.table();
        if let Some(s) = table.get(id) {
            return Ok(s.clone());
        }
        let client = client_ip(&self.config, ctx);
        let mut per_client = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let of_client = client
            .and_then(|ip| per_client.get(&ip).copied())
            .unwrap_or(0);
        if table.len() >= self.config.max_sessions
            || of_client >= self.config.max_sessions_per_client
        {
            drop((table, per_client));
            tracing::debug!(?client, "sockjs session refused: too many sessions");
            return Err(super::CloseReason::new(1013, "Too many sessions"));
        }
        if let Some(ip) = client {
            per_client.insert(ip, of_client.saturating_add(1));
        }
        drop(per_client);
        let session = Session::new(id.to_string(), transport, ctx.remote, self.config.limits);
        table.insert(id.to_string(), session.clone());
        drop(table);
        tracing::debug!(session = id, transport, "sockjs session created");
        tokio::spawn(watchdog(Arc::downgrade(self), session.clone(), client));
        Ok(session)
    }

    /// Forgets a session counted for `client` (its watchdog ended).
    fn release(&self, client: Option<IpAddr>) {
        let Some(ip) = client else { return };
        let mut per_client = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_client.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_client.remove(&ip);
            }
        }
    }
}

/// The client's address: the connection's peer, or the first address of
/// `X-Forwarded-For` when the peer is one of the trusted proxies.
fn client_ip(config: &ServerConfig, ctx: &Ctx) -> Option<IpAddr> {
    let peer = ctx.remote.map(|a| a.ip());
    if !peer.is_some_and(|p| config.trusted_proxies.contains(&p)) {
        return peer;
    }
    ctx.req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .or(peer)
}

/// Removes a session once it has had no receiver for the disconnect delay (or at once
/// after a receiver was aborted).
async fn watchdog(server: Weak<Inner>, session: Session, client: Option<IpAddr>) {
    let delay = match server.upgrade() {
        Some(s) => s.config.disconnect_delay,
        None => return,
    };
    loop {
        let changed = session.changed().notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let (attached, expire_now) = session.watch_state();
        if expire_now {
            break;
        }
        if attached {
            changed.await;
            continue;
        }
        tokio::select! {
            _ = &mut changed => continue,
            _ = tokio::time::sleep(delay) => {
                let (attached, _) = session.watch_state();
                if !attached {
                    break;
                }
            }
        }
    }
    session.close_with(super::CloseReason::new(1000, "Session timed out"));
    if let Some(server) = server.upgrade() {
        let mut table = server.table();
        if table.get(session.id()).is_some_and(|s| s.ptr_eq(&session)) {
            table.remove(session.id());
        }
        drop(table);
        server.release(client);
    }
    tracing::debug!(session = session.id(), "sockjs session removed");
}

/// The request, split into what the transports need.
pub(crate) struct Ctx {
    pub(crate) server: Arc<Inner>,
    pub(crate) req: Request,
    pub(crate) remote: Option<SocketAddr>,
}

#[derive(Clone)]
struct Mounted {
    inner: Arc<Inner>,
    prefix: Arc<str>,
}

async fn dispatch(State(mounted): State<Mounted>, req: Request) -> Response {
    let server = mounted.inner;
    let full = req.uri().path();
    let path = full
        .strip_prefix(&*mounted.prefix)
        .unwrap_or(full)
        .to_string();
    let method = req.method().clone();
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let rest = path.strip_prefix('/').unwrap_or(&path);
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let config = &server.config;
    let ctx = Ctx {
        server: server.clone(),
        req,
        remote,
    };
    match parts.as_slice() {
        [] => http::greeting(&method),
        ["info"] => http::info(config, &method, ctx.req.headers()),
        ["websocket"] if config.websocket => websocket::raw(ctx).await,
        [page] if http::is_iframe(page) => http::iframe(config, &method, ctx.req.headers()),
        [server_id, session_id, transport] if valid_id(server_id) && valid_id(session_id) => {
            let session_id = session_id.to_string();
            match *transport {
                "websocket" if config.websocket => websocket::framed(ctx).await,
                "xhr" => {
                    with_options(ctx, &method, Method::POST, |c| polling::xhr(c, session_id)).await
                }
                "xhr_send" => {
                    with_options(ctx, &method, Method::POST, |c| {
                        polling::xhr_send(c, session_id)
                    })
                    .await
                }
                "xhr_streaming" => {
                    with_options(ctx, &method, Method::POST, |c| {
                        streaming::serve(c, session_id, streaming::Kind::XhrStreaming)
                    })
                    .await
                }
                "eventsource" => {
                    only(ctx, &method, Method::GET, |c| {
                        streaming::serve(c, session_id, streaming::Kind::EventSource)
                    })
                    .await
                }
                "htmlfile" => {
                    only(ctx, &method, Method::GET, |c| {
                        streaming::serve(c, session_id, streaming::Kind::HtmlFile)
                    })
                    .await
                }
                "jsonp" => only(ctx, &method, Method::GET, |c| polling::jsonp(c, session_id)).await,
                "jsonp_send" => {
                    only(ctx, &method, Method::POST, |c| {
                        polling::jsonp_send(c, session_id)
                    })
                    .await
                }
                _ => http::not_found(),
            }
        }
        _ => http::not_found(),
    }
}

/// Server and session ids: non-empty, no dots, not absurdly long.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && !s.contains('.')
}

async fn with_options<F, Fut>(ctx: Ctx, method: &Method, allowed: Method, f: F) -> Response
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Response>,
{
    if *method == Method::OPTIONS {
        return http::options(&ctx.server.config, ctx.req.headers(), "OPTIONS, POST");
    }
    if *method != allowed {
        return http::method_not_allowed("OPTIONS, POST");
    }
    f(ctx).await
}

async fn only<F, Fut>(ctx: Ctx, method: &Method, allowed: Method, f: F) -> Response
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Response>,
{
    if *method != allowed {
        return http::method_not_allowed(allowed.as_str());
    }
    f(ctx).await
}

/// Reads a request body up to `limit` bytes within `timeout`.
pub(crate) async fn read_body(
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<bytes::Bytes, BodyError> {
    let read = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(r) => r,
        Err(_) => return Err(BodyError::TimedOut),
    };
    match read {
        Ok(b) => Ok(b),
        Err(e) => {
            // `to_bytes` reports the limit through a `LengthLimitError` source.
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = src {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(BodyError::TooBig);
                }
                src = s.source();
            }
            Err(BodyError::Io)
        }
    }
}

pub(crate) enum BodyError {
    TooBig,
    Io,
    /// Not received within [`ServerConfig::body_read_timeout`].
    TimedOut,
}
