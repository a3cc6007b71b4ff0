//! Work a ring worker hands off because it waits on a third party and is rare: opening an
//! upstream connection (TCP, SSLRequest, TLS handshake), a CancelRequest, a catalog
//! lookup for the masks. One helper thread per worker runs them on a current-thread tokio
//! runtime (the same code the epoll driver awaits inline); each answer comes back through
//! a queue and the worker's eventfd, so the worker's loop never blocks on them.
//!
//! What this module must never do: touch a session (answers carry the connection's slot
//! and generation; the worker checks both before it applies one).

use std::fs::File;
use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::super::Shared;
use super::super::conn::{cancel_and_wait, connect_upstream, send_cancel};
use super::super::stream::Stream;

/// An upstream connection handed to the ring: the socket (non-blocking) and, with upstream
/// TLS, the established client side of it.
pub(super) type Upstream = (TcpStream, Option<rustls::ClientConnection>);

pub(super) enum Job {
    Connect,
    /// A client's CancelRequest, with the real key: nothing comes back.
    Cancel((i32, i32)),
    /// Cancel the session's own upstream work and wait until the database took it.
    CancelAndWait(Option<(i32, i32)>),
    Catalog(Option<crate::runtime::lookup::CatalogJob>),
}

pub(super) enum Answer {
    Connected(io::Result<Box<Upstream>>),
    Cancelled(bool),
    Catalog(Result<crate::session::CatalogAnswer, String>),
}

/// Which connection an answer is for: its slot and the slot's generation.
pub(super) type For = (u32, u16);

pub(super) struct Side {
    jobs: mpsc::UnboundedSender<(For, Job)>,
    answers: Arc<Mutex<Vec<(For, Answer)>>>,
}

impl Side {
    /// Starts the helper thread; `wake` is the worker's eventfd.
    pub(super) fn start(name: &str, shared: Shared, wake: Arc<File>) -> io::Result<Side> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(For, Job)>();
        let answers: Arc<Mutex<Vec<(For, Answer)>>> = Arc::default();
        let out = answers.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    let shared = std::rc::Rc::new(shared);
                    while let Some((whom, job)) = rx.recv().await {
                        let shared = shared.clone();
                        let out = out.clone();
                        let wake = wake.clone();
                        tokio::task::spawn_local(async move {
                            let answer = match job {
                                Job::Connect => {
                                    Answer::Connected(connect(&shared).await.map(Box::new))
                                }
                                Job::Cancel(real) => {
                                    send_cancel(shared.upstream, real).await;
                                    return;
                                }
                                Job::CancelAndWait(real) => Answer::Cancelled(match real {
                                    Some(real) => cancel_and_wait(shared.upstream, real).await,
                                    None => false,
                                }),
                                Job::Catalog(request) => Answer::Catalog(match request {
                                    Some(job) => {
                                        super::super::lookup::catalog_for(&shared, &job).await
                                    }
                                    None => Err("no database".to_string()),
                                }),
                            };
                            if let Ok(mut q) = out.lock() {
                                q.push((whom, answer));
                            }
                            let _ = (&*wake).write(&1u64.to_ne_bytes());
                        });
                    }
                });
            })?;
        Ok(Side { jobs: tx, answers })
    }

    pub(super) fn run(&self, whom: For, job: Job) {
        let _ = self.jobs.send((whom, job));
    }

    /// The answers that came back, into `into` (emptied first).
    pub(super) fn take(&self, into: &mut Vec<(For, Answer)>) {
        into.clear();
        if let Ok(mut q) = self.answers.lock() {
            into.append(&mut q);
        }
    }
}

/// The epoll driver's connect, its socket then given to the ring.
async fn connect(shared: &Shared) -> io::Result<Upstream> {
    let s = tokio::time::timeout(Duration::from_secs(10), connect_upstream(shared))
        .await
        .map_err(|_| io::Error::other("connect timed out"))??;
    match s {
        Stream::Plain(tcp) => Ok((tcp.into_std()?, None)),
        Stream::UpstreamTls(tls) => {
            let (tcp, conn) = tls.into_inner();
            Ok((tcp.into_std()?, Some(conn)))
        }
        _ => Err(io::Error::other("unexpected stream kind")),
    }
}
