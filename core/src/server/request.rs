//! A request to one of the kite's methods, as seen by handlers.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::dnode::Arguments;
pub use crate::peer::ArgsShape;
use crate::peer::Connection;
use crate::protocol::{Auth, Kite as KiteIdentity, KiteError};

/// What a request is made of (all but its connection).
pub(crate) struct Parts {
    pub(crate) id: String,
    pub(crate) method: String,
    pub(crate) username: String,
    pub(crate) args: Arguments,
    pub(crate) shape: ArgsShape,
    pub(crate) auth: Option<Auth>,
    pub(crate) caller: KiteIdentity,
}

/// One call of a method. Cheap to clone.
#[derive(Clone)]
pub struct Request {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    method: String,
    username: String,
    args: Arguments,
    shape: ArgsShape,
    auth: Option<Auth>,
    caller: KiteIdentity,
    client: Connection,
    cancel: CancellationToken,
    extensions: Mutex<http::Extensions>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.inner.id)
            .field("method", &self.inner.method)
            .field("username", &self.inner.username)
            .field("args", &self.inner.args)
            .finish_non_exhaustive()
    }
}

impl Request {
    pub(crate) fn new(parts: Parts, client: Connection, cancel: CancellationToken) -> Self {
        let Parts {
            id,
            method,
            username,
            args,
            shape,
            auth,
            caller,
        } = parts;
        Self {
            inner: Arc::new(Inner {
                id,
                method,
                username,
                args,
                shape,
                auth,
                caller,
                client,
                cancel,
                extensions: Mutex::new(http::Extensions::new()),
            }),
        }
    }

    /// The request id: 16 random characters, returned in error responses.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The method name.
    pub fn method(&self) -> &str {
        &self.inner.method
    }

    /// The caller's username: the authenticated one when the method requires
    /// authentication, else the one the caller claims.
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// The arguments (`withArgs`).
    pub fn args(&self) -> &Arguments {
        &self.inner.args
    }

    /// `withArgs` exactly as the caller sent it: an array, a single value, or null.
    pub fn with_args(&self) -> serde_json::Value {
        match self.inner.shape {
            ArgsShape::List => serde_json::Value::Array(self.inner.args.values().to_vec()),
            ArgsShape::Single => self
                .inner
                .args
                .values()
                .first()
                .cloned()
                .unwrap_or_default(),
            ArgsShape::Absent => serde_json::Value::Null,
        }
    }

    /// How the caller sent its arguments.
    pub fn args_shape(&self) -> ArgsShape {
        self.inner.shape
    }

    /// All arguments decoded as `T` (a tuple, `Vec` or struct); `argumentError` on mismatch.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, KiteError> {
        self.inner.args.get()
    }

    /// The authentication the caller sent, if any.
    pub fn auth(&self) -> Option<&Auth> {
        self.inner.auth.as_ref()
    }

    /// The caller's kite identity (from its call options).
    pub fn caller(&self) -> &KiteIdentity {
        &self.inner.caller
    }

    /// The connection to the caller: call its methods or pass it callbacks over the same
    /// connection.
    pub fn client(&self) -> &Connection {
        &self.inner.client
    }

    /// Fires when the caller disconnects (or the kite closes).
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.inner.cancel.cancelled()
    }

    /// Whether the caller has disconnected.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Values shared by the handlers of this one call (pre, main, post and final), like the
    /// reference's `Request.Context`: a pre handler inserts, later handlers read. Dropped with
    /// the request. (The Node binding keeps the JavaScript request object here.)
    pub fn extensions(&self) -> MutexGuard<'_, http::Extensions> {
        self.inner
            .extensions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}
