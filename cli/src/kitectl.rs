//! `kitectl`: the operator's tool — show the kite key, get one from Kontrol, find kites and
//! call their methods.
//!
//! It is a kite itself, configured like any other: `$KITE_HOME/kite.key` (default
//! `~/.kite/kite.key`) gives its username and Kontrol, `KITE_*` variables override them.
//!
//! ```text
//! kitectl showkey
//! kitectl register --to http://127.0.0.1:6000/kite --username alice
//! kitectl query --username alice --environment unknown --name math
//! kitectl tell --to http://127.0.0.1:3636/kite --method square 7
//! kitectl tell --username alice --environment unknown --name math --method square 7
//! ```

mod common;

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use kite::protocol::{Auth, KiteQuery};
use kite::{Client, Config, Kite};
use serde_json::{json, Value};

/// Operates on kites: shows your kite key, gets one from Kontrol, finds kites and calls them.
#[derive(Debug, Parser)]
#[command(
    name = "kitectl",
    about = "Shows your kite key, gets one from Kontrol, finds kites and calls them",
    after_help = "Flags also work with one dash, as in the reference (-username=alice)."
)]
struct Cli {
    /// Kontrol's URL. Default: the kite key's `kontrolURL`.
    #[arg(long = "kontrol-url", global = true, env = "KITE_KONTROL_URL")]
    kontrol_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Shows the claims of the kite key ($KITE_HOME/kite.key).
    Showkey,
    /// Gets a kite key from Kontrol (registerMachine) and writes it to $KITE_HOME/kite.key.
    Register {
        /// Kontrol's URL. Default: --kontrol-url, else the current kite key's.
        #[arg(long)]
        to: Option<String>,
        /// Username the key is for (asked for when not given and stdin is a terminal).
        #[arg(long)]
        username: Option<String>,
        /// Kind of proof Kontrol's machine check should look for (Kontrol decides).
        #[arg(long = "auth-type", visible_alias = "authtype", default_value = "")]
        auth_type: String,
    },
    /// Lists the kites matching a query: number, identity and URL, one per line.
    Query(QueryArgs),
    /// Calls a method on a kite (by URL, or the first found through Kontrol by query) and
    /// prints its JSON result.
    Tell {
        /// URL of the kite (authenticates with the kite key). Without it the kite is found
        /// through Kontrol by the query flags (and called with Kontrol's token).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        query: QueryArgs,
        /// Method to call.
        #[arg(long)]
        method: String,
        /// How long to wait for the result (Go syntax: 4s, 1m30s, 500ms).
        #[arg(long, default_value = "4s", value_parser = duration)]
        timeout: Duration,
        /// Arguments, each parsed as JSON (`7`, `'{"a":1}'`), else passed as a string.
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// A Kontrol query; fields left out match anything, but may not leave gaps (§6).
#[derive(Debug, Clone, clap::Args)]
struct QueryArgs {
    /// Username of the kite. Default: your kite key's.
    #[arg(long)]
    username: Option<String>,
    /// Environment of the kite.
    #[arg(long, default_value = "", hide_default_value = true)]
    environment: String,
    /// Name of the kite.
    #[arg(long, default_value = "", hide_default_value = true)]
    name: String,
    /// Version of the kite, or a constraint such as ">= 1.0, < 1.4".
    #[arg(long, default_value = "", hide_default_value = true)]
    version: String,
    /// Region of the kite.
    #[arg(long, default_value = "", hide_default_value = true)]
    region: String,
    /// Host name of the kite.
    #[arg(long, default_value = "", hide_default_value = true)]
    hostname: String,
    /// Unique id of the kite.
    #[arg(long, default_value = "", hide_default_value = true)]
    id: String,
}

impl QueryArgs {
    fn is_empty(&self) -> bool {
        self.username.is_none()
            && [
                &self.environment,
                &self.name,
                &self.version,
                &self.region,
                &self.hostname,
                &self.id,
            ]
            .iter()
            .all(|f| f.is_empty())
    }

    fn to_query(&self, config: &Config) -> KiteQuery {
        KiteQuery {
            username: self
                .username
                .clone()
                .unwrap_or_else(|| config.username.clone()),
            environment: self.environment.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            region: self.region.clone(),
            hostname: self.hostname.clone(),
            id: self.id.clone(),
        }
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    kite::server::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration (4s, 1m30s, 500ms)"))
}

fn main() {
    common::block_on(main_async());
}

async fn main_async() {
    let telemetry = common::init_logging("warn", "kitectl");
    let mut command = Cli::command();
    let matches = command
        .clone()
        .get_matches_from(common::go_style_args(&command));
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.format(&mut command).exit(),
    };
    let result = run(cli).await;
    common::flush_traces(telemetry).await;
    if let Err(e) = result {
        common::fail("kitectl", e);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Showkey => showkey(),
        Command::Register {
            to,
            username,
            auth_type,
        } => register(cli.kontrol_url, to, username, auth_type).await,
        Command::Query(q) => query(&local(cli.kontrol_url)?, &q).await,
        Command::Tell {
            to,
            query,
            method,
            timeout,
            args,
        } => {
            let local = local(cli.kontrol_url)?;
            let args: Vec<Value> = args
                .iter()
                .map(|a| serde_json::from_str(a).unwrap_or_else(|_| json!(a)))
                .collect();
            let result = tell(&local, to, &query, &method, timeout, &args).await?;
            writeln!(std::io::stdout(), "{result}")?;
            Ok(())
        }
    }
}

/// The kite kitectl acts as: configured from kite.key and `KITE_*`, Kontrol URL overridden.
fn local(kontrol_url: Option<String>) -> anyhow::Result<Kite> {
    let mut config = Config::from_env()?;
    if let Some(u) = kontrol_url {
        config.set_kontrol_url(&u, "--kontrol-url (or KITE_KONTROL_URL)");
    }
    Ok(Kite::with_config("kitectl", "1.0.0", config)?)
}

/// The claims of kite.key, in the reference's order.
fn showkey() -> anyhow::Result<()> {
    let path = kite::auth::kite_key_path()?;
    let key = kite::auth::read_kite_key(Some(&path))?;
    let claims = kite::auth::parse_unverified(&key)
        .with_context(|| format!("{} is not a kite key", path.display()))?;
    let claims = serde_json::to_value(claims)?;
    let mut out = std::io::stdout().lock();
    for name in [
        "sub",
        "iss",
        "kontrolURL",
        "aud",
        "iat",
        "jti",
        "kontrolKey",
    ] {
        let value = match claims.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        writeln!(out, "{name:<15}{value}")?;
    }
    Ok(())
}

async fn register(
    kontrol_url: Option<String>,
    to: Option<String>,
    username: Option<String>,
    auth_type: String,
) -> anyhow::Result<()> {
    let username = match username {
        Some(u) => u,
        None if std::io::stdin().is_terminal() => {
            eprint!("Username: ");
            std::io::stderr().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_string()
        }
        None => bail!("--username is required"),
    };
    if username.is_empty() {
        bail!("username can not be empty");
    }
    let mut config = Config::from_env()?;
    let (to, origin) = match (to, kontrol_url) {
        (Some(u), _) => (u, "--to".to_string()),
        (None, Some(u)) => (u, "--kontrol-url (or KITE_KONTROL_URL)".to_string()),
        (None, None) if !config.kontrol_url.is_empty() => (
            config.kontrol_url.clone(),
            config
                .kontrol_url_source()
                .unwrap_or_else(|| "the configuration".into()),
        ),
        (None, None) => bail!("give Kontrol's URL with --to"),
    };
    let home = kite::auth::kite_home()?;
    if home.join(kite::auth::KITE_KEY_FILE).exists() {
        writeln!(
            std::io::stdout(),
            "Already registered. Registering again..."
        )?;
    }
    // Kontrol gives the key to the username we present; no old key is sent along.
    config.username = username;
    config.kite_key.clear();
    let local = Kite::with_config("kitectl", "1.0.0", config)?;
    let kontrol = local.client(&to);
    kontrol.set_auth(None);
    kontrol.set_url_origin(Some(origin));
    kontrol.dial().await.context("cannot connect to Kontrol")?;
    let result = kontrol
        .call(
            kite::kontrol::METHOD_REGISTER_MACHINE,
            &[json!({ "authType": auth_type })],
        )
        .timeout(Duration::from_secs(5 * 60))
        .await;
    kontrol.close();
    let key = match result? {
        Value::String(k) => k,
        other => bail!("Kontrol answered {other} instead of a kite key"),
    };
    kite::auth::parse_unverified(&key)
        .context("Kontrol answered something that is not a kite key")?;
    let path = kite::auth::write_kite_key(&home, &key)?;
    writeln!(
        std::io::stdout(),
        "Registered successfully: {}",
        path.display()
    )?;
    Ok(())
}

/// Prints `N<TAB>username/environment/name/version/region/hostname/id<TAB>URL` per kite.
async fn query(local: &Kite, q: &QueryArgs) -> anyhow::Result<()> {
    let kites = local.get_kites(&q.to_query(local.config())).await?;
    let mut out = std::io::stdout().lock();
    for (i, client) in kites.iter().enumerate() {
        let k = client.remote_kite();
        writeln!(
            out,
            "{}\t{}/{}/{}/{}/{}/{}/{}\t{}",
            i + 1,
            k.username,
            k.environment,
            k.name,
            k.version,
            k.region,
            k.hostname,
            k.id,
            client.url()
        )?;
    }
    Ok(())
}

async fn tell(
    local: &Kite,
    to: Option<String>,
    q: &QueryArgs,
    method: &str,
    timeout: Duration,
    args: &[Value],
) -> anyhow::Result<Value> {
    let client: Client = match to {
        Some(url) => {
            if !q.is_empty() {
                bail!("give either --to or a query, not both");
            }
            let c = local.client(&url);
            let key = local.kite_key();
            c.set_auth((!key.is_empty()).then(|| Auth::kite_key(key)));
            c
        }
        None if q.is_empty() => bail!("give the kite's URL with --to, or a query (--name …)"),
        None => {
            let kites = local.get_kites(&q.to_query(local.config())).await?;
            kites.into_iter().next().context("no kites found")?
        }
    };
    client.dial().await.context("cannot connect to the kite")?;
    let result = client.call(method, args).timeout(timeout).await;
    client.close();
    Ok(result?)
}
