//! Functions that travel as arguments.
//!
//! - [`Callback`]: a local function put into outgoing arguments. Serializing it (inside
//!   [`scrub`]) records it and leaves a marker, which [`place`] turns into the `"[Function]"`
//!   placeholder plus an entry in the message's `callbacks`.
//! - [`Function`]: a function of the remote side, received in [`Arguments`]. Deserializing
//!   it (inside [`Arguments::get`]) binds it to the connection it came from; calling it sends
//!   a message whose `method` is its id.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::message::{value_at_mut, Path, Segment};
use crate::protocol::KiteError;

/// Placeholder for a function inside arguments.
pub const PLACEHOLDER: &str = "[Function]";
const LOCAL_MARK: &str = "\u{0}kite.callback:";
const GLOBAL_MARK: &str = "\u{0}kite.callback#";
const REMOTE_MARK: &str = "\u{0}kite.function:";

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

/// Callbacks serialized outside a call (e.g. inside `serde_json::json!`), held until the
/// value carrying their marker is sent.
static DETACHED: std::sync::Mutex<Option<std::collections::HashMap<u64, Callback>>> =
    std::sync::Mutex::new(None);
static DETACHED_NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static DETACHED_COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn detach(cb: Callback) -> u64 {
    let id = DETACHED_NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut map = DETACHED.lock().unwrap_or_else(|e| e.into_inner());
    map.get_or_insert_with(Default::default).insert(id, cb);
    DETACHED_COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    id
}

fn take_detached(id: u64) -> Option<Callback> {
    let mut map = DETACHED.lock().unwrap_or_else(|e| e.into_inner());
    let cb = map.as_mut()?.remove(&id);
    if cb.is_some() {
        DETACHED_COUNT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
    cb
}

thread_local! {
    static SCRUBBING: RefCell<Option<Vec<Callback>>> = const { RefCell::new(None) };
    static BINDING: RefCell<Option<Weak<dyn FunctionSink>>> = const { RefCell::new(None) };
}

impl Serialize for Callback {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let index = SCRUBBING.with(|c| {
            c.borrow_mut().as_mut().map(|list| {
                list.push(self.clone());
                list.len() - 1
            })
        });
        match index {
            Some(i) => s.serialize_str(&format!("{LOCAL_MARK}{i}")),
            // Outside a call (e.g. inside `json!`): parked until the value is sent.
            None => s.serialize_str(&format!("{GLOBAL_MARK}{}", detach(self.clone()))),
        }
    }
}

/// Resets the thread-local scrubbing state even if serialization panics.
struct ScrubGuard;
impl Drop for ScrubGuard {
    fn drop(&mut self) {
        SCRUBBING.with(|c| *c.borrow_mut() = None);
    }
}

/// Serializes `args`, collecting the [`Callback`]s inside (in order of appearance).
pub fn scrub<T: Serialize + ?Sized>(args: &T) -> Result<(Value, Vec<Callback>), serde_json::Error> {
    SCRUBBING.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let _guard = ScrubGuard;
    let value = serde_json::to_value(args)?;
    let callbacks = SCRUBBING
        .with(|c| c.borrow_mut().take())
        .unwrap_or_default();
    Ok((value, callbacks))
}

/// Replaces the markers left by [`scrub`] with placeholders, registering each callback with
/// `register` (which returns its id). Returns the `callbacks` entries, paths prefixed by `prefix`.
pub fn place(
    value: &mut Value,
    callbacks: Vec<Callback>,
    prefix: &[Segment],
    register: &mut dyn FnMut(Callback) -> u64,
) -> Vec<(u64, Path)> {
    let mut out = Vec::with_capacity(callbacks.len());
    if callbacks.is_empty() && DETACHED_COUNT.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        return out;
    }
    let mut slots: Vec<Option<Callback>> = callbacks.into_iter().map(Some).collect();
    let mut path: Path = prefix.to_vec();
    walk(value, &mut path, &mut |v, path| {
        if let Value::String(s) = v {
            let cb = if let Some(i) = s
                .strip_prefix(LOCAL_MARK)
                .and_then(|i| i.parse::<usize>().ok())
            {
                slots.get_mut(i).and_then(Option::take)
            } else if let Some(id) = s
                .strip_prefix(GLOBAL_MARK)
                .and_then(|i| i.parse::<u64>().ok())
            {
                take_detached(id)
            } else {
                None
            };
            if let Some(cb) = cb {
                *v = Value::String(PLACEHOLDER.into());
                out.push((register(cb), path.clone()));
            }
        }
    });
    out
}

fn walk(v: &mut Value, path: &mut Path, f: &mut dyn FnMut(&mut Value, &Path)) {
    match v {
        Value::Array(a) => {
            for (i, item) in a.iter_mut().enumerate() {
                path.push(Segment::Index(i));
                walk(item, path, f);
                path.pop();
            }
        }
        Value::Object(o) => {
            for (k, item) in o.iter_mut() {
                path.push(Segment::Key(k.clone()));
                walk(item, path, f);
                path.pop();
            }
        }
        _ => f(v, path),
    }
}

/// The connection side of remote functions: sends `{"method": id, "arguments": …}`.
pub trait FunctionSink: Send + Sync {
    /// Calls remote function `id` with `args` (a JSON array, markers not yet placed) and the
    /// local callbacks collected from them.
    fn call_function(
        &self,
        id: u64,
        args: Value,
        callbacks: Vec<Callback>,
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

    /// Calls the remote function. `args` should serialize to an array (the argument list);
    /// anything else is sent as one argument. Fails with `sendError` when the connection is gone.
    pub async fn call<T: Serialize + ?Sized>(&self, args: &T) -> Result<(), KiteError> {
        let (value, callbacks) = scrub(args)
            .map_err(|e| KiteError::new(crate::protocol::ErrorKind::SendError, e.to_string()))?;
        let value = match value {
            Value::Array(a) => Value::Array(a),
            Value::Null => Value::Array(Vec::new()),
            other => Value::Array(vec![other]),
        };
        let Some(sink) = self.sink.upgrade() else {
            return Err(KiteError::new(
                crate::protocol::ErrorKind::SendError,
                "connection is closed",
            ));
        };
        sink.call_function(self.id, value, callbacks).await
    }
}

impl Serialize for Function {
    /// A remote function put into outgoing arguments is forwarded by a local callback.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.clone();
        Callback::new_async(move |args: Arguments| {
            let f = f.clone();
            async move {
                let _ = f.call(args.values()).await;
            }
        })
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Function {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let id = s
            .strip_prefix(REMOTE_MARK)
            .and_then(|i| i.parse::<u64>().ok())
            .ok_or_else(|| serde::de::Error::custom("expected a function"))?;
        let sink = BINDING.with(|b| b.borrow().clone()).ok_or_else(|| {
            serde::de::Error::custom("functions can only be decoded from call arguments")
        })?;
        Ok(Function { id, sink })
    }
}

/// Arguments of a received call or callback invocation.
#[derive(Clone)]
pub struct Arguments {
    /// The argument list as received (functions appear as `"[Function]"`).
    values: Value,
    /// Where the functions are, and their remote ids.
    functions: Vec<(Path, u64)>,
    sink: Option<Weak<dyn FunctionSink>>,
}

impl std::fmt::Debug for Arguments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Arguments({})", self.values)
    }
}

impl Default for Arguments {
    fn default() -> Self {
        Self {
            values: Value::Array(Vec::new()),
            functions: Vec::new(),
            sink: None,
        }
    }
}

struct BindGuard(Option<Weak<dyn FunctionSink>>);
impl Drop for BindGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        BINDING.with(|b| *b.borrow_mut() = prev);
    }
}

impl Arguments {
    /// Arguments without functions (for tests and local calls).
    pub fn from_values(values: Vec<Value>) -> Self {
        Self {
            values: Value::Array(values),
            functions: Vec::new(),
            sink: None,
        }
    }

    /// Arguments received on a connection: `functions` are (path, remote id) pairs, paths
    /// relative to this argument list.
    pub fn received(
        values: Vec<Value>,
        functions: Vec<(Path, u64)>,
        sink: Weak<dyn FunctionSink>,
    ) -> Self {
        Self {
            values: Value::Array(values),
            functions,
            sink: Some(sink),
        }
    }

    /// The argument list as received, functions shown as `"[Function]"`.
    pub fn values(&self) -> &[Value] {
        match &self.values {
            Value::Array(a) => a,
            _ => &[],
        }
    }

    /// Consumes the arguments into their JSON values.
    pub fn into_values(self) -> Vec<Value> {
        match self.values {
            Value::Array(a) => a,
            _ => Vec::new(),
        }
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.values().len()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.values().is_empty()
    }

    /// Whether any functions were passed.
    pub fn has_functions(&self) -> bool {
        !self.functions.is_empty()
    }

    fn decode<T: DeserializeOwned>(
        &self,
        pick: impl for<'a> FnOnce(&'a Value) -> Option<&'a Value>,
    ) -> Result<T, KiteError> {
        let arg_error = |e: String| KiteError::argument(e);
        if self.functions.is_empty() {
            let v = pick(&self.values).ok_or_else(|| arg_error("missing argument".into()))?;
            return T::deserialize(v).map_err(|e| arg_error(e.to_string()));
        }
        let mut values = self.values.clone();
        if let Value::Array(list) = &mut values {
            for (path, id) in &self.functions {
                if let Some(v) = value_at_mut(list, path) {
                    *v = Value::String(format!("{REMOTE_MARK}{id}"));
                }
            }
        }
        let prev = BINDING.with(|b| {
            b.borrow_mut()
                .replace(self.sink.clone().unwrap_or_else(|| Weak::<NoSink>::new()))
        });
        let _guard = BindGuard(prev);
        let v = pick(&values).ok_or_else(|| arg_error("missing argument".into()))?;
        T::deserialize(v).map_err(|e| arg_error(e.to_string()))
    }

    /// All arguments as `T` (a tuple, a `Vec`, or a struct deserializable from an array).
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, KiteError> {
        self.decode(|v| Some(v))
    }

    /// Argument `index` as `T`.
    pub fn at<T: DeserializeOwned>(&self, index: usize) -> Result<T, KiteError> {
        self.decode(|v| v.get(index))
    }

    /// The first argument as `T`.
    pub fn one<T: DeserializeOwned>(&self) -> Result<T, KiteError> {
        self.at(0)
    }
}

struct NoSink;
impl FunctionSink for NoSink {
    fn call_function(
        &self,
        _: u64,
        _: Value,
        _: Vec<Callback>,
    ) -> BoxFuture<'_, Result<(), KiteError>> {
        Box::pin(async {
            Err(KiteError::new(
                crate::protocol::ErrorKind::SendError,
                "no connection",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    #[test]
    fn scrub_and_place_callbacks_anywhere() {
        let cb = Callback::new(|_| {});
        let args = json!([1, "x"]);
        let (mut v, cbs) = scrub(&(args, &cb, vec![("k", &cb)])).unwrap();
        assert_eq!(cbs.len(), 2);
        let mut next = 10;
        let placed = place(
            &mut v,
            cbs,
            &[Segment::Index(0), Segment::Key("withArgs".into())],
            &mut |_| {
                next += 1;
                next
            },
        );
        assert_eq!(v, json!([[1, "x"], "[Function]", [["k", "[Function]"]]]));
        let paths: Vec<Path> = placed.iter().map(|(_, p)| p.clone()).collect();
        let idx = |i| Segment::Index(i);
        let key = |k: &str| Segment::Key(k.into());
        assert!(paths.contains(&vec![idx(0), key("withArgs"), idx(1)]));
        assert!(paths.contains(&vec![idx(0), key("withArgs"), idx(2), idx(0), idx(1)]));
        // Outside scrub (e.g. in json!), a callback is parked until the value is placed.
        let mut v = json!({"f": cb});
        assert_ne!(v["f"], json!("[Function]"));
        let placed = place(&mut v, Vec::new(), &[], &mut |_| 99);
        assert_eq!(placed, vec![(99, vec![Segment::Key("f".into())])]);
        assert_eq!(v, json!({"f": "[Function]"}));
    }

    struct Recorder(Mutex<Vec<(u64, Value)>>);
    impl FunctionSink for Recorder {
        fn call_function(
            &self,
            id: u64,
            args: Value,
            _: Vec<Callback>,
        ) -> BoxFuture<'_, Result<(), KiteError>> {
            self.0.lock().unwrap().push((id, args));
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn received_functions_decode_and_call() {
        let sink: Arc<dyn FunctionSink> = Arc::new(Recorder(Mutex::new(Vec::new())));
        let args = Arguments::received(
            vec![json!(3), json!({"cb": "[Function]"})],
            vec![(vec![Segment::Index(1), Segment::Key("cb".into())], 42)],
            Arc::downgrade(&sink),
        );
        #[derive(Deserialize)]
        struct Opts {
            cb: Function,
        }
        let (n, opts): (u32, Opts) = args.get().unwrap();
        assert_eq!(n, 3);
        assert_eq!(opts.cb.id(), 42);
        opts.cb.call(&("a", 1)).await.unwrap();
        opts.cb.call(&5).await.unwrap();
        assert_eq!(args.values()[1], json!({"cb": "[Function]"}));
        let err = args.at::<Function>(0).unwrap_err();
        assert_eq!(err.kind, crate::protocol::ErrorKind::ArgumentError);
        assert!(args.at::<u8>(5).is_err());
        drop(args);
        let rec = Arc::clone(&sink);
        let _ = rec;
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
