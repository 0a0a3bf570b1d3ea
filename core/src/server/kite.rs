//! The [`Kite`]: identity and configuration fixed at construction, a copy-on-write table of
//! methods, authenticators and kite-wide handlers, events, and per-kite extensions.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::authn::{default_authenticators, AuthCheck, Authenticator, Keys};
use super::config::{validate_identity, Config};
use super::method::{final_fn, handler, Chain, Method, MethodHandling};
use super::request::Request;
use crate::auth::{AuthError, Verifier};
use crate::dnode::IntoPayload;
use crate::peer::{Connection, PeerConfig};
use crate::protocol::{Kite as KiteIdentity, KiteError};
use crate::sockjs::SockJsServer;
use crate::Error;

type ConnHook = Arc<dyn Fn(&Connection) + Send + Sync>;

/// Connection events' hooks.
#[derive(Default, Clone)]
pub(crate) struct Events {
    pub(crate) connect: Vec<ConnHook>,
    pub(crate) first_request: Vec<ConnHook>,
    pub(crate) disconnect: Vec<ConnHook>,
}

/// What calls read: replaced whole on every change, read without a lock.
#[derive(Default, Clone)]
pub(crate) struct Table {
    pub(crate) methods: HashMap<String, Arc<Method>>,
    /// Kite-wide pre/post handlers and final functions, run by every method.
    pub(crate) wide: Chain,
    /// Handling mode of methods that do not choose one.
    handling: MethodHandling,
    pub(crate) authenticators: HashMap<String, Authenticator>,
}

struct Trust {
    keys: Keys,
    verifier: Verifier,
}

/// A kite: serves named methods to other kites and calls theirs. Cheap to clone.
///
/// Identity and [`Config`] are fixed when the kite is created. Methods are registered whole
/// ([`Kite::handle`], [`Kite::add_method`]) and changed by replacing them
/// ([`Kite::replace_method`]); calls read the method table without taking a lock.
///
/// A kite lives while a handle to it exists, and while it listens (until [`Kite::close`]).
/// Handlers that need their own kite should capture a [`WeakKite`] ([`Kite::downgrade`]):
/// a handler holding a `Kite` keeps it, and everything it owns, alive forever.
#[derive(Clone)]
pub struct Kite {
    pub(crate) inner: Arc<Inner>,
}

/// A handle to a [`Kite`] that does not keep it alive ([`Kite::downgrade`]).
#[derive(Clone, Debug)]
pub struct WeakKite(std::sync::Weak<Inner>);

impl WeakKite {
    /// The kite, unless it has been freed.
    pub fn upgrade(&self) -> Option<Kite> {
        self.0.upgrade().map(|inner| Kite { inner })
    }
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    /// The identity, and what every connection shares (sent with every call).
    pub(crate) peer: Arc<PeerConfig>,
    pub(crate) table: ArcSwap<Table>,
    /// Serializes the writers of `table` (registrations are rare; reads never wait).
    writing: Mutex<()>,
    pub(crate) events: ArcSwap<Events>,
    keys: ArcSwap<Trust>,
    pub(crate) routes: Mutex<axum::Router>,
    pub(crate) sockjs: Mutex<Option<SockJsServer>>,
    pub(crate) bound: watch::Sender<Option<SocketAddr>>,
    pub(crate) closed: CancellationToken,
    pub(crate) drain: Arc<super::drain::Drain>,
    /// The kite's Prometheus registry, when [`Config::metrics`] is on.
    pub(crate) metrics: Option<Arc<crate::metrics::Metrics>>,
    /// State of higher layers (e.g. the Kontrol client), one value per type.
    extensions: Mutex<HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>>,
}

impl std::fmt::Debug for Kite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kite")
            .field("identity", &self.identity().to_string())
            .finish()
    }
}

/// Locks a mutex whose holders never panic while holding it (short map/vector updates).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Kite {
    /// A kite named `name` at `version` (three-part semver), configured from `kite.key` and
    /// the `KITE_*` environment ([`Config::from_env`]).
    pub fn new(name: &str, version: &str) -> Result<Kite, Error> {
        Self::with_config(name, version, Config::from_env()?)
    }

    /// A kite with an explicit configuration, fixed from now on.
    ///
    /// A configuration without an id gives the kite a fresh random UUID.
    pub fn with_config(name: &str, version: &str, mut config: Config) -> Result<Kite, Error> {
        validate_identity(name, version)?;
        if config.id.is_empty() {
            config.id = uuid::Uuid::new_v4().to_string();
        }
        let identity = KiteIdentity {
            username: config.username.clone(),
            environment: config.environment.clone(),
            name: name.to_string(),
            version: version.to_string(),
            region: config.region.clone(),
            hostname: config.hostname.clone(),
            id: config.id.clone(),
        };
        let closed = CancellationToken::new();
        let metrics = config
            .metrics
            .then(|| Arc::new(crate::metrics::Metrics::new()));
        let peer = Arc::new(PeerConfig {
            metrics: metrics.as_ref().map(|m| m.peer().clone()),
            tracing: config.tracing,
            identity,
            timeout: config.timeout,
            max_callbacks: config.max_callbacks,
            max_calls_in_flight: config.max_calls_in_flight,
            max_bytes_in_flight: config.max_bytes_in_flight,
            sequential: config.disable_concurrency,
            closed: closed.clone(),
        });
        let keys = Keys {
            kite_key: config.kite_key.clone(),
            kontrol_key: config.kontrol_key.clone(),
            kontrol_user: config.kontrol_user.clone(),
        };
        let keys = Trust {
            verifier: super::authn::build_verifier(&config, &keys),
            keys,
        };
        let table = Table {
            authenticators: default_authenticators(),
            ..Table::default()
        };
        let kite = Kite {
            inner: Arc::new(Inner {
                config,
                peer,
                table: ArcSwap::from_pointee(table),
                writing: Mutex::new(()),
                events: ArcSwap::default(),
                keys: ArcSwap::from_pointee(keys),
                routes: Mutex::new(axum::Router::new()),
                sockjs: Mutex::new(None),
                bound: watch::channel(None).0,
                closed,
                drain: Arc::default(),
                metrics,
                extensions: Mutex::new(HashMap::new()),
            }),
        };
        for m in super::defaults::methods() {
            kite.add_method(m)?;
        }
        if kite.inner.config.use_webrtc {
            let relay = kite.extension::<super::webrtc::Relay>();
            kite.add_method(super::webrtc::relay_method(relay))?;
        }
        Ok(kite)
    }

    /// A handle that does not keep the kite alive.
    pub fn downgrade(&self) -> WeakKite {
        WeakKite(Arc::downgrade(&self.inner))
    }

    /// The kite's value of type `T` (created with `Default` on first use), for state that
    /// higher layers keep per kite.
    pub(crate) fn extension<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut map = lock(&self.inner.extensions);
        let any = map
            .entry(std::any::TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()) as Arc<dyn std::any::Any + Send + Sync>)
            .clone();
        drop(map);
        any.downcast::<T>()
            .unwrap_or_else(|_| Arc::new(T::default()))
    }

    pub(crate) fn clear_extensions(&self) {
        let extensions = std::mem::take(&mut *lock(&self.inner.extensions));
        drop(extensions);
    }

    /// This kite's identity.
    pub fn identity(&self) -> &KiteIdentity {
        &self.inner.peer.identity
    }

    /// The configuration (fixed when the kite was created).
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The kite's metrics registry, when [`Config::metrics`] is on: add metrics of your
    /// own to it; it is served at `/metrics`.
    pub fn metrics(&self) -> Option<&Arc<crate::metrics::Metrics>> {
        self.inner.metrics.as_ref()
    }

    /// What this kite's connections share.
    pub(crate) fn peer_config(&self) -> Arc<PeerConfig> {
        self.inner.peer.clone()
    }

    /// The keys in use: the configured ones, or those Kontrol handed out since.
    pub fn keys(&self) -> Keys {
        self.inner.keys.load().keys.clone()
    }

    /// The kite key sent as `kiteKey` authentication.
    pub fn kite_key(&self) -> String {
        self.inner.keys.load().keys.kite_key.clone()
    }

    /// Changes the keys (what Kontrol hands out when it rotates its key or re-signs this
    /// kite's key); calls authenticated from now on use them.
    pub fn update_keys(&self, f: impl FnOnce(&mut Keys)) {
        let _writer = lock(&self.inner.writing);
        let mut keys = self.inner.keys.load().keys.clone();
        f(&mut keys);
        let verifier = super::authn::build_verifier(&self.inner.config, &keys);
        self.inner.keys.store(Arc::new(Trust { keys, verifier }));
    }

    pub(crate) fn verifier(&self) -> Verifier {
        self.inner.keys.load().verifier.clone()
    }

    /// The current table (methods, kite-wide handlers, authenticators).
    pub(crate) fn table(&self) -> arc_swap::Guard<Arc<Table>> {
        self.inner.table.load()
    }

    /// Replaces the table with `f` applied to a copy of it.
    fn update<T>(&self, f: impl FnOnce(&mut Table) -> Result<T, Error>) -> Result<T, Error> {
        let _writer = lock(&self.inner.writing);
        let mut table = Table::clone(&self.inner.table.load());
        let out = f(&mut table)?;
        self.inner.table.store(Arc::new(table));
        Ok(out)
    }

    /// Registers an async handler with the default options. Registering a name twice is
    /// an error. A handler returns `Result<R, E>` (see [`Method::new`]).
    ///
    /// Requests of one connection run concurrently (unless
    /// [`Config::disable_concurrency`](crate::Config::disable_concurrency)), interleaved on
    /// that connection's task: a handler is polled first as soon as its request is read, and
    /// one that waits (for I/O, a timer, another kite) keeps waiting there without holding
    /// anything up. Like any async code, a handler must not block: move long CPU work or
    /// blocking calls to [`tokio::task::spawn_blocking`] (or `tokio::spawn` it), or it delays
    /// the other requests of its connection.
    ///
    /// ```no_run
    /// # fn f(k: &kite::Kite) -> Result<(), kite::Error> {
    /// async fn square(req: kite::Request) -> Result<f64, kite::KiteError> {
    ///     let n: f64 = req.args().one()?;
    ///     Ok(n * n)
    /// }
    /// k.handle("square", square)?;
    /// # Ok(()) }
    /// ```
    pub fn handle<H, Fut, R, E>(&self, name: &str, h: H) -> Result<(), Error>
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoPayload + 'static,
        E: Into<KiteError> + 'static,
    {
        self.add_method(Method::new(name, h))
    }

    /// Registers a handler whose arguments are decoded as `A` (see [`Method::typed`]).
    pub fn handle_typed<A, H, Fut, R, E>(&self, name: &str, h: H) -> Result<(), Error>
    where
        A: DeserializeOwned + Send + 'static,
        H: Fn(Request, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoPayload + 'static,
        E: Into<KiteError> + 'static,
    {
        self.add_method(Method::typed(name, h))
    }

    /// Registers a method with all its options. Registering a name twice is an error.
    pub fn add_method(&self, method: Method) -> Result<(), Error> {
        let authenticate = !self.inner.config.disable_authentication;
        self.update(|t| {
            if t.methods.contains_key(&method.name) {
                return Err(Error::DuplicateMethod(method.name.clone()));
            }
            let m = self.with_metrics(method.resolve(authenticate, t.handling));
            t.methods.insert(m.name.clone(), Arc::new(m));
            Ok(())
        })
    }

    /// Registers `method`, replacing the method of that name if there is one (calls in
    /// progress finish with the old one). Returns whether one was replaced.
    pub fn replace_method(&self, method: Method) -> bool {
        let authenticate = !self.inner.config.disable_authentication;
        self.update(|t| {
            let m = self.with_metrics(method.resolve(authenticate, t.handling));
            Ok(t.methods.insert(m.name.clone(), Arc::new(m)).is_some())
        })
        .unwrap_or(false)
    }

    /// `m` with its call counters and histogram, when metrics are on.
    fn with_metrics(&self, mut m: Method) -> Method {
        m.metrics = self.metrics().map(|x| x.method(&m.name));
        m
    }

    /// The method registered as `name` (a copy): change it and register it again with
    /// [`Kite::replace_method`].
    pub fn method(&self, name: &str) -> Option<Method> {
        self.table().methods.get(name).map(|m| Method::clone(m))
    }

    /// Removes a method.
    pub fn remove_handler(&self, name: &str) -> bool {
        self.update(|t| Ok(t.methods.remove(name).is_some()))
            .unwrap_or(false)
    }

    /// Names of the registered methods.
    pub fn methods(&self) -> Vec<String> {
        let mut v: Vec<String> = self.table().methods.keys().cloned().collect();
        v.sort();
        v
    }

    /// Kite-wide pre handler, run before every method's own (from the next call on).
    pub fn pre_handle<H, Fut, R, E>(&self, h: H)
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoPayload + 'static,
        E: Into<KiteError> + 'static,
    {
        let h = handler(h);
        let _ = self.update(|t| {
            let _: () = t.wide.pre.push(h);
            Ok(())
        });
    }

    /// Kite-wide post handler, run after every method's own.
    pub fn post_handle<H, Fut, R, E>(&self, h: H)
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoPayload + 'static,
        E: Into<KiteError> + 'static,
    {
        let h = handler(h);
        let _ = self.update(|t| {
            let _: () = t.wide.post.push(h);
            Ok(())
        });
    }

    /// Kite-wide final function.
    pub fn final_func<F, Fut>(&self, f: F)
    where
        F: Fn(Request, Option<Value>, Option<KiteError>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (Option<Value>, Option<KiteError>)> + Send + 'static,
    {
        let f = final_fn(f);
        let _ = self.update(|t| {
            let _: () = t.wide.finals.push(f);
            Ok(())
        });
    }

    /// Handling mode of methods registered after this call that do not choose one.
    pub fn set_method_handling(&self, handling: MethodHandling) {
        let _ = self.update(|t| {
            let _: () = t.handling = handling;
            Ok(())
        });
    }

    /// Adds (or replaces) the authenticator of authentication type `kind`.
    pub fn add_authenticator<F, Fut>(&self, kind: &str, f: F)
    where
        F: Fn(AuthCheck) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, AuthError>> + Send + 'static,
    {
        let f: Authenticator = Arc::new(move |c| Box::pin(f(c)));
        let _ = self.update(|t| Ok(t.authenticators.insert(kind.to_string(), f)));
    }

    fn add_event(&self, pick: impl FnOnce(&mut Events) -> &mut Vec<ConnHook>, hook: ConnHook) {
        let _writer = lock(&self.inner.writing);
        let mut events = Events::clone(&self.inner.events.load());
        pick(&mut events).push(hook);
        self.inner.events.store(Arc::new(events));
    }

    /// Runs `f` for every new connection (accepted or dialed).
    pub fn on_connect(&self, f: impl Fn(&Connection) + Send + Sync + 'static) {
        self.add_event(|e| &mut e.connect, Arc::new(f));
    }

    /// Runs `f` when a connection makes its first request (the caller's identity is known).
    pub fn on_first_request(&self, f: impl Fn(&Connection) + Send + Sync + 'static) {
        self.add_event(|e| &mut e.first_request, Arc::new(f));
    }

    /// Runs `f` when a connection ends.
    pub fn on_disconnect(&self, f: impl Fn(&Connection) + Send + Sync + 'static) {
        self.add_event(|e| &mut e.disconnect, Arc::new(f));
    }
}

/// WebRTC signalling (the relay itself is in `webrtc.rs`).
impl Kite {
    /// Registers `kite.handleWebRTC` for the signalling messages relayed to this kite (by
    /// its Kontrol or another relay kite): `f` gets each message with `src` set by the
    /// relay; its error goes back to the sender. A kite that is itself a relay
    /// ([`Config::use_webrtc`](super::Config::use_webrtc)) already serves the name: this
    /// then fails as a duplicate.
    pub fn handle_webrtc<F, Fut>(&self, f: F) -> Result<(), Error>
    where
        F: Fn(crate::protocol::SignalMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), KiteError>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.handle(
            crate::protocol::METHOD_HANDLE_WEBRTC,
            move |req: Request| {
                let f = f.clone();
                async move { f(super::webrtc::message(&req)?).await }
            },
        )
    }

    /// The kite ids in this kite's signalling relay (empty unless
    /// [`Config::use_webrtc`](super::Config::use_webrtc)), sorted.
    pub fn webrtc_peers(&self) -> Vec<String> {
        self.extension::<super::webrtc::Relay>().ids()
    }
}
