//! Sessions per token (`token sessions= concurrent=`) through the sans-IO session, with
//! the instance's shared record: a used-up token is refused with FATAL 28P01 naming the
//! cause and the rule, audited as its own `token-reused` event with both client
//! addresses and the first session's id; a closed session gives its place back.
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
