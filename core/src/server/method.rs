//! Methods: the main handler, pre/post handlers, final functions, authentication switch,
//! throttling and the method-handling mode.
#![deny(clippy::arithmetic_side_effects)]

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use serde_json::Value;

use super::request::Request;
use crate::dnode::BoxFuture;
use crate::protocol::{ErrorKind, KiteError};

/// What a handler returns: a JSON result or any error. A [`KiteError`] keeps its kind on
/// the wire; any other error becomes a `genericError` with the error's text.
pub type HandlerResult = anyhow::Result<Value>;

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

/// Wraps an async handler returning any `Serialize` result.
pub(crate) fn handler<H, Fut, R>(h: H) -> HandlerFn
where
    H: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
    R: Serialize + 'static,
{
    let h = Arc::new(h);
    Arc::new(move |req| {
        let fut = h(req);
        Box::pin(async move {
            let r = fut.await?;
            Ok(serde_json::to_value(&r)?)
        })
    })
}

/// Converts a handler's error into the wire error.
pub(crate) fn to_kite_error(e: anyhow::Error) -> KiteError {
    match e.downcast::<KiteError>() {
        Ok(k) => k,
        Err(e) => KiteError::generic(format!("{e:#}")),
    }
}

#[derive(Default)]
pub(crate) struct Chain {
    pub(crate) pre: Vec<HandlerFn>,
    pub(crate) post: Vec<HandlerFn>,
    pub(crate) finals: Vec<FinalFn>,
}

/// A registered method.
pub(crate) struct Method {
    pub(crate) name: String,
    main: HandlerFn,
    settings: RwLock<Settings>,
    /// The method's chain with the kite-wide handlers appended, fixed at the first call
    /// (like the reference).
    resolved: OnceLock<Arc<Chain>>,
}

struct Settings {
    authenticate: bool,
    handling: MethodHandling,
    chain: Chain,
    bucket: Option<Arc<DefaultDirectRateLimiter>>,
}

impl Method {
    pub(crate) fn new(
        name: String,
        main: HandlerFn,
        authenticate: bool,
        handling: MethodHandling,
    ) -> Self {
        Self {
            name,
            main,
            settings: RwLock::new(Settings {
                authenticate,
                handling,
                chain: Chain::default(),
                bucket: None,
            }),
            resolved: OnceLock::new(),
        }
    }

    fn settings(&self) -> std::sync::RwLockReadGuard<'_, Settings> {
        self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    fn settings_mut(&self) -> std::sync::RwLockWriteGuard<'_, Settings> {
        self.settings.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn authenticate(&self) -> bool {
        self.settings().authenticate
    }

    /// Takes a token from the bucket; false when the rate is exceeded.
    pub(crate) fn admit(&self) -> bool {
        match &self.settings().bucket {
            Some(b) => b.check().is_ok(),
            None => true,
        }
    }

    /// Runs pre handlers, the main handler, post handlers and final functions.
    pub(crate) async fn serve(
        &self,
        req: Request,
        kite_wide: &(dyn Fn() -> Chain + Sync),
    ) -> (Option<Value>, Option<KiteError>) {
        let (handling, chain) = {
            let chain = self
                .resolved
                .get_or_init(|| {
                    let s = self.settings();
                    let wide = kite_wide();
                    let mut c = Chain {
                        pre: s.chain.pre.clone(),
                        post: s.chain.post.clone(),
                        finals: s.chain.finals.clone(),
                    };
                    c.pre.extend(wide.pre);
                    c.post.extend(wide.post);
                    c.finals.extend(wide.finals);
                    Arc::new(c)
                })
                .clone();
            (self.settings().handling, chain)
        };
        // Each step's result, kept (not cloned: results may be large) until the handling
        // mode picks one.
        let mut results: Vec<Value> = Vec::with_capacity(
            chain
                .pre
                .len()
                .saturating_add(1)
                .saturating_add(chain.post.len()),
        );
        let main_at = chain.pre.len();
        let mut error: Option<KiteError> = None;
        let steps = chain
            .pre
            .iter()
            .chain(std::iter::once(&self.main))
            .chain(chain.post.iter());
        for h in steps {
            match h(req.clone()).await {
                Ok(v) => results.push(v),
                Err(e) => {
                    error = Some(to_kite_error(e));
                    break;
                }
            }
        }
        let mut result = match error {
            Some(_) => None,
            None => match handling {
                MethodHandling::ReturnMethod => results.into_iter().nth(main_at),
                MethodHandling::ReturnFirst => results.into_iter().find(|v| !v.is_null()),
                MethodHandling::ReturnLatest => results.into_iter().rev().find(|v| !v.is_null()),
            },
        };
        for f in &chain.finals {
            let (r, e) = f(req.clone(), result, error).await;
            result = r;
            error = e;
        }
        (result, error)
    }
}

/// Returned by [`Kite::handle`](super::Kite::handle): configures the method just registered.
#[derive(Clone)]
pub struct MethodBuilder {
    pub(crate) method: Arc<Method>,
}

impl std::fmt::Debug for MethodBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MethodBuilder({})", self.method.name)
    }
}

impl MethodBuilder {
    /// Serve the method without authentication.
    pub fn disable_authentication(self) -> Self {
        self.method.settings_mut().authenticate = false;
        self
    }

    /// Token bucket: `capacity` calls at once, one more every `fill_interval`; calls beyond
    /// get `requestLimitError`. A second call keeps the first bucket, like the reference.
    pub fn throttle(self, fill_interval: Duration, capacity: u32) -> Self {
        let mut s = self.method.settings_mut();
        if s.bucket.is_none() {
            let burst = NonZeroU32::new(capacity.max(1)).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(fill_interval.max(Duration::from_nanos(1)))
                .map(|q| q.allow_burst(burst))
                .unwrap_or_else(|| Quota::per_second(burst));
            s.bucket = Some(Arc::new(RateLimiter::direct(quota)));
        }
        drop(s);
        self
    }

    /// How the result is chosen when pre/post handlers return values.
    pub fn method_handling(self, handling: MethodHandling) -> Self {
        self.method.settings_mut().handling = handling;
        self
    }

    /// Adds a handler run before the main one.
    pub fn pre_handle<H, Fut, R>(self, h: H) -> Self
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
        R: Serialize + 'static,
    {
        self.method.settings_mut().chain.pre.push(handler(h));
        self
    }

    /// Adds a handler run after the main one.
    pub fn post_handle<H, Fut, R>(self, h: H) -> Self
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
        R: Serialize + 'static,
    {
        self.method.settings_mut().chain.post.push(handler(h));
        self
    }

    /// Adds a final function, run last whatever happened; it may replace result and error.
    pub fn final_func<F, Fut>(self, f: F) -> Self
    where
        F: Fn(Request, Option<Value>, Option<KiteError>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (Option<Value>, Option<KiteError>)> + Send + 'static,
    {
        self.method.settings_mut().chain.finals.push(final_fn(f));
        self
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
pub fn argument_error(message: impl Into<String>) -> anyhow::Error {
    KiteError::new(ErrorKind::ArgumentError, message).into()
}
