//! What a chaos run prints: a line per fault as it recovers, and at the end a table per
//! backend and window (the steady start, then each fault until the next) with the verdict.

use std::time::Duration;

use crate::faults::Recovery;
use crate::load::Tally;

/// One line of the summary table.
pub struct Row {
    pub backend: &'static str,
    /// `None` for the steady window before the first fault.
    pub recovery: Option<Recovery>,
    pub tally: Tally,
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "never".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

/// Whether every worker registered again within `goal` of the server being back.
pub fn met(r: &Recovery, goal: Duration) -> bool {
    r.registered.is_some_and(|d| d <= goal)
}

/// The line printed once a fault has recovered (or given up).
pub fn recovery_line(r: &Recovery, workers: usize, goal: Duration) -> String {
    let how = match r.fault {
        crate::faults::Fault::KillKontrol => {
            "registered again (each kite's register after the kill)"
        }
        _ => "listed by getKites",
    };
    format!(
        "  {}: down {} s (fault until the server was back); after that Kontrol answered in {} s, all {workers} kites {how} in {} s — goal {} s: {}; {} registrations since the fault, {} probes failed",
        r.fault.name(),
        secs(Some(r.down)),
        secs(r.answers),
        secs(r.registered),
        goal.as_secs_f64(),
        if met(r, goal) { "met" } else { "MISSED" },
        r.register_events,
        r.probe_failures,
    )
}

/// The summary table.
pub fn table(rows: &[Row], goal: Duration) {
    println!(
        "\n{:<9} {:<16} {:>7} {:>8} {:>8} {:>6} {:>7} {:>8} {:>6} {:>5} {:>5} {:>16}",
        "backend",
        "window",
        "down s",
        "answer s",
        "regist s",
        "goal",
        "sent",
        "answered",
        "failed",
        "lost",
        "twice",
        "getKites ok/err/short"
    );
    for row in rows {
        let t = &row.tally;
        let (window, down, answers, registered, verdict) = match &row.recovery {
            None => ("steady".into(), "-".into(), "-".into(), "-".into(), "-"),
            Some(r) => (
                r.fault.name().to_string(),
                secs(Some(r.down)),
                secs(r.answers),
                secs(r.registered),
                if met(r, goal) { "met" } else { "MISSED" },
            ),
        };
        let get_kites = format!(
            "{}/{}/{}",
            t.get_kites_ok, t.get_kites_failed, t.get_kites_short
        );
        println!(
            "{:<9} {:<16} {:>7} {:>8} {:>8} {:>6} {:>7} {:>8} {:>6} {:>5} {:>5} {:>16}",
            row.backend,
            window,
            down,
            answers,
            registered,
            verdict,
            t.sent,
            t.answered,
            t.failed,
            t.lost,
            t.twice,
            get_kites,
        );
    }
    for row in rows {
        let t = &row.tally;
        let window = row.recovery.as_ref().map_or("steady", |r| r.fault.name());
        if let Some(e) = &t.first_error {
            println!("{} {window}: first failed call: {e}", row.backend);
        }
        if let Some(e) = &t.first_get_kites_error {
            println!("{} {window}: first failed getKites: {e}", row.backend);
        }
    }
}
