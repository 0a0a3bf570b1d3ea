//! Values between JavaScript and the core, converted directly with napi calls (no JSON
//! strings in between).
//!
//! JavaScript → JSON follows `JSON.stringify` (`toJSON`, `undefined` properties skipped,
//! non-finite numbers as `null`), except that functions become dnode callbacks. JSON →
//! JavaScript turns the remote side's functions into async JavaScript functions.

use std::sync::Arc;

use napi::bindgen_prelude::{
    BigInt, FromNapiValue, Function, JsObjectValue, KeyCollectionMode, KeyConversion, KeyFilter,
    Null, Object, ToNapiValue, Unknown,
};
use napi::{Env, JsValue, Status, ValueType};
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::bridge::{self, Bridge};
use crate::errors;
use crate::jsfn;

/// Deepest nesting converted (a cycle ends here too).
const MAX_DEPTH: usize = 128;
/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

fn invalid(msg: impl Into<String>) -> napi::Error {
    napi::Error::new(Status::InvalidArg, msg.into())
}

/// Converts a JavaScript value to JSON. With a `bridge`, functions become callbacks (kept
/// until the core drops them); without one they are an error.
pub(crate) fn js_to_value(bridge: Option<&Arc<Bridge>>, v: Unknown<'_>) -> napi::Result<Value> {
    Ok(to_value(bridge, v, 0)?.unwrap_or(Value::Null))
}

/// `None` for what `JSON.stringify` leaves out (undefined, symbols).
fn to_value(
    bridge: Option<&Arc<Bridge>>,
    v: Unknown<'_>,
    depth: usize,
) -> napi::Result<Option<Value>> {
    Ok(Some(match v.get_type()? {
        ValueType::Undefined | ValueType::Symbol => return Ok(None),
        ValueType::Null => Value::Null,
        ValueType::Boolean => Value::Bool(bool::from_unknown(v)?),
        ValueType::Number => number(f64::from_unknown(v)?),
        ValueType::String => Value::String(String::from_unknown(v)?),
        ValueType::BigInt => {
            let n = BigInt::from_unknown(v)?;
            let (i, lossless) = n.get_i64();
            if lossless {
                Value::from(i)
            } else {
                let (_, u, lossless) = n.get_u64();
                if !lossless || n.sign_bit {
                    return Err(invalid("a BigInt beyond 64 bits cannot be sent"));
                }
                Value::from(u)
            }
        }
        ValueType::Function => {
            let Some(bridge) = bridge else {
                return Err(invalid("a function cannot be sent here"));
            };
            let f = Function::<'_>::from_unknown(v)?;
            let cb = bridge::callback(bridge, jsfn::keep(&f)?);
            // Outside a call, a callback serializes to a marker the core places when the
            // value is sent.
            serde_json::to_value(&cb).map_err(|e| invalid(e.to_string()))?
        }
        ValueType::Object => {
            if depth >= MAX_DEPTH {
                return Err(invalid("value nested too deeply (or circular) to be sent"));
            }
            if v.is_array()? {
                let arr = Object::from_unknown(v)?;
                let len = arr.get_array_length()?;
                let mut out = Vec::with_capacity(len as usize);
                for i in 0..len {
                    let item: Unknown<'_> = arr.get_element(i)?;
                    out.push(to_value(bridge, item, depth + 1)?.unwrap_or(Value::Null));
                }
                Value::Array(out)
            } else {
                let obj = Object::from_unknown(v)?;
                let to_json: Unknown<'_> = obj.get_named_property("toJSON")?;
                if to_json.get_type()? == ValueType::Function {
                    let f = Function::<'_, (), Unknown<'_>>::from_unknown(to_json)?;
                    let replaced = f.apply(obj, ())?;
                    return to_value(bridge, replaced, depth + 1);
                }
                let keys = obj.get_all_property_names(
                    KeyCollectionMode::OwnOnly,
                    KeyFilter::Enumerable,
                    KeyConversion::NumbersToStrings,
                )?;
                let len = keys.get_array_length()?;
                let mut map = Map::new();
                for i in 0..len {
                    let key: Unknown<'_> = keys.get_element(i)?;
                    if key.get_type()? != ValueType::String {
                        continue;
                    }
                    let item: Unknown<'_> = obj.get_property(key)?;
                    if let Some(value) = to_value(bridge, item, depth + 1)? {
                        map.insert(String::from_unknown(key)?, value);
                    }
                }
                Value::Object(map)
            }
        }
        other => return Err(invalid(format!("a {other:?} cannot be sent"))),
    }))
}

/// A JavaScript number as JSON: integers stay integers, non-finite numbers are `null`.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        Value::from(n as i64)
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// Converts JSON to a JavaScript value.
pub(crate) fn value_to_js<'e>(env: &'e Env, v: &Value) -> napi::Result<Unknown<'e>> {
    to_js(env, v, 0)
}

fn to_js<'e>(env: &'e Env, v: &Value, depth: usize) -> napi::Result<Unknown<'e>> {
    match v {
        Value::Null => Null.into_unknown(env),
        Value::Bool(b) => b.into_unknown(env),
        Value::Number(n) => json_number(n).into_unknown(env),
        Value::String(s) => s.as_str().into_unknown(env),
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(invalid("value nested too deeply"));
            }
            let mut arr = env.create_array(items.len() as u32)?;
            for (i, item) in items.iter().enumerate() {
                arr.set(i as u32, to_js(env, item, depth + 1)?)?;
            }
            arr.into_unknown(env)
        }
        Value::Object(map) => {
            if depth >= MAX_DEPTH {
                return Err(invalid("value nested too deeply"));
            }
            let mut obj = Object::new(env)?;
            for (k, item) in map {
                obj.set_named_property(k, to_js(env, item, depth + 1)?)?;
            }
            obj.into_unknown(env)
        }
    }
}

fn json_number(n: &Number) -> f64 {
    if let Some(i) = n.as_i64() {
        i as f64
    } else if let Some(u) = n.as_u64() {
        u as f64
    } else {
        n.as_f64().unwrap_or(f64::NAN)
    }
}

/// The arguments of a call or callback invocation as JavaScript values; the remote side's
/// functions become async JavaScript functions.
pub(crate) fn arguments_to_js<'e>(
    env: &'e Env,
    bridge: &Arc<Bridge>,
    args: &kite::Arguments,
) -> napi::Result<Vec<Unknown<'e>>> {
    if !args.has_functions() {
        return args.values().iter().map(|v| value_to_js(env, v)).collect();
    }
    let tree: Vec<Tree> = args
        .get()
        .map_err(|e| invalid(format!("cannot read the arguments: {}", e.message)))?;
    tree.into_iter()
        .map(|t| tree_to_js(env, bridge, t, 0))
        .collect()
}

/// The arguments as one JavaScript array.
pub(crate) fn arguments_array<'e>(
    env: &'e Env,
    bridge: &Arc<Bridge>,
    args: &kite::Arguments,
) -> napi::Result<Unknown<'e>> {
    let items = arguments_to_js(env, bridge, args)?;
    let mut arr = env.create_array(items.len() as u32)?;
    for (i, item) in items.into_iter().enumerate() {
        arr.set(i as u32, item)?;
    }
    arr.into_unknown(env)
}

/// Received arguments with the remote functions bound to their connection.
enum Tree {
    Value(Value),
    Function(kite::Function),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Value(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Value(Value::Null))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Tree, E> {
        Ok(Tree::Value(Value::Bool(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Tree, E> {
        Ok(Tree::Value(Value::from(n)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Tree, E> {
        Ok(Tree::Value(Value::from(n)))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Tree, E> {
        Ok(Tree::Value(
            Number::from_f64(n).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Tree, E> {
        // The core marks a function's place with a string starting with NUL; let it decide.
        if s.starts_with('\0') {
            let d: de::value::StrDeserializer<'_, E> = s.into_deserializer();
            if let Ok(f) = kite::Function::deserialize(d) {
                return Ok(Tree::Function(f));
            }
        }
        Ok(Tree::Value(Value::String(s.to_string())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut out = Vec::new();
        while let Some(t) = seq.next_element()? {
            out.push(t);
        }
        Ok(Tree::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Tree>()? {
            out.push((k, v));
        }
        Ok(Tree::Object(out))
    }
}

fn tree_to_js<'e>(
    env: &'e Env,
    bridge: &Arc<Bridge>,
    t: Tree,
    depth: usize,
) -> napi::Result<Unknown<'e>> {
    if depth >= MAX_DEPTH {
        return Err(invalid("value nested too deeply"));
    }
    match t {
        Tree::Value(v) => value_to_js(env, &v),
        Tree::Function(f) => remote_function(env, bridge, f),
        Tree::Array(items) => {
            let mut arr = env.create_array(items.len() as u32)?;
            for (i, item) in items.into_iter().enumerate() {
                arr.set(i as u32, tree_to_js(env, bridge, item, depth + 1)?)?;
            }
            arr.into_unknown(env)
        }
        Tree::Object(entries) => {
            let mut obj = Object::new(env)?;
            for (k, item) in entries {
                obj.set_named_property(&k, tree_to_js(env, bridge, item, depth + 1)?)?;
            }
            obj.into_unknown(env)
        }
    }
}

/// A remote function as an async JavaScript function: `await fn(a, b)` sends the call
/// (its arguments may hold functions too) and resolves once it is sent.
fn remote_function<'e>(
    env: &'e Env,
    bridge: &Arc<Bridge>,
    f: kite::Function,
) -> napi::Result<Unknown<'e>> {
    let bridge = bridge.clone();
    let func = env.create_function_from_closure::<(), _, _>("kiteRemoteFunction", move |ctx| {
        let mut args = Vec::with_capacity(ctx.length());
        for i in 0..ctx.length() {
            let v: Unknown<'_> = ctx.get(i)?;
            args.push(to_value(Some(&bridge), v, 0)?.unwrap_or(Value::Null));
        }
        let f = f.clone();
        let p = errors::promise(
            ctx.env,
            async move { f.call(&args).await.map_err(kite::Error::Remote) },
            |_env, ()| Ok(()),
        )?;
        Ok(p.raw())
    })?;
    Ok(func.to_unknown())
}
