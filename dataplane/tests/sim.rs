//! Client ↔ session ↔ server simulation, no sockets: the session core is fed bytes from a
//! scripted client and a small fake PostgreSQL, and every byte each side receives is
//! checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly

mod common;

use common::*;
use pgate::session::{Action, Clock, SessionConfig};
use pgate_core::table::Table;

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
    assert_eq!(s.client(&pgate_core::client::GSSENC_REQUEST), b"N");
    assert_eq!(s.client(&pgate_core::client::SSL_REQUEST), b"S");
    assert_eq!(s.actions, vec![Action::StartTls]);
    s.session.tls_established(None);
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

    for (k, v) in [
        ("options", "-c search_path=evil"),
        ("search_path", "evil"),
        ("role", "postgres"),
        ("standard_conforming_strings", "off"),
        ("client_encoding", "SJIS"),
    ] {
        let mut s = Sim::plaintext();
        let r = messages(&s.client(&startup(&[("user", "analyst"), (k, v)])));
        assert_eq!(error_field(&r[0].1, b'C'), "0A000", "{k}={v}");
        assert!(error_field(&r[0].1, b'M').contains(k));
    }
    // What real drivers send passes.
    let mut s = Sim::plaintext();
    let r = messages(&s.client(&startup(&[
        ("user", "analyst"),
        ("client_encoding", "UTF8"),
        ("application_name", "psql"),
        ("DateStyle", "ISO"),
        ("extra_float_digits", "3"),
    ])));
    assert_eq!(r[0].0, b'R');
}

#[test]
fn startup_settings_are_read_as_postgresql_reads_them_and_forwarded_one_by_one() {
    let mut s = Sim::plaintext();
    // A Python driver's quoted encoding; settings in `options` (libpq's PGOPTIONS).
    let r = s.client(&startup(&[
        ("user", "analyst"),
        ("client_encoding", "'utf-8'"),
        ("options", "-c statement_timeout=5s --lock-timeout=1s"),
    ]));
    assert_eq!(messages(&r)[0].0, b'R');
    s.client(&msg(b'p', &cstr("good")));
    assert!(s.session.is_ready());
    let p = &s.server.startup_params;
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("client_encoding"), Some("'utf-8'"));
    assert_eq!(get("statement_timeout"), Some("5s"));
    assert_eq!(get("lock_timeout"), Some("1s"));
    assert_eq!(
        get("options"),
        None,
        "the database never parses `options` itself"
    );
    // Any other switch, or a refused setting inside `options`, is refused by name.
    for bad in [
        "-F",
        "-c session_replication_role=replica",
        "-c role=postgres",
    ] {
        let mut s = Sim::plaintext();
        let r = messages(&s.client(&startup(&[("user", "analyst"), ("options", bad)])));
        assert_eq!(error_field(&r[0].1, b'C'), "0A000", "{bad}");
        assert_eq!(error_field(&r[0].1, b'S'), "FATAL");
    }
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
    assert_eq!(
        s.server.statements_received(),
        0,
        "nothing of the batch was forwarded"
    );
    assert_eq!(s.server.markers_received(), 1, "the marker took its place");

    // Bind of the denied statement later is refused too.
    let mut batch = bind("", "s1");
    batch.extend(execute(""));
    batch.extend(sync());
    let r = messages(&s.client(&batch));
    assert_eq!(tags(&r), "EZ");
    assert_eq!(s.server.statements_received(), 0);

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
    // The marker in place of the denied Parse, then the client's own Sync: the server
    // fails and skips the batch (rolling back its implicit transaction) as it would
    // for its own error.
    assert_eq!(sent, b"PBEPS");
    assert_eq!(s.server.markers_received(), 1);
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
    s.session
        .handle_client(&both, &table, &TestAuth, s.t, &mut s.scratch);
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
    assert!(
        s.client(&pgate_core::client::cancel_request(4242, 777))
            .is_empty()
    );
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
    assert_eq!(
        tags(&r),
        "CZ",
        "one ReadyForQuery: the Sync sent in copy-in mode got none"
    );
    // A denial right after must be answered at once, not wait for a ReadyForQuery that
    // will never come.
    let r = messages(&s.client(&query("select ssn from customers")));
    assert_eq!(tags(&r), "EZ");
}

#[test]
fn a_query_inside_an_unsynced_batch_is_refused_rather_than_miscounted() {
    // PostgreSQL skips a Query after an error in an unsynced batch: whether it answers
    // depends on an error pgate cannot foresee.
    let mut s = Sim::plaintext();
    s.connect();
    let mut b = parse("", "select id from orders");
    b.extend(bind("", ""));
    b.extend(query("select 1"));
    let r = messages(&s.client(&b));
    let last = r.last().unwrap();
    assert_eq!(error_field(&last.1, b'C'), "08P01");
    assert_eq!(error_field(&last.1, b'S'), "FATAL");

    // asyncpg's way: Parse, Describe, Flush, wait for the answers, then a Query. Every
    // answer is in and none is an error: the server runs the Query, and so does pgate.
    let mut s = Sim::plaintext();
    s.connect();
    let mut b = parse("s", "select id from orders");
    b.extend(msg(b'H', &[]));
    assert_eq!(tags(&messages(&s.client(&b))), "1");
    let r = messages(&s.client(&query("select 1")));
    assert_eq!(tags(&r), "TDCZ");
    assert!(!s.session.is_closed());
}

#[test]
fn a_sync_pipelined_behind_a_simple_copy_from_stdin_is_not_awaited() {
    let mut s = Sim::plaintext();
    s.table = policy_with(&[], Grant::Widened);
    s.connect();
    let mut b = query("copy orders from stdin");
    b.extend(sync());
    let r = messages(&s.client(&b));
    assert_eq!(tags(&r), "G");
    let mut done = msg(b'd', b"1\n");
    done.extend(msg(b'c', &[]));
    let r = messages(&s.client(&done));
    assert_eq!(tags(&r), "CZ");
    // The count is right: the next query's line is complete and nothing is outstanding.
    s.session.audit_taken();
    let r = messages(&s.client(&query("select total from orders")));
    assert_eq!(tags(&r), "TDCZ");
    assert!(s.session.poll_audit().contains("\"status\":\"ok\""));
    assert!(!s.session.client_closed(), "nothing outstanding upstream");
}

#[test]
fn messages_pipelined_behind_copy_from_stdin_end_the_session() {
    let mut s = Sim::plaintext();
    s.table = policy_with(&[], Grant::Widened);
    s.connect();
    let mut b = parse("", "copy orders from STDIN");
    b.extend(bind("", ""));
    b.extend(execute(""));
    b.extend(parse("x", "select id from orders"));
    b.extend(sync());
    let r = messages(&s.client(&b));
    let last = r.last().unwrap();
    assert_eq!(error_field(&last.1, b'C'), "08P01", "{:?}", tags(&r));
    assert!(s.session.is_closed());
}

#[test]
fn asyncpg_copy_records_to_table() {
    // asyncpg: Parse, Describe, Flush (no Sync), then a simple Query COPY … FROM STDIN.
    let mut s = Sim::plaintext();
    s.table = policy_with(&[], Grant::Widened);
    s.connect();
    let describe = |name: &str| {
        let mut b = vec![b'S'];
        b.extend(cstr(name));
        msg(b'D', &b)
    };
    let mut b = parse("s2", "select total from orders where id = $1");
    b.extend(describe("s2"));
    b.extend(msg(b'H', &[]));
    assert_eq!(tags(&messages(&s.client(&b))), "1tT");
    let mut b = bind("", "s2");
    b.extend(execute(""));
    b.extend(sync());
    assert_eq!(tags(&messages(&s.client(&b))), "2DCZ");
    let mut b = parse("s3", "select total from orders limit 1");
    b.extend(describe("s3"));
    b.extend(msg(b'H', &[]));
    assert_eq!(tags(&messages(&s.client(&b))), "1tT");
    let r = messages(&s.client(&query("copy orders from stdin")));
    assert_eq!(tags(&r), "G");
    let mut done = msg(b'd', b"1\n");
    done.extend(msg(b'c', &[]));
    let r = messages(&s.client(&done));
    assert_eq!(tags(&r), "CZ");
}
