//! The load: connections keeping calls in flight for a measured window, and the idle
//! connections of the memory measurement.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::servers::{rss_kib, Server};
use crate::wire::{answered, Conn};

/// One connection keeping `in_flight` calls outstanding until `end`; returns latencies (µs).
async fn load(
    mut conn: Conn,
    in_flight: usize,
    start: Instant,
    end: Instant,
) -> Result<Vec<u32>, String> {
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let mut next = 0u64;
    let mut lat = Vec::new();
    for _ in 0..in_flight {
        sent.insert(next, Instant::now());
        conn.call(next);
        next += 1;
    }
    conn.flush().await?;
    let mut ids = Vec::new();
    let mut frame = Vec::new();
    // One deadline for the whole run rather than a timer per message.
    let deadline = tokio::time::sleep_until((end + Duration::from_secs(10)).into());
    tokio::pin!(deadline);
    while Instant::now() < end {
        tokio::select! {
            biased;
            r = conn.read_text(&mut frame) => r?,
            _ = &mut deadline => return Err("no response for 10 s after the end".into()),
        };
        ids.clear();
        answered(&frame, &mut ids)?;
        let now = Instant::now();
        for id in &ids {
            if let Some(t0) = sent.remove(id) {
                if t0 >= start {
                    lat.push(now.duration_since(t0).as_micros().min(u32::MAX as u128) as u32);
                }
                sent.insert(next, now);
                conn.call(next);
                next += 1;
            }
        }
        conn.flush().await?;
    }
    conn.close().await;
    Ok(lat)
}

/// One run of one case on one server.
pub struct Figures {
    /// Calls answered per second in the measured window.
    pub rate: f64,
    /// Median and 99th percentile latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
    /// Server CPU time per call (µs), over the whole case (warm-up included).
    pub cpu_us: Option<f64>,
    /// The load generator's CPU time per call (µs), likewise.
    pub gen_us: Option<f64>,
}

/// Runs `conns` connections with `in_flight` calls each: 0.5 s of warm-up, then `seconds`.
pub async fn run_case(
    port: u16,
    tls: Option<&Arc<rustls::ClientConfig>>,
    conns: usize,
    in_flight: usize,
    seconds: f64,
) -> Result<Figures, String> {
    let mut sockets = Vec::with_capacity(conns);
    for _ in 0..conns {
        sockets.push(Conn::connect(port, tls).await?);
    }
    let warm = Duration::from_millis(500);
    let start = Instant::now() + warm;
    let end = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(load(ws, in_flight, start, end)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|v| *v as f64 / 1000.0)
            .unwrap_or(f64::NAN)
    };
    Ok(Figures {
        rate: all.len() as f64 / seconds,
        p50: pct(0.50),
        p99: pct(0.99),
        cpu_us: None,
        gen_us: None,
    })
}

/// Server memory per connection (KiB): RSS before and after opening `n` connections that
/// each made one call.
pub async fn memory(server: &Server, n: usize) -> Result<f64, String> {
    let pid = server.child.id().ok_or("no pid")?;
    let before = rss_kib(pid).ok_or("no RSS")?;
    let mut sockets = Vec::with_capacity(n);
    let mut ids = Vec::new();
    let mut frame = Vec::new();
    for i in 0..n {
        let mut conn = Conn::connect(server.port, server.tls.as_ref()).await?;
        conn.call(i as u64);
        conn.flush().await?;
        loop {
            conn.read_text(&mut frame).await?;
            ids.clear();
            answered(&frame, &mut ids)?;
            if !ids.is_empty() {
                break;
            }
        }
        sockets.push(conn);
    }
    let after = rss_kib(pid).ok_or("no RSS")?;
    drop(sockets);
    Ok(after.saturating_sub(before) as f64 / n as f64)
}
