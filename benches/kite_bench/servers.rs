//! The servers under test: each runs as a process of its own and prints a first line with
//! its port; ours is a kite-bench binary run with `--serve` (this one, or with `--server-bin`
//! the build of another commit), the others are the Go reference, kite.js and the bindings.
//! Also what is read of them from `/proc`: CPU time and resident memory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The repository (this package is one folder below it).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `--serve`: our kite with a `square` method and no authentication on 127.0.0.1, port
/// chosen by the system; prints `{"port": N}` and serves until stdin closes. A kite-bench
/// built from any commit serves the same way, which is how `--server-bin` runs it.
/// `metrics`: with its Prometheus metrics on (`--serve --metrics`, the `rust-metrics` server).
pub async fn serve_rust(
    tls: Option<Vec<PathBuf>>,
    metrics: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let k = kite::Kite::with_config(
        "bench",
        "1.0.0",
        kite::Config {
            ip: "127.0.0.1".into(),
            tls: tls.and_then(|f| Some((f.first()?.clone(), f.get(1)?.clone()))),
            metrics,
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

/// `--serve-tunnel`: our tunnel proxy and, behind it, our kite (`square`, no
/// authentication) that never listens but registers to the proxy and serves the calls it
/// tunnels; prints `{"port": PROXY, "path": "/proxy/ID"}` and serves until stdin closes.
pub async fn serve_tunnel() -> Result<(), Box<dyn std::error::Error>> {
    use kite::proxy::{ProxyRegistration, TunnelProxy, TunnelProxyConfig};
    let config = kite::Config {
        ip: "127.0.0.1".into(),
        // The bench kite has no kite key to register with.
        disable_authentication: true,
        ..kite::Config::default()
    };
    let proxy_kite = kite::Kite::with_config("tunnelproxy", "0.0.2", config.clone())?;
    // The memory measurement opens 2,000 connections, each its own tunnel.
    let tunnels = TunnelProxyConfig {
        max_tunnels_per_kite: 100_000,
        ..TunnelProxyConfig::default()
    };
    let proxy = TunnelProxy::new(proxy_kite, tunnels)?;
    let addr = proxy.kite().listen().await?;
    let k = kite::Kite::with_config("bench", "1.0.0", config)?;
    k.handle("square", |r: kite::Request| async move {
        let n: f64 = r.args().one()?;
        Ok::<_, kite::KiteError>(n * n)
    })?;
    let reg = ProxyRegistration {
        proxy_url: proxy.kite().url(),
        ..ProxyRegistration::tunnel(&k)
    };
    let public = k.register_to_tunnel_with(reg).await;
    let path = public
        .split_once(&addr.port().to_string())
        .map(|(_, p)| p.to_string())
        .ok_or("unexpected public URL")?;
    println!("{}", serde_json::json!({"port": addr.port(), "path": path}));
    let mut line = String::new();
    let _ = BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
    Ok(())
}

/// A running server; dropping it kills the process.
pub struct Server {
    /// Its process (killed on drop).
    pub child: tokio::process::Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// The path of its SockJS service: `/kite`, or a proxy's `/proxy/ID`.
    pub prefix: String,
    /// The load generator's TLS configuration for a TLS server.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A CA made for the run, a server certificate (127.0.0.1) it signed, and a client
/// configuration trusting it.
struct Tls {
    client: Arc<rustls::ClientConfig>,
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls {
        client: Arc::new(client),
        cert: cert_file,
        key: key_file,
    })
}

/// Starts the server `name`: from the kite-bench binary `bin` if given (run with `--serve`),
/// else the built-in server of that name; `python` is the interpreter for the Python servers.
pub async fn spawn(
    name: &str,
    bin: Option<&Path>,
    python: Option<&Path>,
) -> Result<Server, String> {
    let root = repo_root();
    let tls = (bin.is_none() && name == "rust-tls")
        .then(make_tls)
        .transpose()?;
    let mut cmd = match bin {
        Some(bin) => {
            let mut c = tokio::process::Command::new(bin);
            c.arg("--serve");
            c
        }
        None => builtin(name, &root, tls.as_ref(), python)?,
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
    // `{"port": N, …}` (rust, go, kitejs, node; `"path"` for rust-tunnel) or a line with the
    // kite's URL (python).
    let prefix = serde_json::from_str::<Value>(&line)
        .ok()
        .and_then(|v| v["path"].as_str().map(str::to_string))
        .unwrap_or_else(|| "/kite".into());
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
        child,
        port,
        prefix,
        tls: tls.map(|t| t.client),
    })
}

/// The command of a built-in server.
fn builtin(
    name: &str,
    root: &Path,
    tls: Option<&Tls>,
    python: Option<&Path>,
) -> Result<tokio::process::Command, String> {
    Ok(match name {
        "rust-tunnel" => {
            let mut c =
                tokio::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.arg("--serve-tunnel");
            c
        }
        "rust" | "rust-tls" | "rust-metrics" => {
            let mut c =
                tokio::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.arg("--serve");
            if name == "rust-metrics" {
                c.arg("--metrics");
            }
            if let Some(t) = tls {
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
            let python = python.map(Path::to_path_buf).unwrap_or_else(|| {
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
    })
}

/// The napi addon's file name (see package.json).
const NODE_ADDON: &str = "kite-rs.linux-x64-gnu.node";

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 per second on every mainstream configuration.
    Some(Duration::from_millis(ticks * 10))
}

/// A process's resident memory (VmRSS), KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
