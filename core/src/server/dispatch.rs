//! How a kite serves the calls its connections hand up ([`Dispatch`]): method lookup,
//! authentication, throttling, the [`Request`], and the method's chain.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;
use std::time::Instant;

use super::drain::closing_error;
use super::kite::Kite;
use super::method::HandlerResult;
use super::request::Request;
use crate::dnode::BoxFuture;
use crate::metrics::{Limit, MethodMetrics};
use crate::peer::{Connection, Dispatch, Incoming};
use crate::protocol::{ErrorKind, KiteError};

impl Dispatch for Kite {
    fn dispatch(&self, call: Incoming) -> BoxFuture<'static, ()> {
        let kite = self.clone();
        Box::pin(async move {
            // In flight until its response is sent; refused once the kite is closing.
            let guard = kite.begin_call();
            let Incoming {
                method,
                id,
                options,
                args,
                shape,
                connection,
                reply,
            } = call;
            let request_id = id.clone();
            // Metrics: the clock only runs when they are on.
            let started = kite.inner.metrics.is_some().then(Instant::now);
            let mut counted = None;
            let outcome = match guard {
                Some(_) => {
                    let parts = (method, id, options, args, shape, connection);
                    kite.serve(parts, &mut counted).await
                }
                None => Err(closing_error()),
            };
            if let (Some(started), Some(metrics)) = (started, kite.inner.metrics.as_ref()) {
                let m = counted.as_ref().unwrap_or_else(|| metrics.other());
                m.record(outcome.as_ref().map(|_| ()), started.elapsed());
            }
            // Errors name the request, except `methodNotFound` (as the reference answers).
            let outcome = outcome.map_err(|e| {
                if e.id.is_empty() && e.kind != ErrorKind::MethodNotFound {
                    e.with_id(&request_id)
                } else {
                    e
                }
            });
            reply.send(outcome).await;
            drop(guard);
        })
    }

    fn connected(&self, conn: &Connection) {
        self.inner
            .events
            .load()
            .connect
            .iter()
            .for_each(|h| h(conn));
    }

    fn first_request(&self, conn: &Connection) {
        let events = self.inner.events.load();
        events.first_request.iter().for_each(|h| h(conn));
    }

    fn disconnected(&self, conn: &Connection) {
        self.inner
            .events
            .load()
            .disconnect
            .iter()
            .for_each(|h| h(conn));
    }
}

type Parts = (
    String,
    String,
    crate::protocol::CallOptions,
    crate::dnode::Arguments,
    crate::peer::ArgsShape,
    Connection,
);

impl Kite {
    /// Serves one call: the method, the caller's authentication, the method's throttle,
    /// then its chain. `counted`: the method's metrics, once it is found.
    async fn serve(&self, parts: Parts, counted: &mut Option<Arc<MethodMetrics>>) -> HandlerResult {
        let (method, id, options, args, shape, connection) = parts;
        // One snapshot for the whole call: a method replaced meanwhile is used next time.
        let table = self.inner.table.load_full();
        let Some(m) = table.methods.get(&method) else {
            return Err(KiteError::method_not_found(&method));
        };
        counted.clone_from(&m.metrics);
        let username = if m.requires_authentication() && !connection.is_dialed() {
            super::authn::authenticate(
                &table.authenticators,
                self.verifier(),
                options.authentication.as_ref(),
                &options.kite,
                self.identity(),
                self.metrics().map(|m| &**m),
            )
            .await?
        } else {
            options.kite.username.clone()
        };
        if !m.admit() {
            if let Some(metrics) = self.metrics() {
                metrics.peer().limit_reached(Limit::Throttle);
            }
            return Err(KiteError::request_limit());
        }
        let cancel = connection.cancel_token();
        let req = Request::new(
            super::request::Parts {
                id,
                method,
                username,
                args,
                shape,
                auth: options.authentication,
                caller: options.kite,
            },
            connection,
            cancel,
        );
        m.serve(req, &table.wide).await
    }
}
