//! [`KiteOptions`], the options of a new `Kite`, and the kite they configure: the
//! `KITE_*` environment and `kite.key` first, then these options checked by the core
//! (`kite::server::Options`, times in milliseconds).

use kite::server::{Options, TimeUnit};

/// Options of a new kite. Every field but `name` and `version` defaults to the `KITE_*`
/// environment, then `kite.key` (`$KITE_HOME/kite.key`, default `~/.kite/kite.key`), then the
/// reference's defaults. The core checks them (`kite::server::Options`, the same options as
/// Python's keyword arguments): a bad value throws `configError` naming the option.
#[napi(object)]
#[derive(Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KiteOptions {
    /// The kite's name, e.g. `math`.
    #[serde(skip)]
    pub name: String,
    /// Three-part semantic version, e.g. `1.0.0`.
    #[serde(skip)]
    pub version: String,
    /// Owner. Default: `KITE_USERNAME`, the kite key's subject, or `unknown`.
    pub username: Option<String>,
    /// Default: `KITE_ENVIRONMENT` or `unknown`.
    pub environment: Option<String>,
    /// Default: `KITE_REGION` or `unknown`.
    pub region: Option<String>,
    /// Kite id. Default: a fresh random UUID per kite.
    pub id: Option<String>,
    /// Host name reported in the identity. Default: the machine's.
    pub hostname: Option<String>,
    /// Address to listen on. Default: `KITE_IP` or `0.0.0.0`.
    pub ip: Option<String>,
    /// Port to listen on (0: any free one). Default: `KITE_PORT` or 0.
    pub port: Option<u32>,
    /// The kite key (JWT) sent as `kiteKey` authentication. Default: read from `kite.key`.
    pub kite_key: Option<String>,
    /// Kontrol's URL. Default: `KITE_KONTROL_URL` or the kite key's.
    pub kontrol_url: Option<String>,
    /// Kontrol's public key (PEM), trusted for kite keys and tokens. Default: the kite key's.
    pub kontrol_key: Option<String>,
    /// Kontrol's username, the expected issuer of tokens. Default: the kite key's.
    pub kontrol_user: Option<String>,
    /// Serve every method without authentication. Default: false.
    pub disable_authentication: Option<bool>,
    /// Handle the requests of one connection one after another. Default: false.
    pub disable_concurrency: Option<bool>,
    /// Serve Prometheus metrics at `/metrics` beside `/kite`. Default: `KITE_METRICS` or
    /// false.
    pub metrics: Option<bool>,
    /// Carry W3C trace context in calls and make `kite.call`/`kite.request` spans, exported
    /// by the process's OTLP exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`; see `flushTraces`).
    /// Default: `KITE_TRACING`, or true when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub tracing: Option<bool>,
    /// Transport of clients: `auto` (websocket, then XHR polling), `WebSocket` or
    /// `XHRPolling`. Default: `KITE_TRANSPORT` or `auto`.
    #[napi(ts_type = "'auto' | 'WebSocket' | 'XHRPolling'")]
    pub transport: Option<String>,
    /// Call timeout in milliseconds. Default: `KITE_TIMEOUT` or 15000.
    pub timeout: Option<f64>,
    /// Websocket/HTTP handshake timeout in milliseconds. Default: 15000.
    pub handshake_timeout: Option<f64>,
    /// How long a Kontrol key accepted by a verify function stays trusted, in
    /// milliseconds. Default: 5 minutes.
    pub verify_ttl: Option<f64>,
    /// PEM certificate and key files: serve HTTPS. Default: none.
    pub tls: Option<TlsOptions>,
    /// Default handling mode of methods: `method` (the main handler's result), `first` or
    /// `latest` (the first/last non-null result of pre, main and post handlers).
    /// Default: `method`.
    #[napi(ts_type = "MethodHandling")]
    pub method_handling: Option<String>,
    /// Relay WebRTC signalling between the kites connected to this one
    /// (`kite.handleWebRTC`; typically on Kontrol). Default: `KITE_USE_WEBRTC` or false.
    #[napi(js_name = "useWebRTC")]
    #[serde(rename = "useWebRTC")]
    pub use_webrtc: Option<bool>,
    /// How long `close()` lets calls in flight finish, in milliseconds. Default: 10000.
    pub drain_timeout: Option<f64>,
    /// Time a client has to send a whole HTTP request head, in milliseconds. Default: 10000.
    pub header_read_timeout: Option<f64>,
    /// Time allowed to receive a whole `xhr_send` body, in milliseconds. Default: 10000.
    pub body_read_timeout: Option<f64>,
    /// Connections served at once; further clients wait in the backlog. Default: 20000.
    pub max_connections: Option<i64>,
    /// Incoming calls of one connection in flight at once; reading pauses beyond. Default: 128.
    pub max_calls_in_flight: Option<i64>,
    /// Bytes of incoming calls of one connection in flight; reading pauses beyond.
    /// Default: 8 MiB.
    pub max_bytes_in_flight: Option<i64>,
    /// Entries in one connection's callback table; beyond, a clear error. Default: 10000.
    pub max_callbacks: Option<i64>,
    /// Largest message accepted from a peer, in bytes. Default: 16 MiB.
    pub max_message_size: Option<i64>,
    /// HTTP-transport (XHR) sessions open at once. Default: 10000.
    pub max_sessions: Option<i64>,
    /// HTTP-transport sessions open at once per client address. Default: 100.
    pub max_sessions_per_client: Option<i64>,
    /// IP addresses of proxies whose `X-Forwarded-For` names the client. Default: none.
    pub trusted_proxies: Option<Vec<String>>,
}

/// A kite configured from the environment, `kite.key` and `options` (through the core's
/// [`kite::server::Options`], times in milliseconds).
pub(crate) fn configured(
    name: &str,
    version: &str,
    options: &KiteOptions,
) -> Result<kite::Kite, kite::Error> {
    let json = serde_json::to_value(options).map_err(|e| kite::Error::Config(e.to_string()))?;
    let options = Options::from_json(json, TimeUnit::Milliseconds)?;
    let handling = options.method_handling()?;
    let mut config = kite::Config::from_env()?;
    options.apply(&mut config)?;
    let kite = kite::Kite::with_config(name, version, config)?;
    if let Some(m) = handling {
        kite.set_method_handling(m);
    }
    Ok(kite)
}

/// Certificate and key files (PEM) to serve HTTPS.
#[napi(object)]
#[derive(serde::Serialize)]
pub struct TlsOptions {
    /// Certificate chain file.
    pub cert: String,
    /// Private key file.
    pub key: String,
}
