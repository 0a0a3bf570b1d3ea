//! The `kontrol` and `kitectl` commands, run as processes on a temporary `KITE_HOME`: the
//! operator's first steps (`--initial`, start, `showkey`), a kite registering with the key,
//! `query` and `tell` finding and calling it, `register`, and a restart keeping the key pair.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kite::auth::KiteClaims;
use kite::protocol::Kite as KiteIdentity;
use kite::{Config, Kite, Request};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const KONTROL: &str = env!("CARGO_BIN_EXE_kontrol");
const KITECTL: &str = env!("CARGO_BIN_EXE_kitectl");

/// Bound on every wait (a process start includes generating an RSA key pair).
const WAIT: Duration = Duration::from_secs(30);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// A temporary kite home, removed on drop.
struct Home(PathBuf);

impl Home {
    fn new() -> Home {
        let p = std::env::temp_dir().join(format!("kite-tools-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).unwrap();
        Home(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn kite_key(&self) -> String {
        kite::auth::read_kite_key(Some(&self.0.join("kite.key"))).unwrap()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `bin` with `KITE_HOME=home` and none of the caller's `KITE_*`/`KONTROL_*` settings.
fn command(bin: &str, home: &Path) -> Command {
    let mut c = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("KITE_") || k.starts_with("KONTROL_") {
            c.env_remove(k);
        }
    }
    c.env("KITE_HOME", home)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// A running `kontrol`; killed on drop.
struct Running {
    _child: Child,
    url: String,
    _stdout: Lines<BufReader<ChildStdout>>,
}

/// Starts `kontrol --ip 127.0.0.1 --port 0 ARGS` and waits for its readiness line.
async fn start_kontrol(home: &Path, args: &[&str]) -> Running {
    let mut child = command(KONTROL, home)
        .args(["--ip", "127.0.0.1", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn kontrol");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = within(async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("kontrol listening on ") {
                return url.to_string();
            }
        }
        panic!(
            "kontrol exited before it was ready: {:?}",
            child.wait().await
        );
    })
    .await;
    assert!(
        (url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"))
            && url.ends_with("/kite"),
        "{url}"
    );
    Running {
        _child: child,
        url,
        _stdout: lines,
    }
}

/// Runs a command to completion: (success, stdout, stderr).
async fn run(mut c: Command) -> (bool, String, String) {
    let out = within(c.stdout(Stdio::piped()).stderr(Stdio::piped()).output())
        .await
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kitectl ARGS` against the Kontrol at `kontrol_url`; its stdout, or a panic with stderr.
async fn kitectl(home: &Path, kontrol_url: &str, args: &[&str]) -> String {
    let mut c = command(KITECTL, home);
    c.env("KITE_KONTROL_URL", kontrol_url).args(args);
    let (ok, out, err) = run(c).await;
    assert!(ok, "kitectl {args:?} failed: {err}");
    out
}

/// The value of `name` in `kitectl showkey`'s output (names are padded to 15 columns; a PEM
/// value continues on the following lines).
fn claim(showkey: &str, name: &str) -> String {
    let mut lines = showkey.lines();
    let first = lines
        .find(|l| l.get(..15).map(str::trim_end) == Some(name))
        .unwrap_or_else(|| panic!("no {name} in {showkey}"));
    let mut value = first[15..].to_string();
    if value.starts_with("-----BEGIN") {
        for l in lines.by_ref() {
            value.push('\n');
            value.push_str(l);
            if l.starts_with("-----END") {
                break;
            }
        }
    }
    value
}

/// An in-process math kite with `kite_key`, registering to `kontrol_url`; `square` needs
/// authentication (a kite key or a token from the same Kontrol).
async fn math_kite(kite_key: &str, kontrol_url: &str) -> Kite {
    let mut config = Config {
        ip: "127.0.0.1".into(),
        environment: "test".into(),
        ..Config::default()
    };
    config.use_kite_key(kite_key).unwrap();
    config.kontrol_url = kontrol_url.to_string();
    let k = Kite::with_config("math", "1.0.0", config).unwrap();
    k.handle("square", |r: Request| async move {
        let n: f64 = r.args().one()?;
        Ok::<_, kite::KiteError>(n * n)
    })
    .unwrap();
    within(k.listen()).await.unwrap();
    k
}

/// `kontrol --initial`: a kite key for the operator alice, with the default Kontrol URL
/// (port 6000), and the SQLite database in `KITE_HOME`.
async fn initial_key(home: &Home) -> KiteClaims {
    let (ok, out, err) = run({
        let mut c = command(KONTROL, home.path());
        c.args(["--initial", "--username", "alice"]);
        c
    })
    .await;
    assert!(ok, "kontrol --initial failed: {err}");
    assert!(out.contains("kite.key is written to"), "{out}");
    let claims = kite::auth::parse_unverified(&home.kite_key()).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.iss.as_str()),
        ("alice", "alice")
    );
    assert_eq!(claims.kontrol_url, "http://127.0.0.1:6000/kite");
    assert!(
        home.path().join("kontrol.db").exists(),
        "SQLite lives in KITE_HOME by default"
    );
    claims
}

/// `kitectl showkey` shows the operator's kite key.
async fn assert_showkey(home: &Home, url: &str, claims: &KiteClaims) {
    let shown = kitectl(home.path(), url, &["showkey"]).await;
    assert_eq!(claim(&shown, "sub"), "alice");
    assert_eq!(claim(&shown, "iss"), "alice");
    assert_eq!(claim(&shown, "kontrolURL"), "http://127.0.0.1:6000/kite");
    assert_eq!(claim(&shown, "jti"), claims.jti);
    assert_eq!(
        claim(&shown, "kontrolKey").trim(),
        claims.kontrol_key.trim()
    );
}

/// `kitectl query` finds the math kite; `kitectl tell` calls it, by name through Kontrol
/// and by URL; a remote error fails with a message on stderr.
async fn assert_query_and_tell(home: &Home, url: &str, math: &Kite) {
    let math_url = math.url().unwrap();
    // The username defaults to the kite key's.
    let listed = kitectl(
        home.path(),
        url,
        &["query", "--environment", "test", "--name", "math"],
    )
    .await;
    let id: KiteIdentity = math.identity().clone();
    let want = format!(
        "1\talice/test/math/1.0.0/{}/{}/{}\t{math_url}",
        id.region, id.hostname, id.id
    );
    assert_eq!(listed.trim_end(), want);
    // Go-style single-dash flags, and a version constraint.
    let listed = kitectl(
        home.path(),
        url,
        &[
            "query",
            "-username=alice",
            "-environment",
            "test",
            "-name",
            "math",
            "-version",
            ">= 1.0, < 2",
        ],
    )
    .await;
    assert_eq!(listed.lines().count(), 1, "{listed}");

    // Found through Kontrol: called with Kontrol's token.
    let out = kitectl(
        home.path(),
        url,
        &[
            "tell",
            "--environment",
            "test",
            "--name",
            "math",
            "--method",
            "square",
            "7",
        ],
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap(),
        json!(49.0)
    );
    // By URL: called with the kite key.
    let out = kitectl(
        home.path(),
        url,
        &[
            "tell",
            "--to",
            &math_url,
            "--method",
            "square",
            "--timeout",
            "2s",
            "3",
        ],
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap(),
        json!(9.0)
    );
    // A remote error is reported on stderr with a failing status.
    let mut c = command(KITECTL, home.path());
    c.args(["tell", "--to", &math_url, "--method", "square", "\"seven\""]);
    let (ok, _, err) = run(c).await;
    assert!(!ok && err.starts_with("kitectl: "), "{err}");
}

/// `kitectl register` (machine auth is open here) writes a key for bob into another home,
/// signed by the operator's Kontrol.
async fn assert_register_machine(url: &str, claims: &KiteClaims) {
    let bob = Home::new();
    let mut c = command(KITECTL, bob.path());
    c.args(["register", "--to", url, "--username", "bob"]);
    let (ok, _, err) = run(c).await;
    assert!(ok, "kitectl register failed: {err}");
    let bob_claims = kite::auth::parse_unverified(&bob.kite_key()).unwrap();
    assert_eq!(
        (bob_claims.sub.as_str(), bob_claims.iss.as_str()),
        ("bob", "alice")
    );
    assert_eq!(bob_claims.kontrol_key.trim(), claims.kontrol_key.trim());
    assert_eq!(
        bob_claims.kontrol_url, url,
        "Kontrol's own URL goes into kite keys"
    );
}

/// The `kontrol` command serves Prometheus metrics beside `/kite` without being asked: the
/// one kite registered so far is counted.
async fn assert_metrics_by_default(kontrol_url: &str) {
    let response = common::scrape_metrics(kontrol_url).await;
    assert!(
        response.lines().any(|l| l == "kontrol_kites_registered 1"),
        "{response}"
    );
}

#[tokio::test]
async fn operator_flow_on_sqlite() {
    let home = Home::new();

    let claims = initial_key(&home).await;

    // Kontrol on SQLite: runs as the kite key's owner, with the pair --initial stored.
    let kontrol = start_kontrol(home.path(), &["--machine-auth", "open"]).await;
    let url = kontrol.url.clone();

    assert_showkey(&home, &url, &claims).await;

    // A kite registers with the operator's key; `query` finds it, `tell` calls it.
    let math = math_kite(&home.kite_key(), &url).await;
    let math_url = math.url().unwrap();
    let result = within(math.register(&math_url)).await.unwrap();
    assert!(
        result.kite_key.is_empty() && result.public_key.is_empty(),
        "{result:?}"
    );
    assert_eq!(
        within(math.get_key()).await.unwrap().trim(),
        claims.kontrol_key.trim()
    );

    assert_query_and_tell(&home, &url, &math).await;
    assert_metrics_by_default(&url).await;

    assert_register_machine(&url, &claims).await;

    // Restart on the same data dir: the same key pair, so the kite key is still valid.
    drop(kontrol);
    let kontrol = start_kontrol(home.path(), &[]).await;
    assert_ne!(kontrol.url, url);
    let again = math_kite(&home.kite_key(), &kontrol.url).await;
    let result = within(again.register(&again.url().unwrap())).await.unwrap();
    assert!(
        result.kite_key.is_empty() && result.public_key.is_empty(),
        "re-signed after restart: {result:?}"
    );
    assert_eq!(
        within(again.get_key()).await.unwrap().trim(),
        claims.kontrol_key.trim()
    );
    let out = kitectl(
        home.path(),
        &kontrol.url,
        &[
            "tell",
            "--environment",
            "test",
            "--name",
            "math",
            "--method",
            "square",
            "5",
        ],
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap(),
        json!(25.0)
    );
    math.close();
    again.close();
}

#[tokio::test]
async fn defaults_are_safe_and_errors_are_clear() {
    let home = Home::new();
    // Go-style flags; memory storage; registerMachine is off unless asked for.
    let kontrol = start_kontrol(home.path(), &["-storage=memory", "-username", "root"]).await;
    let mut c = command(KITECTL, home.path());
    c.args(["register", "--to", &kontrol.url, "--username", "mallory"]);
    let (ok, _, err) = run(c).await;
    assert!(!ok && err.contains("registerMachine is disabled"), "{err}");
    assert!(!home.path().join("kite.key").exists());
    assert!(
        !home.path().join("kontrol.db").exists(),
        "memory storage writes nothing"
    );

    // --initial needs a URL to put in the key.
    let mut c = command(KONTROL, home.path());
    c.args(["--initial", "--storage", "memory", "--port", "0"]);
    let (ok, _, err) = run(c).await;
    assert!(!ok && err.contains("--kontrolurl"), "{err}");

    // Unknown storage, missing key file, and tell without a target.
    let mut c = command(KONTROL, home.path());
    c.args(["--storage", "mongodb"]);
    let (ok, _, err) = run(c).await;
    assert!(!ok && err.contains("possible values"), "{err}");
    let mut c = command(KONTROL, home.path());
    c.args([
        "--storage",
        "memory",
        "--publickeyfile",
        "/nonexistent/pub.pem",
        "--privatekeyfile",
        "/nonexistent/key.pem",
    ]);
    let (ok, _, err) = run(c).await;
    assert!(
        !ok && err.contains("cannot read key file /nonexistent/pub.pem"),
        "{err}"
    );
    let mut c = command(KITECTL, home.path());
    c.args(["tell", "--method", "square", "1"]);
    let (ok, _, err) = run(c).await;
    assert!(!ok && err.contains("--to"), "{err}");
}

#[tokio::test]
async fn key_files_are_adopted_once() {
    let home = Home::new();
    let pair = kite::auth::KeyPair::generate().unwrap();
    let (public, private) = (home.path().join("key_pub.pem"), home.path().join("key.pem"));
    std::fs::write(&public, &pair.public_pem).unwrap();
    std::fs::write(&private, &pair.private_pem).unwrap();
    let files = [
        "--publickeyfile",
        public.to_str().unwrap(),
        "--privatekeyfile",
        private.to_str().unwrap(),
    ];
    for _ in 0..2 {
        // The second start finds the pair already stored and signs with it still.
        let kontrol = start_kontrol(home.path(), &files).await;
        let key = {
            let mut c = command(KONTROL, home.path());
            c.args(["--initial", "--kontrolurl", &kontrol.url])
                .args(files);
            let (ok, _, err) = run(c).await;
            assert!(ok, "{err}");
            home.kite_key()
        };
        assert_eq!(
            kite::auth::parse_unverified(&key)
                .unwrap()
                .kontrol_key
                .trim(),
            pair.public_pem.trim()
        );
        let out = kitectl(
            home.path(),
            &kontrol.url,
            &["tell", "--to", &kontrol.url, "--method", "getKey"],
        )
        .await;
        let served: String = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(served.trim(), pair.public_pem.trim());
    }
    // A public key that is not the private key's is refused.
    let other = kite::auth::KeyPair::generate().unwrap();
    std::fs::write(&public, &other.public_pem).unwrap();
    let mut c = command(KONTROL, home.path());
    c.args(["--port", "0"]).args(files);
    let (ok, _, err) = run(c).await;
    assert!(!ok && err.contains("is not the public key of"), "{err}");
}

#[tokio::test]
async fn a_kite_key_pointing_at_the_wrong_port_fails_at_once_and_says_so() {
    let home = Home::new();
    // `kontrol --initial` with one port, Kontrol served on another: the first hour.
    let mut c = command(KONTROL, home.path());
    c.args(["--initial", "--storage", "sqlite", "--port", "1"]);
    let (ok, _, err) = run(c).await;
    assert!(ok, "{err}");
    let kontrol = start_kontrol(home.path(), &["--storage", "sqlite"]).await;
    assert!(!kontrol.url.contains(":1/"), "{}", kontrol.url);
    let key_path = home.path().join("kite.key");
    for args in [
        &["query", "--environment", "unknown", "--name", "math"][..],
        &[
            "tell",
            "--environment",
            "unknown",
            "--name",
            "math",
            "--method",
            "square",
            "2",
        ][..],
    ] {
        let mut c = command(KITECTL, home.path());
        c.args(args);
        let t = std::time::Instant::now();
        let (ok, _, err) = run(c).await;
        assert!(!ok, "{args:?}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{args:?}: {:?}",
            t.elapsed()
        );
        for want in [
            "connection refused at http://127.0.0.1:1/kite",
            &format!("URL from kite.key at {}", key_path.display()),
        ] {
            assert!(err.contains(want), "{args:?}: missing {want:?} in: {err}");
        }
        // One line, not a retry log.
        assert!(!err.contains("retry"), "{err}");
    }
    // The override names itself, and with the right URL it works.
    let mut c = command(KITECTL, home.path());
    c.env("KITE_KONTROL_URL", "http://127.0.0.1:1/kite").args([
        "query",
        "--environment",
        "unknown",
        "--name",
        "math",
    ]);
    let (ok, _, err) = run(c).await;
    assert!(
        !ok && err.contains("URL from --kontrol-url (or KITE_KONTROL_URL)"),
        "{err}"
    );
    // A bad query is the caller's mistake, said as such.
    let mut c = command(KITECTL, home.path());
    c.env("KITE_KONTROL_URL", &kontrol.url)
        .args(["query", "--name", "math"]);
    let (ok, _, err) = run(c).await;
    assert!(
        !ok && err.contains("Query option is not set: environment"),
        "{err}"
    );
}

#[tokio::test]
async fn logs_follow_kite_log_level_and_format_without_colour_in_pipes() {
    let home = Home::new();
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/kite", l.local_addr().unwrap().port())
    };
    // The reference's level names; RUST_LOG unset so that KITE_LOG_LEVEL decides.
    let mut c = command(KITECTL, home.path());
    c.env_remove("RUST_LOG")
        .env("KITE_LOG_LEVEL", "DEBUG")
        .env("KITE_LOG_FORMAT", "json")
        // XHR polling logs its retries of the opening request at debug level.
        .env("KITE_TRANSPORT", "xhr-polling")
        .args(["tell", "--to", &refused, "--method", "square", "2"]);
    let (ok, _, err) = run(c).await;
    assert!(!ok);
    let json: Vec<Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        json.iter().any(|v| v["level"] == "DEBUG"),
        "no DEBUG JSON line in: {err}"
    );
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe: {err:?}");
    // WARNING hides debug lines; plain text, still no colour.
    let mut c = command(KITECTL, home.path());
    c.env_remove("RUST_LOG")
        .env("KITE_LOG_LEVEL", "WARNING")
        .args(["tell", "--to", &refused, "--method", "square", "2"]);
    let (ok, _, err) = run(c).await;
    assert!(!ok);
    assert!(!err.contains("DEBUG") && !err.contains('{'), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("connection refused"), "{err}");
}

/// A CA (rcgen) and a certificate for 127.0.0.1 it signed, written under `dir`:
/// (ca.pem, cert.pem, key.pem).
fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "kitectl test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[tokio::test]
async fn kitectl_over_https() {
    let home = Home::new();
    let tls_dir = home.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let (ca, cert, key) = test_pki(&tls_dir);
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let (ok, _, err) = run({
        let mut c = command(KONTROL, home.path());
        c.args(["--initial", "--username", "alice"]);
        c
    })
    .await;
    assert!(ok, "kontrol --initial failed: {err}");
    let self_url = "https://kontrol.example.com:4443/kite";
    let kontrol = start_kontrol(
        home.path(),
        &[
            "--tlscertfile",
            &cert,
            "--tlskeyfile",
            &key,
            "--registerurl",
            self_url,
        ],
    )
    .await;
    let url = kontrol.url.clone();
    assert!(url.starts_with("https://"), "{url}");

    // A kite trusting the CA registers over TLS.
    let mut config = Config {
        ip: "127.0.0.1".into(),
        environment: "test".into(),
        tls_ca_file: Some(ca.clone()),
        ..Config::default()
    };
    config.use_kite_key(&home.kite_key()).unwrap();
    config.kontrol_url = url.clone();
    let math = Kite::with_config("math", "1.0.0", config).unwrap();
    within(math.listen()).await.unwrap();
    within(math.register(&math.url().unwrap())).await.unwrap();

    // kitectl trusts the CA through SSL_CERT_FILE (as Go programs do), or KITE_TLS_CA_FILE.
    for var in ["SSL_CERT_FILE", "KITE_TLS_CA_FILE"] {
        let mut c = command(KITECTL, home.path());
        c.env("KITE_KONTROL_URL", &url).env(var, &ca).args([
            "query",
            "--environment",
            "test",
            "--name",
            "math",
        ]);
        let (ok, out, err) = run(c).await;
        assert!(ok, "kitectl query with {var} failed: {err}");
        assert!(out.contains(&math.url().unwrap()), "{out}");
    }
    // Kontrol's own --registerurl record.
    let mut c = command(KITECTL, home.path());
    c.env("KITE_KONTROL_URL", &url)
        .env("SSL_CERT_FILE", &ca)
        .args(["query", "--environment", "unknown", "--name", "kontrol"]);
    let (ok, out, err) = run(c).await;
    assert!(ok, "kitectl query --name kontrol failed: {err}");
    assert!(out.contains(self_url), "{out}");

    // Without the CA: a TLS error naming Kontrol's URL, at once (not the 15 s timeout).
    let mut c = command(KITECTL, home.path());
    c.env("KITE_KONTROL_URL", &url)
        .env_remove("SSL_CERT_FILE")
        .args(["query", "--environment", "test", "--name", "math"]);
    let t0 = std::time::Instant::now();
    let (ok, _, err) = run(c).await;
    assert!(!ok);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(err.contains("tlsError") && err.contains(&url), "{err}");
    assert!(err.contains("unknown authority"), "{err}");
}
