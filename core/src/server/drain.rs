//! The state of closing a kite cleanly: [`Kite::close`](super::Kite::close) refuses new
//! calls, runs the close hooks (the Kontrol client's `unregister`) while the calls in flight
//! finish, up to [`Config::drain_timeout`](crate::Config::drain_timeout), then closes every
//! connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::dnode::BoxFuture;
use crate::protocol::KiteError;

/// Work to do before a kite's connections close (e.g. leaving Kontrol).
pub(crate) type CloseHook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// A kite's shutdown state.
#[derive(Default)]
pub(crate) struct Drain {
    /// Set when [`Kite::close`](super::Kite::close) is called: new calls are refused.
    pub(super) stopping: CancellationToken,
    /// Incoming calls being served.
    pub(super) in_flight: AtomicUsize,
    /// Notified when `in_flight` drops to zero.
    pub(super) idle: Notify,
    pub(super) hooks: Mutex<Vec<CloseHook>>,
}

/// Counts one incoming call as in flight while it lives.
pub(crate) struct CallGuard {
    pub(super) drain: Arc<Drain>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.drain.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drain.idle.notify_waiters();
        }
    }
}

/// The error a call gets when it arrives while its kite is closing.
pub(crate) fn closing_error() -> KiteError {
    let mut e = KiteError::generic("kite is closing: call refused");
    e.code = "closing".into();
    e
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM, for programs that then call
/// [`Kite::shutdown`](super::Kite::shutdown).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
