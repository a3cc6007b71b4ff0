//! The session under change and time, without sockets: table swaps (a role inserted before
//! the session's, removed, narrowed, widened), stored statements decided again, the login
//! deadline, the drain, token expiry through `poll_timeout`, and the per-session limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use common::*;
use pgate::session::{Clock, SessionConfig};
use pgate_core::table::Table;

fn digest_hex(table: &[u8]) -> String {
    let d = Table::parse(table).unwrap().digest();
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn code_of(reply: &[u8]) -> Vec<(String, String)> {
    messages(reply)
        .iter()
        .filter(|(t, _)| *t == b'E')
        .map(|(_, b)| (error_field(b, b'C'), error_field(b, b'S')))
        .collect()
}

fn audit(s: &mut Sim) -> String {
    let a = s.session.poll_audit().to_owned();
    s.session.audit_taken();
    a
}

#[test]
fn a_role_inserted_before_the_sessions_keeps_the_session_in_its_own_role() {
    let mut s = Sim::plaintext();
    s.connect();
    assert_eq!(
        code_of(&s.client(&query("select ssn from customers")))[0].0,
        "42501"
    );
    audit(&mut s);
    // "aaa_admin" sorts first: the analyst's role id moves from 0 to 1.
    let new = policy_with(&["aaa_admin"], Grant::Standard);
    let t = Table::parse(&new).unwrap();
    assert_eq!(t.role("aaa_admin").unwrap().0, 0);
    assert_eq!(t.role("analyst").unwrap().0, 1);
    let digest = digest_hex(&new);
    assert!(
        swap(&mut s, new).is_empty(),
        "a rebind says nothing to the client"
    );
    let a = audit(&mut s);
    assert!(a.contains("\"event\":\"rebind\""), "{a}");
    assert!(a.contains(&format!("\"table\":\"{digest}\"")), "{a}");
    // Still the analyst: ssn stays denied, id and name stay allowed.
    let r = s.client(&query("select ssn from customers"));
    assert_eq!(code_of(&r)[0].0, "42501");
    assert!(error_field(&messages(&r)[0].1, b'M').contains("role \"analyst\""));
    let r = s.client(&query("select id, name from customers"));
    assert!(code_of(&r).is_empty());
    assert_eq!(
        s.server.queries.last().unwrap(),
        "select id, name from customers"
    );
    let a = audit(&mut s);
    assert_eq!(
        a.matches(&format!("\"table\":\"{digest}\"")).count(),
        2,
        "{a}"
    );
}

#[test]
fn a_removed_role_ends_the_session_with_fatal_28000_and_an_audit_line() {
    let mut s = Sim::plaintext();
    s.connect();
    audit(&mut s);
    let r = swap(&mut s, policy_with(&["other"], Grant::Removed));
    assert_eq!(code_of(&r), vec![("28000".into(), "FATAL".into())]);
    assert!(s.session.is_closed());
    let a = audit(&mut s);
    assert!(a.contains("\"event\":\"revoked\""), "{a}");
    assert!(a.contains("no longer in the policy"), "{a}");
    assert!(a.contains("\"event\":\"close\""), "{a}");
}

#[test]
fn the_same_table_again_changes_nothing() {
    let mut s = Sim::plaintext();
    s.connect();
    audit(&mut s);
    assert!(swap(&mut s, policy()).is_empty());
    assert_eq!(audit(&mut s), "");
}

#[test]
fn narrowing_decides_prepared_statements_and_sql_prepares_again() {
    let mut s = Sim::plaintext();
    s.table = policy_with(&[], Grant::Widened);
    s.connect();
    let mut b = parse("p1", "select name from customers");
    b.extend(sync());
    assert!(code_of(&s.client(&b)).is_empty());
    let r = s.client(&query("prepare q as select name from customers"));
    assert!(code_of(&r).is_empty());
    let r = s.client(&query(
        "declare c cursor with hold for select ssn from customers",
    ));
    assert!(code_of(&r).is_empty());
    let seen = s.server.statements_received();

    swap(&mut s, policy_with(&[], Grant::Narrowed));
    // Bind of the statement allowed before: decided again, denied, nothing forwarded.
    let mut b = bind("", "p1");
    b.extend(execute(""));
    b.extend(sync());
    let r = s.client(&b);
    assert_eq!(code_of(&r)[0].0, "42501");
    let m = error_field(&messages(&r)[0].1, b'M');
    assert!(m.contains("customers") && m.contains("reload"), "{m}");
    assert_eq!(tags(&messages(&r)), "EZ");
    let r = s.client(&query("execute q"));
    assert_eq!(code_of(&r)[0].0, "42501");
    let r = s.client(&query("fetch 1 from c"));
    assert_eq!(code_of(&r)[0].0, "42501");
    assert_eq!(
        s.server.statements_received(),
        seen,
        "nothing reached the server"
    );
    // Statements allowed by the new table still run.
    assert!(code_of(&s.client(&query("select total from orders"))).is_empty());
}

#[test]
fn a_portal_bound_before_a_swap_is_decided_again_at_execute() {
    let mut s = Sim::plaintext();
    s.connect();
    let mut b = parse("p1", "select id from customers");
    b.extend(bind("por", "p1"));
    // The batch is cut before Execute: the swap comes in between.
    let t = Table::parse(&s.table).unwrap();
    s.t.mono_us += 10;
    assert_eq!(
        s.session
            .handle_client(&b, &t, &TestAuth, s.t, &mut s.scratch),
        b.len()
    );
    s.table = policy_with(&[], Grant::Narrowed);
    let mut e = execute("por");
    e.extend(sync());
    let r = s.client(&e);
    assert_eq!(code_of(&r)[0].0, "42501");
    assert!(
        !s.server.received.iter().any(|(t, _)| *t == b'E'),
        "no Execute upstream"
    );
}

#[test]
fn widening_allows_what_was_denied() {
    let mut s = Sim::plaintext();
    s.connect();
    assert_eq!(
        code_of(&s.client(&query("select ssn from customers")))[0].0,
        "42501"
    );
    swap(&mut s, policy_with(&[], Grant::Widened));
    assert!(code_of(&s.client(&query("select ssn from customers"))).is_empty());
    assert_eq!(
        s.server.queries.last().unwrap(),
        "select ssn from customers"
    );
}

#[test]
fn login_deadline_closes_silent_sockets_and_answers_talking_ones() {
    let cfg = SessionConfig {
        allow_plaintext_auth: true,
        login_timeout_ms: 5_000,
        ..SessionConfig::default()
    };
    // No startup packet: closed without a word at the deadline, as PostgreSQL does.
    let mut s = Sim::new(cfg.clone());
    let deadline = s.session.poll_timeout().unwrap();
    assert_eq!(deadline, 1 + 5_000_000);
    s.session.handle_timeout(Clock {
        mono_us: deadline - 1,
        unix_ms: 500_000,
    });
    assert!(!s.session.is_closed());
    s.session.handle_timeout(Clock {
        mono_us: deadline,
        unix_ms: 505_000,
    });
    assert!(s.session.is_closed());
    assert!(s.session.poll_client().is_empty());

    // A startup packet, then no token.
    let mut s = Sim::new(cfg);
    s.client(&startup(&[("user", "analyst")]));
    s.session.handle_timeout(Clock {
        mono_us: deadline,
        unix_ms: 505_000,
    });
    let r = s.pump();
    assert_eq!(code_of(&r), vec![("57014".into(), "FATAL".into())]);
    // Once logged in, the login deadline no longer applies.
    let mut s = Sim::plaintext();
    s.connect();
    assert_ne!(s.session.poll_timeout(), Some(1 + 60_000_000));
}

#[test]
fn drain_ends_the_session_with_57p01_at_its_deadline_only() {
    let mut s = Sim::plaintext();
    s.connect();
    let d = s.t.mono_us + 1_000_000;
    s.session.handle_drain(d);
    assert_eq!(s.session.poll_timeout(), Some(d));
    // Before the deadline the session works as usual.
    assert!(code_of(&s.client(&query("select total from orders"))).is_empty());
    s.session.handle_timeout(Clock {
        mono_us: d,
        unix_ms: 501_000,
    });
    let r = s.pump();
    assert_eq!(code_of(&r), vec![("57P01".into(), "FATAL".into())]);
    assert!(s.session.is_closed());
}

#[test]
fn token_expiry_is_a_timeout_the_driver_is_asked_for() {
    let mut s = Sim::plaintext();
    s.client(&startup(&[("user", "analyst")]));
    s.client(&msg(b'p', &cstr("good-expiring")));
    assert!(s.session.is_ready());
    // Expires at t = 1000 s; the clock says 500 s: due in 500 s of monotonic time.
    let due = s.session.poll_timeout().unwrap();
    let at = s.t.mono_us;
    assert!(
        (at + 499_000_000..=at + 500_000_000).contains(&due),
        "{due} vs {at}"
    );
    s.session.handle_timeout(Clock {
        mono_us: due,
        unix_ms: 1_000_000,
    });
    let r = s.pump();
    assert_eq!(code_of(&r), vec![("28000".into(), "FATAL".into())]);
}

#[test]
fn cursor_prepare_and_portal_counts_are_capped_with_54000() {
    let mut s = Sim::new(SessionConfig {
        allow_plaintext_auth: true,
        max_cursors: 2,
        max_sql_prepared: 1,
        max_portals: 1,
        ..SessionConfig::default()
    });
    s.table = policy_with(&[], Grant::Widened);
    s.connect();
    for c in ["a", "b"] {
        let sql = format!("declare {c} cursor with hold for select total from orders");
        assert!(code_of(&s.client(&query(&sql))).is_empty());
    }
    let r = s.client(&query(
        "declare c cursor with hold for select total from orders",
    ));
    assert_eq!(code_of(&r)[0].0, "54000");
    // Closing one makes room.
    assert!(code_of(&s.client(&query("close a"))).is_empty());
    let r = s.client(&query(
        "declare c cursor with hold for select total from orders",
    ));
    assert!(code_of(&r).is_empty());

    assert!(code_of(&s.client(&query("prepare x as select total from orders"))).is_empty());
    let r = s.client(&query("prepare y as select total from orders"));
    assert_eq!(code_of(&r)[0].0, "54000");

    let mut s2 = Sim::new(SessionConfig {
        allow_plaintext_auth: true,
        max_listen_channels: 1,
        ..SessionConfig::default()
    });
    s2.table = policy_with(&[], Grant::Widened);
    s2.connect();
    assert!(code_of(&s2.client(&query("listen one"))).is_empty());
    assert!(
        code_of(&s2.client(&query("listen one"))).is_empty(),
        "the same channel again"
    );
    assert_eq!(code_of(&s2.client(&query("listen two")))[0].0, "54000");
    assert!(code_of(&s2.client(&query("unlisten *"))).is_empty());
    assert!(code_of(&s2.client(&query("listen two"))).is_empty());

    let mut b = parse("p", "select total from orders");
    b.extend(bind("one", "p"));
    b.extend(bind("two", "p"));
    b.extend(sync());
    let r = s.client(&b);
    assert_eq!(code_of(&r)[0].0, "54000");
}

#[test]
fn pipelined_bytes_beyond_the_limit_are_fatal_54000() {
    let mut s = Sim::new(SessionConfig {
        allow_plaintext_auth: true,
        max_pipeline_bytes: 2048,
        ..SessionConfig::default()
    });
    s.connect();
    let big = format!("select total from orders where id = {}", "1".repeat(900));
    let mut b = Vec::new();
    for _ in 0..3 {
        b.extend(query(&big));
    }
    // The server answers nothing while the client keeps sending.
    let t = Table::parse(&s.table).unwrap();
    s.session
        .handle_client(&b, &t, &TestAuth, s.t, &mut s.scratch);
    let out = s.session.poll_client().to_vec();
    assert_eq!(code_of(&out), vec![("54000".into(), "FATAL".into())]);
}

fn scram_sim(password: &str) -> Sim {
    let mut s = Sim::new(SessionConfig {
        allow_plaintext_auth: true,
        upstream_password: Some(password.into()),
        ..SessionConfig::default()
    });
    s.server.scram_password = Some("s3cret".into());
    s
}

#[test]
fn upstream_scram_uses_the_nonce_it_is_given_and_checks_the_server() {
    // The same entropy gives the same bytes upstream: the exchange is replayable.
    let mut upstream = Vec::new();
    for _ in 0..2 {
        let mut s = scram_sim("s3cret");
        let m = s.connect();
        assert_eq!(tags(&m), "RSKZ");
        assert!(
            s.server.scram_verified,
            "PostgreSQL's side accepts the proof"
        );
        let sent: Vec<(u8, Vec<u8>)> = s.server.received.clone();
        upstream.push(sent);
    }
    assert_eq!(upstream[0], upstream[1]);
    // The nonce is the driver's: 18 bytes of 9 in the harness, base64 "CQkJ…".
    let first = &upstream[0][0].1;
    assert!(String::from_utf8_lossy(first).contains("n,,n=,r=CQkJCQkJCQkJCQkJCQkJCQkJ"));

    // A wrong password: the proof fails and pgate refuses the server's signature.
    let mut s = scram_sim("wrong");
    s.client(&startup(&[("user", "analyst")]));
    let r = s.client(&msg(b'p', &cstr("good")));
    assert!(!s.server.scram_verified);
    assert_eq!(code_of(&r), vec![("08006".into(), "FATAL".into())]);
}

#[test]
fn a_server_that_skips_the_scram_proof_is_refused() {
    let mut s = scram_sim("s3cret");
    s.server.scram_skip_proof = true;
    s.client(&startup(&[("user", "analyst")]));
    let r = s.client(&msg(b'p', &cstr("good")));
    assert_eq!(code_of(&r), vec![("08006".into(), "FATAL".into())]);
    assert!(!s.session.is_ready());
}

#[test]
fn bytes_pipelined_after_ssl_request_are_left_for_the_driver_to_refuse() {
    let mut s = Sim::new(SessionConfig {
        tls_available: true,
        ..SessionConfig::default()
    });
    let mut b = pgate_core::client::SSL_REQUEST.to_vec();
    b.extend(startup(&[("user", "analyst")]));
    let t = Table::parse(&s.table).unwrap();
    let n = s
        .session
        .handle_client(&b, &t, &TestAuth, s.t, &mut s.scratch);
    assert_eq!(
        n,
        pgate_core::client::SSL_REQUEST.len(),
        "only the SSLRequest is read before the handshake"
    );
}

#[test]
fn a_client_gone_mid_statement_leaves_an_unknown_line_and_asks_for_a_cancel() {
    let mut s = Sim::plaintext();
    s.connect();
    audit(&mut s);
    let t = Table::parse(&s.table).unwrap();
    s.session.handle_client(
        &query("select total from orders"),
        &t,
        &TestAuth,
        s.t,
        &mut s.scratch,
    );
    // Forwarded, not answered: the client disconnects.
    assert!(
        s.session.client_closed(),
        "the upstream is still working: cancel it"
    );
    let a = audit(&mut s);
    assert!(a.contains("\"status\":\"unknown\""), "{a}");
    assert!(a.contains("\"event\":\"close\""), "{a}");
}

fn batch(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut b: Vec<u8> = parts.concat();
    b.extend(sync());
    b
}

#[test]
fn a_denied_parse_leaves_the_statement_the_server_still_holds() {
    let mut s = Sim::plaintext();
    s.connect();
    // T1 is allowed now; T2 (LISTEN) is not — but will be after the swap, while T1 won't.
    assert!(code_of(&s.client(&batch(&[parse("s", "select id from customers")]))).is_empty());
    let r = s.client(&batch(&[parse("t", "listen x")]));
    assert_eq!(code_of(&r)[0].0, "42501");
    swap(&mut s, policy_with(&[], Grant::Narrowed));
    // The server still holds T1 as "s": that is what is decided.
    let r = s.client(&batch(&[bind("", "s"), execute("")]));
    assert_eq!(code_of(&r)[0].0, "42501");
    assert!(error_field(&messages(&r)[0].1, b'M').contains("customers"));
    // "t" was never created.
    let r = s.client(&batch(&[bind("", "t"), execute("")]));
    assert_eq!(code_of(&r)[0].0, "26000");
}

#[test]
fn a_denied_parse_of_the_unnamed_statement_drops_it_as_postgresql_does() {
    let mut s = Sim::plaintext();
    s.connect();
    assert!(code_of(&s.client(&batch(&[parse("", "select id from customers")]))).is_empty());
    // PostgreSQL drops the unnamed statement before parsing a new one, even one that
    // fails; so do the marker and pgate's record.
    let r = s.client(&batch(&[parse("", "select ssn from customers")]));
    assert_eq!(code_of(&r)[0].0, "42501");
    let r = s.client(&batch(&[bind("", ""), execute("")]));
    assert_eq!(code_of(&r)[0].0, "26000", "{:?}", tags(&messages(&r)));
}

#[test]
fn a_parse_the_server_skipped_is_never_recorded() {
    let mut s = Sim::plaintext();
    s.connect();
    assert!(code_of(&s.client(&batch(&[parse("", "select id from customers")]))).is_empty());
    // An Execute fails, so the server skips the Parse after it: the unnamed statement is
    // still T1 there.
    s.server.fail_executes = true;
    let r = s.client(&batch(&[
        bind("", ""),
        execute(""),
        parse("", "select total from orders"),
    ]));
    assert_eq!(tags(&messages(&r)), "2EZ");
    s.server.fail_executes = false;
    swap(&mut s, policy_with(&[], Grant::Narrowed));
    let r = s.client(&batch(&[bind("", ""), execute("")]));
    assert_eq!(
        code_of(&r)[0].0,
        "42501",
        "T1 decided again, not the skipped T2"
    );
}

#[test]
fn a_named_statement_cannot_be_parsed_twice_as_in_postgres() {
    let mut s = Sim::plaintext();
    s.connect();
    assert!(code_of(&s.client(&batch(&[parse("s1", "select total from orders")]))).is_empty());
    let r = s.client(&batch(&[parse("s1", "select id from customers")]));
    assert_eq!(code_of(&r)[0].0, "42P05");
    assert_eq!(
        error_field(&messages(&r)[0].1, b'M'),
        "prepared statement \"s1\" already exists"
    );
    // After a confirmed Close the name is free again.
    let mut close = vec![b'S'];
    close.extend(cstr("s1"));
    assert_eq!(
        tags(&messages(&s.client(&batch(&[msg(b'C', &close)])))),
        "3Z"
    );
    assert!(code_of(&s.client(&batch(&[parse("s1", "select id from customers")]))).is_empty());
}

#[test]
fn a_sql_prepare_of_a_taken_name_does_not_replace_the_stored_text() {
    let mut s = Sim::plaintext();
    s.table = policy_with(&[], Grant::Widened);
    s.connect();
    assert!(code_of(&s.client(&query("prepare p as select ssn from customers"))).is_empty());
    swap(&mut s, policy_with(&[], Grant::Narrowed));
    // PostgreSQL refuses the duplicate name (42P05) and keeps the old p; pgate must not
    // take the new text for it.
    s.server.fail_on = Some("prepare p as".into());
    let r = s.client(&query("prepare p as select total from orders"));
    assert_eq!(code_of(&r)[0].0, "42P05");
    s.server.fail_on = None;
    let r = s.client(&query("execute p"));
    assert_eq!(code_of(&r)[0].0, "42501");
}

#[test]
fn a_pending_parse_of_an_earlier_batch_may_have_been_skipped() {
    let mut s = Sim::plaintext();
    s.connect();
    let b = batch(&[
        parse("ok1", "select total from orders"),
        parse("", "select id from customers"),
    ]);
    assert!(code_of(&s.client(&b)).is_empty());
    swap(&mut s, policy_with(&[], Grant::Narrowed));
    s.server.fail_executes = true;
    // Pipelined: batch 1 fails at its Execute, so the server skips its Parse of the
    // unnamed statement; batch 2 binds the unnamed statement, which may still be the
    // customers query.
    let mut b = batch(&[
        bind("", "ok1"),
        execute(""),
        parse("", "select total from orders"),
    ]);
    b.extend(batch(&[bind("", ""), execute("")]));
    let r = s.client(&b);
    let codes: Vec<String> = code_of(&r).into_iter().map(|c| c.0).collect();
    assert_eq!(codes, ["22012", "42501"], "{:?}", tags(&messages(&r)));
}

#[test]
fn execute_of_a_portal_pgate_does_not_know_is_refused() {
    let mut s = Sim::plaintext();
    s.connect();
    let mut close = vec![b'P'];
    close.extend(cstr(""));
    let b = batch(&[
        parse("", "select total from orders"),
        bind("", ""),
        msg(b'C', &close),
    ]);
    assert_eq!(tags(&messages(&s.client(&b))), "123Z");
    let seen = s.server.statements_received();
    let r = s.client(&batch(&[execute("")]));
    assert_eq!(code_of(&r)[0].0, "34000");
    assert_eq!(s.server.statements_received(), seen, "not forwarded");
}

#[test]
fn sql_close_and_declare_replace_the_records_of_a_name() {
    let mut s = Sim::plaintext();
    s.table = policy_with(&[], Grant::Widened);
    s.connect();
    assert!(code_of(&s.client(&query("begin"))).is_empty());
    let b = batch(&[parse("s", "select total from orders"), bind("p", "s")]);
    assert!(code_of(&s.client(&b)).is_empty());
    // The protocol portal p is closed by SQL, and a cursor p opened on other data.
    assert!(code_of(&s.client(&query("close p"))).is_empty());
    let r = s.client(&query("declare p cursor for select ssn from customers"));
    assert!(code_of(&r).is_empty());
    // A cursor declared, rolled back to a savepoint, declared again on other data.
    assert!(code_of(&s.client(&query("savepoint x"))).is_empty());
    let r = s.client(&query("declare c cursor for select total from orders"));
    assert!(code_of(&r).is_empty());
    assert!(code_of(&s.client(&query("rollback to x"))).is_empty());
    let r = s.client(&query("declare c cursor for select ssn from customers"));
    assert!(code_of(&r).is_empty());
    assert!(code_of(&s.client(&query("savepoint y"))).is_empty());
    swap(&mut s, policy_with(&[], Grant::Narrowed));
    let r = s.client(&batch(&[execute("p")]));
    assert_eq!(code_of(&r)[0].0, "42501", "p is the ssn cursor now");
    // The refusal failed the transaction, as PostgreSQL's own error would.
    assert_eq!(s.session.transaction_status(), b'E');
    let r = s.client(&query("select total from orders"));
    assert_eq!(code_of(&r)[0].0, "25P02");
    assert!(code_of(&s.client(&query("rollback to y"))).is_empty());
    let r = s.client(&query("fetch 1 from c"));
    assert_eq!(code_of(&r)[0].0, "42501", "c is the ssn cursor now");
}

#[test]
fn a_pending_prepare_may_fail_and_leave_the_older_statement() {
    let mut s = Sim::plaintext();
    s.table = policy_with(&[], Grant::Widened);
    s.connect();
    assert!(code_of(&s.client(&query("prepare foo as select ssn from customers"))).is_empty());
    swap(&mut s, policy_with(&[], Grant::Narrowed));
    // Pipelined: the new PREPARE of the same name would fail at the server (42P05).
    let mut b = query("prepare foo as select total from orders");
    b.extend(query("execute foo"));
    let r = s.client(&b);
    let codes: Vec<String> = code_of(&r).into_iter().map(|c| c.0).collect();
    assert_eq!(codes, ["42501"]);
}

#[test]
fn a_confirmation_pgate_did_not_ask_for_ends_the_session() {
    let mut s = Sim::plaintext();
    s.connect();
    s.session.handle_upstream(&msg(b'1', &[]), s.t);
    assert!(s.session.is_closed());
    assert_eq!(code_of(&s.pump())[0].0, "08P01");
}

#[test]
fn fetch_or_move_of_a_cursor_pgate_did_not_see_declared_is_denied() {
    // Procedural code (a function returning a refcursor, a DO block) can open a cursor
    // over a query pgate never decided: reading it is refused, before and after a reload.
    let mut s = Sim::new(SessionConfig {
        allow_plaintext_auth: true,
        ..SessionConfig::default()
    });
    s.table = policy_with(&[], Grant::Widened);
    s.connect();
    for sql in [
        "fetch 10 from opened_elsewhere",
        "move next in opened_elsewhere",
    ] {
        let r = s.client(&query(sql));
        assert_eq!(code_of(&r)[0].0, "42501", "{sql}");
        let text = messages(&r)
            .iter()
            .find(|(t, _)| *t == b'E')
            .map(|(_, b)| error_field(b, b'M'))
            .unwrap();
        assert!(text.contains("not declared through pgate"), "{text}");
    }
    // Declared through pgate: allowed.
    assert!(
        code_of(&s.client(&query(
            "declare c cursor with hold for select total from orders"
        )))
        .is_empty()
    );
    assert!(code_of(&s.client(&query("fetch 10 from c"))).is_empty());
}
