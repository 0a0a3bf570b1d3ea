//! IO-free wire types of the kite protocol: the Kite identity, call options, responses and
//! the wire error. Their JSON is identical to the Go reference's (pinned by golden frames
//! in `tests/interop/golden`).
#![deny(clippy::arithmetic_side_effects)]

mod error;
pub mod json;
mod kite;
mod webrtc;

pub use error::{ErrorKind, KiteError};
pub use kite::{Kite, KiteQuery};
pub use webrtc::{SignalMessage, METHOD_HANDLE_WEBRTC, SIGNAL_TYPES};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Name of the ping method (`"pong"`, no authentication).
pub const METHOD_PING: &str = "kite.ping";
/// Name of the system information method.
pub const METHOD_SYSTEM_INFO: &str = "kite.systemInfo";
/// Name of the heartbeat method (`[seconds, callback]`).
pub const METHOD_HEARTBEAT: &str = "kite.heartbeat";
/// Name of the remote log method.
pub const METHOD_LOG: &str = "kite.log";
/// Name of the remote print method.
pub const METHOD_PRINT: &str = "kite.print";
/// Name of the remote prompt method.
pub const METHOD_PROMPT: &str = "kite.prompt";
/// Name of the remote password prompt method.
pub const METHOD_GET_PASS: &str = "kite.getPass";

/// Authentication sent with a call: `{"type": "kiteKey"|"token"|…, "key": "<jwt>"}`.
/// Its `Debug` output leaves the key out, so that it never reaches a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// `kiteKey`, `token`, or a custom type with its own authenticator.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The credential (a JWT for the built-in types).
    #[serde(default)]
    pub key: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("kind", &self.kind)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .finish()
    }
}

impl Auth {
    /// The `kiteKey` type.
    pub const KITE_KEY: &'static str = "kiteKey";
    /// The `token` type.
    pub const TOKEN: &'static str = "token";

    /// `{"type":"kiteKey","key":…}`
    pub fn kite_key(key: impl Into<String>) -> Self {
        Self {
            kind: Self::KITE_KEY.into(),
            key: key.into(),
        }
    }

    /// `{"type":"token","key":…}`
    pub fn token(key: impl Into<String>) -> Self {
        Self {
            kind: Self::TOKEN.into(),
            key: key.into(),
        }
    }
}

/// The single argument of a method call, as received (tolerant of kite.js and Go shapes).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallOptions {
    /// The caller's identity.
    #[serde(default)]
    pub kite: Kite,
    /// Authentication, absent (kite.js) or null (Go) without.
    #[serde(default)]
    pub authentication: Option<Auth>,
    /// The user's arguments: an array, a bare scalar (kite.js) or null/absent (none).
    #[serde(default, rename = "withArgs")]
    pub with_args: Value,
    /// The caller's W3C trace context (`traceContext`), sent only by kite-rs kites with
    /// tracing on; the Go reference and kite.js ignore it.
    #[serde(default, rename = "traceContext")]
    pub trace_context: Option<TraceContext>,
}

/// A W3C trace context carried in call options: `{"traceparent": …, "tracestate": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// `version-traceid-parentid-flags`, e.g. `00-4bf9…-00f0…-01`.
    #[serde(default)]
    pub traceparent: String,
    /// Vendor entries, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// The response object passed to a `responseCallback`: always both keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The error, or null.
    pub error: Option<KiteError>,
    /// The result, or null.
    pub result: Value,
}

/// Normalises `withArgs`: an array is the argument list, null/absent is none, anything else
/// is one argument.
pub fn args_list(with_args: Value) -> Vec<Value> {
    match with_args {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Go-style duration text (`15s`, `1.5s`, `250ms`), as in the reference's timeout message.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}µs", d.as_micros());
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let s = format!("{secs:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return format!("{s}s");
    }
    let m = d.as_secs() / 60;
    let s = d.as_secs() % 60;
    if m < 60 {
        format!("{m}m{s}s")
    } else {
        format!("{}h{}m{s}s", m / 60, m % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn call_options_accepts_go_and_kitejs_shapes() {
        let go: CallOptions = serde_json::from_value(json!({
            "kite": {"username":"u","environment":"e","name":"n","version":"1.0.0","region":"r","hostname":"h","id":"i"},
            "authentication": null, "withArgs": null, "responseCallback": "[Function]"
        }))
        .unwrap();
        assert!(go.authentication.is_none());
        assert!(args_list(go.with_args).is_empty());
        let js: CallOptions =
            serde_json::from_value(json!({"kite": {"name": "js"}, "withArgs": 5})).unwrap();
        assert_eq!(args_list(js.with_args), vec![json!(5)]);
        assert_eq!(js.kite.name, "js");
    }

    #[test]
    fn response_always_has_both_keys() {
        let r = Response {
            error: None,
            result: json!(4),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"error":null,"result":4}"#
        );
    }
}
