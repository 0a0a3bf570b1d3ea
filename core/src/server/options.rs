//! Configuration overrides as the bindings take them: a JSON object of optional settings
//! (Python keyword arguments, a Node options object) applied onto a [`Config`] that came
//! from the defaults, `kite.key` and the `KITE_*` environment.
//!
//! The names are the Node spelling (`kontrolUrl`); every multi-word name also accepts the
//! Python spelling (`kontrol_url`). Times are numbers in the binding's unit ([`TimeUnit`]):
//! Python passes seconds, Node milliseconds. A bad value fails with [`Error::Config`] naming
//! the option, never later.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Config, MethodHandling};
use crate::Error;

/// The unit of the time options (`timeout`, `handshakeTimeout`, `verifyTtl`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeUnit {
    /// Milliseconds (Node). Default.
    #[default]
    Milliseconds,
    /// Seconds (Python).
    Seconds,
}

impl TimeUnit {
    fn name(self) -> &'static str {
        match self {
            TimeUnit::Milliseconds => "milliseconds",
            TimeUnit::Seconds => "seconds",
        }
    }

    /// `n` of this unit as a duration, or an error naming `option`.
    pub(crate) fn duration(self, option: &str, n: f64) -> Result<Duration, Error> {
        let secs = match self {
            TimeUnit::Milliseconds => n / 1000.0,
            TimeUnit::Seconds => n,
        };
        Duration::try_from_secs_f64(secs).map_err(|_| {
            Error::Config(format!(
                "{option} must be a non-negative number of {}, not {n}",
                self.name()
            ))
        })
    }
}

/// Certificate and key files (PEM) to serve HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain file.
    pub cert: PathBuf,
    /// Private key file.
    pub key: PathBuf,
}

/// Overrides of a kite's [`Config`]; every field left out keeps the configured value.
///
/// ```
/// use kite::server::{Options, TimeUnit};
/// let o = Options::from_json(serde_json::json!({"username": "alice", "timeout": 2.5}), TimeUnit::Seconds)?;
/// let mut c = kite::Config::default();
/// o.apply(&mut c)?;
/// assert_eq!((c.username.as_str(), c.timeout.as_millis()), ("alice", 2500));
/// # Ok::<(), kite::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Options {
    /// Owner. Default: `KITE_USERNAME`, the kite key's subject, or `unknown`.
    pub username: Option<String>,
    /// Environment. Default: `KITE_ENVIRONMENT` or `unknown`.
    pub environment: Option<String>,
    /// Region. Default: `KITE_REGION` or `unknown`.
    pub region: Option<String>,
    /// Kite id. Default: a fresh random UUID per kite.
    pub id: Option<String>,
    /// Host name reported in the identity. Default: the machine's.
    pub hostname: Option<String>,
    /// Address to listen on. Default: `KITE_IP` or `0.0.0.0`.
    pub ip: Option<String>,
    /// Port to listen on (0: any free one). Default: `KITE_PORT` or 0.
    pub port: Option<u64>,
    /// The kite key (JWT) sent as `kiteKey` authentication. Default: read from `kite.key`.
    #[serde(alias = "kite_key")]
    pub kite_key: Option<String>,
    /// Kontrol's URL. Default: `KITE_KONTROL_URL` or the kite key's.
    #[serde(alias = "kontrol_url")]
    pub kontrol_url: Option<String>,
    /// Kontrol's public key (PEM), trusted for kite keys and tokens. Default: the kite key's.
    #[serde(alias = "kontrol_key")]
    pub kontrol_key: Option<String>,
    /// Kontrol's username, the expected issuer of tokens. Default: the kite key's.
    #[serde(alias = "kontrol_user")]
    pub kontrol_user: Option<String>,
    /// Serve every method without authentication. Default: false.
    #[serde(alias = "disable_authentication")]
    pub disable_authentication: Option<bool>,
    /// Handle the requests of one connection one after another. Default: false.
    #[serde(alias = "disable_concurrency")]
    pub disable_concurrency: Option<bool>,
    /// Transport of clients: `auto` (websocket, then XHR polling), `WebSocket` or
    /// `XHRPolling`. Default: `KITE_TRANSPORT` or `auto`.
    pub transport: Option<String>,
    /// Call timeout. Default: `KITE_TIMEOUT` or 15 s.
    pub timeout: Option<f64>,
    /// Websocket/HTTP handshake timeout. Default: 15 s.
    #[serde(alias = "handshake_timeout")]
    pub handshake_timeout: Option<f64>,
    /// How long a Kontrol key accepted by a verify function stays trusted. Default: 5 min.
    #[serde(alias = "verify_ttl")]
    pub verify_ttl: Option<f64>,
    /// PEM certificate and key files: serve HTTPS. Default: none.
    pub tls: Option<TlsFiles>,
    /// The certificate file alone (with `tlsKey`; instead of `tls`).
    #[serde(alias = "tls_cert")]
    pub tls_cert: Option<PathBuf>,
    /// The key file alone (with `tlsCert`; instead of `tls`).
    #[serde(alias = "tls_key")]
    pub tls_key: Option<PathBuf>,
    /// Relay WebRTC signalling between the kites connected to this one (`kite.handleWebRTC`,
    /// [`Config::use_webrtc`]). Default: `KITE_USE_WEBRTC` or false.
    #[serde(rename = "useWebRTC", alias = "use_webrtc", alias = "useWebrtc")]
    pub use_webrtc: Option<bool>,
    /// Serve Prometheus metrics at `/metrics` (see [`crate::metrics`]). Default:
    /// `KITE_METRICS` or off.
    pub metrics: Option<bool>,
    /// Carry W3C trace context in calls and make `kite.call`/`kite.request` spans (see
    /// [`crate::telemetry`]). Default: `KITE_TRACING`, or on when
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub tracing: Option<bool>,
    /// Default handling mode of methods: `method`, `first` or `latest` (see
    /// [`MethodHandling`]); not part of [`Config`], the binding sets it on the kite.
    /// Default: `method`.
    #[serde(alias = "method_handling")]
    pub method_handling: Option<String>,
    /// How long closing the kite lets calls in flight finish. Default:
    /// `KITE_DRAIN_TIMEOUT` or 10 s.
    #[serde(alias = "drain_timeout")]
    pub drain_timeout: Option<f64>,
    /// Time a client has to send a whole HTTP request head. Default:
    /// `KITE_HEADER_READ_TIMEOUT` or 10 s.
    #[serde(alias = "header_read_timeout")]
    pub header_read_timeout: Option<f64>,
    /// Time allowed to receive a whole `xhr_send` body. Default: 10 s.
    #[serde(alias = "body_read_timeout")]
    pub body_read_timeout: Option<f64>,
    /// Connections served at once. Default: `KITE_MAX_CONNECTIONS` or 20,000.
    #[serde(alias = "max_connections")]
    pub max_connections: Option<usize>,
    /// Incoming calls of one connection in flight at once (reading pauses beyond it).
    /// Default: `KITE_MAX_CALLS_IN_FLIGHT` or 128.
    #[serde(alias = "max_calls_in_flight")]
    pub max_calls_in_flight: Option<usize>,
    /// Bytes of incoming calls of one connection in flight at once (reading pauses beyond
    /// it). Default: `KITE_MAX_BYTES_IN_FLIGHT` or 8 MiB.
    #[serde(alias = "max_bytes_in_flight")]
    pub max_bytes_in_flight: Option<usize>,
    /// Entries in one connection's callback table. Default: `KITE_MAX_CALLBACKS` or 10,000.
    #[serde(alias = "max_callbacks")]
    pub max_callbacks: Option<usize>,
    /// Largest message accepted from a peer, in bytes. Default: 16 MiB.
    #[serde(alias = "max_message_size")]
    pub max_message_size: Option<usize>,
    /// HTTP-transport (XHR) sessions open at once. Default: `KITE_MAX_SESSIONS` or 10,000.
    #[serde(alias = "max_sessions")]
    pub max_sessions: Option<usize>,
    /// HTTP-transport sessions open at once per client address. Default:
    /// `KITE_MAX_SESSIONS_PER_CLIENT` or 100.
    #[serde(alias = "max_sessions_per_client")]
    pub max_sessions_per_client: Option<usize>,
    /// Proxies (IP addresses) whose `X-Forwarded-For` names the client. Default:
    /// `KITE_TRUSTED_PROXIES` or none.
    #[serde(alias = "trusted_proxies")]
    pub trusted_proxies: Option<Vec<String>>,
    /// The unit of the time options. Default: milliseconds.
    #[serde(skip)]
    pub time_unit: TimeUnit,
}

/// The documented name of an option (its Node spelling) for an accepted key.
fn canonical(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl Options {
    /// The options of a JSON object (`null` values are left out), times in `unit`. An
    /// unknown name or a value of the wrong type is an [`Error::Config`] naming the option.
    pub fn from_json(value: Value, unit: TimeUnit) -> Result<Options, Error> {
        let mut options: Options = from_json_object(value)?;
        options.time_unit = unit;
        Ok(options)
    }

    /// Sets every given option on `config`; fails (leaving `config` partly set) on a bad
    /// value: a port above 65535, an unknown transport, a negative time, half a TLS pair.
    pub fn apply(self, config: &mut Config) -> Result<(), Error> {
        if let Some(k) = &self.kite_key {
            config.use_kite_key(k)?;
        }
        self.apply_times(config)?;
        self.apply_limits(config)?;
        let strings = [
            (&mut config.username, self.username),
            (&mut config.environment, self.environment),
            (&mut config.region, self.region),
            (&mut config.id, self.id),
            (&mut config.hostname, self.hostname),
            (&mut config.ip, self.ip),
            (&mut config.kontrol_url, self.kontrol_url),
            (&mut config.kontrol_key, self.kontrol_key),
            (&mut config.kontrol_user, self.kontrol_user),
        ];
        for (field, v) in strings {
            if let Some(v) = v {
                *field = v;
            }
        }
        if let Some(p) = self.port {
            config.port = u16::try_from(p)
                .map_err(|_| Error::Config(format!("port {p} is out of range (0 to 65535)")))?;
        }
        if let Some(d) = self.disable_authentication {
            config.disable_authentication = d;
        }
        if let Some(d) = self.disable_concurrency {
            config.disable_concurrency = d;
        }
        if let Some(w) = self.use_webrtc {
            config.use_webrtc = w;
        }
        if let Some(m) = self.metrics {
            config.metrics = m;
        }
        if let Some(t) = self.tracing {
            config.tracing = t;
        }
        if let Some(t) = &self.transport {
            config.transport = t
                .parse()
                .map_err(|e: String| Error::Config(format!("transport: {e}")))?;
        }
        config.tls = match (self.tls, self.tls_cert, self.tls_key) {
            (Some(t), None, None) => Some((t.cert, t.key)),
            (None, Some(cert), Some(key)) => Some((cert, key)),
            (None, None, None) => config.tls.take(),
            (Some(_), _, _) => {
                return Err(Error::Config(
                    "give tls, or tlsCert and tlsKey, not both".into(),
                ))
            }
            _ => return Err(Error::Config("tlsCert and tlsKey go together".into())),
        };
        Ok(())
    }

    /// The time options, in [`Options::time_unit`].
    fn apply_times(&self, config: &mut Config) -> Result<(), Error> {
        let unit = self.time_unit;
        let times = [
            (&mut config.timeout, self.timeout, "timeout"),
            (
                &mut config.handshake_timeout,
                self.handshake_timeout,
                "handshakeTimeout",
            ),
            (&mut config.verify_ttl, self.verify_ttl, "verifyTtl"),
            (
                &mut config.drain_timeout,
                self.drain_timeout,
                "drainTimeout",
            ),
            (
                &mut config.header_read_timeout,
                self.header_read_timeout,
                "headerReadTimeout",
            ),
            (
                &mut config.sockjs.body_read_timeout,
                self.body_read_timeout,
                "bodyReadTimeout",
            ),
        ];
        for (field, v, name) in times {
            if let Some(n) = v {
                *field = unit.duration(name, n)?;
            }
        }
        Ok(())
    }

    /// The limits per peer (the README's "Limits per peer").
    fn apply_limits(&self, config: &mut Config) -> Result<(), Error> {
        let limits = [
            (&mut config.max_connections, self.max_connections),
            (&mut config.max_calls_in_flight, self.max_calls_in_flight),
            (&mut config.max_bytes_in_flight, self.max_bytes_in_flight),
            (&mut config.max_callbacks, self.max_callbacks),
            (&mut config.sockjs.max_message_size, self.max_message_size),
            (&mut config.sockjs.max_sessions, self.max_sessions),
            (
                &mut config.sockjs.max_sessions_per_client,
                self.max_sessions_per_client,
            ),
        ];
        for (field, v) in limits {
            if let Some(n) = v {
                *field = n;
            }
        }
        if let Some(list) = &self.trusted_proxies {
            config.sockjs.trusted_proxies = list
                .iter()
                .map(|s| {
                    s.trim().parse().map_err(|_| {
                        Error::Config(format!("trustedProxies: {s:?} is not an IP address"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// The method handling mode given, parsed.
    pub fn method_handling(&self) -> Result<Option<MethodHandling>, Error> {
        self.method_handling.as_deref().map(str::parse).transpose()
    }
}

/// `map` as options of type `T`; an unknown name or a value of the wrong type is an
/// [`Error::Config`] naming the option (serde's own error names no field, so the first
/// option that fails on its own is found).
pub(crate) fn from_json_object<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    let map = match value {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        other => {
            return Err(Error::Config(format!(
                "options must be an object, not {other}"
            )))
        }
    };
    let whole = match serde_json::from_value::<T>(Value::Object(map.clone())) {
        Ok(o) => return Ok(o),
        Err(e) => e,
    };
    for (key, v) in map {
        let one = Value::Object(Map::from_iter([(key.clone(), v)]));
        if let Err(e) = serde_json::from_value::<T>(one) {
            let text = e.to_string();
            return Err(Error::Config(if text.starts_with("unknown field") {
                format!("unknown option {key:?}")
            } else {
                format!("option {}: {text}", canonical(&key))
            }));
        }
    }
    Err(Error::Config(format!("bad options: {whole}")))
}

impl FromStr for MethodHandling {
    type Err = Error;

    /// `method`, `first` or `latest` (or the reference's `ReturnMethod`, `ReturnFirst`,
    /// `ReturnLatest`).
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "method" | "ReturnMethod" => MethodHandling::ReturnMethod,
            "first" | "ReturnFirst" => MethodHandling::ReturnFirst,
            "latest" | "ReturnLatest" => MethodHandling::ReturnLatest,
            other => {
                return Err(Error::Config(format!(
                    "unknown method handling {other:?} (expected method, first or latest)"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn applied(v: Value, unit: TimeUnit) -> Result<Config, Error> {
        let mut c = Config::default();
        Options::from_json(v, unit)?.apply(&mut c)?;
        Ok(c)
    }

    fn message(r: Result<Config, Error>) -> String {
        match r {
            Err(Error::Config(m)) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn both_spellings_and_units() {
        let node = applied(
            json!({"kontrolUrl": "http://k/kite", "handshakeTimeout": 1500, "port": 80}),
            TimeUnit::Milliseconds,
        )
        .unwrap();
        let python = applied(
            json!({"kontrol_url": "http://k/kite", "handshake_timeout": 1.5, "port": 80}),
            TimeUnit::Seconds,
        )
        .unwrap();
        for c in [&node, &python] {
            assert_eq!(c.kontrol_url, "http://k/kite");
            assert_eq!(c.handshake_timeout, Duration::from_millis(1500));
            assert_eq!(c.port, 80);
        }
    }

    #[test]
    fn use_webrtc_in_both_spellings() {
        assert!(!Config::default().use_webrtc);
        let node = applied(json!({"useWebRTC": true}), TimeUnit::Milliseconds).unwrap();
        let python = applied(json!({"use_webrtc": true}), TimeUnit::Seconds).unwrap();
        assert!(node.use_webrtc && python.use_webrtc);
        let e = message(applied(json!({"useWebRTC": "yes"}), TimeUnit::Seconds));
        assert!(e.contains("useWebRTC") || e.contains("use_webrtc"), "{e}");
    }

    #[test]
    fn metrics_switch() {
        let on = applied(json!({"metrics": true}), TimeUnit::Seconds).unwrap();
        assert!(on.metrics);
        let off = applied(json!({}), TimeUnit::Seconds).unwrap();
        assert!(!off.metrics);
        assert!(message(applied(json!({"metrics": "yes"}), TimeUnit::Seconds)).contains("metrics"));
    }

    #[test]
    fn tracing_switch() {
        let on = applied(json!({"tracing": true}), TimeUnit::Milliseconds).unwrap();
        assert!(on.tracing);
        let off = applied(json!({"tracing": false}), TimeUnit::Milliseconds).unwrap();
        assert!(!off.tracing);
        assert!(message(applied(json!({"tracing": 1}), TimeUnit::Seconds)).contains("tracing"));
    }

    #[test]
    fn nulls_and_absent_options_keep_the_config() {
        let c = applied(
            json!({"username": null, "timeout": null}),
            TimeUnit::Seconds,
        )
        .unwrap();
        let d = Config::default();
        assert_eq!((c.username, c.timeout), (d.username, d.timeout));
        assert!(applied(Value::Null, TimeUnit::Seconds).is_ok());
    }

    #[test]
    fn bad_values_name_the_option() {
        let ms = TimeUnit::Milliseconds;
        assert!(message(applied(json!({"port": 70000}), ms)).contains("70000"));
        assert!(message(applied(json!({"transport": "pigeon"}), ms)).contains("transport"));
        assert!(message(applied(json!({"timeout": -1}), TimeUnit::Seconds)).contains("seconds"));
        assert!(message(applied(json!({"verify_ttl": "soon"}), ms)).contains("verifyTtl"));
        assert!(message(applied(json!({"colour": "red"}), ms)).contains("\"colour\""));
        assert!(message(applied(json!({"tls_cert": "c.pem"}), ms)).contains("together"));
        assert!(message(applied(json!([1]), ms)).contains("object"));
        let both = json!({"tls": {"cert": "c", "key": "k"}, "tlsCert": "c", "tlsKey": "k"});
        assert!(message(applied(both, ms)).contains("not both"));
    }

    #[test]
    fn limits_and_their_timeouts() {
        let c = applied(
            json!({"max_calls_in_flight": 4, "maxCallbacks": 9, "maxSessions": 2,
                   "max_sessions_per_client": 1, "maxConnections": 50, "maxBytesInFlight": 1024,
                   "maxMessageSize": 4096, "trustedProxies": ["10.0.0.1", " ::1 "],
                   "headerReadTimeout": 2, "body_read_timeout": 3, "drainTimeout": 0.5}),
            TimeUnit::Seconds,
        )
        .unwrap();
        assert_eq!(
            (c.max_calls_in_flight, c.max_callbacks, c.max_connections),
            (4, 9, 50)
        );
        assert_eq!(
            (c.max_bytes_in_flight, c.sockjs.max_message_size),
            (1024, 4096)
        );
        assert_eq!(
            (c.sockjs.max_sessions, c.sockjs.max_sessions_per_client),
            (2, 1)
        );
        let proxies: Vec<std::net::IpAddr> =
            vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(c.sockjs.trusted_proxies, proxies);
        assert_eq!(c.header_read_timeout, Duration::from_secs(2));
        assert_eq!(c.sockjs.body_read_timeout, Duration::from_secs(3));
        assert_eq!(c.drain_timeout, Duration::from_millis(500));
        let ms = TimeUnit::Milliseconds;
        assert!(
            message(applied(json!({"trustedProxies": ["proxy.local"]}), ms))
                .contains("trustedProxies: \"proxy.local\" is not an IP address")
        );
        assert!(message(applied(json!({"maxCallbacks": -1}), ms)).contains("maxCallbacks"));
    }

    #[test]
    fn tls_in_either_form() {
        let ms = TimeUnit::Milliseconds;
        let a = applied(json!({"tls": {"cert": "c.pem", "key": "k.pem"}}), ms).unwrap();
        let b = applied(json!({"tls_cert": "c.pem", "tls_key": "k.pem"}), ms).unwrap();
        assert_eq!(a.tls, Some(("c.pem".into(), "k.pem".into())));
        assert_eq!(a.tls, b.tls);
    }

    #[test]
    fn method_handling_parses() {
        let o = Options::from_json(json!({"methodHandling": "latest"}), TimeUnit::Seconds);
        assert_eq!(
            o.unwrap().method_handling().unwrap(),
            Some(MethodHandling::ReturnLatest)
        );
        let o = Options::from_json(json!({"methodHandling": "best"}), TimeUnit::Seconds);
        assert!(o.unwrap().method_handling().is_err());
    }
}
