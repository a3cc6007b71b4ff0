//! Delegated sessions through the sans-IO session: a token whose `act` chain meets a
//! delegated variant is decided by it (narrower cells, caps, a `variant` in every audit
//! line), a chain longer than the role admits is refused at login with FATAL 28000 and
//! audited, and a table swap picks the variant again from the new table (or ends the
//! session when the new table no longer admits its chain).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use common::*;

fn errors(reply: &[u8]) -> Vec<(String, String, String)> {
    messages(reply)
        .iter()
        .filter(|(t, _)| *t == b'E')
        .map(|(_, b)| {
            (
                error_field(b, b'S'),
                error_field(b, b'C'),
                error_field(b, b'M'),
            )
        })
        .collect()
}

fn session(table: Vec<u8>) -> Sim {
    let mut s = Sim::plaintext();
    s.table = table;
    s
}

#[test]
fn a_delegated_session_is_decided_by_the_variant_and_its_own_session_by_the_role() {
    // The subject's own session reads orders, several rows.
    let mut own = session(policy_delegated(None, true));
    own.server.rows = 3;
    assert_eq!(own.connect_with("good-own").last().map(|m| m.0), Some(b'Z'));
    let r = own.client(&query("select id from orders"));
    assert!(errors(&r).is_empty(), "{:?}", errors(&r));
    assert_eq!(
        tags(&messages(&r)).matches('D').count(),
        3,
        "{}",
        tags(&messages(&r))
    );
    let lines = audit_lines(&mut own);
    assert!(
        lines.iter().all(|l| l.get("variant").is_none()),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l["role"] == "analyst"), "{lines:?}");

    // Acting through agent-7: no orders, and one row per statement.
    let mut agent = session(policy_delegated(None, true));
    agent.server.rows = 3;
    assert_eq!(agent.connect().last().map(|m| m.0), Some(b'Z'));
    let r = agent.client(&query("select id from orders"));
    let e = errors(&r);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].0.as_str(), e[0].1.as_str()), ("ERROR", "42501"));
    assert!(e[0].2.contains("analyst [delegated]"), "{}", e[0].2);
    // The variant's cap (one row) cuts a three-row result: cancelled, then 54000.
    let r = agent.client(&query("select id, name from customers"));
    assert_eq!(tags(&messages(&r)), "TD");
    assert!(
        agent
            .actions
            .contains(&pgate::session::Action::CancelUpstream)
    );
    agent.session.upstream_cancel_done(true);
    let e = errors(&agent.pump());
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].1, "54000", "{e:?}");
    let lines = audit_lines(&mut agent);
    assert!(!lines.is_empty());
    for l in &lines {
        assert_eq!(l["role"], "analyst", "{l}");
        assert_eq!(l["variant"], "analyst [delegated]", "{l}");
        assert_eq!(l["act"][0], "agent-7", "{l}");
    }
}

#[test]
fn a_chain_longer_than_the_role_admits_is_refused_at_login_with_28000_and_audited() {
    let mut s = session(policy_delegated(Some(1), true));
    let r = s.connect_with("good-deep");
    let (tag, body) = &r[0];
    assert_eq!(*tag, b'E', "{r:?}");
    assert_eq!(error_field(body, b'S'), "FATAL");
    assert_eq!(error_field(body, b'C'), "28000");
    let m = error_field(body, b'M');
    assert!(
        m.contains("role \"analyst\" admits a delegation chain of at most 1 actor(s)")
            && m.contains("names 2")
            && m.contains("rule at roles/analyst.kdl:9"),
        "{m}"
    );
    assert!(s.session.is_closed());
    assert!(
        s.actions
            .iter()
            .all(|a| *a != pgate::session::Action::ConnectUpstream)
    );
    let lines = audit_lines(&mut s);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["event"], "login-refused");
    assert!(
        lines[0]["reason"].as_str().unwrap().contains("28000"),
        "{}",
        lines[0]
    );

    // Depth 1 is admitted; no delegation at all is admitted; max-depth=0 admits none.
    assert_eq!(
        session(policy_delegated(Some(1), true))
            .connect()
            .last()
            .map(|m| m.0),
        Some(b'Z')
    );
    let mut none = session(policy_delegated(Some(0), false));
    assert_eq!(
        none.connect_with("good-own").last().map(|m| m.0),
        Some(b'Z')
    );
    let r = session(policy_delegated(Some(0), false)).connect();
    assert!(
        error_field(&r[0].1, b'M').contains("admits no delegated sessions"),
        "{r:?}"
    );
}

#[test]
fn a_swap_picks_the_variant_again_and_ends_a_session_the_new_table_refuses() {
    // Before: no delegation rules; the agent reads orders.
    let mut s = session(policy());
    assert_eq!(s.connect().last().map(|m| m.0), Some(b'Z'));
    assert!(errors(&s.client(&query("select id from orders"))).is_empty());
    audit_lines(&mut s);
    // A delegated block arrives: the same session is now decided by the variant.
    assert!(swap(&mut s, policy_delegated(None, true)).is_empty());
    let lines = audit_lines(&mut s);
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "rebind" && l["variant"] == "analyst [delegated]"),
        "{lines:?}"
    );
    assert_eq!(
        errors(&s.client(&query("select id from orders")))[0].1,
        "42501"
    );
    // And back: the variant is gone, orders are readable again.
    assert!(swap(&mut s, policy()).is_empty());
    assert!(errors(&s.client(&query("select id from orders"))).is_empty());
    // A table that admits no delegated sessions ends it, as a removed role does.
    let r = swap(&mut s, policy_delegated(Some(0), true));
    let e = errors(&r);
    assert_eq!(
        (e[0].0.as_str(), e[0].1.as_str()),
        ("FATAL", "28000"),
        "{e:?}"
    );
    assert!(
        e[0].2.contains("no longer admits this session") && e[0].2.contains("no delegated"),
        "{e:?}"
    );
    assert!(s.session.is_closed());

    // The subject's own session is untouched by max-depth=0.
    let mut own = session(policy());
    own.connect_with("good-own");
    assert!(swap(&mut own, policy_delegated(Some(0), true)).is_empty());
    assert!(!own.session.is_closed());
}
