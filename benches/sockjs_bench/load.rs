//! The load generator: client websockets to either server, the round-trip, push and sink
//! connections, and the helpers that open and join them.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{future, FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How messages are framed: plain websocket messages, or SockJS frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Plain,
    SockJs,
}

impl Framing {
    /// The server's name in the output.
    pub fn name(self) -> &'static str {
        match self {
            Framing::Plain => "plain",
            Framing::SockJs => "sockjs",
        }
    }
}

/// A client websocket.
pub type Ws = WebSocketStream<TcpStream>;

/// Messages (and websocket frames) received by `/push` clients.
pub static PUSH_RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Websocket frames received by `/push` clients.
pub static PUSH_FRAMES: AtomicU64 = AtomicU64::new(0);

/// Opens a client websocket to `service` (`echo`, `push`, `sink`) on the given server.
pub async fn connect(port: u16, framing: Framing, service: &str) -> Result<Ws, String> {
    let url = match framing {
        Framing::Plain => format!("ws://127.0.0.1:{port}/{service}"),
        Framing::SockJs => {
            let id: u64 = rand::random();
            format!("ws://127.0.0.1:{port}/{service}/000/{id:016x}/websocket")
        }
    };
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if framing == Framing::SockJs {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "o" => {}
            other => return Err(format!("{url}: expected open frame, got {other:?}")),
        }
    }
    Ok(ws)
}

/// The wire form of message `seq`: `size` bytes starting with the zero-padded sequence
/// number, as a plain text message or a SockJS client array `["…"]`.
pub fn encode(framing: Framing, seq: u64, size: usize, pad: &str) -> Message {
    let mut s = String::with_capacity(size + 4);
    if framing == Framing::SockJs {
        s.push_str("[\"");
    }
    let _ = write!(s, "{seq:016}");
    s.push_str(&pad[..size - 16]);
    if framing == Framing::SockJs {
        s.push_str("\"]");
    }
    Message::text(s)
}

/// Calls `f` for every message carried by a received websocket message; returns the
/// number of messages, or an error for a close/broken frame.
pub fn decode(framing: Framing, msg: &Message, mut f: impl FnMut(&str)) -> Result<usize, String> {
    let text = match msg {
        Message::Text(t) => t.as_str(),
        Message::Close(c) => return Err(format!("closed by server: {c:?}")),
        _ => return Ok(0),
    };
    match framing {
        Framing::Plain => {
            f(text);
            Ok(1)
        }
        Framing::SockJs => match text.as_bytes().first() {
            Some(b'h') | Some(b'o') => Ok(0),
            Some(b'a') => {
                // Borrowed parse; our payloads have no escapes. Fall back to owned strings.
                if let Ok(v) = serde_json::from_str::<Vec<&str>>(&text[1..]) {
                    v.iter().for_each(|m| f(m));
                    Ok(v.len())
                } else {
                    let v: Vec<String> = serde_json::from_str(&text[1..])
                        .map_err(|e| format!("bad SockJS frame: {e}"))?;
                    v.iter().for_each(|m| f(m));
                    Ok(v.len())
                }
            }
            _ => Err(format!("unexpected SockJS frame {:.40}", text)),
        },
    }
}

#[derive(Default)]
pub struct RtResult {
    /// Round trips completed inside the measured window.
    pub round_trips: u64,
    /// Websocket messages received inside the window.
    pub frames: u64,
    /// Round-trip latencies (ns) of the messages completed inside the window.
    pub latencies: Vec<u32>,
    pub errors: Vec<String>,
}

/// One round-trip connection: keeps `k` messages in flight until `end`.
pub async fn rt_conn(
    mut ws: Ws,
    framing: Framing,
    k: usize,
    size: usize,
    start: Instant,
    end: Instant,
) -> RtResult {
    let pad = "x".repeat(size);
    let mut res = RtResult {
        latencies: Vec::with_capacity(1 << 16),
        ..Default::default()
    };
    let mut seq = 0u64;
    let mut inflight: VecDeque<(u64, Instant)> = VecDeque::with_capacity(k);
    let mut out = Sender {
        framing,
        size,
        pad: &pad,
        seq: &mut seq,
        inflight: &mut inflight,
    };
    if let Err(e) = out.send(&mut ws, k).await {
        res.errors.push(e);
        return res;
    }
    let mut next = ws.next().await;
    'run: loop {
        // Handle every websocket message that is ready, then answer with one flush.
        let mut to_send = 0usize;
        loop {
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    res.errors.push(e.to_string());
                    break 'run;
                }
                None => {
                    res.errors.push("connection closed by server".into());
                    break 'run;
                }
            };
            let now = Instant::now();
            let in_window = now >= start && now < end;
            match check_echoes(&msg, &mut out, now, in_window, &mut res) {
                Ok(n) => to_send += n,
                Err(e) => {
                    res.errors.push(e);
                    break 'run;
                }
            }
            match ws.next().now_or_never() {
                Some(m) => next = m,
                None => break,
            }
        }
        if Instant::now() >= end {
            break;
        }
        if let Err(e) = out.send(&mut ws, to_send).await {
            res.errors.push(e);
            break;
        }
        next = ws.next().await;
    }
    shutdown(ws).await;
    res
}

/// The sending side of a round-trip connection: numbered messages, and those in flight.
struct Sender<'a> {
    framing: Framing,
    size: usize,
    pad: &'a str,
    seq: &'a mut u64,
    inflight: &'a mut VecDeque<(u64, Instant)>,
}

impl Sender<'_> {
    /// Sends `n` more messages, then flushes.
    async fn send(&mut self, ws: &mut Ws, n: usize) -> Result<(), String> {
        for _ in 0..n {
            self.inflight.push_back((*self.seq, Instant::now()));
            ws.feed(encode(self.framing, *self.seq, self.size, self.pad))
                .await
                .map_err(|e| e.to_string())?;
            *self.seq += 1;
        }
        ws.flush().await.map_err(|e| e.to_string())
    }
}

/// Checks the echoes in `msg` against the messages in flight, in order, and counts them
/// (with their latencies) when inside the window; returns how many it held.
fn check_echoes(
    msg: &Message,
    out: &mut Sender<'_>,
    now: Instant,
    in_window: bool,
    res: &mut RtResult,
) -> Result<usize, String> {
    let size = out.size;
    let mut bad = None;
    let n = decode(out.framing, msg, |m| {
        let got: Option<u64> = m.get(..16).and_then(|s| s.parse().ok());
        match out.inflight.pop_front() {
            Some((want, sent)) if got == Some(want) && m.len() == size => {
                if in_window {
                    let ns = now.duration_since(sent).as_nanos();
                    res.latencies.push(ns.min(u32::MAX as u128) as u32);
                }
            }
            other => bad = Some(format!("expected {other:?}, got {:.20}", m)),
        }
    })?;
    if let Some(e) = bad {
        return Err(e);
    }
    if in_window {
        res.round_trips += n as u64;
        res.frames += 1;
    }
    Ok(n)
}

/// `push` client: counts what the server sends until `end`.
pub async fn push_conn(mut ws: Ws, framing: Framing, end: Instant) -> Vec<String> {
    let mut errors = Vec::new();
    while let Some(m) = ws.next().await {
        match m
            .map_err(|e| e.to_string())
            .and_then(|m| decode(framing, &m, |_| {}))
        {
            Ok(n) => {
                PUSH_RECEIVED.fetch_add(n as u64, Ordering::Relaxed);
                PUSH_FRAMES.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                errors.push(e);
                break;
            }
        }
        if Instant::now() >= end {
            break;
        }
    }
    // The server never stops pushing: just drop the connection.
    drop(ws);
    errors
}

/// `sink` client: sends as fast as it can until `end`.
pub async fn sink_conn(mut ws: Ws, framing: Framing, size: usize, end: Instant) -> Vec<String> {
    let pad = "x".repeat(size);
    let mut seq = 0;
    let mut errors = Vec::new();
    'run: while Instant::now() < end {
        for _ in 0..64 {
            if let Err(e) = ws.feed(encode(framing, seq, size, &pad)).await {
                errors.push(e.to_string());
                break 'run;
            }
            seq += 1;
        }
        if let Err(e) = ws.flush().await {
            errors.push(e.to_string());
            break;
        }
    }
    shutdown(ws).await;
    errors
}

/// Closes the websocket politely, draining what is still in flight (bounded).
pub async fn shutdown(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

pub async fn connect_all(
    port: u16,
    framing: Framing,
    service: &str,
    n: usize,
) -> Result<Vec<Ws>, String> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(connect(port, framing, service).await?);
    }
    Ok(v)
}

/// Waits for the connection tasks; aborts them if they hang well past the end.
pub async fn join_all<T>(
    handles: Vec<tokio::task::JoinHandle<T>>,
    end: Instant,
) -> Result<Vec<T>, String> {
    let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
    match tokio::time::timeout_at(end + Duration::from_secs(5), future::join_all(handles)).await {
        Ok(rs) => rs
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect(),
        Err(_) => {
            aborts.iter().for_each(|a| a.abort());
            Err("timed out (server stalled?)".into())
        }
    }
}
