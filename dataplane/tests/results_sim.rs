//! Result caps, fed through the sans-IO session with a fake server: a result past its cap
//! is cut (nothing past the cap reaches the client), the database is cancelled, and the
//! client sees what PostgreSQL shows for its own error — 54000 naming the rule, the
//! transaction failed in a block, ReadyForQuery after — and the session goes on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;
use common::*;
use pgate::session::Action;
use serde_json::Value;

fn capped(rows: Option<u64>, bytes: Option<u64>, server_rows: usize) -> Sim {
    let mut s = Sim::plaintext();
    s.table = policy_capped(rows, bytes);
    s.server.rows = server_rows;
    let login = s.connect();
    assert_eq!(login.last().map(|m| m.0), Some(b'Z'));
    s
}

fn lines(s: &mut Sim) -> Vec<Value> {
    let a = s.session.poll_audit().to_owned();
    s.session.audit_taken();
    a.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn cancels(s: &mut Sim) -> usize {
    let n = s
        .actions
        .iter()
        .filter(|a| **a == Action::CancelUpstream)
        .count();
    s.actions.retain(|a| *a != Action::CancelUpstream);
    n
}

/// The cancel was taken: what the session owed the client comes now.
fn cancel_done(s: &mut Sim) -> Vec<(u8, Vec<u8>)> {
    s.session.upstream_cancel_done();
    messages(&s.pump())
}

fn statement_lines(s: &mut Sim) -> Vec<Value> {
    lines(s)
        .into_iter()
        .filter(|v| v["event"] == "statement")
        .collect()
}

#[test]
fn under_the_cap_nothing_changes() {
    let mut s = capped(Some(5), None, 5);
    let r = messages(&s.client(&query("select id from orders")));
    assert_eq!(tags(&r), "TDDDDDCZ");
    assert_eq!(cancels(&mut s), 0);
    assert!(!s.session.holding_client());
}

#[test]
fn a_simple_query_past_its_row_cap_is_cut_cancelled_and_ends_with_54000() {
    let mut s = capped(Some(2), None, 50);
    let r = messages(&s.client(&query("select id from orders")));
    // Two rows, then nothing until the cancel is taken.
    assert_eq!(tags(&r), "TDD");
    assert_eq!(cancels(&mut s), 1);
    assert!(s.session.holding_client());
    // Client input waits meanwhile.
    let table = pgate_core::table::Table::parse(&s.table).unwrap();
    let n = s
        .session
        .handle_client(&query("select 1"), &table, &TestAuth, s.t);
    assert_eq!(
        n, 0,
        "nothing is read from the client while the cut settles"
    );
    let r = cancel_done(&mut s);
    assert_eq!(tags(&r), "EZ");
    assert_eq!(error_field(&r[0].1, b'C'), "54000");
    let m = error_field(&r[0].1, b'M');
    assert!(
        m.contains("more than 2 rows") && m.contains("roles/analyst.kdl:9"),
        "{m}"
    );
    assert_eq!(r[1].1, b"I");
    assert!(!s.session.holding_client());
    // The statement's line says it was cut, with what was sent.
    let l = statement_lines(&mut s);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["status"], "cut");
    assert_eq!(l[0]["rows"], 2);
    assert_eq!(l[0]["cut"]["cap"], "rows");
    assert_eq!(l[0]["cut"]["limit"], 2);
    assert_eq!(l[0]["cut"]["rule"], "roles/analyst.kdl:9");
    // The session goes on.
    s.server.rows = 1;
    let r = messages(&s.client(&query("select 1")));
    assert_eq!(tags(&r), "TDCZ");
}

#[test]
fn a_cut_in_a_transaction_block_fails_the_transaction_as_a_postgres_error_does() {
    let mut s = capped(Some(2), None, 50);
    assert_eq!(tags(&messages(&s.client(&query("begin")))), "TDCZ");
    let r = messages(&s.client(&query("select id from orders")));
    assert_eq!(tags(&r), "TDD");
    assert_eq!(cancels(&mut s), 1);
    // The statement had finished upstream: pgate fails the transaction with its marker.
    let markers = s.server.markers_received();
    let r = cancel_done(&mut s);
    assert_eq!(s.server.markers_received(), markers + 1);
    assert_eq!(tags(&r), "EZ");
    assert_eq!(error_field(&r[0].1, b'C'), "54000");
    assert_eq!(r[1].1, b"E", "the transaction is failed");
    // As after PostgreSQL's own error: 25P02 until ROLLBACK.
    let r = messages(&s.client(&query("select 1")));
    assert_eq!(error_field(&r[0].1, b'C'), "25P02");
    let r = messages(&s.client(&query("commit")));
    assert_eq!(tags(&r), "CZ");
    assert_eq!(r[0].1, cstr("ROLLBACK"));
}

#[test]
fn when_the_cancel_wins_the_databases_error_is_the_caps() {
    let mut s = capped(Some(2), None, 3);
    s.server.cancel_wins = true;
    assert_eq!(tags(&messages(&s.client(&query("begin")))), "TDCZ");
    let r = messages(&s.client(&query("select id from orders")));
    // The database's 57014 came before the cancel was even taken: the client gets 54000.
    assert_eq!(tags(&r), "TDDE");
    assert_eq!(error_field(&r[3].1, b'C'), "54000");
    let markers = s.server.markers_received();
    let r = cancel_done(&mut s);
    assert_eq!(tags(&r), "Z");
    assert_eq!(r[0].1, b"E");
    assert_eq!(s.server.markers_received(), markers, "no marker needed");
}

#[test]
fn an_extended_batch_past_its_cap_ends_with_54000_before_sync() {
    let mut s = capped(Some(2), None, 10);
    let mut b = parse("", "select id from orders");
    b.extend(bind("", ""));
    b.extend(execute(""));
    b.extend(sync());
    let r = messages(&s.client(&b));
    assert_eq!(tags(&r), "12DD");
    assert_eq!(cancels(&mut s), 1);
    let r = cancel_done(&mut s);
    assert_eq!(tags(&r), "EZ");
    assert_eq!(error_field(&r[0].1, b'C'), "54000");
}

#[test]
fn a_byte_cap_counts_whole_messages() {
    // Each DataRow here is 12 bytes: 30 bytes admit two.
    let mut s = capped(None, Some(30), 5);
    let r = messages(&s.client(&query("select id from orders")));
    assert_eq!(tags(&r), "TDD");
    let r = cancel_done(&mut s);
    let m = error_field(&r[0].1, b'M');
    assert!(m.contains("more than 30 bytes"), "{m}");
    let l = statement_lines(&mut s);
    assert_eq!(l[0]["bytes"], 24);
    assert_eq!(l[0]["cut"]["cap"], "bytes");
}

#[test]
fn a_cut_with_later_work_already_upstream_in_a_block_ends_the_session() {
    let mut s = capped(Some(2), None, 10);
    assert_eq!(tags(&messages(&s.client(&query("begin")))), "TDCZ");
    // Two queries pipelined: the second is upstream before the first is cut, so the
    // transaction cannot be failed in place, and a cancel could hit the second.
    let mut b = query("select id from orders");
    b.extend(query("select 2"));
    let r = messages(&s.client(&b));
    assert_eq!(
        cancels(&mut s),
        0,
        "no cancel: it could stop the later statement"
    );
    let last = r.last().unwrap();
    assert_eq!(last.0, b'E');
    assert_eq!(error_field(&last.1, b'S'), "FATAL");
    assert_eq!(error_field(&last.1, b'C'), "54000");
    assert!(s.session.is_closed());
    assert_eq!(tags(&r[..3]), "TDD", "nothing past the cap was sent");
}

#[test]
fn a_cursor_read_in_pieces_is_one_result() {
    // DECLARE, then FETCHes of 3 rows under a cap of 5: the second FETCH crosses it.
    let mut s = capped(Some(5), None, 3);
    assert_eq!(tags(&messages(&s.client(&query("begin")))), "TDCZ");
    let r = messages(&s.client(&query("declare c cursor for select id from orders")));
    assert_eq!(tags(&r), "TDCZ");
    let r = messages(&s.client(&query("fetch 3 from c")));
    assert_eq!(tags(&r), "TDDDCZ");
    let r = messages(&s.client(&query("fetch 3 from c")));
    assert_eq!(tags(&r), "TDD", "two more rows, then the cap");
    assert_eq!(cancels(&mut s), 1);
    let r = cancel_done(&mut s);
    assert_eq!(tags(&r), "EZ");
    assert_eq!(error_field(&r[0].1, b'C'), "54000");
    let l = statement_lines(&mut s);
    let last = l.last().unwrap();
    assert_eq!(last["status"], "cut");
    assert_eq!(last["rows"], 2, "the cut FETCH's own rows");
}
