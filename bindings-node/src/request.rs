//! What handlers see: the request (one JavaScript object per call, shared by its pre, main,
//! post and final handlers; its class lives in the bridge's trampoline, its lazy properties
//! come from [`info`]) and the [`Connection`] to the caller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{
    FromNapiValue, Function, JavaScriptClassExt, JsObjectValue, Object, PromiseRaw, ToNapiValue,
    Unknown,
};
use napi::Env;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::bridge::{Bridge, Job};
use crate::convert;
use crate::errors;

/// A kite's identity: `/username/environment/name/version/region/hostname/id`.
#[napi(object)]
#[derive(Clone, Default)]
pub struct KiteIdentity {
    /// Owner of the kite.
    pub username: String,
    /// Environment, e.g. `production`.
    pub environment: String,
    /// Kind of kite, e.g. `math`.
    pub name: String,
    /// Three-part semantic version.
    pub version: String,
    /// Region, e.g. `europe`.
    pub region: String,
    /// Host name of its machine.
    pub hostname: String,
    /// Unique id of the kite process.
    pub id: String,
}

impl From<kite::protocol::Kite> for KiteIdentity {
    fn from(k: kite::protocol::Kite) -> Self {
        KiteIdentity {
            username: k.username,
            environment: k.environment,
            name: k.name,
            version: k.version,
            region: k.region,
            hostname: k.hostname,
            id: k.id,
        }
    }
}

impl From<KiteIdentity> for kite::protocol::Kite {
    fn from(k: KiteIdentity) -> Self {
        kite::protocol::Kite {
            username: k.username,
            environment: k.environment,
            name: k.name,
            version: k.version,
            region: k.region,
            hostname: k.hostname,
            id: k.id,
        }
    }
}

/// Authentication sent with calls: `{ type: 'kiteKey' | 'token' | …, key }`.
#[napi(object)]
#[derive(Clone)]
pub struct Auth {
    /// `kiteKey`, `token`, or a custom type with its own authenticator.
    #[napi(js_name = "type")]
    pub kind: String,
    /// The credential (a JWT for the built-in types).
    pub key: String,
}

impl From<kite::protocol::Auth> for Auth {
    fn from(a: kite::protocol::Auth) -> Self {
        Auth {
            kind: a.kind,
            key: a.key,
        }
    }
}

impl From<Auth> for kite::protocol::Auth {
    fn from(a: Auth) -> Self {
        kite::protocol::Auth {
            kind: a.kind,
            key: a.key,
        }
    }
}

/// Options of a call.
#[napi(object)]
#[derive(Clone, Default)]
pub struct TellOptions {
    /// Milliseconds to wait for the response; then the call fails with `timeout`.
    /// Default: the kite's timeout (15 s, `KITE_TIMEOUT`).
    pub timeout: Option<f64>,
}

/// The request's place in the core request: whether its JavaScript object exists (the
/// trampoline keeps it for the handlers after the first); dropping it, when the call is
/// over, lets the trampoline forget the object.
pub(crate) struct Slot {
    bridge: Arc<Bridge>,
    pub(crate) key: u64,
    pub(crate) created: AtomicBool,
    done: CancellationToken,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.done.cancel();
        if *self.created.get_mut() {
            self.bridge.release(self.key);
        }
    }
}

/// The slot of `req`, made at its first JavaScript handler.
pub(crate) fn slot_of(req: &kite::Request, bridge: &Arc<Bridge>) -> Arc<Slot> {
    let mut ext = req.extensions();
    if let Some(s) = ext.get::<Arc<Slot>>() {
        return s.clone();
    }
    let s = Arc::new(Slot {
        bridge: bridge.clone(),
        key: bridge.new_owner(),
        created: AtomicBool::new(false),
        done: CancellationToken::new(),
    });
    ext.insert(s.clone());
    s
}

/// What the lazy properties of a request object (`auth`, `kite`, `client`, `signal`) are made
/// from; kept until the object is garbage collected.
pub(crate) struct Info {
    caller: kite::protocol::Kite,
    auth: Option<kite::protocol::Auth>,
    conn: kite::Connection,
    done: CancellationToken,
}

/// The values the trampoline makes a new request object from — `[id, method, username,
/// args]` — or `None` when the request's object exists already.
pub(crate) fn new_object<'e>(
    env: &'e Env,
    bridge: &Arc<Bridge>,
    req: &kite::Request,
    slot: &Slot,
) -> napi::Result<Option<[Unknown<'e>; 4]>> {
    if slot.created.swap(true, Ordering::AcqRel) {
        return Ok(None);
    }
    bridge.add_info(
        slot.key,
        Info {
            caller: req.caller().clone(),
            auth: req.auth().cloned(),
            conn: req.client().clone(),
            done: slot.done.clone(),
        },
    );
    Ok(Some([
        req.id().into_unknown(env)?,
        req.method().into_unknown(env)?,
        req.username().into_unknown(env)?,
        convert::arguments_array(env, bridge, req.args())?,
    ]))
}

/// The lazy property `field` of the request object `key` (the native `info` the
/// trampoline's `Request` class calls).
pub(crate) fn info<'e>(
    env: &'e Env,
    bridge: &Arc<Bridge>,
    info: &Info,
    field: u32,
) -> napi::Result<Unknown<'e>> {
    match field {
        0 => info.auth.clone().map(Auth::from).into_unknown(env),
        1 => KiteIdentity::from(info.caller.clone()).into_unknown(env),
        2 => connection_object(env, bridge, info.conn.clone()),
        _ => signal(env, bridge, info),
    }
}

/// An `AbortSignal` that fires when the caller disconnects (or the kite closes).
fn signal<'e>(env: &'e Env, bridge: &Arc<Bridge>, info: &Info) -> napi::Result<Unknown<'e>> {
    let global = env.get_global()?;
    let ctor: Function<'_, (), Unknown<'_>> = global.get_named_property("AbortController")?;
    let controller = Object::from_unknown(ctor.new_instance(())?)?;
    let signal: Unknown<'_> = controller.get_named_property("signal")?;
    if info.conn.is_closed() {
        let abort: Function<'_, (), Unknown<'_>> = controller.get_named_property("abort")?;
        abort.apply(controller, ())?;
    } else {
        let r = controller.create_ref::<false>()?;
        let conn = info.conn.clone();
        let done = info.done.clone();
        let bridge = bridge.clone();
        napi::bindgen_prelude::spawn(async move {
            // The request ends (and `done` fires) as a result of the disconnect too: a
            // closed connection wins, so that the signal fires rather than being dropped.
            tokio::select! {
                biased;
                _ = conn.closed() => bridge.post(Job::Abort(r)),
                _ = done.cancelled() => bridge.post(Job::Unref(r)),
            }
        });
    }
    Ok(signal)
}

/// The JavaScript object of a connection.
pub(crate) fn connection_object<'e>(
    env: &'e Env,
    bridge: &Arc<Bridge>,
    conn: kite::Connection,
) -> napi::Result<Unknown<'e>> {
    Connection {
        conn,
        bridge: bridge.clone(),
    }
    .into_instance(env)?
    .as_object(env)
    .into_unknown(env)
}

/// A connection to another kite, accepted or dialed: call its methods with `tell`.
#[napi]
pub struct Connection {
    conn: kite::Connection,
    bridge: Arc<Bridge>,
}

impl Connection {
    pub(crate) fn new(conn: kite::Connection, bridge: Arc<Bridge>) -> Connection {
        Connection { conn, bridge }
    }
}

#[napi]
impl Connection {
    /// Calls `method` on the remote kite. `args` is the argument list (an array; any other
    /// value is one argument; functions in it become callbacks the remote side can call).
    /// Resolves with the result (functions inside it are async functions); rejects with a
    /// `KiteError`.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn tell<'e>(
        &self,
        env: &'e Env,
        method: String,
        #[napi(ts_arg_type = "any")] args: Option<Unknown<'_>>,
        options: Option<TellOptions>,
    ) -> napi::Result<PromiseRaw<'e, Unknown<'e>>> {
        tell(
            env,
            &self.bridge,
            Some(self.conn.clone()),
            method,
            args,
            options,
        )
    }

    /// Closes the connection.
    #[napi]
    pub fn close(&self) {
        self.conn.close();
    }

    /// The remote kite's identity (known once it made a call, or when dialed).
    #[napi(getter)]
    pub fn remote_kite(&self) -> KiteIdentity {
        self.conn.remote_kite().into()
    }

    /// The SockJS transport in use (`websocket`, `xhr-polling`, …).
    #[napi(getter)]
    pub fn transport(&self) -> String {
        self.conn.transport().to_string()
    }

    /// Whether the connection has ended.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Whether this side dialed the connection.
    #[napi(getter)]
    pub fn dialed(&self) -> bool {
        self.conn.is_dialed()
    }
}

pub(crate) fn duration(ms: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64((ms.max(0.0) / 1000.0).min(1e9))
}

/// `tell` of clients and connections.
pub(crate) fn tell<'e>(
    env: &'e Env,
    bridge: &Arc<Bridge>,
    conn: Option<kite::Connection>,
    method: String,
    args: Option<Unknown<'_>>,
    options: Option<TellOptions>,
) -> napi::Result<PromiseRaw<'e, Unknown<'e>>> {
    let timeout = options.and_then(|o| o.timeout).map(duration);
    // The result, with the functions inside it as async JavaScript functions.
    let b = bridge.clone();
    let ok = move |env: &'e Env, result: kite::Arguments| {
        let mut values = convert::arguments_to_js(env, &b, &result)?;
        match values.pop() {
            Some(v) => Ok(v),
            None => convert::value_to_js(env, &Value::Null),
        }
    };
    let Some(conn) = conn.filter(|c| !c.is_closed()) else {
        return errors::promise(
            env,
            async { Err(kite::Error::Send("not connected".into())) },
            ok,
        );
    };
    let args = match args {
        Some(a) => match convert::js_to_payload(bridge, a) {
            Ok(p) => p,
            Err(e) => {
                let msg = format!("cannot send the arguments: {}", e.reason);
                return errors::promise(env, async move { Err(kite::Error::Send(msg)) }, ok);
            }
        },
        None => kite::Payload::default(),
    };
    errors::promise(
        env,
        async move { conn.call_full(&method, args, timeout).await },
        ok,
    )
}
