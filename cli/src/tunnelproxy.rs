//! `kite-tunnelproxy`: the tunnel proxy of a kite mesh (the reference's `tunnelproxy`). A
//! kite that can only dial out registers to it (`Kite::register_to_tunnel`, finding it
//! through Kontrol or `KITE_PROXY_URL`) and gets a public URL,
//! `http://PUBLIC-HOST/proxy/ID`; every client session there is tunnelled to the kite over
//! a websocket the kite dials (`kite.tunnel`), for websocket and XHR clients alike.
//!
//! Flags are the reference's (one or two dashes), except `-public-key`/`-private-key`: the
//! reference signs tunnel tokens with that pair, these tunnels use random single-use tokens
//! instead. The kite's identity and trust come from `kite.key` and the `KITE_*` variables;
//! with a Kontrol URL there, the proxy registers itself (name `tunnelproxy`) at
//! `http://PUBLIC-HOST/kite`.
//!
//! ```text
//! cargo run --release --bin kite-tunnelproxy -- -port 3999 -public-host tunnel.example.com:3999
//! ```

mod common;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use kite::proxy::{TunnelProxy, TunnelProxyConfig, TUNNEL_PROXY_NAME, TUNNEL_PROXY_VERSION};
use kite::{Config, Kite};

/// Runs the tunnel proxy of a kite mesh.
#[derive(Debug, Parser)]
#[command(
    name = "kite-tunnelproxy",
    about = "Runs a kite tunnel proxy: kites that only dial out get a public URL",
    after_help = "Flags also work with one dash, as in the reference (-port=3999). The kite's \
                  identity and trust come from kite.key and KITE_* variables."
)]
struct Args {
    /// IP address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    ip: String,
    /// Port to listen on (0 picks a free one; the URL is printed).
    #[arg(long, default_value_t = 3999)]
    port: u16,
    /// `host:port` of the public URLs and of the tunnels kites dial (default:
    /// 127.0.0.1:PORT, the port listened on).
    #[arg(long = "public-host", visible_alias = "publicHost")]
    public_host: Option<String>,
    /// Version of the proxy kite.
    #[arg(long, default_value = TUNNEL_PROXY_VERSION)]
    version: String,
}

fn main() {
    common::block_on(main_async());
}

async fn main_async() {
    // Kept alive for the whole run: dropping it would stop the trace exporter.
    let _telemetry = common::init_logging("info", "kite-tunnelproxy");
    let mut command = Args::command();
    let matches = command
        .clone()
        .get_matches_from(common::go_style_args(&command));
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.format(&mut command).exit(),
    };
    if let Err(e) = run(args).await {
        common::fail("kite-tunnelproxy", e);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::from_env()?;
    common::metrics_by_default(&mut config);
    config.ip = args.ip.clone();
    config.port = args.port;
    let kite = Kite::with_config(TUNNEL_PROXY_NAME, &args.version, config)?;
    let proxy = TunnelProxy::new(
        kite,
        TunnelProxyConfig {
            public_host: args.public_host.clone().unwrap_or_default(),
            ..TunnelProxyConfig::default()
        },
    )?;
    let addr = proxy.kite().listen().await?;
    let host = args
        .public_host
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{}", addr.port()));
    println!(
        "kite-tunnelproxy listening on {}",
        proxy.kite().url().context("not listening")?
    );
    common::register_if_configured(proxy.kite(), &format!("http://{host}/kite"));
    kite::server::shutdown_signal().await;
    tracing::info!("shutting down");
    proxy.kite().shutdown().await;
    Ok(())
}
