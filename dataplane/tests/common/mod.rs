//! Shared harness of the sans-IO tests: a policy, a test authenticator, a scripted client
//! and a small fake PostgreSQL, wired to a `Session` with no sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly
#![allow(dead_code)]

use pgate::session::{
    Action, Authenticator, Clock, ConnId, Entropy, Identity, NONCE_BYTES, Session, SessionConfig,
};
use pgate_core::class::{ClassSet, StatementClass as C};
use pgate_core::table::model::*;
use pgate_core::table::{Table, write};
use pgate_core::wire::{self, Frontend, frame, parse_frontend};

// ---------------------------------------------------------------- policy

pub fn rule(line: u32, kind: RuleKind, text: &str) -> RuleInfo {
    RuleInfo {
        file: "roles/analyst.kdl".into(),
        line,
        column: 5,
        kind,
        role: "analyst".into(),
        text: text.into(),
    }
}

pub fn allow(rule: u32, columns: ColumnAccess) -> Cell {
    Cell {
        effect: Effect::Allow,
        rule: Some(rule),
        columns,
        denied_columns: vec![],
        denied_columns_rule: None,
    }
}

/// analyst may select public.orders (all columns) and public.customers (id, name), run
/// transactions and SET; nothing else.
pub fn policy() -> Vec<u8> {
    policy_with(&[], Grant::Standard)
}

/// How much the analyst role of [`policy_with`] may do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// As [`policy`].
    Standard,
    /// Orders only: customers are no longer readable; cursors and PREPARE allowed.
    Narrowed,
    /// Every column of customers too (ssn included); cursors and PREPARE allowed.
    Widened,
    /// No analyst role at all.
    Removed,
}

/// [`policy`] with extra roles (each may read everything, cursors included) and the
/// analyst's grant varied: role ids shift as roles are added before the analyst.
pub fn policy_with(extra_roles: &[&str], grant: Grant) -> Vec<u8> {
    write(&compiled(extra_roles, grant)).expect("the policy lays out")
}

/// The analyst of [`Grant::Narrowed`] with its results capped (rule 4, "limit …").
pub fn policy_capped(max_rows: Option<u64>, max_bytes: Option<u64>) -> Vec<u8> {
    // Narrowed: cursors allowed (their pieces count together).
    let mut p = compiled(&[], Grant::Narrowed);
    p.rules.push(rule(9, RuleKind::Limit, "limit rows=2"));
    for r in &mut p.roles {
        r.limits = Limits {
            max_rows,
            max_bytes,
            rule: Some(4),
        };
    }
    write(&p).expect("the policy lays out")
}

/// [`policy`] with sessions per token for every role (rule 4, "token …").
pub fn policy_token_use(sessions: Option<u32>, concurrent: Option<u32>) -> Vec<u8> {
    let mut p = compiled(&[], Grant::Standard);
    p.rules
        .push(rule(9, RuleKind::TokenUse, "token sessions=1"));
    for r in &mut p.roles {
        r.token_use = pgate_core::table::model::TokenUse {
            max_sessions: sessions,
            max_concurrent: concurrent,
            require_certificate: false,
            rule: Some(4),
        };
    }
    write(&p).expect("the policy lays out")
}

/// [`policy`] where the analyst's identity may receive `rows` rows and `bytes` bytes per
/// day across its sessions (rule 4, "budget …").
pub fn policy_budget(rows: Option<u64>, bytes: Option<u64>) -> Vec<u8> {
    let mut p = compiled(&[], Grant::Standard);
    p.rules
        .push(rule(9, RuleKind::Budget, "budget rows=… per=\"day\""));
    p.roles[0].budgets = vec![pgate_core::table::model::Budget {
        max_rows: rows,
        max_bytes: bytes,
        window_secs: 86_400,
        rule: 4,
    }];
    write(&p).expect("the policy lays out")
}

/// [`policy`] with delegation: the analyst admits chains of at most `max_depth` actors
/// (rule 4, "delegation …"); with `variant`, its delegated sessions are decided by
/// "analyst [delegated]", which may not read orders and gets one row per statement (rule
/// 5, "delegated { … }").
pub fn policy_delegated(max_depth: Option<u32>, variant: bool) -> Vec<u8> {
    use pgate_core::table::model::{Delegation, Variant};
    let mut p = compiled(&[], Grant::Standard);
    p.rules
        .push(rule(9, RuleKind::Delegation, "delegation max-depth=1"));
    p.rules.push(rule(
        10,
        RuleKind::Deny,
        "deny \"select\" table=\"public.orders\"",
    ));
    p.roles[0].delegation = Delegation {
        max_depth,
        rule: Some(4),
        variant: None,
    };
    if variant {
        let mut v = p.roles[0].clone();
        v.name = "analyst [delegated]".into();
        v.cells
            .retain(|c| !(c.class == C::Select && c.table == Some(0)));
        v.limits = Limits {
            max_rows: Some(1),
            max_bytes: None,
            rule: Some(5),
        };
        v.delegation = Delegation {
            max_depth: None,
            rule: Some(5),
            variant: Some(Variant {
                base: 0,
                min_depth: 1,
                actors: vec![],
            }),
        };
        p.roles.push(v);
    }
    write(&p).expect("the policy lays out")
}

/// [`policy`] where every role takes only certificate-bound tokens, each good for one
/// session (rule 4).
pub fn policy_token_bound() -> Vec<u8> {
    let mut p = compiled(&[], Grant::Standard);
    p.rules.push(rule(
        9,
        RuleKind::TokenUse,
        "token sessions=1 binding=\"certificate\"",
    ));
    for r in &mut p.roles {
        r.token_use = pgate_core::table::model::TokenUse {
            max_sessions: Some(1),
            max_concurrent: None,
            require_certificate: true,
            rule: Some(4),
        };
    }
    write(&p).expect("the policy lays out")
}

/// The analyst of [`Grant::Widened`] with masks (rule 4, "mask …"): customers.name hashed,
/// customers.ssn redacted.
pub fn policy_masked() -> Vec<u8> {
    policy_customers_out(true)
}

/// [`Grant::Widened`] with `copy-out` on customers, and the masks of [`policy_masked`] if
/// `masked`.
pub fn policy_customers_out(masked: bool) -> Vec<u8> {
    let mut p = compiled(&[], Grant::Widened);
    p.rules.push(rule(9, RuleKind::Mask, "mask …"));
    for r in &mut p.roles {
        r.cells.push(CellEntry {
            class: C::CopyOut,
            table: Some(1),
            cell: allow(1, ColumnAccess::All),
        });
        r.cells.sort_by_key(|c| (c.class as u8, c.table));
        if !masked {
            continue;
        }
        r.masks = vec![
            MaskEntry {
                table: 1,
                column: 1,
                kind: MaskKind::Hash,
                rule: 4,
                predicates: false,
            },
            MaskEntry {
                table: 1,
                column: 2,
                kind: MaskKind::Redact,
                rule: 4,
                predicates: false,
            },
        ];
    }
    write(&p).expect("the policy lays out")
}

/// The analyst of [`Grant::Narrowed`] with a byte rate (rule 4, "rate …").
pub fn policy_rated(
    bytes_per_second: u64,
    burst_bytes: u64,
    scope: RateScope,
    on_exceed: OnExceed,
) -> Vec<u8> {
    let mut p = compiled(&[], Grant::Narrowed);
    p.rules.push(rule(9, RuleKind::Rate, "rate bytes=…"));
    for r in &mut p.roles {
        r.rates = vec![RateLimit {
            bytes_per_second,
            burst_bytes,
            scope,
            on_exceed,
            rule: 4,
        }];
    }
    write(&p).expect("the policy lays out")
}

fn compiled(extra_roles: &[&str], grant: Grant) -> CompiledPolicy {
    let cols = |names: &[&str]| {
        names
            .iter()
            .map(|n| ColumnDecl {
                name: (*n).into(),
                tags: vec![],
            })
            .collect()
    };
    let p = CompiledPolicy {
        source_digest: [0; 32],
        catalog: Catalog {
            aliases: vec![],
            tables: vec![
                TableDecl {
                    schema: "public".into(),
                    name: "orders".into(),
                    columns: cols(&["id", "customer_id", "total"]),
                    tags: vec![],
                },
                TableDecl {
                    schema: "public".into(),
                    name: "customers".into(),
                    columns: cols(&["id", "name", "ssn"]),
                    tags: vec![],
                },
            ],
            functions: vec![],
        },
        rules: vec![
            rule(3, RuleKind::Allow, "allow select orders"),
            rule(4, RuleKind::Allow, "allow select customers id name"),
            rule(5, RuleKind::Allow, "allow transaction session"),
            rule(6, RuleKind::Allow, "allow-function pg_catalog.*"),
        ],
        roles: vec![],
    };
    let mut p = p;
    let customers = match grant {
        Grant::Standard => Some(ColumnAccess::Only(vec![0, 1])),
        Grant::Narrowed => None,
        Grant::Widened | Grant::Removed => Some(ColumnAccess::All),
    };
    let mut roles: Vec<CompiledRole> = extra_roles
        .iter()
        .map(|name| {
            let mut r = analyst(Some(ColumnAccess::All), true);
            r.name = (*name).into();
            r
        })
        .collect();
    if grant != Grant::Removed {
        roles.push(analyst(customers, grant != Grant::Standard));
    }
    // Role ids are positions in name order, as the compiler assigns them.
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    p.roles = roles;
    p
}

fn analyst(customers: Option<ColumnAccess>, cursors: bool) -> CompiledRole {
    let mut cells = vec![
        CellEntry {
            class: C::Select,
            table: Some(0),
            cell: allow(0, ColumnAccess::All),
        },
        CellEntry {
            class: C::Select,
            table: None,
            cell: allow(0, ColumnAccess::All),
        },
        CellEntry {
            class: C::Insert,
            table: Some(0),
            cell: allow(0, ColumnAccess::All),
        },
        CellEntry {
            class: C::CopyIn,
            table: Some(0),
            cell: allow(0, ColumnAccess::All),
        },
        CellEntry {
            class: C::Transaction,
            table: None,
            cell: allow(2, ColumnAccess::All),
        },
        CellEntry {
            class: C::Session,
            table: None,
            cell: allow(2, ColumnAccess::All),
        },
    ];
    if let Some(columns) = customers {
        cells.push(CellEntry {
            class: C::Select,
            table: Some(1),
            cell: allow(1, columns),
        });
    }
    for class in [C::Cursor, C::Prepare, C::Notify] {
        if cursors {
            cells.push(CellEntry {
                class,
                table: None,
                cell: allow(2, ColumnAccess::All),
            });
        }
    }
    cells.sort_by_key(|c| (c.class as u8, c.table));
    CompiledRole {
        groups: None,
        name: "analyst".into(),
        members: vec![],
        cells,
        functions: vec![],
        patterns: vec![PatternRule {
            kind: PatternKind::Function,
            classes: ClassSet::ALL,
            pattern: "pg_catalog.*".into(),
            effect: Effect::Allow,
            rule: 3,
        }],
        masks: vec![],
        limits: Limits::default(),
        token_use: Default::default(),
        rates: vec![],
        budgets: vec![],
        delegation: Default::default(),
    }
}

/// Accepts the token "good" (acting through `agent-7`), "good-own" (no delegation),
/// "good-deep" (two actors) and "good-expiring", which expires at t=1000 s.
pub struct TestAuth;

impl Authenticator for TestAuth {
    fn authenticate(
        &self,
        _user: &str,
        token: &str,
        table: &Table<'_>,
        _now_unix: u64,
    ) -> Result<Identity, String> {
        let expires = match token {
            "good" | "good-no-jti" | "good-bound" | "good-own" | "good-deep" => u64::MAX / 2,
            "good-expiring" => 1000,
            _ => return Err("signature does not verify".into()),
        };
        Ok(Identity {
            subject: "alice@example.com".into(),
            // "good-own": the subject's own session; "good-deep": a tool the agent runs.
            actors: match token {
                "good-own" => vec![],
                "good-deep" => vec!["tool".into(), "agent-7".into()],
                _ => vec!["agent-7".into()],
            },
            issuer: "https://idp.test".into(),
            token_id: (token != "good-no-jti").then(|| token.to_string()),
            // "good-bound": bound to the certificate whose DER is `b"client-cert"`.
            bound_cert: (token == "good-bound").then(|| pgate::tls::thumbprint(b"client-cert")),
            role: table.role("analyst").ok_or("no role")?,
            role_name: "analyst".into(),
            variant: None,
            expires_at_unix: expires,
            claims: Default::default(),
        })
    }
}

// ---------------------------------------------------------------- client side

pub fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut m = Vec::new();
    pgate_core::client::write_startup(&mut m, params.iter().copied());
    m
}

pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    wire::write_message(&mut v, tag, body);
    v
}

pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

pub fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', &cstr(sql))
}

pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = cstr(name);
    b.extend(cstr(sql));
    b.extend_from_slice(&0i16.to_be_bytes());
    msg(b'P', &b)
}

pub fn bind(portal: &str, stmt: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(cstr(stmt));
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    msg(b'B', &b)
}

pub fn execute(portal: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend_from_slice(&0i32.to_be_bytes());
    msg(b'E', &b)
}

/// Execute with a row limit (the portal is suspended after that many rows).
pub fn execute_n(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend_from_slice(&max_rows.to_be_bytes());
    msg(b'E', &b)
}

pub fn sync() -> Vec<u8> {
    msg(b'S', &[])
}

/// Splits bytes into (tag, body) messages.
pub fn messages(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Ok(Some(f)) = frame(b, 1 << 30) {
        out.push((f.tag, f.body.to_vec()));
        b = &b[f.len..];
    }
    assert!(b.is_empty(), "trailing partial message: {b:?}");
    out
}

pub fn tags(m: &[(u8, Vec<u8>)]) -> String {
    m.iter().map(|(t, _)| char::from(*t)).collect()
}

pub fn error_field(body: &[u8], field: u8) -> String {
    let mut i = 0;
    while i < body.len() && body[i] != 0 {
        let f = body[i];
        let end = body[i + 1..].iter().position(|b| *b == 0).unwrap() + i + 1;
        if f == field {
            return String::from_utf8_lossy(&body[i + 1..end]).into_owned();
        }
        i = end + 1;
    }
    String::new()
}

// ---------------------------------------------------------------- fake server

/// A tiny PostgreSQL: trust auth, answers queries with one row, records what it received.
#[derive(Default)]
pub struct FakeServer {
    pub received: Vec<(u8, Vec<u8>)>,
    pub startup_params: Vec<(String, String)>,
    pub queries: Vec<String>,
    pub started: bool,
    /// Answer startup with md5 authentication first.
    pub md5: bool,
    pub password_seen: Option<Vec<u8>>,
    pub last_parsed: String,
    pub in_copy: bool,
    /// The copy was started by a simple Query: its end brings ReadyForQuery.
    pub copy_simple: bool,
    /// Answer startup with SCRAM-SHA-256 for this password (server side of RFC 5802).
    pub scram_password: Option<String>,
    /// SCRAM state: the client-first-bare and server-first messages, once seen.
    pub scram_messages: Option<(String, String)>,
    /// Whether the client's SCRAM proof verified.
    pub scram_verified: bool,
    /// A server (or a man in the middle) that answers SCRAM's first step with
    /// AuthenticationOk, never proving it knows the password.
    pub scram_skip_proof: bool,
    /// Execute fails (ErrorResponse), and, as PostgreSQL does, everything up to Sync is
    /// then skipped.
    pub fail_executes: bool,
    pub skipping: bool,
    /// The transaction status ReadyForQuery reports ('I' or 'T'), following BEGIN,
    /// COMMIT and ROLLBACK in simple queries.
    pub tx: u8,
    /// A simple-query statement containing this text fails (ErrorResponse), and the rest
    /// of its string does not run.
    pub fail_on: Option<String>,
    /// DataRows each SELECT sends (0: one).
    pub rows: usize,
    /// A SELECT is cancelled after its rows (57014 in place of CommandComplete), as when
    /// pgate's CancelRequest reaches it in time; its transaction fails.
    pub cancel_wins: bool,
}

impl FakeServer {
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.started {
            let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            let body = &bytes[8..len];
            let mut parts = body.split(|b| *b == 0);
            while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                if k.is_empty() {
                    break;
                }
                self.startup_params.push((
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                ));
            }
            bytes = &bytes[len..];
            self.started = true;
            if self.md5 {
                out.extend(msg(b'R', &[0, 0, 0, 5, 1, 2, 3, 4]));
                return out;
            }
            if self.scram_password.is_some() {
                let mut b = 10i32.to_be_bytes().to_vec();
                b.extend_from_slice(b"SCRAM-SHA-256\0\0");
                out.extend(msg(b'R', &b));
                return out;
            }
            self.ready_after_auth(&mut out);
        }
        while let Ok(Some(f)) = frame(bytes, 1 << 30) {
            bytes = &bytes[f.len..];
            self.received.push((f.tag, f.body.to_vec()));
            let m = parse_frontend(&f).unwrap();
            if self.skipping {
                if matches!(m, Frontend::Sync) {
                    self.skipping = false;
                    out.extend(msg(b'Z', &[self.status()]));
                }
                continue;
            }
            if self.in_copy {
                // "The backend will ignore Flush and Sync messages received during
                // copy-in mode."
                match m {
                    Frontend::CopyDone => {
                        self.in_copy = false;
                        out.extend(msg(b'C', &cstr("COPY 1")));
                        if std::mem::take(&mut self.copy_simple) {
                            out.extend(msg(b'Z', &[self.status()]));
                        }
                    }
                    Frontend::CopyData(_) | Frontend::Sync | Frontend::Flush => {}
                    // PostgreSQL: 08P01, the COPY fails, the rest is skipped to Sync.
                    _ => {
                        self.in_copy = false;
                        self.error(
                            &mut out,
                            "08P01",
                            "unexpected message type during COPY from stdin",
                        );
                        self.skipping = !std::mem::take(&mut self.copy_simple);
                    }
                }
                continue;
            }
            match m {
                Frontend::Password(p) if self.scram_password.is_some() => {
                    self.scram_step(p, &mut out);
                }
                Frontend::Password(p) => {
                    self.password_seen = Some(p.to_vec());
                    self.ready_after_auth(&mut out);
                }
                Frontend::Query { sql } if sql.to_ascii_lowercase().contains("stdin") => {
                    self.queries.push(sql.to_owned());
                    out.extend(msg(b'G', &[0, 0, 0]));
                    self.in_copy = true;
                    self.copy_simple = true;
                }
                Frontend::Query { sql } => {
                    self.queries.push(sql.to_owned());
                    for part in sql.split(';').filter(|s| !s.trim().is_empty()) {
                        let w = part.trim().to_ascii_lowercase();
                        let exit = w == "commit" || w == "rollback";
                        if self.tx == b'E' && w.starts_with("rollback to") {
                            self.tx = b'T';
                            out.extend(msg(b'C', &cstr("ROLLBACK")));
                            continue;
                        }
                        if self.tx == b'E' && exit {
                            self.tx = b'I';
                            out.extend(msg(b'C', &cstr("ROLLBACK")));
                            continue;
                        }
                        if self.tx == b'E' {
                            self.error(&mut out, "25P02", "current transaction is aborted");
                            break;
                        }
                        if self.fail_on.as_deref().is_some_and(|f| part.contains(f)) {
                            self.error(&mut out, "42P05", "already exists");
                            break;
                        }
                        if w == "begin" {
                            self.tx = b'T';
                        } else if w == "commit" || w == "rollback" {
                            self.tx = b'I';
                        }
                        out.extend(msg(b'T', &[0, 0]));
                        let rows = w.starts_with("select") || w.starts_with("fetch");
                        if !self.select_rows(&mut out, rows) {
                            break;
                        }
                    }
                    out.extend(msg(b'Z', &[self.status()]));
                }
                // pgate's marker for a refused message: PostgreSQL rejects it in parse
                // analysis, after its aborted-transaction check.
                Frontend::Parse { sql, .. } if sql.contains("pgate refused") => {
                    let code = if self.tx == b'E' { "25P02" } else { "42P10" };
                    self.error(&mut out, code, "ORDER BY position 2 is not in select list");
                    self.skipping = true;
                }
                Frontend::Parse { .. } | Frontend::Bind { .. } if self.tx == b'E' => {
                    self.error(&mut out, "25P02", "current transaction is aborted");
                    self.skipping = true;
                }
                Frontend::Parse { sql, .. } if sql.contains("no_such_column") => {
                    self.error(&mut out, "42703", "column does not exist");
                    self.skipping = true;
                }
                Frontend::Parse { sql, .. } => {
                    self.queries.push(sql.to_owned());
                    self.last_parsed = sql.to_owned();
                    out.extend(msg(b'1', &[]));
                }
                Frontend::Bind { .. } => out.extend(msg(b'2', &[])),
                Frontend::Execute { .. } if self.fail_executes => {
                    self.error(&mut out, "22012", "division by zero");
                    self.skipping = true;
                }
                Frontend::Close { .. } => out.extend(msg(b'3', &[])),
                Frontend::Describe { kind: b'S', .. } => {
                    out.extend(msg(b't', &[0, 0]));
                    out.extend(msg(b'T', &[0, 0]));
                }
                Frontend::Execute { .. } if self.last_parsed.contains("STDIN") => {
                    out.extend(msg(b'G', &[0, 0, 0]));
                    self.in_copy = true;
                }
                // DML reports its row count in CommandComplete only.
                Frontend::Execute { .. } if self.last_parsed.starts_with("insert") => {
                    out.extend(msg(b'C', &cstr("INSERT 0 3")));
                }
                // A row limit: that many rows, then PortalSuspended (the portal never ends).
                Frontend::Execute { max_rows, .. } if max_rows > 0 => {
                    for _ in 0..max_rows {
                        out.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'1']));
                    }
                    out.extend(msg(b's', &[]));
                }
                Frontend::Execute { .. } => self.skipping = !self.select_rows(&mut out, true),
                Frontend::Sync => out.extend(msg(b'Z', &[self.status()])),
                _ => {}
            }
        }
        out
    }

    /// A statement's rows and its end (a SELECT's as `rows` and `cancel_wins` say); false
    /// if it failed (cancelled).
    fn select_rows(&mut self, out: &mut Vec<u8>, select: bool) -> bool {
        let n = if select { self.rows.max(1) } else { 1 };
        for _ in 0..n {
            out.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'1']));
        }
        if self.cancel_wins && select {
            self.error(out, "57014", "canceling statement due to user request");
            return false;
        }
        out.extend(msg(b'C', &cstr(&format!("SELECT {n}"))));
        true
    }

    /// The server side of SCRAM-SHA-256, with a fixed salt and server nonce.
    fn scram_step(&mut self, p: &[u8], out: &mut Vec<u8>) {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD;
        use hmac::{Hmac, Mac};
        use sha2::{Digest, Sha256};
        let mac = |k: &[u8], d: &[u8]| -> Vec<u8> {
            let mut m = Hmac::<Sha256>::new_from_slice(k).unwrap();
            m.update(d);
            m.finalize().into_bytes().to_vec()
        };
        let salt = b"fixed-salt";
        match self.scram_messages.take() {
            None => {
                // SASLInitialResponse: mechanism, Int32 length, client-first.
                let end = p.iter().position(|b| *b == 0).unwrap();
                assert_eq!(&p[..end], b"SCRAM-SHA-256");
                let first = std::str::from_utf8(&p[end + 5..]).unwrap();
                let bare = first.strip_prefix("n,,").unwrap().to_owned();
                let cnonce = bare.strip_prefix("n=,r=").unwrap();
                let server_first =
                    format!("r={cnonce}SERVERNONCE,s={},i=4096", STANDARD.encode(salt));
                if self.scram_skip_proof {
                    self.ready_after_auth(out);
                    return;
                }
                let mut b = 11i32.to_be_bytes().to_vec();
                b.extend_from_slice(server_first.as_bytes());
                out.extend(msg(b'R', &b));
                self.scram_messages = Some((bare, server_first));
            }
            Some((bare, server_first)) => {
                let fin = std::str::from_utf8(p).unwrap();
                let (without_proof, proof) = fin.rsplit_once(",p=").unwrap();
                let auth = format!("{bare},{server_first},{without_proof}");
                // Hi(password, salt, 4096)
                let pw = self.scram_password.clone().unwrap();
                let mut s1 = salt.to_vec();
                s1.extend_from_slice(&1u32.to_be_bytes());
                let mut u = mac(pw.as_bytes(), &s1);
                let mut salted = u.clone();
                for _ in 1..4096 {
                    u = mac(pw.as_bytes(), &u);
                    for (o, x) in salted.iter_mut().zip(&u) {
                        *o ^= x;
                    }
                }
                let stored = Sha256::digest(mac(&salted, b"Client Key")).to_vec();
                let sig = mac(&stored, auth.as_bytes());
                let key: Vec<u8> = STANDARD
                    .decode(proof)
                    .unwrap()
                    .iter()
                    .zip(&sig)
                    .map(|(a, b)| a ^ b)
                    .collect();
                self.scram_verified = Sha256::digest(&key).to_vec() == stored;
                let server_sig = mac(&mac(&salted, b"Server Key"), auth.as_bytes());
                let mut b = 12i32.to_be_bytes().to_vec();
                b.extend_from_slice(format!("v={}", STANDARD.encode(server_sig)).as_bytes());
                out.extend(msg(b'R', &b));
                self.ready_after_auth(out);
            }
        }
    }

    /// Messages received that carry or run a statement (Query, Parse, Bind, Describe,
    /// Execute, FunctionCall), pgate's refusal markers excepted: what "nothing reached the
    /// server" counts.
    pub fn statements_received(&self) -> usize {
        self.received
            .iter()
            .filter(|(t, body)| match t {
                b'P' => !String::from_utf8_lossy(body).contains("pgate refused"),
                b'Q' | b'B' | b'D' | b'E' | b'F' => true,
                _ => false,
            })
            .count()
    }

    /// pgate's refusal markers received.
    pub fn markers_received(&self) -> usize {
        self.received
            .iter()
            .filter(|(t, body)| {
                *t == b'P' && String::from_utf8_lossy(body).contains("pgate refused")
            })
            .count()
    }

    /// An ErrorResponse; inside a transaction block, the block fails.
    fn error(&mut self, out: &mut Vec<u8>, code: &str, text: &str) {
        let mut e = format!("SERROR\0VERROR\0C{code}\0M{text}\0").into_bytes();
        e.push(0);
        out.extend(msg(b'E', &e));
        if self.tx == b'T' {
            self.tx = b'E';
        }
    }

    fn status(&self) -> u8 {
        if self.tx == 0 { b'I' } else { self.tx }
    }

    pub fn ready_after_auth(&mut self, out: &mut Vec<u8>) {
        out.extend(msg(b'R', &[0, 0, 0, 0]));
        out.extend(msg(b'S', b"server_version\x0015.0\x00"));
        // The real key: must never reach the client.
        out.extend(msg(b'K', &[0, 0, 0x30, 0x39, 0xDE, 0xAD, 0xBE, 0xEF]));
        out.extend(msg(b'Z', b"I"));
    }
}

// ---------------------------------------------------------------- harness

pub struct Sim {
    pub table: Vec<u8>,
    pub session: Session,
    pub server: FakeServer,
    pub actions: Vec<Action>,
    pub t: Clock,
    /// A parked upstream connection the next ConnectUpstream takes instead of a new one.
    pub reuse: Option<pgate::reuse::Parked>,
    /// Audit lines taken out of the session when a full batch of them paused its input
    /// (as the driver ships them); [`audit_lines`] reads these first.
    pub audit_backlog: String,
    /// The worker's classifier buffers, lent to the session per call.
    pub scratch: pgate::session::Scratch,
}

impl Sim {
    pub fn new(cfg: SessionConfig) -> Self {
        Sim::at(cfg, "127.0.0.1:5555", 1)
    }

    /// A session for a client at `client`, connection number `seq`.
    pub fn at(cfg: SessionConfig, client: &str, seq: u64) -> Self {
        Sim {
            table: policy(),
            session: Session::new(
                cfg,
                ConnId {
                    instance: 0xabc,
                    seq,
                },
                client,
                Entropy {
                    cancel_key: (4242, 777),
                    scram_nonce: [9; NONCE_BYTES],
                },
                Clock {
                    mono_us: 1,
                    unix_ms: 500_000,
                },
            ),
            server: FakeServer::default(),
            reuse: None,
            audit_backlog: String::new(),
            scratch: pgate::session::Scratch::default(),
            actions: vec![],
            t: Clock {
                mono_us: 1,
                unix_ms: 500_000,
            },
        }
    }

    pub fn plaintext() -> Self {
        Sim::new(SessionConfig {
            allow_plaintext_auth: true,
            upstream_user: "pgate_upstream".into(),
            ..SessionConfig::default()
        })
    }

    /// Sends client bytes, runs the exchange with the server to quiescence, returns what
    /// the client received.
    pub fn client(&mut self, bytes: &[u8]) -> Vec<u8> {
        let table = Table::parse(&self.table).unwrap();
        self.t.mono_us += 10;
        let n = self
            .session
            .handle_client(bytes, &table, &TestAuth, self.t, &mut self.scratch);
        assert!(
            n == bytes.len() || self.session.is_closed(),
            "session left {} bytes unconsumed",
            bytes.len() - n
        );
        self.pump()
    }

    pub fn pump(&mut self) -> Vec<u8> {
        for _ in 0..10 {
            while let Some(a) = self.session.poll_action() {
                if a == Action::ConnectUpstream {
                    match self.reuse.take() {
                        Some(p) => assert!(self.session.upstream_reused(&p), "{p:?}"),
                        None => self.session.upstream_connected(),
                    }
                }
                self.actions.push(a);
            }
            let up = self.session.poll_upstream().to_vec();
            self.session.upstream_written(up.len());
            if up.is_empty() {
                break;
            }
            let reply = self.server.feed(&up);
            self.t.mono_us += 10;
            let mut n = self.session.handle_upstream(&reply, self.t);
            // A full batch of audit lines pauses the input: take them, as the driver does.
            while n < reply.len()
                && self.session.poll_audit().len() >= pgate::session::AUDIT_BATCH_BYTES
            {
                self.audit_backlog.push_str(self.session.poll_audit());
                self.session.audit_taken();
                n += self.session.handle_upstream(&reply[n..], self.t);
            }
            assert!(n == reply.len() || self.session.is_closed());
        }
        let out = self.session.poll_client().to_vec();
        self.session.client_written(out.len());
        out
    }

    pub fn connect(&mut self) -> Vec<(u8, Vec<u8>)> {
        self.connect_with("good")
    }

    /// Logs in with `token` (one [`TestAuth`] knows).
    pub fn connect_with(&mut self, token: &str) -> Vec<(u8, Vec<u8>)> {
        let r = self.client(&startup(&[("user", "analyst"), ("database", "app")]));
        assert_eq!(messages(&r), vec![(b'R', vec![0, 0, 0, 3])]);
        messages(&self.client(&msg(b'p', &cstr(token))))
    }
}

/// Swaps the table the "driver" holds and tells the session, as the runtime does.
pub fn swap(s: &mut Sim, table: Vec<u8>) -> Vec<u8> {
    s.table = table;
    let t = Table::parse(&s.table).unwrap();
    s.session.handle_table(&t, &TestAuth);
    s.pump()
}

/// The audit lines the session produced since the last call, parsed.
pub fn audit_lines(s: &mut Sim) -> Vec<serde_json::Value> {
    let mut a = std::mem::take(&mut s.audit_backlog);
    a.push_str(s.session.poll_audit());
    s.session.audit_taken();
    a.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
