//! In-memory storage: for tests and single-process setups where nothing must survive a
//! restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::{matches, Event, KiteRecord, Storage, StorageError, StorageResult};
use crate::auth::KeyPair;
use crate::protocol::{Kite, KiteQuery};

struct Key {
    pair: KeyPair,
    deleted: bool,
}

#[derive(Default)]
struct State {
    kites: HashMap<String, (KiteRecord, Instant)>,
    keys: Vec<Key>,
}

/// Storage in process memory.
pub struct Memory {
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::default()),
            events: broadcast::channel(1024).0,
        }
    }
}

impl Memory {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn find_key(state: &State, f: impl Fn(&KeyPair) -> bool) -> StorageResult<KeyPair> {
    match state.keys.iter().find(|k| f(&k.pair)) {
        None => Err(StorageError::KeyNotFound),
        Some(k) if k.deleted => Err(StorageError::KeyDeleted),
        Some(k) => Ok(k.pair.clone()),
    }
}

#[async_trait::async_trait]
impl Storage for Memory {
    async fn upsert(&self, record: &KiteRecord) -> StorageResult<()> {
        self.state()
            .kites
            .insert(record.kite.id.clone(), (record.clone(), Instant::now()));
        let _ = self.events.send(Event::Register(record.clone()));
        Ok(())
    }

    async fn touch(&self, kite: &Kite) -> StorageResult<bool> {
        Ok(match self.state().kites.get_mut(&kite.id) {
            Some((_, at)) => {
                *at = Instant::now();
                true
            }
            None => false,
        })
    }

    async fn delete(&self, kite: &Kite) -> StorageResult<bool> {
        let removed = self.state().kites.remove(&kite.id);
        if let Some((r, _)) = &removed {
            let _ = self.events.send(Event::Deregister(r.kite.clone()));
        }
        Ok(removed.is_some())
    }

    async fn get(&self, query: &KiteQuery) -> StorageResult<Vec<KiteRecord>> {
        Ok(self
            .state()
            .kites
            .values()
            .filter(|(r, _)| matches(&r.kite, query))
            .map(|(r, _)| r.clone())
            .collect())
    }

    async fn get_by_id(&self, id: &str) -> StorageResult<Option<KiteRecord>> {
        Ok(self.state().kites.get(id).map(|(r, _)| r.clone()))
    }

    async fn expire(&self, older_than: Duration) -> StorageResult<Vec<Kite>> {
        let now = Instant::now();
        let mut st = self.state();
        let old: Vec<String> = st
            .kites
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) > older_than)
            .map(|(id, _)| id.clone())
            .collect();
        let removed: Vec<Kite> = old
            .iter()
            .filter_map(|id| st.kites.remove(id))
            .map(|(r, _)| r.kite)
            .collect();
        drop(st);
        for k in &removed {
            let _ = self.events.send(Event::Deregister(k.clone()));
        }
        Ok(removed)
    }

    async fn watch(&self) -> StorageResult<BoxStream<'static, Event>> {
        let rx = self.events.subscribe();
        Ok(futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Some((e, rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "watcher fell behind; events dropped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed())
    }

    async fn add_key(&self, pair: &KeyPair) -> StorageResult<()> {
        let mut st = self.state();
        if st
            .keys
            .iter()
            .any(|k| k.pair.id == pair.id || k.pair.public_pem.trim() == pair.public_pem.trim())
        {
            return Err(StorageError::Invalid("key pair already exists".into()));
        }
        st.keys.push(Key {
            pair: pair.clone(),
            deleted: false,
        });
        Ok(())
    }

    async fn delete_key(&self, id: &str) -> StorageResult<()> {
        match self.state().keys.iter_mut().find(|k| k.pair.id == id) {
            Some(k) => {
                k.deleted = true;
                Ok(())
            }
            None => Err(StorageError::KeyNotFound),
        }
    }

    async fn key_by_id(&self, id: &str) -> StorageResult<KeyPair> {
        find_key(&self.state(), |p| p.id == id)
    }

    async fn key_by_public(&self, public_pem: &str) -> StorageResult<KeyPair> {
        let public_pem = public_pem.trim();
        find_key(&self.state(), |p| p.public_pem.trim() == public_pem)
    }

    async fn active_keys(&self) -> StorageResult<Vec<KeyPair>> {
        Ok(self
            .state()
            .keys
            .iter()
            .filter(|k| !k.deleted)
            .map(|k| k.pair.clone())
            .collect())
    }
}
