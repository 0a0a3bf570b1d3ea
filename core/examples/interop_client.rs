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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let args = Args::parse();
    let telemetry = args
        .tracing
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
        // Calls carry their span's context only when spans are recorded: make sure they are.
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let span = tracing::info_span!("kite.call");
        if !span.context().span().span_context().is_valid() {
            return Err(
                "--tracing: spans are not recorded, calls would carry no trace context".into(),
            );
        }
    }
    let mut all_ok = true;
    let mut report = |name: &str, ok: bool, result: Value, error: Option<&Error>| {
        all_ok &= ok;
        let error = error.map(|e| {
            let k = e.to_kite_error();
            json!({"type": k.kind.as_str(), "message": k.message})
        });
        println!(
            "{}",
            json!({"scenario": name, "ok": ok, "result": result, "error": error})
        );
    };
    let want = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let c = &client;

    macro_rules! scenario {
        ($name:expr, $call:expr, $check:expr) => {
            if want($name) {
                let r: Result<Value, Error> = $call.await;
                let ok = $check(&r);
                match &r {
                    Ok(v) => report($name, ok, v.clone(), None),
                    Err(e) => report($name, ok, Value::Null, Some(e)),
                }
            }
        };
    }
    fn kind(r: &Result<Value, Error>, k: &str) -> bool {
        matches!(r, Err(e) if e.to_kite_error().kind.as_str() == k)
    }

    scenario!("square", c.call("square", &[4]).timeout(T), |r: &Result<
        Value,
        Error,
    >| matches!(r, Ok(v) if num(v) == Some(16.0)));
    let obj = json!([{"a": 1, "b": [true, null, "x"]}]);
    scenario!(
        "echoObject",
        c.call("echo", &obj).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if *v == obj)
    );
    scenario!(
        "echoScalar",
        c.call("echo", &[5]).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if *v == json!([5]) || *v == json!(5))
    );
    scenario!("echoNull", c.call("echo", &()).timeout(T), |r: &Result<
        Value,
        Error,
    >| matches!(r, Ok(v) if v.is_null() || *v == json!([])));
    if want("callback") {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let cb = Callback::new(move |a| {
            let _ = tx.send(a.values().to_vec());
        });
        let r = c
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
        report(
            "callback",
            ok,
            json!({"result": r.as_ref().ok(), "calls": got}),
            r.as_ref().err(),
        );
    }
    if want("nested") {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let tx2 = tx.clone();
        let fa = Callback::new(move |a| {
            let _ = tx.send(a.values().to_vec());
        });
        let fc = Callback::new(move |a| {
            let _ = tx2.send(a.values().to_vec());
        });
        let r = c
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
        let ok = matches!(&r, Ok(v) if *v == json!("ok"))
            && got == vec![vec![json!("a")], vec![json!("c")]];
        report(
            "nested",
            ok,
            json!({"result": r.as_ref().ok(), "calls": got}),
            r.as_ref().err(),
        );
    }
    scenario!("fail", c.call("fail", &()).timeout(T), |r: &Result<
        Value,
        Error,
    >| matches!(r, Err(e) if e.to_kite_error().kind.as_str() == "genericError" && e.to_kite_error().message == "boom"));
    scenario!(
        "methodNotFound",
        c.call("noSuchMethod", &()).timeout(T),
        |r: &Result<Value, Error>| kind(r, "methodNotFound")
    );
    scenario!(
        "argumentError",
        c.call("needString", &[1]).timeout(T),
        |r: &Result<Value, Error>| kind(r, "argumentError")
    );
    scenario!("ping", c.call("kite.ping", &()).timeout(T), |r: &Result<
        Value,
        Error,
    >| matches!(r, Ok(v) if *v == json!("pong")));
    scenario!(
        "systemInfo",
        c.call("kite.systemInfo", &()).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if v.get("state").is_some())
    );
    if want("heartbeat") {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let beat = Callback::new(move |_| {
            let _ = tx.send(());
        });
        let r = c
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
        report(
            "heartbeat",
            r.is_ok() && beats >= 2,
            json!({"beats": beats}),
            r.as_ref().err(),
        );
    }
    scenario!(
        "callMeBack",
        c.call("callMeBack", &json!(["square", [3]])).timeout(T),
        |r: &Result<Value, Error>| matches!(r, Ok(v) if num(v) == Some(9.0))
    );
    if let Some(path) = &args.kite_key {
        let key = std::fs::read_to_string(path)?;
        let sub = kite::auth::parse_unverified(key.trim())?.sub;
        c.set_auth(Some(Auth::kite_key(key.trim())));
        scenario!(
            "secretWithKey",
            c.call("secret", &()).timeout(T),
            |r: &Result<Value, Error>| matches!(r, Ok(v) if *v == json!(sub))
        );
    }
    if let Some(token) = &args.token {
        let sub = kite::auth::parse_unverified(token)?.sub;
        c.set_auth(Some(Auth::token(token.clone())));
        scenario!(
            "secretWithToken",
            c.call("secret", &()).timeout(T),
            |r: &Result<Value, Error>| matches!(r, Ok(v) if *v == json!(sub))
        );
    }
    c.set_auth(None);
    scenario!(
        "secretWithout",
        c.call("secret", &()).timeout(T),
        |r: &Result<Value, Error>| kind(r, "authenticationError")
    );
    if want("limited") {
        let first = c.call("limited", &()).timeout(T).await;
        let second = c.call("limited", &()).timeout(T).await;
        let ok = first.is_ok() && kind(&second, "requestLimitError");
        report(
            "limited",
            ok,
            json!({"first": first.as_ref().ok()}),
            second.as_ref().err(),
        );
    }
    client.close();
    std::process::exit(if all_ok { 0 } else { 1 });
}
