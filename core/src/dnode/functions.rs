//! Functions that travel as arguments, in both directions, and the arguments they arrive in.
//!
//! - [`Callback`]: a local function put into outgoing arguments ([`super::Payload`]); the
//!   connection that sends it keeps it in its own callback table under a fresh id.
//! - [`Function`]: a function of the remote side, received in [`Arguments`], bound to the
//!   connection it came from; calling it sends a message whose `method` is its id.
//! - [`Arguments`]: the values of a received call plus its functions, each at its path.
//!
//! Neither function type is serializable: functions are never hidden inside JSON values.
//! They sit beside the values, at explicit paths, so a string a peer sent stays a string.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::message::{Path, Segment};
use crate::protocol::KiteError;

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

/// The connection side of remote functions: sends `{"method": id, "arguments": …}`.
pub trait FunctionSink: Send + Sync {
    /// Calls remote function `id` with the argument list `args` and the local functions
    /// inside it, at their paths (placeholders already in place).
    fn call_function(
        &self,
        id: u64,
        args: Value,
        callbacks: Vec<(Path, Callback)>,
    ) -> BoxFuture<'_, Result<(), KiteError>>;
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

    /// The connection this function belongs to (gone once it closed).
    pub(crate) fn sink(&self) -> Option<std::sync::Arc<dyn FunctionSink>> {
        self.sink.upgrade()
    }
}

/// Arguments of a received call or callback invocation.
///
/// The values are plain JSON, a function shown as `"[Function]"`; the functions are taken
/// by position with [`Arguments::function`] (an argument that is a function) or
/// [`Arguments::function_at`] (one inside an argument).
#[derive(Clone, Default)]
pub struct Arguments {
    values: Vec<Value>,
    functions: Vec<(Path, Function)>,
}

impl std::fmt::Debug for Arguments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Arguments({:?})", self.values)
    }
}

impl Arguments {
    /// Arguments without functions (for tests and local calls).
    pub fn from_values(values: Vec<Value>) -> Self {
        Self {
            values,
            functions: Vec::new(),
        }
    }

    /// Arguments received on a connection: `functions` are (path, remote id) pairs, paths
    /// relative to this argument list, bound to `sink`.
    pub fn received(
        values: Vec<Value>,
        functions: Vec<(Path, u64)>,
        sink: Weak<dyn FunctionSink>,
    ) -> Self {
        let functions = functions
            .into_iter()
            .map(|(path, id)| (path, Function::new(id, sink.clone())))
            .collect();
        Self { values, functions }
    }

    /// Arguments with functions already bound (e.g. a result taken out of a response).
    pub fn with_functions(values: Vec<Value>, functions: Vec<(Path, Function)>) -> Self {
        Self { values, functions }
    }

    /// The argument list as received, functions shown as `"[Function]"`.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Consumes the arguments into their JSON values.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The values and the functions.
    pub fn into_parts(self) -> (Vec<Value>, Vec<(Path, Function)>) {
        (self.values, self.functions)
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether any functions were passed.
    pub fn has_functions(&self) -> bool {
        !self.functions.is_empty()
    }

    /// The functions passed and their paths (relative to the argument list).
    pub fn functions(&self) -> &[(Path, Function)] {
        &self.functions
    }

    /// The function passed as argument `index`; `argumentError` when that argument is not one.
    pub fn function(&self, index: usize) -> Result<Function, KiteError> {
        self.function_at([Segment::Index(index)])
            .ok_or_else(|| KiteError::argument(format!("argument {index} is not a function")))
    }

    /// The function at `path` inside the arguments (`[1, "done"]`: key `done` of the second
    /// argument), if one was passed there.
    pub fn function_at<S: Into<Segment>>(
        &self,
        path: impl IntoIterator<Item = S>,
    ) -> Option<Function> {
        let path: Path = path.into_iter().map(Into::into).collect();
        self.functions
            .iter()
            .find(|(p, _)| same_path(p, &path))
            .map(|(_, f)| f.clone())
    }

    fn decode<T: DeserializeOwned>(&self, v: Option<&Value>) -> Result<T, KiteError> {
        let v = v.ok_or_else(|| KiteError::argument("missing argument"))?;
        T::deserialize(v).map_err(|e| KiteError::argument(e.to_string()))
    }

    /// All arguments as `T` (a tuple, a `Vec`, or a struct deserializable from an array);
    /// functions decode as the string `"[Function]"`.
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, KiteError> {
        T::deserialize(Value::Array(self.values.clone()))
            .map_err(|e| KiteError::argument(e.to_string()))
    }

    /// Argument `index` as `T`.
    pub fn at<T: DeserializeOwned>(&self, index: usize) -> Result<T, KiteError> {
        self.decode(self.values.get(index))
    }

    /// The first argument as `T`.
    pub fn one<T: DeserializeOwned>(&self) -> Result<T, KiteError> {
        self.at(0)
    }
}

/// Paths compare with object keys that spell an index equal to that index (Go and kite.js
/// write indices as numbers, some peers as strings).
fn same_path(a: &[Segment], b: &[Segment]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Segment::Index(i), Segment::Key(k)) | (Segment::Key(k), Segment::Index(i)) => {
                k.parse::<usize>().ok() == Some(*i)
            }
            _ => x == y,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnode::{BoxFuture, Callback as Cb, Path as P};
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    struct Recorder(Mutex<Vec<(u64, Value)>>);
    impl FunctionSink for Recorder {
        fn call_function(
            &self,
            id: u64,
            args: Value,
            _: Vec<(P, Cb)>,
        ) -> BoxFuture<'_, Result<(), KiteError>> {
            self.0.lock().unwrap().push((id, args));
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn received_functions_by_path() {
        let rec = Arc::new(Recorder(Mutex::new(Vec::new())));
        let sink: Arc<dyn FunctionSink> = rec.clone();
        let args = Arguments::received(
            vec![json!(3), json!({"cb": "[Function]"}), json!("[Function]")],
            vec![
                (vec![Segment::Index(1), Segment::Key("cb".into())], 42),
                (vec![Segment::Key("2".into())], 7),
            ],
            Arc::downgrade(&sink),
        );
        assert_eq!(args.one::<u32>().unwrap(), 3);
        let cb = args
            .function_at([Segment::from(1), Segment::from("cb")])
            .unwrap();
        assert_eq!(cb.id(), 42);
        assert_eq!(args.function(2).unwrap().id(), 7);
        assert_eq!(
            args.function(0).unwrap_err().kind,
            crate::protocol::ErrorKind::ArgumentError
        );
        cb.call(("a", 1)).await.unwrap();
        cb.call(5).await.unwrap();
        let calls = rec.0.lock().unwrap().clone();
        assert_eq!(calls, vec![(42, json!(["a", 1])), (42, json!([5]))]);
        // The values are plain data; functions show as their placeholder.
        let (n, opts, f): (u32, Value, String) = args.get().unwrap();
        assert_eq!(
            (n, opts, f.as_str()),
            (3, json!({"cb": "[Function]"}), "[Function]")
        );
        drop((sink, rec));
        assert!(
            cb.call(()).await.is_err(),
            "a closed connection is a sendError"
        );
    }

    #[test]
    fn decode_errors_are_argument_errors() {
        let a = Arguments::from_values(vec![json!("s")]);
        assert_eq!(a.one::<String>().unwrap(), "s");
        assert_eq!(
            a.one::<u32>().unwrap_err().kind,
            crate::protocol::ErrorKind::ArgumentError
        );
        assert!(Arguments::default().one::<u32>().is_err());
    }
}
