//! pgate-loadtest: latency and throughput of PostgreSQL endpoints side by side — typically
//! PostgreSQL directly, PgBouncer and pgate — with one lean client (see `client`), so that
//! client overhead is small and the same for every target.
//!
//! Targets run interleaved in rounds (A B C A B C …) so that drift of the machine (thermal,
//! other tenants) hits every target alike. Latencies go into HDR histograms; the output is a
//! table per workload with p50/p90/p99/p99.9/max, throughput, ratios to the first target
//! and, for targets given a `--proxy-pid`, the proxy's CPU seconds per 10,000 statements.
//!
//! Runtime: one tokio runtime, current-thread by default. The benchmark machine also runs
//! PostgreSQL and the proxy under test; a single-threaded client uses at most one core,
//! has no work-stealing or cross-thread wakeups in its own latency, and owns one histogram
//! per connection task without locks. `--threads N` switches to a multi-thread runtime
//! when one core cannot drive the load.
//!
//! This program only reads from targets (pgbench tables, `SELECT 1`); it never writes, and
//! it never prints a password (URLs in reports are redacted).

mod client;
mod idle;
mod report;
mod tls;
mod url;
mod workload;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::client::{ConnectSpec, Limits};
use crate::report::{Accum, Report, Row};
use crate::workload::{SegmentSpec, Workload, run_segment};

#[derive(Parser, Debug)]
#[command(
    name = "pgate-loadtest",
    about = "Latency and throughput of PostgreSQL endpoints (direct, PgBouncer, pgate) side by side",
    after_help = "Passwords: in the URL (percent-encoded), in ?password_file=PATH, or in the environment as PGATE_LOADTEST_PASSWORD_<NAME> (NAME upper-cased, other characters as _).\nExit codes: 0 ok, 1 a workload measured nothing on some target, 2 usage or setup errors."
)]
struct Cli {
    /// A target, NAME=postgres://user[:password]@host[:port]/db[?sslmode=…&sslrootcert=…&password_file=…]
    /// (repeatable; ratios are to the first).
    #[arg(long = "target", required = true, value_name = "NAME=URL")]
    targets: Vec<String>,
    /// Workloads to run, in this order (comma-separated or repeated).
    #[arg(long = "workload", value_enum, value_delimiter = ',', default_values_t = [
        Workload::SelectSimple, Workload::SelectExtended, Workload::SelectPrepared,
        Workload::TxReadonly, Workload::Stream, Workload::Storm])]
    workloads: Vec<Workload>,
    /// Concurrent connections per target (point selects and transactions).
    #[arg(long, short = 'c', default_value_t = 8)]
    connections: usize,
    /// Concurrent connections for the stream workload.
    #[arg(long, default_value_t = 1)]
    stream_connections: usize,
    /// Concurrent connecting clients in the connection storm (default: --connections).
    #[arg(long)]
    storm_connections: Option<usize>,
    /// Measured seconds per target per round.
    #[arg(long, short = 'd', default_value_t = 2.0)]
    duration: f64,
    /// Warm-up seconds before each measured segment (after the connections are set up).
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Rounds: each round runs every target once, in the order given.
    #[arg(long, short = 'r', default_value_t = 3)]
    rounds: u32,
    /// pgbench scale of the target database (aids are drawn from 1..=100000 × scale).
    #[arg(long, short = 's', default_value_t = 1)]
    scale: u64,
    /// Rows per query in the stream workload (`SELECT * FROM pgbench_accounts LIMIT n`).
    #[arg(long, default_value_t = 100_000)]
    stream_rows: u64,
    /// Each account row this many times in the stream workload (`… CROSS JOIN
    /// generate_series(1, n)`): results larger than the table (1 GB from scale 1).
    #[arg(long, default_value_t = 1)]
    stream_repeat: u64,
    /// The PID of the proxy behind a target, NAME=PID (repeatable): its CPU time (user +
    /// system, /proc/PID/stat) is read around every measured window.
    #[arg(long = "proxy-pid", value_name = "NAME=PID")]
    proxy_pids: Vec<String>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// Client runtime threads (1: current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Largest message accepted from a target.
    #[arg(long, default_value_t = 16 << 20)]
    max_message_bytes: u32,
    /// Most rows accepted in one result.
    #[arg(long, default_value_t = 10_000_000)]
    max_rows: u64,
    /// Seed of the aid generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Same as --format json.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (whatever --format says).
    #[arg(long, value_name = "FILE")]
    json_out: Option<std::path::PathBuf>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Instead of the workloads: hold this many idle sessions per target that has a
    /// --proxy-pid (each authenticated, one `SELECT 1`) and report the proxy's resident
    /// memory per session.
    #[arg(long, value_name = "N")]
    idle_sessions: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Markdown,
    Json,
}

#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error(transparent)]
    Url(#[from] url::UrlError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgate-loadtest: {e}");
            ExitCode::from(2)
        }
    }
}

struct TargetCtx {
    spec: ConnectSpec,
    pid: Option<u32>,
}

fn run(cli: Cli) -> Result<ExitCode, SetupError> {
    let usage = |m: &str| Err(SetupError::Usage(m.to_string()));
    if !(1..=10_000).contains(&cli.connections)
        || !(1..=10_000).contains(&cli.stream_connections)
        || cli
            .storm_connections
            .is_some_and(|c| !(1..=10_000).contains(&c))
    {
        return usage("connection counts must be between 1 and 10000");
    }
    if !(cli.duration > 0.0 && cli.duration <= 3600.0 && (0.0..=600.0).contains(&cli.warmup)) {
        return usage("--duration must be in (0, 3600] and --warmup in [0, 600] seconds");
    }
    if !(1..=1000).contains(&cli.rounds) || !(1..=64).contains(&cli.threads) {
        return usage("--rounds must be 1..=1000 and --threads 1..=64");
    }
    if cli.scale == 0
        || cli.scale > 1_000_000
        || cli.stream_rows == 0
        || cli.stream_repeat == 0
        || cli.stream_repeat > 1_000_000
    {
        return usage(
            "--scale must be 1..=1000000, --stream-rows positive, --stream-repeat 1..=1000000",
        );
    }
    if cli.targets.len() > 64 {
        return usage("at most 64 targets");
    }
    let format = if cli.json { Format::Json } else { cli.format };
    let limits = Limits {
        max_message_bytes: cli.max_message_bytes.max(1024),
        max_rows: cli.max_rows,
    };

    let env = |k: &str| std::env::var(k).ok();
    let mut targets = Vec::new();
    for spec in &cli.targets {
        let t = url::parse_target(spec, &env)?;
        if targets
            .iter()
            .any(|c: &TargetCtx| c.spec.target.name == t.name)
        {
            return usage(&format!("target name `{}` given twice", t.name));
        }
        let tls = tls::connector(&t)?;
        targets.push(TargetCtx {
            spec: ConnectSpec {
                target: Arc::new(t),
                tls,
                limits,
            },
            pid: None,
        });
    }
    for p in &cli.proxy_pids {
        let Some((name, pid)) = p.split_once('=') else {
            return usage("--proxy-pid takes NAME=PID");
        };
        let Ok(pid) = pid.trim().parse::<u32>() else {
            return usage(&format!("--proxy-pid {p}: PID is not a number"));
        };
        let Some(t) = targets.iter_mut().find(|t| t.spec.target.name == name) else {
            return usage(&format!("--proxy-pid {p}: no target named `{name}`"));
        };
        if cpu_ticks(pid).is_none() {
            return usage(&format!("--proxy-pid {p}: cannot read /proc/{pid}/stat"));
        }
        t.pid = Some(pid);
    }

    let rt = if cli.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| SetupError::Usage(format!("cannot start the runtime: {e}")))?;

    if let Some(n) = cli.idle_sessions {
        if !(1..=100_000).contains(&n) {
            return usage("--idle-sessions must be 1..=100000");
        }
        let mut figures = Vec::new();
        for t in targets.iter() {
            let Some(pid) = t.pid else { continue };
            let r = rt.block_on(idle::measure(&t.spec, pid, n, Duration::from_secs(2)));
            if let Err(e) = &r {
                eprintln!("pgate-loadtest: idle sessions: {e}");
            }
            figures.push((t.spec.target.name.clone(), r));
        }
        print!("{}", idle::markdown(&figures));
        let failed = figures.iter().any(|(_, r)| r.is_err());
        return Ok(if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }

    let warmup = Duration::from_secs_f64(cli.warmup);
    let duration = Duration::from_secs_f64(cli.duration);
    let segments = cli.workloads.len() as u64 * u64::from(cli.rounds) * targets.len() as u64;
    let est = (warmup + duration).as_secs_f64() * segments as f64;
    let bar = if est > 3.0 && !cli.no_progress && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(segments);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} segments, ~{eta} left  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(250));
        Some(b)
    } else {
        None
    };

    let mut acc: BTreeMap<(usize, usize), Accum> = BTreeMap::new();
    for (wi, &w) in cli.workloads.iter().enumerate() {
        for round in 0..cli.rounds {
            for (ti, t) in targets.iter().enumerate() {
                if let Some(b) = &bar {
                    b.set_message(format!(
                        "{} round {}/{} {}",
                        w.name(),
                        round + 1,
                        cli.rounds,
                        t.spec.target.name
                    ));
                }
                let seg = SegmentSpec {
                    workload: w,
                    connections: connections_for(&cli, w),
                    warmup,
                    duration,
                    accounts: cli.scale * 100_000,
                    stream_rows: cli.stream_rows,
                    stream_repeat: cli.stream_repeat,
                    seed: cli.seed ^ (u64::from(round) << 32) ^ (wi as u64) << 48,
                };
                let pid = t.pid;
                let me = std::process::id();
                let cpu = move || (pid.and_then(cpu_ticks), cpu_ticks(me));
                let r = rt.block_on(run_segment(&t.spec, &seg, &cpu));
                acc.entry((wi, ti)).or_insert_with(Accum::new).add(r);
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    let mut groups: Vec<Vec<Row>> = Vec::new();
    let mut failed = false;
    for (wi, &w) in cli.workloads.iter().enumerate() {
        let mut rows = Vec::new();
        for (ti, t) in targets.iter().enumerate() {
            let empty = Accum::new();
            let a = acc.get(&(wi, ti)).unwrap_or(&empty);
            failed |= a.ops == 0;
            rows.push(report::row(
                w,
                &t.spec.target.name,
                &t.spec.target.to_string(),
                connections_for(&cli, w),
                a,
                cli.clk_tck,
            ));
        }
        report::set_ratios(&mut rows);
        groups.push(rows);
    }

    let report = Report {
        version: 1,
        config: serde_json::json!({
            "connections": cli.connections,
            "stream_connections": cli.stream_connections,
            "storm_connections": connections_for(&cli, Workload::Storm),
            "duration_s": cli.duration,
            "warmup_s": cli.warmup,
            "rounds": cli.rounds,
            "scale": cli.scale,
            "stream_rows": cli.stream_rows,
            "threads": cli.threads,
            "clk_tck": cli.clk_tck,
            "targets": targets.iter().map(|t| serde_json::json!({
                "name": t.spec.target.name,
                "url": t.spec.target.to_string(),
                "ssl": t.spec.target.ssl,
                "proxy_pid": t.pid,
            })).collect::<Vec<_>>(),
        }),
        results: groups.iter().flatten().cloned().collect(),
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| SetupError::Usage(format!("JSON: {e}")))?;
    if let Some(path) = &cli.json_out {
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| SetupError::Usage(format!("{}: {e}", path.display())))?;
    }
    match format {
        Format::Table => print!("{}", report::text(&groups)),
        Format::Markdown => print!("{}", report::markdown(&groups)),
        Format::Json => println!("{json}"),
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn connections_for(cli: &Cli, w: Workload) -> usize {
    match w {
        Workload::Stream => cli.stream_connections,
        Workload::Storm => cli.storm_connections.unwrap_or(cli.connections),
        _ => cli.connections,
    }
}

/// utime + stime of a process, in clock ticks, from /proc/PID/stat (fields 14 and 15).
/// The command name (field 2) may contain spaces and parentheses, so fields are counted
/// after its last `)`.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&s)
}

fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut f = after.split_ascii_whitespace();
    // After `)`: state is field 3, so utime (14) is the 12th and stime (15) the 13th.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        let s = "1234 (pg ate) (x)) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0 3 0";
        assert_eq!(parse_stat_ticks(s), Some(280));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert!(cpu_ticks(std::process::id()).is_some());
    }

    #[test]
    fn cli_parses() {
        Cli::try_parse_from([
            "pgate-loadtest",
            "--target",
            "a=postgres://u@h/d",
            "--workload",
            "select-simple,storm",
            "--json",
        ])
        .unwrap();
    }
}
