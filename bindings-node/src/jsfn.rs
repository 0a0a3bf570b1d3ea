//! JavaScript functions kept by Rust: references to call later on the JavaScript thread
//! ([`JsFn`], [`keep`], [`call`]), and [`Keepalive`], which keeps Node running while a kite
//! listens or a client is connected. The ground floor of the binding: it imports nothing
//! of the crate.

use napi::bindgen_prelude::{FromNapiValue, Function, FunctionRef, JsValuesTupleIntoVec, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, UnknownReturnValue};
use napi::{Env, JsValue, Status};

/// Arguments of a JavaScript call, already converted.
pub(crate) struct ArgList(pub(crate) Vec<napi::sys::napi_value>);

impl JsValuesTupleIntoVec for ArgList {
    fn into_vec(self, _env: napi::sys::napi_env) -> napi::Result<Vec<napi::sys::napi_value>> {
        Ok(self.0)
    }
}

/// A JavaScript function kept for later calls.
pub(crate) type JsFn = FunctionRef<ArgList, UnknownReturnValue>;

/// Keeps a reference to the JavaScript function `f`.
pub(crate) fn keep(f: &Function<'_>) -> napi::Result<JsFn> {
    Function::<ArgList, UnknownReturnValue>::from_unknown(f.to_unknown())?.create_ref()
}

/// Calls a kept function with `args`; a JavaScript exception comes back as `Err`.
pub(crate) fn call(env: &Env, f: &JsFn, args: &[Unknown<'_>]) -> napi::Result<()> {
    let list = ArgList(args.iter().map(|a| a.raw()).collect());
    f.borrow_back(env)?.call(list)?;
    Ok(())
}

type StrongTsfn = ThreadsafeFunction<(), (), (), Status, false, false, 0>;

/// A handle that keeps the Node process alive while it exists (a listening kite, a
/// connected client). Dropping it, from any thread, lets the process exit.
pub(crate) struct Keepalive {
    _tsfn: StrongTsfn,
}

impl Keepalive {
    /// Created on the JavaScript thread.
    pub(crate) fn new(env: &Env) -> napi::Result<Keepalive> {
        let noop = env.create_function_from_closure::<(), (), _>("kiteKeepalive", |_| Ok(()))?;
        let tsfn = noop
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<false>()
            .build_callback(|_| Ok(()))?;
        Ok(Keepalive { _tsfn: tsfn })
    }
}
