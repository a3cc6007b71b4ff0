//! The audit log's lines, fed through the sans-IO session: one true line per statement
//! (its own SQL, rows from CommandComplete, the right status in pipelines) and per
//! connection event (every `open` closed with its cause; refused logins recorded).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;
use common::*;
use serde_json::Value;

fn lines(s: &mut Sim) -> Vec<Value> {
    audit_lines(s)
}

fn batch(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut b: Vec<u8> = parts.concat();
    b.extend(sync());
    b
}

fn pbe(sql: &str) -> Vec<u8> {
    let mut b = parse("", sql);
    b.extend(bind("", ""));
    b.extend(execute(""));
    b
}

#[test]
fn pipelined_statements_each_get_their_own_line_and_row_count() {
    let mut s = Sim::plaintext();
    s.table = policy_with(&[], Grant::Widened);
    s.connect();
    lines(&mut s);
    let mut all = batch(&[
        pbe("insert into orders values (1)"),
        pbe("select total from orders"),
    ]);
    all.extend(batch(&[pbe("select id from customers")]));
    all.extend(query("select 1; select total from orders"));
    s.client(&all);
    let l = lines(&mut s);
    let got: Vec<(&str, &str, u64)> = l
        .iter()
        .map(|v| {
            (
                v["sql"].as_str().unwrap(),
                v["status"].as_str().unwrap(),
                v["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("insert into orders values (1)", "ok", 3),
            ("select total from orders", "ok", 1),
            ("select id from customers", "ok", 1),
            ("select 1", "ok", 1),
            ("select total from orders", "ok", 1),
        ]
    );
    assert!(l.iter().all(|v| v["conn"] == "0000000000000abc-1"));
}

#[test]
fn an_execute_after_a_failed_parse_did_not_run_and_later_lines_stay_true() {
    let mut s = Sim::plaintext();
    s.connect();
    lines(&mut s);
    // The second Parse fails at the server: its Execute never runs. The next batch's
    // statement must not inherit that error.
    let mut all = batch(&[
        pbe("select total from orders"),
        pbe("select no_such_column from orders"),
    ]);
    all.extend(batch(&[pbe("select id from orders")]));
    s.client(&all);
    let l = lines(&mut s);
    let got: Vec<(&str, &str)> = l
        .iter()
        .map(|v| (v["sql"].as_str().unwrap(), v["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("select total from orders", "ok"),
            ("select no_such_column from orders", "not-run"),
            ("select id from orders", "ok"),
        ]
    );
}

#[test]
fn every_open_gets_a_close_with_its_cause() {
    type Ending = fn(&mut Sim);
    let cases: [(&str, Ending); 3] = [
        ("the client sent Terminate", |s| {
            s.client(&msg(b'X', &[]));
        }),
        ("the client closed the connection without Terminate", |s| {
            s.session.client_closed();
        }),
        (
            "FATAL 08006: pgate lost the connection to the database: reset",
            |s| {
                s.session.upstream_closed("reset");
            },
        ),
    ];
    for (cause, end) in cases {
        let mut s = Sim::plaintext();
        s.connect();
        end(&mut s);
        let l = lines(&mut s);
        assert_eq!(l.first().unwrap()["event"], "open");
        let close = l.last().unwrap();
        assert_eq!(close["event"], "close", "{l:?}");
        assert_eq!(close["reason"], cause);
        assert_eq!(close["sub"], "alice@example.com");
    }
}

#[test]
fn a_refused_login_is_audited_with_what_the_token_claims_but_never_the_token() {
    use base64::Engine as _;
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let forged = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"ES256","kid":"k-17"}"#),
        b64(r#"{"sub":"mallory","jti":"j-99","iss":"https://evil"}"#),
        b64("not a signature")
    );
    let mut s = Sim::plaintext();
    s.client(&startup(&[("user", "analyst"), ("database", "app")]));
    let r = s.client(&msg(b'p', &cstr(&forged)));
    assert_eq!(error_field(&messages(&r)[0].1, b'C'), "28P01");
    let a = s.session.poll_audit().to_owned();
    assert!(!a.contains(&forged) && !a.contains("not a signature"));
    let l = lines(&mut s);
    assert_eq!(l.len(), 1, "{l:?}");
    let v = &l[0];
    assert_eq!(v["event"], "login-refused");
    assert_eq!(v["client"], "127.0.0.1:5555");
    assert_eq!(v["user"], "analyst");
    assert_eq!(v["database"], "app");
    assert_eq!(v["token_unverified"]["kid"], "k-17");
    assert_eq!(v["token_unverified"]["sub"], "mallory");
    assert_eq!(v["token_unverified"]["jti"], "j-99");
    assert_eq!(v["sub"], "", "nothing verified is claimed");
    assert!(v["reason"].as_str().unwrap().contains("28P01"));

    // Not a JWT at all, and a startup refused before any token: audited too.
    let mut s = Sim::plaintext();
    s.client(&startup(&[("user", "analyst")]));
    s.client(&msg(b'p', &cstr("hunter2")));
    let l = lines(&mut s);
    assert_eq!(l[0]["event"], "login-refused");
    assert!(l[0].get("token_unverified").is_none());
    assert!(!serde_json::to_string(&l).unwrap().contains("hunter2"));
    let mut s = Sim::new(pgate::session::SessionConfig::default());
    s.client(&startup(&[("user", "analyst")]));
    let l = lines(&mut s);
    assert_eq!(l[0]["event"], "login-refused");
    assert!(l[0]["reason"].as_str().unwrap().contains("requires TLS"));
}

/// Answers to a long pipeline in one read: the session takes them only until a batch of
/// audit lines is full, pauses, and goes on once the driver took the lines — so its audit
/// buffer stays at one batch, and no line is lost.
#[test]
fn a_full_batch_of_audit_lines_pauses_the_upstream_input_until_taken() {
    let mut s = Sim::plaintext();
    s.connect();
    lines(&mut s);
    let table = pgate_core::table::Table::parse(&s.table).unwrap();
    let pipeline: Vec<u8> = (0..600)
        .flat_map(|i| query(&format!("select id, total from orders where id = {i}")))
        .collect();
    let n = s
        .session
        .handle_client(&pipeline, &table, &TestAuth, s.t, &mut s.scratch);
    assert_eq!(n, pipeline.len());
    let up = s.session.poll_upstream().to_vec();
    s.session.upstream_written(up.len());
    let reply = s.server.feed(&up);
    let mut fed = 0;
    let mut batches = 0;
    let mut all = Vec::new();
    while fed < reply.len() {
        let n = s.session.handle_upstream(&reply[fed..], s.t);
        fed += n;
        if fed < reply.len() {
            assert!(
                s.session.upstream_paused(),
                "stopped short only when paused"
            );
            let a = s.session.poll_audit().len();
            assert!(a >= pgate::session::AUDIT_BATCH_BYTES);
            assert!(
                a < pgate::session::AUDIT_BATCH_BYTES + 4096,
                "{a} bytes gathered"
            );
        }
        batches += 1;
        all.extend(lines(&mut s));
        assert!(!s.session.upstream_paused());
    }
    assert!(batches > 2, "{batches} batches");
    let statements = all.iter().filter(|l| l["event"] == "statement").count();
    assert_eq!(statements, 600);
}
