//! One client connection on a ring: the completions of its two sockets fed to the sans-IO
//! [`Session`], its actions carried out, its queues written out. The same protocol as the
//! epoll driver's `conn.rs` (full duplex; a peer read only while the other's queue is
//! below [`MAX_QUEUED_BYTES`]; side work off the loop; the same ending: last words, TLS
//! close_notify, FIN, a bounded linger; an idle upstream reset and parked), as a state
//! machine instead of a future.
//!
//! What this module must never do: interpret bytes (the session does), wait (nothing
//! here blocks), or let a connection go while one of its operations is in flight.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};

use super::super::bufs::Bufs;
use super::peer::{Got, Peer};
use super::side::{Answer, Job, Side};
use super::{Op, Ring, user_data};
use crate::reuse::{Parked, Reset, ResetStep};
use crate::runtime::conn::{
    apply_control, audit_reset, feed_client_bytes, new_session, ship_audit, warn_if_superuser,
};
use crate::runtime::pool::Pool;
use crate::runtime::{Control, Shared};
use crate::session::{Action, Clock, ConnId, Session};

/// Bytes queued for a peer above which pgate stops reading from the other peer.
const MAX_QUEUED_BYTES: usize = 1 << 20;
const HANDSHAKE_TIMEOUT_US: u64 = 10_000_000;
/// The last words' deadline, then the linger's (as the epoll driver's `finish`).
const FINISH_TIMEOUT_US: u64 = 5_000_000;
const LINGER_US: u64 = 2_000_000;
const LINGER_MAX_BYTES: usize = 16 << 20;
const RESET_TIMEOUT_US: u64 = 5_000_000;

/// What the worker lends a connection while it handles one event.
pub(super) struct Ctx<'a> {
    pub(super) ring: &'a mut Ring,
    pub(super) bufring: &'a super::bufring::BufRing,
    pub(super) bufs: &'a mut Bufs,
    pub(super) pool: &'a mut Pool<Peer>,
    pub(super) shared: &'a Shared,
    pub(super) side: &'a Side,
    pub(super) draining: bool,
    /// The pool changed: its next expiry is to be computed again.
    pub(super) pool_changed: bool,
    /// The time of this round (read once, when its completions arrived).
    pub(super) clock: Clock,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Live,
    Handshake,
    /// Writing the last words (until the deadline).
    Finishing,
    /// Reading and discarding what the client still sends.
    Lingering,
    Done,
}

enum UpMode {
    /// Serving the session.
    Session,
    /// `DISCARD ALL` on its way; parked when it answers.
    Reset {
        reset: Reset,
        parked: Box<Parked>,
        pending: Vec<u8>,
        done: bool,
    },
    /// Writing what is left (`pending`, then the session's queue when `flush_session`),
    /// then FIN and close.
    Closing {
        pending: Vec<u8>,
        flush_session: bool,
    },
}

pub(super) struct Conn {
    slot: u32,
    generation: u16,
    id: ConnId,
    peer: SocketAddr,
    session: Session,
    client: Peer,
    up: Option<Peer>,
    up_mode: UpMode,
    up_deadline: Option<u64>,
    issued: (i32, i32),
    registered: bool,
    side_busy: bool,
    deferred: VecDeque<Action>,
    connecting: bool,
    phase: Phase,
    deadline: Option<u64>,
    linger_left: usize,
    max_message: usize,
    /// The deadline the worker's timer heap holds for this connection.
    pub(super) timer_at: Option<u64>,
}

impl Conn {
    pub(super) fn new(
        slot: u32,
        generation: u16,
        sock: TcpStream,
        peer: SocketAddr,
        id: ConnId,
        shared: &Shared,
        reuse: bool,
    ) -> Conn {
        let (session, issued) = new_session(shared, peer, id, reuse);
        let max_message = shared.session.max_message_bytes as usize + 5;
        Conn {
            slot,
            generation,
            id,
            peer,
            session,
            client: Peer::new(sock, None),
            up: None,
            up_mode: UpMode::Session,
            up_deadline: None,
            issued,
            registered: false,
            side_busy: false,
            deferred: VecDeque::new(),
            connecting: false,
            phase: Phase::Live,
            deadline: None,
            linger_left: LINGER_MAX_BYTES,
            max_message,
            timer_at: None,
        }
    }

    pub(super) fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn ud(&self, op: Op) -> u64 {
        user_data(self.slot, self.generation, op)
    }

    /// Gone: nothing in flight, nothing left to do.
    pub(super) fn retired(&self) -> bool {
        self.phase == Phase::Done && self.client.quiet() && self.up.is_none()
    }

    /// The next moment the worker must call [`Conn::on_timer`].
    pub(super) fn next_deadline(&self) -> Option<u64> {
        let session = match self.phase {
            Phase::Live | Phase::Handshake => self.session.poll_timeout(),
            _ => None,
        };
        [session, self.deadline, self.up_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    pub(super) fn on_control(&mut self, c: Control, cx: &mut Ctx<'_>) {
        if matches!(self.phase, Phase::Live | Phase::Handshake) {
            apply_control(&mut self.session, c, cx.shared);
        }
        self.drive(cx);
    }

    pub(super) fn on_timer(&mut self, now_us: u64, cx: &mut Ctx<'_>) {
        if let Some(d) = self.deadline
            && now_us >= d
        {
            self.deadline = None;
            match self.phase {
                Phase::Handshake => {
                    eprintln!(
                        "pgate: connection {} from {}: TLS handshake timed out",
                        self.id, self.peer
                    );
                    self.abort(cx);
                }
                Phase::Finishing | Phase::Lingering => self.phase = Phase::Done,
                _ => {}
            }
        }
        if let Some(d) = self.up_deadline
            && now_us >= d
        {
            self.up_deadline = None;
            self.reset_failed("the reset timed out", cx);
        }
        if matches!(self.phase, Phase::Live | Phase::Handshake)
            && self.session.poll_timeout().is_some_and(|t| now_us >= t)
        {
            self.session.handle_timeout(cx.clock);
        }
        self.drive(cx);
    }

    pub(super) fn on_answer(&mut self, answer: Answer, cx: &mut Ctx<'_>) {
        match answer {
            Answer::Connected(result) => {
                self.connecting = false;
                match result {
                    Ok(up) if matches!(self.phase, Phase::Live) => {
                        let (sock, tls) = *up;
                        self.up = Some(Peer::new(sock, tls.map(rustls::Connection::Client)));
                        self.up_mode = UpMode::Session;
                        self.session.upstream_connected();
                    }
                    // The client went meanwhile: the socket closes here.
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!(
                            "pgate: connection {}: upstream {}: {e}",
                            self.id, cx.shared.upstream
                        );
                        self.session.upstream_closed(&e.to_string());
                    }
                }
            }
            Answer::Cancelled(taken) => {
                self.side_busy = false;
                self.session.upstream_cancel_done(taken);
            }
            Answer::Catalog(answer) => {
                self.side_busy = false;
                if let Err(e) = &answer {
                    eprintln!(
                        "pgate: connection {}: catalog lookup for masks: {e}",
                        self.id
                    );
                }
                // The catalog is built for the current table: the session takes it first.
                let table = cx.shared.table.load();
                self.session
                    .handle_table(&table.table(), cx.shared.auth.as_ref());
                self.session.handle_catalog(answer, &table.table());
            }
        }
        self.drive(cx);
    }

    /// A completion for this connection.
    pub(super) fn on_cqe(&mut self, op: Op, res: i32, flags: u32, cx: &mut Ctx<'_>) {
        match op {
            Op::ClientRecv => match self.client.on_recv(res, flags) {
                Got::Data { bid, len } => {
                    let ring = cx.bufring;
                    self.client_data(ring.get(bid, len), cx);
                    ring.recycle(bid);
                }
                Got::Eof => self.client_eof(cx),
                Got::Nothing => {}
            },
            Op::ClientSend => {
                self.client.on_send(res);
                if self.client.failed {
                    self.client_eof(cx);
                }
            }
            Op::UpRecv => {
                let Some(up) = self.up.as_mut() else { return };
                match up.on_recv(res, flags) {
                    Got::Data { bid, len } => {
                        let ring = cx.bufring;
                        self.upstream_data(ring.get(bid, len), cx);
                        ring.recycle(bid);
                    }
                    Got::Eof => self.upstream_eof(cx),
                    Got::Nothing => {}
                }
            }
            Op::UpSend => {
                let Some(up) = self.up.as_mut() else { return };
                up.on_send(res);
                if up.failed {
                    self.upstream_eof(cx);
                }
            }
            Op::Cancel | Op::Accept | Op::Wake => {}
        }
        self.drive(cx);
    }

    fn client_data(&mut self, data: &[u8], cx: &mut Ctx<'_>) {
        match self.phase {
            Phase::Lingering | Phase::Finishing | Phase::Done => {
                self.linger_left = self.linger_left.saturating_sub(data.len());
                if self.linger_left == 0 && self.phase == Phase::Lingering {
                    self.phase = Phase::Done;
                }
                return;
            }
            Phase::Live | Phase::Handshake => {}
        }
        let direct =
            self.phase == Phase::Live && !self.connecting && !self.session.holding_client();
        let session = &mut self.session;
        let shared = cx.shared;
        let clock = cx.clock;
        let r = self.client.take_in(cx.bufs, data, |d| {
            if direct {
                feed_client_bytes(session, d, shared, clock)
            } else {
                0
            }
        });
        if let Err(e) = r {
            // A TLS error: the client is not speaking TLS any more.
            if self.phase == Phase::Handshake {
                eprintln!("pgate: connection {} from {}: TLS: {e}", self.id, self.peer);
                self.abort(cx);
            } else {
                self.client_eof(cx);
            }
            return;
        }
        if self.phase == Phase::Handshake && !self.client.handshaking() {
            self.phase = Phase::Live;
            self.deadline = None;
            let cert = self
                .client
                .tls
                .as_ref()
                .and_then(|t| t.peer_certificates())
                .and_then(|c| c.first())
                .map(|c| crate::tls::thumbprint(c));
            self.session.tls_established(cert);
        }
    }

    fn client_eof(&mut self, cx: &mut Ctx<'_>) {
        self.client.eof = true;
        match self.phase {
            Phase::Live => {
                // A client gone mid-result: the query it started must not run on.
                if self.session.client_closed()
                    && let Some(real) = self.session.cancel_keys().upstream
                {
                    cx.side.run((self.slot, self.generation), Job::Cancel(real));
                }
            }
            Phase::Handshake => self.abort(cx),
            Phase::Finishing | Phase::Lingering => self.phase = Phase::Done,
            Phase::Done => {}
        }
    }

    fn upstream_data(&mut self, data: &[u8], cx: &mut Ctx<'_>) {
        let Some(up) = self.up.as_mut() else { return };
        let r = match &mut self.up_mode {
            UpMode::Session => {
                let direct = !self.session.upstream_paused();
                let session = &mut self.session;
                let clock = cx.clock;
                up.take_in(cx.bufs, data, |d| {
                    if direct {
                        session.handle_upstream(d, clock)
                    } else {
                        0
                    }
                })
            }
            UpMode::Reset { .. } => up.take_in(cx.bufs, data, |_| 0),
            UpMode::Closing { .. } => Ok(()),
        };
        if let Err(e) = r {
            eprintln!("pgate: connection {}: upstream TLS: {e}", self.id);
            self.upstream_eof(cx);
        }
    }

    fn upstream_eof(&mut self, cx: &mut Ctx<'_>) {
        if let Some(up) = self.up.as_mut() {
            up.eof = true;
        }
        match self.up_mode {
            UpMode::Session => {
                self.close_upstream(Vec::new(), false);
                if matches!(self.phase, Phase::Live | Phase::Handshake) {
                    self.session
                        .upstream_closed("the database closed the connection");
                }
            }
            UpMode::Reset { .. } => self.reset_failed("the database closed the connection", cx),
            UpMode::Closing { .. } => {}
        }
    }

    fn close_upstream(&mut self, pending: Vec<u8>, flush_session: bool) {
        self.up_mode = UpMode::Closing {
            pending,
            flush_session,
        };
        self.up_deadline = None;
    }

    /// Ends at once, without last words (a TLS failure, a handshake that timed out).
    fn abort(&mut self, cx: &mut Ctx<'_>) {
        self.begin_close(cx);
        self.phase = Phase::Done;
        self.deadline = None;
    }

    /// The session is over: the bookkeeping of its end, then the last words.
    fn begin_close(&mut self, cx: &mut Ctx<'_>) {
        if !matches!(self.phase, Phase::Live | Phase::Handshake) {
            return;
        }
        // The client's key stops working before its upstream connection can serve
        // another.
        if self.registered {
            cx.shared.cancels.remove(self.issued);
            self.registered = false;
        }
        self.session.client_closed();
        ship_audit(&mut self.session, cx.shared);
        let healthy = self.up.as_ref().is_some_and(|u| !u.eof && !u.failed);
        if self.up.is_some() && matches!(self.up_mode, UpMode::Session) {
            match self.session.park() {
                Some(p) if !cx.draining && healthy => {
                    let mut pending = Vec::new();
                    let reset = Reset::start(&mut pending);
                    self.up_mode = UpMode::Reset {
                        reset,
                        parked: Box::new(p),
                        pending,
                        done: false,
                    };
                    self.up_deadline = Some(cx.clock.mono_us + RESET_TIMEOUT_US);
                }
                Some(_) => self.close_upstream(Vec::new(), false),
                None => self.close_upstream(Vec::new(), true),
            }
        }
        self.phase = Phase::Finishing;
        self.deadline = Some(cx.clock.mono_us + FINISH_TIMEOUT_US);
    }

    fn reset_failed(&mut self, why: &str, cx: &mut Ctx<'_>) {
        let UpMode::Reset { parked, .. } = &self.up_mode else {
            return;
        };
        audit_reset(cx.shared, self.id, parked.backend_key.0, Err(why));
        metrics::counter!(crate::metrics::UPSTREAM_RESET_FAILURES).increment(1);
        eprintln!(
            "pgate: connection {}: upstream connection not reused: {why}",
            self.id
        );
        self.close_upstream(pgate_core::client::TERMINATE.to_vec(), false);
    }

    /// Carries out what is due: the session's actions, bytes it can take again, writes,
    /// which reads to keep armed, the end.
    pub(super) fn drive(&mut self, cx: &mut Ctx<'_>) {
        if matches!(self.phase, Phase::Live | Phase::Handshake) {
            self.drive_session(cx);
        }
        self.drive_upstream(cx);
        self.drive_client(cx);
        self.client.release(cx.bufs);
        if let Some(up) = self.up.as_mut() {
            up.release(cx.bufs);
        }
    }

    /// Carries out the session's actions; false once the connection is closing.
    fn run_actions(&mut self, cx: &mut Ctx<'_>) -> bool {
        loop {
            let next = if self.side_busy {
                self.session.poll_action()
            } else {
                self.deferred
                    .pop_front()
                    .or_else(|| self.session.poll_action())
            };
            let Some(a) = next else { break };
            match a {
                Action::CancelUpstream | Action::LookupCatalog if self.side_busy => {
                    self.deferred.push_back(a);
                }
                Action::StartTls => {
                    // Bytes pipelined after SSLRequest would be plaintext the
                    // handshake must not swallow (CVE-2021-23214-class injection).
                    let Some(acceptor) = &cx.shared.tls else {
                        self.abort(cx);
                        return false;
                    };
                    if !self.client.carry.is_empty() {
                        eprintln!(
                            "pgate: connection {} from {}: client sent data after SSLRequest before the TLS handshake",
                            self.id, self.peer
                        );
                        self.abort(cx);
                        return false;
                    }
                    match rustls::ServerConnection::new(acceptor.config().clone()) {
                        Ok(tls) => {
                            self.client.start_tls(rustls::Connection::Server(tls));
                            self.phase = Phase::Handshake;
                            self.deadline = Some(cx.clock.mono_us + HANDSHAKE_TIMEOUT_US);
                        }
                        Err(e) => {
                            eprintln!("pgate: connection {}: TLS: {e}", self.id);
                            self.abort(cx);
                            return false;
                        }
                    }
                }
                Action::ConnectUpstream => {
                    let idle = match self.session.upstream_startup() {
                        Some(key) if cx.pool.enabled() => {
                            cx.pool_changed = true;
                            cx.pool.take(key, std::time::Instant::now())
                        }
                        _ => None,
                    };
                    if let Some((peer, p)) = idle
                        && self.session.upstream_reused(&p)
                    {
                        metrics::counter!(crate::metrics::UPSTREAM_REUSED).increment(1);
                        self.up = Some(peer);
                        self.up_mode = UpMode::Session;
                        continue;
                    }
                    self.connecting = true;
                    cx.side.run((self.slot, self.generation), Job::Connect);
                }
                Action::Cancel {
                    process_id,
                    secret_key,
                } => {
                    if let Some(real) = cx.shared.cancels.lookup((process_id, secret_key)) {
                        cx.side.run((self.slot, self.generation), Job::Cancel(real));
                    }
                }
                Action::CancelUpstream => {
                    self.side_busy = true;
                    let real = self.session.cancel_keys().upstream;
                    cx.side
                        .run((self.slot, self.generation), Job::CancelAndWait(real));
                }
                Action::LookupCatalog => {
                    self.side_busy = true;
                    let request = self
                        .session
                        .catalog_request()
                        .map(crate::runtime::lookup::CatalogJob::from);
                    cx.side
                        .run((self.slot, self.generation), Job::Catalog(request));
                }
                Action::Close => {
                    ship_audit(&mut self.session, cx.shared);
                    self.begin_close(cx);
                    return false;
                }
            }
        }
        true
    }

    fn drive_session(&mut self, cx: &mut Ctx<'_>) {
        loop {
            if !self.run_actions(cx) {
                return;
            }
            // Lines out first: a full batch of them pauses the upstream input too.
            ship_audit(&mut self.session, cx.shared);
            let mut progress = false;
            // Bytes that waited (a cut result settling, a throttle, the audit).
            if self.phase == Phase::Live
                && !self.connecting
                && !self.client.carry.is_empty()
                && !self.session.holding_client()
            {
                let n =
                    feed_client_bytes(&mut self.session, &self.client.carry, cx.shared, cx.clock);
                if n > 0 {
                    self.client.consume(n);
                    progress = true;
                }
            }
            if let Some(up) = self.up.as_mut()
                && matches!(self.up_mode, UpMode::Session)
                && !up.carry.is_empty()
                && !self.session.upstream_paused()
            {
                let n = self.session.handle_upstream(&up.carry, cx.clock);
                if n > 0 {
                    up.consume(n);
                    progress = true;
                }
            }
            // Feeding may have queued actions (a second catalog lookup, say).
            if !self.run_actions(cx) {
                return;
            }
            if !progress {
                break;
            }
        }
        if !self.registered
            && let Some(real) = self.session.cancel_keys().upstream
        {
            cx.shared.cancels.register(self.issued, real);
            self.registered = true;
            warn_if_superuser(&self.session, cx.shared);
        }
        ship_audit(&mut self.session, cx.shared);
        if self.session.is_closed() {
            self.begin_close(cx);
        }
    }

    fn drive_client(&mut self, cx: &mut Ctx<'_>) {
        let send = self.ud(Op::ClientSend);
        let recv = self.ud(Op::ClientRecv);
        let cancel = self.ud(Op::Cancel);
        if !self.client.failed && self.phase != Phase::Done {
            let n = self
                .client
                .flush(cx.ring, cx.bufs, self.session.poll_client(), send);
            self.session.client_written(n);
        }
        if self.phase == Phase::Finishing && !self.client.pending_out() {
            if !self.session.poll_client().is_empty() {
                // More than the TLS buffer takes at once: the next flush sends the rest.
            } else if self.client.tls.is_some() && !self.client.shut {
                // TLS: close_notify, then FIN.
                self.client.close_notify();
                self.client.flush(cx.ring, cx.bufs, &[], send);
                if !self.client.pending_out() {
                    self.client.shutdown();
                }
            } else {
                self.client.shutdown();
            }
            if self.client.shut {
                if self.client.eof || self.client.failed {
                    self.phase = Phase::Done;
                } else {
                    self.phase = Phase::Lingering;
                    self.deadline = Some(cx.clock.mono_us + LINGER_US);
                }
            }
        }
        if self.client.failed && matches!(self.phase, Phase::Finishing | Phase::Lingering) {
            self.phase = Phase::Done;
        }
        let want = match self.phase {
            Phase::Live => {
                !self.connecting
                    && self.session.poll_upstream().len() < MAX_QUEUED_BYTES
                    && self.session.client_backlog() < MAX_QUEUED_BYTES
                    && !self.session.holding_client()
                    && self.client.carry.len() <= self.max_message
            }
            Phase::Handshake | Phase::Finishing | Phase::Lingering => true,
            Phase::Done => false,
        };
        if want {
            self.client.arm_recv(cx.ring, cx.bufring.group, recv);
        } else {
            self.client.disarm_recv(cx.ring, recv, cancel);
        }
    }

    fn drive_upstream(&mut self, cx: &mut Ctx<'_>) {
        let send = self.ud(Op::UpSend);
        let recv = self.ud(Op::UpRecv);
        let cancel = self.ud(Op::Cancel);
        let Some(up) = self.up.as_mut() else { return };
        let mut reset_step = None;
        match &mut self.up_mode {
            UpMode::Session => {
                let n = up.flush(cx.ring, cx.bufs, self.session.poll_upstream(), send);
                self.session.upstream_written(n);
                let want = self.session.poll_client().len() < MAX_QUEUED_BYTES
                    && !self.session.upstream_paused()
                    && up.carry.len() <= self.max_message;
                if want {
                    up.arm_recv(cx.ring, cx.bufring.group, recv);
                } else {
                    up.disarm_recv(cx.ring, recv, cancel);
                }
            }
            UpMode::Reset {
                reset,
                parked,
                pending,
                done,
            } => {
                let n = up.flush(cx.ring, cx.bufs, pending, send);
                pending.drain(..n);
                if !*done {
                    let (n, step) =
                        reset.handle(&up.carry, parked, cx.shared.session.max_message_bytes);
                    up.consume(n);
                    match step {
                        ResetStep::Done if up.carry.is_empty() => *done = true,
                        ResetStep::Done => {
                            reset_step =
                                Some(Err("the database sent more after the reset".to_string()))
                        }
                        ResetStep::Failed(why) => reset_step = Some(Err(why)),
                        ResetStep::Pending => {}
                    }
                }
                if *done {
                    up.disarm_recv(cx.ring, recv, cancel);
                    if up.quiet() && !up.pending_out() && pending.is_empty() {
                        reset_step = Some(Ok(()));
                    }
                } else {
                    up.arm_recv(cx.ring, cx.bufring.group, recv);
                }
            }
            UpMode::Closing {
                pending,
                flush_session,
            } => {
                if !up.failed && !up.eof {
                    let n = up.flush(cx.ring, cx.bufs, pending, send);
                    pending.drain(..n);
                    if *flush_session && pending.is_empty() {
                        let n = up.flush(cx.ring, cx.bufs, self.session.poll_upstream(), send);
                        self.session.upstream_written(n);
                    }
                }
                let flushed = up.failed
                    || up.eof
                    || (!up.pending_out()
                        && pending.is_empty()
                        && (!*flush_session || self.session.poll_upstream().is_empty()));
                if flushed {
                    up.shutdown();
                    up.disarm_recv(cx.ring, recv, cancel);
                    if up.quiet() {
                        // Closed here (the socket drops).
                        self.up = None;
                    }
                } else if up.recv == super::peer::Recv::Idle {
                    // Keep reading (and dropping) so the database's last words don't
                    // block it.
                    up.arm_recv(cx.ring, cx.bufring.group, recv);
                }
            }
        }
        match reset_step {
            Some(Ok(())) => {
                let UpMode::Reset { parked, .. } =
                    std::mem::replace(&mut self.up_mode, UpMode::Session)
                else {
                    return;
                };
                self.up_deadline = None;
                audit_reset(cx.shared, self.id, parked.backend_key.0, Ok(()));
                if let Some(mut peer) = self.up.take() {
                    peer.release(cx.bufs);
                    metrics::counter!(crate::metrics::UPSTREAM_PARKED).increment(1);
                    cx.pool.put(peer, *parked, std::time::Instant::now());
                    cx.pool_changed = true;
                }
            }
            Some(Err(why)) => {
                self.reset_failed(&why, cx);
                self.drive_upstream(cx);
            }
            None => {}
        }
    }
}
