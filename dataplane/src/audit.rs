//! The audit sink: JSON lines from every worker, written by one thread, never silently
//! dropped.
//!
//! Workers append finished lines to a shared, bounded byte buffer (double-buffered: the
//! writer thread swaps it out, so appending allocates nothing once warmed up and writing
//! the file never happens on a worker). When the file cannot be written, or the buffer is
//! full because the disk is slower than the traffic, the configured behaviour applies:
//! `block` makes workers wait for room, `refuse` makes sessions refuse new statements
//! ([`AuditSink::accepting`]) until the sink recovers. Both are counted and logged.
//! What this module must never do: drop a line it accepted, or write on a worker thread.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::config::AuditFailure;

#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
}

struct Inner {
    buf: Mutex<Buffer>,
    /// Signalled when data arrives (to the writer) and when room frees up (to workers).
    cond: Condvar,
    max_bytes: usize,
    mode: AuditFailure,
    failing: AtomicBool,
    /// Workers waiting for room (block mode): the writer wakes them only if any.
    waiting: AtomicU64,
    lines: AtomicU64,
    blocked: AtomicU64,
    refused: AtomicU64,
    write_errors: AtomicU64,
    /// Shutdown asks for everything written and on disk: requests made, requests done.
    sync_requests: AtomicU64,
    syncs_done: AtomicU64,
}

/// A handle to the sink; clones share it.
#[derive(Clone)]
pub struct AuditSink {
    inner: Arc<Inner>,
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditStats {
    pub lines: u64,
    pub blocked: u64,
    pub refused: u64,
    pub write_errors: u64,
}

impl AuditSink {
    /// Opens (appends to) `path` (`-`: standard output) and starts the writer thread.
    pub fn start(path: &Path, mode: AuditFailure, max_bytes: usize) -> io::Result<AuditSink> {
        let out = if path == Path::new("-") {
            Out::Stdout(io::stdout())
        } else {
            Out::File(open(path)?)
        };
        let inner = Arc::new(Inner {
            buf: Mutex::new(Buffer {
                data: Vec::with_capacity(max_bytes.min(1 << 20)),
            }),
            cond: Condvar::new(),
            max_bytes,
            mode,
            failing: AtomicBool::new(false),
            waiting: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            sync_requests: AtomicU64::new(0),
            syncs_done: AtomicU64::new(0),
        });
        let sink = AuditSink {
            inner: inner.clone(),
        };
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("pgate-audit".into())
            .spawn(move || writer(inner, out, path))?;
        Ok(sink)
    }

    /// Whether new statements may run: false in `refuse` mode while the sink is failing or
    /// full. (In `block` mode always true: `write` waits instead.)
    pub fn accepting(&self) -> bool {
        match self.inner.mode {
            AuditFailure::Block => true,
            AuditFailure::Refuse => {
                if self.inner.failing.load(Ordering::Relaxed) {
                    return false;
                }
                self.inner
                    .buf
                    .lock()
                    .map(|b| b.data.len() < self.inner.max_bytes)
                    .unwrap_or(false)
            }
        }
    }

    /// Counts a statement refused because the sink was not accepting.
    pub fn note_refused(&self) {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends complete lines. In `block` mode waits while the buffer is full; in `refuse`
    /// mode lines are still accepted (they describe statements already running or refused),
    /// the buffer may exceed its bound by them, and `accepting` turns false.
    pub fn write(&self, lines: &str) {
        let Ok(mut b) = self.inner.buf.lock() else {
            return;
        };
        if self.inner.mode == AuditFailure::Block {
            let mut waited = false;
            while b.data.len() + lines.len() > self.inner.max_bytes && !b.data.is_empty() {
                if !waited {
                    self.inner.blocked.fetch_add(1, Ordering::Relaxed);
                    waited = true;
                }
                self.inner.waiting.fetch_add(1, Ordering::Relaxed);
                let r = self.inner.cond.wait_timeout(b, Duration::from_millis(100));
                self.inner.waiting.fetch_sub(1, Ordering::Relaxed);
                b = match r {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
        }
        // Wake the writer only when the buffer goes from empty to non-empty: while it is
        // busy it re-checks the buffer itself, so a busy proxy costs it one wake-up per
        // batch instead of one per statement.
        let was_empty = b.data.is_empty();
        b.data.extend_from_slice(lines.as_bytes());
        let n = lines.bytes().filter(|c| *c == b'\n').count() as u64;
        self.inner.lines.fetch_add(n, Ordering::Relaxed);
        drop(b);
        if was_empty {
            self.inner.cond.notify_all();
        }
    }

    pub fn stats(&self) -> AuditStats {
        AuditStats {
            lines: self.inner.lines.load(Ordering::Relaxed),
            blocked: self.inner.blocked.load(Ordering::Relaxed),
            refused: self.inner.refused.load(Ordering::Relaxed),
            write_errors: self.inner.write_errors.load(Ordering::Relaxed),
        }
    }

    /// Waits until everything accepted so far is written (tests, shutdown).
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let empty = self
                .inner
                .buf
                .lock()
                .map(|b| b.data.is_empty())
                .unwrap_or(true);
            if empty && !self.inner.failing.load(Ordering::Relaxed) {
                // One more round so the writer has finished the swapped-out batch.
                std::thread::sleep(Duration::from_millis(20));
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl AuditSink {
    /// Waits until every line accepted so far is written and synced to disk (`fsync`), for
    /// shutdown. False if that did not happen within `timeout` (the file is failing).
    pub fn flush_and_sync(&self, timeout: Duration) -> bool {
        let want = self.inner.sync_requests.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.cond.notify_all();
        let deadline = std::time::Instant::now() + timeout;
        while self.inner.syncs_done.load(Ordering::SeqCst) < want {
            if std::time::Instant::now() > deadline {
                return false;
            }
            self.inner.cond.notify_all();
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// Where lines go.
enum Out {
    Stdout(io::Stdout),
    File(File),
}

impl Out {
    fn write_batch(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Out::Stdout(o) => o.write_all(b).and_then(|()| o.flush()),
            Out::File(f) => f.write_all(b).and_then(|()| f.flush()),
        }
    }
    fn sync(&mut self) -> io::Result<()> {
        match self {
            Out::Stdout(o) => o.flush(),
            Out::File(f) => f.sync_data(),
        }
    }
}

fn sync_pending(inner: &Inner) -> bool {
    inner.sync_requests.load(Ordering::SeqCst) > inner.syncs_done.load(Ordering::SeqCst)
}

/// How long the writer lets lines accumulate after the first one arrives.
const BATCH_GATHER: Duration = Duration::from_millis(5);

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn writer(inner: Arc<Inner>, mut out: Out, path: PathBuf) {
    let mut batch: Vec<u8> = Vec::with_capacity(inner.max_bytes.min(1 << 20));
    loop {
        if batch.is_empty() {
            let Ok(mut b) = inner.buf.lock() else { return };
            while b.data.is_empty() {
                if sync_pending(&inner) {
                    // Everything accepted before the request is written: make it durable.
                    let req = inner.sync_requests.load(Ordering::SeqCst);
                    drop(b);
                    if out.sync().is_err() {
                        inner.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    inner.syncs_done.store(req, Ordering::SeqCst);
                    b = match inner.buf.lock() {
                        Ok(g) => g,
                        Err(_) => return,
                    };
                    continue;
                }
                b = match inner.cond.wait_timeout(b, Duration::from_millis(200)) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
            // Let a batch gather (group commit): a write per statement would cost a
            // context switch per statement on the workers' cores.
            drop(b);
            std::thread::sleep(BATCH_GATHER);
            let Ok(mut b) = inner.buf.lock() else { return };
            std::mem::swap(&mut b.data, &mut batch);
            drop(b);
            if inner.waiting.load(Ordering::Relaxed) > 0 {
                inner.cond.notify_all();
            }
        }
        let written = out.write_batch(&batch);
        match written {
            Ok(()) => {
                if inner.failing.swap(false, Ordering::Relaxed) {
                    eprintln!("pgate: audit log {} is writable again", path.display());
                }
                batch.clear();
            }
            Err(e) => {
                // Keep the batch and retry: nothing accepted is ever dropped.
                inner.write_errors.fetch_add(1, Ordering::Relaxed);
                if !inner.failing.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "pgate: cannot write audit log {}: {e}; retrying",
                        path.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
                if path != Path::new("-")
                    && let Ok(f) = open(&path)
                {
                    out = Out::File(f);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_in_order() {
        let dir = std::env::temp_dir().join(format!("pgate-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let _ = std::fs::remove_file(&path);
        let sink = AuditSink::start(&path, AuditFailure::Block, 256).unwrap();
        for i in 0..100 {
            sink.write(&format!("{{\"n\":{i}}}\n"));
        }
        assert!(sink.flush(Duration::from_secs(10)));
        let text = std::fs::read_to_string(&path).unwrap();
        let ns: Vec<usize> = text
            .lines()
            .map(|l| l[5..l.len() - 1].parse().unwrap())
            .collect();
        assert_eq!(ns, (0..100).collect::<Vec<_>>());
        assert_eq!(sink.stats().lines, 100);
        assert!(sink.accepting());
        sink.write("{\"n\":100}\n");
        assert!(sink.flush_and_sync(Duration::from_secs(10)));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 101);
    }

    #[test]
    fn refuse_mode_stops_accepting_when_the_file_cannot_be_written() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let sink = AuditSink::start(Path::new("/dev/full"), AuditFailure::Refuse, 1 << 16).unwrap();
        assert!(sink.accepting());
        sink.write("{\"x\":1}\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.accepting() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!sink.accepting());
        assert!(sink.stats().write_errors >= 1);
    }
}
