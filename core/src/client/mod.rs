//! Calling other kites: a [`Client`] dials a kite's URL (once, with a timeout, or forever
//! with exponential backoff and reconnection) and makes calls over the resulting
//! [`Connection`].

mod conn;

pub(crate) use conn::call_options;
pub use conn::Connection;

use std::future::IntoFuture;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dnode::BoxFuture;
use crate::protocol::{Auth, Kite as KiteIdentity};
use crate::server::Kite;
use crate::sockjs::{self, Transport};
use crate::Error;

type Hook = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Hooks {
    connect: Vec<Hook>,
    disconnect: Vec<Hook>,
    token_expire: Vec<Hook>,
    token_renew: Vec<Hook>,
}

struct Inner {
    local: Kite,
    url: String,
    transport: RwLock<Transport>,
    auth: RwLock<Option<Auth>>,
    remote: RwLock<KiteIdentity>,
    conn: watch::Sender<Option<Connection>>,
    hooks: RwLock<Hooks>,
    closed: CancellationToken,
    forever: Mutex<bool>,
}

/// A client to one remote kite. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

/// Backoff of [`Client::dial_forever`]: 500 ms doubling up to 1 min, like the reference.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl Client {
    pub(crate) fn new(local: Kite, url: &str) -> Client {
        let config = local.config();
        let auth = (!config.kite_key.is_empty()).then(|| Auth::kite_key(config.kite_key.clone()));
        Client {
            inner: Arc::new(Inner {
                local,
                url: url.to_string(),
                transport: RwLock::new(config.transport),
                auth: RwLock::new(auth),
                remote: RwLock::new(KiteIdentity::default()),
                conn: watch::channel(None).0,
                hooks: RwLock::new(Hooks::default()),
                closed: CancellationToken::new(),
                forever: Mutex::new(false),
            }),
        }
    }

    /// A handle that does not keep the client alive.
    pub fn downgrade(&self) -> WeakClient {
        WeakClient {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Whether [`Client::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// The URL dialed.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Uses `transport` for the next dial (default: the kite's, i.e. `KITE_TRANSPORT` or auto).
    pub fn set_transport(&self, transport: Transport) {
        *self
            .inner
            .transport
            .write()
            .unwrap_or_else(|e| e.into_inner()) = transport;
    }

    /// Sends `auth` with every call (default: the kite's kite key, if it has one).
    pub fn set_auth(&self, auth: Option<Auth>) {
        *self.inner.auth.write().unwrap_or_else(|e| e.into_inner()) = auth.clone();
        if let Some(c) = self.connection() {
            c.set_auth(auth);
        }
    }

    /// The credentials sent with calls.
    pub fn auth(&self) -> Option<Auth> {
        self.inner
            .auth
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the remote kite's identity (e.g. from Kontrol).
    pub fn set_remote_kite(&self, k: KiteIdentity) {
        *self.inner.remote.write().unwrap_or_else(|e| e.into_inner()) = k.clone();
        if let Some(c) = self.connection() {
            c.set_remote_kite(k);
        }
    }

    /// The remote kite's identity, when known.
    pub fn remote_kite(&self) -> KiteIdentity {
        self.inner
            .remote
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current connection, if connected.
    pub fn connection(&self) -> Option<Connection> {
        self.inner.conn.borrow().clone().filter(|c| !c.is_closed())
    }

    /// Whether connected now.
    pub fn is_connected(&self) -> bool {
        self.connection().is_some()
    }

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
        let config = sockjs::ClientConfig {
            transport: *self
                .inner
                .transport
                .read()
                .unwrap_or_else(|e| e.into_inner()),
            connect_timeout: timeout,
            ..sockjs::ClientConfig::default()
        };
        let session = sockjs::connect(&self.inner.url, &config).await?;
        let conn = Connection::new(self.inner.local.clone(), session, true, self.auth());
        conn.set_remote_kite(self.remote_kite());
        let weak = Arc::downgrade(&self.inner);
        conn.on_token_expired(Arc::new(move || {
            if let Some(inner) = weak.upgrade() {
                let hooks = inner
                    .hooks
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .token_expire
                    .clone();
                hooks.iter().for_each(|h| h());
            }
        }));
        self.inner.conn.send_replace(Some(conn.clone()));
        self.fire(|h| &h.connect);
        let this = self.clone();
        tokio::spawn(async move {
            conn.run().await;
            this.fire(|h| &h.disconnect);
            let forever = *this.inner.forever.lock().unwrap_or_else(|e| e.into_inner());
            if forever && !this.stopped() {
                this.redial_loop().await;
            }
        });
        Ok(())
    }

    /// Connects, retrying with exponential backoff until it succeeds, and reconnects after
    /// every drop until [`Client::close`]. Resolves at the first successful connection.
    pub async fn dial_forever(&self) {
        *self.inner.forever.lock().unwrap_or_else(|e| e.into_inner()) = true;
        if !self.is_connected() {
            self.redial_loop().await;
        }
    }

    /// Closed, or its kite is: no more redialing (a connection of a closed kite ends at
    /// once, so redialing it would spin).
    fn stopped(&self) -> bool {
        self.inner.closed.is_cancelled() || self.inner.local.inner.closed.is_cancelled()
    }

    fn redial_loop(&self) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            let mut delay = BACKOFF_START;
            loop {
                if this.stopped() {
                    return;
                }
                match this.dial().await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(url = %this.inner.url, error = %e, retry_in = ?delay, "dial failed")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = this.inner.closed.cancelled() => return,
                    _ = this.inner.local.inner.closed.cancelled() => return,
                }
                delay = (delay * 2).min(BACKOFF_MAX);
            }
        })
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

    /// Calls `method` with `args` (an array or tuple of arguments, `()` for none; may
    /// contain [`Callback`](crate::dnode::Callback)s). Await it, optionally after setting
    /// `.timeout(…)` (default: the kite's timeout, 15 s).
    pub fn call<'a, T: Serialize + ?Sized + Sync>(
        &'a self,
        method: &'a str,
        args: &'a T,
    ) -> Call<'a, T> {
        Call {
            client: self,
            method,
            args,
            timeout: None,
        }
    }

    /// Closes the connection and stops reconnecting. Idempotent.
    pub fn close(&self) {
        self.inner.closed.cancel();
        if let Some(c) = self.inner.conn.borrow().clone() {
            c.close();
        }
    }

    /// Runs `f` after every successful dial.
    pub fn on_connect(&self, f: impl Fn() + Send + Sync + 'static) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .connect
            .push(Arc::new(f));
    }

    /// Runs `f` when the connection drops.
    pub fn on_disconnect(&self, f: impl Fn() + Send + Sync + 'static) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .disconnect
            .push(Arc::new(f));
    }

    /// Runs `f` when a call fails with "token is expired".
    pub fn on_token_expire(&self, f: impl Fn() + Send + Sync + 'static) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .token_expire
            .push(Arc::new(f));
    }

    /// Runs `f` when the token was renewed.
    pub fn on_token_renew(&self, f: impl Fn() + Send + Sync + 'static) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .token_renew
            .push(Arc::new(f));
    }

    /// Replaces the token sent with calls and fires the token-renew events.
    pub fn renew_token(&self, token: String) {
        self.set_auth(Some(Auth::token(token)));
        self.fire(|h| &h.token_renew);
    }

    fn fire(&self, pick: impl Fn(&Hooks) -> &Vec<Hook>) {
        let hooks = pick(&self.inner.hooks.read().unwrap_or_else(|e| e.into_inner())).clone();
        hooks.iter().for_each(|h| h());
    }
}

/// A [`Client`] handle that does not keep it alive.
#[derive(Clone, Debug)]
pub struct WeakClient {
    inner: std::sync::Weak<Inner>,
}

impl WeakClient {
    /// The client, if it still exists.
    pub fn upgrade(&self) -> Option<Client> {
        self.inner.upgrade().map(|inner| Client { inner })
    }
}

/// A pending call; `.timeout(d)` sets its timeout, `.await` runs it.
pub struct Call<'a, T: ?Sized> {
    client: &'a Client,
    method: &'a str,
    args: &'a T,
    timeout: Option<Duration>,
}

impl<T: ?Sized> Call<'_, T> {
    /// Fails with [`Error::Timeout`] when no response arrives within `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<'a, T: Serialize + ?Sized + Sync> IntoFuture for Call<'a, T> {
    type Output = Result<Value, Error>;
    type IntoFuture = BoxFuture<'a, Result<Value, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let conn = self
                .client
                .connection()
                .ok_or_else(|| Error::Send("not connected".into()))?;
            conn.call(self.method, self.args, self.timeout).await
        })
    }
}
