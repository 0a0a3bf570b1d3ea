//! The methods every kite serves: `kite.ping`, `kite.systemInfo`, `kite.heartbeat`,
//! `kite.log`, `kite.print`, `kite.prompt` and `kite.getPass`.
#![deny(clippy::arithmetic_side_effects)]

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use super::method::Method;
use super::request::Request;
use crate::protocol::{
    KiteError, METHOD_GET_PASS, METHOD_HEARTBEAT, METHOD_LOG, METHOD_PING, METHOD_PRINT,
    METHOD_PROMPT, METHOD_SYSTEM_INFO,
};

/// `kite.systemInfo`'s answer (field names as the reference).
#[derive(Debug, Clone, Serialize)]
pub struct SystemInfo {
    /// Always `RUNNING`.
    pub state: &'static str,
    /// Bytes used on the root file system.
    #[serde(rename = "diskUsage")]
    pub disk_usage: u64,
    /// Bytes on the root file system.
    #[serde(rename = "diskTotal")]
    pub disk_total: u64,
    /// Bytes of memory in use (excluding buffers and cache).
    #[serde(rename = "memoryUsage")]
    pub memory_usage: u64,
    /// Bytes of memory in total.
    #[serde(rename = "totalMemoryLimit")]
    pub total_memory_limit: u64,
    /// The user's home directory.
    #[serde(rename = "homeDir")]
    pub home_dir: String,
    /// The operating system (`linux`, `macos`, …).
    pub uname: &'static str,
}

impl SystemInfo {
    /// Reads the current figures.
    pub fn read() -> Result<SystemInfo, std::io::Error> {
        let (disk_usage, disk_total) = disk("/")?;
        let (memory_usage, total_memory_limit) = memory().unwrap_or((0, 0));
        Ok(SystemInfo {
            state: "RUNNING",
            disk_usage,
            disk_total,
            memory_usage,
            total_memory_limit,
            home_dir: std::env::var("HOME").unwrap_or_default(),
            uname: std::env::consts::OS,
        })
    }
}

fn disk(path: &str) -> Result<(u64, u64), std::io::Error> {
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let frag = st.fragment_size() as u64;
    let total = (st.blocks() as u64).saturating_mul(frag);
    let free = (st.blocks_free() as u64).saturating_mul(frag);
    Ok((total.saturating_sub(free), total))
}

/// (used, total) in bytes from /proc/meminfo, like the reference: used = total − free −
/// buffers − cached.
fn memory() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
            .unwrap_or(0)
    };
    let total = field("MemTotal");
    let used = total
        .saturating_sub(field("MemFree"))
        .saturating_sub(field("Buffers"))
        .saturating_sub(field("Cached"));
    Some((used, total))
}

/// An I/O failure of a default method, as the caller sees it (the detail goes to the log).
fn io_error(what: &str, e: impl std::fmt::Display) -> KiteError {
    tracing::warn!(error = %e, "{what} failed");
    KiteError::generic(format!("{what} failed"))
}

/// The default methods, registered by every kite.
pub(crate) fn methods() -> Vec<Method> {
    vec![
        Method::new(METHOD_PING, |_req: Request| async {
            Ok::<_, KiteError>("pong")
        })
        .disable_authentication(),
        Method::new(METHOD_SYSTEM_INFO, |_req: Request| async {
            tokio::task::spawn_blocking(SystemInfo::read)
                .await
                .map_err(|e| io_error("systemInfo", e))?
                .map_err(|e| io_error("systemInfo", e))
        }),
        Method::new(METHOD_HEARTBEAT, heartbeat),
        Method::new(METHOD_LOG, |req: Request| async move {
            let msg: String = req.args().one()?;
            tracing::info!(from = %req.caller().name, "{msg}");
            Ok::<_, KiteError>(())
        }),
        Method::new(METHOD_PRINT, |req: Request| async move {
            let msg: String = req.args().one()?;
            let mut out = std::io::stdout().lock();
            out.write_all(msg.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| io_error("print", e))?;
            Ok::<_, KiteError>(msg.len())
        }),
        Method::new(METHOD_PROMPT, |req: Request| async move {
            let msg: String = req.args().one()?;
            tokio::task::spawn_blocking(move || -> std::io::Result<String> {
                print!("{msg}");
                std::io::stdout().flush()?;
                let mut s = String::new();
                std::io::stdin().read_line(&mut s)?;
                Ok(s.trim_end_matches(['\r', '\n']).to_string())
            })
            .await
            .map_err(|e| io_error("prompt", e))?
            .map_err(|e| io_error("prompt", e))
        }),
        Method::new(METHOD_GET_PASS, |req: Request| async move {
            let msg: String = req.args().one()?;
            tokio::task::spawn_blocking(move || rpassword::prompt_password(msg))
                .await
                .map_err(|e| io_error("getPass", e))?
                .map_err(|e| io_error("getPass", e))
        }),
    ]
}

/// Longest `kite.heartbeat` interval; longer ones are clamped to it.
pub(crate) const MAX_HEARTBEAT: Duration = Duration::from_secs(365 * 24 * 3600);
/// Shortest `kite.heartbeat` interval; shorter ones are clamped to it.
pub(crate) const MIN_HEARTBEAT: Duration = Duration::from_millis(10);

/// `kite.heartbeat [seconds, callback]`: calls the callback now and then every `seconds`
/// until the caller disconnects.
async fn heartbeat(req: Request) -> Result<(), KiteError> {
    let seconds: f64 = req.args().at(0)?;
    let ping = req.args().function(1)?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(KiteError::argument(
            "heartbeat interval must be a positive number of seconds",
        ));
    }
    // The interval comes from the wire: any finite positive number is accepted, clamped
    // to [MIN_HEARTBEAT, MAX_HEARTBEAT] (1e19 s would overflow the clock, 1e-300 s is zero).
    let period = Duration::try_from_secs_f64(seconds)
        .unwrap_or(MAX_HEARTBEAT)
        .clamp(MIN_HEARTBEAT, MAX_HEARTBEAT);
    ping.call(()).await?;
    let stop = req.client().replace_heartbeat();
    tokio::spawn(async move {
        let start = tokio::time::Instant::now()
            .checked_add(period)
            .unwrap_or_else(tokio::time::Instant::now);
        let mut tick = tokio::time::interval_at(start, period);
        loop {
            tokio::select! {
                // A replaced heartbeat stops before its next ping.
                biased;
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if ping.call(()).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(())
}
