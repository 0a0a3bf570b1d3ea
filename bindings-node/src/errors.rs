//! Errors as JavaScript sees them: instances of the `KiteError` class of `lib/errors.js`
//! whose `type` (and `code`) is the kite error kind (`methodNotFound`, `argumentError`,
//! `genericError`, `authenticationError`, `requestLimitError`, `timeout`, `disconnect`,
//! `sendError`, `invalidResponse`, a custom kind the remote side sent, or a local one:
//! `dialError`, `configError`, `duplicateMethod`, `authError`, `ioError`), with `requestId`
//! and `appCode` (the wire error's `code`) when the remote side set them.

use std::future::Future;

use kite::protocol::KiteError;
use kite::ErrorKind;
use napi::bindgen_prelude::{
    FromNapiValue, JsObjectValue, Object, PromiseRaw, ToNapiValue, Unknown,
};
use napi::{Env, JsValue, Status, ValueType};

/// The JavaScript error for a wire error.
pub(crate) fn kite_error_object<'e>(env: &'e Env, e: &KiteError) -> napi::Result<Object<'e>> {
    make(env, e.kind.as_str(), &e.message, &e.id, &e.code)
}

/// The JavaScript error for a core error: its `type` and `code` are the core's
/// [`kite::Error::code`] (a wire kind, or `dialError`, `configError`, … for local failures).
pub(crate) fn error_object<'e>(env: &'e Env, e: &kite::Error) -> napi::Result<Object<'e>> {
    let wire = e.to_kite_error();
    make(env, e.code(), &wire.message, &wire.id, &wire.code)
}

fn make<'e>(
    env: &'e Env,
    code: &str,
    message: &str,
    request_id: &str,
    app_code: &str,
) -> napi::Result<Object<'e>> {
    if let Some(parts) = crate::js::parts(env) {
        let mut options = Object::new(env)?;
        if !request_id.is_empty() {
            options.set_named_property("requestId", request_id)?;
        }
        if !app_code.is_empty() {
            options.set_named_property("appCode", app_code)?;
        }
        let args = [
            code.into_unknown(env)?,
            message.into_unknown(env)?,
            options.to_unknown(),
        ];
        let ctor = parts.kite_error.borrow_back(env)?;
        let err =
            ctor.new_instance(crate::jsfn::ArgList(args.iter().map(|a| a.raw()).collect()))?;
        return Object::from_unknown(err);
    }
    // Loaded without the package entry (lib/index.js): a plain `Error` of the same shape.
    let mut err = env.create_error(napi::Error::new(Status::GenericFailure, message))?;
    err.set_named_property("name", "KiteError")?;
    err.set_named_property("type", code)?;
    err.set_named_property("code", code)?;
    if !request_id.is_empty() {
        err.set_named_property("requestId", request_id)?;
    }
    if !app_code.is_empty() {
        err.set_named_property("appCode", app_code)?;
    }
    Ok(err)
}

/// A napi error that throws (or rejects with) exactly this JavaScript value.
pub(crate) fn rethrow(v: Unknown<'_>) -> napi::Error {
    napi::Error::from(v)
}

/// Throws the core's configuration error (`configError`) for a bad argument to the binding.
pub(crate) fn throw_config(env: &Env, message: impl Into<String>) -> napi::Error {
    throw_error(env, &kite::Error::Config(message.into()))
}

/// The throw of a core error.
pub(crate) fn throw_error(env: &Env, e: &kite::Error) -> napi::Error {
    match error_object(env, e) {
        Ok(obj) => rethrow(obj.to_unknown()),
        Err(e) => e,
    }
}

/// What a thrown value (or a rejection) of a JavaScript handler sends to the caller: an
/// `KiteError` sends its `type`, whatever kind it is,
/// with `appCode` as the wire `code`; else an error whose `code` is a kite error kind keeps
/// it; anything else is a `genericError` with the error's message (its non-kite `code`, or
/// `appCode`, becomes the wire `code`).
pub(crate) fn from_thrown(env: &Env, v: Unknown<'_>) -> KiteError {
    let text = |u: Unknown<'_>| -> Option<String> {
        match u.get_type().ok()? {
            ValueType::Undefined | ValueType::Null => None,
            ValueType::String => String::from_unknown(u).ok(),
            _ => u
                .coerce_to_string()
                .ok()
                .and_then(|s| s.into_utf8().ok())
                .and_then(|s| s.into_owned().ok()),
        }
    };
    if !matches!(
        v.get_type(),
        Ok(ValueType::Object) | Ok(ValueType::Function)
    ) {
        return KiteError::generic(text(v).unwrap_or_else(|| "undefined".into()));
    }
    let Ok(obj) = Object::from_unknown(v) else {
        return KiteError::generic("error");
    };
    let prop = |name: &str| -> Option<String> {
        obj.get_named_property::<Unknown<'_>>(name)
            .ok()
            .and_then(text)
    };
    let message = prop("message").or_else(|| text(v)).unwrap_or_default();
    let is_kite_error = crate::js::parts(env)
        .and_then(|p| p.kite_error.borrow_back(env).ok())
        .and_then(|ctor| v.instanceof(ctor).ok())
        .unwrap_or(false);
    if let Some(kind) = prop("type").filter(|t| is_kite_error && !t.is_empty()) {
        let code = prop("code").filter(|c| *c != kind);
        let mut e = KiteError::new(ErrorKind::parse(&kind), message);
        if let Some(app) = prop("appCode").or(code) {
            e.code = app;
        }
        return e;
    }
    let code = prop("code");
    let kind = code
        .as_deref()
        .map(ErrorKind::parse)
        .filter(|k| !matches!(k, ErrorKind::Other(_)));
    let mut e = KiteError::new(kind.clone().unwrap_or(ErrorKind::GenericError), message);
    if let Some(app) = prop("appCode").or(if kind.is_none() { code } else { None }) {
        e.code = app;
    }
    e
}

/// A promise of `fut`'s outcome: `ok` makes the JavaScript value on the JavaScript thread,
/// an error rejects with its `KiteError`.
pub(crate) fn promise<'e, T, V, F, C>(
    env: &'e Env,
    fut: F,
    ok: C,
) -> napi::Result<PromiseRaw<'e, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = Result<T, kite::Error>> + Send + 'static,
    C: FnOnce(&'e Env, T) -> napi::Result<V> + 'static,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, move |env, r| match r {
        Ok(v) => ok(env, v),
        Err(e) => Err(rethrow(error_object(env, &e)?.to_unknown())),
    })
}
