//! Plain HTTP responses of a SockJS service: greeting, `/info`, `iframe.html`, CORS,
//! caching and cookie headers, and the error pages.

use axum::body::Body;
use axum::response::Response;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use std::time::{Duration, SystemTime};

use super::super::config::ServerConfig;

pub(super) const CT_PLAIN: &str = "text/plain; charset=UTF-8";
pub(super) const CT_JS: &str = "application/javascript; charset=UTF-8";
pub(super) const CT_JSON: &str = "application/json; charset=UTF-8";
pub(super) const CT_HTML: &str = "text/html; charset=UTF-8";
const ONE_YEAR: u64 = 31_536_000;
const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";

/// A response with a body and content type.
pub(super) fn text(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, hv(content_type));
    r
}

pub(super) fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(super) fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        CT_PLAIN,
        "404 Error: Page not found\n",
    )
}

/// 405 with an `Allow` header, no content type and no body.
pub(super) fn method_not_allowed(allow: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r.headers_mut().insert(header::ALLOW, hv(allow));
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

pub(super) fn server_error(message: &str) -> Response {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        CT_PLAIN,
        message.to_string(),
    )
}

/// CORS headers: the request's origin with credentials, or `*` without.
pub(super) fn cors(req: &HeaderMap, out: &mut HeaderMap) {
    match req.get(header::ORIGIN) {
        Some(origin) => {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        None => {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    if let Some(h) = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        if !h.is_empty() {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
    }
}

pub(super) fn no_cache(out: &mut HeaderMap) {
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
}

fn cache_for_a_year(out: &mut HeaderMap) {
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={ONE_YEAR}"))
            .unwrap_or_else(|_| HeaderValue::from_static("public")),
    );
    let now = SystemTime::now();
    let expires = now
        .checked_add(Duration::from_secs(ONE_YEAR))
        .unwrap_or(now);
    out.insert(header::EXPIRES, hv(&httpdate::fmt_http_date(expires)));
}

/// `JSESSIONID` cookie, when the service asks for it: the client's own value, or `dummy`.
pub(super) fn cookie(config: &ServerConfig, req: &HeaderMap, out: &mut HeaderMap) {
    if !config.cookie_needed {
        return;
    }
    let value = req
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix("JSESSIONID="))
        .find(|v| !v.is_empty())
        .unwrap_or("dummy");
    out.insert(
        header::SET_COOKIE,
        hv(&format!("JSESSIONID={value}; path=/")),
    );
}

/// Answer to `OPTIONS` on a transport or `/info`.
pub(super) fn options(config: &ServerConfig, req: &HeaderMap, methods: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    cache_for_a_year(h);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, hv(methods));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, hv(&ONE_YEAR.to_string()));
    cors(req, h);
    cookie(config, req, h);
    r
}

pub(super) fn greeting(method: &Method) -> Response {
    match *method {
        Method::GET | Method::HEAD => text(StatusCode::OK, CT_PLAIN, "Welcome to SockJS!\n"),
        _ => method_not_allowed("GET, HEAD"),
    }
}

pub(super) fn info(config: &ServerConfig, method: &Method, req: &HeaderMap) -> Response {
    match *method {
        Method::GET => {
            let body = serde_json::json!({
                "websocket": config.websocket,
                "cookie_needed": config.cookie_needed,
                "origins": ["*:*"],
                "entropy": rand::random::<u32>(),
            });
            let mut r = text(StatusCode::OK, CT_JSON, body.to_string());
            no_cache(r.headers_mut());
            cors(req, r.headers_mut());
            r
        }
        Method::OPTIONS => options(config, req, "OPTIONS, GET"),
        _ => method_not_allowed("OPTIONS, GET"),
    }
}

/// Whether `segment` is `iframe.html` or `iframe-<version>.html`.
pub(super) fn is_iframe(segment: &str) -> bool {
    segment
        .strip_prefix("iframe")
        .and_then(|r| r.strip_suffix(".html"))
        .is_some_and(|v| {
            v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        })
}

pub(super) fn iframe(config: &ServerConfig, method: &Method, req: &HeaderMap) -> Response {
    if *method != Method::GET && *method != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    let body = format!(
        r#"<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"#,
        html_attr(&config.sockjs_url)
    );
    let etag = format!("\"{:x}\"", md5::Md5::digest(body.as_bytes()));
    if req
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return r;
    }
    let mut r = text(StatusCode::OK, CT_HTML, body);
    cache_for_a_year(r.headers_mut());
    r.headers_mut().insert(header::ETAG, hv(&etag));
    r
}

fn html_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

use md5::Digest as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iframe_names() {
        for ok in [
            "iframe.html",
            "iframe-a.html",
            "iframe-.html",
            "iframe-0.1.2.html",
            "iframe-0.1.2abc-dirty.2144.html",
        ] {
            assert!(is_iframe(ok), "{ok}");
        }
        for bad in [
            "iframe.htm",
            "iframe",
            "IFRAME.HTML",
            "iframe.HTML",
            "iframe.xml",
            "iframe-/.html",
        ] {
            assert!(!is_iframe(bad), "{bad}");
        }
    }
}
