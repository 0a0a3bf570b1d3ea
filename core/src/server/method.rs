//! Methods: a handler with all its options (authentication, throttle, handling mode,
//! pre/post handlers, final functions), fixed when the method is registered.
#![deny(clippy::arithmetic_side_effects)]

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::request::Request;
use crate::dnode::{BoxFuture, IntoPayload, Payload};
use crate::protocol::KiteError;

/// What a handler gives back: its result (values and functions) or the error to answer with.
pub type HandlerResult = Result<Payload, KiteError>;

/// A type-erased handler.
pub(crate) type HandlerFn = Arc<dyn Fn(Request) -> BoxFuture<'static, HandlerResult> + Send + Sync>;

/// A final function: sees the result and error of the chain and may replace them.
pub(crate) type FinalFn = Arc<
    dyn Fn(
            Request,
            Option<Value>,
            Option<KiteError>,
        ) -> BoxFuture<'static, (Option<Value>, Option<KiteError>)>
        + Send
        + Sync,
>;

/// Which result a method with pre/post handlers returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MethodHandling {
    /// The main handler's result. Default.
    #[default]
    ReturnMethod,
    /// The first non-null result of pre, main and post handlers, in that order.
    ReturnFirst,
    /// The last non-null result.
    ReturnLatest,
}

/// Wraps an async handler returning `Result<R, E>`.
pub(crate) fn handler<H, Fut, R, E>(h: H) -> HandlerFn
where
    H: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: IntoPayload + 'static,
    E: Into<KiteError> + 'static,
{
    let h = Arc::new(h);
    Arc::new(move |req| {
        let fut = h(req);
        Box::pin(async move {
            match fut.await {
                Ok(r) => Ok(r.into_payload()),
                Err(e) => Err(e.into()),
            }
        })
    })
}

/// Pre/post handlers and final functions run around main handlers.
#[derive(Default, Clone)]
pub(crate) struct Chain {
    pub(crate) pre: Vec<HandlerFn>,
    pub(crate) post: Vec<HandlerFn>,
    pub(crate) finals: Vec<FinalFn>,
}

/// A method: its name, handler and options. Build it, then register it whole with
/// [`Kite::add_method`](super::Kite::add_method); to change it, register a new one with
/// [`Kite::replace_method`](super::Kite::replace_method).
///
/// ```no_run
/// # fn f(k: &kite::Kite) -> Result<(), kite::Error> {
/// use std::time::Duration;
/// use kite::{KiteError, Method, Request};
/// k.add_method(
///     Method::new("square", |req: Request| async move {
///         let n: f64 = req.args().one()?;
///         Ok::<_, KiteError>(n * n)
///     })
///     .disable_authentication()
///     .throttle(Duration::from_secs(1), 100),
/// )?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Method {
    pub(crate) name: String,
    main: HandlerFn,
    /// `None`: the kite's default (authenticate unless the configuration disables it).
    authenticate: Option<bool>,
    /// `None`: the kite's default handling mode.
    handling: Option<MethodHandling>,
    bucket: Option<Arc<DefaultDirectRateLimiter>>,
    chain: Chain,
    /// Its call counters and latency histogram, set when registered on a kite with metrics.
    pub(crate) metrics: Option<Arc<crate::metrics::MethodMetrics>>,
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method")
            .field("name", &self.name)
            .field("authenticate", &self.authenticate)
            .field("handling", &self.handling)
            .field("throttled", &self.bucket.is_some())
            .finish_non_exhaustive()
    }
}

impl Method {
    /// A method served by the async handler `h`. A handler returns `Result<R, E>`: `R` is
    /// any `Serialize` value or a [`Payload`] (values with functions); `E` is anything that
    /// becomes a [`KiteError`] (a `KiteError`, [`crate::Error`], `anyhow::Error`, or a type
    /// of yours implementing `Into<KiteError>`, which chooses its wire kind).
    pub fn new<H, Fut, R, E>(name: &str, h: H) -> Self
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoPayload + 'static,
        E: Into<KiteError> + 'static,
    {
        Self {
            name: name.to_string(),
            main: handler(h),
            authenticate: None,
            handling: None,
            bucket: None,
            chain: Chain::default(),
            metrics: None,
        }
    }

    /// A method whose arguments are decoded as `A` (a tuple, `Vec` or struct); arguments
    /// of another shape get `argumentError` without calling the handler.
    pub fn typed<A, H, Fut, R, E>(name: &str, h: H) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        H: Fn(Request, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoPayload + 'static,
        E: Into<KiteError> + 'static,
    {
        let h = Arc::new(h);
        Self::new(name, move |req: Request| {
            let h = h.clone();
            async move {
                let args: A = req.decode()?;
                h(req, args).await.map_err(Into::into)
            }
        })
    }

    /// The method's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Serve the method without authentication.
    pub fn disable_authentication(mut self) -> Self {
        self.authenticate = Some(false);
        self
    }

    /// Require (or not) authentication, whatever the kite's default.
    pub fn authenticate(mut self, on: bool) -> Self {
        self.authenticate = Some(on);
        self
    }

    /// Token bucket: `capacity` calls at once, one more every `fill_interval`; calls beyond
    /// get `requestLimitError`.
    pub fn throttle(mut self, fill_interval: Duration, capacity: u32) -> Self {
        let burst = NonZeroU32::new(capacity.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(fill_interval.max(Duration::from_nanos(1)))
            .map(|q| q.allow_burst(burst))
            .unwrap_or_else(|| Quota::per_second(burst));
        self.bucket = Some(Arc::new(RateLimiter::direct(quota)));
        self
    }

    /// How the result is chosen when pre/post handlers return values.
    pub fn method_handling(mut self, handling: MethodHandling) -> Self {
        self.handling = Some(handling);
        self
    }

    /// Adds a handler run before the main one.
    pub fn pre_handle<H, Fut, R, E>(mut self, h: H) -> Self
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoPayload + 'static,
        E: Into<KiteError> + 'static,
    {
        self.chain.pre.push(handler(h));
        self
    }

    /// Adds a handler run after the main one.
    pub fn post_handle<H, Fut, R, E>(mut self, h: H) -> Self
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoPayload + 'static,
        E: Into<KiteError> + 'static,
    {
        self.chain.post.push(handler(h));
        self
    }

    /// Adds a final function, run last whatever happened; it may replace result and error.
    pub fn final_func<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Request, Option<Value>, Option<KiteError>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (Option<Value>, Option<KiteError>)> + Send + 'static,
    {
        self.chain.finals.push(final_fn(f));
        self
    }

    /// Fills the options left to the kite's defaults.
    pub(crate) fn resolve(mut self, authenticate: bool, handling: MethodHandling) -> Self {
        self.authenticate.get_or_insert(authenticate);
        self.handling.get_or_insert(handling);
        self
    }

    pub(crate) fn requires_authentication(&self) -> bool {
        self.authenticate.unwrap_or(true)
    }

    /// Takes a token from the bucket; false when the rate is exceeded.
    pub(crate) fn admit(&self) -> bool {
        self.bucket.as_ref().is_none_or(|b| b.check().is_ok())
    }

    /// Runs the pre handlers (the method's, then the kite's), the main handler, the post
    /// handlers and the final functions.
    pub(crate) async fn serve(&self, req: Request, wide: &Chain) -> HandlerResult {
        // Plain slices and indices (no iterator adapters held across the awaits, which the
        // compiler cannot prove `Send` for higher-ranked handler types).
        let steps: [&[HandlerFn]; 5] = [
            &self.chain.pre,
            &wide.pre,
            std::slice::from_ref(&self.main),
            &self.chain.post,
            &wide.post,
        ];
        let main_at = self.chain.pre.len().saturating_add(wide.pre.len());
        // Each step's result, kept (not cloned: results may be large) until the handling
        // mode picks one. A result's functions go with it; the others are dropped.
        let mut results: Vec<Payload> = Vec::new();
        let mut error: Option<KiteError> = None;
        'chain: for list in steps {
            for h in list {
                match h(req.clone()).await {
                    Ok(v) => results.push(v),
                    Err(e) => {
                        error = Some(e);
                        break 'chain;
                    }
                }
            }
        }
        let result = match error {
            Some(_) => None,
            None => pick(results, main_at, self.handling.unwrap_or_default()),
        };
        if self.chain.finals.is_empty() && wide.finals.is_empty() {
            return match error {
                Some(e) => Err(e),
                None => Ok(result.unwrap_or_default()),
            };
        }
        // Final functions see (and may replace) plain values.
        let mut value = result.as_ref().map(|p| p.value().clone());
        for list in [&self.chain.finals, &wide.finals] {
            for f in list {
                let (v, e) = f(req.clone(), value, error).await;
                value = v;
                error = e;
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        // An unchanged result keeps its functions.
        Ok(match (result, value) {
            (Some(p), Some(v)) if p.value() == &v => p,
            (_, v) => Payload::new(v.unwrap_or(Value::Null)),
        })
    }
}

fn pick(results: Vec<Payload>, main_at: usize, handling: MethodHandling) -> Option<Payload> {
    let non_null = |p: &Payload| !p.value().is_null();
    match handling {
        MethodHandling::ReturnMethod => results.into_iter().nth(main_at),
        MethodHandling::ReturnFirst => results.into_iter().find(non_null),
        MethodHandling::ReturnLatest => results.into_iter().rev().find(non_null),
    }
}

pub(crate) fn final_fn<F, Fut>(f: F) -> FinalFn
where
    F: Fn(Request, Option<Value>, Option<KiteError>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (Option<Value>, Option<KiteError>)> + Send + 'static,
{
    Arc::new(move |r, v, e| Box::pin(f(r, v, e)))
}

/// An `argumentError`, for handlers: `return Err(argument_error("want a number"))`.
pub fn argument_error(message: impl Into<String>) -> KiteError {
    KiteError::argument(message)
}
