//! What the `kontrol` and `kitectl` commands share: logging set-up, reference-style
//! single-dash flags, and reporting a failure.

use std::ffi::OsString;

/// Logs to stderr at `RUST_LOG` (else `default`), so stdout carries only the command's output.
/// `tungstenite` is capped at `debug` unless `RUST_LOG` names it: its `trace` lines dump
/// whole websocket frames, credentials included.
pub fn init_logging(default: &str) {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_string());
    let spec = if spec.contains("tungstenite") {
        spec
    } else {
        format!("{spec},tungstenite=debug")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
