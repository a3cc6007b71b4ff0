//! The thread-per-core driver: one worker thread per core, each with its own current-thread
//! tokio runtime and its own `SO_REUSEPORT` listener; a connection never moves between
//! workers. The driver only moves bytes between sockets and the sans-IO [`Session`] and
//! carries out its [`crate::session::Action`]s — no protocol or policy logic lives here,
//! so it can be swapped for an io_uring driver without touching enforcement.
//!
//! Shared state is read-only and swapped atomically: the decision table (see
//! [`crate::reload`]) and the identity keys. A [`Control`] value tells every connection of
//! a table swap and of the drain; connections then call the session's `handle_table` /
//! `handle_drain`. What this module must never do: decide anything, or hold a connection
//! past the drain deadline.
//!
//! [`Session`]: crate::session::Session

mod bufs;
mod cancel;
mod conn;
pub mod lookup;
mod pool;
mod stream;
mod uring;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use pgate_core::table::TableFile;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use cancel::CancelRegistry;
pub use pool::PoolConfig;

use crate::audit::AuditSink;
use crate::session::{Authenticator, Clock, ConnId, SessionConfig};

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
    /// Identity-scoped rate buckets, shared by every session on every worker.
    pub identity_buckets: Arc<crate::buckets::IdentityBuckets>,
    /// Sessions per token (`token sessions=`), shared by every worker.
    pub token_uses: Arc<crate::token_uses::TokenUses>,
    /// Identity budgets (`budget …`): this instance's records or a shared store.
    pub budget_store: Arc<dyn crate::budgets::BudgetStore>,
    /// The masks' catalogs, per database (`lookup`).
    pub catalogs: Arc<lookup::Catalogs>,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub connections: Arc<AtomicU64>,
    pub per_address: Arc<crate::addresses::AddressCounts>,
    /// Load balancers whose connections begin with a PROXY protocol v2 header naming the
    /// client (`proxy-protocol`); their own address is not counted per address.
    pub proxy_trusted: Vec<ipnet::IpNet>,
    /// Plaintext token authentication is allowed for loopback clients only.
    pub allow_plaintext_loopback: bool,
    pub control: watch::Receiver<Control>,
    /// This process's id in the audit log ([`ConnId::instance`]).
    pub instance: u64,
    /// Connections accepted, across workers: the next [`ConnId::seq`].
    pub conn_seq: Arc<AtomicU64>,
    /// Upstream connection reuse (one pool per worker).
    pub pool: PoolConfig,
    /// The ring workers' eventfds: [`ControlHandle`] wakes them at a swap or the drain.
    pub wakers: Arc<Wakers>,
}

/// The eventfds of workers that sleep in the kernel (the io_uring driver's).
#[derive(Default)]
pub struct Wakers {
    fds: Mutex<Vec<Arc<std::fs::File>>>,
}

impl Wakers {
    fn add(&self, fd: Arc<std::fs::File>) {
        if let Ok(mut v) = self.fds.lock() {
            v.push(fd);
        }
    }
    fn wake_all(&self) {
        use std::io::Write;
        if let Ok(v) = self.fds.lock() {
            for fd in v.iter() {
                let _ = (&**fd).write(&1u64.to_ne_bytes());
            }
        }
    }
}

/// Which driver runs the workers (`--runtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// io_uring where the kernel and the process's seccomp profile allow it, else epoll.
    Auto,
    Uring,
    Epoll,
}

impl Runtime {
    /// The driver to run: `auto` probes io_uring and says in one line why it falls back.
    pub fn resolve(self) -> Result<Runtime, String> {
        match self {
            Runtime::Epoll => Ok(Runtime::Epoll),
            Runtime::Uring => uring::probe()
                .map(|()| Runtime::Uring)
                .map_err(|e| format!("--runtime uring: {e}")),
            Runtime::Auto => Ok(match uring::probe() {
                Ok(()) => Runtime::Uring,
                Err(e) => {
                    eprintln!("pgate: io_uring unavailable ({e}); running the epoll driver");
                    Runtime::Epoll
                }
            }),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Auto => "auto",
            Runtime::Uring => "io_uring",
            Runtime::Epoll => "epoll",
        }
    }
}

/// What every connection must hear about: table swaps and the drain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Control {
    /// Bumped at every table swap.
    pub table_gen: u64,
    /// Set once, at SIGTERM / SIGINT / standard input's end: stop accepting; sessions end
    /// at this moment at the latest.
    pub drain_deadline: Option<Instant>,
}

/// The process's side of [`Control`].
pub struct ControlHandle {
    tx: watch::Sender<Control>,
    wakers: Arc<Wakers>,
}

impl ControlHandle {
    pub fn new() -> (ControlHandle, watch::Receiver<Control>) {
        let (tx, rx) = watch::channel(Control::default());
        let wakers = Arc::default();
        (ControlHandle { tx, wakers }, rx)
    }
    /// For [`Shared::wakers`].
    pub fn wakers(&self) -> Arc<Wakers> {
        self.wakers.clone()
    }
    /// A new table is in `Shared::table`: sessions re-check themselves against it.
    pub fn table_swapped(&self) {
        self.tx.send_modify(|c| c.table_gen += 1);
        self.wakers.wake_all();
    }
    /// Stop accepting; sessions may go on until `timeout` from now, then get 57P01.
    pub fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.tx.send_modify(|c| {
            c.drain_deadline.get_or_insert(deadline);
        });
        self.wakers.wake_all();
    }
}

pub(crate) fn now() -> (Instant, Clock) {
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

/// The monotonic microseconds of [`Clock`] for an `Instant`, and back.
fn mono_us(i: Instant) -> u64 {
    let start = *START.get_or_init(Instant::now);
    i.saturating_duration_since(start).as_micros() as u64
}
fn instant_of(mono_us: u64) -> Instant {
    let start = *START.get_or_init(Instant::now);
    start + Duration::from_micros(mono_us)
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Runs `task` on a thread of its own with a current-thread tokio runtime (signals, the
/// file watch): work that must not share a worker's loop. The error says why it could not
/// start.
pub fn spawn_on_own_runtime<F, Fut>(name: &str, task: F) -> io::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || rt.block_on(task()))?;
    Ok(())
}

/// Runs `fut` to its end on a current-thread runtime of its own, here (before the
/// workers start). The error says why the runtime could not start.
pub fn block_on_own_runtime<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(rt.block_on(fut))
}

/// Binds one `SO_REUSEPORT` listener per worker (so the kernel spreads connections) and runs
/// the workers until the drain has ended. Returns early only on a startup error.
pub fn run(listen: SocketAddr, workers: usize, runtime: Runtime, shared: Shared) -> io::Result<()> {
    let _ = now();
    let mut listeners = Vec::with_capacity(workers);
    for _ in 0..workers {
        listeners.push(bind_reuseport(listen)?);
    }
    let mut handles = Vec::with_capacity(workers);
    for (i, l) in listeners.into_iter().enumerate() {
        let mut shared = shared.clone();
        // Each worker writes its audit lines through a slot of its own.
        shared.audit = shared.audit.for_slot(i + 1);
        handles.push(
            std::thread::Builder::new()
                .name(format!("pgate-worker-{i}"))
                .spawn(move || match runtime {
                    Runtime::Uring => uring::worker(l, shared),
                    _ => worker(l, shared),
                })?,
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
    s.listen(4096)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The first answer to a connection over a limit: PostgreSQL's own words for it
/// (53300), sent without reading anything, then the socket closes.
fn refuse(shared: &Shared, stream: &tokio::net::TcpStream, peer: SocketAddr, msg: &str) {
    let _ = stream.try_write(&refusal(shared, peer, msg));
}

/// The bytes of a refusal (53300), its audit line written.
fn refusal(shared: &Shared, peer: SocketAddr, msg: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(96);
    pgate_core::wire::write_error(&mut m, pgate_core::wire::Severity::Fatal, "53300", msg);
    // Refused before a session exists: the line is written here, with its own id.
    let id = ConnId {
        instance: shared.instance,
        seq: shared.conn_seq.fetch_add(1, Ordering::Relaxed),
    };
    let line = serde_json::json!({
        "ts_ms": now().1.unix_ms,
        "event": "connection-refused",
        "conn": id.to_string(),
        "client": peer.to_string(),
        "reason": format!("FATAL 53300: {msg}"),
    });
    shared.audit.write(&format!("{line}\n"));
    m
}

fn worker(listener: std::net::TcpListener, shared: Shared) -> io::Result<()> {
    crate::alloc_count::count_this_thread();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::from_std(listener)?;
        let live_here = Rc::new(Cell::new(0usize));
        let pool = Rc::new(RefCell::new(pool::Pool::new(shared.pool)));
        let mut control = shared.control.clone();
        let deadline = loop {
            if let Some(d) = control.borrow_and_update().drain_deadline {
                break d;
            }
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = control.changed() => continue,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("pgate: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let id = match admit(&shared, peer) {
                Ok(id) => id,
                Err(msg) => {
                    refuse(&shared, &stream, peer, msg);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let live_here = live_here.clone();
            live_here.set(live_here.get() + 1);
            let pool = pool.clone();
            tokio::task::spawn_local(async move {
                if let Err(e) = conn::connection(stream, peer, id, &shared, &pool).await {
                    eprintln!("pgate: connection {id} from {peer}: {e}");
                }
                release(&shared, peer);
                live_here.set(live_here.get() - 1);
            });
        };
        // Draining: no new connections; wait for this worker's sessions (each ends by the
        // deadline on its own), with a short grace for their final writes.
        drop(listener);
        let hard_stop = deadline + Duration::from_secs(2);
        while live_here.get() > 0 && Instant::now() < hard_stop {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let parked = pool.borrow_mut().take_all();
        for s in parked {
            pool::close(s).await;
        }
        Ok(())
    })
}

/// A new client connection under the limits: counted, with its id; or the refusal's words.
fn admit(shared: &Shared, peer: SocketAddr) -> Result<ConnId, &'static str> {
    let live = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
    if live as usize > shared.max_connections {
        shared.connections.fetch_sub(1, Ordering::Relaxed);
        return Err("sorry, too many clients already (pgate max-connections)");
    }
    if !address_admit(shared, peer.ip()) {
        shared.connections.fetch_sub(1, Ordering::Relaxed);
        return Err(
            "sorry, too many connections from this address (pgate max-connections-per-address)",
        );
    }
    metrics::counter!(crate::metrics::CONNECTIONS).increment(1);
    metrics::gauge!(crate::metrics::ACTIVE).set(live as f64);
    Ok(ConnId {
        instance: shared.instance,
        seq: shared.conn_seq.fetch_add(1, Ordering::Relaxed),
    })
}

/// An admitted connection ended.
fn release(shared: &Shared, peer: SocketAddr) {
    address_release(shared, peer.ip());
    let live = shared.connections.fetch_sub(1, Ordering::Relaxed) - 1;
    metrics::gauge!(crate::metrics::ACTIVE).set(live as f64);
}

/// Whether `ip` is a trusted load balancer: its connections start with a PROXY header and
/// are counted per address by the client the header names (in the session).
pub(crate) fn proxied(shared: &Shared, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    shared.proxy_trusted.iter().any(|n| n.contains(&ip))
}

fn address_admit(shared: &Shared, ip: IpAddr) -> bool {
    proxied(shared, ip)
        || shared
            .per_address
            .admit(ip.to_canonical(), shared.max_connections_per_address)
}

fn address_release(shared: &Shared, ip: IpAddr) {
    if !proxied(shared, ip) {
        shared.per_address.release(ip.to_canonical());
    }
}
