//! WebRTC signalling (`kite.handleWebRTC`): a kite with
//! [`Config::use_webrtc`](super::Config::use_webrtc) relays signalling messages between the
//! kites connected to it, by kite id, like the reference's `WebRTCHandler`; a kite that
//! takes part registers its own handler with [`Kite::handle_webrtc`](super::Kite::handle_webrtc).
//!
//! The relay's table is per kite: a sender is entered under the kite id of its call options
//! when it sends, and removed when its connection ends. Unlike the reference, which lets a
//! later connection take an id over, an id held by another live connection is refused, and
//! a connection signals under one id only (so one peer cannot fill the table).
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde_json::Value;

use super::method::Method;
use super::request::Request;
use crate::peer::Connection;
use crate::protocol::{KiteError, SignalMessage, METHOD_HANDLE_WEBRTC};
use crate::Error;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reference's answer when a message names no destination.
pub const DST_NOT_SET: &str = "dst not set";
/// The reference's answer when the destination has not signalled through this relay (or
/// has left).
pub const DST_NOT_REGISTERED: &str = "dst not registered";

/// The kites that signalled through one relay kite: id → connection, and back.
#[derive(Default)]
pub(crate) struct Relay {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    by_id: HashMap<String, Connection>,
    /// Connection (its address) → the id it signals under.
    by_conn: HashMap<usize, String>,
}

impl Relay {
    /// Enters `conn` under `id`, or checks it is there already. Spawns the removal when the
    /// connection ends.
    fn enter(self: &Arc<Self>, id: &str, conn: &Connection) -> Result<(), KiteError> {
        let mut t = lock(&self.table);
        if let Some(held) = t.by_conn.get(&conn.key()) {
            if held == id {
                return Ok(());
            }
            return Err(KiteError::generic(format!(
                "this connection already signals as kite {held:?}; one connection is one kite"
            )));
        }
        if let Some(other) = t.by_id.get(id) {
            if !other.is_closed() {
                return Err(KiteError::generic(format!(
                    "kite id {id:?} is held by another live connection"
                )));
            }
        }
        t.by_id.insert(id.to_string(), conn.clone());
        t.by_conn.insert(conn.key(), id.to_string());
        drop(t);
        let relay: Weak<Relay> = Arc::downgrade(self);
        let conn = conn.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            conn.closed().await;
            if let Some(relay) = relay.upgrade() {
                relay.leave(&id, &conn);
            }
        });
        Ok(())
    }

    /// Removes `id` if `conn` still holds it.
    fn leave(&self, id: &str, conn: &Connection) {
        let mut t = lock(&self.table);
        t.by_conn.remove(&conn.key());
        if t.by_id.get(id).is_some_and(|c| c.key() == conn.key()) {
            t.by_id.remove(id);
        }
    }

    fn get(&self, id: &str) -> Option<Connection> {
        lock(&self.table)
            .by_id
            .get(id)
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// The ids in the table, sorted.
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.table).by_id.keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// The relay method of a kite with `use_webrtc`.
pub(crate) fn relay_method(relay: Arc<Relay>) -> Method {
    Method::new(METHOD_HANDLE_WEBRTC, move |req: Request| {
        let relay = relay.clone();
        async move { forward(&relay, &req).await }
    })
}

/// The one argument of a signalling call.
pub(crate) fn message(req: &Request) -> Result<SignalMessage, KiteError> {
    let value: &Value = req.args().values().first().ok_or_else(|| {
        KiteError::argument("invalid signalling message: want one argument, got none")
    })?;
    let msg = SignalMessage::from_value(value)?;
    // Invalid UTF-8 reaches us as U+FFFD (the SockJS layer reads it as the reference does);
    // no kite id or type contains it.
    if msg.dst.contains('\u{fffd}') {
        return Err(KiteError::argument(
            "invalid signalling message: dst contains invalid characters (invalid UTF-8)",
        ));
    }
    Ok(msg)
}

async fn forward(relay: &Arc<Relay>, req: &Request) -> Result<(), KiteError> {
    let mut msg = message(req)?;
    let src = req.caller().id.clone();
    if src.is_empty() {
        return Err(KiteError::argument(
            "the sender has no kite id in its call options",
        ));
    }
    relay.enter(&src, req.client())?;
    if msg.dst.is_empty() {
        return Err(KiteError::generic(DST_NOT_SET));
    }
    if msg.dst == src {
        return Err(KiteError::argument(
            "dst is the sender itself: a kite cannot signal to itself",
        ));
    }
    let dst = relay
        .get(&msg.dst)
        .ok_or_else(|| KiteError::generic(DST_NOT_REGISTERED))?;
    msg.src = src;
    match dst.call(METHOD_HANDLE_WEBRTC, &msg, None).await {
        Ok(_) => Ok(()),
        Err(Error::Remote(e)) => Err(e),
        Err(e) => Err(e.to_kite_error()),
    }
}
