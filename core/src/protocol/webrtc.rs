//! WebRTC signalling messages (`kite.handleWebRTC`): what kites send through a relay kite
//! to reach another kite by id. The JSON is the reference's `protocol.WebRTCSignalMessage`.
#![deny(clippy::arithmetic_side_effects)]

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::KiteError;

/// Name of the signalling method: served by a relay kite (`Config::use_webrtc`) and by the
/// kites that receive signalling messages.
pub const METHOD_HANDLE_WEBRTC: &str = "kite.handleWebRTC";

/// The signalling message types the reference accepts (any case on the wire).
pub const SIGNAL_TYPES: [&str; 4] = ["OFFER", "ANSWER", "CANDIDATE", "LEAVE"];

/// One signalling message: `{"type", "src", "dst", "payload"}`, empty fields left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalMessage {
    /// `OFFER`, `ANSWER`, `CANDIDATE` or `LEAVE` (any case).
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The sender's kite id; the relay writes it (whatever the sender put there).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src: String,
    /// The id of the kite the message is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dst: String,
    /// What the peers exchange (SDP, ICE candidates, …): any JSON, relayed untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

impl SignalMessage {
    /// A message of type `kind` for kite `dst`.
    pub fn new(kind: &str, dst: &str, payload: Option<Value>) -> SignalMessage {
        SignalMessage {
            kind: kind.to_string(),
            src: String::new(),
            dst: dst.to_string(),
            payload,
        }
    }

    /// Decodes a received message, refusing values that are not a signalling message
    /// (`argumentError`, naming what is wrong) and unknown types.
    pub fn from_value(value: &Value) -> Result<SignalMessage, KiteError> {
        if !value.is_object() {
            return Err(KiteError::argument(format!(
                "invalid signalling message: want an object with type, dst and payload, got {}",
                kind_of(value)
            )));
        }
        let msg = SignalMessage::deserialize(value)
            .map_err(|e| KiteError::argument(format!("invalid signalling message: {e}")))?;
        msg.check_type()?;
        Ok(msg)
    }

    /// Refuses a type other than `OFFER`, `ANSWER`, `CANDIDATE` or `LEAVE` (any case).
    pub fn check_type(&self) -> Result<(), KiteError> {
        if SIGNAL_TYPES
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&self.kind))
        {
            return Ok(());
        }
        Err(KiteError::argument(format!(
            "invalid signalling type {:?}: want one of OFFER, ANSWER, CANDIDATE, LEAVE",
            truncate(&self.kind, 64)
        )))
    }
}

/// The JSON kind of `v`, for error messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// At most `max` characters of `s` (for echoing hostile input in errors).
fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_like_the_reference() {
        let m = SignalMessage::new("OFFER", "b", Some(json!({"sdp": {"type": "offer"}})));
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"type": "OFFER", "dst": "b", "payload": {"sdp": {"type": "offer"}}})
        );
        let back =
            SignalMessage::from_value(&json!({"type": "answer", "src": "a", "dst": "b"})).unwrap();
        assert_eq!((back.kind.as_str(), back.src.as_str()), ("answer", "a"));
        assert_eq!(back.payload, None);
    }

    #[test]
    fn bad_messages_are_argument_errors() {
        for (bad, want) in [
            (json!("OFFER"), "want an object"),
            (json!([1]), "want an object"),
            (
                json!({"type": "JOIN", "dst": "b"}),
                "invalid signalling type \"JOIN\"",
            ),
            (json!({"dst": "b"}), "invalid signalling type \"\""),
            (json!({"type": 3, "dst": "b"}), "invalid type: integer"),
            (
                json!({"type": "OFFER", "dst": ["b"]}),
                "invalid type: sequence",
            ),
        ] {
            let e = SignalMessage::from_value(&bad).unwrap_err();
            assert_eq!(e.kind, super::super::ErrorKind::ArgumentError, "{bad}");
            assert!(e.message.contains(want), "{bad}: {}", e.message);
        }
        let long = "X".repeat(1000);
        let e = SignalMessage::from_value(&json!({"type": long})).unwrap_err();
        assert!(e.message.len() < 200, "{}", e.message);
    }
}
