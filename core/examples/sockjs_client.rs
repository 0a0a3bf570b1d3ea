//! A SockJS client: connects to a SockJS service, sends each message given on the command
//! line and prints what comes back.
//!
//! ```text
//! cargo run --release --example sockjs-client -- --url http://127.0.0.1:8081/echo --transport xhr-polling hello world
//! ```

use clap::Parser;
use kite::sockjs::{connect, ClientConfig, Transport};

#[derive(Parser)]
#[command(about = "Send messages to a SockJS service and print the replies")]
struct Args {
    /// Service URL, e.g. http://127.0.0.1:8081/echo
    #[arg(long)]
    url: String,
    /// websocket, xhr-polling or auto
    #[arg(long, default_value = "auto")]
    transport: Transport,
    /// Messages to send (each is expected to be echoed back).
    messages: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let config = ClientConfig {
        transport: args.transport,
        ..ClientConfig::default()
    };
    let session = connect(&args.url, &config).await?;
    println!("connected to {} over {}", args.url, session.transport());
    for m in &args.messages {
        session.send(m.clone()).await?;
    }
    for _ in &args.messages {
        match session.recv().await {
            Some(reply) => println!("< {reply}"),
            None => return Err(format!("session closed: {:?}", session.close_reason()).into()),
        }
    }
    session.close();
    Ok(())
}
