//! Kontrol's HTTP endpoints: `POST /register` (register without a dnode connection) and
//! `GET /heartbeat?id=KITEID` (`pong`, or `registeragain` when Kontrol forgot the kite).
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Weak;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::config::heartbeat_secs;
use super::state::{Inner, Kontrol};
use super::storage::KiteRecord;
use crate::protocol::{Auth, Kite as KiteIdentity};

pub(crate) fn routes(inner: Weak<Inner>) -> Router {
    Router::new()
        .route("/register", post(register))
        .route("/heartbeat", get(heartbeat))
        .with_state(inner)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "err": message.to_string() }))).into_response()
}

#[derive(Deserialize)]
struct RegisterArgs {
    #[serde(default)]
    url: String,
    #[serde(default)]
    kite: KiteIdentity,
    #[serde(default)]
    auth: Option<Auth>,
}

async fn register(State(inner): State<Weak<Inner>>, body: axum::body::Bytes) -> Response {
    let Some(inner) = inner.upgrade() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "kontrol is closed");
    };
    let k = Kontrol { inner };
    let args: RegisterArgs = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("wrong register input: '{e}'"),
            )
        }
    };
    let auth = args.auth.unwrap_or(Auth {
        kind: String::new(),
        key: String::new(),
    });
    if auth.kind != Auth::KITE_KEY {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unexpected authentication type: {}", auth.kind),
        );
    }
    if args.url.is_empty() {
        return error(StatusCode::BAD_REQUEST, "empty URL");
    }
    if let Err(e) = super::register_url::check_register_url(&args.url) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let (pair, mut result, username) = match k.key_outcome(&auth.key).await {
        Ok(x) => x,
        Err(e) => return error(StatusCode::UNAUTHORIZED, e),
    };
    let mut kite = args.kite;
    kite.username = username;
    if let Err(e) = kite.validate() {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let record = KiteRecord {
        kite: kite.clone(),
        url: args.url.clone(),
        key_id: pair.id,
    };
    if let Err(e) = k.inner.storage.upsert(&record).await {
        tracing::error!(error = %e, "storage");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error - register",
        );
    }
    k.watch_heartbeats(&record, &auth.key);
    tracing::info!(kite = %kite, url = %args.url, "kite registered over HTTP");
    result.url = args.url;
    result.heartbeat_interval = heartbeat_secs(&k.inner.config) as i64;
    Json(result).into_response()
}

#[derive(Deserialize)]
struct HeartbeatArgs {
    #[serde(default)]
    id: String,
}

async fn heartbeat(
    State(inner): State<Weak<Inner>>,
    Query(args): Query<HeartbeatArgs>,
) -> Response {
    if args.id.is_empty() {
        return (StatusCode::BAD_REQUEST, "query id is empty").into_response();
    }
    let Some(inner) = inner.upgrade() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "kontrol is closed").into_response();
    };
    let k = Kontrol { inner };
    if k.http_heartbeat(&args.id) {
        "pong"
    } else {
        "registeragain"
    }
    .into_response()
}
