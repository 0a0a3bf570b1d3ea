//! Calls through a client: [`Client::call`] and the [`Call`] future.

use std::future::IntoFuture;
use std::time::Duration;

use serde_json::Value;

use super::handle::Client;
use crate::dnode::{BoxFuture, IntoPayload, Payload};
use crate::Error;

impl Client {
    /// Calls `method` with `args`: a [`Payload`] (values and functions), or any `Serialize`
    /// value (an array or tuple is the argument list, `()` none, anything else one
    /// argument). Await it, optionally after setting `.timeout(…)` (default: the kite's
    /// timeout, 15 s).
    pub fn call<'a>(&'a self, method: &'a str, args: impl IntoPayload) -> Call<'a> {
        Call {
            client: self,
            method,
            args: args.into_payload(),
            timeout: None,
        }
    }
}

/// A pending call; `.timeout(d)` sets its timeout, `.await` runs it.
pub struct Call<'a> {
    client: &'a Client,
    method: &'a str,
    args: Payload,
    timeout: Option<Duration>,
}

impl Call<'_> {
    /// Fails with [`Error::Timeout`] when no response arrives within `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<'a> IntoFuture for Call<'a> {
    type Output = Result<Value, Error>;
    type IntoFuture = BoxFuture<'a, Result<Value, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let conn = self
                .client
                .connection()
                .ok_or_else(|| Error::Send("not connected".into()))?;
            match conn.call(self.method, self.args, self.timeout).await {
                Err(Error::Timeout { method, after, .. }) => Err(Error::Timeout {
                    method,
                    url: self.client.inner.url.clone(),
                    after,
                }),
                other => other,
            }
        })
    }
}
