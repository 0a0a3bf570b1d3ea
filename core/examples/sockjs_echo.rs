//! The SockJS test server expected by the SockJS protocol's own test suite
//! (`sockjs-protocol.py`): `/echo`, `/close`, `/disabled_websocket_echo` and
//! `/cookie_needed_echo` on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example sockjs-echo -- --port 8081
//! ```

use clap::Parser;
use kite::sockjs::{serve, ServerConfig, Session, SockJsServer};

#[derive(Parser)]
#[command(about = "SockJS echo/close test services on 127.0.0.1")]
struct Args {
    /// Port to listen on (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 8081)]
    port: u16,
}

async fn echo(session: Session) {
    while let Some(msg) = session.recv().await {
        if session.send(msg).await.is_err() {
            break;
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let base = ServerConfig {
        response_limit: 4096,
        ..ServerConfig::default()
    };
    let echo_service = SockJsServer::new(base.clone(), echo);
    let close_service = SockJsServer::new(base.clone(), |s: Session| async move {
        s.close();
    });
    let no_ws = SockJsServer::new(
        ServerConfig {
            websocket: false,
            ..base.clone()
        },
        echo,
    );
    let cookie = SockJsServer::new(
        ServerConfig {
            cookie_needed: true,
            ..base
        },
        echo,
    );
    let app = axum::Router::new()
        .merge(echo_service.router("/echo"))
        .merge(close_service.router("/close"))
        .merge(no_ws.router("/disabled_websocket_echo"))
        .merge(cookie.router("/cookie_needed_echo"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    serve(listener, app, Default::default()).await
}
