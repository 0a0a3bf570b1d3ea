//! The crate's `tracing` events as plain [`Record`]s for a sink (what the Python and Node
//! bindings hand to Python `logging` or a JavaScript logger), behind a [`LevelGate`] that the
//! sink's owner can change at any time.
//!
//! [`Forwarder`] is a whole [`Subscriber`] for a process that only forwards (spans are never
//! enabled, so they cost nothing); [`Forwarder::into_layer`] makes it one layer of a
//! subscriber with others (the OpenTelemetry layer of [`crate::telemetry`]); a process that
//! also formats logs itself builds its own layer from [`Record::from_event`] and [`LevelGate`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter, Layer};

/// One log event: its level, target (the Rust module, e.g. `kite::client`) and message
/// followed by its other fields as ` key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The event's level.
    pub level: Level,
    /// Where it comes from, e.g. `kite::server::kite`.
    pub target: String,
    /// The message, then ` key=value` for every other field.
    pub message: String,
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

impl Record {
    /// The record of `event`.
    pub fn from_event(event: &Event<'_>) -> Record {
        let mut fields = Fields::default();
        event.record(&mut fields);
        fields.message.push_str(&fields.rest);
        let meta = event.metadata();
        Record {
            level: *meta.level(),
            target: meta.target().to_string(),
            message: fields.message,
        }
    }
}

/// The lower-case name of a level: `error`, `warn`, `info`, `debug` or `trace`.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        _ => "trace",
    }
}

/// The level named `name`: `error`, `warn`, `info`, `debug` or `trace`.
pub fn parse_level(name: &str) -> Option<Level> {
    Some(match name {
        "error" => Level::ERROR,
        "warn" => Level::WARN,
        "info" => Level::INFO,
        "debug" => Level::DEBUG,
        "trace" => Level::TRACE,
        _ => return None,
    })
}

fn rank(level: Level) -> u8 {
    match level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        _ => 5,
    }
}

/// The most verbose level a sink wants (or none), changeable at any time; a change rebuilds
/// `tracing`'s callsite cache so that disabled events cost nothing again.
#[derive(Debug)]
pub struct LevelGate(AtomicU8);

impl LevelGate {
    /// A gate letting through `level` and above (`None`: nothing).
    pub const fn new(level: Option<Level>) -> LevelGate {
        LevelGate(AtomicU8::new(match level {
            None => 0,
            Some(Level::ERROR) => 1,
            Some(Level::WARN) => 2,
            Some(Level::INFO) => 3,
            Some(Level::DEBUG) => 4,
            Some(_) => 5,
        }))
    }

    /// Lets through `level` and above from now on (`None`: nothing).
    pub fn set(&self, level: Option<Level>) {
        let r = level.map_or(0, rank);
        if self.0.swap(r, Ordering::Relaxed) != r {
            tracing::callsite::rebuild_interest_cache();
        }
    }

    /// Whether events at `level` get through.
    pub fn allows(&self, level: Level) -> bool {
        rank(level) <= self.0.load(Ordering::Relaxed)
    }

    /// Whether an event (not a span) with `meta` gets through.
    pub fn allows_event(&self, meta: &Metadata<'_>) -> bool {
        meta.is_event() && self.allows(*meta.level())
    }

    /// The gate as a `tracing` level filter.
    pub fn filter(&self) -> LevelFilter {
        match self.0.load(Ordering::Relaxed) {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        }
    }
}

/// A [`Subscriber`] that hands every event the gate lets through to `sink` as a [`Record`],
/// on the thread that logged it (a sink that must not block queues the record).
pub struct Forwarder<F> {
    gate: &'static LevelGate,
    sink: F,
}

impl<F: Fn(Record) + Send + Sync + 'static> Forwarder<F> {
    /// Forwards to `sink` what `gate` lets through.
    pub fn new(gate: &'static LevelGate, sink: F) -> Self {
        Forwarder { gate, sink }
    }
}

impl<F: Fn(Record) + Send + Sync + 'static> Subscriber for Forwarder<F> {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // `sometimes`: the gate may change after the callsite registered.
        if meta.is_event() {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.gate.allows_event(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.gate.filter())
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &SpanRecord<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        (self.sink)(Record::from_event(event));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// A per-layer filter letting through the events its gate allows (never spans).
#[derive(Debug, Clone, Copy)]
pub struct Gated(&'static LevelGate);

impl<S> Filter<S> for Gated {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.0.allows_event(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // `sometimes`: the gate may change after the callsite registered.
        if meta.is_event() {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.0.filter())
    }
}

impl<F: Fn(Record) + Send + Sync + 'static> Forwarder<F> {
    /// The forwarder as one layer of a subscriber, filtered by its gate (the other layers
    /// see spans and events as their own filters decide).
    pub fn into_layer<S>(self) -> Filtered<Self, Gated, S>
    where
        S: Subscriber,
    {
        let gate = Gated(self.gate);
        Layer::with_filter(self, gate)
    }
}

impl<S: Subscriber, F: Fn(Record) + Send + Sync + 'static> Layer<S> for Forwarder<F> {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        (self.sink)(Record::from_event(event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn records_carry_message_fields_and_level() {
        static GATE: LevelGate = LevelGate::new(Some(Level::INFO));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let f = Forwarder::new(&GATE, move |r| sink.lock().unwrap().push(r));
        tracing::subscriber::with_default(f, || {
            tracing::info!(url = "http://h/kite", n = 3, "registered");
            tracing::debug!("too verbose");
            GATE.set(Some(Level::DEBUG));
            tracing::debug!("now shown");
            GATE.set(None);
            tracing::error!("gate closed");
        });
        let seen = seen.lock().unwrap();
        let texts: Vec<_> = seen.iter().map(|r| (r.level, r.message.as_str())).collect();
        assert_eq!(
            texts,
            [
                (Level::INFO, "registered url=http://h/kite n=3"),
                (Level::DEBUG, "now shown")
            ]
        );
        assert_eq!(seen[0].target, module_path!());
    }

    #[test]
    fn as_a_layer_it_forwards_events_only() {
        use tracing_subscriber::layer::SubscriberExt;
        static GATE: LevelGate = LevelGate::new(Some(Level::INFO));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let layer = Forwarder::new(&GATE, move |r: Record| sink.lock().unwrap().push(r.message));
        let subscriber = tracing_subscriber::registry().with(layer.into_layer());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("not forwarded");
            let _in = span.enter();
            tracing::info!("shown");
            tracing::debug!("too verbose");
        });
        assert_eq!(*seen.lock().unwrap(), ["shown"]);
    }

    #[test]
    fn level_names_round_trip() {
        for l in [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ] {
            assert_eq!(parse_level(level_name(l)), Some(l));
        }
        assert_eq!(parse_level("loud"), None);
    }
}
