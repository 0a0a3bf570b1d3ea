//! A SockJS session's queue limits and the errors of its send and receive calls: the plain
//! types below `session` (which `config` and the client take too).

/// Number of received messages buffered before the transport stops reading from the peer.
pub const INBOUND_CAPACITY: usize = 256;

/// Limits applied to one session.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Bytes of outgoing messages queued before
    /// [`Session::send`](crate::sockjs::Session::send) waits. A single message larger than
    /// this is still accepted when the queue is empty. Default: 1 MiB.
    pub send_queue_bytes: usize,
    /// Bytes of received messages queued (besides the [`INBOUND_CAPACITY`] count) before
    /// the transport stops reading from the peer. A single message larger than this is
    /// still accepted when the queue is empty. Default: 1 MiB.
    pub recv_queue_bytes: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            send_queue_bytes: 1024 * 1024,
            recv_queue_bytes: 1024 * 1024,
        }
    }
}

/// The session is closed; the message was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SockJS session is closed")]
pub struct SendError;

/// Why [`Session::try_send`](crate::sockjs::Session::try_send) did not queue a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError {
    /// The outgoing queue is full (the peer is not reading fast enough).
    #[error("SockJS send queue is full")]
    Full,
    /// The session is closed.
    #[error("SockJS session is closed")]
    Closed,
}

/// Why [`Session::try_recv`](crate::sockjs::Session::try_recv) returned no message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// No message is waiting.
    #[error("no SockJS message is waiting")]
    Empty,
    /// The session is closed and every received message has been taken.
    #[error("SockJS session is closed")]
    Closed,
}
