//! What the `kontrol`, `kitectl` and proxy commands share: their runtime, logging set-up,
//! reference-style single-dash flags, and reporting a failure.

use std::ffi::OsString;

use kite::telemetry::Telemetry;

/// The programs' allocator, as in the Python and Node packages: Kontrol answering `getKites`
/// with 90 kites spent a third of its CPU time in glibc's malloc and free (`kontrol-bench`
/// profile), much of it waiting on the allocator's locks between the two workers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs a program's `main` on the runtime kites serve best on ([`kite::runtime`]: fair to
/// thousands of connections at once), or exits 1 if the runtime cannot start.
pub fn block_on(main: impl std::future::Future<Output = ()>) {
    match kite::runtime::builder().build() {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            std::process::exit(1);
        }
    }
}

/// Logs to stderr, so stdout carries only the command's output: at `RUST_LOG` (full
/// `tracing` directives), else the reference's `KITE_LOG_LEVEL` (`DEBUG`, `INFO`, `WARNING`,
/// `ERROR`, `FATAL`), else `default`; as JSON lines with `KITE_LOG_FORMAT=json`; in colour
/// only on a terminal (and never with `NO_COLOR` or the reference's `KITE_LOG_NOCOLOR`).
/// `tungstenite` is capped at `debug` unless `RUST_LOG` names it: its `trace` lines dump
/// whole websocket frames, credentials included.
///
/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans (at `info` and above, whatever the log level)
/// are also exported over OTLP as `service`; the returned exporter is shut down with
/// [`flush_traces`] before exiting.
pub fn init_logging(default: &str, service: &str) -> Option<Telemetry> {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let spec = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => v,
        _ => kite::server::kite_log_level()
            .unwrap_or(default)
            .to_string(),
    };
    // Only a `trace` spec needs the cap: appending `tungstenite=debug` to a quieter one would
    // turn tungstenite's debug lines on.
    let spec = if spec.to_ascii_lowercase().contains("trace") && !spec.contains("tungstenite") {
        format!("{spec},tungstenite=debug")
    } else {
        spec
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !set("NO_COLOR") && !set("KITE_LOG_NOCOLOR");
    let json = std::env::var("KITE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let telemetry = Telemetry::from_env(service).unwrap_or_else(|e| {
        eprintln!("{service}: traces are not exported: {e}");
        None
    });
    let otel = telemetry.as_ref().map(|t| {
        t.layer()
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(otel);
    if json {
        registry.with(fmt.json().with_filter(filter)).init();
    } else {
        registry.with(fmt.with_filter(filter)).init();
    }
    telemetry
}

/// Sends the spans still buffered (see [`init_logging`]).
#[allow(dead_code)] // used by kontrol and kitectl; the proxies serve until killed
pub async fn flush_traces(telemetry: Option<Telemetry>) {
    if let Some(t) = telemetry {
        let shut = tokio::task::spawn_blocking(move || t.shutdown()).await;
        if let Ok(Err(e)) = shut {
            tracing::warn!(error = %e, "could not send the last traces");
        }
    }
}

/// The process arguments with the reference's Go-style long flags (`-port=4000`,
/// `-postgres-host db`) rewritten to clap's `--port=4000`, `--postgres-host db`. Only names
/// that `command` (or, after a subcommand's name, that subcommand too) knows are rewritten;
/// everything after `--` is left alone.
pub fn go_style_args(command: &clap::Command) -> Vec<OsString> {
    let mut current = command.clone();
    let mut out = Vec::new();
    let mut rest = std::env::args_os();
    if let Some(program) = rest.next() {
        out.push(program);
    }
    for arg in rest.by_ref() {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            break;
        }
        if let Some(sub) = current.find_subcommand(text) {
            current = sub.clone();
            out.push(arg);
            continue;
        }
        match text.strip_prefix('-') {
            Some(flag)
                if !flag.starts_with('-')
                    && flag.len() > 1
                    && (knows(&current, flag) || knows(command, flag)) =>
            {
                out.push(format!("-{text}").into())
            }
            _ => out.push(arg),
        }
    }
    out.extend(rest);
    out
}

/// Whether `flag` (`name` or `name=value`) is a long flag or alias of `command`.
fn knows(command: &clap::Command, flag: &str) -> bool {
    let name = flag.split_once('=').map_or(flag, |(n, _)| n);
    command.get_arguments().any(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

/// Prints `error` (with its causes) as `program: …` on stderr and exits with status 1.
pub fn fail(program: &str, error: anyhow::Error) -> ! {
    eprintln!("{program}: {error:#}");
    std::process::exit(1)
}

/// Registers `kite` at `url` to its Kontrol in the background (retrying, and again after
/// every reconnection) when a Kontrol URL is configured; says so in the log when not.
#[allow(dead_code)] // used by the proxies, not by kontrol/kitectl
pub fn register_if_configured(kite: &kite::Kite, url: &str) {
    if kite.config().kontrol_url.is_empty() {
        tracing::warn!("no Kontrol URL (kite.key, KITE_KONTROL_URL): not registering to Kontrol");
        return;
    }
    let (kite, url) = (kite.clone(), url.to_string());
    tokio::spawn(async move {
        let r = kite.register_forever(&url).await;
        tracing::info!(url = %r.url, "registered to Kontrol");
    });
}

/// Infrastructure kites (Kontrol's command does the same, the proxies call this) serve
/// Prometheus metrics at `/metrics` unless `KITE_METRICS` says otherwise.
#[allow(dead_code)] // used by the proxies, not by kontrol/kitectl
pub fn metrics_by_default(config: &mut kite::Config) {
    if std::env::var_os("KITE_METRICS").is_none() {
        config.metrics = true;
    }
}
