//! The kites registered to a proxy: kite id → its connection to the proxy and what the
//! proxy keeps for it. An entry leaves when its connection ends.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::peer::Connection;
use crate::protocol::KiteError;

/// Registered kites, at most `max` at once.
pub(crate) struct Registry<T> {
    table: Mutex<Table<T>>,
    max: usize,
}

struct Table<T> {
    by_id: HashMap<String, (Connection, T)>,
    /// Connection ([`Connection::key`]) → the id it registered.
    by_conn: HashMap<usize, String>,
}

impl<T: Clone + Send + 'static> Registry<T> {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Registry {
            table: Mutex::new(Table {
                by_id: HashMap::new(),
                by_conn: HashMap::new(),
            }),
            max,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table<T>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters (or updates) kite `id` on `conn` with `value`. Refused: an id held by another
    /// live connection, a connection that registered another id, a full table.
    pub(crate) fn enter(
        self: &Arc<Self>,
        id: &str,
        conn: &Connection,
        value: T,
    ) -> Result<(), KiteError> {
        if id.is_empty() {
            return Err(KiteError::argument(
                "the caller has no kite id in its call options",
            ));
        }
        let mut t = self.lock();
        match t.by_conn.get(&conn.key()) {
            Some(held) if held == id => {
                t.by_id.insert(id.to_string(), (conn.clone(), value));
                return Ok(());
            }
            Some(held) => {
                return Err(KiteError::generic(format!(
                    "this connection already registered kite {held:?}; one connection is one kite"
                )))
            }
            None => {}
        }
        if let Some((other, _)) = t.by_id.get(id) {
            if !other.is_closed() {
                return Err(KiteError::generic(format!(
                    "kite id {id:?} is held by another live connection"
                )));
            }
        }
        if t.by_id.len() >= self.max {
            return Err(KiteError::generic(format!(
                "the proxy is full ({} kites)",
                self.max
            )));
        }
        t.by_id.insert(id.to_string(), (conn.clone(), value));
        t.by_conn.insert(conn.key(), id.to_string());
        drop(t);
        let registry: Weak<Self> = Arc::downgrade(self);
        let conn = conn.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            conn.closed().await;
            if let Some(r) = registry.upgrade() {
                r.leave(&id, &conn);
            }
        });
        Ok(())
    }

    fn leave(&self, id: &str, conn: &Connection) {
        let mut t = self.lock();
        t.by_conn.remove(&conn.key());
        if t.by_id.get(id).is_some_and(|(c, _)| c.key() == conn.key()) {
            t.by_id.remove(id);
            tracing::info!(kite = id, "kite left the proxy");
        }
    }

    /// Kite `id`'s connection and value, while it is connected.
    pub(crate) fn get(&self, id: &str) -> Option<(Connection, T)> {
        self.lock()
            .by_id
            .get(id)
            .filter(|(c, _)| !c.is_closed())
            .cloned()
    }

    /// The registered ids, sorted.
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().by_id.keys().cloned().collect();
        ids.sort();
        ids
    }
}
