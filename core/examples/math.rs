//! The reference's math kite: serves `square` and `echo` without authentication. With a
//! kite key (`$KITE_HOME/kite.key`) and a Kontrol URL (the key's, `KITE_KONTROL_URL` or
//! `--kontrol`) it registers its URL to Kontrol, and again after every reconnection. With
//! `--proxy` it registers through a reverse proxy, with `--tunnel` through a tunnel proxy
//! (and never listens): `KITE_PROXY_URL`, else one that Kontrol knows.
//!
//! ```text
//! cargo run --release --example math -- --port 3636
//! cargo run --release --example math -- --tunnel
//! ```

use clap::Parser;
use kite::{Config, Kite, Request};
use serde_json::Value;

#[derive(Parser)]
#[command(about = "A kite serving square and echo on 127.0.0.1")]
struct Args {
    /// Port (0 picks a free one; the URL is printed).
    #[arg(long, default_value_t = 3636)]
    port: u16,
    /// Kontrol to register to. Default: `KITE_KONTROL_URL`, else the kite key's.
    #[arg(long)]
    kontrol: Option<String>,
    /// Register through a reverse proxy (`KITE_PROXY_URL`, else a `proxy` kite Kontrol knows).
    #[arg(long, conflicts_with = "tunnel")]
    proxy: bool,
    /// Do not listen: register through a tunnel proxy (`KITE_PROXY_URL`, else a
    /// `tunnelproxy` kite Kontrol knows) and serve the calls it tunnels.
    #[arg(long)]
    tunnel: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The runtime kites serve best on (`kite::runtime`: fair to thousands of connections).
    Ok(kite::runtime::builder().build()?.block_on(serve())?)
}

async fn serve() -> Result<(), kite::Error> {
    // RUST_LOG, else the reference's KITE_LOG_LEVEL, else info; colour only on a terminal.
    let level = kite::server::kite_log_level().unwrap_or("info");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    let mut config = Config::from_env()?;
    config.ip = "127.0.0.1".into();
    config.port = args.port;
    if let Some(url) = args.kontrol {
        config.set_kontrol_url(&url, "--kontrol");
    }
    let k = Kite::with_config("math", "1.0.0", config)?;
    k.add_method(
        kite::Method::new("square", |req: Request| async move {
            let n: f64 = req.args().one()?;
            Ok::<_, kite::KiteError>(n * n)
        })
        .disable_authentication(),
    )?;
    k.add_method(
        kite::Method::new("echo", |req: Request| async move {
            Ok::<_, kite::KiteError>(Value::Array(req.args().values().to_vec()))
        })
        .disable_authentication(),
    )?;
    if args.tunnel {
        let url = k.register_to_tunnel().await;
        println!("math kite reachable through the tunnel proxy at {url}");
        kite::server::shutdown_signal().await;
        k.shutdown().await;
        return Ok(());
    }
    k.listen().await?;
    println!("math kite listening on {}", k.url().unwrap_or_default());
    if args.proxy {
        let reg = kite::proxy::ProxyRegistration::reverse(&k, &k.url().unwrap_or_default());
        let url = k.register_to_proxy(reg).await;
        println!("math kite reachable through the proxy at {url}");
        kite::server::shutdown_signal().await;
        k.shutdown().await;
        return Ok(());
    }
    let url = k.register_url().unwrap_or_default();
    let config = k.config();
    if !config.kontrol_url.is_empty() && !config.kite_key.is_empty() {
        let k = k.clone();
        tokio::spawn(async move {
            k.register_forever(&url).await;
            println!(
                "math kite registered to kontrol at {}",
                k.config().kontrol_url
            );
        });
    }
    // SIGINT or SIGTERM: refuse new calls, leave Kontrol, let calls in flight finish.
    kite::server::shutdown_signal().await;
    k.shutdown().await;
    Ok(())
}
