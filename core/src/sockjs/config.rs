//! Server options, with defaults matching the kite reference.

use std::time::Duration;

use super::limits::SessionLimits;

/// Options of one SockJS service. Every default matches the Go kite reference.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Serve the websocket transports (`/{server}/{session}/websocket` and raw `/websocket`).
    /// Default: true.
    pub websocket: bool,
    /// Set a `JSESSIONID` cookie (for sticky load balancers) and report `cookie_needed`.
    /// Default: false.
    pub cookie_needed: bool,
    /// Interval of `h` frames on idle connections. Default: 10 s (sockjs-node: 25 s).
    pub heartbeat_delay: Duration,
    /// How long a session without a receiving connection lives. Default: 10 s (sockjs-node: 5 s).
    pub disconnect_delay: Duration,
    /// Bytes written to one streaming response (`xhr_streaming`, `eventsource`, `htmlfile`)
    /// before it is ended so the client opens a new one. Default: 128 KiB.
    pub response_limit: usize,
    /// Largest message accepted from a client, in bytes. A bigger websocket message closes
    /// the session with `1009 "Message too big"`; a bigger `xhr_send`/`jsonp_send` body
    /// gets `413`. Default: 16 MiB.
    pub max_message_size: usize,
    /// Time allowed for a legacy (Hixie-76) websocket client to send its key after the
    /// upgrade. Default: 10 s.
    pub handshake_timeout: Duration,
    /// The sockjs-client script loaded by `iframe.html`.
    /// Default: `https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js`.
    pub sockjs_url: String,
    /// Per-session queue limits.
    pub limits: SessionLimits,
    /// HTTP-transport sessions (XHR, JSONP, streaming) open at once; a new one beyond it
    /// is answered with the close frame `c[1013,"Too many sessions"]`. Default: 10,000.
    pub max_sessions: usize,
    /// HTTP-transport sessions open at once per client address (the connection's peer,
    /// or the first `X-Forwarded-For` address when the peer is a trusted proxy); beyond
    /// it, the same close frame. Default: 100.
    pub max_sessions_per_client: usize,
    /// Proxies whose `X-Forwarded-For` header names the client. Default: none (the
    /// header is ignored).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Time allowed to receive a whole `xhr_send`/`jsonp_send` body; a slower body gets
    /// `408` and is not delivered. Default: 10 s.
    pub body_read_timeout: Duration,
    /// Where sessions are counted (a kite's metrics). Default: none.
    pub metrics: Option<crate::metrics::SockJsMetrics>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            websocket: true,
            cookie_needed: false,
            heartbeat_delay: Duration::from_secs(10),
            disconnect_delay: Duration::from_secs(10),
            response_limit: 128 * 1024,
            max_message_size: 16 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            sockjs_url: "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js".into(),
            limits: SessionLimits::default(),
            max_sessions: 10_000,
            max_sessions_per_client: 100,
            trusted_proxies: Vec::new(),
            body_read_timeout: Duration::from_secs(10),
            metrics: None,
        }
    }
}
