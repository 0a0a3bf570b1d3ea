//! A real etcd server for tests (Debian's `etcd-server`, installed by `scripts/setup.sh`):
//! started on free 127.0.0.1 ports with a data directory of its own (on `/dev/shm` if
//! present: etcd fsyncs every write), waited on through its `/health` endpoint, killed and
//! removed when dropped. It can be stopped and restarted on the same ports and data.
//!
//! Include it with `#[cfg(feature = "etcd")] #[path = "common/etcd.rs"] mod etcd_server;`.
#![allow(dead_code, missing_docs)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kite::kontrol::storage::etcd::{Etcd, EtcdOptions};

/// Upper bound for etcd to become healthy, and for other waits on it.
const READY: Duration = Duration::from_secs(10);

/// An etcd server on free 127.0.0.1 ports with its own data directory; killed (and the
/// directory removed) on drop.
pub struct EtcdServer {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl EtcdServer {
    /// Starts etcd and waits until it reports itself healthy.
    pub async fn start() -> EtcdServer {
        static N: AtomicU32 = AtomicU32::new(0);
        let mut last = String::new();
        // A port found free can be taken before etcd binds it; then try other ports.
        for _ in 0..3 {
            // Data on tmpfs where there is one: etcd fsyncs every write.
            let base = PathBuf::from("/dev/shm");
            let base = if base.is_dir() {
                base
            } else {
                std::env::temp_dir()
            };
            let dir = base.join(format!(
                "kite-etcd-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let mut server = EtcdServer {
                child: None,
                dir,
                client_port: free_port(),
                peer_port: free_port(),
            };
            match server.run().await {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("etcd did not start: {last}");
    }

    /// Spawns etcd on this server's ports and data directory and waits for readiness.
    async fn run(&mut self) -> Result<(), String> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .args(["--name", "kite-test"])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("kite-test={peer}")])
            .args(["--initial-cluster-state", "new"])
            // Fast elections; the shortest lease becomes 1 s.
            .args(["--heartbeat-interval", "10", "--election-timeout", "50"])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run etcd (scripts/setup.sh installs it): {e}"))?;
        self.child = Some(child);
        let health = format!("{client}/health");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + READY;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
                    }
                    self.child = None;
                    return Err(format!("etcd exited ({status}): {err}"));
                }
            }
            if let Ok(resp) = http.get(&health).send().await {
                if resp
                    .text()
                    .await
                    .is_ok_and(|t| t.contains(r#""health":"true""#))
                {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stop();
        Err("etcd not healthy in time".into())
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Options reaching this server, with test timeouts and the default lease.
    pub fn options(&self) -> EtcdOptions {
        EtcdOptions {
            endpoints: vec![self.endpoint()],
            request_timeout: Duration::from_secs(2),
            ..EtcdOptions::default()
        }
    }

    /// A storage on this server with default lease and test timeouts.
    pub async fn storage(&self) -> Etcd {
        Etcd::connect(self.options()).await.expect("connect")
    }

    /// Watchers etcd is serving (from its metrics).
    pub async fn watchers(&self) -> u64 {
        let metrics = reqwest::get(format!("{}/metrics", self.endpoint()))
            .await
            .expect("get etcd metrics")
            .text()
            .await
            .expect("read etcd metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watcher_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("watcher metric") as u64
    }

    /// Waits until etcd serves exactly `n` watchers.
    pub async fn wait_for_watchers(&self, n: u64) {
        tokio::time::timeout(READY, async {
            while self.watchers().await != n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("timed out waiting for etcd's watcher count");
    }

    /// Kills etcd (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub async fn restart(&mut self) {
        self.run().await.expect("etcd restarts");
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
