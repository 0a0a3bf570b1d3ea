//! The [`Client`] class: a connection to one remote kite, dialed once or forever.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use napi::bindgen_prelude::{Function, PromiseRaw, This, Unknown};
use napi::Env;

use crate::bridge::{Bridge, Event, EventArg, Job};
use crate::errors;
use crate::jsfn::{self, Keepalive};
use crate::request::{self, Connection};
use crate::types::{duration, Auth, KiteIdentity, TellOptions};

/// Options of a client.
#[napi(object)]
#[derive(Default)]
pub struct ClientOptions {
    /// `auto` (websocket, falling back to XHR polling), `WebSocket` or `XHRPolling`.
    /// Default: the kite's transport.
    #[napi(ts_type = "'auto' | 'WebSocket' | 'XHRPolling'")]
    pub transport: Option<String>,
    /// Authentication sent with every call. Default: the kite's kite key, if it has one.
    pub auth: Option<Auth>,
}

/// What a client shares with its kite (which closes it) and its core hooks.
pub(crate) struct ClientShared {
    client: kite::Client,
    keepalive: Mutex<Option<Keepalive>>,
    forever: AtomicBool,
    closed: AtomicBool,
}

impl ClientShared {
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.client.close();
        self.keepalive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    fn keep_alive(&self, k: Keepalive) {
        if !self.closed.load(Ordering::SeqCst) {
            *self.keepalive.lock().unwrap_or_else(|e| e.into_inner()) = Some(k);
        }
    }
}

/// A client to one remote kite, made by `kite.client(url)`. Connected, it keeps Node running
/// until `close()` (or, unless dialed with `dialForever`, until the connection drops).
#[napi]
pub struct Client {
    shared: Arc<ClientShared>,
    bridge: Arc<Bridge>,
    owner: u64,
}

impl Client {
    pub(crate) fn create(
        env: &Env,
        client: kite::Client,
        bridge: Arc<Bridge>,
        options: Option<ClientOptions>,
    ) -> napi::Result<Client> {
        let o = options.unwrap_or_default();
        if let Some(t) = o.transport {
            let t = t
                .parse()
                .map_err(|e: String| errors::throw_config(env, format!("transport: {e}")))?;
            client.set_transport(t);
        }
        if let Some(a) = o.auth {
            client.set_auth(Some(a.into()));
        }
        let shared = Arc::new(ClientShared {
            client: client.clone(),
            keepalive: Mutex::new(None),
            forever: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        // A dropped connection lets Node exit, unless the client redials.
        let weak = Arc::downgrade(&shared);
        client.on_disconnect(move || {
            if let Some(s) = weak.upgrade() {
                if !s.forever.load(Ordering::SeqCst) {
                    s.keepalive.lock().unwrap_or_else(|e| e.into_inner()).take();
                }
            }
        });
        let owner = bridge.new_owner();
        Ok(Client {
            shared,
            bridge,
            owner,
        })
    }

    pub(crate) fn downgrade(&self) -> Weak<ClientShared> {
        Arc::downgrade(&self.shared)
    }
}

#[napi]
impl Client {
    /// Connects once, within `timeout` milliseconds (default: the kite's handshake timeout,
    /// 15 s). Rejects with `dialError` when the kite cannot be reached.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn dial<'e>(&self, env: &'e Env, timeout: Option<f64>) -> napi::Result<PromiseRaw<'e, ()>> {
        let keepalive = Keepalive::new(env)?;
        let s = self.shared.clone();
        let client = s.client.clone();
        errors::promise(
            env,
            async move {
                match timeout {
                    Some(ms) => client.dial_timeout(duration(ms)).await,
                    None => client.dial().await,
                }
            },
            move |_env, ()| {
                s.keep_alive(keepalive);
                Ok(())
            },
        )
    }

    /// Connects, retrying with exponential backoff (0.5 s doubling to 1 min) until it
    /// succeeds, and reconnects whenever the connection drops, until `close()`. Resolves at
    /// the first connection.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn dial_forever<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, ()>> {
        self.shared.forever.store(true, Ordering::SeqCst);
        self.shared.keep_alive(Keepalive::new(env)?);
        let client = self.shared.client.clone();
        errors::promise(
            env,
            async move {
                client.dial_forever().await;
                Ok(())
            },
            |_env, ()| Ok(()),
        )
    }

    /// Resolves once connected (at once when connected now; else after the next successful
    /// dial, e.g. a `dialForever` reconnection).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn wait_connected<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, ()>> {
        let client = self.shared.client.clone();
        errors::promise(
            env,
            async move {
                client.connected().await;
                Ok(())
            },
            |_env, ()| Ok(()),
        )
    }

    /// Calls `method` on the remote kite. `args` is the argument list (an array; any other
    /// value is one argument; functions in it become callbacks the remote side can call,
    /// any number of times, while the connection lasts). Resolves with the result (functions
    /// inside it are async functions calling the remote side); rejects
    /// with a `KiteError` (`code`: the remote kind, or `timeout`, `disconnect`, `sendError`).
    #[napi(ts_return_type = "Promise<any>")]
    pub fn tell<'e>(
        &self,
        env: &'e Env,
        method: String,
        #[napi(ts_arg_type = "any")] args: Option<Unknown<'_>>,
        options: Option<TellOptions>,
    ) -> napi::Result<PromiseRaw<'e, Unknown<'e>>> {
        let conn = self.shared.client.connection();
        request::tell(env, &self.bridge, conn, method, args, options)
    }

    /// Closes the connection and stops redialing. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.shared.close();
    }

    /// The URL dialed.
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.shared.client.url().to_string()
    }

    /// Whether connected now.
    #[napi(getter)]
    pub fn connected(&self) -> bool {
        self.shared.client.is_connected()
    }

    /// The current connection, if connected.
    #[napi(getter)]
    pub fn connection(&self) -> Option<Connection> {
        self.shared
            .client
            .connection()
            .map(|c| Connection::new(c, self.bridge.clone()))
    }

    /// The authentication sent with calls.
    #[napi(getter)]
    pub fn get_auth(&self) -> Option<Auth> {
        self.shared.client.auth().map(Auth::from)
    }

    /// Sets the authentication sent with calls (`null` for none).
    #[napi(setter, js_name = "auth")]
    pub fn set_auth(&self, auth: Option<Auth>) {
        self.shared.client.set_auth(auth.map(Into::into));
    }

    /// The remote kite's identity, when known.
    #[napi(getter)]
    pub fn remote_kite(&self) -> KiteIdentity {
        self.shared.client.remote_kite().into()
    }

    /// Sends `token` (type `token`) with calls from now on and fires `tokenRenew`.
    #[napi]
    pub fn renew_token(&self, token: String) {
        self.shared.client.renew_token(token);
    }

    /// Listens for `connect` (after every successful dial), `disconnect`, `tokenExpire` (a
    /// call failed with "token is expired") and `tokenRenew`.
    #[napi(
        ts_args_type = "event: 'connect' | 'disconnect' | 'tokenExpire' | 'tokenRenew', listener: () => void"
    )]
    pub fn on<'t>(
        &self,
        env: &Env,
        this: This<'t>,
        event: String,
        listener: Function<'_>,
    ) -> napi::Result<This<'t>> {
        let Some(ev) = Event::parse(&event, false) else {
            return Err(errors::throw_config(
                env,
                format!("unknown client event {event:?}"),
            ));
        };
        if self
            .bridge
            .add_listener(self.owner, ev, jsfn::keep(&listener)?)
        {
            let b = Arc::downgrade(&self.bridge);
            let owner = self.owner;
            let hook = move || {
                if let Some(b) = b.upgrade() {
                    b.post(Job::Event {
                        owner,
                        event: ev,
                        arg: EventArg::None,
                    });
                }
            };
            let c = &self.shared.client;
            match ev {
                Event::Connect => c.on_connect(hook),
                Event::Disconnect => c.on_disconnect(hook),
                Event::TokenExpire => c.on_token_expire(hook),
                _ => c.on_token_renew(hook),
            }
        }
        Ok(this)
    }

    /// Removes a listener added with `on`.
    #[napi(
        ts_args_type = "event: 'connect' | 'disconnect' | 'tokenExpire' | 'tokenRenew', listener: () => void"
    )]
    pub fn off<'t>(
        &self,
        env: &Env,
        this: This<'t>,
        event: String,
        listener: Function<'_>,
    ) -> napi::Result<This<'t>> {
        if let Some(ev) = Event::parse(&event, false) {
            self.bridge.remove_listener(env, self.owner, ev, &listener);
        }
        Ok(this)
    }
}
