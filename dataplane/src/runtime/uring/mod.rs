//! The io_uring driver: one ring per worker thread, the worker's own `SO_REUSEPORT`
//! listener, a connection never moves. A multishot accept brings connections; each socket
//! has one multishot receive into the worker's provided-buffer ring ([`bufring`]) and at
//! most one send in flight ([`peer`]); every submission of a round goes to the kernel in
//! the one `io_uring_enter` that also waits for the next completions, with the nearest
//! deadline as its timeout. No thread ticks: the worker sleeps in the kernel until a
//! socket, a deadline, its eventfd (a table swap, the drain, an answer from [`side`]) wakes
//! it.
//!
//! Everything about the protocol is the session's; this module and [`conn`] only move
//! bytes and carry out actions, as the epoll driver does.
//!
//! What this module must never do: block, allocate per message, or free memory an
//! operation in flight may still use.

// The ring is the design: submissions name memory the kernel uses later. Each unsafe
// block says why that memory outlives its use.
#![allow(unsafe_code)]

mod bufring;
mod conn;
mod peer;
mod side;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, squeue, types};

use super::bufs::Bufs;
use super::pool::{Parkable, Pool};
use super::{Control, Shared, admit, now, refusal, release};
use conn::{Conn, Ctx};
use peer::Peer;
use side::Side;

/// Provided receive buffers per worker, and their size: 2 MiB, whatever the number of
/// connections (a receive that finds none ends and is armed again once they are back).
const RECV_BUFFERS: u16 = 128;
const RECV_BUFFER_BYTES: usize = 16 << 10;
const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 16384;
const BUFFER_GROUP: u16 = 1;
/// The slot of the worker's own operations (accept, the eventfd).
const WORKER_SLOT: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    ClientRecv = 1,
    ClientSend = 2,
    UpRecv = 3,
    UpSend = 4,
    Cancel = 5,
    Accept = 6,
    Wake = 7,
}

impl Op {
    fn of(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::ClientRecv,
            2 => Op::ClientSend,
            3 => Op::UpRecv,
            4 => Op::UpSend,
            5 => Op::Cancel,
            6 => Op::Accept,
            7 => Op::Wake,
            _ => return None,
        })
    }
}

/// A completion's tag: the connection's slot, the slot's generation (a completion for an
/// earlier occupant is recognised), the operation.
pub(super) fn user_data(slot: u32, generation: u16, op: Op) -> u64 {
    (slot as u64) << 32 | (generation as u64) << 8 | op as u64
}

fn split(ud: u64) -> (u32, u16, Option<Op>) {
    ((ud >> 32) as u32, (ud >> 8) as u16, Op::of(ud as u8))
}

pub(super) struct Ring {
    ring: IoUring,
}

impl Ring {
    /// Queues a submission (sent with the next `io_uring_enter`).
    ///
    /// # Safety
    /// Memory the entry names must stay valid, and not be written by pgate where the
    /// kernel writes it, until the operation's last completion.
    pub(super) unsafe fn push(&mut self, e: &squeue::Entry) {
        loop {
            // SAFETY: the caller's promise, passed on.
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                return;
            }
            // Full: hand the queue to the kernel first.
            if let Err(err) = self.ring.submit()
                && err.raw_os_error() != Some(libc::EBUSY)
            {
                eprintln!("pgate: io_uring submit failed: {err}");
            }
        }
    }
}

/// Whether this kernel and process can run the io_uring driver; the error says why not
/// (io_uring disabled by sysctl, a seccomp profile, an old kernel).
pub fn probe() -> Result<(), String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if major < 6 {
        return Err(format!(
            "kernel {} is older than 6.0 (multishot receive and buffer rings)",
            release.trim()
        ));
    }
    let ring = new_ring(8, 16).map_err(|e| {
        format!("io_uring_setup failed: {e} (kernel.io_uring_disabled, or a seccomp profile that blocks it)")
    })?;
    let b = bufring::BufRing::new(&ring, 2, 64, 0)
        .map_err(|e| format!("cannot register a provided-buffer ring: {e}"))?;
    drop(ring);
    drop(b);
    Ok(())
}

/// A ring for this thread alone. Completions are posted only while the worker is in
/// `io_uring_enter` waiting for them (`DEFER_TASKRUN`): no interrupting task work, and a
/// receive burst is bounded by the provided buffers the worker has handed back by then
/// (a receive pgate stops is cancelled in the same call, before new completions).
fn new_ring(sq_entries: u32, cq_entries: u32) -> io::Result<IoUring> {
    IoUring::builder()
        .setup_cqsize(cq_entries)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(sq_entries)
}

/// The worker's eventfd: anything that must wake it writes to it.
pub(super) fn eventfd() -> io::Result<File> {
    // SAFETY: eventfd(2) takes no pointers; a negative result is an error.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

struct Slab {
    conns: Vec<Option<Box<Conn>>>,
    generations: Vec<u16>,
    free: Vec<u32>,
    live: usize,
}

impl Slab {
    fn insert(&mut self, make: impl FnOnce(u32, u16) -> Conn) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.conns.push(None);
                self.generations.push(0);
                (self.conns.len() - 1) as u32
            }
        };
        let g = self.generations[slot as usize].wrapping_add(1);
        self.generations[slot as usize] = g;
        self.conns[slot as usize] = Some(Box::new(make(slot, g)));
        self.live += 1;
        slot
    }
    fn get(&mut self, slot: u32, generation: u16) -> Option<&mut Conn> {
        let i = slot as usize;
        if self.generations.get(i) != Some(&generation) {
            return None;
        }
        self.conns.get_mut(i)?.as_deref_mut()
    }
}

/// The parts of a worker a connection borrows while it handles an event; the field
/// order is the drop order: the ring goes before the memory it may write.
struct Io {
    ring: Ring,
    bufring: bufring::BufRing,
    bufs: Bufs,
    pool: Pool<Peer>,
    side: Side,
    shared: Shared,
}

/// Runs one worker on `listener` until the drain has ended.
pub(super) fn worker(listener: TcpListener, shared: Shared) -> io::Result<()> {
    crate::alloc_count::count_this_thread();
    let ring = new_ring(SQ_ENTRIES, CQ_ENTRIES)?;
    let bufring = bufring::BufRing::new(&ring, RECV_BUFFERS, RECV_BUFFER_BYTES, BUFFER_GROUP)?;
    let wake = Arc::new(eventfd()?);
    shared.wakers.add(wake.clone());
    // Declared before the ring so it is dropped after it: a read into it is always in
    // flight.
    let mut wake_buf = Box::new([0u8; 8]);
    let side = Side::start(
        &format!(
            "{}-side",
            std::thread::current().name().unwrap_or("pgate-worker")
        ),
        shared.clone(),
        wake.clone(),
    )?;
    let mut io = Io {
        ring: Ring { ring },
        bufring,
        bufs: Bufs::new(),
        pool: Pool::new(shared.pool),
        side,
        shared,
    };
    let mut slab = Slab {
        conns: Vec::new(),
        generations: Vec::new(),
        free: Vec::new(),
        live: 0,
    };
    let mut timers: BinaryHeap<Reverse<(u64, u32, u16)>> = BinaryHeap::with_capacity(256);
    let mut control = io.shared.control.clone();
    let mut current: Control = *control.borrow_and_update();
    let mut listener = Some(listener);
    let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(CQ_ENTRIES as usize);
    let mut answers = Vec::new();
    let mut accept_retry_at: Option<Instant> = None;
    let mut sweep_at: Option<Instant> = None;
    let mut draining = current.drain_deadline.is_some();

    if !draining && let Some(l) = &listener {
        arm_accept(&mut io.ring, l);
    }
    arm_wake(&mut io.ring, &wake, &mut wake_buf);

    // The clock read for the deadlines at the end of a round serves the next wait too.
    let mut last_read = now();
    loop {
        if draining && slab.live == 0 {
            break;
        }
        let (instant, clock) = last_read;
        if let Some(d) = current.drain_deadline
            && instant > d + Duration::from_secs(2)
        {
            break;
        }
        // Wait for the next completion, or the nearest deadline.
        let mut wait_us: Option<u64> = timers.peek().map(|Reverse((t, _, _))| *t);
        let mut bound = |at: Option<Instant>| {
            if let Some(at) = at {
                let us = clock.mono_us + at.saturating_duration_since(instant).as_micros() as u64;
                wait_us = Some(wait_us.map_or(us, |w| w.min(us)));
            }
        };
        bound(accept_retry_at);
        bound(sweep_at);
        bound(current.drain_deadline.map(|d| d + Duration::from_secs(2)));
        let res = match wait_us {
            Some(at) => {
                let us = at.saturating_sub(clock.mono_us);
                let ts = types::Timespec::new()
                    .sec(us / 1_000_000)
                    .nsec((us % 1_000_000) as u32 * 1000);
                let args = types::SubmitArgs::new().timespec(&ts);
                io.ring.ring.submitter().submit_with_args(1, &args)
            }
            None => io.ring.ring.submit_and_wait(1),
        };
        if let Err(e) = res
            && !matches!(
                e.raw_os_error(),
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
            )
        {
            return Err(e);
        }
        // One clock read for the round's events.
        let (_, round) = now();
        cqes.clear();
        cqes.extend(
            io.ring
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        let mut woke = false;
        let mut pool_changed = false;
        for &(ud, res, flags) in &cqes {
            let (slot, generation, op) = split(ud);
            let Some(op) = op else { continue };
            if slot == WORKER_SLOT {
                match op {
                    Op::Accept => {
                        if !io_uring::cqueue::more(flags) {
                            if draining {
                                listener = None;
                            } else if res >= 0 {
                                if let Some(l) = &listener {
                                    arm_accept(&mut io.ring, l);
                                }
                            } else {
                                accept_retry_at = Some(Instant::now() + Duration::from_millis(50));
                            }
                        }
                        if res < 0 {
                            if res != -libc::ECANCELED {
                                // EMFILE and friends: back off instead of spinning.
                                eprintln!(
                                    "pgate: accept failed: {}",
                                    io::Error::from_raw_os_error(-res)
                                );
                            }
                            continue;
                        }
                        // SAFETY: the kernel just made this descriptor for this process;
                        // nothing else owns it.
                        let sock = unsafe { TcpStream::from_raw_fd(res) };
                        if draining {
                            continue;
                        }
                        accepted(
                            &mut io,
                            &mut slab,
                            &mut timers,
                            sock,
                            current,
                            round,
                            &mut pool_changed,
                        );
                    }
                    Op::Wake => {
                        woke = true;
                        arm_wake(&mut io.ring, &wake, &mut wake_buf);
                    }
                    _ => {}
                }
                continue;
            }
            if matches!(op, Op::Cancel) {
                continue;
            }
            let Some(c) = slab.get(slot, generation) else {
                // An earlier occupant's: give its buffer back.
                if let Some(bid) = io_uring::cqueue::buffer_select(flags) {
                    io.bufring.recycle(bid);
                }
                continue;
            };
            let mut cx = ctx(&mut io, draining, round);
            c.on_cqe(op, res, flags, &mut cx);
            pool_changed |= cx.pool_changed;
            settle(&mut slab, &mut timers, slot, &io.shared);
        }
        if woke {
            io.side.take(&mut answers);
            for ((slot, generation), answer) in answers.drain(..) {
                if let Some(c) = slab.get(slot, generation) {
                    let mut cx = ctx(&mut io, draining, round);
                    c.on_answer(answer, &mut cx);
                    pool_changed |= cx.pool_changed;
                    settle(&mut slab, &mut timers, slot, &io.shared);
                }
            }
        }
        // A table swap or the drain.
        if control.has_changed().unwrap_or(false) {
            current = *control.borrow_and_update();
            if current.drain_deadline.is_some() && !draining {
                draining = true;
                // Stop accepting: the listener closes once its accept has ended.
                let e = opcode::AsyncCancel::new(user_data(WORKER_SLOT, 0, Op::Accept))
                    .build()
                    .user_data(user_data(WORKER_SLOT, 0, Op::Cancel));
                // SAFETY: a cancel refers to no memory.
                unsafe { io.ring.push(&e) };
                if accept_retry_at.take().is_some() {
                    listener = None;
                }
            }
            for slot in 0..slab.conns.len() as u32 {
                let g = slab.generations[slot as usize];
                if let Some(c) = slab.get(slot, g) {
                    let mut cx = ctx(&mut io, draining, round);
                    c.on_control(current, &mut cx);
                    pool_changed |= cx.pool_changed;
                    settle(&mut slab, &mut timers, slot, &io.shared);
                }
            }
        }
        // Deadlines.
        last_read = now();
        let (instant, clock) = last_read;
        while let Some(&Reverse((t, slot, generation))) = timers.peek() {
            if t > clock.mono_us {
                break;
            }
            timers.pop();
            if let Some(c) = slab.get(slot, generation)
                && c.timer_at == Some(t)
            {
                c.timer_at = None;
                let mut cx = ctx(&mut io, draining, clock);
                c.on_timer(clock.mono_us, &mut cx);
                pool_changed |= cx.pool_changed;
                settle(&mut slab, &mut timers, slot, &io.shared);
            }
        }
        if accept_retry_at.is_some_and(|at| instant >= at) {
            accept_retry_at = None;
            if let Some(l) = &listener
                && !draining
            {
                arm_accept(&mut io.ring, l);
            }
        }
        if sweep_at.is_some_and(|at| instant >= at) {
            io.pool.sweep(instant);
            pool_changed = true;
        }
        if pool_changed {
            sweep_at = io.pool.next_expiry();
        }
        // Stale timer entries (deadlines that moved) are dropped now and then.
        if timers.len() > 2 * slab.live + 64 {
            timers.clear();
            for (slot, c) in slab.conns.iter().enumerate() {
                if let Some(c) = c
                    && let Some(t) = c.timer_at
                {
                    timers.push(Reverse((t, slot as u32, slab.generations[slot])));
                }
            }
        }
    }
    for s in io.pool.take_all() {
        s.discard();
    }
    // Sessions still open at the hard stop may have operations in flight: their memory
    // stays until the process exits, which follows.
    std::mem::forget(slab);
    Ok(())
}

fn ctx(io: &mut Io, draining: bool, clock: crate::session::Clock) -> Ctx<'_> {
    Ctx {
        ring: &mut io.ring,
        bufring: &io.bufring,
        bufs: &mut io.bufs,
        pool: &mut io.pool,
        shared: &io.shared,
        side: &io.side,
        draining,
        pool_changed: false,
        clock,
    }
}

/// After an event: retire the connection if it is gone, else keep its deadline.
fn settle(
    slab: &mut Slab,
    timers: &mut BinaryHeap<Reverse<(u64, u32, u16)>>,
    slot: u32,
    shared: &Shared,
) {
    let i = slot as usize;
    let generation = slab.generations[i];
    let Some(c) = slab.conns[i].as_deref_mut() else {
        return;
    };
    if c.retired() {
        let peer = c.peer();
        slab.conns[i] = None;
        slab.free.push(slot);
        slab.live -= 1;
        release(shared, peer);
        return;
    }
    let want = c.next_deadline();
    if want != c.timer_at {
        c.timer_at = want;
        if let Some(t) = want {
            // Entries whose deadline moved go stale; a busy round can add one per event.
            // Dropping the stale ones when the heap is full, instead of growing it, keeps a
            // steady workload from allocating however many events one round brings.
            if timers.len() == timers.capacity() {
                timers.retain(|Reverse((at, s, g))| {
                    slab.conns
                        .get(*s as usize)
                        .and_then(|c| c.as_deref())
                        .is_some_and(|c| c.timer_at == Some(*at))
                        && slab.generations.get(*s as usize) == Some(g)
                });
            }
            timers.push(Reverse((t, slot, generation)));
        }
    }
}

fn accepted(
    io: &mut Io,
    slab: &mut Slab,
    timers: &mut BinaryHeap<Reverse<(u64, u32, u16)>>,
    sock: TcpStream,
    current: Control,
    round: crate::session::Clock,
    pool_changed: &mut bool,
) {
    let Ok(peer) = sock.peer_addr() else { return };
    let _ = sock.set_nonblocking(true);
    let _ = sock.set_nodelay(true);
    let id = match admit(&io.shared, peer) {
        Ok(id) => id,
        Err(msg) => {
            // One write of a short message on a fresh socket, without waiting.
            let _ = std::io::Write::write(&mut &sock, &refusal(&io.shared, peer, msg));
            return;
        }
    };
    let reuse = io.pool.enabled();
    let shared = &io.shared;
    let slot = slab.insert(|slot, g| Conn::new(slot, g, sock, peer, id, shared, reuse));
    let g = slab.generations[slot as usize];
    if let Some(c) = slab.get(slot, g) {
        let mut cx = ctx(io, current.drain_deadline.is_some(), round);
        // A drain that began before this connection was accepted still applies.
        c.on_control(current, &mut cx);
        *pool_changed |= cx.pool_changed;
    }
    settle(slab, timers, slot, &io.shared);
}

fn arm_accept(ring: &mut Ring, l: &TcpListener) {
    let e = opcode::AcceptMulti::new(types::Fd(l.as_raw_fd()))
        .flags(libc::SOCK_CLOEXEC)
        .build()
        .user_data(user_data(WORKER_SLOT, 0, Op::Accept));
    // SAFETY: a multishot accept names no memory; the listener stays open until its last
    // completion (it is dropped only then, at the drain).
    unsafe { ring.push(&e) };
}

fn arm_wake(ring: &mut Ring, fd: &File, buf: &mut [u8; 8]) {
    let e = opcode::Read::new(types::Fd(fd.as_raw_fd()), buf.as_mut_ptr(), 8)
        .build()
        .user_data(user_data(WORKER_SLOT, 0, Op::Wake));
    // SAFETY: `buf` is boxed by the worker and lives as long as the ring; one read is in
    // flight at a time (re-armed only after its completion), and nothing else writes it.
    unsafe { ring.push(&e) };
}
