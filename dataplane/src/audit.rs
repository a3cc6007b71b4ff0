//! The audit sink: JSON lines from every worker, written by one thread, never silently
//! dropped.
//!
//! Each worker appends finished lines to a bounded byte buffer of its own (a slot: its lock
//! is the worker's alone but for the moment the writer takes the lines out, so workers
//! never contend with each other; the writer copies the lines out and clears the slot, so
//! appending allocates nothing once warmed up, and writing the file never happens on a
//! worker). One connection's lines go through one slot, in order; the writer takes the
//! slots in turn. When the file cannot be written, or a slot is full because the disk is
//! slower than the traffic, the configured behaviour applies:
//! `block` makes workers wait for room, `refuse` makes sessions refuse new statements
//! ([`AuditSink::accepting`]) until the sink recovers. Both are counted and logged.
//!
//! The writer seals every line into the file's hash chain ([`crate::audit_chain`]) in the
//! order it writes them, and opens every file — a new one, one it appends to after a
//! restart, one that appeared after a rotation (the path was renamed away) — with an
//! `audit-start` line that continues the chain.
//!
//! What this module must never do: drop a line it accepted, or write on a worker thread.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::audit_chain::{Chain, ChainValue, last_chain_value};
use crate::config::AuditFailure;

/// What the first line of every file names.
#[derive(Clone, Debug)]
pub struct ChainStart {
    pub instance: u64,
    /// The digest of the table in force at start (hex).
    pub table: String,
}

#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
}

/// One writer's buffer, and the condition its writer waits on for room (block mode).
struct Slot {
    buf: Mutex<Buffer>,
    room: Condvar,
}

struct Inner {
    slots: Vec<Slot>,
    /// Set (and signalled) when a slot goes from empty to non-empty, and for a sync
    /// request: the writer's wake-up.
    wake: Mutex<bool>,
    cond: Condvar,
    /// Bytes per slot.
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
    /// The newest chain value written.
    head: Mutex<ChainValue>,
}

/// A handle to the sink; clones share it (and its slot, see [`AuditSink::for_slot`]).
#[derive(Clone)]
pub struct AuditSink {
    inner: Arc<Inner>,
    slot: usize,
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
    /// Opens (appends to) `path` (`-`: standard output) and starts the writer thread, with
    /// one slot.
    pub fn start(
        path: &Path,
        mode: AuditFailure,
        max_bytes: usize,
        start: ChainStart,
    ) -> io::Result<AuditSink> {
        Self::start_with_slots(path, mode, max_bytes, start, 1)
    }

    /// [`AuditSink::start`] with `slots` buffers of `max_bytes` each: one per worker, and
    /// one for everything else.
    pub fn start_with_slots(
        path: &Path,
        mode: AuditFailure,
        max_bytes: usize,
        start: ChainStart,
        slots: usize,
    ) -> io::Result<AuditSink> {
        let (out, prev) = if path == Path::new("-") {
            (Out::Stdout(io::stdout()), ChainValue::GENESIS)
        } else {
            // Locked first: the chain's tail is read from a file no one else appends to.
            let f = open(path)?;
            (Out::File(f), tail_chain_value(path)?)
        };
        let inner = Arc::new(Inner {
            // Each slot reserves its whole bound at once (untouched pages cost no memory):
            // appending within the bound never reallocates, however far the writer falls
            // behind.
            slots: (0..slots.max(1))
                .map(|_| Slot {
                    buf: Mutex::new(Buffer {
                        data: Vec::with_capacity(max_bytes.min(64 << 20)),
                    }),
                    room: Condvar::new(),
                })
                .collect(),
            wake: Mutex::new(false),
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
            head: Mutex::new(prev),
        });
        let sink = AuditSink {
            inner: inner.clone(),
            slot: 0,
        };
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("pgate-audit".into())
            .spawn(move || writer(inner, out, path, Chain::new(prev), start))?;
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
                self.slot()
                    .buf
                    .lock()
                    .map(|b| b.data.len() < self.inner.max_bytes)
                    .unwrap_or(false)
            }
        }
    }

    /// The same sink writing through slot `i` (modulo the slots there are): worker `i`'s.
    pub fn for_slot(&self, i: usize) -> AuditSink {
        AuditSink {
            inner: self.inner.clone(),
            slot: i % self.inner.slots.len(),
        }
    }

    fn slot(&self) -> &Slot {
        &self.inner.slots[self.slot]
    }

    /// Counts a statement refused because the sink was not accepting.
    pub fn note_refused(&self) {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends complete lines. In `block` mode waits while the buffer is full; in `refuse`
    /// mode lines are still accepted (they describe statements already running or refused),
    /// the buffer may exceed its bound by them, and `accepting` turns false.
    pub fn write(&self, lines: &str) {
        let slot = self.slot();
        let Ok(mut b) = slot.buf.lock() else {
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
                let r = slot.room.wait_timeout(b, Duration::from_millis(100));
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
        let n = memchr::memchr_iter(b'\n', lines.as_bytes()).count() as u64;
        self.inner.lines.fetch_add(n, Ordering::Relaxed);
        drop(b);
        if was_empty {
            self.wake_writer();
        }
    }

    fn wake_writer(&self) {
        if let Ok(mut w) = self.inner.wake.lock() {
            *w = true;
        }
        self.inner.cond.notify_one();
    }

    /// The newest chain value written: ship it elsewhere to make the end of the log
    /// tamper-evident too.
    pub fn chain_head(&self) -> String {
        self.inner.head.lock().map(|h| h.hex()).unwrap_or_default()
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
                .slots
                .iter()
                .all(|s| s.buf.lock().map(|b| b.data.is_empty()).unwrap_or(true));
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
        self.wake_writer();
        let deadline = std::time::Instant::now() + timeout;
        while self.inner.syncs_done.load(Ordering::SeqCst) < want {
            if std::time::Instant::now() > deadline {
                return false;
            }
            self.wake_writer();
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
    /// Writes from the front of `b`, removing what was written: after a failure part-way
    /// (a full disk), only the unwritten rest is retried — never a line twice.
    fn write_front(&mut self, b: &mut Vec<u8>) -> io::Result<()> {
        while !b.is_empty() {
            let n = match self {
                Out::Stdout(o) => o.write(b),
                Out::File(f) => f.write(b),
            };
            match n {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    b.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        match self {
            Out::Stdout(o) => o.flush(),
            Out::File(f) => f.flush(),
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

/// Opens the audit log for appending and takes an exclusive lock on it: two writers would
/// interleave their chains, and the file would no longer verify.
fn open(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    lock(&f, path)?;
    Ok(f)
}

/// Locks a regular file (a device such as `/dev/null` is shared by design: not locked).
fn lock(f: &File, path: &Path) -> io::Result<()> {
    if !f.metadata()?.is_file() {
        return Ok(());
    }
    match f.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::other(format!(
            "audit log {} is locked by another process (another pgate writing it?); give each instance its own audit path",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The chain value an existing file ends with (genesis for a new or empty file).
fn tail_chain_value(path: &Path) -> io::Result<ChainValue> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ChainValue::GENESIS),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(ChainValue::GENESIS);
    }
    // A line is at most a few KiB (statement text is cut at 4 KiB).
    f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    last_chain_value(&String::from_utf8_lossy(&tail)).ok_or_else(|| {
        io::Error::other(
            "its last line carries no chain value (not written by this pgate, or cut off); move the file away to start a new chain",
        )
    })
}

/// Whether `path` no longer names the open file (renamed away by a rotation, or removed).
fn rotated(path: &Path, out: &Out) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Out::File(f) = out else { return false };
    match (std::fs::metadata(path), f.metadata()) {
        (Ok(p), Ok(o)) => p.ino() != o.ino() || p.dev() != o.dev(),
        (Err(_), _) => true,
        _ => false,
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn writer(inner: Arc<Inner>, mut out: Out, path: PathBuf, mut chain: Chain, start: ChainStart) {
    let mut batch: Vec<u8> = Vec::with_capacity(inner.max_bytes.min(1 << 20));
    // Sealed lines not yet written: kept across failed writes, never sealed twice.
    let mut sealed: Vec<u8> = Vec::with_capacity(inner.max_bytes.min(1 << 20));
    chain.start_line(unix_ms(), start.instance, &start.table, &mut sealed);
    let mut reopen_failing = false;
    loop {
        if batch.is_empty() && sealed.is_empty() {
            let Ok(mut woken) = inner.wake.lock() else {
                return;
            };
            while !*woken {
                if sync_pending(&inner) {
                    // Everything accepted before the request is written (a line is
                    // accepted once its slot's wake-up is set): make it durable.
                    let req = inner.sync_requests.load(Ordering::SeqCst);
                    drop(woken);
                    if out.sync().is_err() {
                        inner.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    inner.syncs_done.store(req, Ordering::SeqCst);
                    woken = match inner.wake.lock() {
                        Ok(g) => g,
                        Err(_) => return,
                    };
                    continue;
                }
                if Arc::strong_count(&inner) == 1 {
                    // Every sink is gone and everything is written: close the file, which
                    // releases its lock.
                    return;
                }
                woken = match inner.cond.wait_timeout(woken, Duration::from_millis(200)) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
                if !*woken && !reopen_failing && rotated(&path, &out) {
                    // Rotated while idle: open (and lock) the new file now, with its
                    // audit-start line, rather than at the next statement.
                    break;
                }
            }
            *woken = false;
            drop(woken);
            // Let a batch gather (group commit): a write per statement would cost a
            // context switch per statement on the workers' cores.
            std::thread::sleep(BATCH_GATHER);
            for slot in &inner.slots {
                let Ok(mut b) = slot.buf.lock() else { return };
                batch.extend_from_slice(&b.data);
                b.data.clear();
                drop(b);
            }
            if inner.waiting.load(Ordering::Relaxed) > 0 {
                for slot in &inner.slots {
                    slot.room.notify_all();
                }
            }
        }
        if sealed.is_empty() && rotated(&path, &out) {
            match open(&path) {
                Ok(f) => {
                    out = Out::File(f);
                    reopen_failing = false;
                    chain.start_line(unix_ms(), start.instance, &start.table, &mut sealed);
                }
                // Said once; lines go on to the old file meanwhile (nothing is dropped).
                Err(e) if !reopen_failing => {
                    reopen_failing = true;
                    eprintln!("pgate: cannot reopen audit log {}: {e}", path.display());
                }
                Err(_) => {}
            }
        }
        for line in batch.split_inclusive(|b| *b == b'\n') {
            chain.seal(line, &mut sealed);
        }
        batch.clear();
        let written = out.write_front(&mut sealed);
        match written {
            Ok(()) => {
                if inner.failing.swap(false, Ordering::Relaxed) {
                    eprintln!("pgate: audit log {} is writable again", path.display());
                }
                if let Ok(mut h) = inner.head.lock() {
                    *h = chain.head();
                }
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
                // The same handle again: the lines are sealed to follow the ones before
                // them in this file. A rotation meanwhile is taken once they are written
                // (the new file opens with its audit-start line, continuing the chain).
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> ChainStart {
        ChainStart {
            instance: 1,
            table: "00".into(),
        }
    }

    /// A fresh `audit.jsonl` path in a directory of this test's own.
    fn fresh_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pgate-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let _ = std::fs::remove_file(&path);
        path
    }

    /// Several writers, each through its own slot, concurrently: every line reaches the
    /// file once, each writer's in its order.
    #[test]
    fn slots_keep_each_writers_order_and_lose_nothing() {
        let path = fresh_path("audit-slots");
        let sink =
            AuditSink::start_with_slots(&path, AuditFailure::Block, 512, start(), 3).unwrap();
        let threads: Vec<_> = (0..3)
            .map(|w| {
                let s = sink.for_slot(w);
                std::thread::spawn(move || {
                    for i in 0..500 {
                        s.write(&format!("{{\"w\":{w},\"n\":{i}}}\n"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(sink.flush(Duration::from_secs(10)));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut next = [0u64; 3];
        for line in text.lines().skip(1) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let w = v["w"].as_u64().unwrap() as usize;
            assert_eq!(v["n"].as_u64().unwrap(), next[w], "writer {w} out of order");
            next[w] += 1;
        }
        assert_eq!(next, [500; 3]);
        assert_eq!(sink.stats().lines, 1500);
    }

    #[test]
    fn lines_reach_the_file_in_order() {
        let dir = std::env::temp_dir().join(format!("pgate-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let _ = std::fs::remove_file(&path);
        let sink = AuditSink::start(&path, AuditFailure::Block, 256, start()).unwrap();
        for i in 0..100 {
            sink.write(&format!("{{\"n\":{i}}}\n"));
        }
        assert!(sink.flush(Duration::from_secs(10)));
        let text = std::fs::read_to_string(&path).unwrap();
        let ns: Vec<usize> = text
            .lines()
            .skip(1)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                    .as_u64()
                    .unwrap() as usize
            })
            .collect();
        assert_eq!(ns, (0..100).collect::<Vec<_>>());
        assert!(text.starts_with("{\"ts_ms\":"));
        assert!(text.lines().next().unwrap().contains("audit-start"));
        assert_eq!(sink.stats().lines, 100);
        assert!(sink.accepting());
        sink.write("{\"n\":100}\n");
        assert!(sink.flush_and_sync(Duration::from_secs(10)));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 102);
        let v = crate::audit_chain::verify_files(std::slice::from_ref(&path)).unwrap();
        assert_eq!(v.lines, 102);
        assert_eq!(v.head.hex(), sink.chain_head());
        // A second writer of the same file is refused while this one holds it.
        let err = AuditSink::start(&path, AuditFailure::Block, 256, start())
            .err()
            .expect("a second writer is refused");
        assert!(
            err.to_string().contains("locked by another process"),
            "{err}"
        );
        drop(sink);

        // A restart appends and continues the chain; a rotation (rename) starts a new
        // file that continues it too.
        // (The old writer closes the file, releasing its lock, once it sees no sink left.)
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let again = loop {
            match AuditSink::start(&path, AuditFailure::Block, 256, start()) {
                Ok(s) => break s,
                Err(e) if std::time::Instant::now() < deadline => {
                    assert!(e.to_string().contains("locked"), "{e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("the lock was not released: {e}"),
            }
        };
        again.write("{\"n\":101}\n");
        assert!(again.flush(Duration::from_secs(10)));
        let rotated = dir.join("audit.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        again.write("{\"n\":102}\n");
        assert!(again.flush(Duration::from_secs(10)));
        let v = crate::audit_chain::verify_files(&[rotated.clone(), path.clone()]).unwrap();
        assert_eq!(v.lines, 102 + 2 + 2);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("{\"ts_ms\":")
        );
        // Out of order: found.
        assert!(crate::audit_chain::verify_files(&[path.clone(), rotated]).is_err());
    }

    #[test]
    fn a_rotation_while_idle_opens_and_locks_the_new_file_at_once() {
        let dir = std::env::temp_dir().join(format!("pgate-audit-idle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let _ = std::fs::remove_file(&path);
        let sink = AuditSink::start(&path, AuditFailure::Block, 256, start()).unwrap();
        sink.write("{\"n\":1}\n");
        assert!(sink.flush(Duration::from_secs(10)));
        let old = dir.join("audit.jsonl.1");
        std::fs::rename(&path, &old).unwrap();
        // No statement comes: the new file appears anyway, continuing the chain, and is
        // locked against a second writer.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&path).is_ok_and(|t| t.contains("audit-start")) {
            assert!(std::time::Instant::now() < deadline, "no new file");
            std::thread::sleep(Duration::from_millis(20));
        }
        let v = crate::audit_chain::verify_files(&[old, path.clone()]).unwrap();
        assert_eq!(v.lines, 3);
        assert!(AuditSink::start(&path, AuditFailure::Block, 256, start()).is_err());
        drop(sink);
    }

    #[test]
    fn refuse_mode_stops_accepting_when_the_file_cannot_be_written() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let sink = AuditSink::start(
            Path::new("/dev/full"),
            AuditFailure::Refuse,
            1 << 16,
            start(),
        )
        .unwrap();
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
