//! One client connection: moves bytes between the two sockets and the session, full
//! duplex. Each round polls, in one future, writes to both peers, reads from both peers
//! (each read only while the other side's queue is below [`MAX_QUEUED_BYTES`], so memory
//! stays bounded and a slow reader slows its writer through TCP, nothing is buffered
//! without bound), the session's timer and the control channel. A client that pipelines a
//! large batch while the server streams a large result therefore never wedges: pgate keeps
//! reading the server while it waits to write to it.
//!
//! Work that waits on a third party (a CancelRequest's answer, a catalog lookup for the
//! masks) runs as one side task polled in the same round, so deadlines, the drain and the
//! client's own bytes are still served while it waits; the session holds what depends on it.
//!
//! What this module must never do: interpret bytes (the session does), or wait on one
//! peer while the other has something for it.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::pool::{self, Pool};
use super::stream::Stream;
use super::{Shared, instant_of, mono_us, now};
use crate::session::{Action, Session};

/// The most one read takes (the worker's read buffer); a message larger than this is
/// completed in the connection's carry, up to the session's `max_message_bytes` (checked by
/// the session from the length header). Before login reads are small.
const READ_CHUNK: usize = 64 * 1024;
const STARTUP_CHUNK: usize = 1024;
/// Bytes queued for a peer above which pgate stops reading from the other peer.
const MAX_QUEUED_BYTES: usize = 1 << 20;

/// Bytes read but not yet taken by the session: an incomplete message's head, or input the
/// session holds back. Empty most of the time: reads land in the worker's [`READ`] buffer
/// and go to the session from there; a carry is lent by the worker's [`BUFS`] when bytes
/// stay behind and given back once they are taken, so an idle connection holds no read
/// buffer and a busy one allocates none after warm-up.
struct Carry {
    buf: Vec<u8>,
}

impl Carry {
    fn new() -> Self {
        Carry { buf: Vec::new() }
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn data(&self) -> &[u8] {
        &self.buf
    }
    /// Offers what is carried, then `fresh`, to `take` (which returns how many bytes it
    /// took from the front); keeps the rest.
    fn feed(&mut self, fresh: &[u8], take: impl FnOnce(&[u8]) -> usize) {
        if self.buf.is_empty() {
            let n = take(fresh).min(fresh.len());
            if n < fresh.len() {
                BUFS.with_borrow_mut(|b| b.lend(&mut self.buf));
                self.buf.extend_from_slice(&fresh[n..]);
            }
        } else {
            self.buf.extend_from_slice(fresh);
            let n = take(&self.buf).min(self.buf.len());
            self.buf.drain(..n);
        }
        if self.buf.is_empty() {
            BUFS.with_borrow_mut(|b| b.back(&mut self.buf));
        }
    }
}

impl Drop for Carry {
    fn drop(&mut self) {
        // During thread teardown the pool may be gone: then the buffer is simply freed.
        let _ = BUFS.try_with(|b| {
            if let Ok(mut b) = b.try_borrow_mut() {
                b.back(&mut self.buf);
            }
        });
    }
}

thread_local! {
    /// The worker's read buffer: every read of every connection on this thread lands here
    /// and is fed to its session before the connection's task next yields (no `.await`
    /// between a read and its feed), so one buffer serves them all.
    static READ: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
    /// The worker's pool of carries.
    static BUFS: std::cell::RefCell<super::bufs::Bufs> =
        std::cell::RefCell::new(super::bufs::Bufs::new());
}

/// Reads from `s` into the worker's buffer, at most `max` bytes.
fn poll_read_shared(cx: &mut Context<'_>, s: &mut Stream, max: usize) -> Poll<io::Result<usize>> {
    READ.with_borrow_mut(|r| {
        let end = max.min(r.len());
        poll_read(cx, s, &mut r[..end])
    })
}

/// The `n` bytes the last read left in the worker's buffer, after `carry`, to `take`.
fn feed_read(carry: &mut Carry, n: usize, take: impl FnOnce(&[u8]) -> usize) {
    READ.with_borrow(|r| carry.feed(&r[..n.min(r.len())], take));
}

/// What a side task brought back.
enum SideDone {
    /// The upstream's CancelRequest: whether its backend took it.
    Cancel(bool),
    Catalog(Result<crate::session::CatalogAnswer, String>),
}

/// At most one runs at a time; actions that need another wait in order behind it.
type SideTask<'a> = Pin<Box<dyn Future<Output = SideDone> + Send + 'a>>;

enum Event {
    Side(SideDone),
    /// Bytes in the worker's read buffer ([`READ`]), this many.
    ClientData(usize),
    ClientEof,
    UpstreamData(usize),
    UpstreamEof,
    Wrote,
    Timer,
    Control,
}

pub(super) async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    id: crate::session::ConnId,
    shared: &Shared,
    parked: &std::rc::Rc<std::cell::RefCell<Pool<Stream>>>,
) -> io::Result<()> {
    let (mut session, issued) = new_session(shared, peer, id, parked.borrow().enabled());
    let mut control = shared.control.clone();
    let mut client = Stream::Plain(stream);
    let mut upstream: Option<Stream> = None;
    let mut cbuf = Carry::new();
    let mut ubuf = Carry::new();
    let mut registered = false;
    let mut dirty = (false, false);
    // Client bytes are waiting for the session to take them again.
    let mut held = false;
    // Upstream bytes wait while a rate throttles the result.
    let mut uheld = false;
    let mut side: Option<SideTask<'_>> = None;
    // Side-task actions that came while one was running, in order (the session emits at
    // most one of each kind at a time).
    let mut deferred: VecDeque<Action> = VecDeque::new();
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    // A drain that began before this connection was accepted still applies.
    on_control(&mut session, &mut control, shared);

    let result: io::Result<()> = async {
        loop {
            // 1. Carry out actions.
            loop {
                let next = if side.is_none() {
                    deferred.pop_front().or_else(|| session.poll_action())
                } else {
                    session.poll_action()
                };
                let Some(a) = next else { break };
                match a {
                    Action::CancelUpstream | Action::LookupCatalog if side.is_some() => {
                        deferred.push_back(a);
                    }
                    Action::StartTls => {
                        write_all_client(&mut session, &mut client).await?;
                        let Some(acceptor) = &shared.tls else {
                            return Ok(());
                        };
                        let Stream::Plain(tcp) = std::mem::replace(&mut client, Stream::Gone)
                        else {
                            return Ok(());
                        };
                        // Bytes pipelined after SSLRequest would be plaintext the handshake
                        // must not swallow: refuse them (CVE-2021-23214-class injection).
                        if !cbuf.is_empty() {
                            return Err(io::Error::other(
                                "client sent data after SSLRequest before the TLS handshake",
                            ));
                        }
                        let tls = Box::pin(tokio::time::timeout(
                            Duration::from_secs(10),
                            acceptor.accept(tcp),
                        ))
                        .await
                        .map_err(|_| io::Error::other("TLS handshake timed out"))??;
                        let cert = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| crate::tls::thumbprint(c));
                        client = Stream::Tls(Box::new(tls));
                        session.tls_established(cert);
                    }
                    Action::ConnectUpstream => {
                        let idle = match session.upstream_startup() {
                            Some(key) if parked.borrow().enabled() => {
                                parked.borrow_mut().take(key, std::time::Instant::now())
                            }
                            _ => None,
                        };
                        if let Some((s, p)) = idle
                            && session.upstream_reused(&p)
                        {
                            metrics::counter!(crate::metrics::UPSTREAM_REUSED).increment(1);
                            upstream = Some(s);
                            continue;
                        }
                        match Box::pin(tokio::time::timeout(
                            Duration::from_secs(10),
                            connect_upstream(shared),
                        ))
                        .await
                        {
                            Ok(Ok(s)) => {
                                upstream = Some(s);
                                session.upstream_connected();
                            }
                            Ok(Err(e)) => {
                                eprintln!(
                                    "pgate: connection {id}: upstream {}: {e}",
                                    shared.upstream
                                );
                                session.upstream_closed(&e.to_string());
                            }
                            Err(_) => session.upstream_closed("connect timed out"),
                        }
                    }
                    Action::Cancel {
                        process_id,
                        secret_key,
                    } => {
                        if let Some(real) = shared.cancels.lookup((process_id, secret_key)) {
                            Box::pin(send_cancel(shared.upstream, real)).await;
                        }
                    }
                    Action::CancelUpstream => {
                        let real = session.cancel_keys().upstream;
                        let upstream_addr = shared.upstream;
                        side = Some(Box::pin(async move {
                            SideDone::Cancel(match real {
                                Some(real) => cancel_and_wait(upstream_addr, real).await,
                                None => false,
                            })
                        }));
                    }
                    Action::LookupCatalog => {
                        let request = session
                            .catalog_request()
                            .map(super::lookup::CatalogJob::from);
                        side = Some(Box::pin(async move {
                            SideDone::Catalog(match request {
                                Some(job) => super::lookup::catalog_for(shared, &job).await,
                                None => Err("no database".to_string()),
                            })
                        }));
                    }
                    Action::Close => {
                        ship_audit(&mut session, shared);
                        let u = upstream.as_mut().filter(|_| !session.parkable());
                        Box::pin(finish(&mut session, &mut client, u)).await;
                        return Ok(());
                    }
                }
            }
            // Lines out first: a full batch of them pauses the upstream input too.
            ship_audit(&mut session, shared);
            // Upstream bytes that waited for a throttle (or for the audit lines to go).
            if uheld && !session.upstream_paused() && !ubuf.is_empty() {
                let (_, clock) = now();
                ubuf.feed(&[], |d| session.handle_upstream(d, clock));
                uheld = session.upstream_paused() && !ubuf.is_empty();
                continue;
            }
            // Client bytes that waited while a cut result was settled.
            if held && !session.holding_client() && !cbuf.is_empty() {
                held = false;
                cbuf.feed(&[], |d| feed_client_bytes(&mut session, d, shared, now().1));
                continue;
            }
            if !registered && let Some(real) = session.cancel_keys().upstream {
                shared.cancels.register(issued, real);
                registered = true;
                warn_if_superuser(&session, shared);
            }
            ship_audit(&mut session, shared);
            if session.is_closed() {
                let u = upstream.as_mut().filter(|_| !session.parkable());
                Box::pin(finish(&mut session, &mut client, u)).await;
                return Ok(());
            }
            match session.poll_timeout() {
                Some(us) => sleep.as_mut().reset(instant_of(us).into()),
                None => sleep
                    .as_mut()
                    .reset((std::time::Instant::now() + Duration::from_secs(3600)).into()),
            }

            // 2. One round of I/O in both directions.
            let client_chunk = if session.is_ready() {
                READ_CHUNK
            } else {
                STARTUP_CHUNK
            };
            let event = {
                let mut changed = std::pin::pin!(control.changed());
                poll_fn(|cx| -> Poll<io::Result<Event>> {
                    // Time and control first: a peer that always has bytes must not starve
                    // the deadlines (token expiry, drain) or a table swap.
                    if sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(Event::Timer));
                    }
                    if changed.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(Event::Control));
                    }
                    if let Some(task) = side.as_mut()
                        && let Poll::Ready(done) = task.as_mut().poll(cx)
                    {
                        return Poll::Ready(Ok(Event::Side(done)));
                    }
                    let mut wrote = false;
                    match pump_writes(cx, &mut session, &mut client, upstream.as_mut(), &mut dirty)
                    {
                        Poll::Ready(Ok(Wrote::Some)) => wrote = true,
                        Poll::Ready(Ok(Wrote::UpstreamFailed)) => {
                            return Poll::Ready(Ok(Event::UpstreamEof));
                        }
                        // The client is gone: handled as its disconnect (audited, its
                        // upstream work cancelled).
                        Poll::Ready(Err(_)) => return Poll::Ready(Ok(Event::ClientEof)),
                        Poll::Pending => {}
                    }
                    if session.poll_upstream().len() < MAX_QUEUED_BYTES
                        && session.client_backlog() < MAX_QUEUED_BYTES
                        && !session.holding_client()
                    {
                        match poll_read_shared(cx, &mut client, client_chunk) {
                            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                                return Poll::Ready(Ok(Event::ClientEof));
                            }
                            Poll::Ready(Ok(n)) => return Poll::Ready(Ok(Event::ClientData(n))),
                            Poll::Pending => {}
                        }
                    }
                    if let Some(u) = upstream.as_mut()
                        && session.poll_client().len() < MAX_QUEUED_BYTES
                        && !session.upstream_paused()
                    {
                        match poll_read_shared(cx, u, READ_CHUNK) {
                            Poll::Ready(Ok(0)) => return Poll::Ready(Ok(Event::UpstreamEof)),
                            Poll::Ready(Ok(n)) => return Poll::Ready(Ok(Event::UpstreamData(n))),
                            // A read error upstream is the upstream gone: the session says so.
                            Poll::Ready(Err(_)) => return Poll::Ready(Ok(Event::UpstreamEof)),
                            Poll::Pending => {}
                        }
                    }
                    if wrote {
                        return Poll::Ready(Ok(Event::Wrote));
                    }
                    Poll::Pending
                })
                .await?
            };

            // 3. Feed the session.
            match event {
                Event::Side(done) => {
                    side = None;
                    match done {
                        SideDone::Cancel(taken) => session.upstream_cancel_done(taken),
                        SideDone::Catalog(answer) => {
                            if let Err(e) = &answer {
                                eprintln!("pgate: connection {id}: catalog lookup for masks: {e}");
                            }
                            // The catalog is built for the current table: the session
                            // takes it first.
                            let table = shared.table.load();
                            session.handle_table(&table.table(), shared.auth.as_ref());
                            session.handle_catalog(answer, &table.table());
                        }
                    }
                }
                Event::ClientData(n) => {
                    feed_read(&mut cbuf, n, |d| {
                        feed_client_bytes(&mut session, d, shared, now().1)
                    });
                    held = session.holding_client() && !cbuf.is_empty();
                }
                Event::ClientEof => {
                    // A client gone mid-result: the query it started must not run on.
                    if session.client_closed()
                        && let Some(real) = session.cancel_keys().upstream
                    {
                        Box::pin(send_cancel(shared.upstream, real)).await;
                    }
                }
                Event::UpstreamData(n) => {
                    let (_, clock) = now();
                    feed_read(&mut ubuf, n, |d| session.handle_upstream(d, clock));
                    uheld = session.upstream_paused() && !ubuf.is_empty();
                }
                Event::UpstreamEof => {
                    upstream = None;
                    session.upstream_closed("the database closed the connection");
                }
                Event::Wrote => {}
                Event::Timer => session.handle_timeout(now().1),
                Event::Control => on_control(&mut session, &mut control, shared),
            }
        }
    }
    .await;
    // The client's key stops working before its upstream connection can serve another.
    if registered {
        shared.cancels.remove(issued);
    }
    session.client_closed();
    ship_audit(&mut session, shared);
    let draining = control.borrow().drain_deadline.is_some();
    if let Some(mut p) = session.park()
        && let Some(mut u) = upstream.take()
        && !draining
    {
        let outcome = Box::pin(pool::reset(
            &mut u,
            &mut p,
            ubuf.data(),
            shared.session.max_message_bytes,
        ))
        .await;
        let why = outcome.as_ref().map_err(|e| e.to_string());
        audit_reset(
            shared,
            id,
            p.backend_key.0,
            why.as_ref().map(|_| ()).map_err(|e| e.as_str()),
        );
        match outcome {
            Ok(()) => {
                metrics::counter!(crate::metrics::UPSTREAM_PARKED).increment(1);
                parked.borrow_mut().put(u, p, std::time::Instant::now());
                // The pool closes what is still idle after the timeout.
                let later = parked.clone();
                let after = parked.borrow().idle_timeout();
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(after).await;
                    later.borrow_mut().sweep(std::time::Instant::now());
                });
            }
            Err(e) => {
                metrics::counter!(crate::metrics::UPSTREAM_RESET_FAILURES).increment(1);
                eprintln!("pgate: connection {id}: upstream connection not reused: {e}");
                Box::pin(pool::close(u)).await;
            }
        }
    }
    result
}

/// The session of a client connection just accepted, and the cancel key issued to it.
pub(super) fn new_session(
    shared: &Shared,
    peer: SocketAddr,
    id: crate::session::ConnId,
    reuse_upstream: bool,
) -> (Session, (i32, i32)) {
    let mut cfg = shared.session.clone();
    cfg.reuse_upstream = reuse_upstream;
    cfg.tls_available = shared.tls.is_some();
    cfg.allow_plaintext_auth = shared.allow_plaintext_loopback && peer.ip().is_loopback();
    cfg.expect_proxy_header = super::proxied(shared, peer.ip());
    let entropy = shared.cancels.entropy();
    let issued = entropy.cancel_key;
    let mut session = Session::new(cfg, id, &peer.to_string(), entropy, now().1);
    session.set_identity_buckets(shared.identity_buckets.clone());
    session.set_token_uses(shared.token_uses.clone());
    session.set_budget_store(shared.budget_store.clone());
    session.set_address_counts(
        shared.per_address.clone(),
        shared.max_connections_per_address,
    );
    (session, issued)
}

/// The client's bytes to the session, with the current table and the audit's state;
/// returns how many it took.
pub(super) fn feed_client_bytes(
    session: &mut Session,
    data: &[u8],
    shared: &Shared,
    clock: crate::session::Clock,
) -> usize {
    let table = shared.table.load();
    let accepting = shared.audit.accepting();
    if !accepting {
        shared.audit.note_refused();
    }
    session.set_audit_accepting(accepting);
    SCRATCH.with_borrow_mut(|scratch| {
        session.handle_client(data, &table.table(), shared.auth.as_ref(), clock, scratch)
    })
}

thread_local! {
    /// The classifier's buffers of this worker thread (both drivers run a session only on
    /// its worker's thread), lent to one session at a time: allocated at the worker's first
    /// statement, never per session.
    static SCRATCH: std::cell::RefCell<crate::session::Scratch> =
        std::cell::RefCell::new(crate::session::Scratch::default());
}

fn on_control(
    session: &mut Session,
    control: &mut tokio::sync::watch::Receiver<super::Control>,
    shared: &Shared,
) {
    let c = *control.borrow_and_update();
    apply_control(session, c, shared);
}

/// A table swap or the drain, told to a session.
pub(super) fn apply_control(session: &mut Session, c: super::Control, shared: &Shared) {
    if let Some(d) = c.drain_deadline {
        session.handle_drain(mono_us(d));
    }
    let table = shared.table.load();
    session.handle_table(&table.table(), shared.auth.as_ref());
    session.handle_timeout(now().1);
}

/// pgate's own statement on a backend it parks, in the audit next to the clients' (the
/// database logs it too).
pub(super) fn audit_reset(
    shared: &Shared,
    id: crate::session::ConnId,
    backend_pid: i32,
    outcome: Result<(), &str>,
) {
    let mut line = serde_json::json!({
        "ts_ms": now().1.unix_ms,
        "event": "upstream-reset",
        "conn": id.to_string(),
        "backend_pid": backend_pid,
        "sql": crate::reuse::RESET_SQL,
        "status": if outcome.is_ok() { "ok" } else { "error" },
    });
    if let Err(e) = outcome {
        line["reason"] = serde_json::Value::String(e.to_string());
    }
    shared.audit.write(&format!("{line}\n"));
}

fn poll_read(cx: &mut Context<'_>, s: &mut Stream, spare: &mut [u8]) -> Poll<io::Result<usize>> {
    if spare.is_empty() {
        // Full and at the message limit: the session will refuse the message.
        return Poll::Pending;
    }
    let mut rb = ReadBuf::new(spare);
    match Pin::new(s).poll_read(cx, &mut rb) {
        Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

enum Wrote {
    Some,
    /// Writing to the upstream failed: it is gone.
    UpstreamFailed,
}

/// Writes what the session has queued for each peer, as far as the sockets take it, and
/// flushes. `Ready(Ok(Wrote::Some))`: some bytes went out; `Err`: the client is gone.
fn pump_writes(
    cx: &mut Context<'_>,
    session: &mut Session,
    client: &mut Stream,
    upstream: Option<&mut Stream>,
    dirty: &mut (bool, bool),
) -> Poll<io::Result<Wrote>> {
    let mut wrote = false;
    loop {
        let out = session.poll_client();
        if out.is_empty() {
            break;
        }
        match Pin::new(&mut *client).poll_write(cx, out) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                session.client_written(n);
                dirty.0 = true;
                wrote = true;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => break,
        }
    }
    if dirty.0 {
        match Pin::new(&mut *client).poll_flush(cx) {
            Poll::Ready(Ok(())) => dirty.0 = false,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
    }
    if let Some(u) = upstream {
        loop {
            let out = session.poll_upstream();
            if out.is_empty() {
                break;
            }
            match Pin::new(&mut *u).poll_write(cx, out) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    return Poll::Ready(Ok(Wrote::UpstreamFailed));
                }
                Poll::Ready(Ok(n)) => {
                    session.upstream_written(n);
                    dirty.1 = true;
                    wrote = true;
                }
                Poll::Pending => break,
            }
        }
        if dirty.1 {
            match Pin::new(&mut *u).poll_flush(cx) {
                Poll::Ready(Ok(())) => dirty.1 = false,
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(Wrote::UpstreamFailed)),
                Poll::Pending => {}
            }
        }
    }
    if wrote {
        Poll::Ready(Ok(Wrote::Some))
    } else {
        Poll::Pending
    }
}

async fn write_all_client(session: &mut Session, client: &mut Stream) -> io::Result<()> {
    let out = session.poll_client();
    if out.is_empty() {
        return Ok(());
    }
    client.write_all(out).await?;
    client.flush().await?;
    let n = out.len();
    session.client_written(n);
    Ok(())
}

/// Connects to the upstream; with TLS configured, negotiates it first ("SSLRequest … The
/// server then responds with a single byte containing S or N").
pub(super) async fn connect_upstream(shared: &Shared) -> io::Result<Stream> {
    let mut tcp = TcpStream::connect(shared.upstream).await?;
    let _ = tcp.set_nodelay(true);
    let Some((connector, name)) = &shared.upstream_tls else {
        return Ok(Stream::Plain(tcp));
    };
    tcp.write_all(&pgate_core::client::SSL_REQUEST).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => {
            let tls = connector.connect(name.clone(), tcp).await?;
            Ok(Stream::UpstreamTls(Box::new(tls)))
        }
        b'N' => Err(io::Error::other(
            "the database does not offer TLS, and upstream tls is required by the configuration",
        )),
        _ => Err(io::Error::other(
            "unexpected answer to SSLRequest from the database",
        )),
    }
}

/// Says once per process that the upstream user is a superuser: every session then runs
/// with rights no policy rule can narrow at the database (catalogs with password hashes,
/// server files, other sessions) — pgate is the only wall.
pub(super) fn warn_if_superuser(session: &Session, shared: &Shared) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if session.upstream_is_superuser() && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!(
            "pgate: warning: upstream user `{}` is a superuser; run pgate with a least-privilege upstream role (docs/dataplane.md, \"Upstream role\")",
            shared.session.upstream_user
        );
    }
}

/// Bytes of a client's unread input pgate reads and discards after its last words.
const LINGER_MAX_BYTES: usize = 16 << 20;
/// How long it does so.
const LINGER: Duration = Duration::from_secs(2);

/// Ends a connection the way a server should: the last words (a FATAL, say) written; TLS
/// closed with close_notify and the write side shut (FIN); what the client still sends
/// read and discarded until it closes too, within bounds — closing a socket with unread
/// input makes the kernel send a reset, and a reset can destroy the FATAL before the
/// client reads it (an oversized message, a pipeline cut off by a refusal).
async fn finish(session: &mut Session, client: &mut Stream, upstream: Option<&mut Stream>) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        write_all_client(session, client).await?;
        if let Some(u) = upstream {
            let out = session.poll_upstream().to_vec();
            u.write_all(&out).await?;
            u.shutdown().await?;
        }
        // TLS: close_notify, then FIN.
        client.shutdown().await
    })
    .await;
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 16 << 10];
        let mut left = LINGER_MAX_BYTES;
        while left > 0 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

pub(super) fn ship_audit(session: &mut Session, shared: &Shared) {
    let (allowed, denied) = session.take_verdict_counts();
    if allowed > 0 || denied > 0 {
        crate::metrics::count_verdicts(allowed, denied);
    }
    let lines = session.poll_audit();
    if !lines.is_empty() {
        shared.audit.write(lines);
        session.audit_taken();
    }
}

/// CancelRequest to the upstream with the real key, then wait (at most 5 s) until the
/// database closes that connection: it has signalled the backend by then, so a statement
/// sent afterwards cannot be the one cancelled (an idle backend ignores a cancel).
/// True once the database closed the connection; false if it could not be reached or did
/// not answer in time.
pub(super) async fn cancel_and_wait(upstream: SocketAddr, (pid, key): (i32, i32)) -> bool {
    let m = pgate_core::client::cancel_request(pid, key);
    let wait = async {
        let mut s = TcpStream::connect(upstream).await?;
        s.write_all(&m).await?;
        let mut sink = [0u8; 64];
        while s.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), wait).await,
        Ok(Ok(()))
    )
}

/// CancelRequest to the upstream with the real key, on a new connection.
pub(super) async fn send_cancel(upstream: SocketAddr, (pid, key): (i32, i32)) {
    let m = pgate_core::client::cancel_request(pid, key);
    if let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream)).await
    {
        let _ = s.write_all(&m).await;
        let _ = s.shutdown().await;
    }
}
