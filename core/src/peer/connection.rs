//! The connection, what it shares with the other connections of its kite
//! ([`PeerConfig`]), and what it hands up ([`Dispatch`], [`Incoming`], [`Reply`]). The
//! read loop, the calls and the replies are in the sibling modules.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio_util::sync::CancellationToken;

use super::table::Table;
use crate::dnode::{Arguments, BoxFuture, Callback, FunctionSink, Path};
use crate::protocol::{Auth, CallOptions, Kite as KiteIdentity, KiteError};
use crate::sockjs::Session;

/// Serves the calls a connection receives. The server layer implements it with its
/// method table; a connection only passes calls up and sends back what it is given.
pub trait Dispatch: Send + Sync + 'static {
    /// Serves one incoming call, answering through `call.reply` (dropping it unanswered
    /// sends nothing: the caller times out).
    fn dispatch(&self, call: Incoming) -> BoxFuture<'static, ()>;

    /// A connection opened (before its first message is read).
    fn connected(&self, _conn: &Connection) {}

    /// The caller made its first request: its identity is known ([`Connection::remote_kite`]).
    fn first_request(&self, _conn: &Connection) {}

    /// A connection ended; its pending calls have failed with `disconnect`.
    fn disconnected(&self, _conn: &Connection) {}
}

/// What every connection of one kite shares, by reference: the identity sent with its
/// calls and the limits it keeps.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The local identity, sent as `kite` in the options of every call.
    pub identity: KiteIdentity,
    /// Default timeout of outgoing calls.
    pub timeout: Duration,
    /// Most entries in a connection's callback table.
    pub max_callbacks: usize,
    /// Most incoming calls served at once per connection (reading pauses beyond).
    pub max_calls_in_flight: usize,
    /// Most bytes of incoming calls served at once per connection.
    pub max_bytes_in_flight: usize,
    /// Serve incoming calls one at a time, in order.
    pub sequential: bool,
    /// Cancelled when the owning kite closes: every connection closes with it.
    pub closed: CancellationToken,
    /// What the connections count, when the kite's metrics are on.
    pub metrics: Option<crate::metrics::PeerMetrics>,
    /// Send the trace context with calls and continue the callers' traces
    /// ([`crate::telemetry`]).
    pub tracing: bool,
}

pub(crate) struct Inner {
    pub(super) session: Session,
    pub(super) dispatch: Arc<dyn Dispatch>,
    pub(super) config: Arc<PeerConfig>,
    /// We dialed this connection: calls on it are trusted (no authentication).
    pub(super) dialed: bool,
    pub(super) table: Table,
    pub(super) remote: ArcSwap<KiteIdentity>,
    pub(super) first_request: std::sync::atomic::AtomicBool,
    pub(super) closed: CancellationToken,
    /// Credentials sent with our calls.
    pub(super) auth: ArcSwapOption<Auth>,
    /// Stops the `kite.heartbeat` pings running for this connection: one at a time.
    pub(super) heartbeat: Mutex<Option<CancellationToken>>,
    pub(super) token_expired: OnceLock<Arc<dyn Fn() + Send + Sync>>,
}

/// A connection to a remote kite, accepted or dialed. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.remote_kite().to_string())
            .field("transport", &self.inner.session.transport())
            .field("dialed", &self.inner.dialed)
            .finish()
    }
}

impl Connection {
    /// A connection over `session` whose incoming calls go to `dispatch`. `dialed`: we
    /// opened it (calls on it are not authenticated); `auth`: credentials for our calls.
    pub fn new(
        session: Session,
        dispatch: Arc<dyn Dispatch>,
        config: Arc<PeerConfig>,
        dialed: bool,
        auth: Option<Auth>,
    ) -> Connection {
        Connection {
            inner: Arc::new(Inner {
                table: Table::new(config.max_callbacks, config.metrics.clone()),
                heartbeat: Mutex::new(None),
                session,
                dispatch,
                config,
                dialed,
                remote: ArcSwap::from_pointee(KiteIdentity::default()),
                first_request: std::sync::atomic::AtomicBool::new(false),
                closed: CancellationToken::new(),
                auth: ArcSwapOption::new(auth.map(Arc::new)),
                token_expired: OnceLock::new(),
            }),
        }
    }

    /// The remote kite's identity (learned from its first request, or set when dialing).
    pub fn remote_kite(&self) -> KiteIdentity {
        KiteIdentity::clone(&self.inner.remote.load())
    }

    /// Sets the remote kite's identity (a dialer knows whom it dialed).
    pub fn set_remote_kite(&self, k: KiteIdentity) {
        self.inner.remote.store(Arc::new(k));
    }

    /// Sends `auth` with the calls this side makes on the connection (e.g. a server calling
    /// back a client with its own kite key).
    pub fn set_auth(&self, auth: Option<Auth>) {
        self.inner.auth.store(auth.map(Arc::new));
    }

    /// Runs `f` when a call on this connection fails because our token expired (set once;
    /// the dialing client renews its token).
    pub fn on_token_expired(&self, f: Arc<dyn Fn() + Send + Sync>) {
        let _ = self.inner.token_expired.set(f);
    }

    /// The SockJS transport in use (`websocket`, `xhr-polling`, …).
    pub fn transport(&self) -> &'static str {
        self.inner.session.transport()
    }

    /// Whether we dialed this connection.
    pub fn is_dialed(&self) -> bool {
        self.inner.dialed
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Waits until the connection ends.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await
    }

    /// Closes the connection. Idempotent.
    pub fn close(&self) {
        self.inner.session.close();
    }

    /// A number naming this connection among the live ones (equal for clones), for tables
    /// keyed by connection.
    pub fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Number of entries in the callback table (functions passed and calls awaiting a
    /// response), for leak checks.
    pub fn callback_count(&self) -> usize {
        self.inner.table.len()
    }

    /// Cancelled when the connection ends (what [`Incoming`] requests observe).
    pub fn cancel_token(&self) -> CancellationToken {
        // The connection's own token: a request only observes it, so a child token per
        // request would only add a lock and an allocation.
        self.inner.closed.clone()
    }

    /// A token for a new `kite.heartbeat` on this connection, stopping the previous one
    /// (a peer cannot pile up ping tasks; the reference keeps one heartbeat too).
    pub fn replace_heartbeat(&self) -> CancellationToken {
        let token = self.inner.closed.child_token();
        let previous = self
            .inner
            .heartbeat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(token.clone());
        if let Some(p) = previous {
            p.cancel();
        }
        token
    }

    /// The connection as a sink for the remote functions received on it.
    pub(super) fn sink(&self) -> Weak<dyn FunctionSink> {
        let arc: Arc<dyn FunctionSink> = self.inner.clone();
        Arc::downgrade(&arc)
    }
}

impl FunctionSink for Inner {
    fn call_function(
        &self,
        id: u64,
        args: serde_json::Value,
        callbacks: Vec<(Path, Callback)>,
    ) -> BoxFuture<'_, Result<(), KiteError>> {
        Box::pin(async move {
            let text = self
                .table
                .encode_callback_call(id, args, callbacks)
                .map_err(|e| KiteError::new(e.kind(), e.to_string()))?;
            if self.closed.is_cancelled() {
                return Err(KiteError::new(
                    crate::protocol::ErrorKind::SendError,
                    "connection is closed",
                ));
            }
            self.session
                .send(text)
                .await
                .map_err(|e| KiteError::new(crate::protocol::ErrorKind::SendError, e.to_string()))
        })
    }
}

/// How the caller sent its arguments (`withArgs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgsShape {
    /// An array: the argument list (Go, kite-rs).
    List,
    /// A single non-array value (kite.js `tell("m", 5)`).
    Single,
    /// Null or absent: no arguments.
    Absent,
}

/// One call received on a connection, as handed to [`Dispatch`](super::Dispatch).
#[derive(Debug)]
pub struct Incoming {
    /// The method called.
    pub method: String,
    /// A fresh request id (16 alphanumerics), for logs and error responses.
    pub id: String,
    /// The caller's options: its identity and authentication (`withArgs` moved to `args`).
    pub options: CallOptions,
    /// The arguments, with the functions passed in them bound to this connection.
    pub args: Arguments,
    /// How the caller sent its arguments.
    pub shape: ArgsShape,
    /// The connection the call came on.
    pub connection: Connection,
    /// Where the answer goes.
    pub reply: Reply,
}

/// The answer to one incoming call (its `responseCallback`). Sending nothing (dropping it)
/// leaves the caller to its timeout.
#[derive(Debug)]
pub struct Reply {
    pub(super) conn: Connection,
    pub(super) response_id: Option<u64>,
    pub(super) request_id: String,
}
