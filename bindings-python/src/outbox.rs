//! The order of calls to remote functions: an [`Outbox`] sends the calls of functions
//! received together (one request's arguments) in the order Python made them, and completes
//! the awaitable each call returned.

use std::sync::Arc;

use kite::dnode::Function;
use kite::KiteError;
use pyo3::prelude::*;
use tokio::sync::{mpsc, oneshot};

use crate::arg::Arg;
use crate::bridge::{runtime, Dispatcher};
use crate::errors::kite_error_to_py;

/// Work for an [`Outbox`]'s task.
pub(crate) enum Out {
    Call {
        function: Function,
        args: Arg,
        done: Option<(Arc<Dispatcher>, Py<PyAny>)>,
    },
    Flush(oneshot::Sender<()>),
}

/// Sends the calls of remote functions received together (e.g. one request's arguments) in
/// the order Python made them, whether or not Python awaits them.
pub(crate) struct Outbox {
    pub(crate) tx: mpsc::UnboundedSender<Out>,
}

impl Outbox {
    /// An outbox and its task (on the kite runtime).
    pub(crate) fn new() -> Arc<Outbox> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
        runtime().spawn(async move {
            while let Some(out) = rx.recv().await {
                match out {
                    Out::Call {
                        function,
                        args,
                        done,
                    } => {
                        let r = function.call(args).await;
                        if let Some((d, future)) = done {
                            d.push(Box::new(move |py| resolve(py, future.bind(py), r)));
                        }
                    }
                    Out::Flush(tx) => {
                        let _ = tx.send(());
                    }
                }
            }
        });
        Arc::new(Outbox { tx })
    }

    /// Waits until every call queued so far has been handed to the connection.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Out::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn resolve(py: Python<'_>, future: &Bound<'_, PyAny>, r: Result<(), KiteError>) {
    let done = future
        .call_method0("done")
        .and_then(|d| d.is_truthy())
        .unwrap_or(true);
    if done {
        return;
    }
    let outcome = match r {
        Ok(()) => future.call_method1("set_result", (py.None(),)),
        Err(e) => future.call_method1("set_exception", (kite_error_to_py(py, &e).value(py),)),
    };
    if let Err(e) = outcome {
        crate::logging::log_exception(py, "could not complete a callback future", &e);
    }
}
