//! State the replicas of one deployment share, in Redis (`shared-store "redis://…"`):
//! sessions per token (`token sessions= concurrent=`) and identity budgets (`budget …`).
//! Without it each instance keeps its own records ([`crate::token_uses`],
//! [`crate::budgets::LocalBudgets`]).
//!
//! Sessions never wait on the network inline. They ask, and go on when the answer has
//! come: the requests go over a bounded channel to a thread of its own, with a tokio
//! runtime and one multiplexed Redis connection (reconnected after a failure); the answers
//! land in maps the sessions poll ([`SharedStore::token_answer`], the budget reserves).
//! Each request is one Lua script, so Redis decides it atomically:
//! - a token's record is a hash (sessions opened, sessions open, the first session's
//!   connection and client) that expires at the token's `exp` plus leeway: a use is
//!   counted only if it is within both limits; a session's end takes its place back;
//! - a budget's record is a counter per window that expires with the window: an instance
//!   takes a chunk (1/16 of the budget) at a time and leases it to its sessions; the next
//!   chunk is asked for when half of one is left, so in steady state no row waits for a
//!   round trip. Chunks are taken only from what is left: replicas never overspend a
//!   budget, and at most one chunk per replica sits unspent.
//!
//! When Redis cannot be reached (a request failed or took longer than `timeout`), the
//! store counts as down until a request succeeds again: one log line and
//! `pgate_shared_store_up` 0 on each change, `pgate_shared_store_errors_total` per failed
//! request. Down, it fails closed by default (logins of limited tokens refused with 57P03,
//! results under a budget cut with 54000); with `on-unavailable="local"` each instance
//! counts on its own meanwhile.
//!
//! What this module must never do: block a worker on Redis, admit a token use or grant a
//! budget share Redis did not grant (unless configured to fall back locally), or grow
//! without bound (at most [`MAX_PENDING`] requests in flight, then ask again later).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::budgets::{BudgetStore, Lease, LocalBudgets, Window};
use crate::token_uses::Refusal;

/// Requests in flight at most (the channel's size).
pub const MAX_PENDING: usize = 65_536;
/// Answers to token requests kept for sessions that have not polled them yet.
const MAX_ANSWERS: usize = 65_536;
/// An instance's chunk of a budget.
const CHUNK_DIVISOR: u64 = 16;
/// Records outlive what they count by this much (clocks of Redis and the replicas differ).
pub const CLOCK_MARGIN_SECS: u64 = 3_600;
/// While Redis is down, how often it is tried again.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Session ends that could not be sent, kept to send once Redis is back.
const MAX_RETRIED_ENDS: usize = 65_536;

pub const UP: &str = "pgate_shared_store_up";
pub const ERRORS: &str = "pgate_shared_store_errors_total";

/// Counts a session of a token if it is within both limits (0: none). KEYS[1] the token's
/// hash; ARGV: max sessions, max concurrent, expiry (unix s: the token's end plus
/// [`CLOCK_MARGIN_SECS`], set after the writes so that a clock ahead of pgate's cannot
/// drop a record it just wrote), connection, client.
/// Returns {verdict (0 granted, 1 used up, 2 too many open), sessions, open, first
/// connection, first client}.
const TOKEN_BEGIN: &str = r"
local s = tonumber(redis.call('HGET', KEYS[1], 'sessions') or '0')
local o = tonumber(redis.call('HGET', KEYS[1], 'open') or '0')
if s == 0 then
  redis.call('HSET', KEYS[1], 'first_conn', ARGV[4], 'first_client', ARGV[5])
end
local fc = redis.call('HGET', KEYS[1], 'first_conn') or ''
local fl = redis.call('HGET', KEYS[1], 'first_client') or ''
local maxs = tonumber(ARGV[1])
local maxc = tonumber(ARGV[2])
if maxs > 0 and s >= maxs then return {1, s, o, fc, fl} end
if maxc > 0 and o >= maxc then return {2, s, o, fc, fl} end
redis.call('HINCRBY', KEYS[1], 'sessions', 1)
redis.call('HINCRBY', KEYS[1], 'open', 1)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return {0, s + 1, o + 1, fc, fl}
";

/// A session of the token ended: its place among the open ones is free again.
const TOKEN_END: &str = r"
local o = tonumber(redis.call('HGET', KEYS[1], 'open') or '0')
if o > 0 then redis.call('HINCRBY', KEYS[1], 'open', -1) end
return 0
";

/// Takes up to ARGV[2] of the budget ARGV[1] left in KEYS[1] (this window's counter, its
/// window in its name), which expires at ARGV[3] (a window after the window's end: a
/// Redis clock ahead of pgate's must not drop it early). Returns what it took (0: spent).
const BUDGET_LEASE: &str = r"
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - spent)
if n <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return n
";

/// A question for the store (the Redis thread answers them; [`SharedStore::detached`]
/// lets another driver do it).
#[derive(Debug)]
pub enum Request {
    TokenBegin {
        ticket: u64,
        key: String,
        max_sessions: u32,
        max_concurrent: u32,
        expires_unix: u64,
        conn: String,
        client: String,
    },
    Lease {
        record: String,
        key: String,
        window: Window,
        limit: u64,
        want: u64,
    },
}

/// What the store said about a session of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAnswer {
    Granted,
    Refused(Refusal),
    /// Redis could not be asked.
    Unavailable,
}

/// An instance's share of one budget record.
#[derive(Debug, Default)]
struct Reserve {
    window: u64,
    left: u64,
    /// Of what Redis granted, what sessions hold now (only this much can come back here).
    lent: u64,
    /// A chunk is being asked for.
    asking: bool,
    /// Redis has nothing left in this window.
    spent: bool,
}

/// Answers not yet polled (with the token's key, to give a grant back), and tickets whose
/// sessions went away before the answer: one lock, so an answer and an abandon cannot
/// pass each other.
#[derive(Debug, Default)]
struct Tickets {
    answers: HashMap<u64, (TokenAnswer, String)>,
    abandoned: std::collections::HashSet<u64>,
}

/// The shared store: cheap to clone (an `Arc`), shared by every worker.
#[derive(Debug)]
pub struct SharedStore {
    tx: tokio::sync::mpsc::Sender<Request>,
    /// Session ends (one per granted session at most, so bounded by the sessions).
    ends: tokio::sync::mpsc::UnboundedSender<String>,
    prefix: String,
    url: String,
    fall_back_local: bool,
    up: AtomicBool,
    tickets: AtomicU64,
    tokens: Mutex<Tickets>,
    reserves: Mutex<HashMap<String, Reserve>>,
    /// Budgets while Redis is down, with `on-unavailable="local"`.
    local: LocalBudgets,
}

impl SharedStore {
    fn new(cfg: &crate::config::SharedStore) -> (Arc<SharedStore>, Queue) {
        let (tx, rx) = tokio::sync::mpsc::channel(MAX_PENDING);
        let (ends, ends_rx) = tokio::sync::mpsc::unbounded_channel();
        let store = Arc::new(SharedStore {
            tx,
            ends,
            prefix: cfg.prefix.clone(),
            url: cfg.url.clone(),
            fall_back_local: cfg.fall_back_local,
            up: AtomicBool::new(true),
            tickets: AtomicU64::new(1),
            tokens: Mutex::default(),
            reserves: Mutex::new(HashMap::new()),
            local: LocalBudgets::default(),
        });
        (store, Queue(rx, ends_rx))
    }

    /// The store without its Redis thread: the caller takes the requests from the queue
    /// and answers them ([`Queue::answer`]) — the seam simulation tests drive.
    pub fn detached(cfg: &crate::config::SharedStore) -> (Arc<SharedStore>, Queue) {
        Self::new(cfg)
    }

    /// Starts the store's thread; Redis itself is reached on the first request (a store
    /// down at start is one that is down: see the module docs).
    pub fn start(cfg: &crate::config::SharedStore) -> Result<Arc<SharedStore>, String> {
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| format!("shared-store: cannot use `{}`: {e}", cfg.url))?;
        let (store, Queue(rx, ends_rx)) = Self::new(cfg);
        metrics::gauge!(UP).set(1.0);
        let inner = store.clone();
        let timeout = cfg.timeout;
        std::thread::Builder::new()
            .name("pgate-store".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(serve(inner, rx, ends_rx, client, timeout)),
                    Err(e) => eprintln!("pgate: shared store: cannot start its runtime: {e}"),
                }
            })
            .map_err(|e| format!("shared-store: cannot start its thread: {e}"))?;
        Ok(store)
    }

    /// Whether, with Redis down, this instance counts on its own.
    pub fn falls_back_local(&self) -> bool {
        self.fall_back_local
    }

    /// Whether the last request reached Redis.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn mark(&self, up: bool, why: &str) {
        if !up {
            metrics::counter!(ERRORS).increment(1);
        }
        if self.up.swap(up, Ordering::Relaxed) != up {
            metrics::gauge!(UP).set(if up { 1.0 } else { 0.0 });
            if up {
                eprintln!("pgate: shared store {} is reachable again", self.url);
            } else {
                eprintln!(
                    "pgate: shared store {} is unreachable ({why}); {}",
                    self.url,
                    if self.fall_back_local {
                        "counting token uses and budgets on this instance alone until it is back"
                    } else {
                        "refusing limited tokens and budgeted results until it is back"
                    }
                );
            }
        }
    }

    fn token_key(&self, issuer: &str, jti: &str) -> String {
        // Hashed: a key of bounded length whatever the issuer and `jti`.
        let h = blake3::hash(format!("{issuer}\u{0}{jti}").as_bytes());
        format!("{}:token:{}", self.prefix, h.to_hex())
    }

    /// Asks for a session of the token `(issuer, jti)`: the ticket to poll with
    /// [`SharedStore::token_answer`], or `None` when the request cannot be queued now.
    pub fn token_begin(
        &self,
        issuer: &str,
        jti: &str,
        limit: pgate_core::table::model::TokenUse,
        expires_unix: u64,
        conn: &str,
        client: &str,
    ) -> Option<u64> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        self.tx
            .try_send(Request::TokenBegin {
                ticket,
                key: self.token_key(issuer, jti),
                max_sessions: limit.max_sessions.unwrap_or(0),
                max_concurrent: limit.max_concurrent.unwrap_or(0),
                expires_unix,
                conn: conn.to_string(),
                client: client.to_string(),
            })
            .ok()
            .map(|()| ticket)
    }

    /// The answer to `ticket`, once it has come (taken: asked once).
    pub fn token_answer(&self, ticket: u64) -> Option<TokenAnswer> {
        self.tokens
            .lock()
            .ok()?
            .answers
            .remove(&ticket)
            .map(|a| a.0)
    }

    /// A session went away before its answer: forgets the ticket, and gives back a use
    /// granted for it (now, or when the answer comes).
    pub fn token_abandon(&self, ticket: u64) {
        let Ok(mut t) = self.tokens.lock() else {
            return;
        };
        match t.answers.remove(&ticket) {
            Some((TokenAnswer::Granted, key)) => {
                let _ = self.ends.send(key);
            }
            Some(_) => {}
            None => {
                t.abandoned.insert(ticket);
            }
        }
    }

    /// A session of the token ended.
    pub fn token_end(&self, issuer: &str, jti: &str) {
        let _ = self.ends.send(self.token_key(issuer, jti));
    }

    fn answer_token(&self, ticket: u64, key: &str, a: TokenAnswer) {
        let Ok(mut t) = self.tokens.lock() else {
            return;
        };
        if t.abandoned.remove(&ticket) {
            if a == TokenAnswer::Granted {
                let _ = self.ends.send(key.to_string());
            }
            return;
        }
        if t.answers.len() >= MAX_ANSWERS {
            // Answers nobody polled (their sessions gone without abandoning): grants are
            // given back before they are dropped.
            for (_, (a, k)) in t.answers.drain() {
                if a == TokenAnswer::Granted {
                    let _ = self.ends.send(k);
                }
            }
        }
        if t.abandoned.len() >= MAX_ANSWERS {
            t.abandoned.clear();
        }
        t.answers.insert(ticket, (a, key.to_string()));
    }

    fn answer_lease(&self, record: &str, window: Window, got: Option<u64>) {
        let Ok(mut reserves) = self.reserves.lock() else {
            return;
        };
        let Some(r) = reserves.get_mut(record) else {
            return;
        };
        r.asking = false;
        if r.window != window.number {
            return;
        }
        match got {
            Some(0) => r.spent = true,
            Some(n) => r.left += n,
            None => {}
        }
    }
}

impl BudgetStore for SharedStore {
    fn lease(&self, record: &str, window: Window, limit: u64, want: u64, now_unix: u64) -> Lease {
        if !self.is_up() && self.fall_back_local {
            return self.local.lease(record, window, limit, want, now_unix);
        }
        let Ok(mut reserves) = self.reserves.lock() else {
            return Lease::Unavailable;
        };
        if !reserves.contains_key(record) && reserves.len() >= crate::budgets::MAX_RECORDS {
            reserves.retain(|_, r| r.asking || r.left > 0);
            if reserves.len() >= crate::budgets::MAX_RECORDS {
                return Lease::Unavailable;
            }
        }
        let r = reserves.entry(record.to_string()).or_default();
        if r.window < window.number {
            *r = Reserve {
                window: window.number,
                ..Reserve::default()
            };
        } else if r.window > window.number {
            return Lease::Spent;
        }
        let chunk = (limit / CHUNK_DIVISOR).max(1);
        let granted = want.min(r.left);
        r.left -= granted;
        r.lent += granted;
        // Ask for the next chunk before this one runs out.
        let ask = !r.asking && !r.spent && (r.left < chunk.div_ceil(2) || granted < want);
        if ask {
            let sent = self.tx.try_send(Request::Lease {
                record: record.to_string(),
                key: format!(
                    "{}:budget:{}:{}",
                    self.prefix,
                    window.number,
                    blake3::hash(record.as_bytes()).to_hex()
                ),
                window,
                limit,
                want: chunk.max(want - granted),
            });
            r.asking = sent.is_ok();
        }
        if granted > 0 {
            return Lease::Granted(granted);
        }
        if r.spent {
            Lease::Spent
        } else if self.is_up() && r.asking {
            Lease::Pending
        } else {
            // Down (the request just sent is a probe: its success brings the store back),
            // or the channel is full.
            Lease::Unavailable
        }
    }

    fn give_back(&self, record: &str, window: Window, n: u64) {
        // Back here only what Redis granted and sessions hold (never more than Redis gave
        // out); the rest came from the local records while Redis was down.
        let mut rest = n;
        if let Ok(mut reserves) = self.reserves.lock()
            && let Some(r) = reserves.get_mut(record)
            && r.window == window.number
        {
            let back = n.min(r.lent);
            r.lent -= back;
            r.left += back;
            rest -= back;
        }
        if rest > 0 {
            self.local.give_back(record, window, rest);
        }
    }
}

/// The requests of a [`SharedStore::detached`] store, and its session ends.
#[derive(Debug)]
pub struct Queue(
    tokio::sync::mpsc::Receiver<Request>,
    tokio::sync::mpsc::UnboundedReceiver<String>,
);

/// How a detached store's driver answers a request.
#[derive(Debug, Clone)]
pub enum Answer {
    Token(TokenAnswer),
    /// A budget share (0: spent).
    Lease(u64),
    /// Redis could not be asked.
    Failed,
}

impl Queue {
    pub fn try_next(&mut self) -> Option<Request> {
        self.0.try_recv().ok()
    }

    /// The next session end to send (a token's key).
    pub fn try_next_end(&mut self) -> Option<String> {
        self.1.try_recv().ok()
    }

    /// Answers `req` as Redis would have.
    pub fn answer(store: &SharedStore, req: Request, answer: Answer) {
        match (req, answer) {
            (req, Answer::Failed) => {
                store.mark(false, "failed by the driver");
                fail(store, req);
            }
            (Request::TokenBegin { ticket, key, .. }, Answer::Token(a)) => {
                store.mark(true, "");
                store.answer_token(ticket, &key, a);
            }
            (Request::Lease { record, window, .. }, Answer::Lease(n)) => {
                store.mark(true, "");
                store.answer_lease(&record, window, Some(n));
            }
            _ => {}
        }
    }
}

/// The store's thread: requests one at a time (one round trip each), session ends as they
/// come (kept and sent again while Redis is down), and, while it is down, a PING every
/// [`PROBE_INTERVAL`] — requests are then refused at once rather than each waiting for a
/// connection that is not coming.
async fn serve(
    store: Arc<SharedStore>,
    mut rx: tokio::sync::mpsc::Receiver<Request>,
    mut ends: tokio::sync::mpsc::UnboundedReceiver<String>,
    client: redis::Client,
    timeout: Duration,
) {
    let scripts = (
        redis::Script::new(TOKEN_BEGIN),
        redis::Script::new(TOKEN_END),
        redis::Script::new(BUDGET_LEASE),
    );
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut unsent: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut probe = tokio::time::interval(PROBE_INTERVAL);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let job = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => Job::Request(r),
                None => return,
            },
            Some(key) = ends.recv() => Job::End(key),
            _ = probe.tick() => Job::Probe,
        };
        if !store.is_up() && !matches!(job, Job::Probe) {
            match job {
                Job::Request(r) => fail(&store, r),
                Job::End(key) => keep(&mut unsent, key),
                Job::Probe => {}
            }
            continue;
        }
        if matches!(job, Job::Probe) && store.is_up() && unsent.is_empty() {
            continue;
        }
        let c = match &conn {
            Some(c) => c.clone(),
            None => {
                match tokio::time::timeout(timeout, client.get_multiplexed_async_connection()).await
                {
                    Ok(Ok(c)) => {
                        conn = Some(c.clone());
                        c
                    }
                    Ok(Err(e)) => {
                        store.mark(false, &e.to_string());
                        drop_job(&store, job, &mut unsent);
                        continue;
                    }
                    Err(_) => {
                        store.mark(false, "connecting timed out");
                        drop_job(&store, job, &mut unsent);
                        continue;
                    }
                }
            }
        };
        let done = tokio::time::timeout(timeout, run(&store, c.clone(), &scripts, &job)).await;
        match done {
            Ok(Ok(())) => {
                store.mark(true, "");
                // Back: the ends that could not be sent go now.
                while let Some(key) = unsent.pop_front() {
                    let r = tokio::time::timeout(
                        timeout,
                        run(&store, c.clone(), &scripts, &Job::End(key.clone())),
                    )
                    .await;
                    if !matches!(r, Ok(Ok(()))) {
                        unsent.push_front(key);
                        break;
                    }
                }
            }
            Ok(Err(e)) => {
                store.mark(false, &e.to_string());
                drop_job(&store, job, &mut unsent);
                // A failed request drops the connection: the next one connects anew.
                conn = None;
            }
            Err(_) => {
                store.mark(false, "a request timed out");
                drop_job(&store, job, &mut unsent);
                conn = None;
            }
        }
    }
}

/// What the store's thread does next.
enum Job {
    Request(Request),
    End(String),
    Probe,
}

fn keep(unsent: &mut std::collections::VecDeque<String>, key: String) {
    if unsent.len() >= MAX_RETRIED_ENDS {
        // Bounded: the oldest end is lost (its token's record expires with the token).
        unsent.pop_front();
    }
    unsent.push_back(key);
}

fn drop_job(store: &SharedStore, job: Job, unsent: &mut std::collections::VecDeque<String>) {
    match job {
        Job::Request(r) => fail(store, r),
        Job::End(key) => keep(unsent, key),
        Job::Probe => {}
    }
}

/// A request Redis did not answer: sessions asking are told so.
fn fail(store: &SharedStore, req: Request) {
    match req {
        Request::TokenBegin { ticket, key, .. } => {
            store.answer_token(ticket, &key, TokenAnswer::Unavailable)
        }
        Request::Lease { record, window, .. } => store.answer_lease(&record, window, None),
    }
}

async fn run(
    store: &SharedStore,
    mut c: redis::aio::MultiplexedConnection,
    scripts: &(redis::Script, redis::Script, redis::Script),
    job: &Job,
) -> redis::RedisResult<()> {
    let req = match job {
        Job::Probe => {
            let _: String = redis::cmd("PING").query_async(&mut c).await?;
            return Ok(());
        }
        Job::End(key) => {
            let _: i64 = scripts.1.key(key).invoke_async(&mut c).await?;
            return Ok(());
        }
        Job::Request(r) => r,
    };
    match req {
        Request::TokenBegin {
            ticket,
            key,
            max_sessions,
            max_concurrent,
            expires_unix,
            conn,
            client,
        } => {
            let (verdict, sessions, open, first_conn, first_client): (
                u8,
                u32,
                u32,
                String,
                String,
            ) = scripts
                .0
                .key(key)
                .arg(max_sessions)
                .arg(max_concurrent)
                .arg(expires_unix.saturating_add(CLOCK_MARGIN_SECS))
                .arg(conn)
                .arg(client)
                .invoke_async(&mut c)
                .await?;
            let answer = match verdict {
                0 => TokenAnswer::Granted,
                1 => TokenAnswer::Refused(Refusal::Used {
                    sessions,
                    max: *max_sessions,
                    first_conn,
                    first_client,
                }),
                _ => TokenAnswer::Refused(Refusal::Concurrent {
                    open,
                    max: *max_concurrent,
                    first_conn,
                    first_client,
                }),
            };
            store.answer_token(*ticket, key, answer);
        }
        Request::Lease {
            record,
            key,
            window,
            limit,
            want,
        } => {
            let got: u64 = scripts
                .2
                .key(key)
                .arg(limit)
                .arg(want)
                .arg(window.ends_unix().saturating_add(u64::from(window.secs)))
                .invoke_async(&mut c)
                .await?;
            store.answer_lease(record, *window, Some(got));
        }
    }
    Ok(())
}
