//! Aggregation of segments into per-(workload, target) results, and their rendering as a
//! text table, Markdown or JSON.
//!
//! Ratios are to the first target given. This module formats; it never measures and never
//! judges (no thresholds, no exit codes).

use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::{SegmentResult, Workload, new_histogram};

/// Everything measured for one workload against one target, summed over rounds.
pub struct Accum {
    pub hist: Histogram<u64>,
    pub ops: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub bytes: u64,
    pub rows: u64,
    pub window: Duration,
    pub cpu_ticks: Option<u64>,
    pub client_ticks: Option<u64>,
    pub rounds: u32,
}

impl Accum {
    pub fn new() -> Self {
        Accum {
            hist: new_histogram(),
            ops: 0,
            errors: 0,
            first_error: None,
            bytes: 0,
            rows: 0,
            window: Duration::ZERO,
            cpu_ticks: None,
            client_ticks: None,
            rounds: 0,
        }
    }
    pub fn add(&mut self, s: SegmentResult) {
        if self.hist.add(&s.hist).is_err() {
            self.errors += 1;
        }
        self.ops += s.ops;
        self.errors += s.errors;
        if self.first_error.is_none() {
            self.first_error = s.first_error;
        }
        self.bytes += s.bytes;
        self.rows += s.rows;
        self.window += s.window;
        if let Some(t) = s.proxy_cpu_ticks {
            self.cpu_ticks = Some(self.cpu_ticks.unwrap_or(0) + t);
        }
        if let Some(t) = s.client_cpu_ticks {
            self.client_ticks = Some(self.client_ticks.unwrap_or(0) + t);
        }
        self.rounds += 1;
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Serialize, Clone, Debug)]
pub struct Ratio {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub throughput: Option<f64>,
}

#[derive(Serialize, Clone, Debug)]
pub struct Row {
    pub workload: Workload,
    pub target: String,
    pub url: String,
    pub connections: usize,
    pub rounds: u32,
    /// Operations (queries, transactions or connections: see `unit`) measured.
    pub ops: u64,
    pub unit: &'static str,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub measured_seconds: f64,
    /// Operations per second.
    pub throughput: f64,
    /// Bytes received per second / 10^6 (all protocol bytes of results).
    pub mb_per_s: f64,
    pub rows: u64,
    /// Latency of one operation, microseconds.
    pub latency_us: Latency,
    pub ratio_to_first: Ratio,
    /// CPU seconds (user + system) of the proxy process per 10,000 statements, when a
    /// `--proxy-pid` was given for this target.
    pub proxy_cpu_s_per_10k: Option<f64>,
    /// The same for this client process (its own overhead; should be alike for all targets
    /// except for TLS and authentication work).
    pub client_cpu_s_per_10k: Option<f64>,
    /// The latency distribution: (quantile, µs) at `cdf_quantiles()`, for plots.
    pub cdf_us: Vec<(f64, f64)>,
}

/// Where the distribution is sampled: every percent, then the tail.
fn cdf_quantiles() -> impl Iterator<Item = f64> {
    (0..100)
        .map(|p| p as f64 / 100.0)
        .chain([0.995, 0.999, 0.9995, 0.9999, 1.0])
}

pub fn row(
    workload: Workload,
    target: &str,
    url: &str,
    connections: usize,
    a: &Accum,
    clk_tck: u64,
) -> Row {
    let us = |q: f64| {
        if a.hist.is_empty() {
            0.0
        } else {
            a.hist.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let secs = a.window.as_secs_f64();
    // The time the measured operations took, per connection: an operation is measured
    // whole when it starts in the window, so for results that take seconds (stream) the
    // window alone would count whole queries against a fixed time. For short operations
    // the two agree.
    let busy = if workload == Workload::Stream && !a.hist.is_empty() {
        a.ops as f64 * (a.hist.mean() / 1e9) / connections.max(1) as f64
    } else {
        secs
    };
    let statements = a.ops * workload.statements_per_op();
    Row {
        workload,
        target: target.to_string(),
        url: url.to_string(),
        connections,
        rounds: a.rounds,
        ops: a.ops,
        unit: workload.unit(),
        errors: a.errors,
        first_error: a.first_error.clone(),
        measured_seconds: secs,
        throughput: if busy > 0.0 { a.ops as f64 / busy } else { 0.0 },
        mb_per_s: if busy > 0.0 {
            a.bytes as f64 / busy / 1e6
        } else {
            0.0
        },
        rows: a.rows,
        latency_us: Latency {
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            p999: us(0.999),
            max: if a.hist.is_empty() {
                0.0
            } else {
                a.hist.max() as f64 / 1000.0
            },
            mean: a.hist.mean() / 1000.0,
        },
        ratio_to_first: Ratio {
            p50: None,
            p99: None,
            throughput: None,
        },
        proxy_cpu_s_per_10k: per_10k(a.cpu_ticks, statements, clk_tck),
        client_cpu_s_per_10k: per_10k(a.client_ticks, statements, clk_tck),
        cdf_us: if a.hist.is_empty() {
            Vec::new()
        } else {
            cdf_quantiles().map(|q| (q, us(q))).collect()
        },
    }
}

fn per_10k(ticks: Option<u64>, statements: u64, clk_tck: u64) -> Option<f64> {
    match ticks {
        Some(t) if statements > 0 && clk_tck > 0 => {
            Some(t as f64 / clk_tck as f64 / statements as f64 * 10_000.0)
        }
        _ => None,
    }
}

/// Fills `ratio_to_first` of every row of one workload (rows in target order).
pub fn set_ratios(rows: &mut [Row]) {
    let Some(first) = rows.first().cloned() else {
        return;
    };
    let div = |a: f64, b: f64| (b > 0.0 && a > 0.0).then(|| a / b);
    for r in rows.iter_mut() {
        r.ratio_to_first = Ratio {
            p50: div(r.latency_us.p50, first.latency_us.p50),
            p99: div(r.latency_us.p99, first.latency_us.p99),
            throughput: div(r.throughput, first.throughput),
        };
    }
}

#[derive(Serialize)]
pub struct Report {
    pub version: u32,
    pub config: serde_json::Value,
    pub results: Vec<Row>,
}

const HEADERS: [&str; 13] = [
    "target",
    "p50 µs",
    "p90 µs",
    "p99 µs",
    "p99.9 µs",
    "max µs",
    "throughput",
    "p50 ×",
    "p99 ×",
    "thr ×",
    "proxy CPU s/10k q",
    "client CPU s/10k q",
    "errors",
];

fn cells(r: &Row) -> [String; 13] {
    let ratio = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.2}"));
    let thr = if r.workload == Workload::Stream {
        format!("{:.1} MB/s", r.mb_per_s)
    } else {
        format!("{:.0} {}/s", r.throughput, r.unit)
    };
    [
        r.target.clone(),
        lat(r.latency_us.p50),
        lat(r.latency_us.p90),
        lat(r.latency_us.p99),
        lat(r.latency_us.p999),
        lat(r.latency_us.max),
        thr,
        ratio(r.ratio_to_first.p50),
        ratio(r.ratio_to_first.p99),
        ratio(r.ratio_to_first.throughput),
        cpu(r.proxy_cpu_s_per_10k),
        cpu(r.client_cpu_s_per_10k),
        r.errors.to_string(),
    ]
}

fn cpu(s: Option<f64>) -> String {
    s.map_or("–".to_string(), |v| format!("{v:.3}"))
}

fn lat(us: f64) -> String {
    if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

fn title(rows: &[Row]) -> String {
    let Some(r) = rows.first() else {
        return String::new();
    };
    let what = match r.workload {
        Workload::SelectSimple => "point select, simple protocol",
        Workload::SelectExtended => "point select, extended protocol (unnamed statement)",
        Workload::SelectPrepared => "point select, extended protocol (prepared statement)",
        Workload::TxReadonly => "read-only transaction: BEGIN; point select; COMMIT",
        Workload::Stream => "large result streaming",
        Workload::Storm => "connection storm: connect + TLS + auth + SELECT 1 + close",
    };
    format!(
        "{} — {what}; {} connection(s), {} round(s), {:.1} s measured per target in all",
        r.workload.name(),
        r.connections,
        r.rounds,
        r.measured_seconds
    )
}

/// Aligned text tables, one per workload.
pub fn text(groups: &[Vec<Row>]) -> String {
    let mut out = String::new();
    for rows in groups {
        let _ = writeln!(out, "\n{}", title(rows));
        let body: Vec<[String; 13]> = rows.iter().map(cells).collect();
        let mut w = HEADERS.map(|h| h.chars().count());
        for r in &body {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = w[i].saturating_sub(c.chars().count());
                if i == 0 {
                    let _ = write!(s, "{c}{}", " ".repeat(pad));
                } else {
                    let _ = write!(s, "  {}{c}", " ".repeat(pad));
                }
            }
            s
        };
        let _ = writeln!(out, "{}", line(&HEADERS.map(String::from)));
        for r in &body {
            let _ = writeln!(out, "{}", line(r));
        }
        for r in rows {
            if let Some(e) = &r.first_error {
                let _ = writeln!(out, "  {}: first error: {e}", r.target);
            }
        }
    }
    out
}

/// One line per workload, one column per target: "p50 ratio / throughput ratio" to the
/// first target — the headline numbers.
fn summary_md(groups: &[Vec<Row>]) -> String {
    let mut out = String::new();
    let Some(first) = groups.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "\n#### Summary: p50 latency × / throughput × relative to `{}`\n",
        first.first().map_or("", |r| r.target.as_str())
    );
    let names: Vec<&str> = first.iter().map(|r| r.target.as_str()).collect();
    let _ = writeln!(out, "| workload | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(names.len()));
    for rows in groups {
        let Some(w) = rows.first().map(|r| r.workload.name()) else {
            continue;
        };
        let cells: Vec<String> = rows
            .iter()
            .map(|r| {
                let f = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.2}"));
                format!(
                    "{} / {}",
                    f(r.ratio_to_first.p50),
                    f(r.ratio_to_first.throughput)
                )
            })
            .collect();
        let _ = writeln!(out, "| {w} | {} |", cells.join(" | "));
    }
    out
}

/// Markdown: the summary, then a table per workload.
pub fn markdown(groups: &[Vec<Row>]) -> String {
    let mut out = summary_md(groups);
    for rows in groups {
        let _ = writeln!(out, "\n#### {}\n", title(rows));
        let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
        let _ = writeln!(
            out,
            "|{}",
            HEADERS
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
                .collect::<String>()
        );
        for r in rows {
            let _ = writeln!(out, "| {} |", cells(r).join(" | "));
        }
        for r in rows {
            if let Some(e) = &r.first_error {
                let _ = writeln!(
                    out,
                    "\n{}: first error: `{}`",
                    r.target,
                    e.replace('`', "'")
                );
            }
        }
    }
    out
}
