//! Functions that travel as arguments, in both directions.
//!
//! - [`Callback`]: a local function put into outgoing arguments ([`super::Payload`]); the
//!   connection that sends it keeps it in its own callback table under a fresh id.
//! - [`Function`]: a function of the remote side, received in [`super::Arguments`], bound to
//!   the connection it came from; calling it sends a message whose `method` is its id.
//!
//! Neither is serializable: functions are never hidden inside JSON values. They sit beside
//! the values, at explicit paths, so a string a peer sent stays a string.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use super::arguments::Arguments;
use super::payload::IntoPayload;
use super::payload::Payload;
use crate::protocol::{ErrorKind, KiteError};

/// A boxed future, as used by [`FunctionSink`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A local function the remote side may call, any number of times.
#[derive(Clone)]
pub struct Callback {
    f: Arc<dyn Fn(Arguments) + Send + Sync>,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Callback")
    }
}

impl Callback {
    /// A callback run on the connection's reader; keep it short (spawn for longer work).
    pub fn new(f: impl Fn(Arguments) + Send + Sync + 'static) -> Self {
        Self { f: Arc::new(f) }
    }

    /// A callback whose every invocation runs as its own task.
    pub fn new_async<F, Fut>(f: F) -> Self
    where
        F: Fn(Arguments) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::new(move |args| {
            tokio::spawn(f(args));
        })
    }

    /// Calls the function with `args`.
    pub fn invoke(&self, args: Arguments) {
        (self.f)(args)
    }
}

impl From<Function> for Callback {
    /// A remote function passed on: calling the callback calls the remote function with the
    /// same arguments (functions included).
    fn from(f: Function) -> Self {
        Callback::new_async(move |args: Arguments| {
            let f = f.clone();
            async move {
                if let Err(e) = f.call(args).await {
                    tracing::debug!(error = %e, "forwarded function call failed");
                }
            }
        })
    }
}

/// The connection side of remote functions: sends `{"method": id, "arguments": …}`.
pub trait FunctionSink: Send + Sync {
    /// Calls remote function `id` with `args` (an argument list).
    fn call_function(&self, id: u64, args: Payload) -> BoxFuture<'_, Result<(), KiteError>>;
}

/// A function of the remote side, received as an argument. Call it any number of times.
#[derive(Clone)]
pub struct Function {
    id: u64,
    sink: Weak<dyn FunctionSink>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Function({})", self.id)
    }
}

impl Function {
    /// A function bound to a connection.
    pub fn new(id: u64, sink: Weak<dyn FunctionSink>) -> Self {
        Self { id, sink }
    }

    /// The remote callback id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Calls the remote function. `args` is the argument list: a [`Payload`] (values and
    /// callbacks), [`Arguments`] received elsewhere, or any `Serialize` value (an array is
    /// the list, `()` none, anything else one argument). Fails with `sendError` when the
    /// connection is gone.
    pub async fn call(&self, args: impl IntoPayload) -> Result<(), KiteError> {
        let args = args.into_payload().into_list();
        let Some(sink) = self.sink.upgrade() else {
            return Err(KiteError::new(ErrorKind::SendError, "connection is closed"));
        };
        sink.call_function(self.id, args).await
    }
}
