//! Outgoing values that may carry functions: [`Payload`] is a JSON value plus the
//! [`Callback`]s that go with it, each at an explicit path.
//!
//! The connection sending a payload writes `"[Function]"` at each path (already in the
//! value) and lists the paths in the message's `callbacks`, under ids from its own table.
//! Nothing inside the value is ever interpreted: a string that looks like a function is
//! sent as a string.
#![deny(clippy::arithmetic_side_effects)]

use serde::Serialize;
use serde_json::Value;

use super::functions::{Arguments, Callback, Function};
use super::message::{Path, Segment};
use crate::protocol::{ErrorKind, KiteError};

/// Placeholder for a function inside arguments.
pub const PLACEHOLDER: &str = "[Function]";

/// A value to send (an argument list or a result) with the local functions inside it.
///
/// ```
/// use kite::{Callback, Payload};
/// let done = Callback::new(|args| println!("done: {:?}", args.values()));
/// // square(4, done): the list [4, "[Function]"], a function at [1].
/// let args = Payload::list().arg(4).callback(done.clone());
/// assert_eq!(args.value(), &serde_json::json!([4, "[Function]"]));
/// // A function deeper inside: {"n": 4, "done": <function>}.
/// let opts = Payload::new(serde_json::json!({"n": 4})).with_callback(["done"], done);
/// assert_eq!(opts.callbacks().len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Payload {
    value: Value,
    callbacks: Vec<(Path, Callback)>,
    /// The first value that could not be serialized; reported when the payload is sent.
    error: Option<String>,
}

impl Payload {
    /// A value without functions.
    pub fn new(value: Value) -> Self {
        Self {
            value,
            callbacks: Vec::new(),
            error: None,
        }
    }

    /// A value and its functions at their paths (what the bindings build from Python and
    /// JavaScript values): each path gets the `"[Function]"` placeholder. A path that leads
    /// nowhere is reported when the payload is sent.
    pub fn from_parts(value: Value, callbacks: Vec<(Path, Callback)>) -> Self {
        let mut p = Self::new(value);
        for (path, cb) in callbacks {
            if put(&mut p.value, &path) {
                p.callbacks.push((path, cb));
            } else {
                p.fail(format!("no place for a function at {path:?}"));
            }
        }
        p
    }

    /// An empty argument list, to fill with [`Payload::arg`] and [`Payload::callback`].
    pub fn list() -> Self {
        Self::new(Value::Array(Vec::new()))
    }

    /// Appends a value to the list (a payload that is not a list becomes its first element).
    pub fn arg(mut self, v: impl Serialize) -> Self {
        match serde_json::to_value(v) {
            Ok(v) => {
                self.as_list().push(v);
            }
            Err(e) => self.fail(e.to_string()),
        }
        self
    }

    /// Appends a function to the list.
    pub fn callback(mut self, cb: impl Into<Callback>) -> Self {
        let list = self.as_list();
        let index = list.len();
        list.push(Value::String(PLACEHOLDER.into()));
        self.callbacks
            .push((vec![Segment::Index(index)], cb.into()));
        self
    }

    /// Puts a function at `path` inside the value: an object key (added when missing) or an
    /// array index (at most one past the end). A path that leads nowhere is reported when
    /// the payload is sent.
    pub fn with_callback<S: Into<Segment>>(
        mut self,
        path: impl IntoIterator<Item = S>,
        cb: impl Into<Callback>,
    ) -> Self {
        let path: Path = path.into_iter().map(Into::into).collect();
        if put(&mut self.value, &path) {
            self.callbacks.push((path, cb.into()));
        } else {
            self.fail(format!("no place for a function at {path:?}"));
        }
        self
    }

    /// The value, functions shown as `"[Function]"`.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The functions and where they are.
    pub fn callbacks(&self) -> &[(Path, Callback)] {
        &self.callbacks
    }

    /// Whether a value could not be serialized (what, if so).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The value and the functions, or why the payload cannot be sent.
    pub fn into_parts(self) -> Result<(Value, Vec<(Path, Callback)>), String> {
        match self.error {
            Some(e) => Err(e),
            None => Ok((self.value, self.callbacks)),
        }
    }

    /// The payload as an argument list: an array stays, null is no arguments, anything
    /// else is the one argument (its function paths shifted under index 0).
    pub fn into_list(mut self) -> Self {
        match self.value {
            Value::Array(_) => self,
            Value::Null if self.callbacks.is_empty() => {
                self.value = Value::Array(Vec::new());
                self
            }
            other => {
                self.value = Value::Array(vec![other]);
                for (path, _) in &mut self.callbacks {
                    path.insert(0, Segment::Index(0));
                }
                self
            }
        }
    }

    fn as_list(&mut self) -> &mut Vec<Value> {
        if !self.value.is_array() {
            let first = std::mem::take(&mut self.value);
            self.value = Value::Array(if first.is_null() {
                Vec::new()
            } else {
                vec![first]
            });
            for (path, _) in &mut self.callbacks {
                path.insert(0, Segment::Index(0));
            }
        }
        match &mut self.value {
            Value::Array(a) => a,
            _ => unreachable!("made an array above"),
        }
    }

    fn fail(&mut self, e: String) {
        self.error.get_or_insert(e);
    }
}

/// Writes the placeholder at `path` in `value`; false when the path leads nowhere.
fn put(value: &mut Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        *value = Value::String(PLACEHOLDER.into());
        return true;
    };
    let mut v = value;
    for seg in parents {
        let next = match (seg, v) {
            (Segment::Key(k), Value::Object(o)) => o.get_mut(k),
            (Segment::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => v = n,
            None => return false,
        }
    }
    let placeholder = Value::String(PLACEHOLDER.into());
    match (last, v) {
        (Segment::Key(k), Value::Object(o)) => {
            o.insert(k.clone(), placeholder);
            true
        }
        (Segment::Index(i), Value::Array(a)) if *i < a.len() => {
            if let Some(slot) = a.get_mut(*i) {
                *slot = placeholder;
            }
            true
        }
        (Segment::Index(i), Value::Array(a)) if *i == a.len() => {
            a.push(placeholder);
            true
        }
        _ => false,
    }
}

impl Function {
    /// Calls the remote function. `args` is the argument list: a [`Payload`] (values and
    /// callbacks), [`Arguments`] received elsewhere, or any `Serialize` value (an array is
    /// the list, `()` none, anything else one argument). Fails with `sendError` when the
    /// connection is gone or the arguments cannot be sent.
    pub async fn call(&self, args: impl IntoPayload) -> Result<(), KiteError> {
        let (value, callbacks) = args
            .into_payload()
            .into_list()
            .into_parts()
            .map_err(|e| KiteError::new(ErrorKind::SendError, e))?;
        let Some(sink) = self.sink() else {
            return Err(KiteError::new(ErrorKind::SendError, "connection is closed"));
        };
        sink.call_function(self.id(), value, callbacks).await
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

/// What can be sent as arguments or returned as a result: a [`Payload`], a [`Callback`]
/// or [`Function`] (one function), received [`Arguments`] (passed on, functions included),
/// or any `Serialize` value (no functions).
pub trait IntoPayload {
    /// The value with its functions.
    fn into_payload(self) -> Payload;
}

impl IntoPayload for Payload {
    fn into_payload(self) -> Payload {
        self
    }
}

impl IntoPayload for Callback {
    fn into_payload(self) -> Payload {
        Payload::list().callback(self)
    }
}

impl IntoPayload for Function {
    fn into_payload(self) -> Payload {
        Payload::list().callback(self)
    }
}

impl IntoPayload for Arguments {
    fn into_payload(self) -> Payload {
        let (values, functions) = self.into_parts();
        let mut p = Payload::new(Value::Array(values));
        p.callbacks = functions
            .into_iter()
            .map(|(path, f)| (path, Callback::from(f)))
            .collect();
        p
    }
}

impl<T: Serialize> IntoPayload for T {
    fn into_payload(self) -> Payload {
        match serde_json::to_value(self) {
            Ok(v) => Payload::new(v),
            Err(e) => Payload {
                error: Some(e.to_string()),
                ..Payload::default()
            },
        }
    }
}

impl From<usize> for Segment {
    fn from(i: usize) -> Self {
        Segment::Index(i)
    }
}

impl From<&str> for Segment {
    fn from(k: &str) -> Self {
        Segment::Key(k.to_string())
    }
}

impl From<String> for Segment {
    fn from(k: String) -> Self {
        Segment::Key(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_and_paths() {
        let cb = Callback::new(|_| {});
        let p = Payload::list()
            .arg(1)
            .arg("x")
            .callback(cb.clone())
            .arg(json!({"k": 1}));
        let paths: Vec<&Path> = p.callbacks().iter().map(|(p, _)| p).collect();
        assert_eq!(p.value(), &json!([1, "x", "[Function]", {"k": 1}]));
        assert_eq!(paths, vec![&vec![Segment::Index(2)]]);

        let p = Payload::new(json!({"a": [1, 2]}))
            .with_callback(["b"], cb.clone())
            .with_callback([Segment::from("a"), Segment::from(2)], cb.clone());
        assert_eq!(
            p.value(),
            &json!({"a": [1, 2, "[Function]"], "b": "[Function]"})
        );
        assert!(p.error().is_none());

        // A path that leads nowhere is an error, not a silent drop.
        let p = Payload::new(json!({"a": 1})).with_callback(["a", "b"], cb.clone());
        assert!(p.into_parts().is_err());

        // One value becomes a one-element list; its paths move under index 0.
        let p = Payload::new(json!({"n": 1}))
            .with_callback(["f"], cb.clone())
            .into_list();
        assert_eq!(p.value(), &json!([{"n": 1, "f": "[Function]"}]));
        assert_eq!(
            p.callbacks()[0].0,
            vec![Segment::Index(0), Segment::Key("f".into())]
        );
        assert_eq!(().into_payload().into_list().value(), &json!([]));
        assert_eq!(cb.into_payload().value(), &json!(["[Function]"]));
    }

    #[test]
    fn strings_that_look_like_functions_stay_strings() {
        for s in [
            "[Function]",
            "\u{0}kite.callback:0",
            "\u{0}kite.callback#0",
            "\u{0}kite.function:0",
        ] {
            let p = json!([s, {"k": s}]).into_payload().into_list();
            assert!(p.callbacks().is_empty());
            assert_eq!(p.value(), &json!([s, {"k": s}]));
        }
    }
}
