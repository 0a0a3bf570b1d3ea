//! Closing a kite: [`Kite::close`] and its drain (see [`super::drain`] for the state).

use std::sync::atomic::Ordering;

use super::drain::{CallGuard, CloseHook};
use super::kite::Kite;

impl Kite {
    /// Admits an incoming call (`None` once the kite is closing).
    pub(crate) fn begin_call(&self) -> Option<CallGuard> {
        let drain = self.inner.drain.clone();
        drain.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = CallGuard { drain };
        (!guard.drain.stopping.is_cancelled()).then_some(guard)
    }

    /// Runs `hook` when the kite closes, before its connections do (hooks added after
    /// [`Kite::close`] are not run).
    pub(crate) fn on_close(&self, hook: CloseHook) {
        if !self.inner.drain.stopping.is_cancelled() {
            self.inner
                .drain
                .hooks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(hook);
        }
    }

    /// Whether [`Kite::close`] was called (the kite may still be draining).
    pub fn is_closing(&self) -> bool {
        self.inner.drain.stopping.is_cancelled()
    }

    /// Closes the kite cleanly. Idempotent; returns at once, the rest runs in the background:
    ///
    /// 1. new calls are refused (`genericError` with code `closing`);
    /// 2. a kite registered to Kontrol over dnode unregisters (Kontrol's `unregister`
    ///    method, so that `getKites` watchers see it leave at once; a Kontrol without that
    ///    method, such as the Go reference, is left to notice the missing heartbeats);
    /// 3. calls in flight finish, for up to [`Config::drain_timeout`](crate::Config)
    ///    (default 10 s);
    /// 4. the server stops and every connection closes.
    ///
    /// [`Kite::closed`] waits for the end; [`Kite::run`] returns then. Outside a Tokio
    /// runtime the kite closes at once.
    pub fn close(&self) {
        let drain = &self.inner.drain;
        if drain.stopping.is_cancelled() {
            return;
        }
        drain.stopping.cancel();
        let hooks = std::mem::take(&mut *drain.hooks.lock().unwrap_or_else(|e| e.into_inner()));
        let busy = drain.in_flight.load(Ordering::Acquire) > 0;
        let runtime = tokio::runtime::Handle::try_current();
        match runtime {
            Ok(rt) if busy || !hooks.is_empty() => {
                let kite = self.clone();
                rt.spawn(async move {
                    kite.drain(hooks).await;
                    kite.finish_close();
                });
            }
            _ => self.finish_close(),
        }
    }

    /// Closes the kite ([`Kite::close`]) and waits until it is closed.
    pub async fn shutdown(&self) {
        self.close();
        self.closed().await;
    }

    /// Waits until the kite is closed (after the drain of [`Kite::close`]).
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await
    }

    async fn drain(&self, hooks: Vec<CloseHook>) {
        let timeout = self.config().drain_timeout;
        let drain = self.inner.drain.clone();
        let calls = async move {
            loop {
                let idle = drain.idle.notified();
                if drain.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        };
        // Leaving Kontrol first means no new caller is handed this kite while its calls end.
        let hooks = futures_util::future::join_all(hooks.into_iter().map(|h| h()));
        let all = futures_util::future::join(hooks, calls);
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!(
                in_flight = self.inner.drain.in_flight.load(Ordering::Acquire),
                ?timeout,
                "closing with calls still in flight (drain timeout)"
            );
        }
    }
}
