//! The interop test client of `tests/interop/SCENARIOS.md`, on kite-rs: runs every scenario
//! against the server at `--url` and prints one JSON line per scenario. Exit code 0 when
//! all passed.

use std::time::Duration;

use clap::Parser;
use kite::protocol::Auth;
use kite::sockjs::Transport;
use kite::{Callback, Config, Error, Kite, Request};
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// The interop server, e.g. http://127.0.0.1:1234/kite
    #[arg(long)]
    url: String,
    /// WebSocket or XHRPolling.
    #[arg(long, default_value = "WebSocket")]
    transport: Transport,
    /// A kite key file for `secretWithKey`.
    #[arg(long)]
    kite_key: Option<std::path::PathBuf>,
    /// A token for `secretWithToken`.
    #[arg(long)]
    token: Option<String>,
    /// Only run these scenarios (comma separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Trace calls: every call carries its W3C trace context in the call options (spans
    /// are exported to an OTLP endpoint that is not there; only the frames matter here).
    #[arg(long)]
    tracing: bool,
}

const T: Duration = Duration::from_secs(5);

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

type BoxError = Box<dyn std::error::Error>;

/// Whether a call failed with a kite error of kind `k`.
fn kind(r: &Result<Value, Error>, k: &str) -> bool {
    matches!(r, Err(e) if e.to_kite_error().kind.as_str() == k)
}

/// The client under test, the scenarios selected, and whether all so far passed.
struct Runner {
    client: kite::Client,
    only: Vec<String>,
    all_ok: bool,
}

impl Runner {
    /// Whether the scenario `name` is selected by `--only`.
    fn want(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }

    /// Prints the scenario's JSON line.
    fn report(&mut self, name: &str, ok: bool, result: Value, error: Option<&Error>) {
        self.all_ok &= ok;
        let error = error.map(|e| {
            let k = e.to_kite_error();
            json!({"type": k.kind.as_str(), "message": k.message})
        });
        println!(
            "{}",
            json!({"scenario": name, "ok": ok, "result": result, "error": error})
        );
    }

    /// Reports a scenario of one call, passed when `check` accepts its result.
    fn outcome(
        &mut self,
        name: &str,
        r: &Result<Value, Error>,
        check: impl FnOnce(&Result<Value, Error>) -> bool,
    ) {
        let ok = check(r);
        match r {
            Ok(v) => self.report(name, ok, v.clone(), None),
            Err(e) => self.report(name, ok, Value::Null, Some(e)),
        }
    }
}

/// Runs the one-call scenario `$name` (when selected): awaits `$call` and reports it, passed
/// when `$check` accepts the result.
macro_rules! scenario {
    ($run:expr, $name:expr, $call:expr, $check:expr) => {
        if $run.want($name) {
            let r: Result<Value, Error> = $call.await;
            $run.outcome($name, &r, $check);
        }
    };
}

/// `square`, `echoObject`, `echoScalar`, `echoNull`.
async fn data_scenarios(run: &mut Runner) {
    scenario!(
        run,
        "square",
        run.client.call("square", [4]).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if num(v) == Some(16.0))
    );
    let obj = json!([{"a": 1, "b": [true, null, "x"]}]);
    scenario!(
        run,
        "echoObject",
        run.client.call("echo", &obj).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if *v == obj)
    );
    scenario!(
        run,
        "echoScalar",
        run.client.call("echo", [5]).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if *v == json!([5]) || *v == json!(5))
    );
    scenario!(
        run,
        "echoNull",
        run.client.call("echo", ()).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if v.is_null() || *v == json!([]))
    );
}

/// `callback`: the server calls our function three times.
async fn callback_scenario(run: &mut Runner) {
    if !run.want("callback") {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cb = Callback::new(move |a| {
        let _ = tx.send(a.values().to_vec());
    });
    let r = run
        .client
        .call(
            "callback",
            kite::Payload::list().arg(3).callback(cb.clone()),
        )
        .timeout(T)
        .await;
    let mut got = Vec::new();
    while got.len() < 3 {
        match tokio::time::timeout(T, rx.recv()).await {
            Ok(Some(v)) => got.push(v),
            _ => break,
        }
    }
    let ok = matches!(&r, Ok(v) if num(v) == Some(3.0))
        && got == vec![vec![json!(0)], vec![json!(1)], vec![json!(2)]];
    run.report(
        "callback",
        ok,
        json!({"result": r.as_ref().ok(), "calls": got}),
        r.as_ref().err(),
    );
}

/// `nested`: the server finds our functions at `a` and `b.c[0]` and calls each once.
async fn nested_scenario(run: &mut Runner) {
    if !run.want("nested") {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tx2 = tx.clone();
    let fa = Callback::new(move |a| {
        let _ = tx.send(a.values().to_vec());
    });
    let fc = Callback::new(move |a| {
        let _ = tx2.send(a.values().to_vec());
    });
    let r = run
        .client
        .call(
            "nested",
            kite::Payload::new(json!([{"b": {"c": []}}]))
                .with_callback([kite::dnode::Segment::from(0), "a".into()], fa)
                .with_callback(
                    [
                        0.into(),
                        "b".into(),
                        "c".into(),
                        kite::dnode::Segment::from(0),
                    ],
                    fc,
                ),
        )
        .timeout(T)
        .await;
    let mut got = Vec::new();
    while got.len() < 2 {
        match tokio::time::timeout(T, rx.recv()).await {
            Ok(Some(v)) => got.push(v),
            _ => break,
        }
    }
    got.sort_by_key(|v| v.first().and_then(|x| x.as_str()).unwrap_or("").to_string());
    let ok =
        matches!(&r, Ok(v) if *v == json!("ok")) && got == vec![vec![json!("a")], vec![json!("c")]];
    run.report(
        "nested",
        ok,
        json!({"result": r.as_ref().ok(), "calls": got}),
        r.as_ref().err(),
    );
}

/// `fail`, `methodNotFound`, `argumentError`: the server's errors.
async fn error_scenarios(run: &mut Runner) {
    scenario!(
        run,
        "fail",
        run.client.call("fail", ()).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Err(e) if e.to_kite_error().kind.as_str() == "genericError" && e.to_kite_error().message == "boom")
    );
    scenario!(
        run,
        "methodNotFound",
        run.client.call("noSuchMethod", ()).timeout(T),
        |r: &Result<Value, Error>| kind(r, "methodNotFound")
    );
    scenario!(
        run,
        "argumentError",
        run.client.call("needString", [1]).timeout(T),
        |r: &Result<Value, Error>| kind(r, "argumentError")
    );
}

/// `ping` and `systemInfo`: the default methods.
async fn default_method_scenarios(run: &mut Runner) {
    scenario!(
        run,
        "ping",
        run.client.call("kite.ping", ()).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if *v == json!("pong"))
    );
    scenario!(
        run,
        "systemInfo",
        run.client.call("kite.systemInfo", ()).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if v.get("state").is_some())
    );
}

/// `heartbeat`: two beats within the timeout after asking for one a second.
async fn heartbeat_scenario(run: &mut Runner) {
    if !run.want("heartbeat") {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let beat = Callback::new(move |_| {
        let _ = tx.send(());
    });
    let r = run
        .client
        .call(
            "kite.heartbeat",
            kite::Payload::list().arg(1).callback(beat.clone()),
        )
        .timeout(T)
        .await;
    let mut beats = 0;
    while beats < 2 {
        match tokio::time::timeout(T, rx.recv()).await {
            Ok(Some(())) => beats += 1,
            _ => break,
        }
    }
    run.report(
        "heartbeat",
        r.is_ok() && beats >= 2,
        json!({"beats": beats}),
        r.as_ref().err(),
    );
}

/// `secretWithKey` and `secretWithToken` (when given on the command line): `secret` returns
/// the credential's subject; then `secretWithout`: no credentials, an authentication error.
async fn auth_scenarios(run: &mut Runner, args: &Args) -> Result<(), BoxError> {
    if let Some(path) = &args.kite_key {
        let key = std::fs::read_to_string(path)?;
        let sub = kite::auth::parse_unverified(key.trim())?.sub;
        run.client.set_auth(Some(Auth::kite_key(key.trim())));
        scenario!(
            run,
            "secretWithKey",
            run.client.call("secret", ()).timeout(T),
            |r: &Result<Value, Error>| matches!(r, Ok(v) if *v == json!(sub))
        );
    }
    if let Some(token) = &args.token {
        let sub = kite::auth::parse_unverified(token)?.sub;
        run.client.set_auth(Some(Auth::token(token.clone())));
        scenario!(
            run,
            "secretWithToken",
            run.client.call("secret", ()).timeout(T),
            |r: &Result<Value, Error>| matches!(r, Ok(v) if *v == json!(sub))
        );
    }
    run.client.set_auth(None);
    scenario!(
        run,
        "secretWithout",
        run.client.call("secret", ()).timeout(T),
        |r: &Result<Value, Error>| kind(r, "authenticationError")
    );
    Ok(())
}

/// `limited`: the second call within the throttle's hour is refused.
async fn limited_scenario(run: &mut Runner) {
    if !run.want("limited") {
        return;
    }
    let first = run.client.call("limited", ()).timeout(T).await;
    let second = run.client.call("limited", ()).timeout(T).await;
    let ok = first.is_ok() && kind(&second, "requestLimitError");
    run.report(
        "limited",
        ok,
        json!({"first": first.as_ref().ok()}),
        second.as_ref().err(),
    );
}

/// Logs to stderr (`RUST_LOG`); with `--tracing`, spans are recorded by an OpenTelemetry
/// layer (exported to an OTLP endpoint that is not there: only the frames matter here).
fn init_logs(tracing: bool) -> Result<(), BoxError> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let telemetry = tracing
        .then(|| {
            kite::telemetry::Telemetry::with_endpoint(
                "interop-client",
                "http://127.0.0.1:9/v1/traces",
            )
        })
        .transpose()?;
    tracing_subscriber::registry()
        .with(telemetry.as_ref().map(|t| {
            t.layer()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
        }))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::from_default_env()),
        )
        .init();
    Ok(())
}

/// Calls carry their span's context only when spans are recorded: make sure they are.
fn check_traced() -> Result<(), BoxError> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let span = tracing::info_span!("kite.call");
    if span.context().span().span_context().is_valid() {
        Ok(())
    } else {
        Err("--tracing: spans are not recorded, calls would carry no trace context".into())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    init_logs(args.tracing)?;
    let local = Kite::with_config(
        "interop-client",
        "1.0.0",
        Config {
            username: "testuser".into(),
            tracing: args.tracing,
            ..Config::default()
        },
    )?;
    local.handle("square", |r: Request| async move {
        let n: f64 = r.args().one()?;
        Ok::<_, kite::KiteError>(n * n)
    })?;
    let client = local.client(&args.url);
    client.set_transport(args.transport);
    client.dial().await?;
    if args.tracing {
        check_traced()?;
    }
    let mut run = Runner {
        client,
        only: args.only.clone(),
        all_ok: true,
    };

    data_scenarios(&mut run).await;
    callback_scenario(&mut run).await;
    nested_scenario(&mut run).await;
    error_scenarios(&mut run).await;
    default_method_scenarios(&mut run).await;
    heartbeat_scenario(&mut run).await;
    scenario!(
        run,
        "callMeBack",
        run.client
            .call("callMeBack", json!(["square", [3]]))
            .timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if num(v) == Some(9.0))
    );
    auth_scenarios(&mut run, &args).await?;
    limited_scenario(&mut run).await;
    run.client.close();
    std::process::exit(if run.all_ok { 0 } else { 1 });
}
