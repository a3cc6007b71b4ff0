//! The worker's idle upstream connections, kept for reuse (see [`crate::reuse`]): per
//! StartupMessage, most recently parked first, at most `max_idle` per key, each at most
//! `idle_timeout` old. One pool per worker thread: a connection never moves between
//! workers, so the pool needs no lock.
//!
//! What this module must never do: hand out a connection that was not reset, that has
//! been idle too long, or that the server has closed or written to while it sat idle (a
//! backend terminated by `idle_session_timeout` or `pg_terminate_backend` sends a FATAL,
//! then closes).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::stream::Stream;
use crate::reuse::{Parked, Reset, ResetStep};

/// How long a reset may take before the connection is closed instead.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// The operator's pool settings (`upstream { pool … }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Idle connections kept per StartupMessage and worker; 0 turns reuse off.
    pub max_idle: usize,
    pub idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle: 16,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What a driver parks: its upstream connection, whatever the runtime.
pub(super) trait Parkable {
    /// Nothing to read (not even EOF), checked without waiting.
    fn at_rest(&mut self) -> bool;
    /// Closes a connection that will not be used (Terminate, then FIN), without waiting.
    fn discard(self);
}

struct Idle<S> {
    stream: S,
    parked: Parked,
    since: Instant,
}

pub(super) struct Pool<S> {
    cfg: PoolConfig,
    idle: HashMap<Vec<u8>, Vec<Idle<S>>>,
}

impl<S: Parkable> Pool<S> {
    pub(super) fn new(cfg: PoolConfig) -> Pool<S> {
        Pool {
            cfg,
            idle: HashMap::new(),
        }
    }

    pub(super) fn enabled(&self) -> bool {
        self.cfg.max_idle > 0
    }

    /// A live, reset connection opened with `startup`, if one is parked.
    pub(super) fn take(&mut self, startup: &[u8], now: Instant) -> Option<(S, Parked)> {
        let list = self.idle.get_mut(startup)?;
        let mut found = None;
        while let Some(mut c) = list.pop() {
            if now.saturating_duration_since(c.since) < self.cfg.idle_timeout && c.stream.at_rest()
            {
                found = Some((c.stream, c.parked));
                break;
            }
            discarded(c.stream);
        }
        if list.is_empty() {
            self.idle.remove(startup);
        }
        found
    }

    /// Parks a reset connection; closes it instead when its key's list is full.
    pub(super) fn put(&mut self, stream: S, parked: Parked, now: Instant) {
        self.sweep(now);
        let list = self.idle.entry(parked.startup.clone()).or_default();
        if list.len() >= self.cfg.max_idle {
            discarded(stream);
            return;
        }
        list.push(Idle {
            stream,
            parked,
            since: now,
        });
    }

    /// Closes the connections idle longer than the timeout.
    pub(super) fn sweep(&mut self, now: Instant) {
        let timeout = self.cfg.idle_timeout;
        self.idle.retain(|_, list| {
            let (keep, old): (Vec<Idle<S>>, Vec<Idle<S>>) = std::mem::take(list)
                .into_iter()
                .partition(|c| now.saturating_duration_since(c.since) < timeout);
            old.into_iter().for_each(|c| discarded(c.stream));
            *list = keep;
            !list.is_empty()
        });
    }

    /// Every parked connection, for closing at the drain.
    pub(super) fn take_all(&mut self) -> Vec<S> {
        self.idle
            .drain()
            .flat_map(|(_, list)| list.into_iter().map(|c| c.stream))
            .collect()
    }

    pub(super) fn idle_timeout(&self) -> Duration {
        self.cfg.idle_timeout
    }

    /// When the oldest parked connection's idle timeout ends, if one is parked.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.idle
            .values()
            .flat_map(|l| l.iter().map(|c| c.since + self.cfg.idle_timeout))
            .min()
    }
}

fn discarded<S: Parkable>(stream: S) {
    metrics::counter!(crate::metrics::UPSTREAM_DISCARDED).increment(1);
    stream.discard();
}

impl Parkable for Stream {
    fn at_rest(&mut self) -> bool {
        at_rest(self)
    }
    /// On the side: the worker's loop goes on.
    fn discard(self) {
        tokio::task::spawn_local(close(self));
    }
}

/// Terminate, then FIN, within a second.
pub(super) async fn close(mut stream: Stream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&pgate_core::client::TERMINATE).await?;
        stream.shutdown().await
    })
    .await;
}

/// Whether a parked connection is still at rest: nothing to read (not even EOF). Polled
/// once with a no-op waker, so it never waits.
fn at_rest(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let mut rb = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(stream).poll_read(&mut cx, &mut rb), Poll::Pending)
}

/// Resets a connection whose session ended idle: `DISCARD ALL`, answers read until
/// ReadyForQuery. `unread` holds upstream bytes the session did not consume.
pub(super) async fn reset(
    stream: &mut Stream,
    parked: &mut Parked,
    unread: &[u8],
    max_message_bytes: u32,
) -> io::Result<()> {
    let work = async {
        let mut out = Vec::with_capacity(32);
        let mut r = Reset::start(&mut out);
        stream.write_all(&out).await?;
        let mut buf = unread.to_vec();
        loop {
            let (n, step) = r.handle(&buf, parked, max_message_bytes);
            buf.drain(..n);
            match step {
                ResetStep::Done if buf.is_empty() => return Ok(()),
                ResetStep::Done => {
                    return Err(io::Error::other("the database sent more after the reset"));
                }
                ResetStep::Failed(why) => return Err(io::Error::other(why)),
                ResetStep::Pending => {}
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::other("the database closed the connection"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(RESET_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::other("the reset timed out"))?
}
