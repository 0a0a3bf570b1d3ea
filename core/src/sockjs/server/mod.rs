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
//!
//! Bottom to top: `http` (fixed responses, headers) ← `sessions` (the session table, the
//! request context) ← `polling` ← `streaming`, and `websocket` ← this router; `serve` runs
//! an app on a listener.
#![deny(clippy::arithmetic_side_effects)]

mod http;
mod polling;
mod serve;
mod sessions;
mod streaming;
mod websocket;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ::http::Method;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;

use super::config::ServerConfig;
use super::session::Session;
use sessions::{Ctx, Handler, Inner};

pub use serve::{serve, tls_config, ServeOptions};

/// Longest server or session id segment accepted in a URL.
const MAX_ID_LEN: usize = 256;

/// One SockJS service: its options, its session table and the application handler that is
/// started for every new session. Cheap to clone.
#[derive(Clone)]
pub struct SockJsServer {
    inner: Arc<Inner>,
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
