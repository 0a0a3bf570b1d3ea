//! Outgoing values ([`Arg`]): JSON with the functions inside it, and how Python callables
//! in them become callbacks ([`Outgoing`]).

use std::sync::Arc;

use kite::dnode::{Callback, Function};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
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

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Arg::Json(v) => v.serialize(s),
            Arg::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Arg::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Arg::Callback(cb) => cb.serialize(s),
            Arg::Function(f) => f.serialize(s),
        }
    }
}

impl Arg {
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
