//! The [`Client`] handle: its shared state, settings and events.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::peer::Connection;
use crate::protocol::{Auth, Kite as KiteIdentity};
use crate::server::Kite;
use crate::sockjs::Transport;
use crate::DialError;

pub(super) type Hook = Arc<dyn Fn() + Send + Sync>;

#[derive(Default, Clone)]
pub(super) struct Hooks {
    pub(super) connect: Vec<Hook>,
    pub(super) disconnect: Vec<Hook>,
    pub(super) token_expire: Vec<Hook>,
    pub(super) token_renew: Vec<Hook>,
}

pub(super) struct Inner {
    pub(super) local: Kite,
    pub(super) url: String,
    pub(super) transport: ArcSwap<Transport>,
    pub(super) auth: ArcSwapOption<Auth>,
    pub(super) remote: ArcSwap<KiteIdentity>,
    pub(super) conn: watch::Sender<Option<Connection>>,
    pub(super) hooks: ArcSwap<Hooks>,
    pub(super) closed: CancellationToken,
    pub(super) forever: AtomicBool,
    /// Where the URL came from (kite.key, an environment variable, a flag), for errors.
    pub(super) origin: ArcSwapOption<String>,
    /// Dial attempts finished so far, and the failure of the last one (`None`: it connected).
    pub(super) attempts: watch::Sender<(u64, Option<DialError>)>,
    /// Wakes a [`Client::dial_forever`] loop sleeping between attempts.
    pub(super) retry_now: Notify,
    /// A redial loop is running.
    pub(super) redialing: std::sync::atomic::AtomicBool,
    /// Longest wait between redials, in milliseconds (see [`Client::set_redial_max`]); 0: the
    /// default cap.
    pub(super) redial_max_ms: std::sync::atomic::AtomicU64,
    /// One one-shot dial at a time from [`Client::connected_or_cause`].
    pub(super) dial_lock: tokio::sync::Mutex<()>,
    /// The TLS failure of the latest background dial (cleared by a successful one), so that
    /// waiters get it at once instead of waiting into a timeout.
    pub(super) tls_failure: watch::Sender<Option<(String, String)>>,
}

/// A client to one remote kite. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(local: Kite, url: &str) -> Client {
        let transport = local.config().transport;
        let kite_key = local.kite_key();
        let auth = (!kite_key.is_empty()).then(|| Auth::kite_key(kite_key));
        Client {
            inner: Arc::new(Inner {
                local,
                url: url.to_string(),
                transport: ArcSwap::from_pointee(transport),
                auth: ArcSwapOption::new(auth.map(Arc::new)),
                remote: ArcSwap::from_pointee(KiteIdentity::default()),
                conn: watch::channel(None).0,
                hooks: ArcSwap::default(),
                closed: CancellationToken::new(),
                forever: AtomicBool::new(false),
                origin: ArcSwapOption::empty(),
                attempts: watch::channel((0, None)).0,
                retry_now: Notify::new(),
                redialing: std::sync::atomic::AtomicBool::new(false),
                redial_max_ms: std::sync::atomic::AtomicU64::new(0),
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
        self.inner.origin.store(origin.map(Arc::new));
    }

    /// Why the last dial failed; `None` when it succeeded or none was made yet.
    pub fn last_dial_error(&self) -> Option<DialError> {
        self.inner.attempts.borrow().1.clone()
    }

    /// Uses `transport` for the next dial (default: the kite's, i.e. `KITE_TRANSPORT` or auto).
    pub fn set_transport(&self, transport: Transport) {
        self.inner.transport.store(Arc::new(transport));
    }

    /// Sends `auth` with every call (default: the kite's kite key, if it has one).
    pub fn set_auth(&self, auth: Option<Auth>) {
        self.inner.auth.store(auth.clone().map(Arc::new));
        if let Some(c) = self.connection() {
            c.set_auth(auth);
        }
    }

    /// The credentials sent with calls.
    pub fn auth(&self) -> Option<Auth> {
        self.inner.auth.load().as_deref().cloned()
    }

    /// Records the remote kite's identity (e.g. from Kontrol).
    pub fn set_remote_kite(&self, k: KiteIdentity) {
        self.inner.remote.store(Arc::new(k.clone()));
        if let Some(c) = self.connection() {
            c.set_remote_kite(k);
        }
    }

    /// The remote kite's identity, when known.
    pub fn remote_kite(&self) -> KiteIdentity {
        KiteIdentity::clone(&self.inner.remote.load())
    }

    /// The current connection, if connected.
    pub fn connection(&self) -> Option<Connection> {
        self.inner.conn.borrow().clone().filter(|c| !c.is_closed())
    }

    /// Whether connected now.
    pub fn is_connected(&self) -> bool {
        self.connection().is_some()
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
        self.add_hook(|h| &mut h.connect, Arc::new(f));
    }

    /// Runs `f` when the connection drops.
    pub fn on_disconnect(&self, f: impl Fn() + Send + Sync + 'static) {
        self.add_hook(|h| &mut h.disconnect, Arc::new(f));
    }

    /// Runs `f` when a call fails with "token is expired".
    pub fn on_token_expire(&self, f: impl Fn() + Send + Sync + 'static) {
        self.add_hook(|h| &mut h.token_expire, Arc::new(f));
    }

    /// Runs `f` when the token was renewed.
    pub fn on_token_renew(&self, f: impl Fn() + Send + Sync + 'static) {
        self.add_hook(|h| &mut h.token_renew, Arc::new(f));
    }

    /// Replaces the token sent with calls and fires the token-renew events.
    pub fn renew_token(&self, token: String) {
        self.set_auth(Some(Auth::token(token)));
        self.fire(|h| &h.token_renew);
    }

    /// Adds a hook (a copy of the hook lists replaces them; firing takes no lock).
    fn add_hook(&self, pick: impl Fn(&mut Hooks) -> &mut Vec<Hook>, hook: Hook) {
        self.inner.hooks.rcu(|current| {
            let mut hooks = Hooks::clone(current);
            pick(&mut hooks).push(hook.clone());
            hooks
        });
    }

    pub(super) fn fire(&self, pick: impl Fn(&Hooks) -> &Vec<Hook>) {
        let hooks = pick(&self.inner.hooks.load()).clone();
        hooks.iter().for_each(|h| h());
    }
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
