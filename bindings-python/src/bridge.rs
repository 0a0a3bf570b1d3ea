//! The bridge from the Rust runtime to an asyncio event loop.
//!
//! Every event loop that runs kite handlers or receives kite results has one [`Dispatcher`]: a
//! queue of jobs plus a wake-up socket the loop watches with `loop.add_reader`. Rust threads
//! push jobs without touching the GIL; the first push into an empty queue writes one byte,
//! and the loop then runs every queued job in one callback (a batch). So under load there is
//! one loop wake-up per batch, not one `call_soon_threadsafe` per call, and no tokio worker
//! ever waits for the GIL. Loops without `add_reader` (e.g. the Windows proactor) fall back
//! to `call_soon_threadsafe` per batch.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, Weak};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::errors::Failure;

/// Work to run on the loop's thread, with the GIL held.
pub(crate) type Job = Box<dyn FnOnce(Python<'_>) + Send>;

struct Queue {
    jobs: Vec<Job>,
    /// A wake-up is pending: the loop will drain the queue.
    armed: bool,
}

enum Wake {
    /// Write end of the socket pair whose read end the loop watches.
    Socket { tx: UnixStream, rx: UnixStream },
    /// `loop.call_soon_threadsafe` (needs the GIL).
    Threadsafe,
}

/// Runs jobs on one asyncio event loop, in batches.
pub(crate) struct Dispatcher {
    event_loop: Py<PyAny>,
    queue: Mutex<Queue>,
    wake: Wake,
    me: Weak<Dispatcher>,
}

/// Dispatchers by event loop (address of the loop object, which the dispatcher keeps alive).
static REGISTRY: Mutex<Vec<(usize, Weak<Dispatcher>)>> = Mutex::new(Vec::new());

fn get_running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static F: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    F.import(py, "asyncio", "_get_running_loop")?.call0()
}

impl Dispatcher {
    /// The dispatcher of the event loop running in this thread, if any.
    pub(crate) fn current(py: Python<'_>) -> PyResult<Option<Arc<Dispatcher>>> {
        let lp = get_running_loop(py)?;
        if lp.is_none() {
            return Ok(None);
        }
        Self::for_loop(py, &lp).map(Some)
    }

    /// The dispatcher of the running loop, or a `RuntimeError` naming `what` needs one.
    pub(crate) fn require(py: Python<'_>, what: &str) -> PyResult<Arc<Dispatcher>> {
        Self::current(py)?.ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "{what} must be called from a running asyncio event loop"
            ))
        })
    }

    /// The dispatcher of `event_loop`; must be called on the loop's thread.
    pub(crate) fn for_loop(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Self>> {
        let key = event_loop.as_ptr() as usize;
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|(_, w)| w.strong_count() > 0);
        if let Some(d) = reg
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(d);
        }
        let (rx, tx) = UnixStream::pair().map_err(PyErr::from)?;
        rx.set_nonblocking(true).map_err(PyErr::from)?;
        tx.set_nonblocking(true).map_err(PyErr::from)?;
        let fd = rx.as_raw_fd();
        let d = Arc::new_cyclic(|me| Dispatcher {
            event_loop: event_loop.clone().unbind(),
            queue: Mutex::new(Queue {
                jobs: Vec::new(),
                armed: false,
            }),
            wake: Wake::Socket { tx, rx },
            me: me.clone(),
        });
        let drain = Py::new(py, Drain(d.clone()))?;
        let d = match event_loop.call_method1("add_reader", (fd, drain)) {
            Ok(_) => d,
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyNotImplementedError>(py) => {
                Arc::new_cyclic(|me| Dispatcher {
                    event_loop: event_loop.clone().unbind(),
                    queue: Mutex::new(Queue {
                        jobs: Vec::new(),
                        armed: false,
                    }),
                    wake: Wake::Threadsafe,
                    me: me.clone(),
                })
            }
            Err(e) => return Err(e),
        };
        reg.push((key, Arc::downgrade(&d)));
        Ok(d)
    }

    /// The event loop.
    pub(crate) fn event_loop<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.event_loop.bind(py)
    }

    /// Queues `job` to run on the loop. Never blocks on the GIL (except in the fallback mode).
    pub(crate) fn push(&self, job: Job) {
        let wake = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.jobs.push(job);
            !std::mem::replace(&mut q.armed, true)
        };
        if wake {
            self.wake();
        }
    }

    fn wake(&self) {
        match &self.wake {
            Wake::Socket { tx, .. } => {
                // A full socket buffer means a wake-up is pending anyway.
                let _ = (&*tx).write(&[1]);
            }
            Wake::Threadsafe => {
                let Some(me) = self.me.upgrade() else { return };
                crate::lifecycle::attach(|py| {
                    let r = Py::new(py, Drain(me)).and_then(|drain| {
                        self.event_loop
                            .bind(py)
                            .call_method1("call_soon_threadsafe", (drain,))
                    });
                    if let Err(e) = r {
                        // The loop is closed: its jobs can never run.
                        tracing::debug!(error = %e, "event loop gone; dropping kite jobs");
                        self.queue
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .jobs
                            .clear();
                    }
                });
            }
        }
    }

    /// Runs every queued job (on the loop's thread).
    fn drain(&self, py: Python<'_>) {
        if let Wake::Socket { rx, .. } = &self.wake {
            let mut buf = [0u8; 64];
            loop {
                match (&*rx).read(&mut buf) {
                    Ok(n) if n == buf.len() => continue,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    _ => break,
                }
            }
        }
        let jobs = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.armed = false;
            std::mem::take(&mut q.jobs)
        };
        for job in jobs {
            job(py);
        }
    }
}

/// The loop callback that drains a dispatcher's queue.
#[pyclass(frozen, module = "kite_rs._native")]
struct Drain(Arc<Dispatcher>);

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        self.0.drain(py)
    }
}

/// Helpers written in Python (`kite_rs/_bridge.py`), imported once.
pub(crate) fn helper<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || py.import("kite_rs._bridge").map(Bound::unbind))?
        .bind(py)
        .getattr(name)
}

/// Starts `coro` as a task on `dispatcher`'s loop (we are on that loop's thread); the task
/// reports to `reply`; `parent` (a traced request, see `traces`) goes into its context.
/// Returns the task.
pub(crate) fn start_task<'py>(
    py: Python<'py>,
    dispatcher: &Dispatcher,
    coro: Bound<'py, PyAny>,
    reply: Bound<'py, PyAny>,
    parent: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    static START: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let start = START.get_or_try_init(py, || helper(py, "start").map(Bound::unbind))?;
    start
        .bind(py)
        .call1((dispatcher.event_loop(py), coro, reply, parent))
}

/// Runs a coroutine or awaitable returned by a user callback as a background task, logging
/// its exception if it fails.
pub(crate) fn spawn<'py>(
    py: Python<'py>,
    dispatcher: &Dispatcher,
    awaitable: Bound<'py, PyAny>,
) -> PyResult<()> {
    static SPAWN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let spawn = SPAWN.get_or_try_init(py, || helper(py, "spawn").map(Bound::unbind))?;
    spawn
        .bind(py)
        .call1((dispatcher.event_loop(py), awaitable))
        .map(drop)
}

/// Whether `obj` is awaitable (a coroutine, task, future or anything with `__await__`).
pub(crate) fn is_awaitable(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    if obj.is_none() {
        return Ok(false);
    }
    obj.hasattr(pyo3::intern!(obj.py(), "__await__"))
}

/// Sets up the tokio runtime every kite of the process runs on, the core's
/// [`kite::runtime::builder`] (fair to thousands of connections at once). Called when the
/// module loads, before anything starts the runtime.
pub(crate) fn configure_runtime() {
    pyo3_async_runtimes::tokio::init(::kite::runtime::builder());
}

/// The tokio runtime shared by every kite of the process.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Worker threads for plain `def` handlers.
///
/// They are Python threads (started with `threading.Thread`), so each keeps its thread state
/// for its whole life: taking the GIL for a job is a plain reacquire, not the thread-state
/// creation and teardown that attaching a foreign thread costs. A worker waits for jobs with
/// the GIL released and, after a job, takes the next queued one without releasing it.
pub(crate) struct WorkerPool {
    queue: Mutex<PoolQueue>,
    ready: std::sync::Condvar,
}

struct PoolQueue {
    jobs: std::collections::VecDeque<Job>,
    closed: bool,
}

impl WorkerPool {
    /// Starts `n` worker threads.
    pub(crate) fn start(py: Python<'_>, n: usize) -> PyResult<Arc<WorkerPool>> {
        let pool = Arc::new(WorkerPool {
            queue: Mutex::new(PoolQueue {
                jobs: std::collections::VecDeque::new(),
                closed: false,
            }),
            ready: std::sync::Condvar::new(),
        });
        let weak = Arc::downgrade(&pool);
        crate::lifecycle::on_exit(move || {
            if let Some(p) = weak.upgrade() {
                p.shut_down();
            }
        });
        let thread = py.import("threading")?.getattr("Thread")?;
        for i in 0..n {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("target", Py::new(py, Worker(pool.clone()))?)?;
            kwargs.set_item("name", format!("kite-rs-worker-{i}"))?;
            kwargs.set_item("daemon", true)?;
            thread.call((), Some(&kwargs))?.call_method0("start")?;
        }
        Ok(pool)
    }

    /// Queues a job for the next free worker.
    pub(crate) fn push(&self, job: Job) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.jobs.push_back(job);
        drop(q);
        self.ready.notify_one();
    }

    /// Lets the workers exit once the queue is empty.
    pub(crate) fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.ready.notify_all();
    }

    /// Stops the workers now, dropping queued jobs (their callers get an error): the
    /// interpreter is shutting down.
    fn shut_down(&self) {
        let dropped = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.closed = true;
            std::mem::take(&mut q.jobs)
        };
        self.ready.notify_all();
        drop(dropped);
    }

    fn wait(&self) -> Option<Job> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if crate::lifecycle::finalizing() {
                return None;
            }
            if let Some(job) = q.jobs.pop_front() {
                return Some(job);
            }
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn try_next(&self) -> Option<Job> {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .jobs
            .pop_front()
    }
}

/// The body of a worker thread.
#[pyclass(frozen, module = "kite_rs._native")]
struct Worker(Arc<WorkerPool>);

#[pymethods]
impl Worker {
    fn __call__(&self, py: Python<'_>) {
        // Counted until it returns: the exit hook waits for workers to leave Rust code.
        let Some(_busy) = crate::lifecycle::enter() else {
            return;
        };
        let pool = &self.0;
        while let Some(mut job) = py.detach(|| pool.wait()) {
            loop {
                job(py);
                match pool.try_next() {
                    Some(next) => job = next,
                    None => break,
                }
            }
        }
    }
}

/// Runs `fut` on the tokio runtime and returns an asyncio future of its result, on the
/// running event loop.
///
/// Unlike `pyo3_async_runtimes::tokio::future_into_py`, no tokio thread ever takes the GIL:
/// the result is converted and set by a job on the loop's thread (through its
/// [`Dispatcher`]), so a future finishing while the interpreter shuts down touches nothing.
/// Cancelling the asyncio future drops the Rust future.
pub(crate) fn future_into_py<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: std::future::Future<Output = Result<T, Failure>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let d = Dispatcher::require(py, "this")?;
    let future = d.event_loop(py).call_method0("create_future")?;
    let target = future.clone().unbind();
    let d2 = d.clone();
    let task = runtime().spawn(async move {
        let r = fut.await;
        d2.push(Box::new(move |py| settle(py, target.bind(py), r)));
    });
    future.call_method1("add_done_callback", (AbortOnCancel(task.abort_handle()),))?;
    Ok(future)
}

fn settle<T: for<'a> IntoPyObject<'a>>(
    py: Python<'_>,
    future: &Bound<'_, PyAny>,
    r: Result<T, Failure>,
) {
    let done = future
        .call_method0("done")
        .and_then(|d| d.is_truthy())
        .unwrap_or(true);
    if done {
        // Cancelled by the caller: the result is dropped.
        return;
    }
    let value = r
        .map_err(|f| f.into_py(py))
        .and_then(|v| pyo3::IntoPyObjectExt::into_bound_py_any(v, py));
    let set = match value {
        Ok(v) => future.call_method1("set_result", (v,)),
        Err(e) => future.call_method1("set_exception", (e.into_value(py),)),
    };
    if let Err(e) = set {
        crate::logging::log_exception(py, "could not complete a kite future", &e);
    }
}

/// Done-callback of a future made by [`future_into_py`]: cancelling it stops the Rust task.
#[pyclass(frozen, module = "kite_rs._native")]
struct AbortOnCancel(tokio::task::AbortHandle);

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) {
        if future
            .call_method0("cancelled")
            .and_then(|c| c.is_truthy())
            .unwrap_or(false)
        {
            self.0.abort();
        }
    }
}

/// An asyncio future of the running loop, already resolved with `value`.
pub(crate) fn ready_future<'py, T: IntoPyObject<'py>>(
    py: Python<'py>,
    value: T,
) -> PyResult<Bound<'py, PyAny>> {
    let fut = get_running_loop(py)?.call_method0("create_future")?;
    fut.call_method1("set_result", (value,))?;
    Ok(fut)
}
