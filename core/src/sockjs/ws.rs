//! Moves messages between a websocket and a [`Session`], for the server's framed and raw
//! websocket transports and for the client. Reading and writing run concurrently in one
//! task, so a full inbound queue never stops outgoing frames (no deadlock when both the
//! application and the peer are slow).
#![deny(clippy::arithmetic_side_effects)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::frame::{self, parse_client_payload, parse_frame, CloseReason, Frame};
use super::parts::Parts;
use super::session::{Outgoing, Session};

/// An application task driven by the websocket's own task (see [`pump`]); the server's
/// handler for a session is one.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How messages are framed on this websocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Server side of `/{server}/{session}/websocket`: `a[…]` frames out, arrays in.
    Server,
    /// Server side of raw `/websocket`: one message per websocket message, both ways.
    Raw,
    /// Client side: arrays out, `o`/`h`/`a`/`c` frames in.
    Client,
}

/// Websocket settings for a maximum message size.
pub(crate) fn ws_config(max_message_size: usize) -> WebSocketConfig {
    let mut c = WebSocketConfig::default();
    c.max_message_size = Some(max_message_size);
    c.max_frame_size = Some(max_message_size);
    // tungstenite preallocates its read buffer: 128 KiB per connection by default, which
    // dominates the memory of idle connections. Messages larger than this still work.
    c.read_buffer_size = 8 * 1024;
    c.write_buffer_size = 8 * 1024;
    c
}

/// A close code that may travel in a websocket close frame.
fn ws_close_code(code: u16) -> u16 {
    match code {
        1000 | 1001 | 1008 | 1009 | 1011 | 3000..=4999 => code,
        _ => 1000,
    }
}

/// Runs the session over the websocket until either side closes, and `app` (the server's
/// application handler for this session, if given) until it returns.
pub(crate) async fn pump<S>(
    ws: WebSocketStream<S>,
    session: Session,
    framing: Framing,
    heartbeat: Option<Duration>,
    app: Option<BoxFuture>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (sink, stream) = ws.split();
    let reader = read(stream, &session, framing);
    let writer = write(sink, &session, framing, heartbeat);
    // Reader, writer and application in one task, each polled only when its own waker
    // fired (see `parts`): a message passes from the socket to the application and back
    // without a trip through the scheduler. When reader or writer ends, the other gets a
    // second to finish (the writer to send the close frame, the reader to receive the
    // peer's acknowledgement); the application is driven until it returns.
    let mut parts: Parts<'_, ()> = Parts::new();
    let reader = parts.push(reader);
    let writer = parts.push(writer);
    if let Some(app) = app {
        parts.push(app);
    }
    let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let next = match grace.as_mut() {
            Some(g) => tokio::select! {
                n = parts.next() => n,
                _ = g.as_mut() => {
                    // The other half did not finish in time.
                    parts.cancel(reader);
                    parts.cancel(writer);
                    grace = None;
                    continue;
                }
            },
            None => parts.next().await,
        };
        match next {
            Some((i, ())) if (i == reader || i == writer) && grace.is_none() => {
                grace = Some(Box::pin(tokio::time::sleep(Duration::from_secs(1))));
            }
            Some(_) => {}
            None => break,
        }
    }
}

/// What one websocket message carries for the application.
enum Inbound {
    /// Messages to queue.
    Messages(Vec<String>),
    /// Nothing (an empty or control frame).
    Skip,
    /// The session was closed: stop reading.
    Stop,
}

/// The reading half of [`pump`]: queues the peer's messages until the websocket or the
/// session closes.
async fn read<S>(mut stream: SplitStream<WebSocketStream<S>>, session: &Session, framing: Framing)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(msg) = stream.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Binary(b)) if framing == Framing::Raw => match std::str::from_utf8(&b) {
                Ok(s) => s.into(),
                Err(_) => {
                    session.close_with(CloseReason::new(1007, "Invalid UTF-8"));
                    return;
                }
            },
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(WsError::Capacity(e)) => {
                tracing::debug!(session = session.id(), error = %e, "websocket message too big");
                session.close_with(CloseReason::too_big());
                return;
            }
            Err(e) => {
                tracing::debug!(session = session.id(), error = %e, "websocket read failed");
                break;
            }
        };
        let messages = match decode(&text, framing, session) {
            Inbound::Messages(m) => m,
            Inbound::Skip => continue,
            Inbound::Stop => return,
        };
        for m in messages {
            if session.push_inbound(m).await.is_err() {
                return;
            }
        }
    }
    session.close_with(CloseReason::interrupted());
}

/// The messages in one websocket text message, as `framing` frames them; broken framing
/// or a close frame closes the session.
fn decode(text: &str, framing: Framing, session: &Session) -> Inbound {
    match framing {
        Framing::Raw => Inbound::Messages(vec![text.to_string()]),
        Framing::Server => {
            if text.is_empty() {
                return Inbound::Skip;
            }
            match parse_client_payload(text.as_bytes()) {
                Ok(m) => Inbound::Messages(m),
                Err(_) => {
                    tracing::debug!(session = session.id(), "broken SockJS framing from client");
                    session.close_with(CloseReason::broken_framing());
                    Inbound::Stop
                }
            }
        }
        Framing::Client => match parse_frame(text) {
            Ok(Frame::Messages(m)) => Inbound::Messages(m),
            Ok(Frame::Open | Frame::Heartbeat) => Inbound::Skip,
            Ok(Frame::Close(r)) => {
                session.close_with(r);
                Inbound::Stop
            }
            Err(e) => {
                tracing::debug!(session = session.id(), error = %e, "broken SockJS frame from server");
                session.close_with(CloseReason::new(1002, "Broken framing."));
                Inbound::Stop
            }
        },
    }
}

/// The writing half of [`pump`]: sends the session's outgoing messages (and heartbeats
/// every `heartbeat`) until the session closes, then the close frame.
async fn write<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    session: &Session,
    framing: Framing,
    heartbeat: Option<Duration>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut tick = heartbeat.map(|p| {
        let start = tokio::time::Instant::now();
        let mut i = tokio::time::interval_at(start.checked_add(p).unwrap_or(start), p);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        let out = tokio::select! {
            out = session.next_outgoing() => out,
            _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                if sink.send(Message::text(frame::HEARTBEAT)).await.is_err() {
                    session.close_with(CloseReason::interrupted());
                    return;
                }
                continue;
            }
        };
        let sent = match out {
            Outgoing::Messages(m) => send_messages(&mut sink, framing, m).await,
            Outgoing::Close(reason) => {
                send_close(&mut sink, framing, &reason).await;
                return;
            }
        };
        if sent.is_err() {
            session.close_with(CloseReason::interrupted());
            return;
        }
    }
}

/// Sends queued messages as `framing` frames them (raw: one websocket message each).
async fn send_messages<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    framing: Framing,
    m: Vec<String>,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match framing {
        Framing::Server => sink.send(Message::text(frame::array_frame(&m))).await,
        Framing::Client => sink.send(Message::text(frame::client_payload(&m))).await,
        Framing::Raw => {
            let mut r = Ok(());
            for msg in m {
                r = sink.feed(Message::text(msg)).await;
                if r.is_err() {
                    break;
                }
            }
            match r {
                Ok(()) => sink.flush().await,
                e => e,
            }
        }
    }
}

/// Sends the close: the SockJS close frame (framed server side, unless the framing was
/// broken), then the websocket close frame.
async fn send_close<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    framing: Framing,
    reason: &CloseReason,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if framing == Framing::Server && *reason != CloseReason::broken_framing() {
        let _ = sink.send(Message::text(reason.frame())).await;
    }
    let close = CloseFrame {
        code: CloseCode::from(ws_close_code(reason.code)),
        reason: reason.reason.clone().into(),
    };
    let _ = sink.send(Message::Close(Some(close))).await;
}
