//! Calls the math kite: `square` of a number and `echo` of some arguments.
//!
//! ```text
//! cargo run --release --example math-client -- --url http://127.0.0.1:3636/kite 7
//! ```

use clap::Parser;
use kite::{Config, Kite};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Call the math kite")]
struct Args {
    /// URL of the math kite.
    #[arg(long, default_value = "http://127.0.0.1:3636/kite")]
    url: String,
    /// Number to square.
    #[arg(default_value_t = 4.0)]
    number: f64,
}

#[tokio::main]
async fn main() -> Result<(), kite::Error> {
    let args = Args::parse();
    let local = Kite::with_config("math-client", "1.0.0", Config::from_env()?)?;
    let client = local.client(&args.url);
    client.dial().await?;
    let squared = client.call("square", &[args.number]).await?;
    println!("square({}) = {squared}", args.number);
    let echoed = client
        .call("echo", &json!(["hello", {"from": "kite-rs"}]))
        .await?;
    println!("echo = {echoed}");
    client.close();
    Ok(())
}
