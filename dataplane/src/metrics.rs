//! Metrics: the `metrics` facade, rendered in the Prometheus text format on
//! `GET /metrics` at the configured address (a small thread of its own: scraping never
//! touches a worker). This module names the metrics; it never decides anything.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const CONNECTIONS: &str = "pgate_connections_total";
pub const ACTIVE: &str = "pgate_connections_active";
pub const STATEMENTS: &str = "pgate_statements_total";
pub const AUDIT_LINES: &str = "pgate_audit_lines_total";
pub const AUDIT_REFUSED: &str = "pgate_audit_refused_statements_total";
pub const AUDIT_WRITE_ERRORS: &str = "pgate_audit_write_errors_total";
pub const AUDIT_BLOCKED: &str = "pgate_audit_blocked_writes_total";
pub const RELOADS: &str = "pgate_policy_reloads_total";
pub const RELOAD_FAILURES: &str = "pgate_policy_reload_failures_total";
/// Upstream connection reuse: logins served by a parked connection, connections parked
/// after a reset, resets that failed (the connection closed), parked connections closed
/// unused (too old, closed by the server, or over the per-key limit).
/// Heap allocations on the worker threads since start (zero per message in steady state).
pub const WORKER_ALLOCATIONS: &str = "pgate_worker_heap_allocations_total";
/// Bytes the process holds on the heap (all threads; requested sizes).
pub const HEAP_BYTES: &str = "pgate_heap_bytes";
pub const UPSTREAM_REUSED: &str = "pgate_upstream_reused_total";
pub const UPSTREAM_PARKED: &str = "pgate_upstream_parked_total";
pub const UPSTREAM_RESET_FAILURES: &str = "pgate_upstream_reset_failures_total";
pub const UPSTREAM_DISCARDED: &str = "pgate_upstream_discarded_total";

thread_local! {
    /// The per-statement counters, looked up once per thread: a lookup through the
    /// recorder allocates the handle it returns, a held handle only adds.
    static VERDICTS: std::cell::OnceCell<(metrics::Counter, metrics::Counter)> =
        const { std::cell::OnceCell::new() };
}

/// Counts statements allowed and denied (the workers' per-round call: no allocation after
/// the thread's first).
pub fn count_verdicts(allowed: u64, denied: u64) {
    VERDICTS.with(|v| {
        let (a, d) = v.get_or_init(|| {
            (
                metrics::counter!(STATEMENTS, "verdict" => "allow"),
                metrics::counter!(STATEMENTS, "verdict" => "deny"),
            )
        });
        if allowed > 0 {
            a.increment(allowed);
        }
        if denied > 0 {
            d.increment(denied);
        }
    });
}

/// Installs the recorder and serves it on `addr`. Without a configured address the
/// recorder is still installed (counters cost the same), just not served.
pub fn install(addr: Option<SocketAddr>, audit: crate::audit::AuditSink) -> Result<(), String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    if let Some(addr) = addr {
        let listener = TcpListener::bind(addr).map_err(|e| format!("metrics {addr}: {e}"))?;
        std::thread::Builder::new()
            .name("pgate-metrics".into())
            .spawn(move || serve(listener, handle, audit))
            .map_err(|e| format!("metrics: {e}"))?;
    }
    Ok(())
}

fn serve(listener: TcpListener, handle: PrometheusHandle, audit: crate::audit::AuditSink) {
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        // Read the request line and headers (bounded), answer, close.
        let mut first = String::new();
        let mut reader = BufReader::new(&mut s).take(8192);
        if reader.read_line(&mut first).is_err() {
            continue;
        }
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let (status, body) = if first.starts_with("GET /metrics") {
            let a = audit.stats();
            metrics::counter!(AUDIT_LINES).absolute(a.lines);
            metrics::counter!(AUDIT_REFUSED).absolute(a.refused);
            metrics::counter!(AUDIT_WRITE_ERRORS).absolute(a.write_errors);
            metrics::counter!(AUDIT_BLOCKED).absolute(a.blocked);
            metrics::counter!(WORKER_ALLOCATIONS)
                .absolute(crate::alloc_count::worker_allocations());
            metrics::gauge!(HEAP_BYTES).set(crate::alloc_count::heap_bytes() as f64);
            ("200 OK", handle.render())
        } else {
            ("404 Not Found", "try /metrics\n".to_owned())
        };
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
