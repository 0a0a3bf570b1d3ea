//! The dnode message: `{"method", "arguments", "callbacks"}`, parsed tolerantly and
//! written exactly like the Go reference.
#![deny(clippy::arithmetic_side_effects)]

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::protocol::json::{nesting_depth, replace_lone_surrogates, MAX_DEPTH};

/// The `method` of a message: a method name, or the id of a callback on the receiver's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// A named method (`"square"`).
    Name(String),
    /// A callback id, allocated by the receiver of an earlier message.
    Callback(u64),
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Method::Name(n) => s.serialize_str(n),
            Method::Callback(id) => s.serialize_u64(*id),
        }
    }
}

/// One step of a callback path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Object key.
    Key(String),
    /// Array index (written as a JSON number, like the Go reference).
    Index(usize),
}

impl Serialize for Segment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Segment::Key(k) => s.serialize_str(k),
            Segment::Index(i) => s.serialize_u64(*i as u64),
        }
    }
}

/// Where a function sits inside `arguments`.
pub type Path = Vec<Segment>;

/// A dnode message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Method name or callback id.
    pub method: Method,
    /// The arguments (always an array on the wire).
    pub arguments: Vec<Value>,
    /// Callback id → path of the function placeholder inside `arguments`.
    pub callbacks: Vec<(u64, Path)>,
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Borrowed {
            method: &self.method,
            arguments: &self.arguments,
            callbacks: &self.callbacks,
        }
        .serialize(s)
    }
}

/// A message whose arguments are any serializable list: written exactly like [`Message`],
/// without first building the arguments as `Value`s.
pub(crate) struct Borrowed<'a, A: Serialize + ?Sized> {
    pub(crate) method: &'a Method,
    pub(crate) arguments: &'a A,
    pub(crate) callbacks: &'a [(u64, Path)],
}

impl<A: Serialize + ?Sized> Serialize for Borrowed<'_, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Callbacks<'a>(&'a [(u64, Path)]);
        impl Serialize for Callbacks<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (id, path) in self.0 {
                    m.serialize_entry(&id.to_string(), path)?;
                }
                m.end()
            }
        }
        let mut st = s.serialize_struct("Message", 3)?;
        st.serialize_field("method", self.method)?;
        st.serialize_field("arguments", self.arguments)?;
        st.serialize_field("callbacks", &Callbacks(self.callbacks))?;
        st.end()
    }
}

impl<A: Serialize + ?Sized> Borrowed<'_, A> {
    /// Encodes the message as JSON text (`""` if an argument fails to serialize).
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why an incoming message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Not JSON (or nested deeper than serde_json allows).
    #[error("message is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("message is not a JSON object")]
    NotObject,
    /// `method` missing, or neither a string nor a non-negative integer.
    #[error("message method must be a string or a callback id")]
    BadMethod,
    /// `arguments` present but not an array.
    #[error("message arguments must be an array")]
    BadArguments,
    /// `callbacks` not an object of id → path.
    #[error("bad callbacks: {0}")]
    BadCallbacks(String),
    /// Nested deeper than the ordinary parse goes: parse it with [`Message::parse_nested`]
    /// on a stack of its own ([`super::on_big_stack`]).
    #[error("message is nested deeper than {FAST_DEPTH} levels")]
    Nested,
    /// Nested deeper than [`MAX_DEPTH`] levels (the reference's limit too).
    #[error("message is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Nesting that the ordinary parse (serde_json's recursion limit, 128) surely handles.
pub const FAST_DEPTH: usize = 100;

impl Message {
    /// Encodes the message as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing Values and strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses one message. Accepts callback paths with indices as numbers (Go) or strings
    /// (dnode/kite.js), and ignores `links`.
    pub fn parse(text: &str) -> Result<Message, MessageError> {
        let mut lazy = LazyMessage::parse(text)?;
        let method = lazy.method.clone();
        let callbacks = std::mem::take(&mut lazy.callbacks);
        Ok(Message {
            method,
            arguments: lazy.arguments()?,
            callbacks,
        })
    }

    /// The reference parse through a `Value` tree; decides every case the typed fast path
    /// of [`LazyMessage::parse`] does not take (and gives the exact error).
    pub(crate) fn parse_value(text: &str) -> Result<Message, MessageError> {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                if nesting_depth(text.as_bytes()) > FAST_DEPTH {
                    return Err(MessageError::Nested);
                }
                // Go reads a lone surrogate escape as U+FFFD; serde_json refuses it.
                let fixed = replace_lone_surrogates(text)
                    .ok_or_else(|| MessageError::NotJson(e.to_string()))?;
                serde_json::from_str(&fixed).map_err(|e| MessageError::NotJson(e.to_string()))?
            }
        };
        Self::from_value(value)
    }

    /// Parses a message of any depth up to [`MAX_DEPTH`] (the reference's limit). Recurses
    /// once per level: call it on a big stack ([`super::on_big_stack`]).
    pub fn parse_nested(text: &str) -> Result<Message, MessageError> {
        if nesting_depth(text.as_bytes()) > MAX_DEPTH {
            return Err(MessageError::TooDeep);
        }
        let fixed = replace_lone_surrogates(text);
        let text = fixed.as_deref().unwrap_or(text);
        let mut de = serde_json::Deserializer::from_str(text);
        de.disable_recursion_limit();
        let value = serde::Deserialize::deserialize(&mut de)
            .and_then(|v: Value| de.end().map(|()| v))
            .map_err(|e| MessageError::NotJson(e.to_string()))?;
        Self::from_value(value)
    }

    fn from_value(value: Value) -> Result<Message, MessageError> {
        let Value::Object(mut obj) = value else {
            return Err(MessageError::NotObject);
        };
        let method = match obj.remove("method") {
            Some(Value::String(s)) => Method::Name(s),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(id) => Method::Callback(id),
                None => return Err(MessageError::BadMethod),
            },
            _ => return Err(MessageError::BadMethod),
        };
        let arguments = match obj.remove("arguments") {
            Some(Value::Array(a)) => a,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(MessageError::BadArguments),
        };
        let callbacks = match obj.remove("callbacks") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => {
                let mut out = Vec::with_capacity(map.len());
                for (id, path) in map {
                    let id: u64 = id.parse().map_err(|_| {
                        MessageError::BadCallbacks(format!("callback id {id:?} is not a number"))
                    })?;
                    out.push((id, parse_path(path)?));
                }
                out
            }
            Some(_) => {
                return Err(MessageError::BadCallbacks(
                    "callbacks must be an object".into(),
                ))
            }
        };
        Ok(Message {
            method,
            arguments,
            callbacks,
        })
    }
}

/// The top level of a message, with `arguments` left as JSON text.
#[derive(serde::Deserialize)]
struct Wire<'a> {
    method: Value,
    #[serde(borrow, default)]
    arguments: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    callbacks: Callbacks,
}

/// `callbacks` decoded straight into `(id, path)` pairs, without a `Value` tree. Anything
/// irregular — a non-numeric id, a duplicate id, a bad or empty path, an escaped key — is
/// an error here, and the reference parse then decides (and gives its exact error).
#[derive(Default)]
struct Callbacks(Vec<(u64, Path)>);

impl<'de> serde::Deserialize<'de> for Callbacks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Callbacks;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a callbacks object")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Callbacks, E> {
                Ok(Callbacks::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Callbacks, A::Error> {
                use serde::de::Error;
                let mut out = Vec::new();
                while let Some(id) = map.next_key::<&'de str>()? {
                    let id: u64 = id.parse().map_err(|_| A::Error::custom("callback id"))?;
                    let path: Vec<WireSegment> = map.next_value()?;
                    if path.is_empty() {
                        return Err(A::Error::custom("empty path"));
                    }
                    out.push((id, path.into_iter().map(|s| s.0).collect()));
                }
                // A repeated id means a repeated key, which a JSON object keeps once.
                if out.len() > 1 {
                    let mut ids: Vec<u64> = out.iter().map(|(id, _)| *id).collect();
                    ids.sort_unstable();
                    if ids.windows(2).any(|w| w[0] == w[1]) {
                        return Err(A::Error::custom("duplicate callback id"));
                    }
                }
                Ok(Callbacks(out))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// One path segment as sent: a string key or a non-negative integer index.
struct WireSegment(Segment);

impl<'de> serde::Deserialize<'de> for WireSegment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = WireSegment;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a path segment")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<WireSegment, E> {
                Ok(WireSegment(Segment::Key(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<WireSegment, E> {
                Ok(WireSegment(Segment::Key(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<WireSegment, E> {
                usize::try_from(v)
                    .map(|i| WireSegment(Segment::Index(i)))
                    .map_err(|_| E::custom("index out of range"))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A parsed message whose `arguments` are still JSON text, so that a call's options can be
/// decoded straight into their types (see [`crate::protocol::CallOptions`]) instead of
/// through a `Value` tree first — most of the cost of receiving a call.
pub(crate) struct LazyMessage<'a> {
    pub(crate) method: Method,
    /// Each argument's JSON text.
    arguments: Vec<&'a RawValue>,
    pub(crate) callbacks: Vec<(u64, Path)>,
    /// Set when the fast path was not taken: the arguments parsed the reference way.
    parsed: Option<Vec<Value>>,
}

impl<'a> LazyMessage<'a> {
    /// Parses and checks a message exactly as [`Message::parse`] does.
    pub(crate) fn parse(text: &'a str) -> Result<Self, MessageError> {
        // (A typed struct would also accept a JSON array: the fast path is for objects only.)
        let object = text.trim_start().starts_with('{');
        let fast = object
            .then(|| serde_json::from_str::<Wire<'a>>(text).ok())
            .flatten()
            .and_then(|w| {
                let method = match w.method {
                    Value::String(s) => Method::Name(s),
                    Value::Number(n) => Method::Callback(n.as_u64()?),
                    _ => return None,
                };
                Some(LazyMessage {
                    method,
                    arguments: w.arguments.unwrap_or_default(),
                    callbacks: w.callbacks.0,
                    parsed: None,
                })
            });
        if let Some(m) = fast {
            return Ok(m);
        }
        let m = Message::parse_value(text)?;
        Ok(LazyMessage {
            method: m.method,
            arguments: Vec::new(),
            callbacks: m.callbacks,
            parsed: Some(m.arguments),
        })
    }

    /// The arguments as values.
    pub(crate) fn arguments(self) -> Result<Vec<Value>, MessageError> {
        if let Some(p) = self.parsed {
            return Ok(p);
        }
        // Valid JSON already; what a full parse can still refuse (a number out of range)
        // is reported as the reference parse reports it.
        self.arguments
            .iter()
            .map(|raw| {
                serde_json::from_str(raw.get()).or_else(|e| {
                    if nesting_depth(raw.get().as_bytes()) > FAST_DEPTH {
                        return Err(MessageError::Nested);
                    }
                    // Go reads a lone surrogate escape as U+FFFD; serde_json refuses it.
                    match replace_lone_surrogates(raw.get()) {
                        Some(fixed) => serde_json::from_str(&fixed),
                        None => Err(e),
                    }
                    .map_err(|e| MessageError::NotJson(e.to_string()))
                })
            })
            .collect::<Result<_, _>>()
    }

    /// The first argument as JSON text (`None` when there are no arguments), for callers
    /// that decode it into a type; `Err(value)` when the arguments were already parsed.
    pub(crate) fn first_argument(&self) -> Result<Option<&'a RawValue>, Option<&Value>> {
        if let Some(p) = &self.parsed {
            return Err(p.first());
        }
        Ok(self.arguments.first().copied())
    }
}

fn parse_path(path: Value) -> Result<Path, MessageError> {
    let Value::Array(items) = path else {
        return Err(MessageError::BadCallbacks(
            "a callback path must be an array".into(),
        ));
    };
    if items.is_empty() {
        return Err(MessageError::BadCallbacks("empty callback path".into()));
    }
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(Segment::Key(s)),
            Value::Number(n) => n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .map(Segment::Index)
                .ok_or_else(|| MessageError::BadCallbacks(format!("bad path index {n}"))),
            other => Err(MessageError::BadCallbacks(format!(
                "bad path element {other}"
            ))),
        })
        .collect()
}

/// The value at `path` inside `arguments`; string segments index arrays when they are
/// decimal numbers (dnode/kite.js style).
pub fn value_at_mut<'a>(arguments: &'a mut [Value], path: &Path) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let mut cur = match first {
        Segment::Index(i) => arguments.get_mut(*i)?,
        Segment::Key(k) => arguments.get_mut(k.parse::<usize>().ok()?)?,
    };
    for seg in rest {
        cur = match (cur, seg) {
            (Value::Array(a), Segment::Index(i)) => a.get_mut(*i)?,
            (Value::Array(a), Segment::Key(k)) => a.get_mut(k.parse::<usize>().ok()?)?,
            (Value::Object(o), Segment::Key(k)) => o.get_mut(k)?,
            (Value::Object(o), Segment::Index(i)) => o.get_mut(&i.to_string())?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_like_go() {
        let m = Message {
            method: Method::Name("square".into()),
            arguments: vec![json!({"withArgs": [4], "responseCallback": "[Function]"})],
            callbacks: vec![(
                0,
                vec![Segment::Index(0), Segment::Key("responseCallback".into())],
            )],
        };
        assert_eq!(
            m.to_json(),
            r#"{"method":"square","arguments":[{"withArgs":[4],"responseCallback":"[Function]"}],"callbacks":{"0":[0,"responseCallback"]}}"#
        );
        let back = Message::parse(&m.to_json()).unwrap();
        assert_eq!(back, m);
        let cb = Message {
            method: Method::Callback(7),
            arguments: vec![],
            callbacks: vec![],
        };
        assert_eq!(
            cb.to_json(),
            r#"{"method":7,"arguments":[],"callbacks":{}}"#
        );
    }

    #[test]
    fn reads_kitejs_shapes() {
        let m = Message::parse(
            r#"{"method":"x","arguments":[{"f":"[Function]"}],"callbacks":{"3":["0","f"]},"links":[]}"#,
        )
        .unwrap();
        assert_eq!(
            m.callbacks,
            vec![(3, vec![Segment::Key("0".into()), Segment::Key("f".into())])]
        );
        let mut args = m.arguments.clone();
        assert_eq!(
            value_at_mut(&mut args, &m.callbacks[0].1),
            Some(&mut json!("[Function]"))
        );
    }

    #[test]
    fn rejects_malformed() {
        for (text, want) in [
            ("nope", "NotJson"),
            ("[1]", "NotObject"),
            ("{}", "BadMethod"),
            (r#"{"method":true}"#, "BadMethod"),
            (r#"{"method":-1}"#, "BadMethod"),
            (r#"{"method":1.5}"#, "BadMethod"),
            (r#"{"method":"m","arguments":{}}"#, "BadArguments"),
            (r#"{"method":"m","callbacks":[]}"#, "BadCallbacks"),
            (r#"{"method":"m","callbacks":{"x":[0]}}"#, "BadCallbacks"),
            (r#"{"method":"m","callbacks":{"1":[]}}"#, "BadCallbacks"),
            (r#"{"method":"m","callbacks":{"1":[true]}}"#, "BadCallbacks"),
            (r#"{"method":"m","callbacks":{"1":[-2]}}"#, "BadCallbacks"),
        ] {
            let err = Message::parse(text).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{text}: {err:?}");
        }
    }

    #[test]
    fn fast_path_agrees_with_the_reference_parse() {
        for text in [
            r#"{"method":"square","arguments":[{"kite":{"name":"k"},"withArgs":[3],"responseCallback":"[Function]"}],"callbacks":{"7":[0,"responseCallback"]}}"#,
            r#"{"method":3,"arguments":[{"error":null,"result":9}],"callbacks":{},"links":[]}"#,
            r#"  {"method":"m","arguments":null}"#,
            r#"{"method":"m"}"#,
            r#"{"method":"m","arguments":[1,{"a":[2,"[Function]"]}],"callbacks":{"1":["1","a","1"],"2":[1,"a",1]}}"#,
            r#"{"method":"m","method":"n","arguments":[]}"#,
            r#"{"method":"m","arguments":[{"x":1,"x":2}]}"#,
            r#"{"method":"m","arguments":[1e400]}"#,
            r#"{"method":"m","arguments":"x"}"#,
            r#"{"method":"m","arguments":[],"callbacks":{"a":[0]}}"#,
            r#"[{"method":"m"}]"#,
            r#"{"method":18446744073709551615}"#,
            r#"{"method":"m"} trailing"#,
            r#"{"method":"m","arguments":[1,2],"callbacks":{"1":[0],"1":[1]}}"#,
            r#"{"method":"m","arguments":[1,2],"callbacks":{"1":[0],"01":[1]}}"#,
            r#"{"method":"m","arguments":[1,2],"callbacks":{"\u0031":[0]}}"#,
            r#"{"method":"m","arguments":[1],"callbacks":{"1":[]}}"#,
            r#"{"method":"m","arguments":[1],"callbacks":{"1":[-1]}}"#,
            r#"{"method":"m","arguments":[1],"callbacks":{"1":[0.0]}}"#,
            r#"{"method":"m","arguments":[1],"callbacks":{"1":[null]}}"#,
            r#"{"method":"m","arguments":[1],"callbacks":{"1":0}}"#,
            r#"{"method":"m","arguments":[1],"callbacks":{"-1":[0]}}"#,
            r#"{"method":"m","arguments":[1],"callbacks":[]}"#,
            r#"{"method":"m","arguments":[1],"callbacks":null}"#,
            r#"{"method":"m","arguments":[{"a\"b":1}],"callbacks":{"2":[0,"a\"b"]}}"#,
        ] {
            // Every regular message takes the fast path.
            if text.contains("responseCallback") || text.contains(r#""method":3,"#) {
                assert!(LazyMessage::parse(text).unwrap().parsed.is_none(), "{text}");
            }
            let fast = Message::parse(text).map_err(|e| format!("{e:?}"));
            let reference = Message::parse_value(text).map_err(|e| format!("{e:?}"));
            match (&fast, &reference) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
                (Err(a), Err(b)) => assert_eq!(a.split('(').next(), b.split('(').next(), "{text}"),
                _ => panic!("{text}: fast {fast:?} vs reference {reference:?}"),
            }
        }
    }
}
