//! Outgoing calls: the call message, waiting for its response, and reading the response.
#![deny(clippy::arithmetic_side_effects)]

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::connection::Connection;
use super::table::{Entry, PlaceError};
use crate::dnode::{Arguments, Borrowed, IntoPayload, Method, Path, Segment, PLACEHOLDER};
use crate::protocol::{Auth, Kite as KiteIdentity, KiteError, TraceContext};
use crate::Error;

/// The options of an outgoing call, written straight from borrowed parts (in the
/// reference's key order).
#[derive(Serialize)]
struct Options<'a> {
    kite: &'a KiteIdentity,
    authentication: Option<&'a Auth>,
    #[serde(rename = "withArgs")]
    with_args: &'a Value,
    #[serde(rename = "responseCallback")]
    response_callback: &'static str,
    /// Only with tracing on: without it the options are byte for byte the reference's.
    #[serde(rename = "traceContext", skip_serializing_if = "Option::is_none")]
    trace_context: Option<&'a TraceContext>,
}

fn send_error(e: PlaceError) -> Error {
    Error::Send(e.to_string())
}

impl Connection {
    /// Calls `method` on the remote kite and returns its result. `args` is the argument
    /// list: a [`Payload`](crate::Payload) (values and functions), or any `Serialize` value
    /// (an array is the list, `()` none, anything else one argument). `timeout`: `None` for
    /// the kite's configured timeout (15 s by default).
    pub async fn call(
        &self,
        method: &str,
        args: impl IntoPayload,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        Ok(self
            .call_full(method, args, timeout)
            .await?
            .into_values()
            .pop()
            .unwrap_or(Value::Null))
    }

    /// [`Connection::call`], keeping the functions inside the result: the returned
    /// arguments hold the result as their only value, functions at paths under index 0.
    pub async fn call_full(
        &self,
        method: &str,
        args: impl IntoPayload,
        timeout: Option<Duration>,
    ) -> Result<Arguments, Error> {
        if !self.inner.config.tracing {
            return self.send_call(method, args, timeout, None).await;
        }
        // A client span whose context travels in the call options.
        let span = tracing::info_span!("kite.call", method = %method, otel.kind = "client");
        let trace = crate::telemetry::inject(&span);
        self.send_call(method, args, timeout, trace.as_ref())
            .instrument(span)
            .await
    }

    async fn send_call(
        &self,
        method: &str,
        args: impl IntoPayload,
        timeout: Option<Duration>,
        trace_context: Option<&TraceContext>,
    ) -> Result<Arguments, Error> {
        let table = &self.inner.table;
        let (with_args, placed) = table
            .place(
                args.into_payload().into_list(),
                &[Segment::Index(0), Segment::Key("withArgs".into())],
            )
            .map_err(send_error)?;
        let (tx, rx) = oneshot::channel();
        let response_id = match table.insert(Entry::Response(tx)) {
            Ok(id) => id,
            Err(e) => {
                placed.iter().for_each(|(id, _)| drop(table.remove(*id)));
                return Err(send_error(e));
            }
        };
        let mut callbacks = Vec::with_capacity(placed.len().saturating_add(1));
        callbacks.push((
            response_id,
            vec![Segment::Index(0), Segment::Key("responseCallback".into())],
        ));
        callbacks.extend(placed);
        let auth = self.inner.auth.load();
        let options = Options {
            kite: &self.inner.config.identity,
            authentication: auth.as_deref(),
            with_args: &with_args,
            response_callback: PLACEHOLDER,
            trace_context,
        };
        let text = Borrowed {
            method: &Method::Name(method.to_string()),
            arguments: &[&options],
            callbacks: &callbacks,
        }
        .to_json();
        if let Err(e) = self.send_text(text).await {
            table.remove(response_id);
            return Err(e);
        }
        let timeout = timeout.unwrap_or(self.inner.config.timeout);
        let result = tokio::select! {
            r = rx => r,
            _ = tokio::time::sleep(timeout) => {
                table.remove(response_id);
                return Err(Error::Timeout { method: method.to_string(), url: String::new(), after: timeout });
            }
        };
        let out = parse_response(result.map_err(|_| Error::Disconnected)?);
        if let Err(Error::Remote(e)) = &out {
            if e.is_token_expired() {
                if let Some(h) = self.inner.token_expired.get() {
                    h();
                }
            }
        }
        out
    }

    pub(super) async fn send_text(&self, text: String) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Send("connection is closed".into()));
        }
        if let Some(m) = &self.inner.config.metrics {
            m.sent_bytes
                .inc_by(u64::try_from(text.len()).unwrap_or(u64::MAX));
        }
        self.inner
            .session
            .send(text)
            .await
            .map_err(|e| Error::Send(e.to_string()))
    }
}

/// Interprets the arguments of a responseCallback call: the result (as the only value,
/// with its functions), or the error.
fn parse_response(args: Arguments) -> Result<Arguments, Error> {
    let (mut values, functions) = args.into_parts();
    match values.len() {
        1 => {
            let v = values.pop().unwrap_or(Value::Null);
            let Value::Object(mut obj) = v else {
                return Err(Error::InvalidResponse(format!(
                    "response is not an object: {v}"
                )));
            };
            if !obj.contains_key("error") && !obj.contains_key("result") {
                return Err(Error::InvalidResponse(
                    "response has neither error nor result".into(),
                ));
            }
            match obj.remove("error") {
                None | Some(Value::Null) => {
                    let result = obj.remove("result").unwrap_or(Value::Null);
                    Ok(rebase(result, functions, &[0.into(), "result".into()]))
                }
                Some(e) => Err(Error::Remote(remote_error(e))),
            }
        }
        // kite.js's own default methods answer positionally: (err, result).
        2 => {
            let result = values.pop().unwrap_or(Value::Null);
            match values.pop() {
                None | Some(Value::Null) => Ok(rebase(result, functions, &[1.into()])),
                Some(e) => Err(Error::Remote(remote_error(e))),
            }
        }
        n => Err(Error::InvalidResponse(format!(
            "response has {n} arguments, expected 1"
        ))),
    }
}

/// The result as a one-value argument list, keeping the functions found under `prefix`.
fn rebase(
    result: Value,
    functions: Vec<(Path, crate::dnode::Function)>,
    prefix: &[Segment],
) -> Arguments {
    let same = |a: &Segment, b: &Segment| match (a, b) {
        (Segment::Index(i), Segment::Key(k)) | (Segment::Key(k), Segment::Index(i)) => {
            k.parse::<usize>().ok() == Some(*i)
        }
        _ => a == b,
    };
    let kept = functions
        .into_iter()
        .filter_map(|(path, f)| {
            let under =
                path.len() >= prefix.len() && path.iter().zip(prefix).all(|(a, b)| same(a, b));
            under.then(|| {
                let mut p: Path = vec![Segment::Index(0)];
                p.extend(path.into_iter().skip(prefix.len()));
                (p, f)
            })
        })
        .collect();
    Arguments::with_functions(vec![result], kept)
}

fn remote_error(e: Value) -> KiteError {
    match e {
        Value::String(s) => KiteError::generic(s),
        Value::Object(_) => serde_json::from_value::<KiteError>(e.clone())
            .unwrap_or_else(|_| KiteError::generic(e.to_string())),
        other => KiteError::generic(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorKind;
    use serde_json::json;

    fn result(args: Vec<Value>) -> Result<Value, Error> {
        parse_response(Arguments::from_values(args)).map(|a| a.into_values().remove(0))
    }

    #[test]
    fn response_shapes() {
        assert_eq!(
            result(vec![json!({"error": null, "result": 4})]).unwrap(),
            json!(4)
        );
        let err = vec![
            json!({"error": {"type":"methodNotFound","message":"Method not found: x","code":"","id":""}, "result": null}),
        ];
        match result(err) {
            Err(Error::Remote(e)) => assert_eq!(e.kind, ErrorKind::MethodNotFound),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            result(vec![Value::Null, json!("pong")]).unwrap(),
            json!("pong")
        );
        for bad in [
            vec![],
            vec![json!(1)],
            vec![json!({})],
            vec![json!(1), json!(2), json!(3)],
        ] {
            assert!(matches!(result(bad), Err(Error::InvalidResponse(_))));
        }
    }
}
