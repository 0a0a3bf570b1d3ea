//! Calls the math kite: `square` of a number and `echo` of some arguments — at a URL, or
//! found through Kontrol (`--query`, with the kite key in `$KITE_HOME/kite.key`).
//!
//! ```text
//! cargo run --release --example math-client -- --url http://127.0.0.1:3636/kite 7
//! cargo run --release --example math-client -- --query 7
//! ```

use clap::Parser;
use kite::protocol::KiteQuery;
use kite::{Config, Kite};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Call the math kite")]
struct Args {
    /// URL of the math kite.
    #[arg(long, default_value = "http://127.0.0.1:3636/kite")]
    url: String,
    /// Find the math kite through Kontrol (getKites) instead of dialing --url.
    #[arg(long)]
    query: bool,
    /// Owner of the math kite to find. Default: this kite's username (from the kite key).
    #[arg(long, requires = "query")]
    username: Option<String>,
    /// Number to square.
    #[arg(default_value_t = 4.0)]
    number: f64,
}

#[tokio::main]
async fn main() -> Result<(), kite::Error> {
    let args = Args::parse();
    let local = Kite::with_config("math-client", "1.0.0", Config::from_env()?)?;
    let client = if args.query {
        let config = local.config();
        let query = KiteQuery {
            username: args.username.unwrap_or(config.username.clone()),
            environment: config.environment.clone(),
            name: "math".into(),
            ..KiteQuery::default()
        };
        let found = local.get_kites(&query).await?;
        println!("found {} math kite(s) through kontrol", found.len());
        let Some(first) = found.into_iter().next() else {
            return Err(kite::Error::Config("no math kite found".into()));
        };
        println!("calling {} at {}", first.remote_kite(), first.url());
        first
    } else {
        local.client(&args.url)
    };
    client.dial().await?;
    let squared = client.call("square", [args.number]).await?;
    println!("square({}) = {squared}", args.number);
    let echoed = client
        .call("echo", json!(["hello", {"from": "kite-rs"}]))
        .await?;
    println!("echo = {echoed}");
    client.close();
    Ok(())
}
