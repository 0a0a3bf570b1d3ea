//! Values between JavaScript and the core, converted directly with napi calls (no JSON
//! strings in between).
//!
//! JavaScript → JSON follows `JSON.stringify` (`toJSON`, `undefined` properties skipped,
//! non-finite numbers as `null`), except that functions become dnode callbacks, collected
//! with their paths into the core's [`Payload`]. JSON → JavaScript puts the remote side's
//! functions, which the core hands over with their paths, in as async JavaScript functions.

use std::sync::Arc;

use kite::dnode::{Path, Segment, PLACEHOLDER};
use kite::Payload;
use napi::bindgen_prelude::{
    BigInt, FromNapiValue, Function, JsObjectValue, KeyCollectionMode, KeyConversion, KeyFilter,
    Null, Object, ToNapiValue, Unknown,
};
use napi::{Env, JsValue, Status, ValueType};
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

/// Converts a JavaScript value to the core's [`Payload`]: the JSON value, and each function
/// inside as a callback at its path (kept until the core drops it).
pub(crate) fn js_to_payload(bridge: &Arc<Bridge>, v: Unknown<'_>) -> napi::Result<Payload> {
    let mut w = Walker {
        bridge: Some(bridge),
        path: Vec::new(),
        functions: Vec::new(),
    };
    let value = w.value_of(v, 0)?.unwrap_or(Value::Null);
    Ok(Payload::from_parts(value, w.functions))
}

/// Walks a JavaScript value, collecting the functions found and where.
struct Walker<'b> {
    bridge: Option<&'b Arc<Bridge>>,
    path: Path,
    functions: Vec<(Path, kite::Callback)>,
}

impl Walker<'_> {
    /// `None` for what `JSON.stringify` leaves out (undefined, symbols).
    fn value_of(&mut self, v: Unknown<'_>, depth: usize) -> napi::Result<Option<Value>> {
        Ok(Some(match v.get_type()? {
            ValueType::Undefined | ValueType::Symbol => return Ok(None),
            ValueType::Null => Value::Null,
            ValueType::Boolean => Value::Bool(bool::from_unknown(v)?),
            ValueType::Number => number(f64::from_unknown(v)?),
            ValueType::String => Value::String(String::from_unknown(v)?),
            ValueType::BigInt => big_int(v)?,
            ValueType::Function => {
                let Some(bridge) = self.bridge else {
                    return Err(invalid("a function cannot be sent here"));
                };
                let f = Function::<'_>::from_unknown(v)?;
                let cb = bridge::callback(bridge, jsfn::keep(&f)?);
                self.functions.push((self.path.clone(), cb));
                Value::String(PLACEHOLDER.into())
            }
            ValueType::Object => {
                if depth >= MAX_DEPTH {
                    return Err(invalid("value nested too deeply (or circular) to be sent"));
                }
                if v.is_array()? {
                    self.array(v, depth)?
                } else {
                    let obj = Object::from_unknown(v)?;
                    let to_json: Unknown<'_> = obj.get_named_property("toJSON")?;
                    if to_json.get_type()? == ValueType::Function {
                        let f = Function::<'_, (), Unknown<'_>>::from_unknown(to_json)?;
                        let replaced = f.apply(obj, ())?;
                        return self.value_of(replaced, depth + 1);
                    }
                    self.object(obj, depth)?
                }
            }
            other => return Err(invalid(format!("a {other:?} cannot be sent"))),
        }))
    }

    fn array(&mut self, v: Unknown<'_>, depth: usize) -> napi::Result<Value> {
        let arr = Object::from_unknown(v)?;
        let len = arr.get_array_length()?;
        let mut out = Vec::with_capacity(len as usize);
        for i in 0..len {
            let item: Unknown<'_> = arr.get_element(i)?;
            self.path.push(Segment::Index(i as usize));
            let value = self.value_of(item, depth + 1)?;
            self.path.pop();
            out.push(value.unwrap_or(Value::Null));
        }
        Ok(Value::Array(out))
    }

    fn object(&mut self, obj: Object<'_>, depth: usize) -> napi::Result<Value> {
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
            let name = String::from_unknown(key)?;
            let item: Unknown<'_> = obj.get_property(key)?;
            self.path.push(Segment::Key(name.clone()));
            let value = self.value_of(item, depth + 1)?;
            self.path.pop();
            if let Some(value) = value {
                map.insert(name, value);
            }
        }
        Ok(Value::Object(map))
    }
}

/// A BigInt as JSON: within 64 bits, else an error.
fn big_int(v: Unknown<'_>) -> napi::Result<Value> {
    let n = BigInt::from_unknown(v)?;
    let (i, lossless) = n.get_i64();
    if lossless {
        return Ok(Value::from(i));
    }
    let (_, u, lossless) = n.get_u64();
    if !lossless || n.sign_bit {
        return Err(invalid("a BigInt beyond 64 bits cannot be sent"));
    }
    Ok(Value::from(u))
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
    let mut values: Vec<Unknown<'e>> = args
        .values()
        .iter()
        .map(|v| value_to_js(env, v))
        .collect::<napi::Result<_>>()?;
    for (path, f) in args.functions() {
        let func = remote_function(env, bridge, f.clone())?;
        place(&mut values, path, func)?;
    }
    Ok(values)
}

/// The list index a path segment names (Go and kite.js write numbers, some peers strings).
fn index(seg: &Segment) -> Option<usize> {
    match seg {
        Segment::Index(i) => Some(*i),
        Segment::Key(k) => k.parse().ok(),
    }
}

/// Puts `func` at `path` inside the converted arguments; a path that leads nowhere (a
/// peer's mistake) is ignored, as the core ignores it.
fn place<'e>(values: &mut [Unknown<'e>], path: &[Segment], func: Unknown<'e>) -> napi::Result<()> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let Some(slot) = index(first).and_then(|i| values.get_mut(i)) else {
        return Ok(());
    };
    let Some((last, inner)) = rest.split_last() else {
        *slot = func;
        return Ok(());
    };
    let mut cur = *slot;
    for seg in inner {
        if cur.get_type()? != ValueType::Object {
            return Ok(());
        }
        let obj = Object::from_unknown(cur)?;
        cur = match seg {
            Segment::Index(i) if obj.is_array()? => obj.get_element(*i as u32)?,
            Segment::Index(i) => obj.get_named_property(&i.to_string())?,
            Segment::Key(k) => obj.get_named_property(k)?,
        };
    }
    if cur.get_type()? != ValueType::Object {
        return Ok(());
    }
    let mut obj = Object::from_unknown(cur)?;
    match last {
        Segment::Index(i) => obj.set_element(*i as u32, func),
        Segment::Key(k) if obj.is_array()? => match k.parse::<u32>() {
            Ok(i) => obj.set_element(i, func),
            Err(_) => Ok(()),
        },
        Segment::Key(k) => obj.set_named_property(k, func),
    }
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

/// A remote function as an async JavaScript function: `await fn(a, b)` sends the call
/// (its arguments may hold functions too) and resolves once it is sent.
fn remote_function<'e>(
    env: &'e Env,
    bridge: &Arc<Bridge>,
    f: kite::Function,
) -> napi::Result<Unknown<'e>> {
    let bridge = bridge.clone();
    let func = env.create_function_from_closure::<(), _, _>("kiteRemoteFunction", move |ctx| {
        let mut w = Walker {
            bridge: Some(&bridge),
            path: Vec::new(),
            functions: Vec::new(),
        };
        let mut args = Vec::with_capacity(ctx.length());
        for i in 0..ctx.length() {
            let v: Unknown<'_> = ctx.get(i)?;
            w.path = vec![Segment::Index(i)];
            args.push(w.value_of(v, 0)?.unwrap_or(Value::Null));
        }
        let args = Payload::from_parts(Value::Array(args), w.functions);
        let f = f.clone();
        let p = errors::promise(
            ctx.env,
            async move { f.call(args).await.map_err(kite::Error::Remote) },
            |_env, ()| Ok(()),
        )?;
        Ok(p.raw())
    })?;
    Ok(func.to_unknown())
}
