//! Sessions per token (`token sessions= concurrent=`) through the sans-IO session, with
//! the instance's shared record: a used-up token is refused with FATAL 28P01 naming the
//! cause and the rule, audited as its own `token-reused` event with both client
//! addresses and the first session's id; a closed session gives its place back. With a
//! shared store (detached from Redis, answered by the test), the login waits for the
//! store's answer and budgets wait for their shares, and both fail closed when the store
//! cannot be asked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;
use std::sync::Arc;

use common::*;
use pgate::token_uses::TokenUses;

fn session(uses: &Arc<TokenUses>, client: &str, seq: u64, table: &[u8]) -> Sim {
    let mut s = Sim::at(
        pgate::session::SessionConfig {
            allow_plaintext_auth: true,
            upstream_user: "pgate_upstream".into(),
            ..Default::default()
        },
        client,
        seq,
    );
    s.table = table.to_vec();
    s.session.set_token_uses(uses.clone());
    s
}

#[test]
fn a_single_use_token_opens_one_session_and_the_reuse_is_refused_and_audited() {
    let uses = Arc::new(TokenUses::default());
    let table = policy_token_use(Some(1), None);
    let mut first = session(&uses, "10.0.0.1:4000", 1, &table);
    let login = first.connect();
    assert_eq!(login.last().map(|m| m.0), Some(b'Z'), "{login:?}");
    let opened = audit_lines(&mut first);
    let first_conn = opened[0]["conn"].as_str().unwrap().to_string();

    // The child reuses the parent's token from another address.
    let mut child = session(&uses, "10.0.0.2:5000", 2, &table);
    let r = child.connect();
    let (tag, body) = &r[0];
    assert_eq!(*tag, b'E', "{r:?}");
    assert_eq!(error_field(body, b'S'), "FATAL");
    assert_eq!(error_field(body, b'C'), "28P01");
    let m = error_field(body, b'M');
    assert!(
        m.contains("already used") && m.contains("one session") && m.contains("rule at"),
        "{m}"
    );
    assert!(child.session.is_closed());
    let l = audit_lines(&mut child);
    assert_eq!(l.len(), 1, "{l:?}");
    let v = &l[0];
    assert_eq!(v["event"], "token-reused");
    assert_eq!(v["client"], "10.0.0.2:5000");
    assert_eq!(v["first_client"], "10.0.0.1:4000");
    assert_eq!(v["first_conn"], first_conn.as_str());
    assert_eq!(v["token"]["jti"], "good");
    assert_eq!(v["token"]["sub"], "alice@example.com");
    assert!(v["reason"].as_str().unwrap().contains("28P01"));

    // The first session is untouched, and once it ends the token is still used up.
    assert!(!first.session.is_closed());
    first.session.client_closed();
    let mut later = session(&uses, "10.0.0.3:6000", 3, &table);
    assert_eq!(later.connect()[0].0, b'E');
}

#[test]
fn concurrent_sessions_are_limited_while_open_and_counted_back_when_closed() {
    let uses = Arc::new(TokenUses::default());
    let table = policy_token_use(None, Some(1));
    let mut a = session(&uses, "10.0.0.1:4000", 1, &table);
    assert_eq!(a.connect().last().map(|m| m.0), Some(b'Z'));
    let mut b = session(&uses, "10.0.0.2:5000", 2, &table);
    let r = b.connect();
    assert_eq!(error_field(&r[0].1, b'C'), "28P01");
    assert!(error_field(&r[0].1, b'M').contains("at once"));
    // The first closes: its place is free again.
    a.session.client_closed();
    drop(a);
    let mut c = session(&uses, "10.0.0.3:6000", 3, &table);
    assert_eq!(c.connect().last().map(|m| m.0), Some(b'Z'));
}

#[test]
fn a_role_without_a_limit_does_not_count_and_a_token_without_jti_is_refused_where_one_is_set() {
    let uses = Arc::new(TokenUses::default());
    let table = policy();
    for seq in 1..=3 {
        let mut s = session(&uses, "10.0.0.1:4000", seq, &table);
        assert_eq!(s.connect().last().map(|m| m.0), Some(b'Z'));
    }
    assert!(uses.is_empty(), "unlimited roles leave no record");

    let limited = policy_token_use(Some(5), None);
    let mut s = session(&uses, "10.0.0.1:4000", 9, &limited);
    s.client(&startup(&[("user", "analyst"), ("database", "app")]));
    let r = messages(&s.client(&msg(b'p', &cstr("good-no-jti"))));
    assert_eq!(error_field(&r[0].1, b'C'), "28P01");
    assert!(error_field(&r[0].1, b'M').contains("has no `jti`"), "{r:?}");
    let l = audit_lines(&mut s);
    assert_eq!(l[0]["event"], "login-refused");
}

/// A session whose TLS client presented the certificate of DER `cert` (`None`: none).
fn tls_session(uses: &Arc<TokenUses>, table: &[u8], cert: Option<&[u8]>, seq: u64) -> Sim {
    let mut s = session(uses, "10.0.0.9:7000", seq, table);
    s.session.tls_established(cert.map(pgate::tls::thumbprint));
    s
}

fn login(s: &mut Sim, token: &str) -> Vec<(u8, Vec<u8>)> {
    s.client(&startup(&[("user", "analyst"), ("database", "app")]));
    messages(&s.client(&msg(b'p', &cstr(token))))
}

#[test]
fn a_certificate_bound_token_works_only_with_its_certificate() {
    let uses = Arc::new(TokenUses::default());
    let table = policy();
    // "good-bound" is bound to the certificate `b"client-cert"`.
    let mut s = tls_session(&uses, &table, Some(b"client-cert"), 1);
    assert_eq!(login(&mut s, "good-bound").last().map(|m| m.0), Some(b'Z'));
    for (cert, why) in [
        (None, "presented none"),
        (Some(&b"another-cert"[..]), "another client certificate"),
    ] {
        let mut s = tls_session(&uses, &table, cert, 2);
        let r = login(&mut s, "good-bound");
        assert_eq!(error_field(&r[0].1, b'C'), "28P01", "{r:?}");
        assert!(error_field(&r[0].1, b'M').contains(why), "{r:?}");
        assert_eq!(audit_lines(&mut s)[0]["event"], "login-refused");
    }
    // An unbound token still works where the role does not ask for binding.
    let mut s = tls_session(&uses, &table, Some(b"client-cert"), 3);
    assert_eq!(login(&mut s, "good").last().map(|m| m.0), Some(b'Z'));
}

#[test]
fn a_role_requiring_bound_tokens_refuses_bearer_ones_and_a_stolen_token_spends_no_use() {
    let uses = Arc::new(TokenUses::default());
    let table = policy_token_bound();
    let mut s = tls_session(&uses, &table, Some(b"client-cert"), 1);
    let r = login(&mut s, "good");
    assert_eq!(error_field(&r[0].1, b'C'), "28P01");
    assert!(
        error_field(&r[0].1, b'M').contains("takes only tokens bound to the client certificate"),
        "{r:?}"
    );
    // The bound token presented without its certificate (stolen): refused, and its one
    // session is still there for its holder.
    let mut thief = tls_session(&uses, &table, None, 2);
    assert_eq!(
        error_field(&login(&mut thief, "good-bound")[0].1, b'C'),
        "28P01"
    );
    let mut owner = tls_session(&uses, &table, Some(b"client-cert"), 3);
    assert_eq!(
        login(&mut owner, "good-bound").last().map(|m| m.0),
        Some(b'Z')
    );
    let mut again = tls_session(&uses, &table, Some(b"client-cert"), 4);
    assert!(error_field(&login(&mut again, "good-bound")[0].1, b'M').contains("already used"));
}

// ---------------------------------------------------------------- with a shared store

use pgate::shared_store::{Answer, Queue, Request, SharedStore, TokenAnswer};

fn detached() -> (Arc<SharedStore>, Queue, Arc<TokenUses>) {
    let (store, queue) = SharedStore::detached(&pgate::config::SharedStore {
        url: "redis://127.0.0.1:1/0".into(),
        fall_back_local: false,
        timeout: std::time::Duration::from_millis(100),
        prefix: "pgate".into(),
    });
    let uses = Arc::new(TokenUses::shared(store.clone()));
    (store, queue, uses)
}

/// Logs in up to the store's question: nothing reaches the client or the upstream yet.
fn asking(uses: &Arc<TokenUses>, client: &str, seq: u64, table: &[u8]) -> Sim {
    let mut s = session(uses, client, seq, table);
    let r = s.connect();
    assert!(r.is_empty(), "the login waits for the store: {r:?}");
    assert!(
        !s.actions.contains(&pgate::session::Action::ConnectUpstream),
        "no upstream login before the store answers"
    );
    assert!(
        s.session.poll_timeout().is_some(),
        "it looks for the answer"
    );
    s
}

fn tick(s: &mut Sim) -> Vec<(u8, Vec<u8>)> {
    s.t.mono_us += 1_000;
    s.session.handle_timeout(s.t);
    messages(&s.pump())
}

#[test]
fn with_a_shared_store_the_login_waits_for_its_answer() {
    let (store, mut queue, uses) = detached();
    let table = policy_token_use(Some(1), None);

    // Granted: the login goes on.
    let mut a = asking(&uses, "10.0.0.1:4000", 1, &table);
    assert!(tick(&mut a).is_empty(), "still waiting");
    let req = queue.try_next().expect("a question for the store");
    assert!(
        matches!(
            &req,
            Request::TokenBegin {
                max_sessions: 1,
                max_concurrent: 0,
                ..
            }
        ),
        "{req:?}"
    );
    Queue::answer(&store, req, Answer::Token(TokenAnswer::Granted));
    let r = tick(&mut a);
    assert_eq!(r.last().map(|m| m.0), Some(b'Z'), "{r:?}");
    let first_conn = audit_lines(&mut a)
        .into_iter()
        .find(|l| l["event"] == "open")
        .expect("open line")["conn"]
        .clone();

    // Refused by the store (used on another replica): 28P01 and the token-reused line.
    let mut b = asking(&uses, "10.0.0.2:5000", 2, &table);
    let req = queue.try_next().unwrap();
    Queue::answer(
        &store,
        req,
        Answer::Token(TokenAnswer::Refused(pgate::token_uses::Refusal::Used {
            sessions: 1,
            max: 1,
            first_conn: first_conn.as_str().unwrap().into(),
            first_client: "10.0.0.1:4000".into(),
        })),
    );
    let r = tick(&mut b);
    assert_eq!(error_field(&r[0].1, b'C'), "28P01", "{r:?}");
    assert!(b.session.is_closed());
    let l = audit_lines(&mut b);
    assert_eq!(l[0]["event"], "token-reused");
    assert_eq!(l[0]["first_conn"], first_conn);

    // The store cannot be asked: fail closed with 57P03.
    let mut c = asking(&uses, "10.0.0.3:6000", 3, &table);
    Queue::answer(&store, queue.try_next().unwrap(), Answer::Failed);
    let r = tick(&mut c);
    assert_eq!(error_field(&r[0].1, b'C'), "57P03", "{r:?}");
    assert!(error_field(&r[0].1, b'M').contains("cannot be reached"));
    assert_eq!(audit_lines(&mut c)[0]["event"], "login-refused");

    // A session that goes away while waiting gives back a use granted after it left.
    let mut d = asking(&uses, "10.0.0.4:7000", 4, &table);
    let req = queue.try_next().unwrap();
    d.session.client_closed();
    Queue::answer(&store, req, Answer::Token(TokenAnswer::Granted));
    assert!(
        queue.try_next_end().is_some(),
        "the late grant is given back"
    );

    // The first session ends: its place among the open ones goes back to the store.
    drop(a);
    assert!(queue.try_next_end().is_some());
    assert!(
        queue.try_next_end().is_none(),
        "each session's place comes back once"
    );
}

#[test]
fn a_table_swap_while_the_login_waits_is_taken_once_it_is_granted() {
    let (store, mut queue, uses) = detached();
    let mut s = asking(&uses, "10.0.0.1:4000", 1, &policy_token_use(None, Some(4)));
    // A reload while the store is asked: a role that sorts first shifts the analyst's id
    // to that of a role that may read every column.
    let new = policy_with(&["aaa_admin"], Grant::Standard);
    s.table = new.clone();
    let t = pgate_core::table::Table::parse(&new).unwrap();
    s.session.handle_table(&t, &TestAuth);
    Queue::answer(
        &store,
        queue.try_next().unwrap(),
        Answer::Token(TokenAnswer::Granted),
    );
    let r = tick(&mut s);
    assert_eq!(r.last().map(|m| m.0), Some(b'Z'), "{r:?}");
    // Decided as the analyst of the new table, not as whoever holds its old id.
    let r = messages(&s.client(&query("select ssn from customers")));
    let e = r.iter().find(|m| m.0 == b'E').expect("denied");
    assert_eq!(error_field(&e.1, b'C'), "42501", "{r:?}");
    assert!(error_field(&e.1, b'M').contains("role \"analyst\""));
}

/// Runs `sql`, feeding the upstream's answer by hand: whenever the session waits for the
/// store, `answer` answers what it asked. Returns what the client got and the waits.
fn run_with_store(
    s: &mut Sim,
    sql: &str,
    store: &SharedStore,
    queue: &mut Queue,
    answer: &dyn Fn(&Request) -> Answer,
) -> (Vec<(u8, Vec<u8>)>, usize) {
    let table = pgate_core::table::Table::parse(&s.table).unwrap();
    s.session
        .handle_client(&query(sql), &table, &TestAuth, s.t, &mut s.scratch);
    let up = s.session.poll_upstream().to_vec();
    s.session.upstream_written(up.len());
    let reply = s.server.feed(&up);
    let (mut off, mut got, mut waits) = (0, Vec::new(), 0);
    while off < reply.len() && !s.session.is_closed() {
        off += s.session.handle_upstream(&reply[off..], s.t);
        got.extend(messages(&s.pump()));
        if s.session.upstream_paused() {
            waits += 1;
            assert!(waits < 100, "the store's answer never lets it go");
            while let Some(req) = queue.try_next() {
                let a = answer(&req);
                Queue::answer(store, req, a);
            }
            s.t.mono_us = s.session.poll_timeout().expect("a wait has a deadline");
            s.session.handle_timeout(s.t);
        }
        if s.actions.contains(&pgate::session::Action::CancelUpstream) {
            s.actions
                .retain(|a| *a != pgate::session::Action::CancelUpstream);
            s.session.upstream_cancel_done(true);
            got.extend(messages(&s.pump()));
        }
    }
    (got, waits)
}

#[test]
fn with_a_shared_store_budgets_wait_for_a_share_and_fail_closed_when_it_is_down() {
    let (store, mut queue) = SharedStore::detached(&pgate::config::SharedStore {
        url: "redis://127.0.0.1:1/0".into(),
        fall_back_local: false,
        timeout: std::time::Duration::from_millis(100),
        prefix: "pgate".into(),
    });
    let mut s = session(
        &Arc::new(TokenUses::default()),
        "10.0.0.1:4000",
        1,
        &policy_budget(Some(64), None),
    );
    let shared: Arc<dyn pgate::budgets::BudgetStore> = store.clone();
    s.session.set_budget_store(shared);
    assert_eq!(s.connect().last().map(|m| m.0), Some(b'Z'));
    s.server.rows = 6;
    // The first row waits for the instance's first share; then shares of 4 (64/16).
    let (got, waits) = run_with_store(&mut s, "select id from orders", &store, &mut queue, &|r| {
        assert!(matches!(r, Request::Lease { limit: 64, .. }), "{r:?}");
        Answer::Lease(4)
    });
    assert_eq!(got.iter().filter(|m| m.0 == b'D').count(), 6, "{got:?}");
    assert!(waits >= 1, "the first row waited for the store");
    assert_eq!(got.last().map(|m| m.0), Some(b'Z'));
    // Down: the next result is cut (54000), not passed.
    let (got, _) = run_with_store(&mut s, "select id from orders", &store, &mut queue, &|_| {
        Answer::Failed
    });
    let e = got.iter().find(|m| m.0 == b'E').expect("cut");
    assert_eq!(error_field(&e.1, b'C'), "54000");
    assert!(
        error_field(&e.1, b'M').contains("cannot be reached"),
        "{got:?}"
    );
    // The store answers again (the probe a lease sent while it was down): Redis has
    // nothing left in this window, so the result is cut as spent.
    while let Some(req) = queue.try_next() {
        Queue::answer(&store, req, Answer::Lease(0));
    }
    assert!(store.is_up());
    let (got, _) = run_with_store(&mut s, "select id from orders", &store, &mut queue, &|_| {
        Answer::Lease(0)
    });
    let e = got.iter().find(|m| m.0 == b'E').expect("cut");
    assert!(error_field(&e.1, b'M').contains("spent until"), "{got:?}");
}
