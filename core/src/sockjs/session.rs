//! The SockJS session: one async object with `recv()`, `send()` and `close()` that the
//! layers above use the same way whatever the transport underneath (websocket, XHR
//! polling, streaming, JSONP — on the server or on the client).
//!
//! A session owns two queues:
//! - **inbound** (peer → application): a queue of at most [`INBOUND_CAPACITY`] messages.
//!   When the application does not call [`Session::recv`], the transport stops reading
//!   from the peer (websocket) or holds the peer's `xhr_send` request, so the peer is
//!   slowed down instead of server memory growing.
//! - **outbound** (application → peer): a queue bounded by bytes
//!   ([`SessionLimits::send_queue_bytes`]). [`Session::send`] waits while the queue is
//!   full; [`Session::try_send`] fails with [`TrySendError::Full`] instead. A peer that
//!   stops reading therefore cannot grow server memory past the limit: senders wait, and
//!   if the peer never comes back the disconnect delay closes the session, which fails
//!   every waiting `send` with [`SendError`].
#![deny(clippy::arithmetic_side_effects)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::frame::CloseReason;
use super::limits::{SendError, SessionLimits, TryRecvError, TrySendError, INBOUND_CAPACITY};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Connecting,
    Open,
    Closed,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    queue: VecDeque<String>,
    queued_bytes: usize,
    close: Option<CloseReason>,
    /// A receiver (polling/streaming request, or the websocket) is attached.
    attached: bool,
    /// Set when the session must be removed from the server table without waiting.
    expire_now: bool,
}

/// What a transport should write next.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Messages(Vec<String>),
    Close(CloseReason),
}

/// Result of a receiver attaching to a (server) session.
#[derive(Debug)]
pub(crate) enum Attach {
    /// The session was connecting: write the open frame; the application is started.
    Opened,
    /// The session is open and now has this receiver.
    Attached,
    /// Another receiver is attached: answer `c[2010,…]` and end.
    AnotherOpen,
    /// The session is closed: write any remaining messages, then this close frame.
    Closed(Vec<String>, CloseReason),
}

/// Messages from the peer not yet received by the application.
#[derive(Debug, Default)]
struct Inbound {
    queue: VecDeque<String>,
    /// Bytes of the messages in `queue`.
    bytes: usize,
    /// Set when the session closes: nothing more is accepted; what is queued still drains.
    closed: bool,
}

// The queues are a `Mutex` plus `Notify`s rather than channels: a message then costs one
// uncontended lock and, while the other side is busy, no waker traffic at all (a bounded
// tokio channel costs semaphore and waker operations per message, which showed in the
// SockJS benchmark).
struct Inner {
    id: String,
    transport: &'static str,
    remote_addr: Option<SocketAddr>,
    limits: SessionLimits,
    state: Mutex<State>,
    /// Wakes the transport: messages queued, or the session closed.
    out_ready: Notify,
    /// Wakes senders waiting for room in the outgoing queue.
    space: Notify,
    /// Wakes the server's session watchdog (attach/detach/close).
    pub(crate) changed: Notify,
    inbound: Mutex<Inbound>,
    /// Wakes receivers: a message arrived, or the session closed.
    readable: Notify,
    /// Wakes the transport waiting for room in the inbound queue.
    room: Notify,
    closed: CancellationToken,
    started: AtomicBool,
}

/// One SockJS session, on the server or the client. Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("transport", &self.inner.transport)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(
        id: String,
        transport: &'static str,
        remote_addr: Option<SocketAddr>,
        limits: SessionLimits,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                id,
                transport,
                remote_addr,
                limits,
                state: Mutex::new(State {
                    phase: Phase::Connecting,
                    queue: VecDeque::new(),
                    queued_bytes: 0,
                    close: None,
                    attached: false,
                    expire_now: false,
                }),
                out_ready: Notify::new(),
                space: Notify::new(),
                changed: Notify::new(),
                inbound: Mutex::new(Inbound::default()),
                readable: Notify::new(),
                room: Notify::new(),
                closed: CancellationToken::new(),
                started: AtomicBool::new(false),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding it; the state
        // itself is always left consistent, so keep going.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session id (from the URL on the server; random on the client; empty for raw websockets).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The transport that opened the session: `websocket`, `websocket-raw`, `xhr`, `xhr_streaming`, …
    pub fn transport(&self) -> &'static str {
        self.inner.transport
    }

    /// The peer's address, when known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr
    }

    fn inbound(&self) -> MutexGuard<'_, Inbound> {
        self.inner.inbound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(Some(m))`: a message; `Some(None)`: closed and drained; `None`: nothing yet.
    fn try_take_inbound(&self) -> Option<Option<String>> {
        let mut q = self.inbound();
        match q.queue.pop_front() {
            Some(m) => {
                let full_bytes = q.bytes >= self.inner.limits.recv_queue_bytes;
                q.bytes = q.bytes.saturating_sub(m.len());
                let was_full = q.queue.len().saturating_add(1) == INBOUND_CAPACITY || full_bytes;
                drop(q);
                if was_full {
                    self.inner.room.notify_waiters();
                }
                Some(Some(m))
            }
            None if q.closed => Some(None),
            None => None,
        }
    }

    /// Takes a waiting message without waiting.
    pub fn try_recv(&self) -> Result<String, TryRecvError> {
        match self.try_take_inbound() {
            Some(Some(m)) => Ok(m),
            Some(None) => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Receives the next message; `None` once the session is closed and drained.
    /// Cancel-safe. Several tasks may receive at once; each message goes to one of them.
    pub async fn recv(&self) -> Option<String> {
        loop {
            if let Some(r) = self.try_take_inbound() {
                return r;
            }
            let readable = self.inner.readable.notified();
            tokio::pin!(readable);
            readable.as_mut().enable();
            if let Some(r) = self.try_take_inbound() {
                return r;
            }
            readable.await;
        }
    }

    /// Queues a message for the peer, waiting while the outgoing queue is full.
    pub async fn send(&self, message: impl Into<String>) -> Result<(), SendError> {
        // Fast path: room in the queue (no waiter registered).
        let mut message = match self.push(message.into()) {
            Ok(()) => return Ok(()),
            Err((TrySendError::Closed, _)) => return Err(SendError),
            Err((TrySendError::Full, m)) => m,
        };
        loop {
            let space = self.inner.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            match self.push(message) {
                Ok(()) => return Ok(()),
                Err((TrySendError::Closed, _)) => return Err(SendError),
                Err((TrySendError::Full, m)) => message = m,
            }
            space.await;
        }
    }

    /// Queues a message without waiting.
    pub fn try_send(&self, message: impl Into<String>) -> Result<(), TrySendError> {
        self.push(message.into()).map_err(|(e, _)| e)
    }

    fn push(&self, message: String) -> Result<(), (TrySendError, String)> {
        let mut st = self.state();
        if st.phase == Phase::Closed {
            return Err((TrySendError::Closed, message));
        }
        if st.queued_bytes >= self.inner.limits.send_queue_bytes && !st.queue.is_empty() {
            return Err((TrySendError::Full, message));
        }
        st.queued_bytes = st.queued_bytes.saturating_add(message.len());
        st.queue.push_back(message);
        drop(st);
        self.inner.out_ready.notify_one();
        Ok(())
    }

    /// Closes the session with `3000 "Go away!"`. Queued messages are still delivered first.
    pub fn close(&self) -> bool {
        self.close_with(CloseReason::go_away())
    }

    /// Closes the session with a code and reason. Returns false when it was already closed.
    pub fn close_with(&self, reason: CloseReason) -> bool {
        let mut st = self.state();
        if st.phase == Phase::Closed {
            return false;
        }
        st.phase = Phase::Closed;
        st.close = Some(reason);
        drop(st);
        self.wake_all();
        true
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.state().phase == Phase::Closed
    }

    /// The close code and reason, once closed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state().close.clone()
    }

    /// Waits until the session is closed (by either side or by a timeout).
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await
    }

    fn wake_all(&self) {
        self.inbound().closed = true;
        self.inner.readable.notify_waiters();
        self.inner.room.notify_waiters();
        self.inner.closed.cancel();
        self.inner.out_ready.notify_one();
        self.inner.space.notify_waiters();
        self.inner.changed.notify_one();
    }

    // ---- transport side ----

    /// Delivers a message from the peer, waiting while the application is behind.
    pub(crate) async fn push_inbound(&self, message: String) -> Result<(), SendError> {
        let mut message = message;
        loop {
            match self.try_push_inbound(message) {
                Ok(()) => return Ok(()),
                Err(None) => return Err(SendError),
                Err(Some(m)) => message = m,
            }
            let room = self.inner.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push_inbound(message) {
                Ok(()) => return Ok(()),
                Err(None) => return Err(SendError),
                Err(Some(m)) => message = m,
            }
            room.await;
        }
    }

    /// `Err(Some(message))` when the queue is full, `Err(None)` when the session is closed.
    fn try_push_inbound(&self, message: String) -> Result<(), Option<String>> {
        let mut q = self.inbound();
        if q.closed {
            return Err(None);
        }
        if q.queue.len() >= INBOUND_CAPACITY
            || (q.bytes >= self.inner.limits.recv_queue_bytes && !q.queue.is_empty())
        {
            return Err(Some(message));
        }
        q.bytes = q.bytes.saturating_add(message.len());
        q.queue.push_back(message);
        drop(q);
        self.inner.readable.notify_one();
        Ok(())
    }

    /// Marks the session open (from connecting). Returns true if this call opened it.
    pub(crate) fn open(&self) -> bool {
        let mut st = self.state();
        if st.phase == Phase::Connecting {
            st.phase = Phase::Open;
            true
        } else {
            false
        }
    }

    /// Takes everything queued, or the close frame once the queue is drained; `None` when idle.
    pub(crate) fn take_outgoing(&self) -> Option<Outgoing> {
        let mut st = self.state();
        if !st.queue.is_empty() {
            st.queued_bytes = 0;
            let msgs: Vec<String> = st.queue.drain(..).collect();
            drop(st);
            self.inner.space.notify_waiters();
            return Some(Outgoing::Messages(msgs));
        }
        if st.phase == Phase::Closed {
            let reason = st.close.clone().unwrap_or_else(CloseReason::go_away);
            return Some(Outgoing::Close(reason));
        }
        None
    }

    /// Waits for something to write (cancel-safe: nothing is taken unless returned).
    pub(crate) async fn next_outgoing(&self) -> Outgoing {
        loop {
            let ready = self.inner.out_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(out) = self.take_outgoing() {
                return out;
            }
            ready.await;
        }
    }

    /// A receiver (HTTP request or websocket) attaches to this session.
    pub(crate) fn attach(&self) -> Attach {
        let mut st = self.state();
        if st.attached {
            return Attach::AnotherOpen;
        }
        let result = match st.phase {
            Phase::Closed => {
                st.queued_bytes = 0;
                let msgs = st.queue.drain(..).collect();
                let reason = st.close.clone().unwrap_or_else(CloseReason::go_away);
                Attach::Closed(msgs, reason)
            }
            Phase::Connecting => {
                st.phase = Phase::Open;
                st.attached = true;
                Attach::Opened
            }
            Phase::Open => {
                st.attached = true;
                Attach::Attached
            }
        };
        drop(st);
        self.inner.changed.notify_one();
        result
    }

    /// The attached receiver went away. `aborted`: the client dropped the request, which
    /// closes the session at once (`1002 "Connection interrupted"`), as sockjs-node does.
    pub(crate) fn detach(&self, aborted: bool) {
        let mut st = self.state();
        st.attached = false;
        if aborted {
            st.expire_now = true;
            if st.phase != Phase::Closed {
                st.phase = Phase::Closed;
                st.close = Some(CloseReason::interrupted());
            }
            drop(st);
            self.wake_all();
        } else {
            drop(st);
            self.inner.changed.notify_one();
        }
    }

    /// For the server watchdog: (attached, expire_now).
    pub(crate) fn watch_state(&self) -> (bool, bool) {
        let st = self.state();
        (st.attached, st.expire_now)
    }

    pub(crate) fn changed(&self) -> &Notify {
        &self.inner.changed
    }

    /// Marks that the application handler was started; true the first time.
    pub(crate) fn mark_started(&self) -> bool {
        !self.inner.started.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn ptr_eq(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Bytes of messages queued for the peer, for tests and metrics.
    pub fn queued_bytes(&self) -> usize {
        self.state().queued_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(limit: usize) -> Session {
        Session::new(
            "s".into(),
            "test",
            None,
            SessionLimits {
                send_queue_bytes: limit,
                ..SessionLimits::default()
            },
        )
    }

    #[tokio::test]
    async fn send_then_take() {
        let s = session(1024);
        s.send("a").await.unwrap();
        s.send("b").await.unwrap();
        match s.take_outgoing() {
            Some(Outgoing::Messages(m)) => assert_eq!(m, vec!["a", "b"]),
            other => panic!("{other:?}"),
        }
        assert!(s.take_outgoing().is_none());
    }

    #[tokio::test]
    async fn queue_is_bounded() {
        let s = session(4);
        s.try_send("abcd").unwrap();
        assert_eq!(s.try_send("e"), Err(TrySendError::Full));
        // A waiting send completes once the transport takes the queue.
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.send("e").await });
        tokio::task::yield_now().await;
        assert!(matches!(s.take_outgoing(), Some(Outgoing::Messages(_))));
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn close_fails_waiting_senders_and_ends_recv() {
        let s = session(1);
        s.try_send("xx").unwrap();
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.send("y").await });
        tokio::task::yield_now().await;
        assert!(s.close());
        assert_eq!(waiter.await.unwrap(), Err(SendError));
        assert_eq!(s.recv().await, None);
        assert!(!s.close());
        // Queued messages first, then the close frame.
        assert!(matches!(s.take_outgoing(), Some(Outgoing::Messages(_))));
        assert!(matches!(s.take_outgoing(), Some(Outgoing::Close(r)) if r.code == 3000));
    }

    #[tokio::test]
    async fn inbound_drains_before_none() {
        let s = session(16);
        s.push_inbound("1".into()).await.unwrap();
        s.close();
        assert_eq!(s.recv().await.as_deref(), Some("1"));
        assert_eq!(s.recv().await, None);
        assert_eq!(s.push_inbound("2".into()).await, Err(SendError));
    }

    #[tokio::test]
    async fn inbound_is_bounded_and_wakes_the_pusher() {
        let s = session(16);
        for i in 0..INBOUND_CAPACITY {
            s.push_inbound(i.to_string()).await.unwrap();
        }
        let s2 = s.clone();
        let pusher = tokio::spawn(async move { s2.push_inbound("last".into()).await });
        tokio::task::yield_now().await;
        assert!(!pusher.is_finished());
        assert_eq!(s.recv().await.as_deref(), Some("0"));
        pusher.await.unwrap().unwrap();
        for i in 1..INBOUND_CAPACITY {
            assert_eq!(s.recv().await, Some(i.to_string()));
        }
        assert_eq!(s.recv().await.as_deref(), Some("last"));
        // A waiting receiver is woken by a message and by the close.
        let s2 = s.clone();
        let receiver = tokio::spawn(async move { (s2.recv().await, s2.recv().await) });
        s.push_inbound("x".into()).await.unwrap();
        s.close();
        assert_eq!(receiver.await.unwrap(), (Some("x".into()), None));
    }

    #[tokio::test]
    async fn attach_states() {
        let s = session(16);
        assert!(matches!(s.attach(), Attach::Opened));
        assert!(matches!(s.attach(), Attach::AnotherOpen));
        s.detach(false);
        assert!(matches!(s.attach(), Attach::Attached));
        s.detach(true);
        assert!(s.is_closed());
        assert_eq!(s.close_reason(), Some(CloseReason::interrupted()));
        assert!(matches!(s.attach(), Attach::Closed(_, r) if r.code == 1002));
    }
}
