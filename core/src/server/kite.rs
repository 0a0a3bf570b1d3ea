//! The [`Kite`]: identity, configuration, method registry, authenticators, events and the
//! HTTP server that carries the `/kite` SockJS service.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::{validate_identity, Config};
use super::method::{final_fn, handler, Chain, Method, MethodBuilder, MethodHandling};
use super::request::Request;
use crate::client::{Client, Connection};
use crate::dnode::BoxFuture;
use crate::protocol::{Auth, Kite as KiteIdentity, KiteError};
use crate::sockjs::{ServeOptions, Session, SockJsServer};
use crate::Error;

/// Checks one authentication type: returns the authenticated username, or the reason.
pub type Authenticator =
    Arc<dyn Fn(AuthCheck) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// What an [`Authenticator`] gets.
#[derive(Debug, Clone)]
pub struct AuthCheck {
    /// The credential sent with the call.
    pub auth: Auth,
    /// The caller's claimed identity.
    pub caller: KiteIdentity,
    /// This kite's identity.
    pub local: KiteIdentity,
}

type ConnHook = Arc<dyn Fn(&Connection) + Send + Sync>;

#[derive(Default)]
struct Events {
    connect: Vec<ConnHook>,
    first_request: Vec<ConnHook>,
    disconnect: Vec<ConnHook>,
}

/// A kite: serves named methods to other kites and calls theirs. Cheap to clone.
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
    name: String,
    version: String,
    config: RwLock<Config>,
    methods: RwLock<HashMap<String, Arc<Method>>>,
    wide: RwLock<Chain>,
    handling: RwLock<MethodHandling>,
    authenticators: RwLock<HashMap<String, Authenticator>>,
    events: RwLock<Events>,
    routes: Mutex<axum::Router>,
    sockjs: Mutex<Option<SockJsServer>>,
    bound: watch::Sender<Option<SocketAddr>>,
    pub(crate) closed: CancellationToken,
    pub(crate) drain: Arc<super::drain::Drain>,
    verifier: RwLock<Option<crate::auth::Verifier>>,
    /// The TLS configuration and HTTP client every dial of this kite shares.
    dialer: Mutex<Option<crate::client::Dialer>>,
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

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Kite {
    /// A kite named `name` at `version` (three-part semver), configured from `kite.key` and
    /// the `KITE_*` environment ([`Config::from_env`]).
    pub fn new(name: &str, version: &str) -> Result<Kite, Error> {
        Self::with_config(name, version, Config::from_env()?)
    }

    /// A kite with an explicit configuration.
    ///
    /// A configuration without an id gives the kite a fresh random UUID.
    pub fn with_config(name: &str, version: &str, mut config: Config) -> Result<Kite, Error> {
        validate_identity(name, version)?;
        if config.id.is_empty() {
            config.id = uuid::Uuid::new_v4().to_string();
        }
        let kite = Kite {
            inner: Arc::new(Inner {
                name: name.to_string(),
                version: version.to_string(),
                config: RwLock::new(config),
                methods: RwLock::new(HashMap::new()),
                wide: RwLock::new(Chain::default()),
                handling: RwLock::new(MethodHandling::default()),
                authenticators: RwLock::new(HashMap::new()),
                events: RwLock::new(Events::default()),
                routes: Mutex::new(axum::Router::new()),
                sockjs: Mutex::new(None),
                bound: watch::channel(None).0,
                closed: CancellationToken::new(),
                drain: Arc::default(),
                verifier: RwLock::new(None),
                dialer: Mutex::new(None),
                extensions: Mutex::new(HashMap::new()),
            }),
        };
        super::authn::install_default_authenticators(&kite);
        super::defaults::install(&kite)?;
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

    /// This kite's identity.
    pub fn identity(&self) -> KiteIdentity {
        let c = read(&self.inner.config);
        KiteIdentity {
            username: c.username.clone(),
            environment: c.environment.clone(),
            name: self.inner.name.clone(),
            version: self.inner.version.clone(),
            region: c.region.clone(),
            hostname: c.hostname.clone(),
            id: c.id.clone(),
        }
    }

    /// A copy of the configuration.
    pub fn config(&self) -> Config {
        read(&self.inner.config).clone()
    }

    /// Changes the configuration (before serving or dialing).
    pub fn configure(&self, f: impl FnOnce(&mut Config)) {
        f(&mut write(&self.inner.config));
        *write(&self.inner.verifier) = None;
    }

    /// Registers an async handler. Registering a name twice is an error.
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
    /// k.handle("square", |req: kite::Request| async move {
    ///     let n: f64 = req.args().one()?;
    ///     Ok(n * n)
    /// })?
    /// .disable_authentication();
    /// # Ok(()) }
    /// ```
    pub fn handle<H, Fut, R>(&self, name: &str, h: H) -> Result<MethodBuilder, Error>
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
        R: Serialize + 'static,
    {
        let mut methods = write(&self.inner.methods);
        if methods.contains_key(name) {
            return Err(Error::DuplicateMethod(name.to_string()));
        }
        let authenticate = !read(&self.inner.config).disable_authentication;
        let method = Arc::new(Method::new(
            name.to_string(),
            handler(h),
            authenticate,
            *read(&self.inner.handling),
        ));
        methods.insert(name.to_string(), method.clone());
        Ok(MethodBuilder { method })
    }

    /// Registers a handler whose arguments are decoded as `A` (a tuple, `Vec` or struct);
    /// arguments of another shape get `argumentError` without calling it.
    pub fn handle_typed<A, H, Fut, R>(&self, name: &str, h: H) -> Result<MethodBuilder, Error>
    where
        A: DeserializeOwned + Send + 'static,
        H: Fn(Request, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
        R: Serialize + 'static,
    {
        let h = Arc::new(h);
        self.handle(name, move |req: Request| {
            let h = h.clone();
            async move {
                let args: A = req.decode()?;
                h(req, args).await
            }
        })
    }

    /// The builder of an already registered method (e.g. a default `kite.*` method), to
    /// change its settings.
    pub fn method_builder(&self, name: &str) -> Option<MethodBuilder> {
        self.method(name).map(|method| MethodBuilder { method })
    }

    /// Removes a method.
    pub fn remove_handler(&self, name: &str) -> bool {
        write(&self.inner.methods).remove(name).is_some()
    }

    /// Names of the registered methods.
    pub fn methods(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.inner.methods).keys().cloned().collect();
        v.sort();
        v
    }

    pub(crate) fn method(&self, name: &str) -> Option<Arc<Method>> {
        read(&self.inner.methods).get(name).cloned()
    }

    /// Kite-wide pre handler, appended to every method's list at its first call.
    pub fn pre_handle<H, Fut, R>(&self, h: H)
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
        R: Serialize + 'static,
    {
        write(&self.inner.wide).pre.push(handler(h));
    }

    /// Kite-wide post handler.
    pub fn post_handle<H, Fut, R>(&self, h: H)
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
        R: Serialize + 'static,
    {
        write(&self.inner.wide).post.push(handler(h));
    }

    /// Kite-wide final function.
    pub fn final_func<F, Fut>(&self, f: F)
    where
        F: Fn(Request, Option<Value>, Option<KiteError>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (Option<Value>, Option<KiteError>)> + Send + 'static,
    {
        write(&self.inner.wide).finals.push(final_fn(f));
    }

    pub(crate) fn kite_wide_chain(&self) -> Chain {
        let w = read(&self.inner.wide);
        Chain {
            pre: w.pre.clone(),
            post: w.post.clone(),
            finals: w.finals.clone(),
        }
    }

    /// Default handling mode of methods registered after this call.
    pub fn set_method_handling(&self, handling: MethodHandling) {
        *write(&self.inner.handling) = handling;
    }

    /// Adds (or replaces) the authenticator of authentication type `kind`.
    pub fn add_authenticator<F, Fut>(&self, kind: &str, f: F)
    where
        F: Fn(AuthCheck) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let f: Authenticator = Arc::new(move |c| Box::pin(f(c)));
        write(&self.inner.authenticators).insert(kind.to_string(), f);
    }

    pub(crate) fn authenticator(&self, kind: &str) -> Option<Authenticator> {
        read(&self.inner.authenticators).get(kind).cloned()
    }

    pub(crate) fn verifier(&self) -> crate::auth::Verifier {
        if let Some(v) = read(&self.inner.verifier).as_ref() {
            return v.clone();
        }
        let v = super::authn::build_verifier(&read(&self.inner.config));
        *write(&self.inner.verifier) = Some(v.clone());
        v
    }

    /// The TLS configuration and HTTP client of this kite's dials, built once per
    /// configuration (rebuilt only when the trust settings change).
    pub(crate) fn dialer(&self) -> crate::client::Dialer {
        let (trust, timeout) = {
            let c = read(&self.inner.config);
            (c.tls_trust(), c.handshake_timeout)
        };
        let mut slot = lock(&self.inner.dialer);
        if let Some(d) = slot.as_ref().filter(|d| d.matches(&trust, timeout)) {
            return d.clone();
        }
        let d = crate::client::Dialer::new(trust, timeout);
        *slot = Some(d.clone());
        d
    }

    /// Runs `f` for every new connection (accepted or dialed).
    pub fn on_connect(&self, f: impl Fn(&Connection) + Send + Sync + 'static) {
        write(&self.inner.events).connect.push(Arc::new(f));
    }

    /// Runs `f` when a connection makes its first request (the caller's identity is known).
    pub fn on_first_request(&self, f: impl Fn(&Connection) + Send + Sync + 'static) {
        write(&self.inner.events).first_request.push(Arc::new(f));
    }

    /// Runs `f` when a connection ends.
    pub fn on_disconnect(&self, f: impl Fn(&Connection) + Send + Sync + 'static) {
        write(&self.inner.events).disconnect.push(Arc::new(f));
    }

    pub(crate) fn fire_connect(&self, c: &Connection) {
        let hooks = read(&self.inner.events).connect.clone();
        hooks.iter().for_each(|h| h(c));
    }

    pub(crate) fn fire_first_request(&self, c: &Connection) {
        let hooks = read(&self.inner.events).first_request.clone();
        hooks.iter().for_each(|h| h(c));
    }

    pub(crate) fn fire_disconnect(&self, c: &Connection) {
        let hooks = read(&self.inner.events).disconnect.clone();
        hooks.iter().for_each(|h| h(c));
    }

    /// Adds HTTP routes served beside `/kite` (e.g. a health check).
    pub fn merge_routes(&self, router: axum::Router) {
        let mut r = lock(&self.inner.routes);
        *r = std::mem::take(&mut *r).merge(router);
    }

    /// The kite's HTTP app: the `/kite` SockJS service plus the extra routes.
    pub fn router(&self) -> axum::Router {
        let sockjs = {
            let mut s = lock(&self.inner.sockjs);
            s.get_or_insert_with(|| {
                // Weak: the kite owns this server (a strong handle would keep both alive
                // forever); a session that arrives after the kite is gone is closed.
                let kite = self.downgrade();
                let config = read(&self.inner.config).sockjs.clone();
                SockJsServer::new(config, move |session: Session| {
                    let kite = kite.upgrade();
                    async move {
                        match kite {
                            Some(kite) => Connection::accept(kite, session).await,
                            None => {
                                session.close();
                            }
                        }
                    }
                })
            })
            .clone()
        };
        let extra = lock(&self.inner.routes).clone();
        extra.merge(sockjs.router("/kite"))
    }

    /// Binds the configured IP and port (0 = ephemeral) and serves in the background.
    /// Returns the bound address; [`Kite::port`] and [`Kite::ready`] report it too.
    pub async fn listen(&self) -> Result<SocketAddr, Error> {
        let (ip, port, tls, header_read_timeout, max_connections) = {
            let c = read(&self.inner.config);
            let limits = (c.header_read_timeout, c.max_connections);
            (c.ip.clone(), c.port, c.tls.clone(), limits.0, limits.1)
        };
        let listener = tokio::net::TcpListener::bind((ip.as_str(), port)).await?;
        let addr = listener.local_addr()?;
        let app = self.router();
        let options = ServeOptions {
            header_read_timeout,
            max_connections,
            shutdown: self.inner.closed.clone(),
            tls: match tls {
                Some((cert, key)) => Some(crate::sockjs::server::tls_config(&cert, &key)?),
                None => None,
            },
        };
        // A listening kite stays alive until closed, handles or not.
        let serving = self.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::sockjs::serve(listener, app, options).await {
                tracing::error!(error = %e, "kite server stopped");
            }
            drop(serving);
        });
        tracing::info!(kite = %self.identity(), %addr, "serving");
        self.inner.bound.send_replace(Some(addr));
        Ok(addr)
    }

    /// Serves until [`Kite::close`] is called and its drain is over.
    pub async fn run(&self) -> Result<(), Error> {
        self.listen().await?;
        self.inner.closed.cancelled().await;
        Ok(())
    }

    /// The bound port, once listening.
    pub fn port(&self) -> Option<u16> {
        self.inner.bound.borrow().map(|a| a.port())
    }

    /// Waits until the kite is listening; returns its address.
    pub async fn ready(&self) -> SocketAddr {
        let mut rx = self.inner.bound.subscribe();
        loop {
            if let Some(a) = *rx.borrow_and_update() {
                return a;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The URL to register to Kontrol, what kites on other hosts dial:
    /// [`Config::register_url`] (`KITE_REGISTER_URL`) when set, else
    /// `http(s)://HOST:PORT/kite` where HOST is the bound address or, when listening on
    /// every interface, the machine's first non-loopback address
    /// ([`addrs::register_host`](super::addrs::register_host)). None until listening.
    pub fn register_url(&self) -> Option<String> {
        if let Some(u) = read(&self.inner.config).register_url.clone() {
            return Some(u);
        }
        self.register_url_from(&super::addrs::interface_addrs())
    }

    /// [`Kite::register_url`] with the interface list given (tests inject one).
    pub fn register_url_from(&self, interfaces: &[super::addrs::InterfaceAddr]) -> Option<String> {
        let addr = (*self.inner.bound.borrow())?;
        let c = read(&self.inner.config);
        if let Some(u) = c.register_url.clone() {
            return Some(u);
        }
        let scheme = if c.tls.is_some() { "https" } else { "http" };
        let host = super::addrs::url_host(super::addrs::register_host(addr.ip(), interfaces));
        Some(format!("{scheme}://{host}:{}/kite", addr.port()))
    }

    /// The URL to dial this kite from the same host: `http(s)://HOST:PORT/kite`
    /// (127.0.0.1 when listening on all interfaces). Register [`Kite::register_url`].
    pub fn url(&self) -> Option<String> {
        let addr = (*self.inner.bound.borrow())?;
        let c = read(&self.inner.config);
        let scheme = if c.tls.is_some() { "https" } else { "http" };
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            super::addrs::url_host(addr.ip())
        };
        Some(format!("{scheme}://{host}:{}/kite", addr.port()))
    }

    /// The end of [`Kite::close`]: stops serving and closes every connection.
    pub(crate) fn finish_close(&self) {
        self.inner.closed.cancel();
        // What the kite owns that may hold the kite (its SockJS service, the Kontrol
        // client's state) goes, so that a closed kite is freed with its last handle.
        let sockjs = lock(&self.inner.sockjs).take();
        drop(sockjs);
        let extensions = std::mem::take(&mut *lock(&self.inner.extensions));
        drop(extensions);
    }

    /// A client to the kite at `url`, on behalf of this kite (it can serve callbacks and
    /// this kite's methods to the remote side).
    pub fn client(&self, url: &str) -> Client {
        Client::new(self.clone(), url)
    }
}
