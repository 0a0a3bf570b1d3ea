//! The state of one SockJS service below its router: the session table with its per-client
//! counts and watchdogs, the application handler that each new session starts, and the
//! request context (`Ctx`, request bodies) that the transports share. Imported by the
//! transports (`polling`, `streaming`, `websocket`) and by the router in `mod.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};

use axum::body::Body;
use axum::extract::Request;

use super::super::config::ServerConfig;
use super::super::frame::CloseReason;
use super::super::session::Session;
use super::super::ws::BoxFuture;

/// The application handler, started once for every new session.
pub(super) type Handler = Arc<dyn Fn(Session) -> BoxFuture + Send + Sync>;

pub(crate) struct Inner {
    pub(crate) config: ServerConfig,
    pub(super) sessions: Mutex<HashMap<String, Session>>,
    /// HTTP-transport sessions per client address (see [`ServerConfig::max_sessions_per_client`]).
    pub(super) per_client: Mutex<HashMap<IpAddr, usize>>,
    pub(super) handler: Handler,
}

impl Inner {
    pub(super) fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
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
    /// own task (see [`pump`](crate::sockjs::ws)) rather than spawned: messages then pass
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

    /// Counts a session open (when the kite's metrics are on) until the guard drops.
    pub(crate) fn count_session(
        &self,
        transport: &'static str,
    ) -> Option<crate::metrics::OpenConnection> {
        self.config
            .metrics
            .as_ref()
            .map(|m| m.session_opened(transport))
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
    ) -> Result<Session, CloseReason> {
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
            if let Some(m) = &self.config.metrics {
                m.session_refused();
            }
            return Err(CloseReason::new(1013, "Too many sessions"));
        }
        if let Some(ip) = client {
            per_client.insert(ip, of_client.saturating_add(1));
        }
        drop(per_client);
        let session = Session::new(id.to_string(), transport, ctx.remote, self.config.limits);
        table.insert(id.to_string(), session.clone());
        drop(table);
        tracing::debug!(session = id, transport, "sockjs session created");
        // Counted open until its watchdog removes it.
        let open = self.count_session(transport);
        let watch = watchdog(Arc::downgrade(self), session.clone(), client);
        tokio::spawn(async move {
            watch.await;
            drop(open);
        });
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
    session.close_with(CloseReason::new(1000, "Session timed out"));
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
