//! A connection's callback table: the functions it passed (the remote may call them any
//! number of times) and the calls it awaits (their `responseCallback`s). Ids come from
//! this table alone; no other connection can reach its entries.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::oneshot;

use crate::dnode::{Arguments, Callback, Message, Method, Path, Payload, Segment};
use crate::metrics::{Limit, PeerMetrics};
use crate::protocol::ErrorKind;

pub(super) enum Entry {
    /// A function we passed.
    User(Callback),
    /// The responseCallback of a call we made; removed at the response, timeout or disconnect.
    Response(oneshot::Sender<Arguments>),
}

/// Why a payload could not be placed in the table.
#[derive(Debug, thiserror::Error)]
pub(super) enum PlaceError {
    /// The table holds `max_callbacks` entries already.
    #[error("too many callbacks on this connection (limit {0})")]
    Full(usize),
    /// A value could not be serialized, or a function path leads nowhere.
    #[error("{0}")]
    Payload(String),
}

impl PlaceError {
    /// The wire kind: a full table is a request limit, a bad payload a send error.
    pub(super) fn kind(&self) -> ErrorKind {
        match self {
            PlaceError::Full(_) => ErrorKind::RequestLimitError,
            PlaceError::Payload(_) => ErrorKind::SendError,
        }
    }
}

pub(super) struct Table {
    next_id: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
    max: usize,
    /// The kite's `kite_callbacks_pending` gauge and limit counter, when metrics are on.
    metrics: Option<PeerMetrics>,
}

impl Table {
    pub(super) fn new(max: usize, metrics: Option<PeerMetrics>) -> Self {
        Self {
            next_id: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
            max,
            metrics,
        }
    }

    /// Moves the pending-callbacks gauge by `added` entries minus `removed` ones.
    fn count(&self, added: usize, removed: usize) {
        if let Some(m) = &self.metrics {
            let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            m.callbacks_pending.inc_by(to_i64(added));
            m.callbacks_pending.dec_by(to_i64(removed));
        }
    }

    fn full(&self) -> PlaceError {
        if let Some(m) = &self.metrics {
            m.limit_reached(Limit::Callbacks);
        }
        PlaceError::Full(self.max)
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // Nothing panics while the lock is held (plain map operations).
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn len(&self) -> usize {
        self.entries().len()
    }

    /// Adds an entry; fails when the table is full.
    pub(super) fn insert(&self, entry: Entry) -> Result<u64, PlaceError> {
        let mut entries = self.entries();
        if entries.len() >= self.max {
            return Err(self.full());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        entries.insert(id, entry);
        self.count(1, 0);
        Ok(id)
    }

    pub(super) fn remove(&self, id: u64) -> Option<Entry> {
        let removed = self.entries().remove(&id);
        if removed.is_some() {
            self.count(0, 1);
        }
        removed
    }

    /// What a message to callback `id` reaches: a function of ours (kept), or the
    /// response to one of our calls (taken).
    pub(super) fn take_for_call(&self, id: u64) -> Option<Entry> {
        let mut entries = self.entries();
        match entries.get(&id) {
            Some(Entry::User(cb)) => Some(Entry::User(cb.clone())),
            Some(Entry::Response(_)) => {
                self.count(0, 1);
                entries.remove(&id)
            }
            None => None,
        }
    }

    /// Empties the table (the connection ended): waiting calls fail with `disconnect`.
    pub(super) fn clear(&self) {
        let entries: Vec<Entry> = self.entries().drain().map(|(_, e)| e).collect();
        self.count(0, entries.len());
        drop(entries);
    }

    /// Registers the functions of `payload` (all of them, or none when the table is full)
    /// and returns its value with the `callbacks` entries, paths under `prefix`.
    pub(super) fn place(
        &self,
        payload: Payload,
        prefix: &[Segment],
    ) -> Result<(Value, Vec<(u64, Path)>), PlaceError> {
        let (value, callbacks) = payload.into_parts().map_err(PlaceError::Payload)?;
        self.place_parts(value, callbacks, prefix)
    }

    /// [`Table::place`] for a value and its functions given apart.
    pub(super) fn place_parts(
        &self,
        value: Value,
        callbacks: Vec<(Path, Callback)>,
        prefix: &[Segment],
    ) -> Result<(Value, Vec<(u64, Path)>), PlaceError> {
        if callbacks.is_empty() {
            return Ok((value, Vec::new()));
        }
        let mut entries = self.entries();
        if entries.len().saturating_add(callbacks.len()) > self.max {
            return Err(self.full());
        }
        self.count(callbacks.len(), 0);
        let placed = callbacks
            .into_iter()
            .map(|(path, cb)| {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                entries.insert(id, Entry::User(cb));
                let mut full = prefix.to_vec();
                full.extend(path);
                (id, full)
            })
            .collect();
        Ok((value, placed))
    }

    /// The text of a call to remote function `id` with the argument list `args` and the
    /// functions inside it.
    pub(super) fn encode_callback_call(
        &self,
        id: u64,
        args: Value,
        functions: Vec<(Path, Callback)>,
    ) -> Result<String, PlaceError> {
        let (value, callbacks) = self.place_parts(args, functions, &[])?;
        let arguments = match value {
            Value::Array(a) => a,
            other => vec![other],
        };
        Ok(Message {
            method: Method::Callback(id),
            arguments,
            callbacks,
        }
        .to_json())
    }
}
