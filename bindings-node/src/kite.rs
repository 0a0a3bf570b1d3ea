//! The [`Kite`] class: configuration, methods and their handlers, authenticators, events,
//! serving, and clients to other kites.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{Function, PromiseRaw, This};
use napi::Env;
use serde_json::{json, Value};

use crate::bridge::{Bridge, Event, EventArg, Job, Subject};
use crate::client::{Client, ClientOptions};
use crate::dispatch::new_bridge;
use crate::errors;
use crate::jsfn;
use crate::method::{handling, run_final, run_handler, Method, MethodOptions};
use crate::state::{adopt_client, close_state, listen_with, State};
use crate::types::KiteIdentity;
use kite::server::{Options, TimeUnit};

/// Options of a new kite. Every field but `name` and `version` defaults to the `KITE_*`
/// environment, then `kite.key` (`$KITE_HOME/kite.key`, default `~/.kite/kite.key`), then the
/// reference's defaults. The core checks them (`kite::server::Options`, the same options as
/// Python's keyword arguments): a bad value throws `configError` naming the option.
#[napi(object)]
#[derive(Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KiteOptions {
    /// The kite's name, e.g. `math`.
    #[serde(skip)]
    pub name: String,
    /// Three-part semantic version, e.g. `1.0.0`.
    #[serde(skip)]
    pub version: String,
    /// Owner. Default: `KITE_USERNAME`, the kite key's subject, or `unknown`.
    pub username: Option<String>,
    /// Default: `KITE_ENVIRONMENT` or `unknown`.
    pub environment: Option<String>,
    /// Default: `KITE_REGION` or `unknown`.
    pub region: Option<String>,
    /// Kite id. Default: a fresh random UUID per kite.
    pub id: Option<String>,
    /// Host name reported in the identity. Default: the machine's.
    pub hostname: Option<String>,
    /// Address to listen on. Default: `KITE_IP` or `0.0.0.0`.
    pub ip: Option<String>,
    /// Port to listen on (0: any free one). Default: `KITE_PORT` or 0.
    pub port: Option<u32>,
    /// The kite key (JWT) sent as `kiteKey` authentication. Default: read from `kite.key`.
    pub kite_key: Option<String>,
    /// Kontrol's URL. Default: `KITE_KONTROL_URL` or the kite key's.
    pub kontrol_url: Option<String>,
    /// Kontrol's public key (PEM), trusted for kite keys and tokens. Default: the kite key's.
    pub kontrol_key: Option<String>,
    /// Kontrol's username, the expected issuer of tokens. Default: the kite key's.
    pub kontrol_user: Option<String>,
    /// Serve every method without authentication. Default: false.
    pub disable_authentication: Option<bool>,
    /// Handle the requests of one connection one after another. Default: false.
    pub disable_concurrency: Option<bool>,
    /// Serve Prometheus metrics at `/metrics` beside `/kite`. Default: `KITE_METRICS` or
    /// false.
    pub metrics: Option<bool>,
    /// Carry W3C trace context in calls and make `kite.call`/`kite.request` spans, exported
    /// by the process's OTLP exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`; see `flushTraces`).
    /// Default: `KITE_TRACING`, or true when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub tracing: Option<bool>,
    /// Transport of clients: `auto` (websocket, then XHR polling), `WebSocket` or
    /// `XHRPolling`. Default: `KITE_TRANSPORT` or `auto`.
    #[napi(ts_type = "'auto' | 'WebSocket' | 'XHRPolling'")]
    pub transport: Option<String>,
    /// Call timeout in milliseconds. Default: `KITE_TIMEOUT` or 15000.
    pub timeout: Option<f64>,
    /// Websocket/HTTP handshake timeout in milliseconds. Default: 15000.
    pub handshake_timeout: Option<f64>,
    /// How long a Kontrol key accepted by a verify function stays trusted, in
    /// milliseconds. Default: 5 minutes.
    pub verify_ttl: Option<f64>,
    /// PEM certificate and key files: serve HTTPS. Default: none.
    pub tls: Option<TlsOptions>,
    /// Default handling mode of methods: `method` (the main handler's result), `first` or
    /// `latest` (the first/last non-null result of pre, main and post handlers).
    /// Default: `method`.
    #[napi(ts_type = "MethodHandling")]
    pub method_handling: Option<String>,
    /// Relay WebRTC signalling between the kites connected to this one
    /// (`kite.handleWebRTC`; typically on Kontrol). Default: `KITE_USE_WEBRTC` or false.
    #[napi(js_name = "useWebRTC")]
    #[serde(rename = "useWebRTC")]
    pub use_webrtc: Option<bool>,
    /// How long `close()` lets calls in flight finish, in milliseconds. Default: 10000.
    pub drain_timeout: Option<f64>,
    /// Time a client has to send a whole HTTP request head, in milliseconds. Default: 10000.
    pub header_read_timeout: Option<f64>,
    /// Time allowed to receive a whole `xhr_send` body, in milliseconds. Default: 10000.
    pub body_read_timeout: Option<f64>,
    /// Connections served at once; further clients wait in the backlog. Default: 20000.
    pub max_connections: Option<i64>,
    /// Incoming calls of one connection in flight at once; reading pauses beyond. Default: 128.
    pub max_calls_in_flight: Option<i64>,
    /// Bytes of incoming calls of one connection in flight; reading pauses beyond.
    /// Default: 8 MiB.
    pub max_bytes_in_flight: Option<i64>,
    /// Entries in one connection's callback table; beyond, a clear error. Default: 10000.
    pub max_callbacks: Option<i64>,
    /// Largest message accepted from a peer, in bytes. Default: 16 MiB.
    pub max_message_size: Option<i64>,
    /// HTTP-transport (XHR) sessions open at once. Default: 10000.
    pub max_sessions: Option<i64>,
    /// HTTP-transport sessions open at once per client address. Default: 100.
    pub max_sessions_per_client: Option<i64>,
    /// IP addresses of proxies whose `X-Forwarded-For` names the client. Default: none.
    pub trusted_proxies: Option<Vec<String>>,
}

/// A kite configured from the environment, `kite.key` and `options` (through the core's
/// [`kite::server::Options`], times in milliseconds).
fn configured(name: &str, version: &str, options: &KiteOptions) -> Result<kite::Kite, kite::Error> {
    let json = serde_json::to_value(options).map_err(|e| kite::Error::Config(e.to_string()))?;
    let options = Options::from_json(json, TimeUnit::Milliseconds)?;
    let handling = options.method_handling()?;
    let mut config = kite::Config::from_env()?;
    options.apply(&mut config)?;
    let kite = kite::Kite::with_config(name, version, config)?;
    if let Some(m) = handling {
        kite.set_method_handling(m);
    }
    Ok(kite)
}

/// Certificate and key files (PEM) to serve HTTPS.
#[napi(object)]
#[derive(serde::Serialize)]
pub struct TlsOptions {
    /// Certificate chain file.
    pub cert: String,
    /// Private key file.
    pub key: String,
}

/// Counts of what a kite keeps for JavaScript, for leak checks.
#[napi(object)]
pub struct HandleCounts {
    /// JavaScript functions kept: handlers, listeners, and functions passed as callbacks
    /// that the remote side may still call.
    pub functions: u32,
    /// Calls into JavaScript that have not settled yet.
    pub pending: u32,
}

/// A kite: serves named methods to other kites and calls theirs.
///
/// ```js
/// const k = new Kite({ name: 'math', version: '1.0.0' })
/// k.handle('square', (req) => req.args[0] ** 2, { auth: false })
/// await k.listen(0)
/// const c = k.client(k.url); await c.dial()
/// await c.tell('square', [4])          // 16
/// c.close(); k.close()
/// ```
#[napi]
pub struct Kite {
    state: Arc<State>,
}

#[napi]
impl Kite {
    /// A kite named `options.name` at `options.version`, configured from the options, the
    /// `KITE_*` environment and `kite.key`. Logs go to stderr when `KITE_LOG_LEVEL` is set
    /// (`error`, `warn`, `info`, `debug`, `trace`), and to the logger of `setLogger`.
    #[napi(constructor)]
    pub fn new(env: &Env, options: KiteOptions) -> napi::Result<Kite> {
        crate::logging::install();
        let kite = configured(&options.name, &options.version, &options)
            .map_err(|e| errors::throw_error(env, &e))?;
        let bridge = new_bridge(env)?;
        let owner = bridge.new_owner();
        Ok(Kite {
            state: Arc::new(State {
                kite,
                bridge,
                owner,
                closed: AtomicBool::new(false),
                keepalive: Mutex::new(None),
                listening: Mutex::new(None),
                clients: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The kite's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.state.kite.identity().name.clone()
    }

    /// The kite's version.
    #[napi(getter)]
    pub fn version(&self) -> String {
        self.state.kite.identity().version.clone()
    }

    /// The kite's full identity.
    #[napi(getter)]
    pub fn kite(&self) -> KiteIdentity {
        self.state.kite.identity().clone().into()
    }

    /// Registers `handler` for `method`. The handler gets the `Request` and returns the
    /// result (or a promise of it); what it throws reaches the caller as `genericError`, or
    /// as the error's `code` when that is a kite error kind (see `kiteError`). Registering a
    /// name twice throws `duplicateMethod`. Returns the method, to add pre/post handlers,
    /// final functions and settings.
    #[napi(
        ts_args_type = "method: string, handler: (req: Request) => any, options?: MethodOptions"
    )]
    pub fn handle(
        &self,
        env: &Env,
        method: String,
        handler: Function<'_>,
        options: Option<MethodOptions>,
    ) -> napi::Result<Method> {
        let s = &self.state;
        let func = s.bridge.add_function(jsfn::keep(&handler)?);
        let b = s.bridge.clone();
        let mut core = kite::Method::new(&method, move |req: kite::Request| {
            run_handler(b.clone(), func, req)
        });
        if let Some(o) = options {
            core = crate::method::apply(env, core, o)?;
        }
        if let Err(e) = s.kite.add_method(core) {
            s.bridge.remove_function(func);
            return Err(errors::throw_error(env, &e));
        }
        Ok(Method {
            kite: s.kite.clone(),
            name: method,
            bridge: s.bridge.clone(),
        })
    }

    /// Removes a method; true if it existed.
    #[napi]
    pub fn remove_handler(&self, method: String) -> bool {
        self.state.kite.remove_handler(&method)
    }

    /// Names of the registered methods (including the default `kite.*` methods).
    #[napi]
    pub fn methods(&self) -> Vec<String> {
        self.state.kite.methods()
    }

    /// The method `method`, e.g. a default `kite.*` method, to change its settings.
    #[napi]
    pub fn method(&self, method: String) -> Option<Method> {
        self.state.kite.method(&method).map(|_| Method {
            kite: self.state.kite.clone(),
            name: method,
            bridge: self.state.bridge.clone(),
        })
    }

    /// Adds a kite-wide pre handler, run before the handlers of every method (added to
    /// each method's list at its first call).
    #[napi(ts_args_type = "handler: (req: Request) => any")]
    pub fn pre_handle<'t>(&self, this: This<'t>, handler: Function<'_>) -> napi::Result<This<'t>> {
        let (b, func) = self.keep(&handler)?;
        self.state
            .kite
            .pre_handle(move |req: kite::Request| run_handler(b.clone(), func, req));
        Ok(this)
    }

    /// Adds a kite-wide post handler, run after the handlers of every method.
    #[napi(ts_args_type = "handler: (req: Request) => any")]
    pub fn post_handle<'t>(&self, this: This<'t>, handler: Function<'_>) -> napi::Result<This<'t>> {
        let (b, func) = self.keep(&handler)?;
        self.state
            .kite
            .post_handle(move |req: kite::Request| run_handler(b.clone(), func, req));
        Ok(this)
    }

    /// Adds a kite-wide final function (see `Method.finalFunc`).
    #[napi(ts_args_type = "fn: (req: Request, result: any, error: KiteError | null) => any")]
    pub fn final_func<'t>(&self, this: This<'t>, f: Function<'_>) -> napi::Result<This<'t>> {
        let (b, func) = self.keep(&f)?;
        self.state
            .kite
            .final_func(move |req, result, error| run_final(b.clone(), func, req, result, error));
        Ok(this)
    }

    /// Default handling mode of methods registered after this call: `method`, `first` or
    /// `latest`.
    #[napi(ts_args_type = "mode: MethodHandling")]
    pub fn set_method_handling(&self, env: &Env, mode: String) -> napi::Result<()> {
        self.state.kite.set_method_handling(handling(env, &mode)?);
        Ok(())
    }

    /// Adds (or replaces) the authenticator of authentication type `type`. It gets
    /// `{ auth, caller, local }` and returns the authenticated username (or a promise of
    /// it); what it throws is the refusal's reason.
    #[napi(
        ts_args_type = "type: string, authenticator: (check: { auth: Auth, caller: KiteIdentity, local: KiteIdentity }) => string | Promise<string>"
    )]
    pub fn add_authenticator(&self, kind: String, authenticator: Function<'_>) -> napi::Result<()> {
        let (b, func) = self.keep(&authenticator)?;
        self.state.kite.add_authenticator(&kind, move |check| {
            let b = b.clone();
            async move {
                let subject = Subject::Value(json!({
                    "auth": check.auth,
                    "caller": check.caller,
                    "local": check.local,
                }));
                let refused = |reason: String| kite::auth::AuthError::Rejected(reason);
                match b.invoke(func, subject, None, None).await {
                    Ok(Some(p)) => match p.value() {
                        Value::String(user) if !user.is_empty() => Ok(user.clone()),
                        _ => Err(refused("the authenticator returned no username".into())),
                    },
                    Ok(None) => Err(refused("the authenticator returned no username".into())),
                    Err(e) => Err(refused(e.message)),
                }
            }
        });
        Ok(())
    }

    /// Serves `handler` for `method` (`GET`, `POST`, `PUT`, `DELETE`, `PATCH`, `HEAD`,
    /// `OPTIONS`) on the literal `path` beside `/kite` — health checks, webhooks. The handler
    /// gets `{ method, path, query, headers, body }` (`body`: the request body as UTF-8 text,
    /// at most 1 MiB) and returns (or resolves with) a string (200, text), `undefined` (204),
    /// or `{ status?, headers?, body? }` whose `body` is a string or a value sent as JSON.
    /// A throw answers 500 and is logged. Add routes before `listen`.
    #[napi(
        ts_args_type = "method: string, path: string, handler: (req: HttpRequest) => HttpResponse | string | void | Promise<HttpResponse | string | void>"
    )]
    pub fn add_route<'t>(
        &self,
        env: &Env,
        this: This<'t>,
        method: String,
        path: String,
        handler: Function<'_>,
    ) -> napi::Result<This<'t>> {
        let (b, func) = self.keep(&handler)?;
        let added = self.state.kite.add_route(&method, &path, move |req| {
            crate::routes::serve(b.clone(), func, req)
        });
        if let Err(e) = added {
            self.state.bridge.remove_function(func);
            return Err(errors::throw_error(env, &e));
        }
        Ok(this)
    }

    /// Listens for `connect` and `disconnect` of every connection (accepted or dialed) and
    /// for `firstRequest` (the caller's identity is then known) — the listener gets the
    /// `Connection` —, for `register` (each registration to Kontrol; it gets the result) and
    /// for `error`: what a callback (a function this kite or its clients passed to the remote
    /// side) or an event listener threw or rejected with. Such errors never end the process;
    /// they are also logged, and printed to stderr when no `error` listener is added.
    #[napi(
        ts_args_type = "event: 'connect' | 'disconnect' | 'firstRequest', listener: (connection: Connection) => void): this\n  on(event: 'register', listener: (result: RegisterResult) => void): this\n  on(event: 'error', listener: (error: unknown) => void"
    )]
    pub fn on<'t>(
        &self,
        env: &Env,
        this: This<'t>,
        event: String,
        listener: Function<'_>,
    ) -> napi::Result<This<'t>> {
        let s = &self.state;
        let Some(ev) = Event::parse(&event, true) else {
            let e = kite::Error::Config(format!("unknown kite event {event:?}"));
            return Err(errors::throw_error(env, &e));
        };
        if s.bridge.add_listener(s.owner, ev, jsfn::keep(&listener)?) {
            let b = Arc::downgrade(&s.bridge);
            let owner = s.owner;
            let post = move |arg: EventArg| {
                if let Some(b) = b.upgrade() {
                    b.post(Job::Event {
                        owner,
                        event: ev,
                        arg,
                    });
                }
            };
            let hook = move |c: &kite::Connection| post(EventArg::Connection(c.clone()));
            match ev {
                Event::Error => {}
                Event::Connect => s.kite.on_connect(hook),
                Event::Disconnect => s.kite.on_disconnect(hook),
                Event::FirstRequest => s.kite.on_first_request(hook),
                _ => {
                    let b = Arc::downgrade(&s.bridge);
                    s.kite.on_register(move |r| {
                        if let Some(b) = b.upgrade() {
                            b.post(Job::Event {
                                owner,
                                event: ev,
                                arg: EventArg::Register(r.clone()),
                            });
                        }
                    })
                }
            }
        }
        Ok(this)
    }

    /// Removes a listener added with `on`.
    #[napi(
        ts_args_type = "event: 'connect' | 'disconnect' | 'firstRequest' | 'register' | 'error', listener: (...args: any[]) => void"
    )]
    pub fn off<'t>(
        &self,
        env: &Env,
        this: This<'t>,
        event: String,
        listener: Function<'_>,
    ) -> napi::Result<This<'t>> {
        if let Some(ev) = Event::parse(&event, true) {
            self.state
                .bridge
                .remove_listener(env, self.state.owner, ev, &listener);
        }
        Ok(this)
    }

    /// Starts serving on `port` (default: the configured one, 0 = any free port) and `host`
    /// (default: the configured IP, `0.0.0.0`). Resolves with the port. The kite keeps Node
    /// running until `close()`.
    #[napi]
    pub fn listen<'e>(
        &self,
        env: &'e Env,
        port: Option<u32>,
        host: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, u32>> {
        let kite = self.state.kite.clone();
        listen_with(env, &self.state, port, host, |ip, port| async move {
            kite.listen_on(&ip, port).await
        })
    }

    /// The port the kite listens on, once listening.
    #[napi(getter)]
    pub fn port(&self) -> Option<u32> {
        self.state.kite.port().map(u32::from)
    }

    /// The URL other kites dial, `http://HOST:PORT/kite`, once listening.
    #[napi(getter)]
    pub fn url(&self) -> Option<String> {
        self.state.kite.url()
    }

    /// Stops serving, closes every connection of the kite and every client made with
    /// `client()`. Idempotent. Node may exit once nothing else is pending.
    #[napi]
    pub fn close(&self, env: &Env) {
        close_state(env, &self.state);
    }

    /// A client to the kite at `url` (e.g. `http://127.0.0.1:3636/kite`), on behalf of this
    /// kite: the remote side can call this kite's methods and callbacks over it.
    #[napi]
    pub fn client(
        &self,
        env: &Env,
        url: String,
        options: Option<ClientOptions>,
    ) -> napi::Result<Client> {
        adopt_client(env, &self.state, self.state.kite.client(&url), options)
    }

    /// What the kite keeps for JavaScript right now (for leak checks).
    #[napi]
    pub fn handle_counts(&self) -> HandleCounts {
        let (functions, pending) = self.state.bridge.counts();
        HandleCounts {
            functions: functions as u32,
            pending: pending as u32,
        }
    }
}

impl Kite {
    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }

    fn keep(&self, f: &Function<'_>) -> napi::Result<(Arc<Bridge>, u64)> {
        let b = self.state.bridge.clone();
        let func = b.add_function(jsfn::keep(f)?);
        Ok((b, func))
    }
}
