//! The wire error `{"type","message","code","id"}` and its kinds.

use serde::{Deserialize, Serialize};

/// Kinds of kite errors. The callee produces the first five; the caller produces the rest
/// locally. Unknown kinds from other implementations are kept as [`ErrorKind::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `methodNotFound`
    MethodNotFound,
    /// `argumentError`
    ArgumentError,
    /// `genericError`: the handler failed.
    GenericError,
    /// `authenticationError`
    AuthenticationError,
    /// `requestLimitError`
    RequestLimitError,
    /// `timeout` (caller side)
    Timeout,
    /// `disconnect` (caller side)
    Disconnect,
    /// `sendError` (caller side)
    SendError,
    /// `invalidResponse` (caller side)
    InvalidResponse,
    /// Any other type string.
    Other(String),
}

impl ErrorKind {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorKind::MethodNotFound => "methodNotFound",
            ErrorKind::ArgumentError => "argumentError",
            ErrorKind::GenericError => "genericError",
            ErrorKind::AuthenticationError => "authenticationError",
            ErrorKind::RequestLimitError => "requestLimitError",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Disconnect => "disconnect",
            ErrorKind::SendError => "sendError",
            ErrorKind::InvalidResponse => "invalidResponse",
            ErrorKind::Other(s) => s,
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> ErrorKind {
        match s {
            "methodNotFound" => ErrorKind::MethodNotFound,
            "argumentError" => ErrorKind::ArgumentError,
            "genericError" => ErrorKind::GenericError,
            "authenticationError" => ErrorKind::AuthenticationError,
            "requestLimitError" => ErrorKind::RequestLimitError,
            "timeout" => ErrorKind::Timeout,
            "disconnect" => ErrorKind::Disconnect,
            "sendError" => ErrorKind::SendError,
            "invalidResponse" => ErrorKind::InvalidResponse,
            other => ErrorKind::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorKind::parse(&s))
    }
}

/// The wire error. Displays as `type: message (id)`, or just `message (id)` for
/// `genericError`, like the reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KiteError {
    /// Kind of error.
    #[serde(rename = "type", default = "generic")]
    pub kind: ErrorKind,
    /// Human readable message.
    #[serde(default)]
    pub message: String,
    /// Application error code (may be empty).
    #[serde(default)]
    pub code: String,
    /// The request id, when known.
    #[serde(default)]
    pub id: String,
}

fn generic() -> ErrorKind {
    ErrorKind::GenericError
}

/// What an expired token's refusal says (the reference's wording; Go clients renew on it).
pub const TOKEN_EXPIRED: &str = "token is expired";

impl KiteError {
    /// An error of `kind` with `message`, no code, no id.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: String::new(),
            id: String::new(),
        }
    }

    /// A `genericError`.
    pub fn generic(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::GenericError, message)
    }

    /// An `argumentError`.
    pub fn argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ArgumentError, message)
    }

    /// An `authenticationError`.
    pub fn authentication(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AuthenticationError, message)
    }

    /// Whether this is the answer to a call made with an expired (or no longer trusted)
    /// token: an `authenticationError` whose message says "token is expired", the wording
    /// Go clients match on to renew their token (the one place this text is checked).
    pub fn is_token_expired(&self) -> bool {
        self.kind == ErrorKind::AuthenticationError && self.message.contains(TOKEN_EXPIRED)
    }

    /// `methodNotFound`: `Method not found: NAME`.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            ErrorKind::MethodNotFound,
            format!("Method not found: {method}"),
        )
    }

    /// `requestLimitError`: `The maximum request rate is exceeded.`
    pub fn request_limit() -> Self {
        Self::new(
            ErrorKind::RequestLimitError,
            "The maximum request rate is exceeded.",
        )
    }

    /// Sets the application error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = code.into();
        self
    }

    /// Sets the request id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }
}

impl std::fmt::Display for KiteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind != ErrorKind::GenericError && !self.kind.as_str().is_empty() {
            write!(f, "{}: ", self.kind)?;
        }
        f.write_str(&self.message)?;
        if !self.id.is_empty() {
            write!(f, " ({})", self.id)?;
        }
        Ok(())
    }
}

impl std::error::Error for KiteError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_like_the_reference() {
        assert_eq!(
            KiteError::generic("boom").with_id("abc").to_string(),
            "boom (abc)"
        );
        assert_eq!(
            KiteError::method_not_found("x").to_string(),
            "methodNotFound: Method not found: x"
        );
    }

    #[test]
    fn json_shape() {
        let e = KiteError::request_limit().with_id("r1");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"requestLimitError","message":"The maximum request rate is exceeded.","code":"","id":"r1"}"#
        );
        let back: KiteError = serde_json::from_str(r#"{"type":"weird","message":"m"}"#).unwrap();
        assert_eq!(back.kind, ErrorKind::Other("weird".into()));
    }
}
