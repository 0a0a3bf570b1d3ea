//! Dialing: once (with a timeout), forever (with backoff, redialing every drop), and waiting
//! for a connection or its failure.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::dialer::dialer;
use super::handle::Client;
use crate::dnode::BoxFuture;
use crate::peer::{Connection, Dispatch};
use crate::sockjs;
use crate::{DialError, Error};

/// Backoff of [`Client::dial_forever`]: 500 ms doubling up to 1 min, like the reference.
const BACKOFF_START: Duration = Duration::from_millis(500);
/// The longest wait between redials unless [`Client::set_redial_max`] says otherwise (the
/// reference's backoff cap).
const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl Client {
    /// Connects once (within the kite's handshake timeout).
    pub async fn dial(&self) -> Result<(), Error> {
        let timeout = self.inner.local.config().handshake_timeout;
        self.dial_timeout(timeout).await
    }

    /// Connects once within `timeout`.
    pub async fn dial_timeout(&self, timeout: Duration) -> Result<(), Error> {
        if self.inner.closed.is_cancelled() {
            return Err(Error::Send("client is closed".into()));
        }
        let dialer = dialer(&self.inner.local);
        let origin = || self.inner.origin.load().as_deref().cloned();
        // Every failed attempt is recorded, so that waiters get its cause at once.
        let failed = |failure: DialError| -> Error {
            self.inner.attempts.send_modify(|(n, last)| {
                (*n, *last) = (n.saturating_add(1), Some(failure.clone()))
            });
            failure.into()
        };
        let tls = match dialer.tls_for(&self.inner.url) {
            Ok(tls) => tls,
            Err(Error::Tls { url, reason }) => {
                let e = sockjs::ConnectError::Tls { url, reason };
                return Err(failed(
                    DialError::new(&self.inner.url, &e).with_origin(origin()),
                ));
            }
            Err(e) => return Err(e),
        };
        let config = sockjs::ClientConfig {
            transport: **self.inner.transport.load(),
            connect_timeout: timeout,
            tls,
            http: dialer.http(),
            ..sockjs::ClientConfig::default()
        };
        let session = match sockjs::connect(&self.inner.url, &config).await {
            Ok(s) => s,
            Err(e) => {
                return Err(failed(
                    DialError::new(&self.inner.url, &e).with_origin(origin()),
                ));
            }
        };
        let dispatch: Arc<dyn Dispatch> = Arc::new(self.inner.local.clone());
        let peer = self.inner.local.peer_config();
        let conn = Connection::new(session, dispatch, peer, true, self.auth());
        conn.set_remote_kite(self.remote_kite());
        let weak = Arc::downgrade(&self.inner);
        conn.on_token_expired(Arc::new(move || {
            if let Some(inner) = weak.upgrade() {
                let hooks = inner.hooks.load().token_expire.clone();
                hooks.iter().for_each(|h| h());
            }
        }));
        self.inner.conn.send_replace(Some(conn.clone()));
        self.inner
            .attempts
            .send_modify(|(n, last)| (*n, *last) = (*n + 1, None));
        self.fire(|h| &h.connect);
        let this = self.clone();
        tokio::spawn(async move {
            conn.run().await;
            this.fire(|h| &h.disconnect);
            let forever = this.inner.forever.load(Ordering::Acquire);
            if forever && !this.stopped() {
                this.redial_loop().await;
            }
        });
        Ok(())
    }

    /// Connects, retrying with exponential backoff until it succeeds, and reconnects after
    /// every drop until [`Client::close`]. Resolves at the first successful connection.
    pub async fn dial_forever(&self) {
        self.keep_connected();
        if !self.is_connected() {
            self.redial_loop().await;
        }
    }

    /// Caps the wait between redials at `max` (default one minute, the reference's cap). The
    /// waits double from half a second up to the cap; each is drawn between half and all of
    /// its step, so that many clients of one server that went away do not redial in step.
    pub fn set_redial_max(&self, max: Duration) {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
        self.inner.redial_max_ms.store(ms, Ordering::Relaxed);
    }

    /// Redials (as [`Client::dial_forever`] does) whenever the connection drops, without
    /// dialing now.
    pub(crate) fn keep_connected(&self) {
        self.inner.forever.store(true, Ordering::Release);
    }

    /// Closed, or its kite is: no more redialing (a connection of a closed kite ends at
    /// once, so redialing it would spin).
    fn stopped(&self) -> bool {
        self.inner.closed.is_cancelled() || self.inner.local.inner.closed.is_cancelled()
    }

    fn redial_loop(&self) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            struct Redialing<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for Redialing<'_> {
                fn drop(&mut self) {
                    self.0.store(false, std::sync::atomic::Ordering::Release);
                }
            }
            this.inner
                .redialing
                .store(true, std::sync::atomic::Ordering::Release);
            let _redialing = Redialing(&this.inner.redialing);
            let mut delay = BACKOFF_START;
            // Each distinct failure is logged once (a warning), its repetitions at debug level.
            let mut logged: Option<String> = None;
            loop {
                if this.stopped() {
                    return;
                }
                match this.dial().await {
                    Ok(()) => {
                        this.inner.tls_failure.send_replace(None);
                        if logged.is_some() {
                            tracing::info!(url = %this.inner.url, "connected after failed dials");
                        }
                        return;
                    }
                    Err(Error::Tls { url, reason }) => {
                        let text = format!("{url}: {reason}");
                        if logged.as_deref() != Some(text.as_str()) {
                            tracing::warn!(%url, %reason, "TLS failure dialing; retrying with backoff");
                            logged = Some(text);
                        }
                        this.inner.tls_failure.send_replace(Some((url, reason)));
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if logged.as_deref() == Some(text.as_str()) {
                            tracing::debug!(url = %this.inner.url, error = %e, retry_in = ?delay, "dial failed again");
                        } else {
                            tracing::warn!(url = %this.inner.url, error = %e, "dial failed; retrying with backoff until it succeeds");
                            logged = Some(text);
                        }
                    }
                }
                let max = match this.inner.redial_max_ms.load(Ordering::Relaxed) {
                    0 => BACKOFF_MAX,
                    ms => Duration::from_millis(ms),
                };
                delay = delay.min(max);
                tokio::select! {
                    _ = tokio::time::sleep(jittered(delay)) => {}
                    _ = this.inner.retry_now.notified() => {}
                    _ = this.inner.closed.cancelled() => return,
                    _ = this.inner.local.inner.closed.cancelled() => return,
                }
                delay = delay.saturating_mul(2).min(max);
            }
        })
    }

    /// Connected now, or the outcome of a dial within `timeout`: while a redial loop runs
    /// ([`Client::dial_forever`], or a reconnect) its next attempt (the loop is woken for
    /// it), else one dial made now (one at a time). A failed attempt returns its cause at
    /// once; when none finishes in time, the last cause known, else [`Error::Timeout`]
    /// naming `what` and the URL.
    pub async fn connected_or_cause(&self, what: &str, timeout: Duration) -> Result<(), Error> {
        if self.is_connected() {
            return Ok(());
        }
        if !self
            .inner
            .redialing
            .load(std::sync::atomic::Ordering::Acquire)
        {
            let timed_out = || Error::Timeout {
                method: what.to_string(),
                url: self.inner.url.clone(),
                after: timeout,
            };
            let _one = tokio::time::timeout(timeout, self.inner.dial_lock.lock())
                .await
                .map_err(|_| timed_out())?;
            if self.is_connected() {
                return Ok(());
            }
            return tokio::time::timeout(timeout, self.dial())
                .await
                .map_err(|_| timed_out())?;
        }
        let mut attempts = self.inner.attempts.subscribe();
        let mut conn = self.inner.conn.subscribe();
        let seen = attempts.borrow_and_update().0;
        self.inner.retry_now.notify_one();
        let wait = async {
            loop {
                if conn
                    .borrow_and_update()
                    .as_ref()
                    .is_some_and(|c| !c.is_closed())
                {
                    return Ok(());
                }
                if let (n, Some(e)) = &*attempts.borrow_and_update() {
                    if *n > seen {
                        return Err(Error::from(e.clone()));
                    }
                }
                tokio::select! {
                    r = attempts.changed() => if r.is_err() { return Err(Error::Disconnected) },
                    r = conn.changed() => if r.is_err() { return Err(Error::Disconnected) },
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(match self.last_dial_error() {
                Some(e) => e.into(),
                None => Error::Timeout {
                    method: what.to_string(),
                    url: self.inner.url.clone(),
                    after: timeout,
                },
            }),
        }
    }

    /// Waits until a background dial (`dial_forever`) fails with a TLS error, and returns
    /// it: a certificate problem is not fixed by waiting, so callers waiting for the
    /// connection can give up at once.
    pub async fn tls_failure(&self) -> Error {
        let mut rx = self.inner.tls_failure.subscribe();
        loop {
            if let Some((url, reason)) = rx.borrow_and_update().clone() {
                return Error::Tls { url, reason };
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until connected (after `dial_forever`, or a reconnect).
    pub async fn connected(&self) {
        let mut rx = self.inner.conn.subscribe();
        loop {
            if rx
                .borrow_and_update()
                .as_ref()
                .is_some_and(|c| !c.is_closed())
            {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A wait drawn between half and all of `step` ("equal jitter").
fn jittered(step: Duration) -> Duration {
    step.mul_f64(rand::random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_drawn_between_half_and_all_of_the_step() {
        let step = Duration::from_secs(4);
        let waits: Vec<Duration> = (0..1000).map(|_| jittered(step)).collect();
        assert!(waits.iter().all(|w| *w >= step / 2 && *w <= step));
        // Spread, not one value: many clients do not redial in step.
        let (min, max) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
        assert!(*max - *min > step / 4, "{min:?}..{max:?}");
    }
}
