//! The bridge between the core's tokio threads and the JavaScript thread.
//!
//! Every kite has one [`Bridge`]: a *weak* threadsafe function (it never keeps Node alive)
//! that carries all work into JavaScript — handler calls, callback invocations, events,
//! aborts — and a native `settle` function that carries handler results back. Jobs are
//! queued in a plain vector and the threadsafe function is signalled only when the queue goes
//! from empty to non-empty, so a burst of requests costs one wake-up of the JavaScript thread
//! and each job a few napi calls: no per-call threadsafe functions, promises or JSON strings.
//!
//! JavaScript functions the core may call later (handlers, listeners, functions passed as
//! callbacks) are kept as references in one table, released when the core drops them.
//! Liveness is separate: [`Keepalive`] is a *strong* threadsafe function held while a kite
//! listens or a client is connected, so the process exits by itself once they are closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use kite::protocol::KiteError;
use napi::bindgen_prelude::{
    FromNapiValue, Function, FunctionRef, JsObjectValue, JsValuesTupleIntoVec, Null, Object,
    ObjectRef, ToNapiValue, Unknown,
};
use napi::threadsafe_function::{
    ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue,
};
use napi::{Env, JsValue, Status};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::convert;
use crate::errors;
use crate::request::{self, Info, Slot};

/// Arguments of a JavaScript call, already converted.
pub(crate) struct ArgList(pub(crate) Vec<napi::sys::napi_value>);

impl JsValuesTupleIntoVec for ArgList {
    fn into_vec(self, _env: napi::sys::napi_env) -> napi::Result<Vec<napi::sys::napi_value>> {
        Ok(self.0)
    }
}

/// A JavaScript function kept for later calls.
pub(crate) type JsFn = FunctionRef<ArgList, UnknownReturnValue>;

/// Keeps a reference to the JavaScript function `f`.
pub(crate) fn keep(f: &Function<'_>) -> napi::Result<JsFn> {
    Function::<ArgList, UnknownReturnValue>::from_unknown(f.to_unknown())?.create_ref()
}

/// Calls a kept function with `args`; a JavaScript exception comes back as `Err`.
pub(crate) fn call(env: &Env, f: &JsFn, args: &[Unknown<'_>]) -> napi::Result<()> {
    let list = ArgList(args.iter().map(|a| a.raw()).collect());
    f.borrow_back(env)?.call(list)?;
    Ok(())
}

type Tsfn = ThreadsafeFunction<(), (), (), Status, false, true, 0>;
type StrongTsfn = ThreadsafeFunction<(), (), (), Status, false, false, 0>;

/// A handle that keeps the Node process alive while it exists (a listening kite, a
/// connected client). Dropping it, from any thread, lets the process exit.
pub(crate) struct Keepalive {
    _tsfn: StrongTsfn,
}

impl Keepalive {
    /// Created on the JavaScript thread.
    pub(crate) fn new(env: &Env) -> napi::Result<Keepalive> {
        let noop = env.create_function_from_closure::<(), (), _>("kiteKeepalive", |_| Ok(()))?;
        let tsfn = noop
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<false>()
            .build_callback(|_| Ok(()))?;
        Ok(Keepalive { _tsfn: tsfn })
    }
}

/// Events of kites and clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Connect,
    Disconnect,
    FirstRequest,
    TokenExpire,
    TokenRenew,
    Register,
    /// A callback or listener threw or rejected (listeners get the error).
    Error,
}

/// What an event's listeners get.
pub(crate) enum EventArg {
    None,
    Connection(kite::Connection),
    Register(kite::kontrol::RegisterResult),
}

impl Event {
    pub(crate) fn parse(s: &str, kite: bool) -> Option<Event> {
        Some(match (s, kite) {
            ("connect", _) => Event::Connect,
            ("disconnect", _) => Event::Disconnect,
            ("firstRequest", true) => Event::FirstRequest,
            ("register", true) => Event::Register,
            ("error", true) => Event::Error,
            ("tokenExpire", false) => Event::TokenExpire,
            ("tokenRenew", false) => Event::TokenRenew,
            _ => return None,
        })
    }
}

/// What a JavaScript handler settled with: a value (`None` for `undefined`) or an error.
pub(crate) type Settled = Result<Option<kite::Payload>, KiteError>;

/// The first argument a called JavaScript function gets.
pub(crate) enum Subject {
    /// A request: the shared JavaScript request object (created at the first handler).
    Request(kite::Request, Arc<Slot>),
    /// A plain value.
    Value(Value),
}

/// Work for the JavaScript thread.
pub(crate) enum Job {
    /// Call a function through the trampoline; its outcome settles `pending`.
    Call {
        func: u64,
        subject: Subject,
        /// Second and third arguments (final functions: result and error).
        extra: Option<(Option<Value>, Option<KiteError>)>,
        pending: u64,
    },
    /// Call a function passed as a callback with the remote side's arguments.
    Callback { func: u64, args: kite::Arguments },
    /// Call the listeners of an event.
    Event {
        owner: u64,
        event: Event,
        arg: EventArg,
    },
    /// Abort an `AbortController`, then release it.
    Abort(ObjectRef<false>),
    /// Release a reference.
    Unref(ObjectRef<false>),
}

struct Listener {
    owner: u64,
    event: Event,
    func: u64,
}

/// Runs after the JavaScript side settles or the wait is abandoned.
type Sender = oneshot::Sender<Settled>;

/// One kite's bridge. See the module documentation.
pub(crate) struct Bridge {
    tsfn: Tsfn,
    queue: Mutex<Vec<Job>>,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, Sender>>,
    functions: Mutex<HashMap<u64, JsFn>>,
    listeners: Mutex<Vec<Listener>>,
    /// Request objects of finished calls the trampoline may forget, at the next wake-up of
    /// the JavaScript thread; a full batch wakes it by itself.
    release: Mutex<Vec<u64>>,
    /// What the lazy properties of live request objects are made from.
    infos: Mutex<HashMap<u64, Arc<Info>>>,
    trampoline: JsFn,
    forget_requests: JsFn,
    /// `invoke(fn, ...args)`: runs a callback or listener, reporting what it throws.
    invoke: JsFn,
    /// `failed(error)`: reports an error like a throw of a callback.
    failed: JsFn,
}

/// Finished requests whose objects may wait for the next wake-up of the JavaScript thread.
const RELEASE_BATCH: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

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

impl Bridge {
    /// Creates the bridge of a kite (on the JavaScript thread).
    pub(crate) fn new(env: &Env) -> napi::Result<Arc<Bridge>> {
        // The JavaScript-side closures reach the bridge through this cell, filled below.
        let cell: Arc<OnceLock<Weak<Bridge>>> = Arc::default();
        let upgrade = |cell: &OnceLock<Weak<Bridge>>| cell.get().and_then(Weak::upgrade);
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
        let Some(parts) = crate::js::parts(env) else {
            return Err(napi::Error::new(
                Status::GenericFailure,
                "kite-rs was loaded without its package entry: require('kite-rs') \
                 (bindings-node/lib/index.js), not the native loader",
            ));
        };
        let factory = parts.make_bridge.borrow_back(env)?;
        let factory = Function::<'_, ArgList, Object<'_>>::from_unknown(factory.to_unknown())?;
        let made = factory.call(ArgList(vec![
            settle.raw(),
            info.raw(),
            forget.raw(),
            report.raw(),
        ]))?;
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

    fn id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues a job for the JavaScript thread (from any thread).
    pub(crate) fn post(&self, job: Job) {
        let mut q = lock(&self.queue);
        let wake = q.is_empty();
        q.push(job);
        drop(q);
        if wake {
            // Fails only while Node shuts down; the jobs are then moot.
            let _ = self.tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// Lets the trampoline forget the request object `key`, batched with other work (from
    /// any thread).
    pub(crate) fn release(&self, key: u64) {
        let mut l = lock(&self.release);
        l.push(key);
        let full = l.len() >= RELEASE_BATCH;
        drop(l);
        if full {
            let _ = self.tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// Lets the trampoline forget the request objects waiting for it (on the JavaScript
    /// thread).
    pub(crate) fn flush(&self, env: &Env) -> napi::Result<()> {
        let keys = std::mem::take(&mut *lock(&self.release));
        if keys.is_empty() {
            return Ok(());
        }
        let mut arr = env.create_array(keys.len() as u32)?;
        for (i, k) in keys.into_iter().enumerate() {
            arr.set(i as u32, k as f64)?;
        }
        call(env, &self.forget_requests, &[arr.into_unknown(env)?])
    }

    /// Keeps what the lazy properties of request object `key` are made from.
    pub(crate) fn add_info(&self, key: u64, info: Info) {
        lock(&self.infos).insert(key, Arc::new(info));
    }

    /// Keeps a JavaScript function; returns its key.
    pub(crate) fn add_function(&self, f: JsFn) -> u64 {
        let key = self.id();
        lock(&self.functions).insert(key, f);
        key
    }

    /// Releases a kept function (from any thread).
    pub(crate) fn remove_function(&self, key: u64) {
        let f = lock(&self.functions).remove(&key);
        drop(f);
    }

    /// Number of kept functions and calls awaiting JavaScript, for leak checks.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (lock(&self.functions).len(), lock(&self.pending).len())
    }

    /// Adds a listener of `event` for `owner`; true when it is the first for that pair.
    pub(crate) fn add_listener(&self, owner: u64, event: Event, f: JsFn) -> bool {
        let func = self.add_function(f);
        let mut l = lock(&self.listeners);
        let first = !l.iter().any(|x| x.owner == owner && x.event == event);
        l.push(Listener { owner, event, func });
        first
    }

    /// Removes the listener `f` of `event` for `owner` (on the JavaScript thread).
    pub(crate) fn remove_listener(&self, env: &Env, owner: u64, event: Event, f: &Function<'_>) {
        let mut l = lock(&self.listeners);
        let functions = lock(&self.functions);
        let found = l.iter().position(|x| {
            x.owner == owner
                && x.event == event
                && functions
                    .get(&x.func)
                    .and_then(|r| r.borrow_back(env).ok())
                    .is_some_and(|g| env.strict_equals(g, *f).unwrap_or(false))
        });
        drop(functions);
        if let Some(i) = found {
            let removed = l.remove(i);
            drop(l);
            self.remove_function(removed.func);
        }
    }

    /// A new owner id (a kite or client whose events are listened to).
    pub(crate) fn new_owner(&self) -> u64 {
        self.id()
    }

    /// Calls function `func` with `subject` (and `extra`) on the JavaScript thread and waits
    /// until it settles. Gives up, with `disconnect`, when `cancel` fires first.
    pub(crate) async fn invoke(
        &self,
        func: u64,
        subject: Subject,
        extra: Option<(Option<Value>, Option<KiteError>)>,
        cancel: Option<&kite::Connection>,
    ) -> Settled {
        let (tx, rx) = oneshot::channel();
        let pending = self.id();
        lock(&self.pending).insert(pending, tx);
        self.post(Job::Call {
            func,
            subject,
            extra,
            pending,
        });
        let settled = match cancel {
            Some(conn) => tokio::select! {
                r = rx => r.ok(),
                _ = conn.closed() => None,
            },
            None => rx.await.ok(),
        };
        match settled {
            Some(s) => s,
            None => {
                lock(&self.pending).remove(&pending);
                Err(KiteError::new(
                    kite::ErrorKind::Disconnect,
                    "Remote kite has disconnected",
                ))
            }
        }
    }

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
            } => {
                if let Err(e) = self.run_call(env, func, subject, extra, pending) {
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
                        vec![crate::kontrol::RegisterResult::from(r).into_unknown(env)?]
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
            ],
        )
    }

    fn resolve(&self, pending: u64, settled: Settled) {
        if let Some(tx) = lock(&self.pending).remove(&pending) {
            let _ = tx.send(settled);
        }
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

/// Creates a `Callback` that calls the JavaScript function `f` on the JavaScript thread,
/// any number of times, for as long as the core keeps it.
pub(crate) fn callback(bridge: &Arc<Bridge>, f: JsFn) -> kite::Callback {
    struct Held {
        bridge: Arc<Bridge>,
        func: u64,
    }
    impl Drop for Held {
        fn drop(&mut self) {
            self.bridge.remove_function(self.func);
        }
    }
    let held = Arc::new(Held {
        bridge: bridge.clone(),
        func: bridge.add_function(f),
    });
    kite::Callback::new(move |args| {
        held.bridge.post(Job::Callback {
            func: held.func,
            args,
        })
    })
}
