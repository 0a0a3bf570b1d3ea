//! `kite-proxy`: the reverse proxy of a kite mesh (the reference's `reverseproxy`). Kites
//! call its `register` method with their URL (`Kite::register_to_proxy`, or any kite with
//! `KITE_PROXY_URL` set) and get a public URL, `SCHEME://PUBLICHOST:PUBLICPORT/proxy/ID`,
//! whose websocket and XHR traffic it forwards to them.
//!
//! Flags are the reference's (one or two dashes). The kite's identity and trust come from
//! `kite.key` and the `KITE_*` variables; with a Kontrol URL there, the proxy registers
//! itself (name `proxy`) at `SCHEME://PUBLICHOST:PUBLICPORT/kite`.
//!
//! ```text
//! cargo run --release --bin kite-proxy -- -port 3999 -publicHost proxy.example.com
//! ```

mod common;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use kite::proxy::{ReverseProxy, ReverseProxyConfig, REVERSE_PROXY_NAME, REVERSE_PROXY_VERSION};
use kite::{Config, Kite};

/// Runs the reverse proxy of a kite mesh.
#[derive(Debug, Parser)]
#[command(
    name = "kite-proxy",
    about = "Runs a kite reverse proxy: kites register their URL and get a public one",
    after_help = "Flags also work with one dash, as in the reference (-port=3999). The kite's \
                  identity and trust come from kite.key and KITE_* variables."
)]
struct Args {
    /// TLS certificate file (PEM); with --key the proxy serves HTTPS.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// TLS private key file (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// IP address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    ip: String,
    /// Port to listen on (0 picks a free one; the URL is printed).
    #[arg(long, default_value_t = 3999)]
    port: u16,
    /// Host of the public URLs.
    #[arg(
        long = "publicHost",
        visible_alias = "public-host",
        default_value = "127.0.0.1"
    )]
    public_host: String,
    /// Port of the public URLs (0: the port listened on).
    #[arg(
        long = "publicPort",
        visible_alias = "public-port",
        default_value_t = 0
    )]
    public_port: u16,
    /// Region of the proxy kite (default: KITE_REGION, else `unknown`).
    #[arg(long)]
    region: Option<String>,
    /// Environment of the proxy kite.
    #[arg(long, default_value = "development")]
    env: String,
    /// Prints the version and exits.
    #[arg(long)]
    version: bool,
}

fn main() {
    common::block_on(main_async());
}

async fn main_async() {
    // Kept alive for the whole run: dropping it would stop the trace exporter.
    let _telemetry = common::init_logging("info", "kite-proxy");
    let mut command = Args::command();
    let matches = command
        .clone()
        .get_matches_from(common::go_style_args(&command));
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.format(&mut command).exit(),
    };
    if args.version {
        println!("{REVERSE_PROXY_VERSION}");
        return;
    }
    if let Err(e) = run(args).await {
        common::fail("kite-proxy", e);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::from_env()?;
    common::metrics_by_default(&mut config);
    config.ip = args.ip.clone();
    config.port = args.port;
    config.environment = args.env.clone();
    if let Some(r) = &args.region {
        config.region = r.clone();
    }
    config.tls = args.cert.clone().zip(args.key.clone());
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let kite = Kite::with_config(REVERSE_PROXY_NAME, REVERSE_PROXY_VERSION, config)?;
    let proxy = ReverseProxy::new(
        kite,
        ReverseProxyConfig {
            scheme: scheme.into(),
            public_host: args.public_host.clone(),
            public_port: args.public_port,
            ..ReverseProxyConfig::default()
        },
    )?;
    let addr = proxy.kite().listen().await?;
    let port = match args.public_port {
        0 => addr.port(),
        p => p,
    };
    let url = format!("{scheme}://{}:{port}/kite", args.public_host);
    println!(
        "kite-proxy listening on {}",
        proxy.kite().url().context("not listening")?
    );
    common::register_if_configured(proxy.kite(), &url);
    kite::server::shutdown_signal().await;
    tracing::info!("shutting down");
    proxy.kite().shutdown().await;
    Ok(())
}
