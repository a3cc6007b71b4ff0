//! The thread-per-core driver: one worker thread per core, each with its own current-thread
//! tokio runtime and its own `SO_REUSEPORT` listener; a connection never moves between
//! workers. The driver only moves bytes between sockets and the sans-IO [`Session`] and
//! carries out its [`Action`]s — no protocol or policy logic lives here, so it can be
//! swapped for an io_uring driver without touching enforcement.
//!
//! Shared state is read-only and swapped atomically: the decision table (reloaded on
//! SIGHUP, keeping the last good one if the new file fails to load) and the identity keys.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use pgate_core::table::TableFile;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::audit::AuditSink;
use crate::session::{Action, Authenticator, Clock, Session, SessionConfig};

/// Everything the workers share. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct Shared {
    pub table: Arc<ArcSwap<TableFile>>,
    pub auth: Arc<dyn Authenticator + Send + Sync>,
    pub tls: Option<TlsAcceptor>,
    pub session: SessionConfig,
    pub upstream: SocketAddr,
    /// TLS towards the upstream, with the name its certificate must carry.
    pub upstream_tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    pub audit: AuditSink,
    pub cancels: Arc<CancelRegistry>,
    pub max_connections: usize,
    pub connections: Arc<AtomicU64>,
    /// Plaintext token authentication is allowed for loopback clients only.
    pub allow_plaintext_loopback: bool,
}

/// pgate-issued cancel keys → the real upstream key of the session that holds them.
#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<(i32, i32), (i32, i32)>>,
    next: AtomicU64,
}

impl CancelRegistry {
    /// A fresh key, unpredictable enough that a client cannot guess another's: the
    /// process id part is a counter, the secret comes from the OS-seeded hasher.
    pub fn issue(&self) -> (i32, i32) {
        use std::hash::{BuildHasher, Hasher};
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        ((n % i32::MAX as u64) as i32 + 1, h.finish() as i32)
    }
    fn register(&self, issued: (i32, i32), real: (i32, i32)) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(issued, real);
        }
    }
    fn remove(&self, issued: (i32, i32)) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(&issued);
        }
    }
    fn lookup(&self, issued: (i32, i32)) -> Option<(i32, i32)> {
        self.map.lock().ok()?.get(&issued).copied()
    }
}

fn now() -> (Instant, Clock) {
    let start = *START.get_or_init(Instant::now);
    let i = Instant::now();
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (
        i,
        Clock {
            mono_us: i.duration_since(start).as_micros() as u64,
            unix_ms,
        },
    )
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Binds one `SO_REUSEPORT` listener per worker (so the kernel spreads connections) and runs
/// the workers until the process is stopped. Returns only on a startup error.
pub fn run(listen: SocketAddr, workers: usize, shared: Shared) -> io::Result<()> {
    let mut listeners = Vec::with_capacity(workers);
    for _ in 0..workers {
        listeners.push(bind_reuseport(listen)?);
    }
    let mut handles = Vec::with_capacity(workers);
    for (i, l) in listeners.into_iter().enumerate() {
        let shared = shared.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("pgate-worker-{i}"))
                .spawn(move || worker(l, shared))?,
        );
    }
    for h in handles {
        match h.join() {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::other("a worker thread panicked")),
        }
    }
    Ok(())
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_tcp_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn worker(listener: std::net::TcpListener, shared: Shared) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::from_std(listener)?;
        let conn_ids = Arc::new(AtomicU64::new(0));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("pgate: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let live = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
            if live as usize > shared.max_connections {
                shared.connections.fetch_sub(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            metrics::counter!(crate::metrics::CONNECTIONS).increment(1);
            metrics::gauge!(crate::metrics::ACTIVE).set(live as f64);
            let shared = shared.clone();
            let id = (std::process::id() as u64) << 32 | conn_ids.fetch_add(1, Ordering::Relaxed);
            tokio::task::spawn_local(async move {
                if let Err(e) = connection(stream, peer, id, &shared).await {
                    eprintln!("pgate: connection {id} from {peer}: {e}");
                }
                let live = shared.connections.fetch_sub(1, Ordering::Relaxed) - 1;
                metrics::gauge!(crate::metrics::ACTIVE).set(live as f64);
            });
        }
    })
}

/// A socket, before or after TLS (client side: pgate is the TLS server; upstream side:
/// pgate is the TLS client).
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    UpstreamTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Gone,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// Read buffer size per direction; a message larger than this grows the buffer up to the
/// session's `max_message_bytes` (checked by the session from the length header).
const READ_CHUNK: usize = 64 * 1024;

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    shared: &Shared,
) -> io::Result<()> {
    let mut cfg = shared.session.clone();
    cfg.tls_available = shared.tls.is_some();
    cfg.allow_plaintext_auth = shared.allow_plaintext_loopback && peer.ip().is_loopback();
    let issued = shared.cancels.issue();
    let mut session = Session::new(cfg, id, &peer.to_string(), issued);
    let mut client = Stream::Plain(stream);
    let mut upstream: Option<Stream> = None;
    let mut cbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut ubuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut registered = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let result: io::Result<()> = async {
        loop {
            // 1. Carry out actions.
            while let Some(a) = session.poll_action() {
                match a {
                    Action::StartTls => {
                        flush_client(&mut session, &mut client).await?;
                        let Some(acceptor) = &shared.tls else {
                            return Ok(());
                        };
                        let Stream::Plain(tcp) = std::mem::replace(&mut client, Stream::Gone) else {
                            return Ok(());
                        };
                        // Bytes pipelined after SSLRequest would be plaintext the handshake
                        // must not swallow: refuse them (CVE-2021-23214-class injection).
                        if !cbuf.is_empty() {
                            return Err(io::Error::other("client sent data after SSLRequest before the TLS handshake"));
                        }
                        let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                            .await
                            .map_err(|_| io::Error::other("TLS handshake timed out"))??;
                        client = Stream::Tls(Box::new(tls));
                        session.tls_established();
                    }
                    Action::ConnectUpstream => {
                        match tokio::time::timeout(Duration::from_secs(10), connect_upstream(shared)).await {
                            Ok(Ok(s)) => {
                                upstream = Some(s);
                                session.upstream_connected();
                            }
                            Ok(Err(e)) => {
                                eprintln!("pgate: connection {id}: upstream {}: {e}", shared.upstream);
                                session.upstream_closed(&e.to_string());
                            }
                            Err(_) => session.upstream_closed("connect timed out"),
                        }
                    }
                    Action::Cancel { process_id, secret_key } => {
                        if let Some(real) = shared.cancels.lookup((process_id, secret_key)) {
                            send_cancel(shared.upstream, real).await;
                        }
                    }
                    Action::Close => {
                        flush_client(&mut session, &mut client).await?;
                        if let Some(u) = upstream.as_mut() {
                            let out = session.poll_upstream().to_vec();
                            let _ = u.write_all(&out).await;
                        }
                        ship_audit(&mut session, shared);
                        return Ok(());
                    }
                }
            }
            if !registered && let Some(real) = session.cancel_keys().upstream {
                shared.cancels.register(issued, real);
                registered = true;
            }
            ship_audit(&mut session, shared);

            // 2. Write what is queued.
            flush_client(&mut session, &mut client).await?;
            if let Some(u) = upstream.as_mut() {
                let out = session.poll_upstream();
                if !out.is_empty() {
                    u.write_all(out).await?;
                    let n = out.len();
                    session.upstream_written(n);
                }
            }
            if session.is_closed() {
                return Ok(());
            }

            // 3. Wait for input.
            cbuf.reserve(READ_CHUNK);
            ubuf.reserve(READ_CHUNK);
            tokio::select! {
                r = client.read_buf(&mut cbuf) => {
                    if r? == 0 {
                        return Ok(());
                    }
                    let table = shared.table.load();
                    let (_, clock) = now();
                    let accepting = shared.audit.accepting();
                    if !accepting {
                        shared.audit.note_refused();
                    }
                    session.set_audit_accepting(accepting);
                    let n = session.handle_client(&cbuf, &table.table(), shared.auth.as_ref(), clock);
                    cbuf.drain(..n);
                }
                r = read_upstream(&mut upstream, &mut ubuf) => {
                    if r? == 0 {
                        session.upstream_closed("the database closed the connection");
                    } else {
                        let (_, clock) = now();
                        let n = session.handle_upstream(&ubuf, clock);
                        ubuf.drain(..n);
                    }
                }
                _ = tick.tick() => {
                    let (_, clock) = now();
                    session.handle_timeout(clock);
                }
            }
        }
    }
    .await;
    if registered {
        shared.cancels.remove(issued);
    }
    ship_audit(&mut session, shared);
    result
}

/// Connects to the upstream; with TLS configured, negotiates it first ("SSLRequest … The
/// server then responds with a single byte containing S or N").
async fn connect_upstream(shared: &Shared) -> io::Result<Stream> {
    let mut tcp = TcpStream::connect(shared.upstream).await?;
    let _ = tcp.set_nodelay(true);
    let Some((connector, name)) = &shared.upstream_tls else {
        return Ok(Stream::Plain(tcp));
    };
    let mut req = [0u8; 8];
    req[..4].copy_from_slice(&8u32.to_be_bytes());
    req[4..].copy_from_slice(&pgate_core::wire::SSL_REQUEST_CODE.to_be_bytes());
    tcp.write_all(&req).await?;
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

async fn read_upstream(upstream: &mut Option<Stream>, buf: &mut Vec<u8>) -> io::Result<usize> {
    match upstream {
        Some(u) => u.read_buf(buf).await,
        None => std::future::pending().await,
    }
}

async fn flush_client(session: &mut Session, client: &mut Stream) -> io::Result<()> {
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

fn ship_audit(session: &mut Session, shared: &Shared) {
    let (allowed, denied) = session.take_verdict_counts();
    if allowed > 0 {
        metrics::counter!(crate::metrics::STATEMENTS, "verdict" => "allow").increment(allowed);
    }
    if denied > 0 {
        metrics::counter!(crate::metrics::STATEMENTS, "verdict" => "deny").increment(denied);
    }
    let lines = session.poll_audit();
    if !lines.is_empty() {
        shared.audit.write(lines);
        session.audit_taken();
    }
}

/// CancelRequest to the upstream with the real key, on a new connection.
async fn send_cancel(upstream: SocketAddr, (pid, key): (i32, i32)) {
    let mut m = Vec::with_capacity(16);
    m.extend_from_slice(&16u32.to_be_bytes());
    m.extend_from_slice(&pgate_core::wire::CANCEL_REQUEST_CODE.to_be_bytes());
    m.extend_from_slice(&pid.to_be_bytes());
    m.extend_from_slice(&key.to_be_bytes());
    if let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream)).await
    {
        let _ = s.write_all(&m).await;
        let _ = s.shutdown().await;
    }
}
