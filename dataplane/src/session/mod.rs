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
//! This file holds the state machine and its public face; the rest is split by concern:
//! `client` (the client's messages once ready: framing, deciding, forwarding), `answers`
//! (the database's answers), `batch` (units in flight and the final responses they bring),
//! `startup` (the client's login), `upstream` (pgate's login to the database), `objects`
//! (prepared statements, portals, cursors, channels, recorded as the server confirms them),
//! `refusal` (refusals as the database's own errors), `results` (caps and rates on the
//! result stream), `masking` (result masks), `decided` (stored statement texts), `audit`
//! (lines), `deny` (the deny-message renderer). pgate's own login upstream is pgate-core's `client`. What only the
//! Ready state uses lives in one record, `ready::Ready`.
//!
//! What it must never do: forward a message it has not framed, parsed and — for Query, Parse,
//! Bind, Describe and FunctionCall — decided; forward anything of an extended-query batch
//! after a denied message in it; or let the client see the upstream credential or the
//! upstream's cancel key.
//!
//! Buffers are owned by the session and reused: after warm-up, forwarding and deciding
//! allocate nothing. The classifier's buffers are the worker's (`scratch`), lent for one
//! `handle_client` call, so an idle session does not hold them. Prepared-statement names and their audit summaries are stored once per
//! Parse (bounded by `max_prepared_statements`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use pgate_core::facts::{ColumnName, Facts, PathEffect, StatementFlags};
use pgate_core::table::{Decision, DenyReason, RoleId, Table, Verdict};
use pgate_core::wire::{
    self, Frontend, Severity, Startup, WireError, frame, frame_startup, parse_frontend,
    parse_startup,
};
mod answers;
mod audit;
mod batch;
mod budget;
mod client;
mod decided;
mod deny;
mod masking;
pub use masking::{CatalogAnswer, CatalogRequest};
mod objects;
mod path;
mod ready;
mod refusal;
mod results;
mod scratch;
mod startup;
use ready::Ready;
mod upstream;

use audit::{command_rows, write_summary};
use deny::deny_message;
use startup::{MAX_STARTUP_BYTES, MAX_TOKEN_MESSAGE_BYTES};

use crate::reuse::note_parameter;
use decided::{Decided, DigestHex, decide_text, digest_hex};
use objects::{Confirm, Cursor, Portal, Prepared, SqlEffect};
pub use pgate_core::client::NONCE_BYTES;
use pgate_core::client::{Login, LoginError, LoginStep, write_startup};
use refusal::Refusal;
use results::{Caps, Cut, Rate};
pub use scratch::Scratch;

/// Audit bytes a session gathers before the driver must take them: feeding upstream
/// input pauses there ([`Session::upstream_paused`]).
pub const AUDIT_BATCH_BYTES: usize = 32 << 10;
/// How often a login waiting for the shared store looks for its answer (µs).
const TOKEN_CHECK_POLL_US: u64 = 1_000;

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
    /// The token's issuer and `jti` (what `token sessions=` counts by).
    pub issuer: String,
    pub token_id: Option<String>,
    /// RFC 8705 `cnf` `x5t#S256`: the token is good only over TLS with the client
    /// certificate of this SHA-256 thumbprint.
    pub bound_cert: Option<[u8; 32]>,
    /// The role that decides: the granted role, or its delegated variant for `actors`.
    pub role: RoleId,
    /// The role the token's claims grant (what the audit log names, what a table swap
    /// re-resolves by name).
    pub role_name: String,
    /// The delegated variant deciding this session (`support [delegated]`), when the token
    /// carries an `act` chain that one applies to.
    pub variant: Option<String>,
    /// When the token stops being valid, seconds since the Unix epoch: its `exp` plus the
    /// leeway that admitted it (the session ends then, after `token-grace`).
    pub expires_at_unix: u64,
    /// The token's claims: at every table swap the role is re-resolved by name and the
    /// claims must still grant it ([`Authenticator::rebind`]).
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl Identity {
    /// The name of the role that decides (the variant's, if one does).
    pub fn decided_as(&self) -> &str {
        self.variant.as_deref().unwrap_or(&self.role_name)
    }

    /// Decides the session as `role` of `table`: `granted` itself or one of its variants.
    pub(crate) fn decide_as(&mut self, role: RoleId, granted: RoleId, table: &Table<'_>) {
        self.role = role;
        self.variant = (role != granted).then(|| table.role_name(role).to_string());
    }
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
    /// The peer is a trusted load balancer: the connection begins with a PROXY protocol
    /// v2 header naming the client (`proxy-protocol`).
    pub expect_proxy_header: bool,
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
    /// The driver keeps upstream connections for reuse ([`crate::reuse`]): a session that
    /// ends idle does not send Terminate upstream, and offers its connection
    /// ([`Session::park`]).
    pub reuse_upstream: bool,
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
            expect_proxy_header: false,
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
            reuse_upstream: false,
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
    /// Token verified; the shared store is counting its use (`startup::TokenCheck`).
    TokenCheck {
        database: String,
        params: Vec<(String, String)>,
        check: Box<startup::TokenCheck>,
    },
    /// Token accepted; waiting for the driver to connect upstream.
    Connecting {
        database: String,
        params: Vec<(String, String)>,
    },
    /// StartupMessage sent upstream; answering its authentication requests.
    UpstreamAuth { login: Box<Login> },
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
    /// It changes the search path: its step in `Ready::path_steps` is done when it completes.
    path_step: bool,
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
    /// Every audit line's fields that are fixed for the session, escaped once
    /// (`audit::refresh_audit_who`).
    audit_who: String,
    facts: Facts,
    /// The table generation: bumped at every swap to a table with another digest.
    table_gen: u32,
    table_digest_raw: [u8; 32],
    /// Monotonic deadlines (µs): login, drain, token expiry (with grace).
    login_deadline_us: u64,
    drain_deadline_us: Option<u64>,
    expiry_deadline_us: Option<u64>,
    identity_buckets: std::sync::Arc<crate::buckets::IdentityBuckets>,
    /// Sessions per token on this instance, and this session's place among its token's.
    token_uses: std::sync::Arc<crate::token_uses::TokenUses>,
    token_lease: Option<crate::token_uses::Lease>,
    /// Where identity budgets are kept (this instance's, or a shared store).
    budget_store: std::sync::Arc<dyn crate::budgets::BudgetStore>,
    /// The TLS client certificate's SHA-256 thumbprint, for certificate-bound tokens.
    client_cert: Option<[u8; 32]>,
    /// A PROXY header is still to be read (the peer is a trusted load balancer).
    proxy_pending: bool,
    /// Connections per address, for a client a PROXY header names, and its count.
    address_counts: Option<(std::sync::Arc<crate::addresses::AddressCounts>, usize)>,
    address_lease: Option<crate::addresses::Lease>,
    /// A login refused because its token was used up: for the `token-reused` line.
    reuse_refusal: Option<Box<startup::ReuseRefusal>>,
    table_digest: DigestHex,
    now: Clock,
    /// False while the audit sink refuses new statements (`on-failure "refuse"`).
    audit_accepting: bool,
    /// The database reported `is_superuser=on` for pgate's upstream user.
    upstream_superuser: bool,
    /// The StartupMessage sent (or to be sent) upstream: the reuse key.
    upstream_startup: Vec<u8>,
    /// ParameterStatus values the upstream reported, latest first-report order.
    upstream_params: Vec<(String, String)>,
    /// The session ended idle, its upstream connection can be reset and reused.
    parkable: bool,
    /// The upstream connection came from the pool (named in the `open` line).
    upstream_reused: bool,
    /// The database the upstream session is in (for the masks' catalog).
    upstream_db: String,
    /// Statements decided since the driver last took the counts (metrics).
    allowed_count: u64,
    denied_count: u64,
    /// What only the Ready state uses: batches in flight, SQL-level objects, the result
    /// stream (`ready`).
    ready: Ready,
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
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
    pub const DUPLICATE_CURSOR: &str = "42P03";
    pub const INVALID_CURSOR_NAME: &str = "34000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    /// cannot_connect_now: a store pgate must consult cannot be reached.
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
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
        let mut s = Session {
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
            audit_who: String::new(),
            facts: Facts::unallocated(),
            table_gen: 0,
            table_digest_raw: [0; 32],
            login_deadline_us: now
                .mono_us
                .saturating_add(cfg.login_timeout_ms.saturating_mul(1000)),
            drain_deadline_us: None,
            expiry_deadline_us: None,
            identity_buckets: Default::default(),
            token_uses: Default::default(),
            budget_store: std::sync::Arc::new(crate::budgets::LocalBudgets::default()),
            token_lease: None,
            client_cert: None,
            proxy_pending: cfg.expect_proxy_header,
            address_counts: None,
            address_lease: None,
            reuse_refusal: None,
            table_digest: [b'0'; 16],
            now,
            audit_accepting: true,
            upstream_superuser: false,
            upstream_startup: Vec::new(),
            upstream_params: Vec::new(),
            parkable: false,
            upstream_reused: false,
            upstream_db: String::new(),
            allowed_count: 0,
            denied_count: 0,
            ready: Ready::new(search_path),
            cfg,
        };
        s.refresh_audit_who();
        s
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
        self.to_client.len() + self.ready.refusal_buf.len()
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
    /// The instance's connections per address and its limit: a client a PROXY header
    /// names is counted here. Set before the first client bytes.
    pub fn set_address_counts(
        &mut self,
        counts: std::sync::Arc<crate::addresses::AddressCounts>,
        max_per_address: usize,
    ) {
        self.address_counts = Some((counts, max_per_address));
    }
    /// The instance's record of sessions per token, shared by its sessions (by default a
    /// session has one of its own). Set before the login.
    pub fn set_token_uses(&mut self, u: std::sync::Arc<crate::token_uses::TokenUses>) {
        self.token_uses = u;
    }
    /// The instance's budget store, shared by its sessions (by default a session has one
    /// of its own). Set before the login.
    pub fn set_budget_store(&mut self, s: std::sync::Arc<dyn crate::budgets::BudgetStore>) {
        self.budget_store = s;
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
        self.ready.tx_status
    }

    // ---- events ----

    /// Whether the audit sink takes new lines. While it does not, new statements are
    /// refused (an unaudited statement must not run).
    pub fn set_audit_accepting(&mut self, accepting: bool) {
        self.audit_accepting = accepting;
    }

    /// The TLS handshake the session asked for completed.
    /// The TLS handshake finished; `client_cert`: the SHA-256 thumbprint of the
    /// certificate the client presented (and proved it holds the key of), if any.
    pub fn tls_established(&mut self, client_cert: Option<[u8; 32]>) {
        if let State::Startup { .. } = self.state {
            self.state = State::Startup { tls: true };
            self.client_cert = client_cert;
        }
    }

    /// The upstream connection is open: send its StartupMessage.
    pub fn upstream_connected(&mut self) {
        if !self.prepare_upstream() {
            return;
        }
        self.state = State::UpstreamAuth {
            login: Box::new(Login::new(self.scram_nonce)),
        };
        self.to_upstream.extend_from_slice(&self.upstream_startup);
    }

    /// While connecting: the StartupMessage this session sends upstream. A parked
    /// connection opened with the same bytes is an equal backend session once reset.
    pub fn upstream_startup(&mut self) -> Option<&[u8]> {
        if self.prepare_upstream() {
            Some(&self.upstream_startup)
        } else {
            None
        }
    }

    /// Instead of connecting: a parked connection opened with this session's
    /// StartupMessage and reset since. The client gets the startup answers the database
    /// gave (its parameters as they now stand, pgate's own cancel key, ReadyForQuery).
    /// Returns false (nothing changed) if the connection does not match.
    pub fn upstream_reused(&mut self, parked: &crate::reuse::Parked) -> bool {
        if !self.prepare_upstream() || parked.startup != self.upstream_startup {
            return false;
        }
        self.keys.upstream = Some(parked.backend_key);
        self.upstream_superuser = parked.superuser;
        self.upstream_params.clone_from(&parked.params);
        self.upstream_reused = true;
        // AuthenticationOk, then what a new backend would say.
        self.to_client
            .extend_from_slice(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]);
        let mut b = Vec::with_capacity(64);
        for (name, value) in &parked.params {
            b.clear();
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(value.as_bytes());
            b.push(0);
            wire::write_message(&mut self.to_client, b'S', &b);
        }
        self.send_issued_key();
        wire::write_ready_for_query(&mut self.to_client, b'I');
        self.enter_ready(b'I');
        true
    }

    /// After the session closed: its upstream connection's facts, if the session ended
    /// idle (no statement in flight, outside a transaction, no COPY) and reuse is on.
    /// The driver resets the connection ([`crate::reuse::Reset`]) before parking it.
    pub fn park(&self) -> Option<crate::reuse::Parked> {
        if !self.parkable {
            return None;
        }
        Some(crate::reuse::Parked {
            startup: self.upstream_startup.clone(),
            database: self.upstream_db.clone(),
            params: self.upstream_params.clone(),
            backend_key: self.keys.upstream?,
            superuser: self.upstream_superuser,
        })
    }

    /// The session ended idle: its upstream connection is kept (no Terminate sent).
    pub fn parkable(&self) -> bool {
        self.parkable
    }

    /// Whether the upstream is at rest: everything forwarded answered, no transaction, no
    /// COPY, no extended-query batch without its Sync, no cut or refusal being settled.
    fn upstream_idle(&self) -> bool {
        self.cfg.reuse_upstream
            && matches!(self.state, State::Ready)
            && self.drain_deadline_us.is_none()
            && self.ready.tx_status == b'I'
            && self.ready.inflight == 0
            && self.ready.pending.is_empty()
            && self.ready.refusals.is_empty()
            && !self.ready.batch_forwarded
            && !self.ready.copy_in
            && self.ready.cut.is_none()
            && self.ready.paused_until.is_none()
            && !self.catalog_wait()
            && self.to_upstream.is_empty()
    }

    /// Builds the StartupMessage once, while connecting; false in any other state.
    fn prepare_upstream(&mut self) -> bool {
        let State::Connecting { database, params } = &self.state else {
            return false;
        };
        if !self.upstream_startup.is_empty() {
            return true;
        }
        let db = self
            .cfg
            .upstream_database
            .clone()
            .unwrap_or_else(|| database.clone());
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
            &mut self.upstream_startup,
            fixed
                .into_iter()
                .flatten()
                .chain(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        );
        if let Some(m) = self.ready.masking.as_mut() {
            m.database = db.clone();
        }
        self.upstream_db = db;
        true
    }

    /// The client's connection ended (EOF or error) without Terminate. The session ends
    /// (audited); returns whether the upstream was still working for it, in which case the
    /// driver cancels that work with the real key ([`CancelKeys::upstream`]).
    pub fn client_closed(&mut self) -> bool {
        if self.is_closed() {
            return false;
        }
        let busy = self.ready.inflight > 0 || self.ready.copy_in;
        self.parkable = !busy && self.upstream_idle();
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
        // Waiting for the shared store: look for its answer shortly.
        let check = matches!(self.state, State::TokenCheck { .. })
            .then_some(self.now.mono_us.saturating_add(TOKEN_CHECK_POLL_US));
        [
            login,
            check,
            self.drain_deadline_us,
            self.expiry_deadline_us,
            self.ready.paused_until,
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
        self.poll_token_check();
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
        // A login waiting for the shared store holds what the old table decided (its role
        // id, caps, masks): the swap is taken once it is the session's (the first client
        // message after the grant comes through here), not lost now.
        if matches!(self.state, State::TokenCheck { .. }) {
            return;
        }
        self.table_digest_raw = digest;
        self.table_digest = digest_hex(&digest);
        self.table_gen = self.table_gen.wrapping_add(1);
        let Some(id) = &self.identity else { return };
        if self.is_closed() {
            return;
        }
        // The granted role by name, then the variant its chain picks in the new table.
        let rebound = auth.rebind(id, table).and_then(|granted| {
            table
                .role_for_chain(granted, &id.actors)
                .map(|role| (granted, role))
                .map_err(|r| r.describe(table, granted))
        });
        match rebound {
            Ok((granted, role)) => {
                if let Some(id) = self.identity.as_mut() {
                    id.decide_as(role, granted, table);
                }
                self.refresh_audit_who();
                self.ready.caps = Caps::of(table, role);
                self.masks_for_role(table);
                let subject = self.identity.as_ref().map(|i| i.subject.clone());
                let rates = Rate::of(
                    table,
                    role,
                    subject.as_deref().unwrap_or(""),
                    &self.identity_buckets,
                    self.now.mono_us,
                );
                self.ready.rates = Rate::carry_over(std::mem::take(&mut self.ready.rates), rates);
                // The old leases go back; the new budgets lease afresh from the same records.
                self.ready.budgets = budget::Spend::of(
                    table,
                    role,
                    subject.as_deref().unwrap_or(""),
                    &self.budget_store,
                );
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
        if let State::TokenCheck { check, .. } = &self.state {
            // Asked and gone: a use granted after this is given back.
            self.token_uses.abandon(&check.asked);
        }
        // Statements forwarded and not answered: they may have run (and committed); their
        // lines say that pgate does not know.
        while let Some(p) = self.ready.pending.pop_front() {
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
