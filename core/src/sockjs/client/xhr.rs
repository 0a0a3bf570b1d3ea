//! XHR polling client: `POST …/xhr` opens the session and then receives frames, one
//! request at a time; `POST …/xhr_send` sends queued messages as one JSON array.
//! A 404 ends the session (the server forgot it); a poll that times out is retried.

use std::time::Duration;

use super::super::frame::{client_payload, parse_frame, CloseReason, Frame};
use super::super::session::{Outgoing, Session};
use super::dial::{http_client, is_tls_url, plain_on_tls, tls_for};
use super::options::{ClientConfig, ConnectError, Target};

fn io(url: &str, e: reqwest::Error) -> ConnectError {
    if let Some(r) = crate::tls::find_rustls_error(&e) {
        return ConnectError::Tls {
            url: url.to_string(),
            reason: crate::tls::describe(r),
        };
    }
    // reqwest's message hides the cause ("error sending request"); keep the whole chain.
    let mut text = format!("{url}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    ConnectError::Io(text)
}

pub(super) async fn connect(
    target: &Target,
    config: &ClientConfig,
) -> Result<Session, ConnectError> {
    let url = target.url.as_str();
    let http = match &config.http {
        Some(h) => h.clone(),
        None => {
            let tls = if is_tls_url(url) {
                Some(tls_for(url, config)?)
            } else {
                // Plain URLs never use it; a broken trust configuration is not their error.
                crate::tls::default_client_config().ok()
            };
            http_client(tls, config.connect_timeout).map_err(ConnectError::Io)?
        }
    };
    let open = || {
        http.post(format!("{}/xhr{}", target.session_url, target.query))
            .header(http::header::ORIGIN, &target.origin)
            .send()
    };
    // A server that just refused a websocket upgrade (the `auto` fallback) may drop the
    // next connection it accepts; one retry of the opening request covers that.
    let mut attempt = 0;
    let resp = loop {
        match open().await {
            Ok(r) => break r,
            Err(e)
                if attempt < 2
                    && (e.is_connect() || e.is_request())
                    && crate::tls::find_rustls_error(&e).is_none() =>
            {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "opening XHR request failed; retrying");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(io(url, e)),
        }
    };
    if !resp.status().is_success() {
        let status = resp.status().as_u16();
        // The first chunk only: enough for a TLS port's answer, and bounded.
        let mut resp = resp;
        let head = resp.chunk().await.ok().flatten();
        return Err(plain_on_tls(url, head.as_deref()).unwrap_or(ConnectError::Refused(status)));
    }
    let body = resp.text().await.map_err(|e| io(url, e))?;
    match parse_frame(body.lines().next().unwrap_or("")) {
        Ok(Frame::Open) => {}
        Ok(Frame::Close(r)) => return Err(ConnectError::Closed(r)),
        _ => {
            return Err(ConnectError::Protocol(format!(
                "expected open frame, got {body:?}"
            )))
        }
    }
    let session = Session::new(
        target.session_id.clone(),
        "xhr-polling",
        None,
        config.limits,
    );
    session.open();
    tokio::spawn(receive(
        http.clone(),
        target.clone(),
        config.clone(),
        session.clone(),
    ));
    tokio::spawn(send(http, target.clone(), session.clone()));
    Ok(session)
}

async fn receive(http: reqwest::Client, target: Target, config: ClientConfig, session: Session) {
    let url = format!("{}/xhr{}", target.session_url, target.query);
    loop {
        let poll = async {
            let resp = http
                .post(&url)
                .header(http::header::ORIGIN, &target.origin)
                .timeout(config.poll_timeout)
                .send()
                .await?;
            let status = resp.status();
            let body = resp.text().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let result = tokio::select! {
            r = poll => r,
            _ = session.closed() => return,
        };
        let body = match result {
            Ok((status, body)) if status.is_success() => body,
            Ok((status, _)) if status == reqwest::StatusCode::NOT_FOUND => {
                session.close_with(CloseReason::new(1002, "Session not found"));
                return;
            }
            Ok((status, _)) => {
                tracing::debug!(%status, "xhr poll failed");
                session.close_with(CloseReason::new(
                    1002,
                    format!("Poll failed with HTTP {status}"),
                ));
                return;
            }
            Err(e) if e.is_timeout() => continue,
            Err(e) => {
                tracing::debug!(error = %e, "xhr poll failed");
                session.close_with(CloseReason::interrupted());
                return;
            }
        };
        for line in body.lines().filter(|l| !l.is_empty()) {
            match parse_frame(line) {
                Ok(Frame::Open | Frame::Heartbeat) => {}
                Ok(Frame::Messages(msgs)) => {
                    for m in msgs {
                        if session.push_inbound(m).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Frame::Close(r)) => {
                    session.close_with(r);
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "broken frame from server");
                    session.close_with(CloseReason::new(1002, "Broken framing."));
                    return;
                }
            }
        }
    }
}

async fn send(http: reqwest::Client, target: Target, session: Session) {
    let url = format!("{}/xhr_send{}", target.session_url, target.query);
    loop {
        let messages = match session.next_outgoing().await {
            Outgoing::Messages(m) => m,
            Outgoing::Close(_) => return,
        };
        let result = http
            .post(&url)
            .header(http::header::ORIGIN, &target.origin)
            .header(http::header::CONTENT_TYPE, "text/plain")
            .body(client_payload(&messages))
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::debug!(status = %r.status(), "xhr_send refused");
                session.close_with(CloseReason::new(
                    1002,
                    format!("Send failed with HTTP {}", r.status()),
                ));
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "xhr_send failed");
                session.close_with(CloseReason::interrupted());
                return;
            }
        }
    }
}
