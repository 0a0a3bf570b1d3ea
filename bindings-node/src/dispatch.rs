//! The JavaScript thread's side of a kite's [`Bridge`]: creating it with the functions of
//! `lib/bridge.js`, running the jobs the core queued (handler calls, callbacks, events,
//! aborts) when the threadsafe function wakes the thread, and settling calls with what the
//! handlers returned, resolved with or threw.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use kite::protocol::KiteError;
use napi::bindgen_prelude::{
    FromNapiValue, Function, JsObjectValue, Null, Object, ToNapiValue, Unknown,
};
use napi::threadsafe_function::UnknownReturnValue;
use napi::{Env, JsValue, Status};
use serde_json::Value;

use crate::bridge::{lock, Bridge, Event, EventArg, Job, Subject};
use crate::convert;
use crate::errors;
use crate::jsfn::{call, keep, ArgList};
use crate::request;
use crate::types::RegisterResult;

/// Describes a thrown JavaScript value for the log: its stack (which starts with the
/// message), else its text.
fn describe(v: Unknown<'_>) -> String {
    if let Ok(obj) = Object::from_unknown(v) {
        if let Ok(Some(stack)) = obj.get_named_property::<Option<String>>("stack") {
            return stack;
        }
    }
    v.coerce_to_string()
        .ok()
        .and_then(|s| s.into_utf8().ok())
        .and_then(|s| s.into_owned().ok())
        .unwrap_or_else(|| "a value that cannot be shown".into())
}

/// Creates the bridge of a kite (on the JavaScript thread).
pub(crate) fn new_bridge(env: &Env) -> napi::Result<Arc<Bridge>> {
    // The JavaScript-side closures reach the bridge through this cell, filled below.
    let cell: Cell = Arc::default();
    let drain_cell = cell.clone();
    let noop = env.create_function_from_closure::<(), (), _>("kiteBridge", |_| Ok(()))?;
    let tsfn = noop
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .weak::<true>()
        .build_callback(move |ctx| match upgrade(&drain_cell) {
            Some(bridge) => bridge.drain(&ctx.env),
            None => Ok(()),
        })?;
    let Some(parts) = crate::js::parts(env) else {
        return Err(napi::Error::new(
            Status::GenericFailure,
            "kite-rs was loaded without its package entry: require('kite-rs') \
             (bindings-node/lib/index.js), not the native loader",
        ));
    };
    let factory = parts.make_bridge.borrow_back(env)?;
    let factory = Function::<'_, ArgList, Object<'_>>::from_unknown(factory.to_unknown())?;
    let made = factory.call(ArgList(natives(env, &cell)?.to_vec()))?;
    let part = |i: u32| -> napi::Result<Function<'_>> {
        Function::<'_>::from_unknown(made.get_element::<Unknown<'_>>(i)?)
    };
    let (dispatch, forget_requests, invoke, failed) = (part(0)?, part(1)?, part(2)?, part(3)?);
    let bridge = Arc::new(Bridge {
        tsfn,
        queue: Mutex::new(Vec::new()),
        next: AtomicU64::new(1),
        pending: Mutex::new(HashMap::new()),
        functions: Mutex::new(HashMap::new()),
        listeners: Mutex::new(Vec::new()),
        release: Mutex::new(Vec::new()),
        infos: Mutex::new(HashMap::new()),
        trampoline: keep(&dispatch)?,
        forget_requests: keep(&forget_requests)?,
        invoke: keep(&invoke)?,
        failed: keep(&failed)?,
    });
    let _ = cell.set(Arc::downgrade(&bridge));
    Ok(bridge)
}

/// Where the native functions find their bridge (set once it exists; weak, so that they do
/// not keep it alive).
type Cell = Arc<OnceLock<Weak<Bridge>>>;

fn upgrade(cell: &OnceLock<Weak<Bridge>>) -> Option<Arc<Bridge>> {
    cell.get().and_then(Weak::upgrade)
}

/// The native functions `lib/bridge.js` gets: `settle(id, value, failed)`,
/// `info(key, field)`, `forget(key)` and `report(error) -> delivered`.
fn natives(env: &Env, cell: &Cell) -> napi::Result<[napi::sys::napi_value; 4]> {
    let settle_cell = cell.clone();
    let settle = env.create_function_from_closure::<(), (), _>("kiteSettle", move |ctx| {
        if let Some(bridge) = upgrade(&settle_cell) {
            let id = ctx.get::<f64>(0)?;
            let value = ctx.get::<Unknown>(1)?;
            let failed = ctx.get::<bool>(2)?;
            bridge.settle(ctx.env, id, value, failed);
        }
        Ok(())
    })?;
    let report_cell = cell.clone();
    let report = env.create_function_from_closure::<(), bool, _>("kiteReport", move |ctx| {
        let value = ctx.get::<Unknown>(0)?;
        match upgrade(&report_cell) {
            Some(bridge) => bridge.report(ctx.env, value),
            None => Ok(false),
        }
    })?;
    let info_cell = cell.clone();
    let info =
        env.create_function_from_closure::<(), Unknown<'static>, _>("kiteInfo", move |ctx| {
            let key = ctx.get::<f64>(0)? as u64;
            let field = ctx.get::<u32>(1)?;
            let bridge = upgrade(&info_cell);
            let found = bridge
                .as_ref()
                .and_then(|b| lock(&b.infos).get(&key).cloned());
            match (bridge, found) {
                (Some(b), Some(i)) => {
                    let v = request::info(ctx.env, &b, &i, field)?;
                    Unknown::from_unknown(v)
                }
                _ => Unknown::from_unknown(().into_unknown(ctx.env)?),
            }
        })?;
    let forget_cell = cell.clone();
    let forget = env.create_function_from_closure::<(), (), _>("kiteForget", move |ctx| {
        let key = ctx.get::<f64>(0)? as u64;
        if let Some(b) = upgrade(&forget_cell) {
            let gone = lock(&b.infos).remove(&key);
            drop(gone);
        }
        Ok(())
    })?;
    Ok([settle.raw(), info.raw(), forget.raw(), report.raw()])
}

impl Bridge {
    fn drain(self: &Arc<Self>, env: &Env) -> napi::Result<()> {
        if let Err(e) = self.flush(env) {
            tracing::error!(error = %e, "could not release finished requests");
        }
        let jobs = std::mem::take(&mut *lock(&self.queue));
        // Callbacks and listeners run through `invoke`, which reports what they throw or
        // reject with (the kite's 'error' listeners, the log); nothing here may end the
        // process, so an error of the bridge itself goes to the log too.
        for job in jobs {
            if let Err(e) = self.run(env, job) {
                tracing::error!(error = %e, "a kite job for JavaScript failed");
            }
        }
        Ok(())
    }

    /// Reports what a callback or listener threw (the native `report` of `lib/bridge.js`):
    /// logs it and calls the kite's 'error' listeners; false when there are none.
    fn report(&self, env: &Env, value: Unknown<'_>) -> napi::Result<bool> {
        tracing::error!("a JavaScript callback failed: {}", describe(value));
        let funcs: Vec<u64> = lock(&self.listeners)
            .iter()
            .filter(|l| l.event == Event::Error)
            .map(|l| l.func)
            .collect();
        for key in &funcs {
            let f = lock(&self.functions).get(key).map(|f| f.borrow_back(env));
            if let Some(f) = f {
                f?.call(ArgList(vec![value.raw()]))?;
            }
        }
        Ok(!funcs.is_empty())
    }

    /// Runs `f(args…)` through `invoke`, which reports a throw or rejection.
    fn run_reported(
        &self,
        env: &Env,
        f: Function<'_, ArgList, UnknownReturnValue>,
        args: &[Unknown<'_>],
    ) -> napi::Result<()> {
        let mut list = Vec::with_capacity(args.len() + 1);
        list.push(f.to_unknown());
        list.extend_from_slice(args);
        call(env, &self.invoke, &list)
    }

    /// Reports a failure of the bridge around a callback (e.g. arguments that cannot be
    /// made JavaScript values) like a throw of the callback.
    fn report_native(&self, env: &Env, what: &str, e: &napi::Error) -> napi::Result<()> {
        let err = errors::error_object(env, &kite::Error::Send(format!("{what}: {}", e.reason)))?;
        call(env, &self.failed, &[err.to_unknown()])
    }

    fn run(self: &Arc<Self>, env: &Env, job: Job) -> napi::Result<()> {
        match job {
            Job::Call {
                func,
                subject,
                extra,
                pending,
                parent,
            } => {
                if let Err(e) = self.run_call(env, func, subject, extra, pending, parent) {
                    self.resolve(pending, Err(KiteError::generic(e.reason.clone())));
                }
                Ok(())
            }
            Job::Callback { func, args } => {
                let f = lock(&self.functions).get(&func).map(|f| f.borrow_back(env));
                let Some(f) = f else { return Ok(()) };
                let f = f?;
                match convert::arguments_to_js(env, self, &args) {
                    Ok(values) => self.run_reported(env, f, &values),
                    Err(e) => self.report_native(env, "a callback's arguments were not usable", &e),
                }
            }
            Job::Event { owner, event, arg } => {
                let funcs: Vec<u64> = lock(&self.listeners)
                    .iter()
                    .filter(|l| l.owner == owner && l.event == event)
                    .map(|l| l.func)
                    .collect();
                if funcs.is_empty() {
                    return Ok(());
                }
                let arg = match arg {
                    EventArg::Connection(c) => vec![request::connection_object(env, self, c)?],
                    EventArg::Register(r) => {
                        vec![RegisterResult::from(r).into_unknown(env)?]
                    }
                    EventArg::None => Vec::new(),
                };
                for key in funcs {
                    let f = lock(&self.functions).get(&key).map(|f| f.borrow_back(env));
                    if let Some(f) = f {
                        self.run_reported(env, f?, &arg)?;
                    }
                }
                Ok(())
            }
            Job::Abort(controller) => {
                let c = controller.get_value(env);
                controller.unref(env)?;
                let c = c?;
                let abort: Function<'_, (), UnknownReturnValue> = c.get_named_property("abort")?;
                abort.apply(c, ())?;
                Ok(())
            }
            Job::Unref(r) => r.unref(env),
        }
    }

    fn run_call(
        self: &Arc<Self>,
        env: &Env,
        func: u64,
        subject: Subject,
        extra: Option<(Option<Value>, Option<KiteError>)>,
        pending: u64,
        parent: Option<crate::traces::Parent>,
    ) -> napi::Result<()> {
        let f = lock(&self.functions).get(&func).map(|f| f.borrow_back(env));
        let Some(f) = f else {
            self.resolve(
                pending,
                Err(KiteError::generic("the handler is no longer registered")),
            );
            return Ok(());
        };
        let f = f?;
        let pending = env.create_double(pending as f64)?.to_unknown();
        let undefined = ().into_unknown(env)?;
        let (key, fresh) = match subject {
            Subject::Request(req, slot) => (
                env.create_double(slot.key as f64)?.to_unknown(),
                request::new_object(env, self, &req, &slot)?,
            ),
            Subject::Value(v) => (convert::value_to_js(env, &v)?, None),
        };
        let (a, b) = match extra {
            Some((result, error)) => (
                match result {
                    Some(v) => convert::value_to_js(env, &v)?,
                    None => Null.into_unknown(env)?,
                },
                match error {
                    Some(e) => errors::kite_error_object(env, &e)?.to_unknown(),
                    None => Null.into_unknown(env)?,
                },
            ),
            None => (undefined, undefined),
        };
        let [rid, method, username, args] = fresh.unwrap_or([undefined; 4]);
        let trace = match parent {
            Some(parent) => crate::traces::to_js(env, parent)?,
            None => undefined,
        };
        call(
            env,
            &self.trampoline,
            &[
                f.to_unknown(),
                key,
                pending,
                a,
                b,
                rid,
                method,
                username,
                args,
                trace,
            ],
        )
    }

    /// The native `settle(id, value, failed)` the trampoline calls.
    fn settle(self: &Arc<Self>, env: &Env, id: f64, value: Unknown<'_>, failed: bool) {
        let pending = id as u64;
        if !lock(&self.pending).contains_key(&pending) {
            return;
        }
        let settled = if failed {
            let e = errors::from_thrown(env, value);
            tracing::debug!(kind = %e.kind.as_str(), "a JavaScript handler failed: {}", describe(value));
            Err(e)
        } else {
            match value.get_type() {
                Ok(napi::ValueType::Undefined) => Ok(None),
                _ => convert::js_to_payload(self, value).map(Some).map_err(|e| {
                    KiteError::generic(format!("cannot send the result: {}", e.reason))
                }),
            }
        };
        self.resolve(pending, settled);
    }
}
