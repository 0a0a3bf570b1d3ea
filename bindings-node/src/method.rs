//! The [`Method`] class and how handlers, pre/post handlers and final functions written in
//! JavaScript run for the core (through the kite's bridge).

use std::sync::Arc;

use kite::protocol::KiteError;
use kite::{MethodHandling, Payload};
use napi::bindgen_prelude::{Function, This};
use napi::Env;
use serde_json::Value;

use crate::bridge::{self, Bridge, Subject};
use crate::errors;
use crate::jsfn;
use crate::types::duration;

/// Throttling of a method: a token bucket.
#[napi(object)]
pub struct ThrottleOptions {
    /// Milliseconds to add one call to the bucket.
    pub interval: f64,
    /// Calls the bucket holds (the burst).
    pub capacity: u32,
}

/// Options of one method.
#[napi(object)]
#[derive(Default)]
pub struct MethodOptions {
    /// Require authentication. Default: true, unless the kite disables it.
    pub auth: Option<bool>,
    /// Token-bucket throttling; calls beyond get `requestLimitError`.
    pub throttle: Option<ThrottleOptions>,
    /// `method`, `first` or `latest` (see `KiteOptions.methodHandling`).
    #[napi(ts_type = "MethodHandling")]
    pub handling: Option<String>,
}

/// The handling mode named `s` (`method`, `first`, `latest`), parsed by the core.
pub(crate) fn handling(env: &Env, s: &str) -> napi::Result<MethodHandling> {
    s.parse().map_err(|e| errors::throw_error(env, &e))
}

pub(crate) async fn run_handler(
    bridge: Arc<Bridge>,
    func: u64,
    req: kite::Request,
) -> Result<Payload, KiteError> {
    let slot = bridge::slot_of(&req, &bridge);
    let conn = req.client().clone();
    bridge
        .invoke(func, Subject::Request(req, slot), None, Some(&conn))
        .await
        .map(Option::unwrap_or_default)
}

pub(crate) async fn run_final(
    bridge: Arc<Bridge>,
    func: u64,
    req: kite::Request,
    result: Option<Value>,
    error: Option<KiteError>,
) -> (Option<Value>, Option<KiteError>) {
    let slot = bridge::slot_of(&req, &bridge);
    let conn = req.client().clone();
    let extra = Some((result.clone(), error.clone()));
    match bridge
        .invoke(func, Subject::Request(req, slot), extra, Some(&conn))
        .await
    {
        Ok(None) => (result, error),
        Ok(Some(p)) => (Some(p.value().clone()), None),
        Err(e) => (None, Some(e)),
    }
}

/// Applies a method's options to the core method being built.
pub(crate) fn apply(
    env: &Env,
    mut m: kite::Method,
    o: MethodOptions,
) -> napi::Result<kite::Method> {
    if o.auth == Some(false) {
        m = m.disable_authentication();
    }
    if let Some(t) = o.throttle {
        m = m.throttle(duration(t.interval), t.capacity);
    }
    if let Some(h) = o.handling {
        m = m.method_handling(handling(env, &h)?);
    }
    Ok(m)
}

/// A registered method: add handlers and change its settings; every call returns the
/// method, so they chain. The core's methods are immutable: each change replaces the
/// method whole.
#[napi]
pub struct Method {
    pub(crate) kite: kite::Kite,
    pub(crate) name: String,
    pub(crate) bridge: Arc<Bridge>,
}

impl Method {
    fn keep(&self, f: &Function<'_>) -> napi::Result<(Arc<Bridge>, u64)> {
        let b = self.bridge.clone();
        let func = b.add_function(jsfn::keep(f)?);
        Ok((b, func))
    }

    /// Replaces the method with `f` applied to it.
    fn change(&self, f: impl FnOnce(kite::Method) -> kite::Method) {
        if let Some(m) = self.kite.method(&self.name) {
            self.kite.replace_method(f(m));
        }
    }
}

#[napi]
impl Method {
    /// Adds a handler run before the main one. Its result counts for the `first` and
    /// `latest` handling modes; what it throws ends the call with that error.
    #[napi(ts_args_type = "handler: (req: Request) => any")]
    pub fn pre_handle<'t>(&self, this: This<'t>, handler: Function<'_>) -> napi::Result<This<'t>> {
        let (b, func) = self.keep(&handler)?;
        self.change(|m| m.pre_handle(move |req: kite::Request| run_handler(b.clone(), func, req)));
        Ok(this)
    }

    /// Adds a handler run after the main one.
    #[napi(ts_args_type = "handler: (req: Request) => any")]
    pub fn post_handle<'t>(&self, this: This<'t>, handler: Function<'_>) -> napi::Result<This<'t>> {
        let (b, func) = self.keep(&handler)?;
        self.change(|m| m.post_handle(move |req: kite::Request| run_handler(b.clone(), func, req)));
        Ok(this)
    }

    /// Adds a final function, run last whatever happened, with the result and error so far.
    /// Returning `undefined` keeps both; returning a value makes it the result (and clears
    /// the error); throwing makes that the error.
    #[napi(ts_args_type = "fn: (req: Request, result: any, error: KiteError | null) => any")]
    pub fn final_func<'t>(&self, this: This<'t>, f: Function<'_>) -> napi::Result<This<'t>> {
        let (b, func) = self.keep(&f)?;
        self.change(|m| {
            m.final_func(move |req, result, error| run_final(b.clone(), func, req, result, error))
        });
        Ok(this)
    }

    /// Serves the method without authentication.
    #[napi]
    pub fn disable_authentication<'t>(&self, this: This<'t>) -> This<'t> {
        self.change(kite::Method::disable_authentication);
        this
    }

    /// Token-bucket throttling: `capacity` calls at once, one more every `interval`
    /// milliseconds; calls beyond get `requestLimitError`.
    #[napi]
    pub fn throttle<'t>(&self, this: This<'t>, interval: f64, capacity: u32) -> This<'t> {
        self.change(|m| m.throttle(duration(interval), capacity));
        this
    }

    /// How the result is chosen: `method`, `first` or `latest`.
    #[napi(ts_args_type = "mode: MethodHandling")]
    pub fn method_handling<'t>(
        &self,
        env: &Env,
        this: This<'t>,
        mode: String,
    ) -> napi::Result<This<'t>> {
        let mode = handling(env, &mode)?;
        self.change(|m| m.method_handling(mode));
        Ok(this)
    }
}
