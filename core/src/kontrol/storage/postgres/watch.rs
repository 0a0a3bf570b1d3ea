//! Watching: one `LISTEN` connection per storage, whose task fans notifications out to every
//! watcher and re-establishes the connection when it is lost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::config::Target;
use crate::kontrol::storage::{Event, KiteRecord, StorageResult};
use crate::protocol::Kite;

/// The `LISTEN`/`NOTIFY` channel that carries registry changes as JSON:
/// `{"action":"REGISTER","kite":{…},"url":U,"keyId":K}` or `{"action":"DEREGISTER","kite":{…}}`.
pub const CHANNEL: &str = "kite_events";

/// A change as carried by `NOTIFY`.
#[derive(Serialize, Deserialize)]
struct Notice {
    action: String,
    kite: Kite,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    url: String,
    #[serde(default, rename = "keyId", skip_serializing_if = "String::is_empty")]
    key_id: String,
}

/// The `NOTIFY` payload announcing `record`.
pub(super) fn register_payload(record: &KiteRecord) -> String {
    let notice = Notice {
        action: "REGISTER".into(),
        kite: record.kite.clone(),
        url: record.url.clone(),
        key_id: record.key_id.clone(),
    };
    // Plain strings only: serialising cannot fail.
    serde_json::to_string(&notice).unwrap_or_default()
}

impl Notice {
    fn into_event(self) -> Option<Event> {
        match self.action.as_str() {
            "REGISTER" => Some(Event::Register(KiteRecord {
                kite: self.kite,
                url: self.url,
                key_id: self.key_id,
            })),
            "DEREGISTER" => Some(Event::Deregister(self.kite)),
            _ => None,
        }
    }
}

/// The shared `LISTEN` connection: its task and the channel that fans events out.
pub(super) struct Watcher {
    events: broadcast::Sender<Event>,
    task: AbortHandle,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    /// Starts listening; returns once `LISTEN` is in effect, so that every change committed
    /// after this returns is seen.
    pub(super) async fn start(
        options: PgConnectOptions,
        target: Arc<Target>,
    ) -> StorageResult<Watcher> {
        // A pool of its own, so that watching never takes a connection from calls.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(target.timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        let listener = listen(&pool).await.map_err(|e| target.err(e))?;
        let (events, _) = broadcast::channel(1024);
        let task = tokio::spawn(relay(pool, listener, events.clone(), target));
        Ok(Watcher {
            events,
            task: task.abort_handle(),
        })
    }

    /// Changes from now on.
    pub(super) fn subscribe(&self) -> BoxStream<'static, Event> {
        futures_util::stream::unfold(self.events.subscribe(), |mut rx| async move {
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
        .boxed()
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Forwards notifications to `events` for as long as the storage lives, re-establishing the
/// `LISTEN` connection whenever it is lost (changes made while it is down are not seen).
async fn relay(
    pool: PgPool,
    listener: PgListener,
    events: broadcast::Sender<Event>,
    target: Arc<Target>,
) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(50);
    const MAX_BACKOFF: Duration = Duration::from_secs(1);
    let mut listener = Some(listener);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let l = match listener.as_mut() {
            Some(l) => l,
            None => match listen(&pool).await {
                Ok(l) => {
                    tracing::info!(db = %target.name, "postgres: listening for registry changes again");
                    backoff = FIRST_BACKOFF;
                    listener.insert(l)
                }
                Err(e) => {
                    tracing::debug!(error = %target.err(e), "postgres: cannot listen yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        match l.try_recv().await {
            Ok(Some(n)) => match serde_json::from_str::<Notice>(n.payload())
                .ok()
                .and_then(Notice::into_event)
            {
                // No receivers is fine: nobody is watching right now.
                Some(event) => drop(events.send(event)),
                None => tracing::warn!(
                    payload = n.payload(),
                    "postgres: ignoring malformed notification"
                ),
            },
            Ok(None) => tracing::warn!(
                db = %target.name,
                "postgres: watch connection was lost and re-established; changes in between were missed"
            ),
            Err(e) => {
                tracing::warn!(error = %target.err(e), "postgres: watch connection lost; reconnecting");
                // Dropping the listener returns its (possibly broken) connection to the pool,
                // which tests connections before handing them out.
                listener = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
