//! Plain HTTP routes beside `/kite` (health checks, webhooks) with a request → response
//! handler and no axum types, so that the bindings can serve them too. Rust users who want
//! axum's extractors use [`Kite::merge_routes`] instead.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::Request as AxumRequest;
use axum::response::Response;
use axum::routing::{on, MethodFilter};

use super::kite::Kite;
use crate::Error;

/// The largest request body an [`HttpRequest`] holds; a larger one is answered 413.
pub const MAX_ROUTE_BODY: usize = 1 << 20;

/// A request to a route added with [`Kite::add_route`].
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, e.g. `/health`.
    pub path: String,
    /// The query string without `?` (may be empty).
    pub query: String,
    /// Header names (lower case) and values; values that are not UTF-8 are left out.
    pub headers: Vec<(String, String)>,
    /// The body (at most [`MAX_ROUTE_BODY`] bytes).
    pub body: Vec<u8>,
}

/// What a route handler answers.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code (100–999; anything else is sent as 500).
    pub status: u16,
    /// Extra headers (e.g. `content-type`); invalid ones are left out.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with `content-type: text/plain; charset=utf-8`.
    pub fn text(status: u16, body: impl Into<String>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: body.into().into_bytes(),
        }
    }
}

/// The (method, path) pairs added so far, to refuse a second handler for one.
#[derive(Default)]
struct Added(Mutex<HashSet<(String, String)>>);

fn check_path(path: &str) -> Result<(), Error> {
    let literal = path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/!$&'()+,;=@%".contains(&b));
    if !literal {
        return Err(Error::Config(format!(
            "route path {path:?}: a literal path starting with '/' (no captures or wildcards)"
        )));
    }
    if path == "/kite" || path.starts_with("/kite/") {
        return Err(Error::Config(format!(
            "route path {path:?}: /kite is the kite's own service"
        )));
    }
    Ok(())
}

fn method_filter(method: &str) -> Result<MethodFilter, Error> {
    Ok(match method.to_ascii_uppercase().as_str() {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        "PATCH" => MethodFilter::PATCH,
        "HEAD" => MethodFilter::HEAD,
        "OPTIONS" => MethodFilter::OPTIONS,
        other => {
            return Err(Error::Config(format!(
                "route method {other:?}: one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS"
            )))
        }
    })
}

fn into_response(r: HttpResponse) -> Response {
    let status =
        http::StatusCode::from_u16(r.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() = status;
    for (name, value) in r.headers {
        match (
            http::HeaderName::try_from(name.as_str()),
            http::HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(n), Ok(v)) => {
                resp.headers_mut().append(n, v);
            }
            _ => tracing::warn!(header = %name, "route handler sent an invalid header; left out"),
        }
    }
    resp
}

impl Kite {
    /// Serves `handler` for `method` (`GET`, `POST`, `PUT`, `DELETE`, `PATCH`, `HEAD`,
    /// `OPTIONS`) on the literal `path` beside `/kite`, e.g. a health check or a webhook.
    /// Routes added after [`Kite::listen`] are served from the next listen. A second handler
    /// for the same method and path, a path under `/kite` or one with captures is an error.
    pub fn add_route<F, Fut>(&self, method: &str, path: &str, handler: F) -> Result<(), Error>
    where
        F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HttpResponse> + Send + 'static,
    {
        let filter = method_filter(method)?;
        check_path(path)?;
        let key = (method.to_ascii_uppercase(), path.to_string());
        let added = self.extension::<Added>();
        if !added
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return Err(Error::Config(format!(
                "a handler for {} {} exists already",
                key.0, key.1
            )));
        }
        let handler = Arc::new(handler);
        let route = on(filter, move |req: AxumRequest| {
            let handler = handler.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = match to_bytes(body, MAX_ROUTE_BODY).await {
                    Ok(b) => b.to_vec(),
                    Err(_) => {
                        return into_response(HttpResponse::text(
                            413,
                            format!("the body is larger than {MAX_ROUTE_BODY} bytes"),
                        ))
                    }
                };
                let request = HttpRequest {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
                        .collect(),
                    body,
                };
                into_response(handler(request).await)
            }
        });
        self.merge_routes(axum::Router::new().route(path, route));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods() {
        assert!(check_path("/health").is_ok());
        assert!(check_path("/hooks/github-push").is_ok());
        assert!(check_path("health").is_err());
        assert!(check_path("/kite").is_err());
        assert!(check_path("/kite/info").is_err());
        assert!(check_path("/users/{id}").is_err());
        assert!(check_path("/files/*rest").is_err());
        assert!(method_filter("get").is_ok());
        assert!(method_filter("BREW").is_err());
    }

    #[tokio::test]
    async fn serves_beside_kite_and_refuses_duplicates() {
        let config = crate::Config {
            ip: "127.0.0.1".into(),
            ..crate::Config::default()
        };
        let k = Kite::with_config("routes", "1.0.0", config).unwrap();
        k.add_route("GET", "/health", |_req| async {
            HttpResponse::text(200, "ok")
        })
        .unwrap();
        k.add_route("POST", "/health", |req: HttpRequest| async move {
            HttpResponse {
                status: 201,
                headers: vec![("x-len".into(), req.body.len().to_string())],
                body: req.body,
            }
        })
        .unwrap();
        assert!(k
            .add_route("GET", "/health", |_req| async {
                HttpResponse::text(200, "")
            })
            .is_err());
        let addr = k.listen().await.unwrap();
        let http = reqwest::Client::new();
        let r = http
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "ok");
        let r = http
            .post(format!("http://{addr}/health"))
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["x-len"], "5");
        assert_eq!(r.text().await.unwrap(), "hello");
        let r = http
            .delete(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        k.close();
    }
}
