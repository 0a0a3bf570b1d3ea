//! Calling other kites: a [`Client`] dials a kite's URL (once, with a timeout, or forever
//! with exponential backoff and reconnection) and makes calls over the resulting
//! [`Connection`].

pub use crate::peer::Connection;

use std::future::IntoFuture;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::dnode::{BoxFuture, IntoPayload, Payload};
use crate::peer::Dispatch;
use crate::protocol::{Auth, Kite as KiteIdentity};
use crate::server::Kite;
use crate::sockjs::{self, Transport};
use crate::{DialError, Error};

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
    /// Where the URL came from (kite.key, an environment variable, a flag), for errors.
    origin: RwLock<Option<String>>,
    /// Dial attempts finished so far, and the failure of the last one (`None`: it connected).
    attempts: watch::Sender<(u64, Option<DialError>)>,
    /// Wakes a [`Client::dial_forever`] loop sleeping between attempts.
    retry_now: Notify,
    /// A redial loop is running.
    redialing: std::sync::atomic::AtomicBool,
    /// One one-shot dial at a time from [`Client::connected_or_cause`].
    dial_lock: tokio::sync::Mutex<()>,
    /// The TLS failure of the latest background dial (cleared by a successful one), so that
    /// waiters get it at once instead of waiting into a timeout.
    tls_failure: watch::Sender<Option<(String, String)>>,
}

/// The TLS configuration and XHR HTTP client a kite's dials share (built once per kite).
#[derive(Clone)]
pub(crate) struct Dialer {
    tls: Result<Arc<rustls::ClientConfig>, String>,
    http: Option<reqwest::Client>,
}

impl Dialer {
    pub(crate) fn new(trust: crate::tls::TlsTrust, timeout: Duration) -> Dialer {
        let tls = crate::tls::client_config(&trust);
        let http = match sockjs::client::http_client(tls.clone().ok(), timeout) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the HTTP client; one per session");
                None
            }
        };
        Dialer { tls, http }
    }

    /// The TLS configuration for dialing `url`: an error only for TLS URLs (a plain URL
    /// does not care that the trust configuration is broken).
    pub(crate) fn tls_for(&self, url: &str) -> Result<Option<Arc<rustls::ClientConfig>>, Error> {
        match &self.tls {
            Ok(c) => Ok(Some(c.clone())),
            Err(reason) if sockjs::client::is_tls_url(url) => Err(Error::Tls {
                url: url.to_string(),
                reason: reason.clone(),
            }),
            Err(_) => Ok(None),
        }
    }

    /// The shared HTTP client (carrying the TLS configuration).
    pub(crate) fn http(&self) -> Option<reqwest::Client> {
        self.http.clone()
    }
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
        let transport = local.config().transport;
        let kite_key = local.kite_key();
        let auth = (!kite_key.is_empty()).then(|| Auth::kite_key(kite_key));
        Client {
            inner: Arc::new(Inner {
                local,
                url: url.to_string(),
                transport: RwLock::new(transport),
                auth: RwLock::new(auth),
                remote: RwLock::new(KiteIdentity::default()),
                conn: watch::channel(None).0,
                hooks: RwLock::new(Hooks::default()),
                closed: CancellationToken::new(),
                forever: Mutex::new(false),
                origin: RwLock::new(None),
                attempts: watch::channel((0, None)).0,
                retry_now: Notify::new(),
                redialing: std::sync::atomic::AtomicBool::new(false),
                dial_lock: tokio::sync::Mutex::new(()),
                tls_failure: watch::channel(None).0,
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

    /// Names where the URL came from (`kite.key at …`, `KITE_KONTROL_URL`, a flag); dial
    /// errors then say it.
    pub fn set_url_origin(&self, origin: Option<String>) {
        *self.inner.origin.write().unwrap_or_else(|e| e.into_inner()) = origin;
    }

    /// Why the last dial failed; `None` when it succeeded or none was made yet.
    pub fn last_dial_error(&self) -> Option<DialError> {
        self.inner.attempts.borrow().1.clone()
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
        let dialer = dialer(&self.inner.local);
        let origin = || {
            self.inner
                .origin
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        };
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
            transport: *self
                .inner
                .transport
                .read()
                .unwrap_or_else(|e| e.into_inner()),
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
        self.inner
            .attempts
            .send_modify(|(n, last)| (*n, *last) = (*n + 1, None));
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
        self.keep_connected();
        if !self.is_connected() {
            self.redial_loop().await;
        }
    }

    /// Redials (as [`Client::dial_forever`] does) whenever the connection drops, without
    /// dialing now.
    pub(crate) fn keep_connected(&self) {
        *self.inner.forever.lock().unwrap_or_else(|e| e.into_inner()) = true;
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
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = this.inner.retry_now.notified() => {}
                    _ = this.inner.closed.cancelled() => return,
                    _ = this.inner.local.inner.closed.cancelled() => return,
                }
                delay = (delay * 2).min(BACKOFF_MAX);
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

    /// Calls `method` with `args`: a [`Payload`] (values and functions), or any `Serialize`
    /// value (an array or tuple is the argument list, `()` none, anything else one
    /// argument). Await it, optionally after setting `.timeout(…)` (default: the kite's
    /// timeout, 15 s).
    pub fn call<'a>(&'a self, method: &'a str, args: impl IntoPayload) -> Call<'a> {
        Call {
            client: self,
            method,
            args: args.into_payload(),
            timeout: None,
        }
    }

    /// Sends a WebRTC signalling message through the remote kite, which must relay
    /// (`kite.handleWebRTC`, [`Config::use_webrtc`](crate::Config::use_webrtc)); it arrives
    /// at kite `msg.dst`'s own `kite.handleWebRTC` with `src` set to this kite's id. Fails
    /// with the relay's error (`dst not registered`, …) or the destination handler's.
    pub async fn send_webrtc(&self, msg: &crate::protocol::SignalMessage) -> Result<(), Error> {
        self.call(crate::protocol::METHOD_HANDLE_WEBRTC, msg)
            .await
            .map(drop)
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

/// The TLS configuration and HTTP client of `kite`'s dials, built once per kite.
pub(crate) fn dialer(kite: &Kite) -> Dialer {
    let slot = kite.extension::<std::sync::OnceLock<Dialer>>();
    slot.get_or_init(|| {
        let c = kite.config();
        Dialer::new(c.tls_trust(), c.handshake_timeout)
    })
    .clone()
}

impl Kite {
    /// A client to the kite at `url`, on behalf of this kite (it can serve callbacks and
    /// this kite's methods to the remote side).
    pub fn client(&self, url: &str) -> Client {
        Client::new(self.clone(), url)
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
pub struct Call<'a> {
    client: &'a Client,
    method: &'a str,
    args: Payload,
    timeout: Option<Duration>,
}

impl Call<'_> {
    /// Fails with [`Error::Timeout`] when no response arrives within `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<'a> IntoFuture for Call<'a> {
    type Output = Result<Value, Error>;
    type IntoFuture = BoxFuture<'a, Result<Value, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let conn = self
                .client
                .connection()
                .ok_or_else(|| Error::Send("not connected".into()))?;
            match conn.call(self.method, self.args, self.timeout).await {
                Err(Error::Timeout { method, after, .. }) => Err(Error::Timeout {
                    method,
                    url: self.client.inner.url.clone(),
                    after,
                }),
                other => other,
            }
        })
    }
}
