//! pgate-forwarder: the benchmark's bare forwarder. Accepts on LISTEN, connects each client
//! to UPSTREAM, and copies bytes both ways until either side closes — no parsing, no TLS,
//! no policy. One io_uring per worker thread and an `SO_REUSEPORT` listener each (as
//! pgate's driver): multishot accept, one receive and one send in flight per direction,
//! every round's submissions in the call that waits. What it costs per query is the floor
//! under any proxy on the machine; `ci/bench.sh` measures pgate against it.
//!
//! Usage: `pgate-forwarder LISTEN UPSTREAM [WORKERS]`. For benchmarks on loopback only: it
//! holds at most 64 KiB per direction and closes both sockets on any error.
//!
//! What it must never do: be mistaken for a proxy — it checks nothing.
#![allow(unsafe_code)]

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};

use io_uring::{IoUring, cqueue, opcode, types};

const BUF_BYTES: usize = 64 << 10;

/// One direction: bytes read from `from` wait in `buf` until written to `to`.
struct Pipe {
    buf: Box<[u8]>,
    len: usize,
    sent: usize,
    busy: bool,
}

struct Relay {
    socks: [TcpStream; 2],
    /// `pipes[0]`: client → upstream; `pipes[1]`: upstream → client.
    pipes: [Pipe; 2],
    closing: bool,
}

fn ud(slot: usize, dir: usize, send: bool) -> u64 {
    ((slot as u64) << 8) | ((dir as u64) << 1) | send as u64 | 1 << 63
}

const ACCEPT: u64 = 1;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: pgate-forwarder LISTEN UPSTREAM [WORKERS]");
        std::process::exit(2);
    };
    let parse = |s: &str| -> SocketAddr {
        s.parse().unwrap_or_else(|e| {
            eprintln!("pgate-forwarder: {s}: {e}");
            std::process::exit(2)
        })
    };
    let (listen, upstream) = (parse(listen), parse(upstream));
    let workers: usize = args.get(3).and_then(|w| w.parse().ok()).unwrap_or(2);
    let mut handles = Vec::new();
    for i in 0..workers {
        handles.push(std::thread::spawn(move || {
            if let Err(e) = worker(listen, upstream) {
                eprintln!("pgate-forwarder: worker {i}: {e}");
                std::process::exit(1);
            }
        }));
    }
    for h in handles {
        let _ = h.join();
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

fn push(ring: &mut IoUring, e: &io_uring::squeue::Entry) {
    loop {
        // SAFETY: every entry names a pipe buffer owned by a relay that is dropped only
        // when none of its operations is in flight (see `settle`), or no memory at all.
        if unsafe { ring.submission().push(e) }.is_ok() {
            return;
        }
        let _ = ring.submit();
    }
}

fn worker(listen: SocketAddr, upstream: SocketAddr) -> io::Result<()> {
    let listener = bind(listen)?;
    let mut ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(1024)?;
    let mut relays: Vec<Option<Relay>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    push(
        &mut ring,
        &opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
            .build()
            .user_data(ACCEPT),
    );
    let mut cqes = Vec::with_capacity(1024);
    loop {
        ring.submit_and_wait(1)?;
        cqes.clear();
        cqes.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(u, res, flags) in &cqes {
            if u == ACCEPT {
                if !cqueue::more(flags) {
                    push(
                        &mut ring,
                        &opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
                            .build()
                            .user_data(ACCEPT),
                    );
                }
                if res < 0 {
                    continue;
                }
                // SAFETY: the kernel just made this descriptor for this process.
                let client = unsafe { TcpStream::from_raw_fd(res) };
                let Ok(up) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let pipe = || Pipe {
                    buf: vec![0u8; BUF_BYTES].into_boxed_slice(),
                    len: 0,
                    sent: 0,
                    busy: false,
                };
                let r = Relay {
                    socks: [client, up],
                    pipes: [pipe(), pipe()],
                    closing: false,
                };
                let slot = match free.pop() {
                    Some(s) => {
                        relays[s] = Some(r);
                        s
                    }
                    None => {
                        relays.push(Some(r));
                        relays.len() - 1
                    }
                };
                for dir in 0..2 {
                    arm(&mut ring, &mut relays, slot, dir);
                }
                continue;
            }
            let slot = ((u & !(1 << 63)) >> 8) as usize;
            let dir = ((u >> 1) & 1) as usize;
            let send = u & 1 == 1;
            let Some(r) = relays.get_mut(slot).and_then(|r| r.as_mut()) else {
                continue;
            };
            let p = &mut r.pipes[dir];
            p.busy = false;
            if res <= 0 {
                r.closing = true;
            } else if send {
                p.sent += res as usize;
            } else {
                p.len = res as usize;
                p.sent = 0;
            }
            arm(&mut ring, &mut relays, slot, dir);
            settle(&mut relays, &mut free, slot);
        }
    }
}

/// Starts the next operation of a direction: the rest of a send, or a receive.
fn arm(ring: &mut IoUring, relays: &mut [Option<Relay>], slot: usize, dir: usize) {
    let Some(r) = relays[slot].as_mut() else {
        return;
    };
    if r.closing {
        // Wake the other direction's pending receive: both sockets end.
        for s in &r.socks {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        return;
    }
    let (from, to) = (r.socks[dir].as_raw_fd(), r.socks[1 - dir].as_raw_fd());
    let p = &mut r.pipes[dir];
    if p.busy {
        return;
    }
    let e = if p.sent < p.len {
        let rest = &p.buf[p.sent..p.len];
        opcode::Send::new(types::Fd(to), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud(slot, dir, true))
    } else {
        opcode::Recv::new(types::Fd(from), p.buf.as_mut_ptr(), p.buf.len() as u32)
            .build()
            .user_data(ud(slot, dir, false))
    };
    p.busy = true;
    push(ring, &e);
}

/// Drops a relay once it is closing and nothing of it is in flight.
fn settle(relays: &mut [Option<Relay>], free: &mut Vec<usize>, slot: usize) {
    if relays[slot]
        .as_ref()
        .is_some_and(|r| r.closing && !r.pipes[0].busy && !r.pipes[1].busy)
    {
        relays[slot] = None;
        free.push(slot);
    }
}
