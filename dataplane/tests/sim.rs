//! Client ↔ session ↔ server simulation, no sockets: the session core is fed bytes from a
//! scripted client and a small fake PostgreSQL, and every byte each side receives is
//! checked.

use pgate::session::{Action, Authenticator, Clock, Identity, Session, SessionConfig};
use pgate_core::class::{ClassSet, StatementClass as C};
use pgate_core::table::model::*;
use pgate_core::table::{Table, write};
use pgate_core::wire::{self, Frontend, frame, parse_frontend};

// ---------------------------------------------------------------- policy

fn rule(line: u32, kind: RuleKind, text: &str) -> RuleInfo {
    RuleInfo {
        file: "roles/analyst.kdl".into(),
        line,
        column: 5,
        kind,
        role: "analyst".into(),
        text: text.into(),
    }
}

fn allow(rule: u32, columns: ColumnAccess) -> Cell {
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
fn policy() -> Vec<u8> {
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
        roles: vec![CompiledRole {
            name: "analyst".into(),
            members: vec![],
            cells: vec![
                CellEntry {
                    class: C::Select,
                    table: Some(0),
                    cell: allow(0, ColumnAccess::All),
                },
                CellEntry {
                    class: C::Select,
                    table: Some(1),
                    cell: allow(1, ColumnAccess::Only(vec![0, 1])),
                },
                CellEntry {
                    class: C::Select,
                    table: None,
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
            ],
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
            rates: vec![],
        }],
    };
    write(&p)
}

/// Accepts the token "good" (and "good-expiring", which expires at t=1000 s).
struct TestAuth;

impl Authenticator for TestAuth {
    fn authenticate(
        &self,
        _user: &str,
        token: &str,
        table: &Table<'_>,
        _now_unix: u64,
    ) -> Result<Identity, String> {
        let expires = match token {
            "good" => u64::MAX / 2,
            "good-expiring" => 1000,
            _ => return Err("signature does not verify".into()),
        };
        Ok(Identity {
            subject: "alice@example.com".into(),
            actors: vec!["agent-7".into()],
            role: table.role("analyst").ok_or("no role")?,
            role_name: "analyst".into(),
            expires_at_unix: expires,
        })
    }
}

// ---------------------------------------------------------------- client side

fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = wire::PROTOCOL_3_0.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    wire::write_message(&mut v, tag, body);
    v
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', &cstr(sql))
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = cstr(name);
    b.extend(cstr(sql));
    b.extend_from_slice(&0i16.to_be_bytes());
    msg(b'P', &b)
}

fn bind(portal: &str, stmt: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(cstr(stmt));
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    msg(b'B', &b)
}

fn execute(portal: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend_from_slice(&0i32.to_be_bytes());
    msg(b'E', &b)
}

fn sync() -> Vec<u8> {
    msg(b'S', &[])
}

/// Splits bytes into (tag, body) messages.
fn messages(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Ok(Some(f)) = frame(b, 1 << 30) {
        out.push((f.tag, f.body.to_vec()));
        b = &b[f.len..];
    }
    assert!(b.is_empty(), "trailing partial message: {b:?}");
    out
}

fn tags(m: &[(u8, Vec<u8>)]) -> String {
    m.iter().map(|(t, _)| char::from(*t)).collect()
}

fn error_field(body: &[u8], field: u8) -> String {
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
struct FakeServer {
    received: Vec<(u8, Vec<u8>)>,
    startup_params: Vec<(String, String)>,
    queries: Vec<String>,
    started: bool,
    /// Answer startup with md5 authentication first.
    md5: bool,
    password_seen: Option<Vec<u8>>,
    last_parsed: String,
    in_copy: bool,
}

impl FakeServer {
    fn feed(&mut self, mut bytes: &[u8]) -> Vec<u8> {
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
            self.ready_after_auth(&mut out);
        }
        while let Ok(Some(f)) = frame(bytes, 1 << 30) {
            bytes = &bytes[f.len..];
            self.received.push((f.tag, f.body.to_vec()));
            let m = parse_frontend(&f).unwrap();
            if self.in_copy {
                // "The backend will ignore Flush and Sync messages received during
                // copy-in mode."
                match m {
                    Frontend::CopyDone => {
                        self.in_copy = false;
                        out.extend(msg(b'C', &cstr("COPY 1")));
                    }
                    Frontend::CopyData(_) | Frontend::Sync | Frontend::Flush => {}
                    _ => panic!("unexpected message in copy-in mode"),
                }
                continue;
            }
            match m {
                Frontend::Password(p) => {
                    self.password_seen = Some(p.to_vec());
                    self.ready_after_auth(&mut out);
                }
                Frontend::Query { sql } => {
                    self.queries.push(sql.to_owned());
                    for _ in sql.split(';').filter(|s| !s.trim().is_empty()) {
                        out.extend(msg(b'T', &[0, 0]));
                        out.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'1']));
                        out.extend(msg(b'C', &cstr("SELECT 1")));
                    }
                    out.extend(msg(b'Z', b"I"));
                }
                Frontend::Parse { sql, .. } => {
                    self.queries.push(sql.to_owned());
                    self.last_parsed = sql.to_owned();
                    out.extend(msg(b'1', &[]));
                }
                Frontend::Bind { .. } => out.extend(msg(b'2', &[])),
                Frontend::Execute { .. } if self.last_parsed.contains("STDIN") => {
                    out.extend(msg(b'G', &[0, 0, 0]));
                    self.in_copy = true;
                }
                Frontend::Execute { .. } => {
                    out.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'1']));
                    out.extend(msg(b'C', &cstr("SELECT 1")));
                }
                Frontend::Sync => out.extend(msg(b'Z', b"I")),
                _ => {}
            }
        }
        out
    }

    fn ready_after_auth(&mut self, out: &mut Vec<u8>) {
        out.extend(msg(b'R', &[0, 0, 0, 0]));
        out.extend(msg(b'S', b"server_version\x0015.0\x00"));
        // The real key: must never reach the client.
        out.extend(msg(b'K', &[0, 0, 0x30, 0x39, 0xDE, 0xAD, 0xBE, 0xEF]));
        out.extend(msg(b'Z', b"I"));
    }
}

// ---------------------------------------------------------------- harness

struct Sim {
    table: Vec<u8>,
    session: Session,
    server: FakeServer,
    actions: Vec<Action>,
    t: Clock,
}

impl Sim {
    fn new(cfg: SessionConfig) -> Self {
        Sim {
            table: policy(),
            session: Session::new(cfg, 1, "127.0.0.1:5555", (4242, 777)),
            server: FakeServer::default(),
            actions: vec![],
            t: Clock {
                mono_us: 1,
                unix_ms: 500_000,
            },
        }
    }

    fn plaintext() -> Self {
        Sim::new(SessionConfig {
            allow_plaintext_auth: true,
            upstream_user: "pgate_upstream".into(),
            ..SessionConfig::default()
        })
    }

    /// Sends client bytes, runs the exchange with the server to quiescence, returns what
    /// the client received.
    fn client(&mut self, bytes: &[u8]) -> Vec<u8> {
        let table = Table::parse(&self.table).unwrap();
        self.t.mono_us += 10;
        let n = self.session.handle_client(bytes, &table, &TestAuth, self.t);
        assert!(
            n == bytes.len() || self.session.is_closed(),
            "session left {} bytes unconsumed",
            bytes.len() - n
        );
        self.pump()
    }

    fn pump(&mut self) -> Vec<u8> {
        for _ in 0..10 {
            while let Some(a) = self.session.poll_action() {
                if a == Action::ConnectUpstream {
                    self.session.upstream_connected();
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
            let n = self.session.handle_upstream(&reply, self.t);
            assert_eq!(n, reply.len());
        }
        let out = self.session.poll_client().to_vec();
        self.session.client_written(out.len());
        out
    }

    fn connect(&mut self) -> Vec<(u8, Vec<u8>)> {
        let r = self.client(&startup(&[("user", "analyst"), ("database", "app")]));
        assert_eq!(messages(&r), vec![(b'R', vec![0, 0, 0, 3])]);
        messages(&self.client(&msg(b'p', &cstr("good"))))
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn startup_authenticates_with_token_and_hides_the_real_cancel_key() {
    let mut s = Sim::plaintext();
    let m = s.connect();
    assert_eq!(tags(&m), "RSKZ");
    assert_eq!(m[0].1, vec![0, 0, 0, 0]);
    // pgate-issued key (4242, 777), not the server's (12345, 0xDEADBEEF).
    let mut k = 4242i32.to_be_bytes().to_vec();
    k.extend(777i32.to_be_bytes());
    assert_eq!(m[2].1, k);
    assert_eq!(
        s.session.cancel_keys().upstream,
        Some((12345, 0xDEADBEEFu32 as i32))
    );
    // The upstream got pgate's user, the client's database.
    assert!(
        s.server
            .startup_params
            .contains(&("user".into(), "pgate_upstream".into()))
    );
    assert!(
        s.server
            .startup_params
            .contains(&("database".into(), "app".into()))
    );
    assert!(s.session.is_ready());
    assert!(s.session.poll_audit().contains("\"event\":\"open\""));
    assert!(s.session.poll_audit().contains("\"act\":[\"agent-7\"]"));
}

#[test]
fn plaintext_tokens_are_refused_unless_configured() {
    let mut s = Sim::new(SessionConfig::default());
    let r = messages(&s.client(&startup(&[("user", "analyst")])));
    assert_eq!(r[0].0, b'E');
    assert_eq!(error_field(&r[0].1, b'C'), "28000");
    assert!(error_field(&r[0].1, b'M').contains("TLS"));
    assert!(s.session.is_closed());
}

#[test]
fn ssl_request_starts_tls_when_available_and_gssenc_is_refused() {
    let mut s = Sim::new(SessionConfig {
        tls_available: true,
        ..SessionConfig::default()
    });
    let mut gss = 8u32.to_be_bytes().to_vec();
    gss.extend(wire::GSSENC_REQUEST_CODE.to_be_bytes());
    assert_eq!(s.client(&gss), b"N");
    let mut ssl = 8u32.to_be_bytes().to_vec();
    ssl.extend(wire::SSL_REQUEST_CODE.to_be_bytes());
    assert_eq!(s.client(&ssl), b"S");
    assert_eq!(s.actions, vec![Action::StartTls]);
    s.session.tls_established();
    let r = s.client(&startup(&[("user", "analyst")]));
    assert_eq!(messages(&r), vec![(b'R', vec![0, 0, 0, 3])]);
}

#[test]
fn bad_token_is_fatal_28p01_and_options_are_refused() {
    let mut s = Sim::plaintext();
    s.client(&startup(&[("user", "analyst")]));
    let r = messages(&s.client(&msg(b'p', &cstr("forged"))));
    assert_eq!(error_field(&r[0].1, b'C'), "28P01");
    assert_eq!(error_field(&r[0].1, b'S'), "FATAL");
    assert!(s.session.is_closed());
    assert!(s.server.startup_params.is_empty(), "no upstream connection");

    let mut s = Sim::plaintext();
    let r = messages(&s.client(&startup(&[
        ("user", "analyst"),
        ("options", "-c search_path=evil"),
    ])));
    assert_eq!(error_field(&r[0].1, b'C'), "0A000");
}

#[test]
fn allowed_query_is_forwarded_and_denied_query_names_its_rule() {
    let mut s = Sim::plaintext();
    s.connect();
    let r = messages(&s.client(&query("select id, total from orders")));
    assert_eq!(tags(&r), "TDCZ");
    assert_eq!(s.server.queries, vec!["select id, total from orders"]);

    let r = messages(&s.client(&query("select ssn from customers")));
    assert_eq!(tags(&r), "EZ");
    assert_eq!(error_field(&r[0].1, b'C'), "42501");
    let m = error_field(&r[0].1, b'M');
    assert!(m.contains("customers") && m.contains("ssn"), "{m}");
    assert_eq!(
        s.server.queries.len(),
        1,
        "denied query never reached the server"
    );

    // The session is still usable.
    let r = messages(&s.client(&query("select name from customers")));
    assert_eq!(tags(&r), "TDCZ");
    let audit = s.session.poll_audit();
    assert!(audit.contains("\"verdict\":\"deny\""));
    assert!(audit.contains("\"verdict\":\"allow\""));
    assert!(audit.contains("\"tables\":[\"public.customers\"]"));
    assert!(audit.contains("\"rows\":1"));
}

#[test]
fn multi_statement_with_one_denied_part_forwards_nothing() {
    let mut s = Sim::plaintext();
    s.connect();
    let r = messages(&s.client(&query("select 1; delete from orders")));
    assert_eq!(tags(&r), "EZ");
    assert!(s.server.queries.is_empty());
}

#[test]
fn denied_parse_skips_to_sync_and_the_session_recovers() {
    let mut s = Sim::plaintext();
    s.connect();
    let mut batch = parse("s1", "delete from orders");
    batch.extend(bind("", "s1"));
    batch.extend(execute(""));
    batch.extend(sync());
    let r = messages(&s.client(&batch));
    assert_eq!(tags(&r), "EZ");
    assert_eq!(error_field(&r[0].1, b'C'), "42501");
    assert!(
        s.server.received.is_empty(),
        "nothing of the batch was forwarded"
    );

    // Bind of the denied statement later is refused too.
    let mut batch = bind("", "s1");
    batch.extend(execute(""));
    batch.extend(sync());
    let r = messages(&s.client(&batch));
    assert_eq!(tags(&r), "EZ");
    assert!(s.server.received.is_empty());

    let mut batch = parse("s2", "select id from orders where id = $1");
    batch.extend(bind("", "s2"));
    batch.extend(execute(""));
    batch.extend(sync());
    let r = messages(&s.client(&batch));
    assert_eq!(tags(&r), "12DCZ");
}

#[test]
fn denial_in_the_middle_of_a_pipelined_batch_keeps_response_order() {
    let mut s = Sim::plaintext();
    s.connect();
    let mut batch = parse("a", "select id from orders");
    batch.extend(bind("", "a"));
    batch.extend(execute(""));
    batch.extend(parse("b", "select ssn from customers"));
    batch.extend(bind("", "b"));
    batch.extend(execute(""));
    batch.extend(sync());
    let r = messages(&s.client(&batch));
    // Results of the allowed part, then the error, then exactly one ReadyForQuery.
    assert_eq!(tags(&r), "12DCEZ");
    let sent: Vec<u8> = s.server.received.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        sent, b"PBES",
        "pgate ended the upstream batch with its own Sync"
    );
    assert!(!s.server.queries.iter().any(|q| q.contains("ssn")));
}

#[test]
fn pipelined_simple_queries_get_their_answers_in_order() {
    let mut s = Sim::plaintext();
    s.connect();
    // Two queries in one write; the second is denied while the first is outstanding.
    let table = Table::parse(&s.table).unwrap();
    let mut both = query("select id from orders");
    both.extend(query("select ssn from customers"));
    s.session.handle_client(&both, &table, &TestAuth, s.t);
    // Nothing for the client yet: the denial waits behind the first query's answer.
    assert!(s.session.poll_client().is_empty());
    let r = messages(&s.pump());
    assert_eq!(tags(&r), "TDCZEZ");
}

#[test]
fn malformed_messages_are_fatal_08p01() {
    for bad in [
        vec![b'Q', 0, 0, 0, 0],
        vec![b'Q', 0xFF, 0xFF, 0xFF, 0xF0],
        vec![b'Q', 0x7F, 0xFF, 0xFF, 0xFF],
        vec![b'Q', 0, 0, 0, 6, b'x', b'y'],
        vec![b'?', 0, 0, 0, 4],
    ] {
        let mut s = Sim::plaintext();
        s.connect();
        let r = messages(&s.client(&bad));
        assert_eq!(r.len(), 1, "{bad:?}");
        assert_eq!(error_field(&r[0].1, b'S'), "FATAL");
        assert_eq!(error_field(&r[0].1, b'C'), "08P01", "{bad:?}");
        assert!(s.session.is_closed());
        assert!(s.server.queries.is_empty());
    }
    // Garbage before startup.
    let mut s = Sim::plaintext();
    let r = messages(&s.client(b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(error_field(&r[0].1, b'C'), "08P01");
}

#[test]
fn cancel_request_is_handed_to_the_driver() {
    let mut s = Sim::plaintext();
    let mut c = 16u32.to_be_bytes().to_vec();
    c.extend(wire::CANCEL_REQUEST_CODE.to_be_bytes());
    c.extend(4242i32.to_be_bytes());
    c.extend(777i32.to_be_bytes());
    assert!(s.client(&c).is_empty());
    assert_eq!(
        s.actions,
        vec![
            Action::Cancel {
                process_id: 4242,
                secret_key: 777
            },
            Action::Close
        ]
    );
}

#[test]
fn md5_upstream_authentication_uses_the_proxy_credential() {
    let mut s = Sim::new(SessionConfig {
        allow_plaintext_auth: true,
        upstream_user: "svc".into(),
        upstream_password: Some("s3cret".into()),
        ..SessionConfig::default()
    });
    s.server.md5 = true;
    let m = s.connect();
    assert_eq!(tags(&m), "RSKZ");
    let expected = postgres_protocol::authentication::md5_hash(b"svc", b"s3cret", [1, 2, 3, 4]);
    let mut e = expected.into_bytes();
    e.push(0);
    assert_eq!(s.server.password_seen, Some(e));
}

#[test]
fn expired_token_ends_the_session() {
    let mut s = Sim::plaintext();
    s.client(&startup(&[("user", "analyst")]));
    s.client(&msg(b'p', &cstr("good-expiring")));
    assert!(s.session.is_ready());
    s.session.handle_timeout(Clock {
        mono_us: 5,
        unix_ms: 999_000,
    });
    assert!(!s.session.is_closed());
    s.session.handle_timeout(Clock {
        mono_us: 6,
        unix_ms: 1_001_000,
    });
    let r = messages(s.session.poll_client());
    assert_eq!(error_field(&r[0].1, b'C'), "28000");
    assert!(error_field(&r[0].1, b'M').contains("expired"));
    assert!(s.session.is_closed());
}

#[test]
fn extended_copy_in_with_pipelined_sync_keeps_responses_in_step() {
    let mut s = Sim::plaintext();
    s.connect();
    // The fake server starts COPY FROM STDIN for any statement mentioning STDIN; a string
    // literal keeps the statement an allowed SELECT for the policy.
    let mut batch = parse("c", "select 'STDIN' from orders");
    batch.extend(bind("", "c"));
    batch.extend(execute(""));
    batch.extend(sync());
    let r = messages(&s.client(&batch));
    assert_eq!(tags(&r), "12G");
    let mut data = msg(b'd', b"1\n");
    data.extend(msg(b'c', &[]));
    data.extend(sync());
    let r = messages(&s.client(&data));
    assert_eq!(tags(&r), "CZ", "one ReadyForQuery: the Sync sent in copy-in mode got none");
    // A denial right after must be answered at once, not wait for a ReadyForQuery that
    // will never come.
    let r = messages(&s.client(&query("select ssn from customers")));
    assert_eq!(tags(&r), "EZ");
}
