//! The interop test server of `tests/interop/SCENARIOS.md`, on kite-rs. The Go reference and
//! kite.js run the same server, so every client can be pointed at every server.
//!
//! Prints `{"port": N, "url": "http://127.0.0.1:N/kite"}` when ready (https with
//! `--tls-cert`/`--tls-key`); exits when stdin closes.

use std::time::Duration;

use clap::Parser;
use kite::dnode::Segment;
use kite::{Config, Kite, Request};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

#[derive(Parser)]
struct Args {
    /// PEM public key of the test Kontrol (enables kiteKey and token authentication).
    #[arg(long)]
    kontrol_key: Option<std::path::PathBuf>,
    /// Expected issuer of tokens.
    #[arg(long, default_value = "testuser")]
    kontrol_user: String,
    /// This kite's username.
    #[arg(long, default_value = "testuser")]
    username: String,
    /// This kite's own kite key.
    #[arg(long)]
    kite_key: Option<std::path::PathBuf>,
    /// Port (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Serve HTTPS with this certificate (PEM; with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

type BoxError = Box<dyn std::error::Error>;

/// The kite's configuration from the command line.
fn config(args: &Args) -> Result<Config, BoxError> {
    let mut config = Config {
        ip: "127.0.0.1".into(),
        port: args.port,
        username: args.username.clone(),
        kontrol_user: args.kontrol_user.clone(),
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        ..Config::default()
    };
    if let Some(path) = &args.kite_key {
        config.use_kite_key(&std::fs::read_to_string(path)?)?;
        config.username = args.username.clone();
        config.kontrol_user = args.kontrol_user.clone();
    }
    // After the kite key: an explicit Kontrol key wins over the one the key carries.
    if let Some(path) = &args.kontrol_key {
        config.kontrol_key = std::fs::read_to_string(path)?;
    }
    Ok(config)
}

/// `square`, `echo`, `callback` and `nested`: the methods that return data or call back.
fn add_data_methods(k: &Kite) -> Result<(), BoxError> {
    k.add_method(
        kite::Method::new("square", |r: Request| async move {
            let n: f64 = r.args().one()?;
            Ok::<_, kite::KiteError>(n * n)
        })
        .disable_authentication(),
    )?;
    k.add_method(
        kite::Method::new("echo", |r: Request| async move {
            Ok::<_, kite::KiteError>(r.with_args())
        })
        .disable_authentication(),
    )?;
    k.add_method(
        kite::Method::typed("callback", |r: Request, (n, _f): (u32, Value)| async move {
            let f = r.args().function(1)?;
            for i in 0..n {
                f.call(&[i]).await?;
            }
            Ok::<_, kite::KiteError>(n)
        })
        .disable_authentication(),
    )?;
    k.add_method(
        kite::Method::new("nested", |r: Request| async move {
            // Functions deep inside an argument, found by their paths.
            let a = r.args().function_at([Segment::from(0), Segment::from("a")]);
            let c = r
                .args()
                .function_at([0.into(), "b".into(), "c".into(), Segment::from(0)]);
            let (Some(a), Some(c)) = (a, c) else {
                return Err(kite::KiteError::argument("want functions at a and b.c[0]"));
            };
            a.call(["a"]).await?;
            c.call(["c"]).await?;
            Ok::<_, kite::KiteError>("ok")
        })
        .disable_authentication(),
    )?;
    Ok(())
}

/// `fail`, `needString`, `callMeBack`, `secret` and `limited`: errors, calls back into the
/// caller, authentication and throttling.
fn add_edge_methods(k: &Kite) -> Result<(), BoxError> {
    k.add_method(
        kite::Method::new("fail", |_r: Request| async move {
            Err::<(), _>(anyhow::anyhow!("boom"))
        })
        .disable_authentication(),
    )?;
    k.add_method(
        kite::Method::new("needString", |r: Request| async move {
            r.args().one::<String>()
        })
        .disable_authentication(),
    )?;
    k.add_method(
        kite::Method::new("callMeBack", |r: Request| async move {
            let (method, args): (String, Value) = r.decode()?;
            Ok::<_, kite::KiteError>(r.client().call(&method, &args, None).await?)
        })
        .disable_authentication(),
    )?;
    k.handle("secret", |r: Request| async move {
        Ok::<_, kite::KiteError>(r.username().to_string())
    })?;
    k.add_method(
        kite::Method::new("limited", |_r: Request| async move {
            Ok::<_, kite::KiteError>(json!("ok"))
        })
        .disable_authentication()
        .throttle(Duration::from_secs(3600), 1),
    )?;
    Ok(())
}

/// Waits until stdin closes (the test harness owns our lifetime) or SIGTERM.
async fn wait_for_stdin_close() -> std::io::Result<()> {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            n = stdin.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) { break },
            _ = term.recv() => break,
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let config = config(&args)?;
    // Calls back to a client carry no credentials: kite.js clients refuse `kiteKey` ones
    // ("Unknown auth type"). `Connection::set_auth` would attach our kite key, as Go does.
    let k = Kite::with_config("interop", "1.0.0", config)?;
    add_data_methods(&k)?;
    add_edge_methods(&k)?;
    // Like the Go interop server: the default methods are callable without authentication.
    for m in ["kite.systemInfo", "kite.heartbeat"] {
        if let Some(method) = k.method(m) {
            k.replace_method(method.disable_authentication());
        }
    }
    let addr = k.listen().await?;
    println!("{}", json!({"port": addr.port(), "url": k.url()}));
    // Run until stdin closes (the test harness owns our lifetime) or SIGTERM.
    wait_for_stdin_close().await?;
    k.close();
    Ok(())
}
