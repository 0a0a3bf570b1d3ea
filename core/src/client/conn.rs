//! One kite connection: dnode over a SockJS [`Session`], the same on both ends (the side
//! that accepted can call the side that dialed). It owns the per-connection callback
//! table, matches responses to calls, and serves incoming calls with the local kite's
//! methods.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::Poll;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::dnode::{
    place, scrub, Arguments, Borrowed, BoxFuture, Callback, FunctionSink, LazyMessage, Message,
    MessageError, Method, Path, Segment,
};
use crate::protocol::json::nesting_depth;
use crate::protocol::{
    args_list, Auth, CallOptions, ErrorKind, Kite as KiteIdentity, KiteError, Response,
};
use crate::server::{Kite, Request};
use crate::sockjs::{Session, TryRecvError};
use crate::Error;

enum Entry {
    /// A function we passed; the remote may call it any number of times.
    User(Callback),
    /// The responseCallback of a call we made; removed at the response, timeout or disconnect.
    Response(oneshot::Sender<Arguments>),
}

pub(crate) struct Inner {
    session: Session,
    local: Kite,
    /// We dialed this connection: calls on it are trusted (no authentication).
    dialed: bool,
    next_id: AtomicU64,
    table: Mutex<HashMap<u64, Entry>>,
    remote: RwLock<KiteIdentity>,
    first_request: AtomicBool,
    closed: CancellationToken,
    /// Credentials sent with our calls.
    auth: RwLock<Option<Auth>>,
    /// Most entries in `table` ([`crate::Config::max_callbacks`]).
    max_callbacks: usize,
    /// Stops the `kite.heartbeat` pings running for this connection: one at a time.
    heartbeat: Mutex<Option<CancellationToken>>,
    token_expired: RwLock<Option<Arc<dyn Fn() + Send + Sync>>>,
}

/// A connection to a remote kite, accepted or dialed. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
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

/// A request id: 16 alphanumerics, like the reference's. Six random bits per character,
/// the two values beyond 62 drawn again (uniform, and no division).
fn random_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut id = String::with_capacity(16);
    while id.len() < 16 {
        let mut x: u64 = rand::random();
        for _ in 0..10 {
            if let Some(&c) = CHARS.get((x & 63) as usize) {
                if id.len() < 16 {
                    id.push(c as char);
                }
            }
            x >>= 6;
        }
    }
    id
}

impl Connection {
    pub(crate) fn new(
        local: Kite,
        session: Session,
        dialed: bool,
        auth: Option<Auth>,
    ) -> Connection {
        let max_callbacks = local.config().max_callbacks;
        Connection {
            inner: Arc::new(Inner {
                max_callbacks,
                heartbeat: Mutex::new(None),
                session,
                local,
                dialed,
                next_id: AtomicU64::new(0),
                table: Mutex::new(HashMap::new()),
                remote: RwLock::new(KiteIdentity::default()),
                first_request: AtomicBool::new(false),
                closed: CancellationToken::new(),
                auth: RwLock::new(auth),
                token_expired: RwLock::new(None),
            }),
        }
    }

    /// Serves an accepted session until it ends (the kite's SockJS handler).
    pub(crate) async fn accept(local: Kite, session: Session) {
        let conn = Connection::new(local, session, false, None);
        conn.run().await;
    }

    /// The remote kite's identity (learned from its first request, or set when dialing).
    pub fn remote_kite(&self) -> KiteIdentity {
        self.inner
            .remote
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_remote_kite(&self, k: KiteIdentity) {
        *self.inner.remote.write().unwrap_or_else(|e| e.into_inner()) = k;
    }

    /// Sends `auth` with the calls this side makes on the connection (e.g. a server calling
    /// back a client with its own kite key).
    pub fn set_auth(&self, auth: Option<Auth>) {
        *self.inner.auth.write().unwrap_or_else(|e| e.into_inner()) = auth;
    }

    pub(crate) fn on_token_expired(&self, f: Arc<dyn Fn() + Send + Sync>) {
        *self
            .inner
            .token_expired
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(f);
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

    /// Number of entries in the callback table (functions passed and calls awaiting a
    /// response), for leak checks.
    pub fn callback_count(&self) -> usize {
        self.inner
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub(crate) fn cancel_token(&self) -> CancellationToken {
        // The connection's own token: a request only observes it (`Request::cancelled`),
        // so a child token per request would only add a lock and an allocation.
        self.inner.closed.clone()
    }

    /// A token for a new `kite.heartbeat` on this connection, stopping the previous one
    /// (a peer cannot pile up ping tasks; the reference keeps one heartbeat too).
    pub(crate) fn replace_heartbeat(&self) -> CancellationToken {
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

    fn register(&self, entry: Entry) -> Result<u64, Error> {
        self.inner.register(entry).ok_or_else(|| {
            Error::Send(format!(
                "too many callbacks on this connection (limit {})",
                self.inner.max_callbacks
            ))
        })
    }

    /// Registers the callbacks of an outgoing value with [`place`]; when the callback
    /// table is full, registers none of them and fails.
    fn place_all(
        &self,
        value: &mut Value,
        callbacks: Vec<Callback>,
        prefix: &[Segment],
    ) -> Result<Vec<(u64, Path)>, Error> {
        self.inner
            .place_all(value, callbacks, prefix)
            .ok_or_else(|| {
                Error::Send(format!(
                    "too many callbacks on this connection (limit {})",
                    self.inner.max_callbacks
                ))
            })
    }

    fn remove(&self, id: u64) -> Option<Entry> {
        self.inner
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
    }

    async fn send(&self, msg: &Message) -> Result<(), Error> {
        self.send_text(msg.to_json()).await
    }

    async fn send_text(&self, text: String) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Send("connection is closed".into()));
        }
        self.inner
            .session
            .send(text)
            .await
            .map_err(|e| Error::Send(e.to_string()))
    }

    /// Calls `method` on the remote kite. `args` serializes to the argument list (an array;
    /// `()` sends none, as `[]`; any other value is one argument) and may contain [`Callback`]s.
    /// `timeout`: `None` for the kite's configured timeout (15 s by default).
    pub async fn call<T: Serialize + ?Sized>(
        &self,
        method: &str,
        args: &T,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        let (with_args, callbacks) = scrub(args).map_err(|e| Error::Send(e.to_string()))?;
        // No arguments are sent as `[]`: kite.js crashes on a null `withArgs`, Go takes both.
        let with_args = match with_args {
            Value::Array(_) => with_args,
            Value::Null => Value::Array(Vec::new()),
            other => Value::Array(vec![other]),
        };
        let (tx, rx) = oneshot::channel();
        let response_id = self.register(Entry::Response(tx))?;
        let mut options = json!({
            "kite": self.inner.local.identity(),
            "authentication": self.inner.auth.read().unwrap_or_else(|e| e.into_inner()).clone(),
            "withArgs": with_args,
            "responseCallback": crate::dnode::PLACEHOLDER,
        });
        let mut cb_paths = vec![(
            response_id,
            vec![Segment::Index(0), Segment::Key("responseCallback".into())],
        )];
        if let Some(w) = options.get_mut("withArgs") {
            let prefix = [Segment::Index(0), Segment::Key("withArgs".into())];
            match self.place_all(w, callbacks, &prefix) {
                Ok(paths) => cb_paths.extend(paths),
                Err(e) => {
                    self.remove(response_id);
                    return Err(e);
                }
            }
        }
        let msg = Message {
            method: Method::Name(method.to_string()),
            arguments: vec![options],
            callbacks: cb_paths,
        };
        if let Err(e) = self.send(&msg).await {
            self.remove(response_id);
            return Err(e);
        }
        let timeout = timeout.unwrap_or_else(|| self.inner.local.config().timeout);
        let result = tokio::select! {
            r = rx => r,
            _ = tokio::time::sleep(timeout) => {
                self.remove(response_id);
                return Err(Error::Timeout { method: method.to_string(), url: String::new(), after: timeout });
            }
        };
        let args = result.map_err(|_| Error::Disconnected)?;
        let out = parse_response(args);
        if let Err(Error::Remote(e)) = &out {
            if e.kind == ErrorKind::AuthenticationError && e.message.contains("token is expired") {
                let hook = self
                    .inner
                    .token_expired
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if let Some(h) = hook {
                    h();
                }
            }
        }
        out
    }

    /// Reads and dispatches messages until the session ends, then fails pending calls with
    /// `disconnect` and empties the callback table.
    pub(crate) async fn run(&self) {
        self.inner.local.fire_connect(self);
        let (sequential, max_calls, max_bytes) = {
            let c = self.inner.local.config();
            (
                c.disable_concurrency,
                c.max_calls_in_flight.max(1),
                c.max_bytes_in_flight.max(1),
            )
        };
        let local_closed = self.inner.local.inner.closed.clone();
        // Requests whose handlers are waiting (on I/O, a timer, a Python or JavaScript
        // handler, a call back to the caller…) stay in this task rather than in a task
        // each: their completions then wake one task per batch, and their responses leave
        // together, in one frame, instead of one frame per request. Each yields the size
        // of its message when done.
        let mut pending: FuturesUnordered<BoxFuture<'static, usize>> = FuturesUnordered::new();
        // Bytes of the messages of `pending`: with their number, bounded by the limits
        // (reading pauses while either is reached, slowing the peer down).
        let mut pending_bytes: usize = 0;
        loop {
            if pending.len() >= max_calls || pending_bytes >= max_bytes {
                tokio::select! {
                    Some(n) = pending.next() => pending_bytes = pending_bytes.saturating_sub(n),
                    _ = local_closed.cancelled() => { self.inner.session.close(); break }
                    _ = self.inner.session.closed() => break,
                }
                continue;
            }
            // Messages already waiting are taken without setting up the select below.
            let waiting = match self.inner.session.try_recv() {
                Ok(t) if !local_closed.is_cancelled() => Some(t),
                Err(TryRecvError::Closed) => break,
                _ => None,
            };
            let text = match waiting {
                Some(t) => t,
                None => tokio::select! {
                    t = self.inner.session.recv() => match t { Some(t) => t, None => break },
                    _ = local_closed.cancelled() => { self.inner.session.close(); break }
                    Some(n) = pending.next(), if !pending.is_empty() => {
                        pending_bytes = pending_bytes.saturating_sub(n);
                        continue
                    }
                },
            };
            // Only the size: messages carry credentials (kite keys, tokens).
            tracing::trace!(bytes = text.len(), "received");
            let size = text.len();
            let mut msg = match LazyMessage::parse(&text) {
                Ok(m) => m,
                Err(MessageError::Nested) => {
                    self.push_nested(text, &mut pending, &mut pending_bytes);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "dropping malformed message");
                    continue;
                }
            };
            match msg.method.clone() {
                Method::Callback(id) => {
                    let callbacks = std::mem::take(&mut msg.callbacks);
                    match msg.arguments() {
                        Ok(arguments) => self.run_callback(id, arguments, callbacks),
                        Err(MessageError::Nested) => {
                            self.push_nested(text, &mut pending, &mut pending_bytes)
                        }
                        Err(e) => tracing::debug!(error = %e, "dropping malformed message"),
                    }
                }
                Method::Name(name) => {
                    let Some(options) = call_options(&msg, &text) else {
                        if nesting_depth(text.as_bytes()) > crate::dnode::FAST_DEPTH {
                            self.push_nested(text, &mut pending, &mut pending_bytes);
                        } else {
                            tracing::debug!("dropping malformed message");
                        }
                        continue;
                    };
                    let callbacks = std::mem::take(&mut msg.callbacks);
                    let conn = self.clone();
                    let fut = async move {
                        conn.serve(name, options, callbacks).await;
                        size
                    };
                    if sequential {
                        fut.await;
                    } else {
                        // Most handlers finish without waiting: poll once here, and keep
                        // only a request that is still pending.
                        let mut fut: BoxFuture<'static, usize> = Box::pin(fut);
                        let waits = std::future::poll_fn(|cx| {
                            Poll::Ready(fut.as_mut().poll(cx).is_pending())
                        })
                        .await;
                        if waits {
                            pending_bytes = pending_bytes.saturating_add(size);
                            pending.push(fut);
                        }
                    }
                }
            }
        }
        self.inner.closed.cancel();
        // Requests still running see the cancellation and finish on their own task.
        if !pending.is_empty() {
            tokio::spawn(async move { while pending.next().await.is_some() {} });
        }
        // Dropping the senders fails every pending call with `disconnect`.
        let entries: Vec<Entry> = self
            .inner
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, e)| e)
            .collect();
        drop(entries);
        self.inner.local.fire_disconnect(self);
    }

    /// Queues a message nested deeper than the fast path parses, to be handled on a stack
    /// of its own, as one more request in flight.
    fn push_nested(
        &self,
        text: String,
        pending: &mut FuturesUnordered<BoxFuture<'static, usize>>,
        pending_bytes: &mut usize,
    ) {
        let size = text.len();
        let conn = self.clone();
        let deep = crate::dnode::on_big_stack(async move {
            conn.serve_nested(text).await;
            size
        });
        *pending_bytes = pending_bytes.saturating_add(size);
        pending.push(Box::pin(deep));
    }

    /// Handles a message nested deeper than the fast path parses (up to
    /// [`crate::dnode::MAX_DEPTH`] levels, like the reference), as [`Connection::run`]
    /// handles the others; runs on a stack of its own ([`crate::dnode::on_big_stack`]).
    async fn serve_nested(&self, text: String) {
        let msg = match Message::parse_nested(&text) {
            Ok(m) => m,
            Err(MessageError::TooDeep) => {
                // Deeper than the reference reads: refused, with an answer when the
                // (shallow) rest of the message says where to send it.
                let shallow = crate::protocol::json::truncate_nesting(&text, 16);
                if let Ok(Message {
                    method: Method::Name(name),
                    callbacks,
                    ..
                }) = Message::parse(&shallow)
                {
                    let refusal = KiteError::argument(format!(
                        "arguments nested deeper than {} levels",
                        crate::dnode::MAX_DEPTH
                    ));
                    self.serve(name, Err(refusal), callbacks).await;
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "dropping malformed message");
                return;
            }
        };
        match msg.method {
            Method::Callback(id) => self.run_callback(id, msg.arguments, msg.callbacks),
            Method::Name(name) => {
                let options = match msg.arguments.into_iter().next() {
                    Some(v @ Value::Object(_)) => serde_json::from_value::<CallOptions>(v)
                        .map_err(|e| KiteError::argument(format!("invalid call options: {e}"))),
                    _ => Err(KiteError::argument("call options must be an object")),
                };
                self.serve(name, options, msg.callbacks).await;
            }
        }
    }

    fn sink(&self) -> Weak<dyn FunctionSink> {
        let arc: Arc<dyn FunctionSink> = self.inner.clone();
        Arc::downgrade(&arc)
    }

    fn received(&self, arguments: Vec<Value>, callbacks: Vec<(u64, Path)>) -> Arguments {
        let functions = callbacks.into_iter().map(|(id, p)| (p, id)).collect();
        Arguments::received(arguments, functions, self.sink())
    }

    fn run_callback(&self, id: u64, arguments: Vec<Value>, callbacks: Vec<(u64, Path)>) {
        let args = self.received(arguments, callbacks);
        let mut table = self.inner.table.lock().unwrap_or_else(|e| e.into_inner());
        match table.get(&id) {
            Some(Entry::User(cb)) => {
                let cb = cb.clone();
                drop(table);
                cb.invoke(args);
            }
            Some(Entry::Response(_)) => {
                if let Some(Entry::Response(tx)) = table.remove(&id) {
                    drop(table);
                    let _ = tx.send(args);
                }
            }
            None => tracing::debug!(id, "call to unknown callback id ignored"),
        }
    }

    /// Serves one incoming call.
    async fn serve(
        &self,
        method: String,
        options: Result<CallOptions, KiteError>,
        callbacks: Vec<(u64, Path)>,
    ) {
        // Split the callbacks: the responseCallback, and functions inside withArgs.
        let mut response_id = None;
        let mut with_args_fns = Vec::new();
        for (id, path) in callbacks {
            let is_zero = matches!(path.first(), Some(Segment::Index(0)))
                || matches!(path.first(), Some(Segment::Key(k)) if k == "0");
            match (is_zero, path.get(1), path.len()) {
                (true, Some(Segment::Key(k)), 2) if k == "responseCallback" => {
                    response_id = Some(id)
                }
                (true, Some(Segment::Key(k)), _) if k == "withArgs" => {
                    with_args_fns.push((id, path[2..].to_vec()))
                }
                _ => tracing::debug!(id, "callback outside withArgs ignored"),
            }
        }
        let request_id = random_id();
        let span = tracing::debug_span!("request", method = %method, id = %request_id);
        let conn = self.clone();
        // In flight until its response is sent; refused once the kite is closing.
        let guard = self.inner.local.begin_call();
        async move {
            let outcome = match &guard {
                Some(_) => {
                    conn.handle(&method, &request_id, options, with_args_fns)
                        .await
                }
                None => Err(crate::server::closing_error().with_id(&request_id)),
            };
            let Some(response_id) = response_id else {
                tracing::debug!("call without responseCallback; result dropped");
                return;
            };
            let (result, error) = match outcome {
                Ok(v) => (v, None),
                Err(e) => (Value::Null, Some(e)),
            };
            if let Some(e) = &error {
                tracing::debug!(error = %e, "request failed");
            }
            conn.respond(response_id, result, error).await;
            drop(guard);
        }
        .instrument(span)
        .await
    }

    async fn respond(&self, response_id: u64, mut result: Value, mut error: Option<KiteError>) {
        // A result may carry functions (callbacks serialized by the handler).
        let prefix = [Segment::Index(0), Segment::Key("result".into())];
        let callbacks = match self.place_all(&mut result, Vec::new(), &prefix) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "response refused");
                result = Value::Null;
                error = Some(KiteError::new(ErrorKind::RequestLimitError, e.to_string()));
                Vec::new()
            }
        };
        let response = Response { error, result };
        // Written straight from the response (not through a `Value` of it).
        let text = Borrowed {
            method: &Method::Callback(response_id),
            arguments: &[&response],
            callbacks: &callbacks,
        }
        .to_json();
        if let Err(e) = self.send_text(text).await {
            tracing::debug!(error = %e, "could not send response");
        }
    }

    async fn handle(
        &self,
        method: &str,
        request_id: &str,
        options: Result<CallOptions, KiteError>,
        fns: Vec<(u64, Path)>,
    ) -> Result<Value, KiteError> {
        let with_id = |e: KiteError| {
            if e.id.is_empty() {
                e.with_id(request_id)
            } else {
                e
            }
        };
        let options = options.map_err(with_id)?;
        // The caller's identity is learned from its first request.
        if !self.inner.dialed && !self.inner.first_request.swap(true, Ordering::AcqRel) {
            self.set_remote_kite(options.kite.clone());
            self.inner.local.fire_first_request(self);
        }
        let Some(m) = self.inner.local.method(method) else {
            return Err(KiteError::method_not_found(method));
        };
        // A scalar withArgs is one argument; function paths then gain a leading index.
        let is_array = options.with_args.is_array();
        let fns = fns
            .into_iter()
            .map(|(id, mut p)| {
                if !is_array {
                    p.insert(0, Segment::Index(0));
                }
                (id, p)
            })
            .collect();
        let shape = match &options.with_args {
            Value::Array(_) => crate::server::ArgsShape::List,
            Value::Null => crate::server::ArgsShape::Absent,
            _ => crate::server::ArgsShape::Single,
        };
        let args = self.received(args_list(options.with_args), fns);
        let username = if m.authenticate() && !self.inner.dialed {
            super::super::server::authenticate(
                &self.inner.local,
                options.authentication.as_ref(),
                &options.kite,
            )
            .await
            .map_err(with_id)?
        } else {
            options.kite.username.clone()
        };
        if !m.admit() {
            return Err(with_id(KiteError::request_limit()));
        }
        let req = Request::new(
            request_id.to_string(),
            method.to_string(),
            username,
            args,
            shape,
            options.authentication,
            options.kite,
            self.clone(),
            self.cancel_token(),
        );
        let local = self.inner.local.clone();
        let (result, error) = m.serve(req, &|| local.kite_wide_chain()).await;
        match error {
            Some(e) => Err(with_id(e)),
            None => Ok(result.unwrap_or(Value::Null)),
        }
    }
}

impl Inner {
    /// Adds an entry to the callback table; `None` when it holds `max_callbacks` already.
    fn register(&self, entry: Entry) -> Option<u64> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= self.max_callbacks {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        table.insert(id, entry);
        Some(id)
    }

    /// [`place`] with every callback registered, or none of them when the table is full.
    fn place_all(
        &self,
        value: &mut Value,
        callbacks: Vec<Callback>,
        prefix: &[Segment],
    ) -> Option<Vec<(u64, Path)>> {
        let mut full = false;
        let paths = place(value, callbacks, prefix, &mut |cb| {
            if full {
                return u64::MAX;
            }
            self.register(Entry::User(cb)).unwrap_or_else(|| {
                full = true;
                u64::MAX
            })
        });
        if !full {
            return Some(paths);
        }
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        for (id, _) in &paths {
            table.remove(id);
        }
        None
    }
}

impl FunctionSink for Inner {
    fn call_function(
        &self,
        id: u64,
        mut args: Value,
        callbacks: Vec<Callback>,
    ) -> BoxFuture<'_, Result<(), KiteError>> {
        Box::pin(async move {
            let paths = self.place_all(&mut args, callbacks, &[]).ok_or_else(|| {
                KiteError::new(
                    ErrorKind::RequestLimitError,
                    format!(
                        "too many callbacks on this connection (limit {})",
                        self.max_callbacks
                    ),
                )
            })?;
            let arguments = match args {
                Value::Array(a) => a,
                other => vec![other],
            };
            let msg = Message {
                method: Method::Callback(id),
                arguments,
                callbacks: paths,
            };
            if self.closed.is_cancelled() {
                return Err(KiteError::new(ErrorKind::SendError, "connection is closed"));
            }
            self.session
                .send(msg.to_json())
                .await
                .map_err(|e| KiteError::new(ErrorKind::SendError, e.to_string()))
        })
    }
}

/// Decodes a call's options (its first argument), straight from the JSON text when the
/// message took the fast path. `None`: the message is malformed after all (e.g. a number
/// out of range that only a full parse sees) and is dropped, as the reference parse does.
pub(crate) fn call_options(
    msg: &LazyMessage<'_>,
    text: &str,
) -> Option<Result<CallOptions, KiteError>> {
    let not_object = || KiteError::argument("call options must be an object");
    let invalid = |e: serde_json::Error| KiteError::argument(format!("invalid call options: {e}"));
    let value = match msg.first_argument() {
        Ok(None) | Err(None) => return Some(Err(not_object())),
        Ok(Some(raw)) => {
            if !raw.get().starts_with('{') {
                return Some(Err(not_object()));
            }
            if let Ok(o) = serde_json::from_str::<CallOptions>(raw.get()) {
                return Some(Ok(o));
            }
            // Decide the rest the reference way, through a Value tree of the whole message.
            let full = Message::parse(text).ok()?;
            full.arguments.into_iter().next().unwrap_or(Value::Null)
        }
        Err(Some(v)) => v.clone(),
    };
    Some(match value {
        Value::Object(_) => serde_json::from_value(value).map_err(invalid),
        _ => Err(not_object()),
    })
}

/// Interprets the arguments of a responseCallback call.
fn parse_response(args: Arguments) -> Result<Value, Error> {
    let mut values = args.into_values();
    match values.len() {
        1 => {
            let v = values.pop().unwrap_or(Value::Null);
            let Value::Object(mut obj) = v else {
                return Err(Error::InvalidResponse(format!(
                    "response is not an object: {v}"
                )));
            };
            if !obj.contains_key("error") && !obj.contains_key("result") {
                return Err(Error::InvalidResponse(
                    "response has neither error nor result".into(),
                ));
            }
            match obj.remove("error") {
                None | Some(Value::Null) => Ok(obj.remove("result").unwrap_or(Value::Null)),
                Some(e) => Err(Error::Remote(remote_error(e))),
            }
        }
        // kite.js's own default methods answer positionally: (err, result).
        2 => {
            let result = values.pop().unwrap_or(Value::Null);
            match values.pop() {
                None | Some(Value::Null) => Ok(result),
                Some(e) => Err(Error::Remote(remote_error(e))),
            }
        }
        n => Err(Error::InvalidResponse(format!(
            "response has {n} arguments, expected 1"
        ))),
    }
}

fn remote_error(e: Value) -> KiteError {
    match e {
        Value::String(s) => KiteError::generic(s),
        Value::Object(_) => serde_json::from_value::<KiteError>(e.clone())
            .unwrap_or_else(|_| KiteError::generic(e.to_string())),
        other => KiteError::generic(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_sixteen_alphanumerics() {
        let ids: std::collections::HashSet<String> = (0..2000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 2000);
        for id in &ids {
            assert_eq!(id.len(), 16);
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
        // Every character of the alphabet turns up (no bias towards a subset).
        let seen: std::collections::HashSet<u8> = ids.iter().flat_map(|i| i.bytes()).collect();
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn response_shapes() {
        let ok = Arguments::from_values(vec![json!({"error": null, "result": 4})]);
        assert_eq!(parse_response(ok).unwrap(), json!(4));
        let err = Arguments::from_values(vec![
            json!({"error": {"type":"methodNotFound","message":"Method not found: x","code":"","id":""}, "result": null}),
        ]);
        match parse_response(err) {
            Err(Error::Remote(e)) => assert_eq!(e.kind, ErrorKind::MethodNotFound),
            other => panic!("{other:?}"),
        }
        let positional = Arguments::from_values(vec![Value::Null, json!("pong")]);
        assert_eq!(parse_response(positional).unwrap(), json!("pong"));
        for bad in [
            vec![],
            vec![json!(1)],
            vec![json!({})],
            vec![json!(1), json!(2), json!(3)],
        ] {
            assert!(matches!(
                parse_response(Arguments::from_values(bad)),
                Err(Error::InvalidResponse(_))
            ));
        }
    }
}
