//! Kontrol's live view (`/ui`, when [`KontrolConfig::ui`](super::KontrolConfig::ui) is on):
//! a plain HTML page, the registry as server-sent events (a snapshot, then Kontrol's own
//! watch), and Kontrol's counters for its rates. Read-only; loopback clients only unless a
//! token is configured, which every request must then carry (`?token=`). Kontrol makes no
//! request to any kite for it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::{METHOD_GET_KITES, METHOD_REGISTER};
use super::state::Inner;
use super::storage::{Event, KiteRecord};
use crate::protocol::KiteQuery;

/// The page: HTML, CSS and JavaScript in one file, served as it is.
const PAGE: &str = include_str!("ui.html");

/// Live views open at once; more are answered 503.
const MAX_VIEWERS: usize = 32;

struct Ui {
    kontrol: Weak<Inner>,
    token: Option<String>,
    viewers: Arc<Semaphore>,
}

/// The `/ui` routes.
pub(super) fn routes(kontrol: Weak<Inner>, token: Option<String>) -> Router {
    let ui = Arc::new(Ui {
        kontrol,
        token: token.filter(|t| !t.is_empty()),
        viewers: Arc::new(Semaphore::new(MAX_VIEWERS)),
    });
    Router::new()
        .route("/ui", get(page))
        .route("/ui/events", get(events))
        .route("/ui/stats", get(stats))
        .with_state(ui)
}

#[derive(Deserialize)]
struct Access {
    #[serde(default)]
    token: Option<String>,
}

/// `None` when the request may see the view, else the refusal.
fn refused(ui: &Ui, access: &Access, req: &Request) -> Option<Response> {
    match &ui.token {
        Some(want) => {
            let given = access.token.as_deref().unwrap_or_default();
            // Compared in full whatever the first difference.
            let same = given.len() == want.len()
                && given
                    .bytes()
                    .zip(want.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            (!same).then(|| (StatusCode::UNAUTHORIZED, "a valid ?token= is needed").into_response())
        }
        None => {
            let loopback = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|c| c.0.ip().is_loopback());
            (!loopback).then(|| {
                (
                    StatusCode::FORBIDDEN,
                    "the view is served to loopback clients only (configure a UI token)",
                )
                    .into_response()
            })
        }
    }
}

async fn page(State(ui): State<Arc<Ui>>, Query(access): Query<Access>, req: Request) -> Response {
    if let Some(r) = refused(&ui, &access, &req) {
        return r;
    }
    ([("cache-control", "no-store")], Html(PAGE)).into_response()
}

/// Seconds since the epoch.
fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A kite as the page shows it; `since` when this Kontrol registered it.
fn kite_json(inner: &Inner, r: &KiteRecord) -> Value {
    let since = inner
        .registrations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&r.kite.id)
        .map(|reg| epoch(reg.since));
    json!({"kite": r.kite, "url": r.url, "since": since})
}

async fn events(State(ui): State<Arc<Ui>>, Query(access): Query<Access>, req: Request) -> Response {
    if let Some(r) = refused(&ui, &access, &req) {
        return r;
    }
    let Ok(permit) = ui.viewers.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live views").into_response();
    };
    let Some(inner) = ui.kontrol.upgrade() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "kontrol is closed").into_response();
    };
    // Subscribed before reading, so that no change between the two is missed.
    let watch = match inner.storage.watch().await {
        Ok(w) => w,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let kites = match inner.storage.get(&KiteQuery::default()).await {
        Ok(k) => k,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let snapshot: Vec<Value> = kites.iter().map(|r| kite_json(&inner, r)).collect();
    let first = SseEvent::default()
        .event("snapshot")
        .data(Value::Array(snapshot).to_string());
    let weak = ui.kontrol.clone();
    drop(inner);
    let changes = watch.filter_map(move |e| {
        let weak = weak.clone();
        async move { change(&weak, e) }
    });
    Sse::new(live(first, changes, permit))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The snapshot, then the changes, holding the viewer's slot while the stream lives.
fn live(
    first: SseEvent,
    changes: impl Stream<Item = SseEvent> + Send + 'static,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    stream::once(async move { first })
        .chain(changes)
        .map(move |e| {
            let _slot = &permit;
            Ok(e)
        })
}

fn change(kontrol: &Weak<Inner>, e: Event) -> Option<SseEvent> {
    let inner = kontrol.upgrade()?;
    Some(match e {
        Event::Register(r) => SseEvent::default()
            .event("register")
            .data(kite_json(&inner, &r).to_string()),
        Event::Deregister(k) => SseEvent::default()
            .event("deregister")
            .data(json!({ "kite": k }).to_string()),
    })
}

async fn stats(State(ui): State<Arc<Ui>>, Query(access): Query<Access>, req: Request) -> Response {
    if let Some(r) = refused(&ui, &access, &req) {
        return r;
    }
    let Some(inner) = ui.kontrol.upgrade() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "kontrol is closed").into_response();
    };
    let registered = inner
        .registrations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    let body = match inner.kite.metrics() {
        Some(m) => json!({
            "metrics": true,
            "registered": registered,
            "register": m.calls(METHOD_REGISTER),
            "getKites": m.calls(METHOD_GET_KITES),
            "tokens": inner.tokens.minted.get(),
            "watchers": inner.metrics.as_ref().map_or(0, |k| k.watchers.get()),
        }),
        None => json!({"metrics": false, "registered": registered}),
    };
    ([("cache-control", "no-store")], Json(body)).into_response()
}
