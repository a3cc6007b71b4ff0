//! PostgreSQL as the oracle of pgate's refusals: each scenario runs twice, message for
//! message — once through pgate with a statement the policy denies, once straight to
//! PostgreSQL (over its trusted socket, as a role without the privilege) with a statement
//! PostgreSQL itself refuses — and the two transcripts must be equal: every response,
//! every CommandComplete tag, every ReadyForQuery status, every SQLSTATE after the
//! refusal (25P02, ROLLBACK for COMMIT), and what the database holds afterwards.
//!
//! In the simple protocol PostgreSQL refuses the same text pgate denies (42501, no
//! privilege on `customers.ssn`). In the extended protocol pgate refuses at Parse, where
//! PostgreSQL's privilege check comes only at Execute; the oracle statement there is one
//! PostgreSQL refuses at Parse (an unknown column, 42703), and the two codes are compared
//! as "refused".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

mod common;
mod live;
use common::{bind, execute, msg, parse, query, sync};
use live::*;

const DENIED: &str = "select ssn from customers";
/// Refused by PostgreSQL's privilege check (at execution) for the oracle role.
const PG_REFUSED_AT_EXECUTE: &str = "select ssn from customers";
/// Refused by PostgreSQL's parse analysis.
const PG_REFUSED_AT_PARSE: &str = "select no_such_column from customers";
const ORACLE_ROLE: &str = "pgate_oracle";

fn describe_statement(name: &str) -> Vec<u8> {
    let mut b = vec![b'S'];
    b.extend_from_slice(name.as_bytes());
    b.push(0);
    msg(b'D', &b)
}

/// One round trip's messages, sent in one write.
type Step = Vec<u8>;

/// A scenario: steps built from the refused statement and a tag unique to the run.
struct Scenario {
    name: &'static str,
    extended: bool,
    steps: fn(refused: &str, tag: &str) -> Vec<Step>,
}

fn insert(tag: &str) -> String {
    format!("insert into events(payload) values ('{tag}')")
}

fn count(tag: &str) -> Step {
    query(&format!(
        "select count(*) from events where payload = '{tag}'"
    ))
}

fn pbe(sql: &str) -> Vec<u8> {
    let mut b = parse("", sql);
    b.extend(bind("", ""));
    b.extend(execute(""));
    b
}

fn batch(sqls: &[&str]) -> Step {
    let mut b: Vec<u8> = sqls.iter().flat_map(|s| pbe(s)).collect();
    b.extend(sync());
    b
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "simple, outside a transaction",
        extended: false,
        steps: |x, _| vec![query(x), query("select 1")],
    },
    Scenario {
        name: "simple, inside a transaction: failed block, 25P02, COMMIT is ROLLBACK",
        extended: false,
        steps: |x, t| {
            vec![
                query("begin"),
                query(&insert(t)),
                query(x),
                query("select 1"),
                query("commit"),
                count(t),
            ]
        },
    },
    Scenario {
        name: "simple, refused again inside the failed block",
        extended: false,
        steps: |x, _| vec![query("begin"), query(x), query(x), query("rollback")],
    },
    Scenario {
        name: "simple, savepoint rolled back after the refusal",
        extended: false,
        steps: |x, t| {
            vec![
                query("begin"),
                query("savepoint a"),
                query(x),
                query("rollback to savepoint a"),
                query(&insert(t)),
                query("commit"),
                count(t),
            ]
        },
    },
    Scenario {
        name: "simple, multi-statement string starting with the refused statement",
        extended: false,
        steps: |x, t| vec![query(&format!("{x}; {}", insert(t))), count(t)],
    },
    Scenario {
        name: "simple, pipelined queries",
        extended: false,
        steps: |x, t| {
            let mut all = query(&insert(t));
            all.extend(query(x));
            all.extend(query("select 1"));
            vec![all, count(t)]
        },
    },
    Scenario {
        name: "extended, one batch: the implicit transaction is rolled back",
        extended: true,
        steps: |x, t| vec![batch(&[&insert(t), x, "select 1"]), count(t)],
    },
    Scenario {
        name: "extended, refused first, then the session goes on",
        extended: true,
        steps: |x, _| vec![batch(&[x]), batch(&["select 1"])],
    },
    Scenario {
        name: "extended, Describe of the refused statement",
        extended: true,
        steps: |x, _| {
            let mut b = parse("s", x);
            b.extend(describe_statement("s"));
            b.extend(sync());
            vec![b, batch(&["select 1"])]
        },
    },
    Scenario {
        name: "extended pipeline outside a transaction: only the refused batch fails",
        extended: true,
        steps: |x, t| {
            let mut all = batch(&[&insert(t)]);
            all.extend(batch(&[x]));
            all.extend(batch(&["select 1"]));
            vec![all, count(t)]
        },
    },
    Scenario {
        name: "extended pipeline inside a transaction: the block fails",
        extended: true,
        steps: |x, t| {
            let mut all = batch(&["begin"]);
            all.extend(batch(&[&insert(t)]));
            all.extend(batch(&[x]));
            all.extend(batch(&["select 1"]));
            all.extend(batch(&["commit"]));
            vec![all, count(t)]
        },
    },
];

/// Reads the answers to `step`: one ReadyForQuery per Query and Sync in it.
fn exchange<S: Read + Write>(s: &mut S, step: &[u8], out: &mut Vec<String>) {
    s.write_all(step).unwrap();
    let mut rfqs = 0;
    let mut rest = step;
    while let Ok(Some(f)) = pgate_core::wire::frame(rest, 1 << 30) {
        if matches!(f.tag, b'Q' | b'S') {
            rfqs += 1;
        }
        rest = &rest[f.len..];
    }
    while rfqs > 0 {
        let (tag, body) = read_message(s);
        let h = [tag];
        let field = |c| common::error_field(&body, c);
        let line = match h[0] {
            b'Z' => {
                rfqs -= 1;
                format!("Z {}", char::from(body[0]))
            }
            b'E' => {
                let code = match field(b'C').as_str() {
                    "42501" | "42703" => "refused".to_owned(),
                    c => c.to_owned(),
                };
                format!("E {} {code}", field(b'V'))
            }
            b'C' => format!("C {}", String::from_utf8_lossy(&body[..body.len() - 1])),
            // Rows and descriptions: the same database, so the same bytes.
            b'D' | b'T' | b't' => format!("{} {body:?}", char::from(h[0])),
            // Notices, parameter status, notifications: not part of the answer.
            b'N' | b'S' | b'A' => continue,
            t => char::from(t).to_string(),
        };
        out.push(line);
    }
}

fn transcript<S: Read + Write>(mut s: S, steps: &[Step]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        out.push(format!("-- step {i}"));
        exchange(&mut s, step, &mut out);
    }
    out
}

/// A session straight to PostgreSQL as the oracle role (trusted local socket).
fn direct(e: &Env) -> UnixStream {
    let path = format!("{}/.s.PGSQL.{}", e.socket, e.pg_port);
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut body = 196_608u32.to_be_bytes().to_vec();
    body.extend_from_slice(format!("user\0{ORACLE_ROLE}\0database\0{DB}\0\0").as_bytes());
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    s.write_all(&m).unwrap();
    loop {
        let (tag, b) = read_message(&mut s);
        assert_ne!(tag, b'E', "oracle login: {}", String::from_utf8_lossy(&b));
        if tag == b'Z' {
            return s;
        }
    }
}

/// The oracle role: the privileges the test policy's `analyst` role has on these tables.
fn oracle_role(e: &Env) {
    admin_psql(
        &e.socket,
        &e.pg_port,
        DB,
        &format!(
            "DO $$ BEGIN CREATE ROLE {ORACLE_ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             GRANT SELECT (id, name, email) ON customers TO {ORACLE_ROLE};
             GRANT SELECT, INSERT ON events TO {ORACLE_ROLE};
             GRANT USAGE ON SEQUENCE events_id_seq TO {ORACLE_ROLE};"
        ),
    );
}

#[test]
fn refusals_are_answered_exactly_as_postgresql_answers_its_own_errors() {
    let e = require_env!();
    oracle_role(e);
    let run = std::process::id();
    for (n, sc) in SCENARIOS.iter().enumerate() {
        let pg_refused = if sc.extended {
            PG_REFUSED_AT_PARSE
        } else {
            PG_REFUSED_AT_EXECUTE
        };
        let pg = transcript(
            direct(e),
            &(sc.steps)(pg_refused, &format!("oracle-pg-{run}-{n}")),
        );
        let via = transcript(
            startup_and_auth(e, &good_token(e)),
            &(sc.steps)(DENIED, &format!("oracle-pgate-{run}-{n}")),
        );
        assert!(
            pg.iter().any(|l| l.contains("refused")),
            "{}: the oracle statement was not refused: {pg:#?}",
            sc.name
        );
        assert_eq!(
            via, pg,
            "{}: pgate (left) and PostgreSQL (right) differ",
            sc.name
        );
    }
}

#[test]
fn a_multi_statement_string_with_a_refused_part_runs_none_of_it() {
    // PostgreSQL runs the statements before the failing one and then rolls their implicit
    // transaction back; pgate refuses the whole string before any of it runs. The client
    // sees the same error and status, and the database the same result — only the
    // CommandComplete of the statements before is missing.
    let e = require_env!();
    oracle_role(e);
    let run = std::process::id();
    let steps = |x: &str, t: &str| vec![query(&format!("{}; {x}", insert(t))), count(t)];
    let pg = transcript(
        direct(e),
        &steps(PG_REFUSED_AT_EXECUTE, &format!("oracle-multi-pg-{run}")),
    );
    let via = transcript(
        startup_and_auth(e, &good_token(e)),
        &steps(DENIED, &format!("oracle-multi-pgate-{run}")),
    );
    let without_earlier: Vec<String> = pg
        .iter()
        .filter(|l| !l.starts_with("C INSERT"))
        .cloned()
        .collect();
    assert_ne!(without_earlier, pg, "PostgreSQL ran the insert first");
    assert_eq!(via, without_earlier);
}

#[test]
fn psql_single_transaction_script_with_a_denied_line_commits_nothing() {
    // `psql -1 -f script.sql`: BEGIN, the script, COMMIT. PostgreSQL fails the block at
    // the refused line, and COMMIT ends it as ROLLBACK: nothing of the script stays.
    let e = require_env!();
    let tag = format!("psql-1-{}", std::process::id());
    let script = e.dir.join(format!("{tag}.sql"));
    std::fs::write(
        &script,
        format!("{};\n{DENIED};\n{};\n", insert(&tag), insert(&tag)),
    )
    .unwrap();
    let out = psql(
        e,
        &good_token(e),
        "disable",
        &["-1", "-f", script.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("denied"), "{stderr}");
    assert!(
        stderr.contains("current transaction is aborted"),
        "the line after the denial gets 25P02: {stderr}"
    );
    let left = admin_psql(
        &e.socket,
        &e.pg_port,
        DB,
        &format!("select count(*) from events where payload = '{tag}'"),
    );
    assert_eq!(left, "0", "nothing of the script was committed");
}

#[test]
fn startup_settings_reach_postgresql_as_it_would_read_them_itself() {
    // The quoted encoding a Python driver sends, and settings in `options`, as PostgreSQL
    // itself accepts them: the session shows the values PostgreSQL applied.
    let e = require_env!();
    let s = startup_and_auth_with(
        e,
        &good_token(e),
        &[
            ("client_encoding", "'utf-8'"),
            ("options", "-c statement_timeout=4321 --lock-timeout=1234"),
        ],
    );
    let mut out = Vec::new();
    let mut s = s;
    exchange(
        &mut s,
        &query(
            "select current_setting('client_encoding'), current_setting('statement_timeout'), current_setting('lock_timeout')",
        ),
        &mut out,
    );
    let row = out.iter().find(|l| l.starts_with('D')).unwrap();
    let bytes: Vec<u8> = serde_json_bytes(row);
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("UTF8") && text.contains("4321ms") && text.contains("1234ms"),
        "{text}"
    );
}

/// The bytes of a transcript's `D [..]` line.
fn serde_json_bytes(line: &str) -> Vec<u8> {
    let list = &line[line.find('[').unwrap()..];
    serde_json::from_str(list).unwrap()
}

#[test]
fn drivers_read_the_catalog_metadata_and_nobody_reads_the_credentials() {
    // The test policy grants `tag="pg-metadata"` of the built-in catalog: what drivers
    // read at connect works; the credential catalogs, which a superuser upstream could
    // read, are refused — and PostgreSQL agrees the upstream could have read them.
    let e = require_env!();
    let mut s = startup_and_auth(e, &good_token(e));
    let mut out = Vec::new();
    for sql in [
        "select t.typname, n.nspname from pg_type t join pg_namespace n on n.oid = t.typnamespace where t.oid = 23",
        "select attname from pg_attribute a join pg_class c on c.oid = a.attrelid where c.relname = 'customers' and attnum > 0",
        "select rolname from pg_roles where rolname = current_user",
    ] {
        out.clear();
        exchange(&mut s, &query(sql), &mut out);
        assert!(out.iter().any(|l| l.starts_with('D')), "{sql}: {out:?}");
        assert!(!out.iter().any(|l| l.starts_with('E')), "{sql}: {out:?}");
    }
    for sql in [
        "select rolpassword from pg_authid",
        "select passwd from pg_shadow",
        "select * from pg_user_mappings",
        "select * from pg_statistic",
    ] {
        out.clear();
        exchange(&mut s, &query(sql), &mut out);
        assert!(out.iter().any(|l| l == "E ERROR refused"), "{sql}: {out:?}");
    }
    let direct = admin_psql(
        &e.socket,
        &e.pg_port,
        DB,
        "select count(*) > 0 from pg_authid where rolpassword is not null",
    );
    assert_eq!(direct, "t", "the upstream superuser could read the hashes");
    let log = std::fs::read_to_string(e.dir.join("pgate-main.log")).unwrap();
    assert_eq!(
        log.matches("upstream user `postgres` is a superuser")
            .count(),
        1,
        "pgate warns once: {log}"
    );
}

#[test]
fn replay_of_a_real_audit_log_decides_as_the_proxy_did() {
    // Statements through pgate, under a search path set in the session; then the audit
    // log replayed: under the same policy nothing changes; under one without the
    // `events` grant, exactly those statements are newly denied.
    let e = require_env!();
    let m = format!("replay{}", std::process::id());
    let mut s = startup_and_auth(e, &good_token(e));
    let mut out = Vec::new();
    for sql in [
        format!("select /* {m} */ count(*) from events"),
        "set search_path = public".to_owned(),
        format!("select /* {m} */ name from customers"),
        format!("select /* {m} */ ssn from customers"),
    ] {
        exchange(&mut s, &query(&sql), &mut out);
    }
    drop(s);
    std::thread::sleep(Duration::from_millis(500));
    let text = std::fs::read_to_string(&e.audit).unwrap();
    let ours: String = text
        .lines()
        .filter(|l| l.contains(&m))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(ours.lines().count(), 3, "{ours}");
    assert!(ours.contains("\"search_path\":[\"public\"]"), "{ours}");
    let replay = |policy: &str| {
        let c = pgate_compile::compile_str("policy.kdl", policy);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        let bytes = c.table_bytes().unwrap();
        let table = pgate_core::table::Table::parse(&bytes).unwrap();
        pgate_compile::replay::replay(&table, ours.as_bytes()).unwrap()
    };
    let same = replay(POLICY);
    assert_eq!(same.changes(), 0, "{same:#?}");
    assert_eq!(same.roles["analyst"].unchanged, 3);
    let narrowed = replay(&POLICY.replace(
        r#"allow "select" "insert" "copy-in" "copy-out" table="public.events""#,
        r#"allow "insert" table="public.events""#,
    ));
    let a = &narrowed.roles["analyst"];
    assert_eq!(a.newly_denied.len(), 1, "{narrowed:#?}");
    assert!(a.newly_denied[0].sql.contains("from events"));
    assert!(a.newly_allowed.is_empty());
}
