//! The peers of the interop tests: programs nobody here wrote (the Go reference's in
//! `tests/interop/go/bin/`, kite.js in `tests/interop/kitejs/`) and our own examples. Where
//! they are, and running them: a long-running [`Peer`] that announces itself with one JSON
//! line on stdout, or a one-shot client ([`run_once`]), with stderr kept for failure reports.
//!
//! Missing programs fail the test with a message naming `scripts/setup.sh`; nothing is skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::timeout;

/// Bound for a peer to print its ready line (a Go kite prints it once registered).
pub const READY: Duration = Duration::from_secs(30);
/// Bound for one client run (the slowest expected run, our client against kite.js, takes
/// ~12 s because of two 5 s call timeouts; a connect failure takes 15 s).
pub const CLIENT_RUN: Duration = Duration::from_secs(60);
/// Bound for a peer to exit once its stdin is closed ([`Peer::stop`]).
pub const STOP: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Locating the peers.

/// The repository's root (`core/..`).
pub fn repo_root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// A Go reference interop program, `tests/interop/go/bin/<name>`.
pub fn go_bin(name: &str) -> PathBuf {
    let path = repo_root().join("tests/interop/go/bin").join(name);
    assert!(
        path.is_file(),
        "the Go reference interop program {} is missing: run `scripts/setup.sh` (or \
         `tests/interop/go/build.sh`, which needs Go and the Go module proxy)",
        path.display()
    );
    path
}

/// `tests/interop/kitejs`, where kite.js 1.0.13 is installed and its scripts run.
pub fn kitejs_dir() -> PathBuf {
    let dir = repo_root().join("tests/interop/kitejs");
    assert!(
        dir.join("node_modules/kite.js/package.json").is_file(),
        "kite.js is not installed in {}: run `scripts/setup.sh` (or `npm ci` there)",
        dir.join("node_modules").display()
    );
    dir
}

/// The panic message for a `program` that could not be started for `what`.
pub fn spawn_error(what: &str, program: &Path, e: std::io::Error) -> String {
    if program == Path::new("node") {
        format!("cannot run `node` for {what} ({e}): install Node.js 20 and run `scripts/setup.sh`")
    } else {
        format!("cannot run {} for {what}: {e}", program.display())
    }
}

/// Builds this crate's examples `names` with cargo (blocking); their executables, in order.
pub fn build_examples<const N: usize>(names: [&str; N]) -> [PathBuf; N] {
    let mut cargo = std::process::Command::new(env!("CARGO"));
    // Cargo gives the test process the package's CARGO_PKG_*, CARGO_MANIFEST_* (…)
    // variables. Build scripts that declare `rerun-if-env-changed` on them (ring does,
    // for CARGO_PKG_NAME and the version parts) would see them change and be rebuilt
    // here, and again by the next plain `cargo test`: build with cargo's usual env.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_by_cargo_for_tests = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_BIN_",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix));
        if set_by_cargo_for_tests {
            cargo.env_remove(key);
        }
    }
    cargo.current_dir(env!("CARGO_MANIFEST_DIR")).arg("build");
    for name in names {
        cargo.args(["--example", name]);
    }
    let out = cargo
        .arg("--message-format=json")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo ({}): {e}", env!("CARGO")));
    assert!(
        out.status.success(),
        "building the examples {names:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let (Some(name), Some(exe)) =
            (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            found.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    names.map(|name| {
        found.get(name).cloned().unwrap_or_else(|| {
            panic!("cargo build printed no executable for example {name}; artifacts: {found:?}")
        })
    })
}

// ---------------------------------------------------------------------------------------
// Running them.

/// Collects a child's output stream (stderr) for failure reports; never blocks the child.
pub fn drain(stream: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    tokio::spawn(async move {
        let mut stream = stream;
        let mut chunk = vec![0u8; 8192];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
            s.push_str(&String::from_utf8_lossy(&chunk[..n]));
            // Keep the tail only: the kite.js heartbeat bug can log forever.
            if s.len() > 256 * 1024 {
                let cut = s.len() - 128 * 1024;
                let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                s.drain(..cut);
            }
        }
    });
    buf
}

/// The last `n` bytes of `s` or a little less, cut at a character boundary.
pub fn last_chars(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// The last 8 KiB of what [`drain`] collected.
pub fn tail(buf: &Arc<Mutex<String>>) -> String {
    let s = buf.lock().unwrap_or_else(|e| e.into_inner());
    last_chars(&s, 8 * 1024).to_string()
}

/// A long-running peer (a test server, a Go kite, the Go Kontrol): killed when dropped; it
/// also exits when its stdin closes ([`Peer::close_stdin`], [`Peer::stop`]).
pub struct Peer {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
    /// Its ready line.
    pub ready: Value,
}

impl Peer {
    /// Spawns `cmd` (`what` names it in messages) and waits for its one-line JSON ready
    /// message; the rest of its stdout is read and dropped so that it never blocks.
    pub async fn start(what: &str, mut cmd: Command) -> Peer {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let program = PathBuf::from(cmd.as_std().get_program());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{}", spawn_error(what, &program, e)));
        let stdin = child.stdin.take();
        let stderr = drain(child.stderr.take().expect("stderr"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = timeout(READY, lines.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{what} printed no ready line within {READY:?}; stderr:\n{}",
                    tail(&stderr)
                )
            })
            .expect("read the peer's stdout");
        let Some(first) = first else {
            // Give the reason a moment to reach the stderr buffer.
            let _ = timeout(Duration::from_secs(2), child.wait()).await;
            panic!(
                "{what} exited before its ready line; stderr:\n{}",
                tail(&stderr)
            );
        };
        let ready: Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("{what}: bad ready line {first:?}: {e}"));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Peer {
            what: what.to_string(),
            child,
            stdin,
            stderr,
            ready,
        }
    }

    /// The `url` of its ready line.
    pub fn url(&self) -> String {
        self.ready["url"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no url in {}", self.what, self.ready))
            .to_string()
    }

    /// The tail of its stderr so far.
    pub fn stderr(&self) -> String {
        tail(&self.stderr)
    }

    /// Closes its stdin, which tells it to exit.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Closes its stdin and waits (bounded by [`STOP`]) for it to exit, else kills it.
    pub async fn stop(mut self) {
        self.close_stdin();
        if timeout(STOP, self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
        }
    }
}

/// What a one-shot process printed, and how it exited.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` (`what` names it) to its end, bounded by [`CLIENT_RUN`], stdin closed.
/// Panics if it cannot be started; `Err` if it does not exit in time.
pub async fn run_once(what: &str, mut cmd: Command) -> Result<Run, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let program = PathBuf::from(cmd.as_std().get_program());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{}", spawn_error(what, &program, e)));
    let out = timeout(CLIENT_RUN, child.wait_with_output())
        .await
        .map_err(|_| format!("{what} did not exit within {CLIENT_RUN:?}"))?
        .map_err(|e| format!("waiting for {what}: {e}"))?;
    Ok(Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
