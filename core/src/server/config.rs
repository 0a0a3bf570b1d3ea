//! Kite configuration: from code, from `KITE_*` environment variables and from `kite.key`.
//! Every default matches the Go reference.

use std::path::PathBuf;
use std::time::Duration;

use crate::sockjs::{ServerConfig, Transport};
use crate::Error;

/// Configuration of a kite (its identity, network, Kontrol and authentication settings).
#[derive(Debug, Clone)]
pub struct Config {
    /// Owner. Default: `unknown` (or the kite key's subject).
    pub username: String,
    /// Environment. Default: `unknown`.
    pub environment: String,
    /// Region. Default: `unknown`.
    pub region: String,
    /// Kite id. Default: empty — every [`Kite`](crate::Kite) then gets a fresh random UUID
    /// of its own (like the reference; a kite key's `jti` is not a kite id, so kites
    /// sharing a key stay distinct in Kontrol). Set it to keep an id across restarts.
    pub id: String,
    /// Host name reported in the kite's identity. Default: the machine's host name.
    pub hostname: String,
    /// IP to listen on. Default: `0.0.0.0`.
    pub ip: String,
    /// Port to listen on; 0 picks a free one. Default: 0.
    pub port: u16,
    /// The kite key (JWT) sent as `kiteKey` authentication. Default: read from `kite.key`.
    pub kite_key: String,
    /// Kontrol's URL. Default: from the kite key.
    pub kontrol_url: String,
    /// Where `kontrol_url` came from, as `(url, origin)` (`kite.key at PATH`,
    /// `KITE_KONTROL_URL`, a flag); dial errors name the origin while `kontrol_url` still
    /// equals `url`. Default: none.
    pub kontrol_url_origin: Option<(String, String)>,
    /// Kontrol's public key (PEM), trusted for kite keys and tokens. Default: from the kite key.
    pub kontrol_key: String,
    /// Kontrol's username, the expected issuer of tokens. Default: from the kite key.
    pub kontrol_user: String,
    /// Do not require authentication for any method. Default: false.
    pub disable_authentication: bool,
    /// Handle requests of one connection one after another. Default: false (concurrently).
    pub disable_concurrency: bool,
    /// Transport used when dialing. Default: auto (websocket, then XHR polling).
    pub transport: Transport,
    /// Call timeout. Default: 15 s.
    pub timeout: Duration,
    /// How long [`Kite::close`](crate::Kite::close) lets calls in flight finish before it
    /// closes the connections (`KITE_DRAIN_TIMEOUT`). Default: 10 s (beyond the reference,
    /// which closes at once).
    pub drain_timeout: Duration,
    /// How long a Kontrol key accepted by a verify function stays trusted. Default: 5 min.
    pub verify_ttl: Duration,
    /// Time allowed for a websocket/HTTP handshake. Default: 15 s.
    pub handshake_timeout: Duration,
    /// PEM certificate and key files; when set the kite serves HTTPS. Default: none.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A PEM file of CA certificates trusted when dialing `https://`/`wss://`, beside the
    /// system's roots (or `SSL_CERT_FILE`). Default: `KITE_TLS_CA_FILE`.
    pub tls_ca_file: Option<PathBuf>,
    /// Accept any certificate when dialing TLS — development only, logged as a warning.
    /// Default: `KITE_TLS_INSECURE_SKIP_VERIFY=1`.
    pub tls_insecure_skip_verify: bool,
    /// The URL this kite registers to Kontrol (what other kites dial). Default:
    /// `KITE_REGISTER_URL`, else [`Kite::register_url`](crate::Kite::register_url) works it
    /// out from the bound address.
    pub register_url: Option<String>,
    /// SockJS options of the `/kite` service (heartbeat and disconnect delay 10 s).
    pub sockjs: ServerConfig,
    /// Time a client has to send a complete HTTP request head. Default: 10 s.
    pub header_read_timeout: Duration,
    /// Connections served at once (websockets and HTTP); further clients wait in the
    /// listen backlog until one ends. Default: 20,000.
    pub max_connections: usize,
    /// Incoming calls of one connection being handled or answered at once; reading from
    /// that connection pauses while this many are in flight. Default: 128.
    pub max_calls_in_flight: usize,
    /// Bytes of incoming calls (their message text) of one connection in flight at once;
    /// reading from that connection pauses above it. Default: 8 MiB.
    pub max_bytes_in_flight: usize,
    /// Entries in one connection's callback table (functions sent to the peer and calls
    /// awaiting its answer); a call or response that would exceed it fails with a clear
    /// error. Default: 10,000.
    pub max_callbacks: usize,
    /// Serve `kite.handleWebRTC`: relay WebRTC signalling messages between the kites
    /// connected to this one, by kite id (the reference's `UseWebRTC`, typically set on
    /// Kontrol; `KITE_USE_WEBRTC=1`). Default: false.
    pub use_webrtc: bool,
    /// Serve Prometheus metrics at `/metrics` beside `/kite` (`KITE_METRICS=1`; see
    /// [`crate::metrics`]). Default: off (Kontrol's command turns it on).
    pub metrics: bool,
    /// Carry W3C trace context in call options and continue callers' traces (see
    /// [`crate::telemetry`]). Default: off; `KITE_TRACING=1`, or on when
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set and `KITE_TRACING` is not.
    pub tracing: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            username: "unknown".into(),
            environment: "unknown".into(),
            region: "unknown".into(),
            id: String::new(),
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            ip: "0.0.0.0".into(),
            port: 0,
            kite_key: String::new(),
            kontrol_url: String::new(),
            kontrol_url_origin: None,
            kontrol_key: String::new(),
            kontrol_user: String::new(),
            disable_authentication: false,
            disable_concurrency: false,
            transport: Transport::Auto,
            timeout: Duration::from_secs(15),
            drain_timeout: Duration::from_secs(10),
            verify_ttl: Duration::from_secs(5 * 60),
            handshake_timeout: Duration::from_secs(15),
            tls: None,
            tls_ca_file: None,
            tls_insecure_skip_verify: false,
            register_url: None,
            sockjs: ServerConfig::default(),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            max_calls_in_flight: 128,
            max_bytes_in_flight: 8 * 1024 * 1024,
            max_callbacks: 10_000,
            use_webrtc: false,
            metrics: false,
            tracing: false,
        }
    }
}

impl Config {
    /// What this kite trusts when it dials TLS.
    pub fn tls_trust(&self) -> crate::tls::TlsTrust {
        crate::tls::TlsTrust {
            ca_file: self.tls_ca_file.clone(),
            insecure_skip_verify: self.tls_insecure_skip_verify,
        }
    }

    /// Defaults, then `kite.key` (if present under `KITE_HOME` or `~/.kite`), then the
    /// `KITE_*` environment variables — the reference's `config.Get()`.
    pub fn from_env() -> Result<Config, Error> {
        let mut c = Config::default();
        if let Ok(path) = crate::auth::kite_key_path() {
            if let Ok(key) = crate::auth::read_kite_key(Some(&path)) {
                c.use_kite_key(&key)?;
                c.set_kontrol_url_origin(&format!("kite.key at {}", path.display()));
            }
        }
        c.read_env()?;
        Ok(c)
    }

    /// Sets Kontrol's URL and names where it came from (for dial errors).
    pub fn set_kontrol_url(&mut self, url: &str, origin: &str) {
        self.kontrol_url = url.to_string();
        self.set_kontrol_url_origin(origin);
    }

    fn set_kontrol_url_origin(&mut self, origin: &str) {
        self.kontrol_url_origin =
            (!self.kontrol_url.is_empty()).then(|| (self.kontrol_url.clone(), origin.to_string()));
    }

    /// Where `kontrol_url` came from, while it is still the URL that origin gave.
    pub fn kontrol_url_source(&self) -> Option<String> {
        self.kontrol_url_origin
            .as_ref()
            .filter(|(url, _)| *url == self.kontrol_url)
            .map(|(_, origin)| origin.clone())
    }

    /// Adopts a kite key: its subject becomes the username, its issuer the Kontrol user,
    /// and its `kontrolURL`/`kontrolKey` claims the Kontrol settings. Its `jti` names the
    /// key, not a kite: the id is left alone (see [`Config::id`]).
    pub fn use_kite_key(&mut self, key: &str) -> Result<(), Error> {
        let claims = crate::auth::parse_unverified(key).map_err(|e| Error::Auth(e.to_string()))?;
        self.kite_key = key.trim().to_string();
        let set = |field: &mut String, v: String| {
            if !v.is_empty() {
                *field = v;
            }
        };
        set(&mut self.username, claims.sub);
        set(&mut self.kontrol_user, claims.iss);
        if !claims.kontrol_url.is_empty() {
            self.set_kontrol_url(&claims.kontrol_url, "the kite key's kontrolURL");
        }
        set(&mut self.kontrol_key, claims.kontrol_key);
        Ok(())
    }

    /// Applies `KITE_USERNAME`, `KITE_ENVIRONMENT`, `KITE_REGION`, `KITE_IP`, `KITE_PORT`,
    /// `KITE_KONTROL_URL`, `KITE_TRANSPORT`, `KITE_VERIFY_TTL`, `KITE_TIMEOUT`,
    /// `KITE_HANDSHAKE_TIMEOUT`, `KITE_DRAIN_TIMEOUT` (durations in Go syntax: `15s`, `1m30s`,
    /// `500ms`), `KITE_REGISTER_URL`, `KITE_TLS_CA_FILE`, `KITE_TLS_INSECURE_SKIP_VERIFY`,
    /// and the switches `KITE_USE_WEBRTC`, `KITE_METRICS` and `KITE_TRACING`
    /// (`1`/`true`/`on` or `0`/`false`/`off`).
    pub fn read_env(&mut self) -> Result<(), Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("KITE_USERNAME") {
            self.username = v;
        }
        if let Some(v) = var("KITE_ENVIRONMENT") {
            self.environment = v;
        }
        if let Some(v) = var("KITE_REGION") {
            self.region = v;
        }
        if let Some(v) = var("KITE_IP") {
            self.ip = v;
        }
        if let Some(v) = var("KITE_PORT") {
            self.port = v
                .parse()
                .map_err(|_| Error::Config(format!("KITE_PORT {v:?} is not a port")))?;
        }
        if let Some(v) = var("KITE_KONTROL_URL") {
            self.set_kontrol_url(&v, "KITE_KONTROL_URL");
        }
        if let Some(v) = var("KITE_REGISTER_URL") {
            self.register_url = Some(v);
        }
        if let Some(v) = var("KITE_USE_WEBRTC") {
            self.use_webrtc = parse_switch("KITE_USE_WEBRTC", &v)?;
        }
        let trust = crate::tls::TlsTrust::from_env();
        if trust.ca_file.is_some() {
            self.tls_ca_file = trust.ca_file;
        }
        if trust.insecure_skip_verify {
            self.tls_insecure_skip_verify = true;
        }
        if let Some(v) = var("KITE_TRANSPORT") {
            self.transport = v.parse().map_err(Error::Config)?;
        }
        // Like the reference, unparsable durations are ignored.
        if let Some(d) = var("KITE_VERIFY_TTL").and_then(|v| parse_duration(&v)) {
            self.verify_ttl = d;
        }
        if let Some(d) = var("KITE_TIMEOUT").and_then(|v| parse_duration(&v)) {
            self.timeout = d;
        }
        if let Some(d) = var("KITE_HANDSHAKE_TIMEOUT").and_then(|v| parse_duration(&v)) {
            self.handshake_timeout = d;
        }
        if let Some(d) = var("KITE_DRAIN_TIMEOUT").and_then(|v| parse_duration(&v)) {
            self.drain_timeout = d;
        }
        if let Some(v) = var("KITE_METRICS") {
            self.metrics = parse_switch("KITE_METRICS", &v)?;
        }
        match var("KITE_TRACING") {
            Some(v) => self.tracing = parse_switch("KITE_TRACING", &v)?,
            None if var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() => self.tracing = true,
            None => {}
        }
        self.read_limits_env()?;
        Ok(())
    }
}

impl Config {
    /// Applies the limit variables: `KITE_HEADER_READ_TIMEOUT` (a duration),
    /// `KITE_MAX_CONNECTIONS`, `KITE_MAX_CALLS_IN_FLIGHT`, `KITE_MAX_BYTES_IN_FLIGHT`,
    /// `KITE_MAX_CALLBACKS`, `KITE_MAX_SESSIONS`, `KITE_MAX_SESSIONS_PER_CLIENT` (numbers)
    /// and `KITE_TRUSTED_PROXIES` (comma-separated IP addresses).
    fn read_limits_env(&mut self) -> Result<(), Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let number = |k: &str| -> Result<Option<usize>, Error> {
            var(k)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| Error::Config(format!("{k} {v:?} is not a number")))
                })
                .transpose()
        };
        if let Some(d) = var("KITE_HEADER_READ_TIMEOUT").and_then(|v| parse_duration(&v)) {
            self.header_read_timeout = d;
        }
        if let Some(n) = number("KITE_MAX_CONNECTIONS")? {
            self.max_connections = n;
        }
        if let Some(n) = number("KITE_MAX_CALLS_IN_FLIGHT")? {
            self.max_calls_in_flight = n;
        }
        if let Some(n) = number("KITE_MAX_BYTES_IN_FLIGHT")? {
            self.max_bytes_in_flight = n;
        }
        if let Some(n) = number("KITE_MAX_CALLBACKS")? {
            self.max_callbacks = n;
        }
        if let Some(n) = number("KITE_MAX_SESSIONS")? {
            self.sockjs.max_sessions = n;
        }
        if let Some(n) = number("KITE_MAX_SESSIONS_PER_CLIENT")? {
            self.sockjs.max_sessions_per_client = n;
        }
        if let Some(v) = var("KITE_TRUSTED_PROXIES") {
            self.sockjs.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|_| {
                        Error::Config(format!("KITE_TRUSTED_PROXIES: {s:?} is not an IP address"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }
}

/// Parses an on/off environment value: `1`, `true`, `on`, `yes` or `0`, `false`, `off`, `no`.
pub fn parse_switch(name: &str, v: &str) -> Result<bool, Error> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(Error::Config(format!(
            "{name} {v:?} is not on or off (1/0)"
        ))),
    }
}

/// Parses a Go duration: a sequence of decimal numbers with units `ns`, `us`/`µs`, `ms`,
/// `s`, `m`, `h` (e.g. `1h30m`, `1.5s`, `250ms`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Checks a kite name and version like the reference: a non-empty name and a three-part
/// semantic version.
pub fn validate_identity(name: &str, version: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::Config("kite name cannot be empty".into()));
    }
    if name.contains('/') {
        return Err(Error::Config("kite name cannot contain \"/\"".into()));
    }
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() != 3 || semver::Version::parse(version).is_err() {
        return Err(Error::Config(format!(
            "kite version {version:?} must be a 3-digit semantic version"
        )));
    }
    Ok(())
}

/// The `tracing` level for the reference's `KITE_LOG_LEVEL` (`DEBUG`, `INFO`, `WARNING`,
/// `ERROR`, `FATAL`, any case): `debug`, `info`, `warn`, `error`, `error`; another non-empty
/// value is `info`, as in the reference. `None` when the variable is unset or empty.
pub fn kite_log_level() -> Option<&'static str> {
    let v = std::env::var("KITE_LOG_LEVEL")
        .ok()
        .filter(|v| !v.is_empty())?;
    Some(log_level(&v))
}

fn log_level(v: &str) -> &'static str {
    match v.to_ascii_uppercase().as_str() {
        "DEBUG" => "debug",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_like_the_reference() {
        for (v, want) in [
            ("DEBUG", "debug"),
            ("debug", "debug"),
            ("INFO", "info"),
            ("WARNING", "warn"),
            ("ERROR", "error"),
            ("FATAL", "error"),
            ("chatty", "info"),
        ] {
            assert_eq!(log_level(v), want, "{v}");
        }
    }

    #[test]
    fn switches() {
        for on in ["1", "true", "ON", " yes "] {
            assert!(parse_switch("KITE_METRICS", on).unwrap(), "{on}");
        }
        for off in ["0", "false", "off", "No"] {
            assert!(!parse_switch("KITE_METRICS", off).unwrap(), "{off}");
        }
        let e = parse_switch("KITE_TRACING", "maybe").unwrap_err();
        assert!(e.to_string().contains("KITE_TRACING"), "{e}");
        // Off unless asked for: the golden frames depend on it.
        let c = Config::default();
        assert!(!c.metrics && !c.tracing);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        for bad in ["", "s", "15", "15x", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn identity_rules() {
        assert!(validate_identity("math", "1.0.0").is_ok());
        assert!(validate_identity("", "1.0.0").is_err());
        assert!(validate_identity("math", "1.0").is_err());
        assert!(validate_identity("math", "x.y.z").is_err());
    }

    #[test]
    fn defaults_match_the_reference() {
        let c = Config::default();
        assert_eq!(
            (
                c.username.as_str(),
                c.environment.as_str(),
                c.region.as_str()
            ),
            ("unknown", "unknown", "unknown")
        );
        assert_eq!((c.ip.as_str(), c.port), ("0.0.0.0", 0));
        assert_eq!(c.timeout, Duration::from_secs(15));
        assert_eq!(c.sockjs.heartbeat_delay, Duration::from_secs(10));
        assert_eq!(c.sockjs.disconnect_delay, Duration::from_secs(10));
    }
}
