//! The kite peer benchmark: calls/s, latency and server CPU per call of `square` on our
//! kite server, the Go reference server and the kite.js server (SockJS mode) — and on our
//! kite with JavaScript (Node) or Python handlers — under the same load generator in the
//! same run, plus server memory per connection.
//!
//! ```text
//! bash scripts/setup.sh        # Go and kite.js peers, the Node addon, the Python venv
//! cargo run --release --example kite-bench [-- --seconds 3]                     # rust, go, kitejs
//! cargo run --release --example kite-bench -- --servers node,kitejs,rust         # the Node binding
//! cargo run --release --example kite-bench -- --servers python,python-def,rust,go  # the Python binding
//! cargo run --release --example kite-bench -- --case 64x1 --repeat 1 --memory-connections 0  # one case
//! cargo run --release --example kite-bench -- --servers rust,rust-tls --case 8x16  # TLS vs plain
//! ```
//!
//! `rust-tls` is our kite serving HTTPS with a certificate of a CA made for the run (rcgen);
//! the load generator then speaks TLS (rustls, trusting that CA) under the same websocket.
//!
//! Every server runs as its own process (ours is this binary re-executed with `--serve`, on
//! tokio's default multi-thread runtime: one worker per core), speaking SockJS over a
//! websocket; the load generator speaks websocket, SockJS framing and dnode directly, so
//! that it costs the same whatever the server. Each case runs `--repeat` times (3), in
//! rounds over the servers, and the run with the median rate is shown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser, Clone)]
#[command(about = "Benchmark kite servers: calls/s, p50/p99 and memory per connection")]
struct Args {
    /// Seconds measured per case (after a short warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Servers to run: rust, go, kitejs, node (kite-rs with JavaScript handlers), python
    /// (kite-rs with `async def` handlers), python-def (plain `def` handlers), rust-tls (our
    /// kite over TLS).
    #[arg(long, value_delimiter = ',', default_value = "rust,go,kitejs")]
    servers: Vec<String>,
    /// Python interpreter with kite-rs installed (for the python servers). Default: the
    /// repository's `.venv` (made by scripts/setup.sh), else `python3`.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Connections opened for the memory measurement (0 to skip).
    #[arg(long, default_value_t = 2000)]
    memory_connections: usize,
    /// Runs of each case per server (in rounds over the servers); the median run is shown.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Run only this case, e.g. `64x1` (for profiling); the others print as skipped.
    #[arg(long)]
    case: Option<String>,
    /// Internal: serve the Rust kite and print its ready line.
    #[arg(long, hide = true)]
    serve: bool,
    /// Internal: with --serve, serve TLS with this certificate and key (PEM).
    #[arg(long, hide = true, num_args = 2)]
    tls: Option<Vec<PathBuf>>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn serve_rust(tls: Option<Vec<PathBuf>>) -> Result<(), Box<dyn std::error::Error>> {
    let k = kite::Kite::with_config(
        "bench",
        "1.0.0",
        kite::Config {
            ip: "127.0.0.1".into(),
            tls: tls.and_then(|f| Some((f.first()?.clone(), f.get(1)?.clone()))),
            ..kite::Config::default()
        },
    )?;
    k.add_method(
        kite::Method::new("square", |r: kite::Request| async move {
            let n: f64 = r.args().one()?;
            Ok::<_, kite::KiteError>(n * n)
        })
        .disable_authentication(),
    )?;
    let addr = k.listen().await?;
    println!("{{\"port\": {}}}", addr.port());
    // Until stdin closes.
    let mut line = String::new();
    let _ = BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
    Ok(())
}

struct Server {
    name: &'static str,
    child: tokio::process::Child,
    port: u16,
    /// The load generator's TLS configuration for a TLS server.
    tls: Option<Tls>,
}

/// A CA made for the run, a server certificate (127.0.0.1) it signed, and a client
/// configuration trusting it.
#[derive(Clone)]
struct Tls {
    client: std::sync::Arc<rustls::ClientConfig>,
    cert: PathBuf,
    key: PathBuf,
}

fn make_tls() -> Result<Tls, String> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let e = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(e)?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .map_err(e)?
        .signed_by(&key, &issuer)
        .map_err(e)?;
    let dir = std::env::temp_dir().join(format!("kite-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(&key_file, key.serialize_pem()).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca_cert.der().clone())
        .map_err(|e| e.to_string())?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls {
        client: std::sync::Arc::new(client),
        cert: cert_file,
        key: key_file,
    })
}

async fn spawn(name: &'static str, args: &Args) -> Result<Server, String> {
    let root = repo_root();
    let tls = (name == "rust-tls").then(make_tls).transpose()?;
    let mut cmd = match name {
        "rust" | "rust-tls" => {
            let mut c =
                tokio::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.arg("--serve");
            if let Some(t) = &tls {
                c.arg("--tls").arg(&t.cert).arg(&t.key);
            }
            c
        }
        "go" => {
            let bin = root.join("tests/interop/go/bin/server");
            if !bin.exists() {
                return Err(format!(
                    "{} missing: run tests/interop/go/build.sh (scripts/setup.sh)",
                    bin.display()
                ));
            }
            tokio::process::Command::new(bin)
        }
        "kitejs" => {
            let dir = root.join("tests/interop/kitejs");
            if !dir.join("node_modules").exists() {
                return Err("kite.js missing: run scripts/setup.sh".into());
            }
            let mut c = tokio::process::Command::new("node");
            c.arg(dir.join("server.js")).arg("--sockjs");
            c
        }
        "node" => {
            // The interop server: `square` is a plain JavaScript function.
            let script = root.join("bindings-node/test/interop/server.mjs");
            if !root.join("bindings-node").join(NODE_ADDON).exists() {
                return Err("the Node addon is not built: run scripts/setup.sh".into());
            }
            let mut c = tokio::process::Command::new("node");
            c.arg(script);
            c
        }
        "python" | "python-def" => {
            let python = args.python.clone().unwrap_or_else(|| {
                let venv = root.join(".venv/bin/python");
                if venv.exists() {
                    venv
                } else {
                    PathBuf::from("python3")
                }
            });
            let mut c = tokio::process::Command::new(python);
            c.arg(root.join("examples/python/math.py"))
                .args(["--port", "0"]);
            if name == "python-def" {
                c.arg("--sync");
            }
            c
        }
        other => return Err(format!("unknown server {other}")),
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("{name}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| format!("{name}: no ready line"))?
        .map_err(|e| e.to_string())?
        .ok_or(format!("{name}: exited"))?;
    // `{"port": N, …}` (rust, go, kitejs, node) or a line with the kite's URL (python).
    let port = match serde_json::from_str::<Value>(&line) {
        Ok(v) => v["port"].as_u64(),
        Err(_) => line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok()),
    }
    .and_then(|p| u16::try_from(p).ok())
    .ok_or_else(|| format!("{name}: no port in its first line {line:?}"))?;
    // Keep reading its stdout so that a chatty server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server {
        name,
        child,
        port,
        tls,
    })
}

/// The napi addon's file name (see package.json).
const NODE_ADDON: &str = "kite-rs.linux-x64-gnu.node";

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 per second on every mainstream configuration.
    Some(Duration::from_millis(ticks * 10))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A minimal websocket client (RFC 6455, client side: masked frames out, unmasked frames
/// in) with SockJS framing on top. The load generator shares the machine with the server it
/// measures, so every cycle it spends is taken from that server: it writes precomputed
/// call frames, reads into one reusable buffer and sends a batch of calls with one write.
/// (Our tests speak to servers through tokio-tungstenite; here a general client's per-
/// message buffers and copies would take CPU time from the server being measured.)
struct Conn {
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
    async fn connect(port: u16, tls: Option<&Tls>) -> Result<Conn, String> {
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
                let s = tokio_rustls::TlsConnector::from(t.client.clone())
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
    async fn read_text(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
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
    fn call(&mut self, id: u64) {
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

    async fn flush(&mut self) -> Result<(), String> {
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

    async fn close(mut self) {
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
fn answered(frame: &[u8], out: &mut Vec<u64>) -> Result<(), String> {
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

/// One connection keeping `in_flight` calls outstanding until `end`; returns latencies (µs).
async fn load(
    mut conn: Conn,
    in_flight: usize,
    start: Instant,
    end: Instant,
) -> Result<Vec<u32>, String> {
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let mut next = 0u64;
    let mut lat = Vec::new();
    for _ in 0..in_flight {
        sent.insert(next, Instant::now());
        conn.call(next);
        next += 1;
    }
    conn.flush().await?;
    let mut ids = Vec::new();
    let mut frame = Vec::new();
    // One deadline for the whole run rather than a timer per message.
    let deadline = tokio::time::sleep_until((end + Duration::from_secs(10)).into());
    tokio::pin!(deadline);
    while Instant::now() < end {
        tokio::select! {
            biased;
            r = conn.read_text(&mut frame) => r?,
            _ = &mut deadline => return Err("no response for 10 s after the end".into()),
        };
        ids.clear();
        answered(&frame, &mut ids)?;
        let now = Instant::now();
        for id in &ids {
            if let Some(t0) = sent.remove(id) {
                if t0 >= start {
                    lat.push(now.duration_since(t0).as_micros().min(u32::MAX as u128) as u32);
                }
                sent.insert(next, now);
                conn.call(next);
                next += 1;
            }
        }
        conn.flush().await?;
    }
    conn.close().await;
    Ok(lat)
}

struct Figures {
    rate: f64,
    p50: f64,
    p99: f64,
    /// Server CPU time per call (µs), over the whole case (warm-up included).
    cpu_us: Option<f64>,
    /// The load generator's CPU time per call (µs), likewise.
    gen_us: Option<f64>,
}

async fn run_case(
    port: u16,
    tls: Option<&Tls>,
    conns: usize,
    in_flight: usize,
    seconds: f64,
) -> Result<Figures, String> {
    let mut sockets = Vec::with_capacity(conns);
    for _ in 0..conns {
        sockets.push(Conn::connect(port, tls).await?);
    }
    let warm = Duration::from_millis(500);
    let start = Instant::now() + warm;
    let end = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(load(ws, in_flight, start, end)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|v| *v as f64 / 1000.0)
            .unwrap_or(f64::NAN)
    };
    Ok(Figures {
        rate: all.len() as f64 / seconds,
        p50: pct(0.50),
        p99: pct(0.99),
        cpu_us: None,
        gen_us: None,
    })
}

async fn memory(server: &Server, n: usize) -> Result<f64, String> {
    let pid = server.child.id().ok_or("no pid")?;
    let before = rss_kib(pid).ok_or("no RSS")?;
    let mut sockets = Vec::with_capacity(n);
    let mut ids = Vec::new();
    let mut frame = Vec::new();
    for i in 0..n {
        let mut conn = Conn::connect(server.port, server.tls.as_ref()).await?;
        conn.call(i as u64);
        conn.flush().await?;
        loop {
            conn.read_text(&mut frame).await?;
            ids.clear();
            answered(&frame, &mut ids)?;
            if !ids.is_empty() {
                break;
            }
        }
        sockets.push(conn);
    }
    let after = rss_kib(pid).ok_or("no RSS")?;
    drop(sockets);
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.serve {
        return serve_rust(args.tls.clone()).await;
    }
    let cases = [(1usize, 1usize), (8, 16), (64, 1)];
    const ALL: [&str; 7] = [
        "rust",
        "rust-tls",
        "go",
        "kitejs",
        "node",
        "python",
        "python-def",
    ];
    if let Some(bad) = args.servers.iter().find(|s| !ALL.contains(&s.as_str())) {
        return Err(format!("unknown server {bad:?} (known: {})", ALL.join(", ")).into());
    }
    // Rounds: every server in turn, `--repeat` times, so that a noisy moment of a shared
    // machine hits one run of each server rather than all runs of one; each cell is then
    // the run with the median rate.
    let mut runs: HashMap<(&'static str, usize), Vec<Figures>> = HashMap::new();
    let mut errors: HashMap<(&'static str, usize), String> = HashMap::new();
    let mut memories: HashMap<&'static str, Result<f64, String>> = HashMap::new();
    let mut order: Vec<&'static str> = Vec::new();
    for round in 0..args.repeat.max(1) {
        for name in ALL {
            if !args.servers.iter().any(|s| s == name) || (round > 0 && !order.contains(&name)) {
                continue;
            }
            let server = match spawn(name, &args).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("skipping {name}: {e}");
                    continue;
                }
            };
            if round == 0 {
                order.push(name);
            }
            eprintln!(
                "measuring {} on port {} (round {} of {})",
                server.name,
                server.port,
                round + 1,
                args.repeat.max(1)
            );
            for (i, (c, k)) in cases.into_iter().enumerate() {
                if args
                    .case
                    .as_ref()
                    .is_some_and(|only| *only != format!("{c}x{k}"))
                {
                    errors.insert((name, i), "skipped".into());
                    continue;
                }
                let pid = server.child.id().unwrap_or(0);
                let before = cpu_time(pid);
                let gen_before = cpu_time(std::process::id());
                match run_case(server.port, server.tls.as_ref(), c, k, args.seconds).await {
                    Ok(mut f) => {
                        // Calls made in the warm-up are not counted; the CPU times include
                        // it, so scale the calls to the whole case.
                        let calls = (f.rate * (args.seconds + 0.5)).max(1.0);
                        let per_call = |b: Duration, a: Duration| {
                            a.saturating_sub(b).as_secs_f64() * 1e6 / calls
                        };
                        if let (Some(b), Some(a)) = (before, cpu_time(pid)) {
                            f.cpu_us = Some(per_call(b, a));
                        }
                        if let (Some(b), Some(a)) = (gen_before, cpu_time(std::process::id())) {
                            f.gen_us = Some(per_call(b, a));
                        }
                        runs.entry((name, i)).or_default().push(f);
                    }
                    Err(e) => {
                        errors.insert((name, i), e);
                    }
                }
            }
            if round == 0 {
                let mem = if args.memory_connections > 0 {
                    memory(&server, args.memory_connections).await
                } else {
                    Err("skipped".into())
                };
                memories.insert(name, mem);
            }
            drop(server);
        }
    }
    let mut results: Vec<(
        &'static str,
        Vec<Result<Figures, String>>,
        Result<f64, String>,
    )> = Vec::new();
    for name in order {
        let figures = (0..cases.len())
            .map(|i| match runs.remove(&(name, i)) {
                Some(mut all) if !all.is_empty() => {
                    all.sort_by(|a, b| a.rate.total_cmp(&b.rate));
                    Ok(all.swap_remove(all.len() / 2))
                }
                _ => Err(errors.remove(&(name, i)).unwrap_or_else(|| "no run".into())),
            })
            .collect();
        let mem = memories
            .remove(name)
            .unwrap_or_else(|| Err("skipped".into()));
        results.push((name, figures, mem));
    }
    println!(
        "kite square calls, {} s per case, median of {} run(s), SockJS websocket, same load generator",
        args.seconds,
        args.repeat.max(1)
    );
    println!(
        "{:<10} {:>10} {:>18} {:>18} {:>18} {:>14}",
        "server", "", "1x1", "8x16", "64x1", "KiB/conn"
    );
    for (name, figures, mem) in &results {
        let cell = |f: &Result<Figures, String>| match f {
            Ok(f) => format!("{:>8.0}/s {:>4.2}/{:<4.2}", f.rate, f.p50, f.p99),
            Err(e) => format!("error: {e:.12}"),
        };
        println!(
            "{:<10} {:>10} {:>18} {:>18} {:>18} {:>14}",
            name,
            "calls p50/p99ms",
            cell(&figures[0]),
            cell(&figures[1]),
            cell(&figures[2]),
            match mem {
                Ok(m) => format!("{m:.1}"),
                Err(e) => format!("{e:.12}"),
            }
        );
    }
    println!(
        "CPU per call (µs, user+system; steadier than calls/s when the machine is shared) of the \
         server, and of the load generator sharing the machine with it:"
    );
    for (name, figures, _) in &results {
        let cpu = |f: &Result<Figures, String>, gen: bool| match f.as_ref().ok().and_then(|f| {
            if gen {
                f.gen_us
            } else {
                f.cpu_us
            }
        }) {
            Some(us) => format!("{us:.1}"),
            None => "-".into(),
        };
        for (label, gen) in [("cpu/call", false), ("gen/call", true)] {
            println!(
                "{:<10} {:>10} {:>18} {:>18} {:>18}",
                name,
                label,
                cpu(&figures[0], gen),
                cpu(&figures[1], gen),
                cpu(&figures[2], gen)
            );
        }
    }
    let get = |n: &str, i: usize| {
        results
            .iter()
            .find(|r| r.0 == n)
            .and_then(|r| r.1[i].as_ref().ok())
            .map(|f| (f.rate, f.p99))
    };
    for (i, label) in [(1, "8x16"), (2, "64x1")] {
        if let (Some((rr, rp)), Some((gr, gp))) = (get("rust", i), get("go", i)) {
            println!(
                "{label}: rust/go calls = {:.2}x (target >= 3x), p99 rust/go = {:.2} (target <= 0.5)",
                rr / gr,
                rp / gp
            );
        }
    }
    if let (Some((tls, tp)), Some((plain, pp))) = (get("rust-tls", 1), get("rust", 1)) {
        println!(
            "8x16: rust-tls = {:.0}% of rust calls (target >= 70%), p99 {tp:.2} vs {pp:.2} ms",
            100.0 * tls / plain
        );
    }
    // Targets of the bindings (issues: Python, Node), at 8x16.
    if let (Some((py, _)), Some((go, _)), Some((rust, _))) =
        (get("python", 1), get("go", 1), get("rust", 1))
    {
        println!(
            "8x16: python async def = {:.2}x go (target >= 1x), {:.0}% of rust (target >= 40%)",
            py / go,
            100.0 * py / rust
        );
    }
    if let (Some((node, _)), Some((js, _))) = (get("node", 1), get("kitejs", 1)) {
        println!(
            "8x16: node (JavaScript handlers) = {:.2}x kite.js (target >= 1.5x)",
            node / js
        );
    }
    if let Some((_, _, Ok(m))) = results.iter().find(|r| r.0 == "rust") {
        println!(
            "rust memory per connection: {:.1} kB (target <= 20 kB)",
            m * 1.024
        );
    }
    Ok(())
}
