//! The load generator's side of the wire: a minimal websocket client with SockJS framing,
//! the precomputed `square` call frame and the check of each answer. It speaks only the
//! wire, so any kite server can be measured with it.

use std::sync::Arc;

/// A minimal websocket client (RFC 6455, client side: masked frames out, unmasked frames
/// in) with SockJS framing on top. The load generator shares the machine with the server it
/// measures, so every cycle it spends is taken from that server: it writes precomputed
/// call frames, reads into one reusable buffer and sends a batch of calls with one write.
/// (Our tests speak to servers through tokio-tungstenite; here a general client's per-
/// message buffers and copies would take CPU time from the server being measured.)
pub struct Conn {
    stream: tokio_util::either::Either<
        tokio::net::TcpStream,
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    >,
    /// Received bytes not yet consumed: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Frames queued for the next `flush`.
    out: Vec<u8>,
    mask: [u8; 4],
}

/// Frames larger than this end the run (the servers answer with a few hundred bytes).
const MAX_FRAME: usize = 16 << 20;

impl Conn {
    /// Opens a SockJS websocket to `127.0.0.1:port` (over TLS trusting `tls`'s roots, if given).
    pub async fn connect(
        port: u16,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Conn, String> {
        use tokio_util::either::Either;
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let stream = match tls {
            None => Either::Left(tcp),
            Some(t) => {
                let name = rustls_pki_types::ServerName::try_from("127.0.0.1")
                    .map_err(|e| e.to_string())?;
                let s = tokio_rustls::TlsConnector::from(t.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                Either::Right(s)
            }
        };
        let mut c = Conn {
            stream,
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            out: Vec::with_capacity(8 * 1024),
            mask: rand::random(),
        };
        let request = format!(
            "GET /kite/000/{:016x}/websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            rand::random::<u64>(),
            websocket_key(),
        );
        c.out.extend_from_slice(request.as_bytes());
        c.flush().await?;
        let head = loop {
            if let Some(i) = c.buf[..c.end].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            c.fill().await?;
        };
        let status = String::from_utf8_lossy(&c.buf[..head]);
        if !status.starts_with("HTTP/1.1 101") {
            return Err(format!(
                "websocket refused: {}",
                status.lines().next().unwrap_or_default()
            ));
        }
        c.start = head;
        let mut frame = Vec::new();
        c.read_text(&mut frame).await?;
        match frame.as_slice() {
            b"o" => Ok(c),
            other => Err(format!(
                "expected open frame, got {:?}",
                String::from_utf8_lossy(other)
            )),
        }
    }

    /// Reads more bytes, compacting or growing the buffer when it is full.
    async fn fill(&mut self) -> Result<(), String> {
        use tokio::io::AsyncReadExt;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else if self.buf.len() < MAX_FRAME {
                self.buf.resize(self.buf.len() * 2, 0);
            } else {
                return Err("frame too large".into());
            }
        }
        let n = self
            .stream
            .read(&mut self.buf[self.end..])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        self.end += n;
        Ok(())
    }

    /// The payload of the next text frame, into `out`; pings are answered, pongs skipped.
    pub async fn read_text(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        loop {
            let b = &self.buf[self.start..self.end];
            if b.len() >= 2 {
                if b[1] & 0x80 != 0 {
                    return Err("masked frame from the server".into());
                }
                let (len, at) = match b[1] & 0x7f {
                    126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                    127 if b.len() >= 10 => {
                        let mut n = [0u8; 8];
                        n.copy_from_slice(&b[2..10]);
                        (
                            usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX),
                            10,
                        )
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len > MAX_FRAME && len != usize::MAX {
                    return Err("frame too large".into());
                }
                if len != usize::MAX && b.len() >= at + len {
                    let opcode = b[0];
                    let base = self.start;
                    self.start += at + len;
                    let payload = &self.buf[base + at..base + at + len];
                    match opcode {
                        0x81 => {
                            out.clear();
                            out.extend_from_slice(payload);
                            return Ok(());
                        }
                        0x89 => {
                            let ping = payload.to_vec();
                            self.frame(0x8A, &ping);
                            self.flush().await?;
                        }
                        0x8A => {}
                        0x88 => return Err("the server closed the websocket".into()),
                        other => return Err(format!("unexpected frame 0x{other:02x}")),
                    }
                    continue;
                }
            }
            self.fill().await?;
        }
    }

    /// Queues a masked frame.
    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        let n = payload.len();
        self.out.push(opcode);
        if n < 126 {
            self.out.push(0x80 | n as u8);
        } else if n <= 0xffff {
            self.out.push(0x80 | 126);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.out.push(0x80 | 127);
            self.out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        self.out.extend_from_slice(&self.mask);
        let at = self.out.len();
        self.out.extend_from_slice(payload);
        for (i, b) in self.out[at..].iter_mut().enumerate() {
            *b ^= self.mask[i & 3];
        }
    }

    /// Queues the SockJS frame calling `square(3)` with response callback `id`.
    pub fn call(&mut self, id: u64) {
        static PARTS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
        let (head, tail) = PARTS.get_or_init(|| {
            let inner = r#"{"method":"square","arguments":[{"kite":{"username":"bench","environment":"bench","name":"bench","version":"1.0.0","region":"bench","hostname":"bench","id":"bench"},"authentication":null,"withArgs":[3],"responseCallback":"[Function]"}],"callbacks":{"ID":[0,"responseCallback"]}}"#;
            let quoted = serde_json::to_string(&[inner]).unwrap_or_default();
            let (h, t) = quoted.split_once("ID").unwrap_or_default();
            (h.to_string(), t.to_string())
        });
        let mut payload = [0u8; 1024];
        let mut w = std::io::Cursor::new(&mut payload[..]);
        use std::io::Write;
        let _ = write!(w, "{head}{id}{tail}");
        let n = w.position() as usize;
        self.frame(0x81, &payload[..n]);
    }

    pub async fn flush(&mut self) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        self.stream
            .write_all(&self.out)
            .await
            .map_err(|e| e.to_string())?;
        // TLS buffers what it writes until flushed.
        self.stream.flush().await.map_err(|e| e.to_string())?;
        self.out.clear();
        Ok(())
    }

    pub async fn close(mut self) {
        self.frame(0x88, &1000u16.to_be_bytes());
        let _ = self.flush().await;
    }
}

/// A `Sec-WebSocket-Key`: 16 random bytes, base64.
fn websocket_key() -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: [u8; 16] = rand::random();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

#[derive(serde::Deserialize)]
struct Answer {
    method: u64,
    arguments: (AnswerArgs,),
}

#[derive(serde::Deserialize)]
struct AnswerArgs {
    result: Option<f64>,
}

/// Callback ids answered in a server frame (each response checked: `result` is 9).
pub fn answered(frame: &[u8], out: &mut Vec<u64>) -> Result<(), String> {
    let text = std::str::from_utf8(frame).map_err(|e| e.to_string())?;
    let messages = match kite::sockjs::frame::parse_frame(text).map_err(|e| e.to_string())? {
        kite::sockjs::frame::Frame::Messages(m) => m,
        kite::sockjs::frame::Frame::Heartbeat => return Ok(()),
        other => return Err(format!("unexpected frame {other:?}")),
    };
    for m in messages {
        match serde_json::from_str::<Answer>(&m) {
            Ok(a) if a.arguments.0.result == Some(9.0) => out.push(a.method),
            _ => return Err(format!("bad response {m:.120}")),
        }
    }
    Ok(())
}
