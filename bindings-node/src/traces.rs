//! Traces through JavaScript handlers. The core makes the spans and carries the trace
//! context (`tracing: true`, exported by the process's one OTLP exporter, see `logging`).
//! What Node adds: the `kite.request` span a handler serves goes to the trampoline with the
//! call, which runs the handler inside an `AsyncLocalStorage` holding it (`lib/bridge.js`);
//! the package's `tell` wrappers hand it back with `__traceEnter` around the native `tell`,
//! so that the calls the handler makes are its children.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{External, Unknown};
use napi::Env;
use tracing::Span;

/// The span a handler serves, as the trampoline keeps it. Released once the handler has
/// settled ([`Parent::release`]): the JavaScript side keeps the handle until it is garbage
/// collected, and a span is exported only once every handle to it is gone.
#[derive(Clone)]
pub(crate) struct Parent(Arc<Mutex<Option<Span>>>);

impl Parent {
    /// The request span being served here, when it is traced (else `None`: nothing to carry).
    pub(crate) fn serving() -> Option<Parent> {
        let span = Span::current();
        (!span.is_disabled()).then(|| Parent(Arc::new(Mutex::new(Some(span)))))
    }

    /// Lets the span end: later calls of the handler start traces of their own.
    pub(crate) fn release(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn span(&self) -> Option<Span> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

thread_local! {
    /// The parent of the `tell` being made on this JavaScript thread, between
    /// `__traceEnter` and `__traceLeave`.
    static ENTERED: RefCell<Option<Span>> = const { RefCell::new(None) };
}

/// `parent` for the trampoline.
pub(crate) fn to_js(env: &Env, parent: Parent) -> napi::Result<Unknown<'_>> {
    External::new(parent).into_unknown(env)
}

/// The parent of a `tell` made now (none outside `__traceEnter`/`__traceLeave`).
pub(crate) fn entered() -> Span {
    ENTERED
        .with(|e| e.borrow().clone())
        .unwrap_or_else(Span::none)
}

/// Makes `parent` the parent of the `tell` calls until `__traceLeave`; not for users.
#[napi(js_name = "__traceEnter", skip_typescript)]
pub fn trace_enter(parent: &External<Parent>) {
    let span = parent.span();
    ENTERED.with(|e| *e.borrow_mut() = span);
}

/// Ends `__traceEnter`; not for users.
#[napi(js_name = "__traceLeave", skip_typescript)]
pub fn trace_leave() {
    ENTERED.with(|e| *e.borrow_mut() = None);
}
