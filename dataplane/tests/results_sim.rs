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
    audit_lines(s)
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
    s.session.upstream_cancel_done(true);
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
        .handle_client(&query("select 1"), &table, &TestAuth, s.t, &mut s.scratch);
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

// ------------------------------------------------------------------------- byte rates

use pgate_core::table::model::{OnExceed, RateScope};

fn rated(bps: u64, burst: u64, scope: RateScope, on: OnExceed, rows: usize) -> Sim {
    let mut s = Sim::plaintext();
    s.table = policy_rated(bps, burst, scope, on);
    s.server.rows = rows;
    let login = s.connect();
    assert_eq!(login.last().map(|m| m.0), Some(b'Z'));
    s
}

/// Runs `sql` to its ReadyForQuery, moving virtual time forward whenever the session
/// throttles; returns what the client got and the virtual time it took (µs).
fn run_throttled(s: &mut Sim, sql: &str) -> (Vec<(u8, Vec<u8>)>, u64) {
    let table = pgate_core::table::Table::parse(&s.table).unwrap();
    let start = s.t.mono_us;
    let n = s
        .session
        .handle_client(&query(sql), &table, &TestAuth, s.t, &mut s.scratch);
    assert_eq!(n, query(sql).len());
    let up = s.session.poll_upstream().to_vec();
    s.session.upstream_written(up.len());
    let reply = s.server.feed(&up);
    let mut off = 0;
    let mut got = Vec::new();
    let mut pauses = 0;
    while off < reply.len() {
        let n = s.session.handle_upstream(&reply[off..], s.t);
        off += n;
        let out = s.session.poll_client().to_vec();
        s.session.client_written(out.len());
        got.extend(messages(&out));
        if s.session.upstream_paused() {
            pauses += 1;
            assert!(pauses < 1_000_000, "the throttle never lets go");
            let at = s.session.poll_timeout().expect("a throttle has a deadline");
            assert!(at > s.t.mono_us, "the deadline is in the future");
            s.t.mono_us = at;
            s.session.handle_timeout(s.t);
        } else {
            assert_eq!(off, reply.len(), "unconsumed bytes without a throttle");
        }
    }
    (got, s.t.mono_us - start)
}

#[test]
fn a_throttle_holds_the_result_to_its_rate_without_buffering_it() {
    // 10,000 rows of 12 bytes = 120 kB at 10 kB/s after a 10 kB burst: about 11 s.
    let mut s = rated(
        10_000,
        10_000,
        RateScope::Session,
        OnExceed::Throttle,
        10_000,
    );
    let (got, us) = run_throttled(&mut s, "select id from orders");
    let rows = got.iter().filter(|m| m.0 == b'D').count();
    assert_eq!(rows, 10_000, "every row arrives");
    assert_eq!(got.last().unwrap().0, b'Z');
    let expected = (120_000 - 10_000) as f64 / 10_000.0 * 1e6;
    let ratio = us as f64 / expected;
    assert!(
        (0.97..1.03).contains(&ratio),
        "took {us} µs, expected about {expected}"
    );
    assert_eq!(cancels(&mut s), 0);
    let l = statement_lines(&mut s);
    let ms = l[0]["throttled_ms"].as_u64().unwrap();
    assert!(ms > 10_000 && ms < 12_000, "{ms}");
}

#[test]
fn a_terminating_rate_cuts_the_result_with_54000() {
    let mut s = rated(1_000, 1_200, RateScope::Session, OnExceed::Terminate, 1_000);
    let r = messages(&s.client(&query("select id from orders")));
    // The burst (1,200 bytes: 100 rows of 12) goes out, then the cut.
    assert_eq!(r.iter().filter(|m| m.0 == b'D').count(), 100);
    assert_eq!(cancels(&mut s), 1);
    let r = cancel_done(&mut s);
    assert_eq!(tags(&r), "EZ");
    assert_eq!(error_field(&r[0].1, b'C'), "54000");
    let m = error_field(&r[0].1, b'M');
    assert!(
        m.contains("byte rate exceeded") && m.contains("roles/analyst.kdl:9"),
        "{m}"
    );
    let l = statement_lines(&mut s);
    assert_eq!(l[0]["cut"]["cap"], "rate");
}

#[test]
fn sessions_of_one_identity_share_its_bucket() {
    let shared = std::sync::Arc::new(pgate::buckets::IdentityBuckets::default());
    let mut a = Sim::plaintext();
    let mut b = Sim::plaintext();
    for s in [&mut a, &mut b] {
        s.table = policy_rated(1_000, 1_200, RateScope::Identity, OnExceed::Throttle);
        s.session.set_identity_buckets(shared.clone());
        s.server.rows = 100;
        s.connect();
    }
    // A spends the shared burst (100 rows of 12 bytes) without waiting…
    let (_, us) = run_throttled(&mut a, "select id from orders");
    assert!(us < 1_000, "{us}");
    // …so B, the same subject in another session, waits for the rate at once.
    b.t = a.t;
    let (got, us) = run_throttled(&mut b, "select id from orders");
    assert_eq!(got.iter().filter(|m| m.0 == b'D').count(), 100);
    assert!(us > 1_000_000, "B waited {us} µs");
    // With session scope each has a bucket of its own.
    let mut c = rated(1_000, 1_200, RateScope::Session, OnExceed::Throttle, 100);
    let mut d = rated(1_000, 1_200, RateScope::Session, OnExceed::Throttle, 100);
    assert!(run_throttled(&mut c, "select id from orders").1 < 1_000);
    assert!(run_throttled(&mut d, "select id from orders").1 < 1_000);
}

#[test]
fn a_cut_in_a_batch_whose_sync_comes_later_lets_the_sync_through() {
    // Parse, Bind, Execute, Flush: the client sends Sync only after reading the results
    // (libpq's PQsendFlushRequest, pipeline mode).
    let mut s = capped(Some(2), None, 10);
    let mut b = parse("", "select id from orders");
    b.extend(bind("", ""));
    b.extend(execute(""));
    b.extend(msg(b'H', &[]));
    let r = messages(&s.client(&b));
    assert_eq!(tags(&r), "12DD");
    assert_eq!(cancels(&mut s), 1);
    let markers = s.server.markers_received();
    let r = cancel_done(&mut s);
    // The statement had completed: a marker fails the batch; the client gets the error
    // and may send its Sync.
    assert_eq!(tags(&r), "E");
    assert_eq!(error_field(&r[0].1, b'C'), "54000");
    assert_eq!(s.server.markers_received(), markers + 1);
    assert!(!s.session.holding_client());
    let r = messages(&s.client(&sync()));
    assert_eq!(tags(&r), "Z");
    // The session goes on.
    s.server.rows = 1;
    assert_eq!(tags(&messages(&s.client(&query("select 1")))), "TDCZ");
}

#[test]
fn a_portal_read_in_pieces_is_one_result_whatever_runs_between() {
    // Execute(P, 1) pieces with other statements completing between them: the portal's
    // count is its own and carries over its PortalSuspended.
    let mut s = capped(Some(2), None, 1);
    assert_eq!(tags(&messages(&s.client(&query("begin")))), "TDCZ");
    let mut b = parse("s1", "select id from orders");
    b.extend(bind("p", "s1"));
    b.extend(sync());
    assert_eq!(tags(&messages(&s.client(&b))), "12Z");
    for i in 0..2 {
        let r = messages(&s.client(&[execute_n("p", 1), sync()].concat()));
        assert_eq!(tags(&r), "DsZ", "piece {i}");
        let r = messages(&s.client(&query("select 1")));
        assert_eq!(tags(&r), "TDCZ");
    }
    // The third row of portal p is past the cap of 2.
    let r = messages(&s.client(&[execute_n("p", 1), sync()].concat()));
    assert_eq!(tags(&r), "", "{r:?}");
    assert_eq!(cancels(&mut s), 1);
    let r = cancel_done(&mut s);
    assert_eq!(tags(&r), "EZ");
    assert_eq!(error_field(&r[0].1, b'C'), "54000");
    // A portal bound afresh starts from zero.
    let mut s = capped(Some(2), None, 1);
    for _ in 0..3 {
        let mut b = parse("", "select id from orders");
        b.extend(bind("", ""));
        b.extend(execute_n("", 1));
        b.extend(sync());
        assert_eq!(tags(&messages(&s.client(&b))), "12DsZ");
    }
}
