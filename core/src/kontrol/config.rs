//! Kontrol's options, its method names and what `register` and `getKites` answer: the
//! plain types at the bottom of `kontrol/`, imported by the service and by the kite's side.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dnode::BoxFuture;
use crate::protocol::Kite as KiteIdentity;
use crate::server::Request;

/// Name of the register method.
pub const METHOD_REGISTER: &str = "register";
/// Name of the register-machine method.
pub const METHOD_REGISTER_MACHINE: &str = "registerMachine";
/// Name of the get-kites method.
pub const METHOD_GET_KITES: &str = "getKites";
/// Name of the get-token method.
pub const METHOD_GET_TOKEN: &str = "getToken";
/// Name of the get-key method.
pub const METHOD_GET_KEY: &str = "getKey";
/// Name of the unregister method (beyond the reference: a kite that closes cleanly leaves
/// at once instead of waiting for its heartbeats to time out).
pub const METHOD_UNREGISTER: &str = "unregister";

/// Decides whether a `registerMachine` call may get a kite key: `(authType, request)` →
/// `Ok` or the reason.
pub type MachineCheck =
    Arc<dyn Fn(String, Request) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Kontrol's options. Defaults match the reference.
#[derive(Clone)]
pub struct KontrolConfig {
    /// Interval kites are asked to send heartbeats at (in whole seconds, at least one).
    /// Default: 10 s.
    pub heartbeat_interval: Duration,
    /// Extra time after a missed heartbeat before a kite is removed. Default: 20 s.
    pub heartbeat_delay: Duration,
    /// Rows not refreshed for this long are removed by the cleaner (a Kontrol that died
    /// cannot remove its kites). Default: 90 s.
    pub expire_after: Duration,
    /// The URL Kontrol registers itself with in its own registry. Default: none.
    pub register_url: Option<String>,
    /// The check for `registerMachine`. Default: none — the method refuses every call.
    pub machine_check: Option<MachineCheck>,
    /// Serve the read-only live view of the registry at `/ui`. Default: off.
    pub ui: bool,
    /// The token the `/ui` page needs (`?token=…`); without one the page is served to
    /// loopback clients only. Default: none.
    pub ui_token: Option<String>,
}

impl Default for KontrolConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_delay: Duration::from_secs(20),
            expire_after: Duration::from_secs(90),
            register_url: None,
            machine_check: None,
            ui: false,
            ui_token: None,
        }
    }
}

impl std::fmt::Debug for KontrolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KontrolConfig")
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_delay", &self.heartbeat_delay)
            .field("expire_after", &self.expire_after)
            .field("register_url", &self.register_url)
            .field("machine_check", &self.machine_check.is_some())
            .field("ui", &self.ui)
            .field("ui_token", &self.ui_token.is_some())
            .finish()
    }
}

/// A machine check that accepts every call (development only: anyone gets a kite key for
/// the username they claim, as with the reference's default).
pub fn allow_all_machines() -> MachineCheck {
    Arc::new(|_, _| Box::pin(async { Ok(()) }))
}

/// What `register` and `POST /register` return.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RegisterResult {
    /// The registered URL.
    pub url: String,
    /// Seconds between heartbeats (HTTP registrations); 0 over dnode.
    #[serde(rename = "heartbeatInterval", default)]
    pub heartbeat_interval: i64,
    /// Error text (HTTP only).
    #[serde(rename = "err", default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Kontrol's current public key, when the kite's key was signed by another one.
    #[serde(
        rename = "publicKey",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub public_key: String,
    /// A re-signed kite key, when the kite's key pair was deleted.
    #[serde(rename = "kiteKey", default, skip_serializing_if = "String::is_empty")]
    pub kite_key: String,
}

/// One result of `getKites`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KiteWithToken {
    /// The kite.
    pub kite: KiteIdentity,
    /// Its URL.
    pub url: String,
    /// Id of its key pair.
    #[serde(rename = "keyId", default, skip_serializing_if = "String::is_empty")]
    pub key_id: String,
    /// A token for calling it.
    pub token: String,
}

/// Seconds between the heartbeats kites are asked for: the configured interval in whole
/// seconds (the protocol's unit, never longer than configured), at least one.
pub(crate) fn heartbeat_secs(config: &KontrolConfig) -> u64 {
    config.heartbeat_interval.as_secs().max(1)
}
