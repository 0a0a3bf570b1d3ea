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
use crate::options::{configured, KiteOptions};
use crate::state::{adopt_client, close_state, listen_with, State};
use crate::types::KiteIdentity;

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
