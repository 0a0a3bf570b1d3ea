//! What handlers see: the request (one JavaScript object per call, shared by its pre, main,
//! post and final handlers; its class lives in the bridge's trampoline, its lazy properties
//! come from [`info`]) and the [`Connection`] to the caller.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::Instrument;

use napi::bindgen_prelude::{
    FromNapiValue, Function, JavaScriptClassExt, JsObjectValue, Object, PromiseRaw, ToNapiValue,
    Unknown,
};
use napi::Env;
use serde_json::Value;

use crate::bridge::{Bridge, Info, Job, Slot};
use crate::convert;
use crate::errors;
use crate::types::{duration, Auth, KiteIdentity, TellOptions};

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
    // Inside a traced handler, the call's span is a child of the request's.
    let parent = crate::traces::entered();
    errors::promise(
        env,
        async move { conn.call_full(&method, args, timeout).await }.instrument(parent),
        ok,
    )
}
