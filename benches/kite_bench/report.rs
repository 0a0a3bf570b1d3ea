//! What kite-bench prints: the table of every server (the run with the median rate of each
//! case, and the targets of the issues), or with `--compare` one table per case comparing
//! two servers by the median of each figure over the rounds.

use crate::load::Figures;

/// Everything measured on one server over all rounds.
pub struct Results {
    /// The server's name (`--servers`).
    pub name: String,
    /// Per case, one run per round.
    pub runs: Vec<Vec<Figures>>,
    /// Per case, the last error (or "skipped").
    pub errors: Vec<Option<String>>,
    /// Memory per connection (KiB), one per round.
    pub memory: Vec<f64>,
    /// Why memory was not measured.
    pub memory_error: Option<String>,
    /// Why the server did not start (it is then left out).
    pub start_error: Option<String>,
}

impl Results {
    /// Nothing measured yet, for `cases` cases.
    pub fn new(name: &str, cases: usize) -> Results {
        Results {
            name: name.to_string(),
            runs: (0..cases).map(|_| Vec::new()).collect(),
            errors: vec![None; cases],
            memory: Vec::new(),
            memory_error: None,
            start_error: None,
        }
    }

    /// The run with the median rate of case `i`, or why there is none.
    fn median_run(&self, i: usize) -> Result<&Figures, String> {
        let mut all: Vec<&Figures> = self.runs[i].iter().collect();
        if all.is_empty() {
            return Err(self.errors[i].clone().unwrap_or_else(|| "no run".into()));
        }
        all.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        Ok(all[all.len() / 2])
    }

    /// The median memory per connection, or why there is none.
    fn median_memory(&self) -> Result<f64, String> {
        median(self.memory.iter().copied())
            .ok_or_else(|| self.memory_error.clone().unwrap_or_else(|| "no run".into()))
    }
}

/// The median (the mean of the two middle values for an even count).
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Every server: calls/s and latency, CPU per call, memory, and the targets of the issues.
pub fn table(results: &[Results], seconds: f64, rounds: usize) {
    println!(
        "kite square calls, {seconds} s per case, median of {rounds} run(s), SockJS websocket, same load generator"
    );
    println!(
        "{:<10} {:>10} {:>18} {:>18} {:>18} {:>14}",
        "server", "", "1x1", "8x16", "64x1", "KiB/conn"
    );
    for r in results {
        let cell = |i: usize| match r.median_run(i) {
            Ok(f) => format!("{:>8.0}/s {:>4.2}/{:<4.2}", f.rate, f.p50, f.p99),
            Err(e) => format!("error: {e:.12}"),
        };
        println!(
            "{:<10} {:>10} {:>18} {:>18} {:>18} {:>14}",
            r.name,
            "calls p50/p99ms",
            cell(0),
            cell(1),
            cell(2),
            match r.median_memory() {
                Ok(m) => format!("{m:.1}"),
                Err(e) => format!("{e:.12}"),
            }
        );
    }
    println!(
        "CPU per call (µs, user+system; steadier than calls/s when the machine is shared) of the \
         server, and of the load generator sharing the machine with it:"
    );
    for r in results {
        let cpu = |i: usize, gen: bool| match r.median_run(i).ok().and_then(|f| {
            if gen {
                f.gen_us
            } else {
                f.cpu_us
            }
        }) {
            Some(us) => format!("{us:.1}"),
            None => "-".into(),
        };
        for (label, gen) in [("cpu/call", false), ("gen/call", true)] {
            println!(
                "{:<10} {:>10} {:>18} {:>18} {:>18}",
                r.name,
                label,
                cpu(0, gen),
                cpu(1, gen),
                cpu(2, gen)
            );
        }
    }
    targets(results);
}

/// The targets the issues set, for the servers measured.
fn targets(results: &[Results]) {
    let get = |n: &str, i: usize| {
        results
            .iter()
            .find(|r| r.name == n)
            .and_then(|r| r.median_run(i).ok())
            .map(|f| (f.rate, f.p99))
    };
    for (i, label) in [(1, "8x16"), (2, "64x1")] {
        if let (Some((rr, rp)), Some((gr, gp))) = (get("rust", i), get("go", i)) {
            println!(
                "{label}: rust/go calls = {:.2}x (target >= 3x), p99 rust/go = {:.2} (target <= 0.5)",
                rr / gr,
                rp / gp
            );
        }
    }
    if let (Some((tls, tp)), Some((plain, pp))) = (get("rust-tls", 1), get("rust", 1)) {
        println!(
            "8x16: rust-tls = {:.0}% of rust calls (target >= 70%), p99 {tp:.2} vs {pp:.2} ms",
            100.0 * tls / plain
        );
    }
    // Targets of the bindings (issues: Python, Node), at 8x16.
    if let (Some((py, _)), Some((go, _)), Some((rust, _))) =
        (get("python", 1), get("go", 1), get("rust", 1))
    {
        println!(
            "8x16: python async def = {:.2}x go (target >= 1x), {:.0}% of rust (target >= 40%)",
            py / go,
            100.0 * py / rust
        );
    }
    if let (Some((node, _)), Some((js, _))) = (get("node", 1), get("kitejs", 1)) {
        println!(
            "8x16: node (JavaScript handlers) = {:.2}x kite.js (target >= 1.5x)",
            node / js
        );
    }
    if let Some(Ok(m)) = results
        .iter()
        .find(|r| r.name == "rust")
        .map(Results::median_memory)
    {
        println!(
            "rust memory per connection: {:.1} kB (target <= 20 kB)",
            m * 1.024
        );
    }
}

/// `--compare`: per case, the median of each figure over the rounds for `old` and `new`,
/// new/old in percent, and the server CPU per call of every round (the noise); then memory.
pub fn compare(
    old: &Results,
    new: &Results,
    cases: &[(usize, usize)],
    seconds: f64,
    rounds: usize,
) {
    println!(
        "{} vs {}: kite square calls, {seconds} s per case, median of {rounds} interleaved rounds \
         ({}, {}, {}, …), same load generator",
        new.name, old.name, old.name, new.name, old.name
    );
    type Metric = (&'static str, fn(&Figures) -> Option<f64>, usize);
    let metrics: [Metric; 5] = [
        ("calls/s", |f| Some(f.rate), 0),
        ("server µs CPU/call", |f| f.cpu_us, 1),
        ("load gen µs CPU/call", |f| f.gen_us, 1),
        ("p50 ms", |f| Some(f.p50), 3),
        ("p99 ms", |f| Some(f.p99), 3),
    ];
    for (i, (c, k)) in cases.iter().enumerate() {
        println!();
        println!(
            "{c}x{k} ({c} connection(s), {k} call(s) in flight on each)  {} run(s) of {}, {} of {}",
            old.runs[i].len(),
            old.name,
            new.runs[i].len(),
            new.name
        );
        if old.runs[i].is_empty() || new.runs[i].is_empty() {
            for r in [old, new] {
                if let Some(e) = &r.errors[i] {
                    println!("  {}: {e}", r.name);
                }
            }
            continue;
        }
        println!(
            "  {:<22} {:>12} {:>12} {:>9}",
            "median", old.name, new.name, "new/old"
        );
        for (label, get, digits) in metrics {
            let o = median(old.runs[i].iter().filter_map(get));
            let n = median(new.runs[i].iter().filter_map(get));
            println!(
                "  {label:<22} {:>12} {:>12} {:>9}",
                fmt(o, digits),
                fmt(n, digits),
                ratio(o, n)
            );
        }
        for r in [old, new] {
            let each: Vec<String> = r.runs[i].iter().map(|f| fmt(f.cpu_us, 1)).collect();
            println!(
                "  server µs CPU/call, each round, {}: {}",
                r.name,
                each.join(" ")
            );
        }
    }
    println!();
    compare_memory(old, new);
}

/// Memory per connection of `old` and `new`: medians, new/old, each round.
fn compare_memory(old: &Results, new: &Results) {
    let (o, n) = (old.median_memory().ok(), new.median_memory().ok());
    println!(
        "memory per connection (KiB of server RSS, median of {} and {} round(s))",
        old.memory.len(),
        new.memory.len()
    );
    println!(
        "  {:<22} {:>12} {:>12} {:>9}",
        "median", old.name, new.name, "new/old"
    );
    println!(
        "  {:<22} {:>12} {:>12} {:>9}",
        "KiB/connection",
        fmt(o, 2),
        fmt(n, 2),
        ratio(o, n)
    );
    for r in [old, new] {
        let each: Vec<String> = r.memory.iter().map(|m| format!("{m:.2}")).collect();
        match &r.memory_error {
            Some(e) if r.memory.is_empty() => println!("  {}: {e}", r.name),
            _ => println!(
                "  KiB/connection, each round, {}: {}",
                r.name,
                each.join(" ")
            ),
        }
    }
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// new/old in percent.
fn ratio(old: Option<f64>, new: Option<f64>) -> String {
    match (old, new) {
        (Some(o), Some(n)) if o > 0.0 => format!("{:.1}%", 100.0 * n / o),
        _ => "-".into(),
    }
}
