//! The read loop: takes messages off the session, answers callbacks from the table, and
//! serves calls concurrently within the per-connection limits.
#![deny(clippy::arithmetic_side_effects)]

use std::task::Poll;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use super::connection::Connection;
use super::table::Entry;
use crate::dnode::{Arguments, BoxFuture, LazyMessage, Message, MessageError, Method, Path};
use crate::metrics::Limit;
use crate::protocol::json::nesting_depth;
use crate::protocol::{CallOptions, KiteError};
use crate::sockjs::TryRecvError;

/// Requests being served by one connection, with the bytes of their messages.
struct InFlight {
    /// Requests whose handlers are waiting (on I/O, a timer, a Python or JavaScript
    /// handler, a call back to the caller…) stay in the connection's task rather than in a
    /// task each: their completions then wake one task per batch, and their responses
    /// leave together, in one frame, instead of one frame per request. Each yields the
    /// size of its message when done.
    futures: FuturesUnordered<BoxFuture<'static, usize>>,
    /// Bytes of the messages of `futures`: with their number, bounded by the limits
    /// (reading pauses while either is reached, slowing the peer down).
    bytes: usize,
}

impl InFlight {
    fn push(&mut self, size: usize, fut: BoxFuture<'static, usize>) {
        self.bytes = self.bytes.saturating_add(size);
        self.futures.push(fut);
    }

    fn done(&mut self, size: usize) {
        self.bytes = self.bytes.saturating_sub(size);
    }
}

impl Connection {
    /// Reads and dispatches messages until the session ends, then fails pending calls with
    /// `disconnect` and empties the callback table.
    pub async fn run(&self) {
        self.inner.dispatch.connected(self);
        let config = self.inner.config.clone();
        let (max_calls, max_bytes) = (
            config.max_calls_in_flight.max(1),
            config.max_bytes_in_flight.max(1),
        );
        let local_closed = &config.closed;
        let metrics = config.metrics.as_ref();
        let open =
            metrics.map(|m| m.connection_opened(self.inner.session.transport(), self.inner.dialed));
        let mut flight = InFlight {
            futures: FuturesUnordered::new(),
            bytes: 0,
        };
        // Reading paused at a limit: counted once per pause.
        let mut paused = false;
        loop {
            if flight.futures.len() >= max_calls || flight.bytes >= max_bytes {
                if let (Some(m), false) = (metrics, paused) {
                    m.limit_reached(if flight.futures.len() >= max_calls {
                        Limit::CallsInFlight
                    } else {
                        Limit::BytesInFlight
                    });
                }
                paused = true;
                tokio::select! {
                    Some(n) = flight.futures.next() => flight.done(n),
                    _ = local_closed.cancelled() => { self.inner.session.close(); break }
                    _ = self.inner.session.closed() => break,
                }
                continue;
            }
            paused = false;
            // Messages already waiting are taken without setting up the select below.
            let waiting = match self.inner.session.try_recv() {
                Ok(t) if !local_closed.is_cancelled() => Some(t),
                Err(TryRecvError::Closed) => break,
                _ => None,
            };
            let text = match waiting {
                Some(t) => t,
                None => tokio::select! {
                    t = self.inner.session.recv() => match t { Some(t) => t, None => break },
                    _ = local_closed.cancelled() => { self.inner.session.close(); break }
                    Some(n) = flight.futures.next(), if !flight.futures.is_empty() => {
                        flight.done(n);
                        continue
                    }
                },
            };
            self.read_one(text, &mut flight).await;
        }
        self.inner.closed.cancel();
        // Requests still running see the cancellation and finish on their own task.
        let mut rest = flight.futures;
        if !rest.is_empty() {
            tokio::spawn(async move { while rest.next().await.is_some() {} });
        }
        // Dropping the senders fails every pending call with `disconnect`.
        self.inner.table.clear();
        drop(open);
        self.inner.dispatch.disconnected(self);
    }

    /// Handles one received message.
    async fn read_one(&self, text: String, flight: &mut InFlight) {
        // Only the size: messages carry credentials (kite keys, tokens).
        tracing::trace!(bytes = text.len(), "received");
        let size = text.len();
        if let Some(m) = &self.inner.config.metrics {
            m.received_bytes
                .inc_by(u64::try_from(size).unwrap_or(u64::MAX));
        }
        let mut msg = match LazyMessage::parse(&text) {
            Ok(m) => m,
            Err(MessageError::Nested) => return self.push_nested(text, flight),
            Err(e) => return tracing::debug!(error = %e, "dropping malformed message"),
        };
        match msg.method.clone() {
            Method::Callback(id) => {
                let callbacks = std::mem::take(&mut msg.callbacks);
                match msg.arguments() {
                    Ok(arguments) => self.run_callback(id, arguments, callbacks),
                    Err(MessageError::Nested) => self.push_nested(text, flight),
                    Err(e) => tracing::debug!(error = %e, "dropping malformed message"),
                }
            }
            Method::Name(name) => {
                let Some(options) = call_options(&msg, &text) else {
                    if nesting_depth(text.as_bytes()) > crate::dnode::FAST_DEPTH {
                        self.push_nested(text, flight);
                    } else {
                        tracing::debug!("dropping malformed message");
                    }
                    return;
                };
                let callbacks = std::mem::take(&mut msg.callbacks);
                let conn = self.clone();
                let fut = async move {
                    conn.serve(name, options, callbacks).await;
                    size
                };
                if self.inner.config.sequential {
                    fut.await;
                    return;
                }
                // Most handlers finish without waiting: poll once here, and keep only a
                // request that is still pending.
                let mut fut: BoxFuture<'static, usize> = Box::pin(fut);
                let waits =
                    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending()))
                        .await;
                if waits {
                    flight.push(size, fut);
                }
            }
        }
    }

    /// Queues a message nested deeper than the fast path parses, to be handled on a stack
    /// of its own, as one more request in flight.
    fn push_nested(&self, text: String, flight: &mut InFlight) {
        let size = text.len();
        let conn = self.clone();
        let deep = crate::dnode::on_big_stack(async move {
            conn.serve_nested(text).await;
            size
        });
        flight.push(size, Box::pin(deep));
    }

    /// Handles a message nested deeper than the fast path parses (up to
    /// [`crate::dnode::MAX_DEPTH`] levels, like the reference), as [`Connection::run`]
    /// handles the others; runs on a stack of its own ([`crate::dnode::on_big_stack`]).
    async fn serve_nested(&self, text: String) {
        let msg = match Message::parse_nested(&text) {
            Ok(m) => m,
            Err(MessageError::TooDeep) => return self.refuse_too_deep(&text).await,
            Err(e) => return tracing::debug!(error = %e, "dropping malformed message"),
        };
        match msg.method {
            Method::Callback(id) => self.run_callback(id, msg.arguments, msg.callbacks),
            Method::Name(name) => {
                let options = match msg.arguments.into_iter().next() {
                    Some(v @ Value::Object(_)) => serde_json::from_value::<CallOptions>(v)
                        .map_err(|e| KiteError::argument(format!("invalid call options: {e}"))),
                    _ => Err(KiteError::argument("call options must be an object")),
                };
                self.serve(name, options, msg.callbacks).await;
            }
        }
    }

    /// Deeper than the reference reads: refused, with an answer when the (shallow) rest of
    /// the message says where to send it.
    async fn refuse_too_deep(&self, text: &str) {
        let shallow = crate::protocol::json::truncate_nesting(text, 16);
        if let Ok(Message {
            method: Method::Name(name),
            callbacks,
            ..
        }) = Message::parse(&shallow)
        {
            let refusal = KiteError::argument(format!(
                "arguments nested deeper than {} levels",
                crate::dnode::MAX_DEPTH
            ));
            self.serve(name, Err(refusal), callbacks).await;
        }
    }

    fn run_callback(&self, id: u64, arguments: Vec<Value>, callbacks: Vec<(u64, Path)>) {
        let functions = callbacks.into_iter().map(|(id, p)| (p, id)).collect();
        let args = Arguments::received(arguments, functions, self.sink());
        match self.inner.table.take_for_call(id) {
            Some(Entry::User(cb)) => cb.invoke(args),
            Some(Entry::Response(tx)) => {
                let _ = tx.send(args);
            }
            None => tracing::debug!(id, "call to unknown callback id ignored"),
        }
    }
}

/// Decodes a call's options (its first argument), straight from the JSON text when the
/// message took the fast path. `None`: the message is malformed after all (e.g. a number
/// out of range that only a full parse sees) and is dropped, as the reference parse does.
pub(crate) fn call_options(
    msg: &LazyMessage<'_>,
    text: &str,
) -> Option<Result<CallOptions, KiteError>> {
    let not_object = || KiteError::argument("call options must be an object");
    let invalid = |e: serde_json::Error| KiteError::argument(format!("invalid call options: {e}"));
    let value = match msg.first_argument() {
        Ok(None) | Err(None) => return Some(Err(not_object())),
        Ok(Some(raw)) => {
            if !raw.get().starts_with('{') {
                return Some(Err(not_object()));
            }
            if let Ok(o) = serde_json::from_str::<CallOptions>(raw.get()) {
                return Some(Ok(o));
            }
            // Decide the rest the reference way, through a Value tree of the whole message.
            let full = Message::parse(text).ok()?;
            full.arguments.into_iter().next().unwrap_or(Value::Null)
        }
        Err(Some(v)) => v.clone(),
    };
    Some(match value {
        Value::Object(_) => serde_json::from_value(value).map_err(invalid),
        _ => Err(not_object()),
    })
}
