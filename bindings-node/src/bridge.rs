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
//! Liveness is separate: [`Keepalive`](crate::jsfn::Keepalive) is a *strong* threadsafe
//! function held while a kite listens or a client is connected, so the process exits by
//! itself once they are closed.
//!
//! This file is the queue and the tables, usable from any thread; `dispatch.rs` is the
//! JavaScript thread's side (creating a bridge, running its jobs, settling calls).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kite::protocol::KiteError;
use napi::bindgen_prelude::{Function, ObjectRef, ToNapiValue};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::jsfn::{call, JsFn};

type Tsfn = ThreadsafeFunction<(), (), (), Status, false, true, 0>;

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
        /// The traced request being served (see `traces`): its handler's calls continue it.
        parent: Option<crate::traces::Parent>,
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

/// A listener of an event of `owner` (a kite or client), kept as function `func`.
pub(crate) struct Listener {
    pub(crate) owner: u64,
    pub(crate) event: Event,
    pub(crate) func: u64,
}

/// Releases a traced request's span when the call through the bridge is over.
struct Released(crate::traces::Parent);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Runs after the JavaScript side settles or the wait is abandoned.
pub(crate) type Sender = oneshot::Sender<Settled>;

/// One kite's bridge. See the module documentation.
pub(crate) struct Bridge {
    pub(crate) tsfn: Tsfn,
    pub(crate) queue: Mutex<Vec<Job>>,
    pub(crate) next: AtomicU64,
    pub(crate) pending: Mutex<HashMap<u64, Sender>>,
    pub(crate) functions: Mutex<HashMap<u64, JsFn>>,
    pub(crate) listeners: Mutex<Vec<Listener>>,
    /// Request objects of finished calls the trampoline may forget, at the next wake-up of
    /// the JavaScript thread; a full batch wakes it by itself.
    pub(crate) release: Mutex<Vec<u64>>,
    /// What the lazy properties of live request objects are made from.
    pub(crate) infos: Mutex<HashMap<u64, Arc<Info>>>,
    /// `dispatch(handler, key, pending, a, b, …)` of `lib/bridge.js`.
    pub(crate) trampoline: JsFn,
    pub(crate) forget_requests: JsFn,
    /// `invoke(fn, ...args)`: runs a callback or listener, reporting what it throws.
    pub(crate) invoke: JsFn,
    /// `failed(error)`: reports an error like a throw of a callback.
    pub(crate) failed: JsFn,
}

/// Finished requests whose objects may wait for the next wake-up of the JavaScript thread.
const RELEASE_BATCH: usize = 64;

/// Locks `m`, also after a panic elsewhere poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Bridge {
    /// A fresh key (functions, pending calls, owners, requests).
    pub(crate) fn id(&self) -> u64 {
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
        let parent = crate::traces::Parent::serving();
        let _release = parent.clone().map(Released);
        self.post(Job::Call {
            func,
            subject,
            extra,
            pending,
            parent: parent.clone(),
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

    /// Settles the pending call `pending` with `settled`.
    pub(crate) fn resolve(&self, pending: u64, settled: Settled) {
        if let Some(tx) = lock(&self.pending).remove(&pending) {
            let _ = tx.send(settled);
        }
    }
}

/// The request's place in the core request: whether its JavaScript object exists (the
/// trampoline keeps it for the handlers after the first); dropping it, when the call is
/// over, lets the trampoline forget the object.
pub(crate) struct Slot {
    bridge: Arc<Bridge>,
    pub(crate) key: u64,
    pub(crate) created: AtomicBool,
    pub(crate) done: CancellationToken,
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
    pub(crate) caller: kite::protocol::Kite,
    pub(crate) auth: Option<kite::protocol::Auth>,
    pub(crate) conn: kite::Connection,
    pub(crate) done: CancellationToken,
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
