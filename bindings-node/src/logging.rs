//! The core's `tracing` records: to a JavaScript logger set with `setLogger(fn, level)`, and
//! to stderr when `KITE_LOG_LEVEL` is set (`error`, `warn`, `info`, `debug`, `trace`, the
//! reference's `WARNING` and `FATAL`, or an `EnvFilter` directive). Records are formatted where they happen and handed to the logger
//! through a weak threadsafe function (it never keeps Node running); the logger runs on the
//! JavaScript thread of the environment that set it (the last `setLogger` call wins).
//! Spans go to the process's OTLP exporter when one is configured (`flushTraces`).

use std::sync::Mutex;

use kite::logging::{level_name, parse_level, LevelGate, Record};
use kite::telemetry::Telemetry;
use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
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

/// What the JavaScript logger gets (nothing without a logger).
static GATE: LevelGate = LevelGate::new(None);
static LOGGER: Mutex<Option<Logger>> = Mutex::new(None);

/// Hands records to the JavaScript logger.
struct ToJs;

impl<S: Subscriber> Layer<S> for ToJs {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let logger = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
        let Some(logger) = logger.as_ref() else {
            return;
        };
        let r = Record::from_event(event);
        let record = LogRecord {
            level: level_name(r.level).to_string(),
            target: r.target,
            message: r.message,
        };
        let _ = logger.call(record, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// Lets through the events at the JavaScript logger's level (none without a logger).
struct JsLevel;

impl<S> Filter<S> for JsLevel {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        GATE.allows_event(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if GATE.allows_event(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(GATE.filter())
    }
}

/// Installs the process's subscriber (once): stderr per `KITE_LOG_LEVEL`, plus the
/// JavaScript logger.
pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The reference's level names (`WARNING`, `FATAL`, any case: `kite_log_level`),
        // `trace`, or an `EnvFilter` directive (`kite=debug,warn`); unset: a layer that
        // takes nothing (a missing layer would enable every span for the layers after it).
        let level = match std::env::var("KITE_LOG_LEVEL") {
            Ok(v) if v.contains(['=', ',']) || v.eq_ignore_ascii_case("trace") => v.to_lowercase(),
            _ => kite::server::kite_log_level().unwrap_or("off").to_string(),
        };
        let stderr = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::env::var_os("KITE_LOG_NOCOLOR").is_none())
            .with_filter(tracing_subscriber::EnvFilter::new(level));
        // Spans go to the process's OTLP exporter, when `OTEL_EXPORTER_OTLP_ENDPOINT` is
        // set (kites with `tracing: true` make them).
        let (spans, failed) = Telemetry::process_layer("kite-rs-node");
        let _ = tracing_subscriber::registry()
            .with(stderr)
            .with(ToJs.with_filter(JsLevel))
            .with(spans)
            .try_init();
        if let Some(e) = failed {
            tracing::error!("traces are not exported: {e}");
        }
    });
}

/// Sends the spans this process has ended to the OTLP receiver and waits for its answer
/// (call it before exiting); false when no exporter is configured
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` unset). Kites made with `tracing: true` make the spans.
#[napi(js_name = "flushTraces")]
pub fn flush_traces(env: &Env) -> napi::Result<bool> {
    Telemetry::flush_process().map_err(|e| errors::throw_error(env, &e))
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
    let name = level.as_deref().unwrap_or("info");
    let Some(level) = parse_level(name) else {
        return Err(errors::throw_config(
            env,
            format!("unknown log level {name:?} (error, warn, info, debug or trace)"),
        ));
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
    GATE.set(on.then_some(level));
    // Callsites first seen while the gate was closed answered `never`; ask them again even
    // when the level did not change.
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}
