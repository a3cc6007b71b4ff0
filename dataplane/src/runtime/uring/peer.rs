//! One socket of a connection as the ring sees it (the client's or the upstream's): its
//! multishot receive, its one send in flight, TLS when it has it (rustls driven from
//! bytes, no I/O of its own), and the bytes received but not yet taken by the session.
//!
//! A send goes out from `out`, which nothing touches until its completion: the session's
//! own queue may grow (and move) meanwhile, so its bytes are copied into `out` when a send
//! starts — with TLS the encryption is that copy. Idle peers give `out` and `carry` back
//! to the worker's [`Bufs`], so an idle connection holds no buffers.
//!
//! What this module must never do: free or resize `out` while a send is in flight, or
//! close the socket while an operation on it may still complete.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use super::super::bufs::Bufs;
use super::Ring;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Recv {
    Idle,
    Armed,
    /// A cancel is on its way; the last completion (without `F_MORE`) ends it.
    Cancelling,
}

/// What one receive completion brought.
pub(super) enum Got {
    /// Bytes in provided buffer `bid`.
    Data {
        bid: u16,
        len: usize,
    },
    /// The peer closed (or the socket failed).
    Eof,
    Nothing,
}

pub(super) struct Peer {
    pub(super) sock: TcpStream,
    pub(super) tls: Option<rustls::Connection>,
    /// TLS that starts once the bytes now queued (plaintext, say `S`) are out.
    tls_next: Option<rustls::Connection>,
    out: Vec<u8>,
    sent: usize,
    pub(super) sending: bool,
    /// Received plaintext the session has not taken.
    pub(super) carry: Vec<u8>,
    pub(super) recv: Recv,
    /// The read side ended.
    pub(super) eof: bool,
    /// A write failed: the peer is gone.
    pub(super) failed: bool,
    /// FIN sent.
    pub(super) shut: bool,
    /// Reads one buffer at a time: set once the session held this peer's input back (a
    /// throttle, a full queue), so that what arrives while it waits stays in the kernel's
    /// socket buffer (and TCP slows the sender) instead of piling up in `carry`.
    pub(super) paced: bool,
}

impl Peer {
    pub(super) fn new(sock: TcpStream, tls: Option<rustls::Connection>) -> Peer {
        Peer {
            sock,
            tls,
            tls_next: None,
            out: Vec::new(),
            sent: 0,
            sending: false,
            carry: Vec::new(),
            recv: Recv::Idle,
            eof: false,
            failed: false,
            shut: false,
            paced: false,
        }
    }

    /// TLS begins after what is queued now.
    pub(super) fn start_tls(&mut self, tls: rustls::Connection) {
        self.tls_next = Some(tls);
    }

    pub(super) fn handshaking(&self) -> bool {
        self.tls_next.is_some() || self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    pub(super) fn arm_recv(&mut self, ring: &mut Ring, group: u16, user_data: u64) {
        if self.recv != Recv::Idle || self.eof {
            return;
        }
        let fd = types::Fd(self.sock.as_raw_fd());
        let e = if self.paced {
            opcode::Recv::new(fd, std::ptr::null_mut(), super::RECV_BUFFER_BYTES as u32)
                .buf_group(group)
                .build()
                .flags(io_uring::squeue::Flags::BUFFER_SELECT)
        } else {
            opcode::RecvMulti::new(fd, group).build()
        }
        .user_data(user_data);
        // SAFETY: the receive writes only into provided buffers, which the worker owns
        // for the ring's lifetime; the socket stays open until the completion without
        // `F_MORE` (the connection is retired only when no operation is in flight).
        unsafe { ring.push(&e) };
        self.recv = Recv::Armed;
    }

    /// Stops reading while the session cannot take more; reads one buffer at a time from
    /// now on.
    pub(super) fn disarm_recv(&mut self, ring: &mut Ring, recv_user_data: u64, user_data: u64) {
        self.paced = true;
        if self.recv != Recv::Armed {
            return;
        }
        let e = opcode::AsyncCancel::new(recv_user_data)
            .build()
            .user_data(user_data);
        // SAFETY: a cancel refers to no memory.
        unsafe { ring.push(&e) };
        self.recv = Recv::Cancelling;
    }

    /// Reads a receive completion.
    pub(super) fn on_recv(&mut self, res: i32, flags: u32) -> Got {
        if !io_uring::cqueue::more(flags) {
            self.recv = Recv::Idle;
        }
        if res > 0 {
            if let Some(bid) = io_uring::cqueue::buffer_select(flags) {
                return Got::Data {
                    bid,
                    len: res as usize,
                };
            }
            return Got::Nothing;
        }
        match -res {
            0 => {
                self.eof = true;
                Got::Eof
            }
            // Out of provided buffers (re-armed when the worker gave them back) or the
            // cancel pgate asked for.
            libc::ENOBUFS | libc::ECANCELED => Got::Nothing,
            _ => {
                self.eof = true;
                Got::Eof
            }
        }
    }

    /// Received bytes: plaintext to `carry` (through TLS when there is TLS). With no TLS
    /// and nothing carried, `direct` may take them first without a copy (it returns how
    /// many it took).
    pub(super) fn take_in(
        &mut self,
        bufs: &mut Bufs,
        data: &[u8],
        direct: impl FnOnce(&[u8]) -> usize,
    ) -> io::Result<()> {
        let tls = match self.tls.as_mut() {
            Some(t) => Some(t),
            None => self.tls_next.as_mut(),
        };
        let Some(tls) = tls else {
            let rest = if self.carry.is_empty() {
                &data[direct(data).min(data.len())..]
            } else {
                data
            };
            if !rest.is_empty() {
                bufs.lend(&mut self.carry);
                self.carry.extend_from_slice(rest);
            }
            return Ok(());
        };
        let mut input = data;
        while !input.is_empty() {
            if tls.read_tls(&mut input)? == 0 {
                break;
            }
            tls.process_new_packets().map_err(io::Error::other)?;
            loop {
                bufs.lend(&mut self.carry);
                let len = self.carry.len();
                self.carry.resize(len + 8192, 0);
                match tls.reader().read(&mut self.carry[len..]) {
                    Ok(n) => {
                        self.carry.truncate(len + n);
                        if n == 0 {
                            break;
                        }
                    }
                    Err(_) => {
                        self.carry.truncate(len);
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts a send of what is pending (a partial send's rest, then `src`, encrypted
    /// with TLS, and TLS's own records). Returns how many bytes of `src` it took.
    pub(super) fn flush(
        &mut self,
        ring: &mut Ring,
        bufs: &mut Bufs,
        src: &[u8],
        user_data: u64,
    ) -> usize {
        if self.sending || self.failed {
            return 0;
        }
        let mut took = 0;
        if self.sent >= self.out.len() {
            self.out.clear();
            self.sent = 0;
            if let Some(next) = self.tls_next.take() {
                // The bytes before TLS (PostgreSQL's `S`) go out as they are.
                if !src.is_empty() {
                    bufs.lend(&mut self.out);
                    self.out.extend_from_slice(src);
                    took = src.len();
                }
                self.tls = Some(next);
            } else if let Some(tls) = self.tls.as_mut() {
                if !src.is_empty() && !tls.is_handshaking() {
                    took = tls.writer().write(src).unwrap_or(0);
                }
                if tls.wants_write() {
                    bufs.lend(&mut self.out);
                    let mut room = Room(&mut self.out);
                    while tls.wants_write() {
                        match tls.write_tls(&mut room) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
            } else if !src.is_empty() {
                bufs.lend(&mut self.out);
                let n = src.len().min(self.out.capacity());
                self.out.extend_from_slice(&src[..n]);
                took = n;
            }
        }
        if self.sent < self.out.len() {
            let rest = &self.out[self.sent..];
            let e = opcode::Send::new(
                types::Fd(self.sock.as_raw_fd()),
                rest.as_ptr(),
                rest.len().min(u32::MAX as usize) as u32,
            )
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data);
            // SAFETY: `out` is neither touched nor dropped until this send's completion
            // (`sending` guards every writer of it, and the connection is retired only
            // when nothing is in flight).
            unsafe { ring.push(&e) };
            self.sending = true;
        }
        took
    }

    pub(super) fn on_send(&mut self, res: i32) {
        self.sending = false;
        if res < 0 {
            self.failed = true;
            return;
        }
        self.sent += res as usize;
    }

    /// Something is still to be written (a partial send's rest, TLS records).
    pub(super) fn pending_out(&self) -> bool {
        self.sending
            || self.sent < self.out.len()
            || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// No operation in flight on the socket.
    pub(super) fn quiet(&self) -> bool {
        !self.sending && self.recv == Recv::Idle
    }

    pub(super) fn close_notify(&mut self) {
        if let Some(t) = self.tls.as_mut() {
            t.send_close_notify();
        }
    }

    /// FIN (the write side), once.
    pub(super) fn shutdown(&mut self) {
        if !self.shut {
            self.shut = true;
            let _ = self.sock.shutdown(std::net::Shutdown::Write);
        }
    }

    /// Gives idle buffers back.
    pub(super) fn release(&mut self, bufs: &mut Bufs) {
        if !self.sending && self.sent >= self.out.len() {
            self.out.clear();
            self.sent = 0;
            bufs.back(&mut self.out);
        }
        if self.carry.is_empty() {
            bufs.back(&mut self.carry);
        }
    }

    pub(super) fn consume(&mut self, n: usize) {
        let n = n.min(self.carry.len());
        self.carry.drain(..n);
    }
}

/// A `Write` into a buffer's spare capacity, never past it: TLS records that do not fit
/// stay in rustls for the next send.
struct Room<'a>(&'a mut Vec<u8>);

impl Write for Room<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = b.len().min(self.0.capacity() - self.0.len());
        self.0.extend_from_slice(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl super::super::pool::Parkable for Peer {
    fn at_rest(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.sock.peek(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
    /// Terminate and FIN, written without waiting (the socket is non-blocking and its
    /// buffer empty), then closed.
    fn discard(mut self) {
        let mut out = Vec::new();
        match self.tls.as_mut() {
            Some(t) => {
                let _ = t.writer().write_all(&pgate_core::client::TERMINATE);
                t.send_close_notify();
                while t.wants_write() && t.write_tls(&mut out).is_ok() {}
            }
            None => out.extend_from_slice(&pgate_core::client::TERMINATE),
        }
        let _ = self.sock.write(&out);
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}
