//! Upstream connection reuse, simulated: which sessions leave their connection for the
//! next one, what that next client is told at login, and that its cancel key is its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use pgate::session::SessionConfig;

fn reusing() -> Sim {
    Sim::new(SessionConfig {
        allow_plaintext_auth: true,
        upstream_user: "pgate_upstream".into(),
        reuse_upstream: true,
        ..SessionConfig::default()
    })
}

fn terminate() -> Vec<u8> {
    pgate_core::client::TERMINATE.to_vec()
}

fn terminates_sent(s: &Sim) -> usize {
    s.server.received.iter().filter(|(t, _)| *t == b'X').count()
}

#[test]
fn a_session_ending_idle_keeps_its_connection_and_the_next_one_logs_in_on_it() {
    let mut a = reusing();
    a.connect();
    a.client(&query("SELECT 1"));
    // A parameter the server reports later (SET application_name) is what the next
    // session is told.
    let up = a
        .session
        .handle_upstream(&msg(b'S', b"application_name\0later\0"), a.t);
    assert!(up > 0);
    a.client(&terminate());
    assert!(a.session.is_closed());
    assert_eq!(
        terminates_sent(&a),
        0,
        "an idle connection is kept, not terminated"
    );
    assert!(a.session.parkable());
    let parked = a.session.park().expect("parked");
    assert_eq!(parked.backend_key, (0x3039, 0xDEAD_BEEF_u32 as i32));
    assert_eq!(parked.database, "app");
    assert!(
        parked
            .params
            .contains(&("application_name".into(), "later".into()))
    );

    let mut b = reusing();
    b.reuse = Some(parked.clone());
    let r = b.client(&startup(&[("user", "analyst"), ("database", "app")]));
    assert_eq!(messages(&r), vec![(b'R', vec![0, 0, 0, 3])]);
    let login = messages(&b.client(&msg(b'p', &cstr("good"))));
    // AuthenticationOk, the parameters, pgate's own key (never the real one), ready.
    assert_eq!(login.first(), Some(&(b'R', vec![0, 0, 0, 0])));
    assert!(login.contains(&(b'S', b"server_version\x0015.0\x00".to_vec())));
    assert!(login.contains(&(b'S', b"application_name\0later\0".to_vec())));
    let key = [4242i32.to_be_bytes(), 777i32.to_be_bytes()].concat();
    assert!(login.contains(&(b'K', key)));
    assert_eq!(login.last(), Some(&(b'Z', b"I".to_vec())));
    assert!(
        b.server.received.is_empty(),
        "no StartupMessage, no login upstream"
    );
    // Cancels go to the connection's real backend.
    assert_eq!(b.session.cancel_keys().upstream, Some(parked.backend_key));
    let open = audit_lines(&mut b)
        .into_iter()
        .find(|l| l["event"] == "open")
        .expect("open line");
    assert_eq!(open["upstream"], "reused");
    assert_eq!(open["backend_pid"], 0x3039);
    // And it works (the fake server is past its startup: the connection was logged in).
    b.server.started = true;
    let r = messages(&b.client(&query("SELECT 1")));
    assert_eq!(r.last(), Some(&(b'Z', b"I".to_vec())));
}

#[test]
fn a_session_ending_in_a_transaction_or_mid_batch_closes_its_connection() {
    // In a transaction block: DISCARD ALL could not run, and the work is the client's.
    let mut s = reusing();
    s.connect();
    s.client(&query("BEGIN"));
    s.client(&terminate());
    assert!(!s.session.parkable());
    assert!(s.session.park().is_none());
    assert_eq!(terminates_sent(&s), 1);

    // An extended-query batch without its Sync.
    let mut s = reusing();
    s.connect();
    let mut batch = parse("", "SELECT 1");
    batch.extend(bind("", ""));
    batch.extend(execute(""));
    batch.extend(terminate());
    s.client(&batch);
    assert!(s.session.park().is_none());
    assert_eq!(terminates_sent(&s), 1);

    // Reuse off (the default): always Terminate.
    let mut s = Sim::plaintext();
    s.connect();
    s.client(&terminate());
    assert!(s.session.park().is_none());
    assert_eq!(terminates_sent(&s), 1);
}

#[test]
fn the_client_going_away_idle_also_leaves_the_connection_reusable() {
    let mut s = reusing();
    s.connect();
    s.client(&query("SELECT 1"));
    assert!(!s.session.client_closed(), "nothing in flight to cancel");
    assert!(s.session.park().is_some());
}

#[test]
fn a_connection_is_reused_only_for_an_identical_startup() {
    let mut a = reusing();
    a.connect();
    a.client(&terminate());
    let parked = a.session.park().unwrap();
    let mut b = reusing();
    b.client(&startup(&[
        ("user", "analyst"),
        ("database", "app"),
        ("application_name", "other"),
    ]));
    b.client(&msg(b'p', &cstr("good")));
    // b connected upstream itself (its StartupMessage differs): the parked one does not
    // fit it.
    assert!(b.session.is_ready());
    let mut c = reusing();
    c.client(&startup(&[
        ("user", "analyst"),
        ("database", "app"),
        ("application_name", "other"),
    ]));
    c.session.handle_client(
        &msg(b'p', &cstr("good")),
        &pgate_core::table::Table::parse(&c.table).unwrap(),
        &TestAuth,
        c.t,
        &mut c.scratch,
    );
    assert_eq!(
        c.session.poll_action(),
        Some(pgate::session::Action::ConnectUpstream)
    );
    assert_ne!(c.session.upstream_startup().unwrap(), &parked.startup[..]);
    assert!(!c.session.upstream_reused(&parked));
    assert!(!c.session.is_ready());
}
