//! The interpreter's life as the Rust side sees it: no thread of ours touches Python once
//! the interpreter starts shutting down.
//!
//! Tokio workers and the logging thread are not Python threads: to run Python code they
//! attach with `PyGILState_Ensure`. Doing that while CPython finalizes kills the thread
//! mid-unwind (SIGSEGV, "Fatal Python error: PyGILState_Release … finalizing"), and after
//! it finished pyo3 panics ("The Python interpreter is not initialized"). And `Py_IsFinalizing`
//! is not in the stable ABI before 3.13. So the module registers an `atexit` hook, which
//! CPython runs before it starts finalizing (after joining non-daemon threads). The hook
//!
//! 1. closes the gate: from then on [`attach`] refuses (returns `None`), so no new foreign
//!    thread enters Python; a Python object still held by Rust is dropped into pyo3's
//!    deferred-decref pool, i.e. deliberately leaked when nothing attaches again;
//! 2. stops the handler worker threads (they are Python daemon threads: one woken after
//!    finalization began would be killed inside Rust frames);
//! 3. waits, with the GIL released, for threads already inside [`attach`] and for the
//!    workers to leave (bounded by [`EXIT_WAIT`]: a handler stuck in a loop cannot hold the
//!    exit forever).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// How long the exit hook waits for threads still running Python code of ours.
const EXIT_WAIT: Duration = Duration::from_secs(2);

static FINALIZING: AtomicBool = AtomicBool::new(false);
/// Threads inside [`attach`] plus live handler worker threads.
static BUSY: AtomicUsize = AtomicUsize::new(0);
static IDLE: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
/// Called once by the exit hook before it waits (stops the worker pools).
static ON_EXIT: Mutex<Vec<Box<dyn FnOnce() + Send>>> = Mutex::new(Vec::new());

/// Whether the interpreter is shutting down (the exit hook ran).
pub(crate) fn finalizing() -> bool {
    FINALIZING.load(Ordering::SeqCst)
}

/// Marks this thread busy with Python until the guard drops; `None` once shutting down.
pub(crate) fn enter() -> Option<Busy> {
    BUSY.fetch_add(1, Ordering::SeqCst);
    let busy = Busy(());
    (!finalizing()).then_some(busy)
}

/// A thread counted as running Python code of ours (see [`enter`]).
pub(crate) struct Busy(());

impl Drop for Busy {
    fn drop(&mut self) {
        if BUSY.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _lock = IDLE.0.lock().unwrap_or_else(|e| e.into_inner());
            IDLE.1.notify_all();
        }
    }
}

/// `Python::attach` for threads that are not Python threads (tokio workers, the logging
/// thread): runs `f` with the GIL, or returns `None` without touching Python once the
/// interpreter is shutting down.
pub(crate) fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    let _busy = enter()?;
    Some(Python::attach(f))
}

/// Runs `f` once when the interpreter starts shutting down (from the exit hook).
pub(crate) fn on_exit(f: impl FnOnce() + Send + 'static) {
    ON_EXIT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(f));
}

/// The `atexit` hook (see the module docs).
#[pyfunction]
fn _at_exit(py: Python<'_>) {
    if FINALIZING.swap(true, Ordering::SeqCst) {
        return;
    }
    let hooks = std::mem::take(&mut *ON_EXIT.lock().unwrap_or_else(|e| e.into_inner()));
    py.detach(|| {
        for h in hooks {
            h();
        }
        let deadline = Instant::now() + EXIT_WAIT;
        let mut lock = IDLE.0.lock().unwrap_or_else(|e| e.into_inner());
        while BUSY.load(Ordering::SeqCst) > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            lock = IDLE
                .1
                .wait_timeout(lock, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    });
}

/// Registers the exit hook (at module import).
pub(crate) fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let hook = wrap_pyfunction!(_at_exit, m)?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}
