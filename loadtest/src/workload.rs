//! Workloads and the runner of one measured segment (one workload against one target for
//! one round).
//!
//! Each connection is a task that loops until the segment ends; a query is measured when
//! it starts inside the measured window (after warm-up). Each task owns its histogram, so
//! nothing is shared or locked on the hot path; they are merged when the segment ends.
//! This module measures; it never prints and never decides what is good or bad.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{ClientError, Conn, ConnectSpec, Outcome};

/// The statement of the point selects (pgbench -S's, with a random aid).
pub const POINT_SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
const PREPARED_NAME: &str = "pgate_loadtest_point";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Point select, simple protocol (Query with the aid inlined).
    SelectSimple,
    /// Point select, extended protocol, unnamed statement: Parse/Bind/Describe/Execute/Sync.
    SelectExtended,
    /// Point select, extended protocol, statement prepared once per connection:
    /// Bind/Describe/Execute/Sync.
    SelectPrepared,
    /// pgbench-like read-only transaction: BEGIN; point select; COMMIT — three round trips
    /// over the simple protocol, latency of the whole transaction.
    TxReadonly,
    /// Large result: `SELECT * FROM pgbench_accounts LIMIT n` (simple protocol); MB/s.
    Stream,
    /// Connection storm: connect + TLS + auth + `SELECT 1` + close; connections per second.
    Storm,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::SelectSimple => "select-simple",
            Workload::SelectExtended => "select-extended",
            Workload::SelectPrepared => "select-prepared",
            Workload::TxReadonly => "tx-readonly",
            Workload::Stream => "stream",
            Workload::Storm => "storm",
        }
    }
    /// Statements sent per measured operation (for CPU per 10,000 queries).
    pub fn statements_per_op(self) -> u64 {
        match self {
            Workload::TxReadonly => 3,
            _ => 1,
        }
    }
    /// What one measured operation is called in reports.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::TxReadonly => "tx",
            Workload::Storm => "conn",
            _ => "query",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SegmentSpec {
    pub workload: Workload,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Number of pgbench_accounts rows (100,000 × scale).
    pub accounts: u64,
    pub stream_rows: u64,
    pub stream_repeat: u64,
    pub seed: u64,
}

/// What a segment measured.
pub struct SegmentResult {
    pub hist: Histogram<u64>,
    /// Operations that completed without error and started in the measured window.
    pub ops: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub bytes: u64,
    pub rows: u64,
    /// Length of the measured window.
    pub window: Duration,
    pub proxy_cpu_ticks: Option<u64>,
    /// CPU ticks of this client process in the window (its overhead, to compare targets).
    pub client_cpu_ticks: Option<u64>,
}

pub fn new_histogram() -> Histogram<u64> {
    // Nanoseconds, 1 ns .. 10 min, 3 significant digits. `new_with_bounds` only fails on
    // invalid bounds, which these constants are not; fall back to an auto-resizing one.
    Histogram::new_with_bounds(1, 600_000_000_000, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable_histogram())
}

#[allow(clippy::panic)]
fn unreachable_histogram() -> Histogram<u64> {
    // Histogram::new(3) cannot fail (3 is a valid precision).
    panic!("hdrhistogram refused 3 significant digits")
}

/// Per-task accumulator.
struct Tally {
    hist: Histogram<u64>,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    bytes: u64,
    rows: u64,
}

impl Tally {
    fn new() -> Self {
        Tally {
            hist: new_histogram(),
            ops: 0,
            errors: 0,
            first_error: None,
            bytes: 0,
            rows: 0,
        }
    }
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
    fn record(&mut self, t0: Instant, measured: bool, o: &Outcome) {
        if !measured {
            return;
        }
        if let Some(e) = &o.error {
            self.error(e.clone());
            return;
        }
        let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.max(1));
        self.ops += 1;
        self.bytes += o.bytes;
        self.rows += o.rows;
    }
}

/// A small, fast PRNG (splitmix64): the aids need to be spread, not unpredictable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn aid(&mut self, accounts: u64) -> u64 {
        1 + self.next() % accounts.max(1)
    }
}

/// CPU ticks (user + system) of the proxy and of this client, read at the window's start
/// and end.
pub type CpuProbe<'a> = &'a (dyn Fn() -> (Option<u64>, Option<u64>) + Sync);

/// Runs one segment.
pub async fn run_segment(
    spec: &ConnectSpec,
    seg: &SegmentSpec,
    cpu: CpuProbe<'_>,
) -> SegmentResult {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    // Connections are set up before the clock starts (except in the storm, where setting
    // them up is the measured operation).
    let setup_deadline = start + Duration::from_secs(30);
    let mut setup = tokio::task::JoinSet::new();
    for i in 0..seg.connections {
        let spec = spec.clone();
        let w = seg.workload;
        setup.spawn(async move {
            if w == Workload::Storm {
                return (i, Ok(None));
            }
            let r = tokio::time::timeout_at(setup_deadline.into(), async {
                let mut c = Conn::connect(&spec).await?;
                if w == Workload::SelectPrepared {
                    let o = c.prepare(PREPARED_NAME, POINT_SELECT).await?;
                    if let Some(e) = o.error {
                        return Err(ClientError::Server(e));
                    }
                }
                Ok::<_, ClientError>(Some(c))
            })
            .await;
            match r {
                Ok(r) => (i, r.map_err(|e| e.to_string())),
                Err(_) => (i, Err("connection setup timed out".to_string())),
            }
        });
    }
    let mut conns = Vec::with_capacity(seg.connections);
    let mut setup_errors = Vec::new();
    while let Some(r) = setup.join_next().await {
        match r {
            Ok((i, Ok(c))) => conns.push((i, c)),
            Ok((_, Err(e))) => setup_errors.push(e),
            Err(e) => setup_errors.push(e.to_string()),
        }
    }

    let t_start = Instant::now();
    let t_measure = t_start + seg.warmup;
    let t_end = t_measure + seg.duration;
    for (i, conn) in conns {
        let spec = spec.clone();
        let seg = seg.clone();
        set.spawn(async move {
            let mut tally = Tally::new();
            let rng = Rng(seg
                .seed
                .wrapping_mul(0x2545_F491_4F6C_DD1D)
                .wrapping_add(i as u64));
            let r = drive(&spec, &seg, conn, rng, t_measure, t_end, &mut tally).await;
            if let Err(e) = r {
                tally.error(e.to_string());
            }
            tally
        });
    }

    tokio::time::sleep_until(t_measure.into()).await;
    let cpu0 = cpu();
    tokio::time::sleep_until(t_end.into()).await;
    let cpu1 = cpu();
    let window = t_end.saturating_duration_since(t_measure);

    let mut out = SegmentResult {
        hist: new_histogram(),
        ops: 0,
        errors: setup_errors.len() as u64,
        first_error: setup_errors.into_iter().next(),
        bytes: 0,
        rows: 0,
        window,
        proxy_cpu_ticks: delta(cpu0.0, cpu1.0),
        client_cpu_ticks: delta(cpu0.1, cpu1.1),
    };
    while let Some(r) = set.join_next().await {
        let t = match r {
            Ok(t) => t,
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e.to_string());
                continue;
            }
        };
        // Merging histograms of equal bounds cannot fail; count it as an error if it does.
        if out.hist.add(&t.hist).is_err() {
            out.errors += 1;
        }
        out.ops += t.ops;
        out.errors += t.errors;
        out.bytes += t.bytes;
        out.rows += t.rows;
        if out.first_error.is_none() {
            out.first_error = t.first_error;
        }
    }
    out
}

async fn drive(
    spec: &ConnectSpec,
    seg: &SegmentSpec,
    mut conn: Option<Conn>,
    mut rng: Rng,
    t_measure: Instant,
    t_end: Instant,
    tally: &mut Tally,
) -> Result<(), ClientError> {
    let mut sql = String::with_capacity(128);
    let mut param = String::with_capacity(16);
    let stream_sql = if seg.stream_repeat > 1 {
        format!(
            "SELECT a.* FROM pgbench_accounts a CROSS JOIN generate_series(1, {}) g LIMIT {}",
            seg.stream_repeat, seg.stream_rows
        )
    } else {
        format!("SELECT * FROM pgbench_accounts LIMIT {}", seg.stream_rows)
    };
    loop {
        let t0 = Instant::now();
        if t0 >= t_end {
            break;
        }
        let measured = t0 >= t_measure;
        let aid = rng.aid(seg.accounts);
        let o = match seg.workload {
            Workload::SelectSimple => {
                sql.clear();
                use std::fmt::Write;
                let _ = write!(
                    sql,
                    "SELECT abalance FROM pgbench_accounts WHERE aid = {aid}"
                );
                live(&mut conn)?.query(sql.as_bytes()).await?
            }
            Workload::SelectExtended | Workload::SelectPrepared => {
                param.clear();
                use std::fmt::Write;
                let _ = write!(param, "{aid}");
                let name = if seg.workload == Workload::SelectPrepared {
                    PREPARED_NAME
                } else {
                    ""
                };
                live(&mut conn)?
                    .execute(name, POINT_SELECT, param.as_bytes())
                    .await?
            }
            Workload::TxReadonly => {
                sql.clear();
                use std::fmt::Write;
                let _ = write!(
                    sql,
                    "SELECT abalance FROM pgbench_accounts WHERE aid = {aid}"
                );
                let c = live(&mut conn)?;
                let mut o = c.query(b"BEGIN").await?;
                if o.error.is_none() {
                    let s = c.query(sql.as_bytes()).await?;
                    o = merge(o, s);
                }
                // COMMIT also ends a failed transaction (as ROLLBACK).
                let e = c.query(b"COMMIT").await?;
                merge(o, e)
            }
            Workload::Stream => live(&mut conn)?.query(stream_sql.as_bytes()).await?,
            Workload::Storm => {
                // A failed connection is an error of this operation, not the end of the
                // task: the storm goes on.
                let r = async {
                    let mut c = Conn::connect(spec).await?;
                    let o = c.query(b"SELECT 1").await?;
                    c.close().await;
                    Ok::<_, ClientError>(o)
                }
                .await;
                match r {
                    Ok(o) => o,
                    Err(e) => {
                        if measured {
                            tally.error(e.to_string());
                        }
                        // A target that refuses at once must not turn this into a busy loop.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
        };
        tally.record(t0, measured, &o);
    }
    if let Some(c) = conn {
        c.close().await;
    }
    Ok(())
}

fn delta(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(b?.saturating_sub(a?))
}

fn live(c: &mut Option<Conn>) -> Result<&mut Conn, ClientError> {
    c.as_mut().ok_or(ClientError::Eof)
}

fn merge(a: Outcome, b: Outcome) -> Outcome {
    Outcome {
        rows: a.rows + b.rows,
        bytes: a.bytes + b.bytes,
        error: a.error.or(b.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aids_stay_in_range_and_spread() {
        let mut r = Rng(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let a = r.aid(100);
            assert!((1..=100).contains(&a));
            seen.insert(a);
        }
        assert_eq!(seen.len(), 100);
    }
}
