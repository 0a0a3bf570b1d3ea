//! Prometheus metrics of one kite ([`Metrics`]), served at `/metrics` beside `/kite` when
//! [`Config::metrics`](crate::Config::metrics) (`KITE_METRICS=1`) is on. Each kite has a
//! registry of its own (no global state).
//!
//! Labels stay bounded: method labels are registered methods only (any other name counts
//! as `other`), error kinds are the protocol's (a custom kind counts as `other`), and no
//! kite id, username or address is ever a label value.
//!
//! The hot path only touches handles created in advance (a method's counters and
//! histogram are made when it is registered): an atomic add per counter and one short
//! lock per histogram observation.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::auth::AuthError;
use crate::protocol::{ErrorKind, KiteError};

/// The content type served at `/metrics`: the OpenMetrics text format, which Prometheus
/// scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The method label of calls to names that are not registered.
pub const OTHER: &str = "other";

/// Latency buckets in seconds, 100 µs to 10 s (what gRPC and etcd operators chart).
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A latency histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    method: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    transport: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

type Histograms = Family<MethodLabel, Histogram, fn() -> Histogram>;

/// A limit of the kite that was reached (the `limit` label of `kite_limits_reached_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A method's throttle refused a call (`requestLimitError`).
    Throttle,
    /// A connection's callback table was full.
    Callbacks,
    /// Reading a connection paused (once per pause): `max_calls_in_flight` calls in flight.
    CallsInFlight,
    /// Reading a connection paused (once per pause): `max_bytes_in_flight` bytes in flight.
    BytesInFlight,
    /// A SockJS session was refused (`max_sessions`, `max_sessions_per_client`).
    Sessions,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Limit::Throttle => "throttle",
            Limit::Callbacks => "callbacks",
            Limit::CallsInFlight => "calls_in_flight",
            Limit::BytesInFlight => "bytes_in_flight",
            Limit::Sessions => "sessions",
        }
    }
}

/// Why an incoming call's credentials were refused (the `reason` label of
/// `kite_auth_refusals_total`).
#[derive(Debug, Clone, Copy)]
pub enum AuthRefusal<'a> {
    /// The call carried no authentication.
    Missing,
    /// Its authentication type has no authenticator.
    UnknownType,
    /// The authenticator refused it.
    Refused(&'a AuthError),
}

impl AuthRefusal<'_> {
    fn label(self) -> &'static str {
        let e = match self {
            AuthRefusal::Missing => return "missing",
            AuthRefusal::UnknownType => return "unknown_type",
            AuthRefusal::Refused(e) => e,
        };
        match e {
            AuthError::Expired { .. } | AuthError::TokenSignature => "expired",
            AuthError::NotValidYet | AuthError::UsedBeforeIssued => "not_valid_yet",
            AuthError::InvalidSignature | AuthError::InvalidSigningMethod { .. } => {
                "invalid_signature"
            }
            AuthError::UntrustedIssuer(_)
            | AuthError::KeyNotTrusted
            | AuthError::CachedUntrusted
            | AuthError::NoKontrolKey
            | AuthError::VerifyFunc(_) => "untrusted_key",
            AuthError::Audience(_) | AuthError::NoAudience => "audience",
            AuthError::Malformed(_) | AuthError::NoUsername => "malformed",
            AuthError::Rejected(_) => "rejected",
            _ => "other",
        }
    }
}

/// The call counters and latency histogram of one method (or of `other`), created when
/// the method is registered.
#[derive(Debug, Clone)]
pub struct MethodMetrics {
    name: String,
    ok: Counter,
    failed: Counter,
    duration: Histogram,
    errors: Family<ErrorLabels, Counter>,
}

impl MethodMetrics {
    /// Counts one call and its latency; an error also by its kind.
    pub fn record(&self, outcome: Result<(), &KiteError>, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        match outcome {
            Ok(()) => {
                self.ok.inc();
            }
            Err(e) => {
                self.failed.inc();
                let kind = match &e.kind {
                    ErrorKind::Other(_) => OTHER,
                    k => k.as_str(),
                };
                self.errors
                    .get_or_create(&ErrorLabels {
                        method: self.name.clone(),
                        kind: kind.to_string(),
                    })
                    .inc();
            }
        }
    }
}

/// What the peer layer counts: connections, callbacks pending, bytes, limits.
#[derive(Debug, Clone)]
pub struct PeerMetrics {
    connections_open: Family<ConnectionLabels, Gauge>,
    connections: Family<ConnectionLabels, Counter>,
    /// Entries of every connection's callback table (functions passed, calls awaited).
    pub callbacks_pending: Gauge,
    /// Bytes of dnode messages received.
    pub received_bytes: Counter,
    /// Bytes of dnode messages sent.
    pub sent_bytes: Counter,
    limits: Family<LimitLabel, Counter>,
}

impl PeerMetrics {
    /// A connection over `transport` opened; the returned guard counts it closed when
    /// dropped.
    pub fn connection_opened(&self, transport: &'static str, dialed: bool) -> OpenConnection {
        let labels = ConnectionLabels {
            transport,
            direction: if dialed { "dialed" } else { "accepted" },
        };
        self.connections.get_or_create(&labels).inc();
        let open = self.connections_open.get_or_create(&labels).clone();
        open.inc();
        OpenConnection(open)
    }

    /// Counts a limit reached.
    pub fn limit_reached(&self, limit: Limit) {
        self.limits
            .get_or_create(&LimitLabel {
                limit: limit.label(),
            })
            .inc();
    }
}

/// An open connection, counted in `kite_connections_open` until dropped.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What the SockJS server counts: sessions by transport, and refused ones.
#[derive(Debug, Clone)]
pub struct SockJsMetrics {
    sessions_open: Family<TransportLabel, Gauge>,
    sessions: Family<TransportLabel, Counter>,
    peer: PeerMetrics,
}

impl SockJsMetrics {
    /// A session over `transport` was created; it is counted open until the guard drops.
    pub fn session_opened(&self, transport: &'static str) -> OpenConnection {
        let labels = TransportLabel { transport };
        self.sessions.get_or_create(&labels).inc();
        let open = self.sessions_open.get_or_create(&labels).clone();
        open.inc();
        OpenConnection(open)
    }

    /// A session was refused by the session limits.
    pub fn session_refused(&self) {
        self.peer.limit_reached(Limit::Sessions);
    }
}

/// The metrics of one kite and the registry they are served from. Higher layers (Kontrol)
/// and users add their own to [`Metrics::registry`].
pub struct Metrics {
    registry: Mutex<Registry>,
    calls: Family<CallLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Histograms,
    other: Arc<MethodMetrics>,
    auth_refusals: Family<ReasonLabel, Counter>,
    peer: PeerMetrics,
    sockjs: SockJsMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with the kite metrics registered (all under the `kite_` prefix).
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations: Histograms = Family::new_with_constructor(latency_histogram);
        let auth_refusals = Family::<ReasonLabel, Counter>::default();
        let peer = PeerMetrics {
            connections_open: Family::default(),
            connections: Family::default(),
            callbacks_pending: Gauge::default(),
            received_bytes: Counter::default(),
            sent_bytes: Counter::default(),
            limits: Family::default(),
        };
        let sockjs = SockJsMetrics {
            sessions_open: Family::default(),
            sessions: Family::default(),
            peer: peer.clone(),
        };
        let r = registry.sub_registry_with_prefix("kite");
        register_calls(r, &calls, &errors, &durations, &auth_refusals);
        register_peer(r, &peer, &sockjs);
        let other = Arc::new(method_metrics(&calls, &errors, &durations, OTHER));
        Metrics {
            registry: Mutex::new(registry),
            calls,
            errors,
            durations,
            other,
            auth_refusals,
            peer,
            sockjs,
        }
    }

    /// The handles of a registered method (created on first use, shared after).
    pub fn method(&self, name: &str) -> Arc<MethodMetrics> {
        Arc::new(method_metrics(
            &self.calls,
            &self.errors,
            &self.durations,
            name,
        ))
    }

    /// Calls of `method` served so far (answered or failed); 0 when it has none.
    pub fn calls(&self, method: &str) -> u64 {
        ["ok", "error"]
            .into_iter()
            .map(|outcome| {
                let labels = CallLabels {
                    method: method.to_string(),
                    outcome,
                };
                self.calls.get(&labels).map_or(0, |c| c.get())
            })
            .fold(0, u64::saturating_add)
    }

    /// The handles of calls to names that are not registered.
    pub fn other(&self) -> &Arc<MethodMetrics> {
        &self.other
    }

    /// Counts a refused credential.
    pub fn auth_refused(&self, why: AuthRefusal<'_>) {
        self.auth_refusals
            .get_or_create(&ReasonLabel {
                reason: why.label(),
            })
            .inc();
    }

    /// What the peer layer counts.
    pub fn peer(&self) -> &PeerMetrics {
        &self.peer
    }

    /// What the SockJS server counts.
    pub fn sockjs(&self) -> &SockJsMetrics {
        &self.sockjs
    }

    /// The registry, to add metrics of your own (keep their labels bounded).
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything in the Prometheus text format (ending with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }
}

/// Registers the call metrics (counters, errors, latency, refusals).
fn register_calls(
    r: &mut Registry,
    calls: &Family<CallLabels, Counter>,
    errors: &Family<ErrorLabels, Counter>,
    durations: &Histograms,
    auth_refusals: &Family<ReasonLabel, Counter>,
) {
    r.register(
        "calls",
        "Calls served, by method (registered methods; other names are `other`) and outcome (ok, error)",
        calls.clone(),
    );
    r.register(
        "call_errors",
        "Calls answered with an error, by method and error kind",
        errors.clone(),
    );
    r.register_with_unit(
        "call_duration",
        "Time to serve a call (authentication, throttle, handlers), by method",
        prometheus_client::registry::Unit::Seconds,
        durations.clone(),
    );
    r.register(
        "auth_refusals",
        "Incoming calls refused for their credentials, by reason",
        auth_refusals.clone(),
    );
}

/// Registers what the peer layer and the SockJS server count.
fn register_peer(r: &mut Registry, peer: &PeerMetrics, sockjs: &SockJsMetrics) {
    r.register(
        "connections_open",
        "Open dnode connections, by SockJS transport and direction (accepted, dialed)",
        peer.connections_open.clone(),
    );
    r.register(
        "connections",
        "dnode connections opened, by SockJS transport and direction",
        peer.connections.clone(),
    );
    r.register(
        "sockjs_sessions_open",
        "SockJS sessions held by the kite's server, by transport",
        sockjs.sessions_open.clone(),
    );
    r.register(
        "sockjs_sessions",
        "SockJS sessions created by the kite's server, by transport",
        sockjs.sessions.clone(),
    );
    r.register(
        "callbacks_pending",
        "Entries of the connections' callback tables: functions passed to peers and calls awaiting an answer",
        peer.callbacks_pending.clone(),
    );
    r.register_with_unit(
        "received",
        "Bytes of dnode messages received",
        prometheus_client::registry::Unit::Bytes,
        peer.received_bytes.clone(),
    );
    r.register_with_unit(
        "sent",
        "Bytes of dnode messages sent",
        prometheus_client::registry::Unit::Bytes,
        peer.sent_bytes.clone(),
    );
    r.register(
        "limits_reached",
        "Times a limit was reached (throttle, callbacks, calls_in_flight, bytes_in_flight, sessions)",
        peer.limits.clone(),
    );
}

fn method_metrics(
    calls: &Family<CallLabels, Counter>,
    errors: &Family<ErrorLabels, Counter>,
    durations: &Histograms,
    name: &str,
) -> MethodMetrics {
    let labels = |outcome| CallLabels {
        method: name.to_string(),
        outcome,
    };
    // One statement each: a family's read guard must be gone before the next
    // `get_or_create` of that family (which may take its write lock).
    let ok = calls.get_or_create(&labels("ok")).clone();
    let failed = calls.get_or_create(&labels("error")).clone();
    let duration = durations
        .get_or_create(&MethodLabel {
            method: name.to_string(),
        })
        .clone();
    MethodMetrics {
        name: name.to_string(),
        ok,
        failed,
        duration,
        errors: errors.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_labels_and_text_format() {
        let m = Metrics::new();
        let square = m.method("square");
        square.record(Ok(()), Duration::from_millis(2));
        square.record(
            Err(&KiteError::new(ErrorKind::Other("mine".into()), "x")),
            Duration::from_millis(1),
        );
        m.other()
            .record(Err(&KiteError::method_not_found("nope")), Duration::ZERO);
        m.auth_refused(AuthRefusal::Missing);
        m.peer().limit_reached(Limit::Throttle);
        let text = m.encode();
        assert!(text.contains(r#"kite_calls_total{method="square",outcome="ok"} 1"#));
        assert!(text.contains(r#"kite_call_errors_total{method="square",kind="other"} 1"#));
        assert!(text.contains(r#"kite_call_errors_total{method="other",kind="methodNotFound"} 1"#));
        assert!(text.contains(r#"kite_auth_refusals_total{reason="missing"} 1"#));
        assert!(text.contains(r#"kite_limits_reached_total{limit="throttle"} 1"#));
        assert!(!text.contains("nope"));
        assert!(text.ends_with("# EOF\n"));
    }
}
