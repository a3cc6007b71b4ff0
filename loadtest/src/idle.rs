//! Memory per idle session: per target, opens N sessions (connect, TLS as the URL says,
//! authentication, one `SELECT 1`), holds them, and reads the proxy's resident memory
//! (`VmRSS`, /proc/PID/status) before and after. The growth divided by N is what one idle
//! authenticated session costs the proxy (its kernel socket buffers are not in it).
//!
//! What this module must never do: leave sessions open after its target (they close
//! before the next one starts), or guess a figure it could not read.

use std::time::Duration;

use crate::client::{Conn, ConnectSpec};

/// Sessions opened at once while building up.
const CONNECT_CONCURRENCY: usize = 16;

pub struct IdleFigure {
    pub name: String,
    pub sessions: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
}

impl IdleFigure {
    pub fn kib_per_session(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.sessions as f64
    }
}

/// `VmRSS` of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Opens `n` sessions to `spec`'s target, holds them `settle`, measures `pid`, closes them.
pub async fn measure(
    spec: &ConnectSpec,
    pid: u32,
    n: usize,
    settle: Duration,
) -> Result<IdleFigure, String> {
    let name = spec.target.name.clone();
    let before = rss_kib(pid).ok_or_else(|| format!("{name}: cannot read /proc/{pid}/status"))?;
    let mut held: Vec<Conn> = Vec::with_capacity(n);
    while held.len() < n {
        let k = (n - held.len()).min(CONNECT_CONCURRENCY);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..k {
            let spec = spec.clone();
            set.spawn(async move {
                let mut c = Conn::connect(&spec).await.map_err(|e| e.to_string())?;
                c.query(b"SELECT 1").await.map_err(|e| e.to_string())?;
                Ok::<Conn, String>(c)
            });
        }
        while let Some(r) = set.join_next().await {
            let c = r
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{name}: {e}"))?;
            held.push(c);
        }
    }
    tokio::time::sleep(settle).await;
    let after = rss_kib(pid).ok_or_else(|| format!("{name}: cannot read /proc/{pid}/status"))?;
    for c in held {
        c.close().await;
    }
    Ok(IdleFigure {
        name,
        sessions: n,
        rss_before_kib: before,
        rss_after_kib: after,
    })
}

/// The figures (or why a target has none) as a markdown table.
pub fn markdown(figures: &[(String, Result<IdleFigure, String>)]) -> String {
    let mut s = String::from(
        "| target | idle sessions | proxy RSS before KiB | after KiB | KiB per idle session |\n|---|---:|---:|---:|---:|\n",
    );
    for (name, f) in figures {
        match f {
            Ok(f) => s.push_str(&format!(
                "| {} | {} | {} | {} | {:.1} |\n",
                f.name,
                f.sessions,
                f.rss_before_kib,
                f.rss_after_kib,
                f.kib_per_session()
            )),
            Err(e) => s.push_str(&format!("| {name} | failed: {e} | – | – | – |\n")),
        }
    }
    s
}
