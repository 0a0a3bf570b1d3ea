//! The core's `tracing` records: to a JavaScript logger set with `setLogger(fn, level)`, and
//! to stderr when `KITE_LOG_LEVEL` is set (`error`, `warn`, `info`, `debug`, `trace`, or an
//! `EnvFilter` directive). Records are formatted where they happen and handed to the logger
//! through a weak threadsafe function (it never keeps Node running); the logger runs on the
//! JavaScript thread of the environment that set it (the last `setLogger` call wins).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::errors;

/// One log record, as the JavaScript logger gets it.
#[napi(object)]
pub struct LogRecord {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    #[napi(ts_type = "LogLevel")]
    pub level: String,
    /// Where it comes from, e.g. `kite::client` (the Rust module).
    pub target: String,
    /// The message, followed by its fields (`key=value`).
    pub message: String,
}

type Logger = ThreadsafeFunction<LogRecord, (), LogRecord, Status, false, true, 0>;

/// 0 off, 1 error, 2 warn, 3 info, 4 debug, 5 trace: what the JavaScript logger gets.
static LEVEL: AtomicU8 = AtomicU8::new(0);
static LOGGER: Mutex<Option<Logger>> = Mutex::new(None);

fn rank(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

/// Hands records to the JavaScript logger.
struct ToJs;

impl<S: Subscriber> Layer<S> for ToJs {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let logger = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
        let Some(logger) = logger.as_ref() else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        fields.message.push_str(&fields.rest);
        let meta = event.metadata();
        let _ = logger.call(
            LogRecord {
                level: level_name(meta.level()).to_string(),
                target: meta.target().to_string(),
                message: fields.message,
            },
            ThreadsafeFunctionCallMode::NonBlocking,
        );
    }
}

/// Lets through the events at the JavaScript logger's level (none without a logger).
struct JsLevel;

impl<S> Filter<S> for JsLevel {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        meta.is_event() && rank(meta.level()) <= LEVEL.load(Ordering::Relaxed)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_event() && rank(meta.level()) <= LEVEL.load(Ordering::Relaxed) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match LEVEL.load(Ordering::Relaxed) {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }
}

/// Installs the process's subscriber (once): stderr per `KITE_LOG_LEVEL`, plus the
/// JavaScript logger.
pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let stderr = std::env::var("KITE_LOG_LEVEL")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|level| {
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::env::var_os("KITE_LOG_NOCOLOR").is_none())
                    .with_filter(tracing_subscriber::EnvFilter::new(level.to_lowercase()))
            });
        let _ = tracing_subscriber::registry()
            .with(stderr)
            .with(ToJs.with_filter(JsLevel))
            .try_init();
    });
}

/// Sends the core's log records at `level` and above (default `info`) to `logger`, called
/// with `{ level, target, message }`; `null` stops. A logger that throws is reported on
/// stderr (the package entry wraps it).
#[napi(js_name = "setLogger")]
pub fn set_logger(
    env: &Env,
    #[napi(ts_arg_type = "((record: LogRecord) => void) | null")] logger: Option<
        Function<'_, LogRecord, ()>,
    >,
    #[napi(ts_arg_type = "LogLevel")] level: Option<String>,
) -> napi::Result<()> {
    install();
    let rank = match level.as_deref().unwrap_or("info") {
        "error" => 1,
        "warn" => 2,
        "info" => 3,
        "debug" => 4,
        "trace" => 5,
        other => {
            return Err(errors::throw(
                env,
                "configError",
                format!("unknown log level {other:?} (error, warn, info, debug or trace)"),
            ))
        }
    };
    let logger = match logger {
        Some(f) => Some(
            f.build_threadsafe_function::<LogRecord>()
                .callee_handled::<false>()
                .weak::<true>()
                .build()?,
        ),
        None => None,
    };
    let on = logger.is_some();
    *LOGGER.lock().unwrap_or_else(|e| e.into_inner()) = logger;
    LEVEL.store(if on { rank } else { 0 }, Ordering::Relaxed);
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}
