//! The kite's side of Kontrol's HTTP endpoints: register with `POST /register` (once or
//! forever) and send `GET /heartbeat` until Kontrol answers `registeragain`. Above
//! `client` (the dnode side), whose registration bookkeeping it shares.
#![deny(clippy::arithmetic_side_effects)]

use std::time::Duration;

use serde_json::json;

use super::client::log_once;
use super::config::RegisterResult;
use crate::protocol::Auth;
use crate::server::Kite;
use crate::sockjs;
use crate::Error;

/// A failed HTTP request to Kontrol: [`Error::Tls`] for a TLS failure, a
/// [`DialError`](crate::DialError) when it could not connect (refused, unresolved, timed
/// out), else a send error; with the whole chain of causes (reqwest's own text hides them).
fn http_error(url: &str, origin: Option<String>, e: &reqwest::Error) -> Error {
    if let Some(r) = crate::tls::find_rustls_error(e) {
        return Error::Tls {
            url: url.to_string(),
            reason: crate::tls::describe(r),
        };
    }
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    if e.is_connect() || e.is_timeout() {
        let cause = if e.is_timeout() {
            crate::sockjs::ConnectError::Timeout
        } else {
            crate::sockjs::ConnectError::Io(text)
        };
        crate::DialError::new(url, &cause)
            .with_origin(origin)
            .into()
    } else {
        Error::Send(text)
    }
}

fn http_path(kontrol_url: &str, path: &str) -> String {
    let base = kontrol_url.trim_end_matches('/');
    let base = base.strip_suffix("/kite").unwrap_or(base);
    format!("{base}/{path}")
}

impl Kite {
    /// Registers over HTTP (`POST {kontrol}/register`) and sends HTTP heartbeats at the
    /// interval Kontrol asks for, until Kontrol answers `registeragain`.
    pub async fn register_http(&self, url: &str) -> Result<RegisterResult, Error> {
        let config = self.config();
        if config.kontrol_url.is_empty() {
            return Err(Error::Config("no kontrol URL given in config".into()));
        }
        let body = json!({
            "url": url,
            "kite": self.identity(),
            "auth": { "type": Auth::KITE_KEY, "key": self.kite_key() },
        });
        let target = http_path(&config.kontrol_url, "register");
        let dialer = crate::client::dialer(self);
        // The kite's shared client (its TLS trust); a broken trust setting fails here.
        dialer.tls_for(&target)?;
        let http = match dialer.http() {
            Some(h) => h,
            None => {
                sockjs::client::http_client(None, config.handshake_timeout).map_err(Error::Send)?
            }
        };
        let resp = http
            .post(&target)
            .timeout(config.timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| http_error(&target, config.kontrol_url_source(), &e))?;
        let result: RegisterResult = resp
            .json()
            .await
            .map_err(|e| Error::InvalidResponse(e.to_string()))?;
        if !result.error.is_empty() {
            return Err(Error::Remote(crate::KiteError::generic(result.error)));
        }
        if result.heartbeat_interval <= 0 {
            return Err(Error::InvalidResponse(
                "heartbeat interval cannot be zero".into(),
            ));
        }
        self.registered(&result);
        self.leave_on_close();
        let kite = self.clone();
        let interval = Duration::from_secs(result.heartbeat_interval as u64);
        let url = url.to_string();
        tokio::spawn(async move { kite.http_heartbeats(http, interval, url).await });
        Ok(result)
    }

    async fn http_heartbeats(&self, http: reqwest::Client, interval: Duration, url: String) {
        let config = self.config();
        let target = format!(
            "{}?id={}",
            http_path(&config.kontrol_url, "heartbeat"),
            config.id
        );
        let closed = self.inner.closed.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = closed.cancelled() => return,
            }
            let answer = match http.get(&target).timeout(config.timeout).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat to kontrol failed");
                    continue;
                }
            };
            if answer.trim() == "registeragain" {
                tracing::info!("kontrol forgot us; registering again");
                let kite = self.clone();
                tokio::spawn(async move { kite.register_http_forever(&url).await });
                return;
            }
        }
    }

    /// [`Kite::register_http`], retrying with exponential backoff (30 s growing to 5 min)
    /// until it succeeds; re-registers whenever Kontrol answers `registeragain`.
    pub fn register_http_forever<'a>(
        &'a self,
        url: &'a str,
    ) -> crate::dnode::BoxFuture<'a, RegisterResult> {
        Box::pin(async move {
            let mut delay = Duration::from_secs(30);
            let mut last = None;
            loop {
                match self.register_http(url).await {
                    Ok(r) => return r,
                    Err(e) => {
                        log_once(
                            &mut last,
                            &e,
                            "cannot register to kontrol over HTTP; retrying",
                        );
                        tokio::time::sleep(delay).await;
                        delay = (delay.mul_f64(1.7)).min(Duration::from_secs(300));
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kontrol_http_paths() {
        assert_eq!(
            http_path("http://k:4000/kite", "register"),
            "http://k:4000/register"
        );
        assert_eq!(
            http_path("http://k:4000/kite/", "heartbeat"),
            "http://k:4000/heartbeat"
        );
        assert_eq!(
            http_path("http://k:4000", "register"),
            "http://k:4000/register"
        );
    }
}
