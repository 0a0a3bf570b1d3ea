//! Extra HTTP routes served by JavaScript handlers (`Kite.addRoute`): the request as a plain
//! object, the handler's value as the response.

use std::sync::Arc;

use kite::server::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use crate::bridge::{Bridge, Subject};

/// A request to a route, as JavaScript gets it.
#[napi(object, js_name = "HttpRequest")]
pub struct HttpRequestObject {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, e.g. `/health`.
    pub path: String,
    /// The query string without `?` (may be empty).
    pub query: String,
    /// The headers (lower-case names).
    pub headers: std::collections::HashMap<String, String>,
    /// The body as UTF-8 text (invalid sequences replaced), at most 1 MiB.
    pub body: String,
}

/// What a route handler may resolve with besides a string.
#[napi(object, js_name = "HttpResponse")]
pub struct HttpResponseObject {
    /// The status code. Default: 200.
    pub status: Option<u32>,
    /// Extra headers, e.g. `{ 'content-type': 'text/html' }`.
    pub headers: Option<std::collections::HashMap<String, String>>,
    /// A string (sent as text) or any other value (sent as JSON).
    #[napi(ts_type = "unknown")]
    pub body: Option<serde_json::Value>,
}

fn body(v: Value) -> (Vec<u8>, &'static str) {
    match v {
        Value::Null => (Vec::new(), ""),
        Value::String(s) => (s.into_bytes(), "text/plain; charset=utf-8"),
        other => (other.to_string().into_bytes(), "application/json"),
    }
}

/// The response for what the handler settled with.
fn response(settled: Result<Option<kite::Payload>, kite::KiteError>) -> HttpResponse {
    let v = match settled {
        Ok(v) => v.map(|p| p.value().clone()),
        Err(e) => {
            tracing::error!(error = %e.message, "a JavaScript route handler failed");
            return HttpResponse::text(500, "internal error");
        }
    };
    let (status, headers, content) = match v {
        None => {
            return HttpResponse {
                status: 204,
                headers: Vec::new(),
                body: Vec::new(),
            }
        }
        Some(Value::Object(mut o)) => {
            let status = o.get("status").and_then(Value::as_u64).unwrap_or(200);
            let headers = match o.remove("headers") {
                Some(Value::Object(h)) => h
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
                    .collect(),
                _ => Vec::new(),
            };
            (status, headers, o.remove("body").unwrap_or(Value::Null))
        }
        Some(other) => (200, Vec::new(), other),
    };
    let (bytes, kind) = body(content);
    let mut all: Vec<(String, String)> = Vec::new();
    if !kind.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        all.push(("content-type".into(), kind.into()));
    }
    all.extend(headers);
    HttpResponse {
        status: u16::try_from(status).unwrap_or(500),
        headers: all,
        body: bytes,
    }
}

/// Runs the JavaScript handler `func` for `req`.
pub(crate) async fn serve(bridge: Arc<Bridge>, func: u64, req: HttpRequest) -> HttpResponse {
    let headers: Map<String, Value> = req
        .headers
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let subject = Subject::Value(json!({
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "headers": headers,
        "body": String::from_utf8_lossy(&req.body),
    }));
    response(bridge.invoke(func, subject, None, None).await)
}
