//! Outgoing values ([`Arg`]): JSON with the functions inside it, and how Python callables
//! in them become callbacks ([`Outgoing`]). An `Arg` becomes the core's [`Payload`]: the JSON
//! value plus each function at its path.

use std::sync::Arc;

use kite::dnode::{Callback, Function, IntoPayload, Path, Payload, Segment, PLACEHOLDER};
use serde_json::Value;

use crate::bridge::Dispatcher;

/// An outgoing value: JSON, possibly with functions inside.
pub(crate) enum Arg {
    /// Plain JSON (no functions anywhere below).
    Json(Value),
    /// An array with functions inside.
    List(Vec<Arg>),
    /// An object with functions inside.
    Map(Vec<(String, Arg)>),
    /// A local function the remote side may call.
    Callback(Callback),
    /// A remote function passed on (forwarded by a local callback).
    Function(Function),
}

impl IntoPayload for Arg {
    /// The value, with each function's place recorded beside it.
    fn into_payload(self) -> Payload {
        let mut functions = Vec::new();
        let value = self.flatten(&mut Vec::new(), &mut functions);
        Payload::from_parts(value, functions)
    }
}

impl Arg {
    /// The JSON value, functions replaced by their placeholder and collected with their paths.
    fn flatten(self, path: &mut Path, functions: &mut Vec<(Path, Callback)>) -> Value {
        match self {
            Arg::Json(v) => v,
            Arg::List(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| {
                        path.push(Segment::Index(i));
                        let v = a.flatten(path, functions);
                        path.pop();
                        v
                    })
                    .collect(),
            ),
            Arg::Map(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, a)| {
                        path.push(Segment::Key(k.clone()));
                        let v = a.flatten(path, functions);
                        path.pop();
                        (k, v)
                    })
                    .collect(),
            ),
            Arg::Callback(cb) => {
                functions.push((path.clone(), cb));
                Value::String(PLACEHOLDER.into())
            }
            Arg::Function(f) => {
                functions.push((path.clone(), Callback::from(f)));
                Value::String(PLACEHOLDER.into())
            }
        }
    }

    /// The JSON value, when there are no functions inside.
    pub(crate) fn into_json(self) -> Result<Value, Arg> {
        match self {
            Arg::Json(v) => Ok(v),
            other => Err(other),
        }
    }
}

/// How Python callables found in outgoing values become callbacks: they run on `dispatcher`'s
/// loop (or in a worker thread when there is none).
#[derive(Clone, Default)]
pub(crate) struct Outgoing {
    pub(crate) dispatcher: Option<Arc<Dispatcher>>,
}
