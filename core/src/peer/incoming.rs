//! Incoming calls: how a received call is split into its parts, handed up through
//! [`Dispatch`](super::Dispatch), and answered ([`Reply::send`]).
#![deny(clippy::arithmetic_side_effects)]

use std::sync::atomic::Ordering;

use serde_json::Value;
use tracing::Instrument;

use super::connection::{ArgsShape, Connection, Incoming, Reply};
use crate::dnode::{Arguments, Borrowed, IntoPayload, Method, Path, Segment};
use crate::protocol::{args_list, CallOptions, ErrorKind, KiteError, Response};

impl Reply {
    /// The id of the request this answers.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Sends the result (which may carry functions) or the error.
    pub async fn send(self, outcome: Result<impl IntoPayload, KiteError>) {
        let Some(response_id) = self.response_id else {
            tracing::debug!("call without responseCallback; result dropped");
            return;
        };
        let (payload, error) = match outcome {
            Ok(v) => (v.into_payload(), None),
            Err(e) => {
                tracing::debug!(error = %e, "request failed");
                (Value::Null.into_payload(), Some(e))
            }
        };
        let table = &self.conn.inner.table;
        let prefix = [Segment::Index(0), Segment::Key("result".into())];
        let (result, callbacks, error) = match table.place(payload, &prefix) {
            Ok((v, c)) => (v, c, error),
            Err(e) => {
                tracing::debug!(error = %e, "response refused");
                let kind = if e.kind() == ErrorKind::SendError {
                    ErrorKind::GenericError
                } else {
                    e.kind()
                };
                let e = KiteError::new(kind, e.to_string()).with_id(&self.request_id);
                (Value::Null, Vec::new(), Some(e))
            }
        };
        let response = Response { error, result };
        // Written straight from the response (not through a `Value` of it).
        let text = Borrowed {
            method: &Method::Callback(response_id),
            arguments: &[&response],
            callbacks: &callbacks,
        }
        .to_json();
        if let Err(e) = self.conn.send_text(text).await {
            tracing::debug!(error = %e, "could not send response");
        }
    }
}

/// A request id: 16 alphanumerics, like the reference's. Six random bits per character,
/// the two values beyond 62 drawn again (uniform, and no division).
fn random_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut id = String::with_capacity(16);
    while id.len() < 16 {
        let mut x: u64 = rand::random();
        for _ in 0..10 {
            if let Some(&c) = CHARS.get((x & 63) as usize) {
                if id.len() < 16 {
                    id.push(c as char);
                }
            }
            x >>= 6;
        }
    }
    id
}

/// The responseCallback id and the functions inside withArgs (paths relative to it).
fn split_callbacks(callbacks: Vec<(u64, Path)>) -> (Option<u64>, Vec<(Path, u64)>) {
    let mut response_id = None;
    let mut with_args = Vec::new();
    for (id, path) in callbacks {
        let is_zero = matches!(path.first(), Some(Segment::Index(0)))
            || matches!(path.first(), Some(Segment::Key(k)) if k == "0");
        match (is_zero, path.get(1), path.len()) {
            (true, Some(Segment::Key(k)), 2) if k == "responseCallback" => response_id = Some(id),
            (true, Some(Segment::Key(k)), _) if k == "withArgs" => {
                with_args.push((path.into_iter().skip(2).collect(), id))
            }
            _ => tracing::debug!(id, "callback outside withArgs ignored"),
        }
    }
    (response_id, with_args)
}

impl Connection {
    /// Serves one incoming call: answers malformed options itself, hands the rest up.
    pub(super) async fn serve(
        &self,
        method: String,
        options: Result<CallOptions, KiteError>,
        callbacks: Vec<(u64, Path)>,
    ) {
        let (response_id, fns) = split_callbacks(callbacks);
        let id = random_id();
        let span = if self.inner.config.tracing {
            // A server span, the child of the caller's when it sent its trace context.
            let span = tracing::info_span!("kite.request", method = %method, id = %id, otel.kind = "server");
            if let Ok(Some(tc)) = options.as_ref().map(|o| o.trace_context.as_ref()) {
                crate::telemetry::set_parent(&span, tc);
            }
            span
        } else {
            tracing::debug_span!("request", method = %method, id = %id)
        };
        let reply = Reply {
            conn: self.clone(),
            response_id,
            request_id: id.clone(),
        };
        let mut options = match options {
            Ok(o) => o,
            Err(e) => {
                let e = e.with_id(&reply.request_id);
                return reply.send(Err::<(), _>(e)).instrument(span).await;
            }
        };
        // The caller's identity is learned from its first request.
        if !self.inner.dialed && !self.inner.first_request.swap(true, Ordering::AcqRel) {
            self.set_remote_kite(options.kite.clone());
            self.inner.dispatch.first_request(self);
        }
        let with_args = std::mem::take(&mut options.with_args);
        let shape = match &with_args {
            Value::Array(_) => ArgsShape::List,
            Value::Null => ArgsShape::Absent,
            _ => ArgsShape::Single,
        };
        // A scalar withArgs is one argument; function paths then gain a leading index.
        let fns = fns
            .into_iter()
            .map(|(mut p, id)| {
                if shape != ArgsShape::List {
                    p.insert(0, Segment::Index(0));
                }
                (p, id)
            })
            .collect();
        let args = Arguments::received(args_list(with_args), fns, self.sink());
        let call = Incoming {
            method,
            id,
            options,
            args,
            shape,
            connection: self.clone(),
            reply,
        };
        self.inner.dispatch.dispatch(call).instrument(span).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_sixteen_alphanumerics() {
        let ids: std::collections::HashSet<String> = (0..2000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 2000);
        for id in &ids {
            assert_eq!(id.len(), 16);
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
        // Every character of the alphabet turns up (no bias towards a subset).
        let seen: std::collections::HashSet<u8> = ids.iter().flat_map(|i| i.bytes()).collect();
        assert_eq!(seen.len(), 62);
    }
}
