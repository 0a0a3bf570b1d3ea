//! The etcd side of `Storage::watch`: one etcd watch on
//! the kite keys per watcher, turned into registry events and re-opened where it stopped
//! when the connection breaks.

use std::collections::HashSet;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions, WatchResponse, WatchStream};
use tokio::sync::mpsc;

use super::layout::{kite_from_key, record_from, KITES_PREFIX};
use crate::kontrol::storage::Event;

/// Starts watching the kite keys from revision `from` (or from now); returns the stream,
/// acknowledged by etcd, and the first revision it will report.
pub(super) async fn open_watch(
    client: &mut Client,
    from: Option<i64>,
) -> Result<(WatchStream, i64), etcd_client::Error> {
    let mut options = WatchOptions::new().with_prefix();
    if let Some(revision) = from {
        options = options.with_start_revision(revision);
    }
    let mut stream = client.watch(KITES_PREFIX, Some(options)).await?;
    loop {
        match stream.message().await? {
            Some(resp) if resp.created() => {
                let now = resp.header().map_or(0, |h| h.revision()) + 1;
                return Ok((stream, from.unwrap_or(now)));
            }
            Some(_) => continue,
            None => return Err(etcd_client::Error::WatchError("watch closed".into())),
        }
    }
}

/// Forwards registry events to `tx` until its receiver is dropped, re-opening the watch
/// where it stopped whenever the connection to etcd breaks.
pub(super) async fn forward(
    mut client: Client,
    stream: WatchStream,
    mut next: i64,
    tx: mpsc::Sender<Event>,
) {
    let mut stream = Some(stream);
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(mut watch) = stream.take() else {
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            match open_watch(&mut client, Some(next)).await {
                Ok((s, _)) => {
                    stream = Some(s);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "etcd watch not re-opened yet");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            continue;
        };
        let resp = tokio::select! {
            () = tx.closed() => return,
            resp = watch.message() => resp,
        };
        match resp {
            Ok(Some(resp)) if resp.canceled() => {
                if resp.compact_revision() > next {
                    tracing::warn!(
                        from = next,
                        to = resp.compact_revision(),
                        "etcd compacted away registry events; watchers missed them"
                    );
                    next = resp.compact_revision();
                }
            }
            Ok(Some(resp)) => {
                for event in events(&resp) {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                if let Some(last) = resp.events().last().and_then(|e| e.kv()) {
                    next = next.max(last.mod_revision() + 1);
                }
                stream = Some(watch);
            }
            Ok(None) => tracing::debug!("etcd watch closed; re-opening"),
            Err(e) => tracing::debug!(error = %e, "etcd watch broke; re-opening"),
        }
    }
}

/// Registry events in one watch response. A kite re-registered under another key with the
/// same id (one transaction: delete the old key, put the new) is one `Register`.
fn events(resp: &WatchResponse) -> Vec<Event> {
    let put: HashSet<(i64, String)> = resp
        .events()
        .iter()
        .filter(|e| e.event_type() == EventType::Put)
        .filter_map(|e| e.kv())
        .filter_map(|kv| Some((kv.mod_revision(), kite_from_key(kv.key())?.id)))
        .collect();
    resp.events()
        .iter()
        .filter_map(|e| {
            let kv = e.kv()?;
            match e.event_type() {
                EventType::Put => record_from(kv).map(Event::Register),
                EventType::Delete => {
                    let kite = kite_from_key(kv.key())?;
                    let moved = put.contains(&(kv.mod_revision(), kite.id.clone()));
                    (!moved).then_some(Event::Deregister(kite))
                }
            }
        })
        .collect()
}
