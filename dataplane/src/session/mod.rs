//! The sans-IO session core: one state machine per client connection.
//!
//! The driver feeds it client bytes ([`Session::handle_client`]), upstream bytes
//! ([`Session::handle_upstream`]), table swaps ([`Session::handle_table`]), the drain
//! ([`Session::handle_drain`]) and time ([`Session::handle_timeout`]), and drains what it
//! produced: bytes for the client ([`Session::poll_client`]), bytes for the upstream
//! ([`Session::poll_upstream`]), actions ([`Session::poll_action`]), audit lines
//! ([`Session::poll_audit`]) and its next deadline ([`Session::poll_timeout`]). It never
//! touches a socket, a clock, a file or a random source: time comes in as a [`Clock`],
//! randomness as [`Entropy`], so every path is testable by feeding bytes (`tests/sim.rs`,
//! `tests/lifecycle_sim.rs`).
//!
//! This file holds the state machine, the client's messages and deciding; the rest is
//! split by concern: `answers` (the database's answers), `batch` (units in flight and the
//! final responses they bring), `startup` (the client's login), `upstream` (pgate's login to
//! the database), `objects` (prepared statements, portals, cursors, channels, recorded as
//! the server confirms them), `refusal` (refusals as the database's own errors), `results`
//! (caps and rates on the result stream), `decided` (stored statement texts), `audit` (lines),
//! `deny` (the deny-message renderer), `scram` (the SCRAM client).
//!
//! What it must never do: forward a message it has not framed, parsed and — for Query, Parse,
//! Bind, Describe and FunctionCall — decided; forward anything of an extended-query batch
//! after a denied message in it; or let the client see the upstream credential or the
//! upstream's cancel key.
//!
//! Buffers are owned by the session and reused: after warm-up, forwarding and deciding
//! allocate nothing. Prepared-statement names and their audit summaries are stored once per
//! Parse (bounded by `max_prepared_statements`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use pgate_core::facts::{ColumnName, Facts, StatementFlags};
use pgate_core::table::{Decision, DenyReason, RoleId, Table, Verdict};
use pgate_core::wire::{
    self, Frontend, Severity, Startup, WireError, frame, frame_startup, parse_frontend,
    parse_startup,
};
mod answers;
mod audit;
mod batch;
mod decided;
mod deny;
mod masking;
mod objects;
mod refusal;
mod results;
pub(crate) mod scram;
mod startup;
mod upstream;

use audit::{command_rows, write_summary};
use deny::deny_message;
use startup::{MAX_STARTUP_BYTES, MAX_TOKEN_MESSAGE_BYTES};

use crate::upstream_login::{LoginStep, UpstreamLogin, write_startup};
use decided::{Decided, DigestHex, decide_text, digest_hex};
use objects::{Confirm, Cursor, Portal, Prepared, SqlEffect};
use refusal::Refusal;
use results::{Caps, Cut, Rate};
pub use scram::NONCE_BYTES;

/// The randomness a session needs, drawn by the driver from its source (the OS in
/// production, a seed in simulations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entropy {
    /// The BackendKeyData pgate issues to the client.
    pub cancel_key: (i32, i32),
    /// The SCRAM client nonce for the upstream login.
    pub scram_nonce: [u8; NONCE_BYTES],
}

/// A connection's id in the audit log: the pgate instance (drawn at start, named in the
/// audit file's `audit-start` line) and the connection's number in that instance — unique
/// for the life of the audit file, across workers and restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub instance: u64,
    pub seq: u64,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}-{}", self.instance, self.seq)
    }
}

/// Time as the driver measures it: monotonic microseconds (durations) and wall-clock
/// milliseconds since the Unix epoch (audit timestamps, token expiry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    pub mono_us: u64,
    pub unix_ms: u64,
}

/// Who the client is, once its token was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub subject: String,
    /// The RFC 8693 `act` chain, outermost (current) actor first.
    pub actors: Vec<String>,
    pub role: RoleId,
    pub role_name: String,
    /// Token expiry, seconds since the Unix epoch.
    pub expires_at_unix: u64,
    /// The token's claims: at every table swap the role is re-resolved by name and the
    /// claims must still grant it ([`Authenticator::rebind`]).
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Validates the password the client presented (a JWT). Implemented by the identity module;
/// tests use their own.
pub trait Authenticator {
    /// `user` is the startup `user` parameter: it may choose one of the roles the token
    /// grants. The error is shown to the client: it must name the cause without leaking
    /// anything secret.
    fn authenticate(
        &self,
        user: &str,
        token: &str,
        table: &Table<'_>,
        now_unix: u64,
    ) -> Result<Identity, String>;

    /// After a table swap: the session's role in `table`, found by name (role ids shift
    /// when roles are added or removed), if the identity's claims still grant it. The
    /// error is shown to the client (FATAL 28000). The default only looks the name up.
    fn rebind(&self, identity: &Identity, table: &Table<'_>) -> Result<RoleId, String> {
        role_by_name(identity, table)
    }
}

/// The identity's role in `table`, found by name: the first step of every rebind.
pub fn role_by_name(identity: &Identity, table: &Table<'_>) -> Result<RoleId, String> {
    table
        .role(&identity.role_name)
        .ok_or_else(|| format!("role \"{}\" is no longer in the policy", identity.role_name))
}

/// A login as the audit log records it: the startup packet's user and database, and
/// what could be read from the token without trusting it.
#[derive(Clone, Debug, Default)]
pub(crate) struct LoginAttempt {
    pub user: String,
    pub database: String,
    /// `kid`, `iss`, `sub`, `jti` as the token states them (unverified; never the token).
    pub token: Option<startup::TokenHints>,
}

/// Per-session settings (from the operator's configuration).
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Hard maximum for any message, both directions.
    pub max_message_bytes: u32,
    pub upstream_user: String,
    pub upstream_password: Option<String>,
    /// `None`: the database the client asked for.
    pub upstream_database: Option<String>,
    /// Whether the driver can answer SSLRequest with TLS.
    pub tls_available: bool,
    /// Whether a token may be sent without TLS (loopback only, by configuration).
    pub allow_plaintext_auth: bool,
    pub max_prepared_statements: usize,
    /// Queries and Syncs forwarded but not yet answered by ReadyForQuery.
    pub max_pipeline_depth: usize,
    /// Seconds a session may outlive its token.
    pub token_grace_secs: u64,
    /// The search path assumed until the client sets one.
    pub default_search_path: Vec<String>,
    /// From the connection's start until it is proxying (PostgreSQL's
    /// `authentication_timeout`, 60 s by default).
    pub login_timeout_ms: u64,
    /// Named portals open at once (extended protocol).
    pub max_portals: usize,
    /// SQL-level `PREPARE`d statements.
    pub max_sql_prepared: usize,
    /// SQL-level cursors (`DECLARE`) open at once.
    pub max_cursors: usize,
    /// `LISTEN` channels.
    pub max_listen_channels: usize,
    /// Bytes of client messages forwarded and not yet answered by ReadyForQuery.
    pub max_pipeline_bytes: usize,
    /// The key of `hash` masks (`masks hash-key-file=`); `None`: a result with a hash mask
    /// is refused (the table is refused at load before it comes to that).
    pub mask_hash_key: Option<std::sync::Arc<crate::masks::HashKey>>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_message_bytes: 16 << 20,
            upstream_user: "postgres".into(),
            upstream_password: None,
            upstream_database: None,
            tls_available: false,
            allow_plaintext_auth: false,
            max_prepared_statements: 1024,
            max_pipeline_depth: 1024,
            token_grace_secs: 0,
            default_search_path: vec!["public".into()],
            login_timeout_ms: 60_000,
            max_portals: 1024,
            max_sql_prepared: 1024,
            max_cursors: 1024,
            max_listen_channels: 256,
            max_pipeline_bytes: 64 << 20,
            mask_hash_key: None,
        }
    }
}

/// What the driver must do besides moving bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer 'S' was queued; after flushing it, run the TLS handshake on the client socket
    /// and call [`Session::tls_established`].
    StartTls,
    /// Connect to the upstream and call [`Session::upstream_connected`].
    ConnectUpstream,
    /// The client sent a CancelRequest with this (pgate-issued) key: look up the session
    /// it belongs to and, if the key matches, send that session's real cancel upstream.
    Cancel { process_id: i32, secret_key: i32 },
    /// A result reached a cap: send the upstream a CancelRequest with this session's real
    /// key, wait until the database has taken it (it closes that connection), then call
    /// [`Session::upstream_cancel_done`]. Client input waits meanwhile
    /// ([`Session::holding_client`]): feed it again afterwards.
    CancelUpstream,
    /// A result has masked columns and the catalog that ties its OIDs to the policy is
    /// missing or incomplete: look up what [`Session::catalog_request`] names, then call
    /// [`Session::handle_catalog`]. Upstream input waits meanwhile
    /// ([`Session::upstream_paused`]).
    LookupCatalog,
    /// Flush what is queued for the client, then close both sides.
    Close,
}

/// The pgate-issued BackendKeyData of a session and the real one behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelKeys {
    pub issued: (i32, i32),
    pub upstream: Option<(i32, i32)>,
}

enum State {
    /// Waiting for SSLRequest, GSSENCRequest, StartupMessage or CancelRequest.
    Startup { tls: bool },
    /// AuthenticationCleartextPassword sent; waiting for the token.
    AwaitToken {
        user: String,
        database: String,
        /// Startup parameters to forward (user, database and options removed).
        params: Vec<(String, String)>,
    },
    /// Token accepted; waiting for the driver to connect upstream.
    Connecting {
        database: String,
        params: Vec<(String, String)>,
    },
    /// StartupMessage sent upstream; answering its authentication requests.
    UpstreamAuth { login: Box<UpstreamLogin> },
    /// Upstream authenticated; relaying ParameterStatus until its ReadyForQuery.
    UpstreamStartup { auth_ok_sent: bool },
    /// Proxying.
    Ready,
    /// FATAL sent or Terminate received; nothing more is read.
    Closed,
}

/// A statement forwarded and not yet completed, for its audit line.
#[derive(Debug)]
struct Pending {
    /// Index into `summaries`.
    summary: usize,
    /// The unit (Query or batch up to Sync) it belongs to.
    unit: u64,
    /// Its Execute's place among the final responses of its unit (`None`: a statement
    /// of a simple Query, completed in order).
    position: Option<u32>,
    started_us: u64,
    /// The digest of the table that decided it (a swap may come before it completes).
    digest: DigestHex,
    /// What it does to SQL-level objects, applied when it completes.
    effect: Option<Box<SqlEffect>>,
    /// The portal an Execute runs (0: none) and what that portal's result sent before.
    portal: u64,
    carried: (u64, u64),
}

/// The session. See the module docs.
pub struct Session {
    cfg: SessionConfig,
    state: State,
    keys: CancelKeys,
    scram_nonce: [u8; NONCE_BYTES],
    identity: Option<Identity>,
    /// What the client asked for at login, kept for the `login-refused` line.
    login: Option<Box<LoginAttempt>>,
    client_addr: String,
    conn_id: ConnId,
    to_client: Vec<u8>,
    to_upstream: Vec<u8>,
    actions: VecDeque<Action>,
    audit: String,
    facts: Facts,
    search_path: Vec<String>,
    tx_status: u8,
    /// Units forwarded and not yet answered by ReadyForQuery.
    inflight: usize,
    /// Markers in flight for refused messages, and the errors the client gets for them.
    refusals: VecDeque<Refusal>,
    refusal_buf: Vec<u8>,
    /// Final responses the messages forwarded in the current unit will produce.
    batch_finals: u32,
    /// Final responses the upstream sent in the unit it is answering, and whether one was
    /// an error (the server then skips to Sync).
    unit_finals: u32,
    unit_error: bool,
    /// Some message of the current extended batch went upstream.
    batch_forwarded: bool,
    /// A message of the current batch was denied: drop everything up to Sync.
    skipping_batch: bool,
    copy_in: bool,
    /// Syncs forwarded since the last Execute: if that Execute starts a COPY FROM STDIN,
    /// PostgreSQL ignores them ("The backend will ignore Flush and Sync messages received
    /// during copy-in mode"), so they will get no ReadyForQuery.
    syncs_since_execute: usize,
    /// Messages other than Sync and Flush forwarded since the last Execute or Query.
    sent_after_command: u32,
    /// CopyDone or CopyFail came before the server's CopyInResponse.
    copy_ended_early: bool,
    /// Confirmed by the server (ParseComplete); `confirms` holds what is not yet.
    statements: HashMap<String, Prepared>,
    statement_versions: u64,
    confirms: VecDeque<Confirm>,
    confirm_pool: Vec<Confirm>,
    /// References to each summary slot (its statement, portals, pending lines).
    summary_refs: Vec<u32>,
    scratch_slots: Vec<usize>,
    /// The table generation at login: a cursor pgate never saw opened is trusted only
    /// while no reload has come since.
    login_table_gen: u32,
    portals: HashMap<String, Portal>,
    /// The last portal id given out.
    portal_ids: u64,
    /// The unnamed portal, reused (its strings keep their capacity).
    unnamed_portal: Portal,
    unnamed_portal_open: bool,
    /// SQL-level `PREPARE`d statements: the PREPARE's text.
    sql_prepared: HashMap<String, Decided>,
    cursors: HashMap<String, Cursor>,
    listening: HashSet<String>,
    /// The table generation: bumped at every swap to a table with another digest.
    table_gen: u32,
    table_digest_raw: [u8; 32],
    /// Scratch facts for re-deciding a stored statement (the current message's facts stay
    /// in `facts`), and the deny message of the last failed re-decision.
    recheck: Facts,
    recheck_msg: Option<String>,
    /// Client bytes forwarded per unit not yet answered, and their sum.
    unit_bytes: VecDeque<usize>,
    current_unit_bytes: usize,
    inflight_bytes: usize,
    /// Monotonic deadlines (µs): login, drain, token expiry (with grace).
    login_deadline_us: u64,
    drain_deadline_us: Option<u64>,
    expiry_deadline_us: Option<u64>,
    /// Audit summaries (`"classes":[…],"tables":[…]` JSON fragments): slot 0 is the
    /// current simple query's, reused; prepared statements own theirs.
    summaries: Vec<String>,
    free_summaries: Vec<usize>,
    pending: VecDeque<Pending>,
    unit_seq: u64,
    rows: u64,
    bytes: u64,
    /// The role's result caps, what the result being answered has sent the client, and the
    /// cut in progress (`results`).
    caps: Caps,
    cap_rows: u64,
    cap_bytes: u64,
    /// What the pieces of SQL cursors' results sent since no cursor was open.
    fetch_rows: u64,
    fetch_bytes: u64,
    cut: Option<Cut>,
    /// The cut statement's audit note, taken by its line.
    cut_note: Option<String>,
    /// The role's byte rates; a throttle in force (until, and since: µs), and the time the
    /// current statement spent throttled; the instance's identity-scoped buckets.
    rates: Vec<Rate>,
    paused_until: Option<u64>,
    paused_since: Option<u64>,
    throttled_us: u64,
    identity_buckets: std::sync::Arc<crate::buckets::IdentityBuckets>,
    table_digest: DigestHex,
    now: Clock,
    /// False while the audit sink refuses new statements (`on-failure "refuse"`).
    audit_accepting: bool,
    /// The database reported `is_superuser=on` for pgate's upstream user.
    upstream_superuser: bool,
    /// Result masks, for a role that has any (`masking`).
    masking: Option<Box<masking::Masking>>,
    /// The database the upstream session is in (for the masks' catalog).
    upstream_db: String,
    /// Statements decided since the driver last took the counts (metrics).
    allowed_count: u64,
    denied_count: u64,
}

/// SQLSTATEs pgate answers with.
mod sqlstate {
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const TOO_MANY: &str = "54000";
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
    pub const DUPLICATE_CURSOR: &str = "42P03";
    pub const INVALID_CURSOR_NAME: &str = "34000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    /// internal_error: pgate cannot do what the policy asks of a result (a mask).
    pub const INTERNAL_ERROR: &str = "XX000";
    /// io_error: the audit log cannot take more lines.
    pub const AUDIT_UNAVAILABLE: &str = "58030";
}

impl Session {
    /// A new session for a client at `client_addr`, accepted at `now`, with the randomness
    /// it will use (the driver draws it).
    pub fn new(
        cfg: SessionConfig,
        conn_id: ConnId,
        client_addr: &str,
        entropy: Entropy,
        now: Clock,
    ) -> Self {
        let search_path = cfg.default_search_path.clone();
        Session {
            state: State::Startup { tls: false },
            keys: CancelKeys {
                issued: entropy.cancel_key,
                upstream: None,
            },
            scram_nonce: entropy.scram_nonce,
            identity: None,
            login: None,
            client_addr: client_addr.to_owned(),
            conn_id,
            // Small until used: a connection that never logs in costs little (buffers grow
            // to their working sizes once, then stay).
            to_client: Vec::new(),
            to_upstream: Vec::new(),
            actions: VecDeque::with_capacity(4),
            audit: String::new(),
            facts: Facts::unallocated(),
            search_path,
            tx_status: b'I',
            inflight: 0,
            refusals: VecDeque::new(),
            refusal_buf: Vec::new(),
            batch_finals: 0,
            unit_finals: 0,
            unit_error: false,
            batch_forwarded: false,
            skipping_batch: false,
            copy_in: false,
            syncs_since_execute: 0,
            sent_after_command: 0,
            copy_ended_early: false,
            statements: HashMap::new(),
            statement_versions: 0,
            confirms: VecDeque::new(),
            confirm_pool: Vec::new(),
            summary_refs: vec![0],
            scratch_slots: Vec::new(),
            login_table_gen: 0,
            portals: HashMap::new(),
            unnamed_portal: Portal::default(),
            unnamed_portal_open: false,
            sql_prepared: HashMap::new(),
            cursors: HashMap::new(),
            listening: HashSet::new(),
            table_gen: 0,
            table_digest_raw: [0; 32],
            recheck: Facts::unallocated(),
            recheck_msg: None,
            unit_bytes: VecDeque::new(),
            current_unit_bytes: 0,
            inflight_bytes: 0,
            login_deadline_us: now
                .mono_us
                .saturating_add(cfg.login_timeout_ms.saturating_mul(1000)),
            drain_deadline_us: None,
            expiry_deadline_us: None,
            summaries: vec![String::new()],
            free_summaries: Vec::new(),
            pending: VecDeque::new(),
            unit_seq: 0,
            rows: 0,
            bytes: 0,
            caps: Caps::default(),
            cap_rows: 0,
            cap_bytes: 0,
            fetch_rows: 0,
            fetch_bytes: 0,
            portal_ids: 0,
            cut: None,
            cut_note: None,
            rates: Vec::new(),
            paused_until: None,
            paused_since: None,
            throttled_us: 0,
            identity_buckets: Default::default(),
            table_digest: [b'0'; 16],
            now,
            audit_accepting: true,
            upstream_superuser: false,
            masking: None,
            upstream_db: String::new(),
            allowed_count: 0,
            denied_count: 0,
            cfg,
        }
    }

    // ---- draining ----

    /// Bytes to write to the client. Call [`Session::client_written`] with how many were.
    pub fn poll_client(&self) -> &[u8] {
        &self.to_client
    }
    pub fn client_written(&mut self, n: usize) {
        self.to_client.drain(..n.min(self.to_client.len()));
    }
    /// Bytes queued for the client, including local answers waiting for their turn: the
    /// driver stops reading the client while this is large (a client that sends without
    /// reading must not grow pgate's memory).
    pub fn client_backlog(&self) -> usize {
        self.to_client.len() + self.refusal_buf.len()
    }
    /// Bytes to write to the upstream. Call [`Session::upstream_written`].
    pub fn poll_upstream(&self) -> &[u8] {
        &self.to_upstream
    }
    pub fn upstream_written(&mut self, n: usize) {
        self.to_upstream.drain(..n.min(self.to_upstream.len()));
    }
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
    /// Audit JSON lines produced so far (each ends in `\n`). Call [`Session::audit_taken`].
    pub fn poll_audit(&self) -> &str {
        &self.audit
    }
    pub fn audit_taken(&mut self) {
        self.audit.clear();
    }
    /// (allowed, denied) statements since the last call (for metrics).
    pub fn take_verdict_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.allowed_count),
            std::mem::take(&mut self.denied_count),
        )
    }
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }
    /// The instance's identity-scoped rate buckets, shared by its sessions (by default a
    /// session has a registry of its own). Set before the login.
    pub fn set_identity_buckets(&mut self, b: std::sync::Arc<crate::buckets::IdentityBuckets>) {
        self.identity_buckets = b;
    }

    pub fn cancel_keys(&self) -> CancelKeys {
        self.keys
    }
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }
    /// Whether the session is proxying (authenticated both ways).
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready)
    }
    /// Whether the database said pgate's upstream user is a superuser (ParameterStatus
    /// `is_superuser` at startup): the driver warns the operator once.
    pub fn upstream_is_superuser(&self) -> bool {
        self.upstream_superuser
    }
    /// The transaction status the client last saw ('I', 'T' or 'E').
    pub fn transaction_status(&self) -> u8 {
        self.tx_status
    }

    // ---- events ----

    /// Whether the audit sink takes new lines. While it does not, new statements are
    /// refused (an unaudited statement must not run).
    pub fn set_audit_accepting(&mut self, accepting: bool) {
        self.audit_accepting = accepting;
    }

    /// The TLS handshake the session asked for completed.
    pub fn tls_established(&mut self) {
        if let State::Startup { .. } = self.state {
            self.state = State::Startup { tls: true };
        }
    }

    /// The upstream connection is open: send its StartupMessage.
    pub fn upstream_connected(&mut self) {
        let State::Connecting { database, params } = std::mem::replace(
            &mut self.state,
            State::UpstreamAuth {
                login: Box::new(UpstreamLogin::new(self.scram_nonce)),
            },
        ) else {
            return;
        };
        let db = self.cfg.upstream_database.clone().unwrap_or(database);
        self.upstream_db = db.clone();
        if let Some(m) = self.masking.as_mut() {
            m.database = db.clone();
        }
        // pgate reads SQL as UTF-8: the session's client encoding is UTF8 unless the client
        // chose an equivalent one (the server's default would be the database's).
        let encoding = if params
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("client_encoding"))
        {
            None
        } else {
            Some(("client_encoding", "UTF8"))
        };
        let fixed = [
            Some(("user", self.cfg.upstream_user.as_str())),
            Some(("database", db.as_str())),
            encoding,
        ];
        write_startup(
            &mut self.to_upstream,
            fixed
                .into_iter()
                .flatten()
                .chain(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        );
    }

    /// The client's connection ended (EOF or error) without Terminate. The session ends
    /// (audited); returns whether the upstream was still working for it, in which case the
    /// driver cancels that work with the real key ([`CancelKeys::upstream`]).
    pub fn client_closed(&mut self) -> bool {
        if self.is_closed() {
            return false;
        }
        let busy = self.inflight > 0 || self.copy_in;
        self.end("the client closed the connection without Terminate");
        busy
    }

    /// The upstream connection failed or closed.
    pub fn upstream_closed(&mut self, cause: &str) {
        let msg = format!("pgate lost the connection to the database: {cause}");
        self.fatal(sqlstate::CONNECTION_FAILURE, &msg);
    }

    /// The next moment (monotonic µs) at which [`Session::handle_timeout`] must be called:
    /// the login deadline until the session is proxying, the drain deadline, the token's
    /// expiry. `None` when nothing is due (a closed session).
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.is_closed() {
            return None;
        }
        let login = (!self.is_ready()).then_some(self.login_deadline_us);
        [
            login,
            self.drain_deadline_us,
            self.expiry_deadline_us,
            self.paused_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Time passes: ends the session at the login deadline (as PostgreSQL's
    /// `authentication_timeout` does), at the drain deadline (57P01, like a server
    /// shutdown), or when its token has expired (after the grace period).
    pub fn handle_timeout(&mut self, now: Clock) {
        self.now = now;
        if self.is_closed() {
            return;
        }
        self.resume_if_due(now.mono_us);
        if !self.is_ready() && now.mono_us >= self.login_deadline_us {
            // Before a startup packet PostgreSQL closes without a word; once the client
            // speaks the protocol it gets the reason.
            if matches!(self.state, State::Startup { .. }) {
                self.close_quietly("no startup packet before the login timeout");
            } else {
                self.fatal(
                    sqlstate::QUERY_CANCELED,
                    "canceling authentication due to timeout",
                );
            }
            return;
        }
        if self.drain_deadline_us.is_some_and(|d| now.mono_us >= d) {
            self.fatal(
                sqlstate::ADMIN_SHUTDOWN,
                "terminating connection due to administrator command (pgate is shutting down)",
            );
            return;
        }
        let Some(id) = &self.identity else { return };
        let expiry_unix = id.expires_at_unix.saturating_add(self.cfg.token_grace_secs);
        if now.unix_ms / 1000 >= expiry_unix {
            self.fatal(
                sqlstate::INVALID_AUTHORIZATION,
                "pgate: the session's token has expired; reconnect with a fresh token",
            );
            return;
        }
        self.set_expiry_deadline(expiry_unix);
    }

    /// The token's expiry as a monotonic deadline, from the wall clock now (recomputed at
    /// every timeout, so a wall-clock step is caught at the next wake-up).
    fn set_expiry_deadline(&mut self, expiry_unix: u64) {
        let left_ms = expiry_unix
            .saturating_mul(1000)
            .saturating_sub(self.now.unix_ms);
        self.expiry_deadline_us = Some(
            self.now
                .mono_us
                .saturating_add(left_ms.saturating_mul(1000)),
        );
    }

    /// The proxy is draining: the session goes on as usual until `deadline_us` (monotonic),
    /// then ends with 57P01, as PostgreSQL's sessions do when the server shuts down. Nothing
    /// fails before the deadline.
    pub fn handle_drain(&mut self, deadline_us: u64) {
        self.drain_deadline_us = Some(deadline_us);
    }

    /// The decision table the driver holds now. When its digest differs from the one the
    /// session last saw (a swap), the session's role is re-resolved by name and re-bound
    /// through the authenticator: a role that vanished, or that the token no longer maps
    /// to, ends the session (FATAL 28000, audited). Stored statements are re-decided
    /// lazily, before their next use. Called by [`Session::handle_client`] too, so a swap
    /// is seen before any later message is decided.
    pub fn handle_table(&mut self, table: &Table<'_>, auth: &dyn Authenticator) {
        let digest = table.digest();
        if digest == self.table_digest_raw {
            return;
        }
        self.table_digest_raw = digest;
        self.table_digest = digest_hex(&digest);
        self.table_gen = self.table_gen.wrapping_add(1);
        let Some(id) = &self.identity else { return };
        if self.is_closed() {
            return;
        }
        match auth.rebind(id, table) {
            Ok(role) => {
                if let Some(id) = self.identity.as_mut() {
                    id.role = role;
                }
                self.caps = Caps::of(table, role);
                self.masks_for_role(table);
                let subject = self.identity.as_ref().map(|i| i.subject.clone());
                let rates = Rate::of(
                    table,
                    role,
                    subject.as_deref().unwrap_or(""),
                    &self.identity_buckets,
                    self.now.mono_us,
                );
                self.rates = Rate::carry_over(std::mem::take(&mut self.rates), rates);
                self.audit_connection("rebind", None);
            }
            Err(why) => {
                let msg = format!(
                    "pgate: the policy was reloaded and no longer admits this session: {why}; reconnect"
                );
                self.audit_connection("revoked", Some(&msg));
                self.fatal(sqlstate::INVALID_AUTHORIZATION, &msg);
            }
        }
    }

    // ---- client bytes ----

    /// Consumes complete messages from the start of `input`; returns how many bytes were
    /// consumed (the rest is an incomplete message: feed it again with more bytes).
    pub fn handle_client(
        &mut self,
        input: &[u8],
        table: &Table<'_>,
        auth: &dyn Authenticator,
        now: Clock,
    ) -> usize {
        self.now = now;
        self.handle_table(table, auth);
        let mut consumed = 0;
        while !matches!(self.state, State::Closed) {
            if self.holding_client() {
                break;
            }
            let rest = &input[consumed..];
            let framed = match self.state {
                // Before login, messages are small: PostgreSQL caps startup packets at
                // 10,000 bytes (MAX_STARTUP_PACKET_LENGTH); a token is a few KiB.
                State::Startup { .. } => {
                    frame_startup(rest, self.cfg.max_message_bytes.min(MAX_STARTUP_BYTES))
                }
                State::AwaitToken { .. } => frame(
                    rest,
                    self.cfg.max_message_bytes.min(MAX_TOKEN_MESSAGE_BYTES),
                ),
                _ => frame(rest, self.cfg.max_message_bytes),
            };
            let f = match framed {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    self.protocol_violation(e);
                    break;
                }
            };
            consumed += f.len;
            let raw = &rest[..f.len];
            let result = match self.state {
                State::Startup { .. } => parse_startup(&f).map(|s| self.on_startup(s)),
                State::AwaitToken { .. } => parse_frontend(&f).map(|m| match m {
                    Frontend::Password(p) => self.on_token(p, table, auth),
                    Frontend::Terminate => self.close_quietly("the client sent Terminate"),
                    _ => self.fatal(
                        sqlstate::PROTOCOL_VIOLATION,
                        "pgate: expected a password message carrying the token",
                    ),
                }),
                State::Ready => parse_frontend(&f).map(|m| self.on_frontend(m, raw, table)),
                // libpq waits for ReadyForQuery before sending more; anything else here is
                // a client that does not follow the protocol.
                _ => parse_frontend(&f).map(|m| match m {
                    Frontend::Terminate => self.close_quietly("the client sent Terminate"),
                    _ => self.fatal(
                        sqlstate::PROTOCOL_VIOLATION,
                        "pgate: message received before authentication completed",
                    ),
                }),
            };
            if let Err(e) = result {
                self.protocol_violation(e);
                break;
            }
            // After 'S' the TLS handshake comes next: bytes the client pipelined behind its
            // SSLRequest are plaintext and must not be read as protocol (the driver refuses
            // them; CVE-2021-23214).
            if self.actions.contains(&Action::StartTls) {
                break;
            }
        }
        consumed
    }

    fn on_frontend(&mut self, m: Frontend<'_>, raw: &[u8], table: &Table<'_>) {
        // Inside a denied extended-query batch everything up to Sync is dropped.
        if self.skipping_batch {
            match m {
                Frontend::Sync => self.end_refused_batch(raw),
                Frontend::Terminate => self.close_quietly("the client sent Terminate"),
                _ => {}
            }
            return;
        }
        // In copy-in mode only the copy sub-protocol (and Flush, Sync, Terminate) may come;
        // anything else would be decided against unit counts the server no longer keeps.
        if self.copy_in
            && !matches!(
                m,
                Frontend::CopyData(_)
                    | Frontend::CopyDone
                    | Frontend::CopyFail { .. }
                    | Frontend::Flush
                    | Frontend::Sync
                    | Frontend::Terminate
            )
        {
            return self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: unexpected message during COPY FROM STDIN",
            );
        }
        if !self.audit_accepting
            && matches!(
                m,
                Frontend::Query { .. } | Frontend::Parse { .. } | Frontend::FunctionCall { .. }
            )
        {
            const MSG: &str =
                "pgate: the audit log is unavailable, so statements are refused; try again shortly";
            if let Frontend::Parse { statement, .. } = m {
                self.refuse_parse(statement, sqlstate::AUDIT_UNAVAILABLE, MSG);
            } else {
                self.refuse_alone(sqlstate::AUDIT_UNAVAILABLE, MSG);
            }
            return;
        }
        // PostgreSQL skips a Query or FunctionCall that follows an error in an unsynced
        // extended batch (it ignores everything until Sync), so whether it gets a
        // ReadyForQuery depends on that batch's answers. Drivers that do this (asyncpg:
        // Parse, Describe, Flush, then a Query) wait for the answers first; pgate allows it
        // when every answer is in and none was an error, and otherwise refuses rather than
        // lose count of the server's answers.
        let batch_answered =
            self.inflight == 0 && self.unit_finals == self.batch_finals && !self.unit_error;
        if self.batch_forwarded
            && !batch_answered
            && matches!(m, Frontend::Query { .. } | Frontend::FunctionCall { .. })
        {
            return self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: a Query or FunctionCall inside an extended-protocol batch (before its Sync) is not supported",
            );
        }
        match m {
            Frontend::Query { sql } => self.on_query(sql, raw, table),
            Frontend::Parse { statement, sql, .. } => self.on_parse(statement, sql, raw, table),
            Frontend::Bind {
                portal, statement, ..
            } => {
                if let Some(summary) = self.allowed_statement(statement, table)
                    && self.bind_portal(portal, statement, summary)
                {
                    self.forward_in_batch(raw);
                }
            }
            Frontend::Describe { kind: b'S', name } => {
                if self.allowed_statement(name, table).is_some() {
                    self.client_describe();
                    self.forward_in_batch(raw);
                }
            }
            Frontend::Describe { .. } => {
                self.client_describe();
                self.forward_in_batch(raw);
            }
            Frontend::Execute { portal, .. } => {
                // Portals exist only through allowed Binds or DECLAREs pgate checked; an
                // unknown portal name fails upstream.
                let Ok(found) = self.portal_for_execute(portal, table) else {
                    return;
                };
                // Its result's RowDescription, for the masks (the answer is pgate's).
                self.describe_before_execute(portal);
                if let Some(run) = found {
                    self.slot_ref(run.summary);
                    self.pending.push_back(Pending {
                        summary: run.summary,
                        unit: self.unit_seq,
                        position: Some(self.batch_finals),
                        started_us: self.now.mono_us,
                        digest: self.table_digest,
                        effect: run.effect,
                        portal: run.portal,
                        carried: run.carried,
                    });
                }
                self.syncs_since_execute = 0;
                self.forward_in_batch(raw);
                self.sent_after_command = 0;
                self.copy_ended_early = false;
            }
            Frontend::Close { kind, name } => self.on_close(kind, name, raw),
            Frontend::Sync => {
                self.forward(raw);
                if self.copy_in {
                    // Ignored by the server in copy-in mode: no ReadyForQuery will answer it.
                    return;
                }
                self.syncs_since_execute += 1;
                self.unit_forwarded();
            }
            Frontend::Flush => self.forward(raw),
            Frontend::Terminate => {
                self.forward(raw);
                self.close_quietly("the client sent Terminate");
            }
            // The copy sub-protocol: only while the upstream is in COPY FROM STDIN (outside
            // it PostgreSQL ignores these too).
            Frontend::CopyData(_) | Frontend::CopyDone | Frontend::CopyFail { .. } => {
                // Forwarded in order whether or not the server has entered copy-in yet:
                // drivers (asyncpg) send the data right behind the COPY command, and the
                // server reads it once CopyInResponse is out; outside copy-in it ignores
                // these messages ("Accept but ignore these messages, per protocol spec").
                self.bytes += raw.len() as u64;
                if !matches!(m, Frontend::CopyData(_)) {
                    if self.copy_in {
                        self.copy_in = false;
                    } else {
                        self.copy_ended_early = true;
                    }
                }
                // Not counted as pipelined bytes: COPY data streams, it is not queued
                // behind unanswered commands.
                self.to_upstream.extend_from_slice(raw);
            }
            Frontend::FunctionCall { oid, .. } => {
                // The fast-path interface names the function by OID alone, which function
                // rules (by name, with tags) cannot be checked against: refused for every
                // role (fail closed). `SELECT f(…)` is decided like any statement.
                const MSG: &str = "pgate: FunctionCall messages (the fast-path interface, e.g. libpq's large-object calls) are not supported: they name the function by OID, which pgate cannot check against the policy's function rules; call it with SELECT instead";
                self.audit_function_call(oid, MSG);
                self.refuse_alone(sqlstate::INSUFFICIENT_PRIVILEGE, MSG);
            }
            Frontend::Password(_) => self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: unexpected password message after authentication",
            ),
        }
    }

    fn role(&self) -> RoleId {
        self.identity
            .as_ref()
            .map(|i| i.role)
            .unwrap_or(RoleId(u32::MAX))
    }

    /// Classifies `sql` into `self.facts` and decides it; resolves `EXECUTE name`, and
    /// decides again any stored statement it uses (`EXECUTE`, `FETCH`) that an earlier
    /// table decided.
    fn decide_sql(&mut self, sql: &str, table: &Table<'_>) -> Verdict {
        self.recheck_msg = None;
        let role = self.role();
        let verdict = decide_text(&mut self.facts, sql, &self.search_path, role, table);
        if !verdict.is_allow() {
            return verdict;
        }
        self.check_sql_uses(verdict, table)
    }

    /// Decides a stored statement's text again under `table` (into the scratch facts); on
    /// a denial, keeps the message for the client in `recheck_msg`.
    fn recheck_stored(&mut self, sql: &str, path: &[String], table: &Table<'_>) -> Verdict {
        let role = self.role();
        if self.recheck.is_unallocated() {
            self.recheck = Facts::default();
        }
        let v = decide_text(&mut self.recheck, sql, path, role, table);
        if !v.is_allow() {
            let why = deny_message(&self.recheck, &v, self.role_name(), table);
            self.recheck_msg = Some(format!(
                "{why}; the statement was allowed under an earlier policy and decided again after a reload"
            ));
        }
        v
    }

    /// Applies the search-path effects of allowed statements.
    fn apply_path_effects(&mut self) {
        for s in self.facts.statements() {
            if s.flags.contains(StatementFlags::SETS_SEARCH_PATH) {
                self.search_path.clear();
                for n in self.facts.search_path(s) {
                    self.search_path.push(self.facts.name(*n).to_owned());
                }
            }
            if s.flags.contains(StatementFlags::RESETS_SESSION) {
                self.search_path.clone_from(&self.cfg.default_search_path);
            }
        }
    }

    fn on_query(&mut self, sql: &str, raw: &[u8], table: &Table<'_>) {
        let verdict = self.decide_sql(sql, table);
        if verdict.is_allow() {
            if let Some(msg) = self.limit_exceeded() {
                self.audit_denied(&verdict, table, msg, sql);
                self.refuse_alone(sqlstate::TOO_MANY, msg);
                return;
            }
            // One audit line per statement of the string, each completed by its
            // CommandComplete (or error) from the upstream; object effects apply then.
            for i in 0..self.facts.statements().len() {
                let effect = self.sql_effect(i, sql);
                let slot = self.summary_for_statement(i, &verdict, table, sql);
                self.pending.push_back(Pending {
                    summary: slot,
                    unit: self.unit_seq,
                    position: None,
                    started_us: self.now.mono_us,
                    digest: self.table_digest,
                    effect,
                    portal: 0,
                    carried: (0, 0),
                });
            }
            self.apply_path_effects();
            self.forward(raw);
            self.syncs_since_execute = 0;
            self.sent_after_command = 0;
            self.copy_ended_early = false;
            self.unit_forwarded();
        } else {
            let msg = self.denial_text(&verdict, table);
            self.audit_denied(&verdict, table, &msg, sql);
            self.refuse_alone(sqlstate::INSUFFICIENT_PRIVILEGE, &msg);
        }
    }

    /// The message for a denial of the current facts (or of the stored statement a
    /// re-decision refused).
    fn denial_text(&mut self, verdict: &Verdict, table: &Table<'_>) -> String {
        match self.recheck_msg.take() {
            Some(m) => m,
            None => deny_message(&self.facts, verdict, self.role_name(), table),
        }
    }

    fn role_name(&self) -> &str {
        self.identity
            .as_ref()
            .map(|i| i.role_name.as_str())
            .unwrap_or("")
    }

    // ---- endings ----

    fn fatal(&mut self, code: &str, msg: &str) {
        if matches!(self.state, State::Closed) {
            return;
        }
        wire::write_error(&mut self.to_client, Severity::Fatal, code, msg);
        let cause = format!("FATAL {code}: {msg}");
        self.end(&cause);
    }

    fn protocol_violation(&mut self, e: WireError) {
        let msg = format!("pgate: invalid message: {e}");
        self.fatal(sqlstate::PROTOCOL_VIOLATION, &msg);
    }

    fn close_quietly(&mut self, cause: &str) {
        if !matches!(self.state, State::Closed) {
            self.end(cause);
        }
    }

    /// Ends the session: every forwarded statement gets its line, then the connection
    /// its `close` line with the cause — or, if it never logged in, its `login-refused`
    /// line.
    fn end(&mut self, cause: &str) {
        // Statements forwarded and not answered: they may have run (and committed); their
        // lines say that pgate does not know.
        while let Some(p) = self.pending.pop_front() {
            self.write_statement_line(&p, "unknown");
        }
        if self.identity.is_some() {
            self.audit_connection("close", Some(cause));
        } else if self.login.is_some() {
            self.audit_login_refused(cause);
        }
        self.state = State::Closed;
        self.actions.push_back(Action::Close);
    }
}
