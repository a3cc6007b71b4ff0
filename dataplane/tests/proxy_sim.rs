//! PROXY protocol v2 through the sans-IO session: from a trusted load balancer the header
//! comes first and names the client, whose address the audit lines and the per-address
//! limit then use; a malformed header ends the connection with 08P01 and its own line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;
use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use pgate::addresses::AddressCounts;
use pgate::proxy_protocol::encode;
use pgate::session::SessionConfig;

const BALANCER: &str = "10.0.0.2:40000";

fn behind_balancer(counts: &Arc<AddressCounts>, max: usize, seq: u64) -> Sim {
    let mut s = Sim::at(
        SessionConfig {
            allow_plaintext_auth: true,
            upstream_user: "pgate_upstream".into(),
            expect_proxy_header: true,
            ..SessionConfig::default()
        },
        BALANCER,
        seq,
    );
    s.session.set_address_counts(counts.clone(), max);
    s
}

fn header(client: &str) -> Vec<u8> {
    let c: SocketAddr = client.parse().unwrap();
    encode(c, "10.0.0.1:6432".parse().unwrap())
}

#[test]
fn the_header_names_the_client_in_every_line_and_may_arrive_in_pieces() {
    let counts = Arc::new(AddressCounts::default());
    let mut s = behind_balancer(&counts, 10, 1);
    // (The TLS handshake after the header and SSLRequest, in short.)
    s.session.tls_established(None);
    let mut first = header("203.0.113.7:4242");
    first.extend(startup(&[("user", "analyst"), ("database", "app")]));
    // Every prefix of the header is kept (by the driver) and nothing is answered until it
    // is whole.
    let table = pgate_core::table::Table::parse(&s.table).unwrap();
    for cut in 0..28 {
        let n = s
            .session
            .handle_client(&first[..cut], &table, &TestAuth, s.t, &mut s.scratch);
        assert_eq!(n, 0, "{cut}");
        assert!(s.session.poll_client().is_empty());
    }
    let r = messages(&s.client(&first));
    assert_eq!(r, vec![(b'R', vec![0, 0, 0, 3])]);
    let login = messages(&s.client(&msg(b'p', &cstr("good"))));
    assert_eq!(login.last().map(|m| m.0), Some(b'Z'));
    let l = audit_lines(&mut s);
    assert_eq!(l[0]["event"], "open");
    assert_eq!(l[0]["client"], "203.0.113.7:4242");
    assert_eq!(counts.count("203.0.113.7".parse().unwrap()), 1);
    drop(s);
    assert_eq!(counts.count("203.0.113.7".parse().unwrap()), 0);
}

#[test]
fn the_per_address_limit_counts_the_client_not_the_balancer() {
    let counts = Arc::new(AddressCounts::default());
    let mut a = behind_balancer(&counts, 1, 1);
    a.client(&header("203.0.113.7:1"));
    // Another client behind the same balancer: its own count.
    let mut b = behind_balancer(&counts, 1, 2);
    b.client(&header("198.51.100.4:1"));
    assert!(!b.session.is_closed());
    // The same client again: over its limit of one.
    let mut c = behind_balancer(&counts, 1, 3);
    let r = messages(&c.client(&header("203.0.113.7:2")));
    assert_eq!(error_field(&r[0].1, b'C'), "53300");
    assert!(c.session.is_closed());
    let l = audit_lines(&mut c);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["event"], "connection-refused");
    assert_eq!(l[0]["client"], "203.0.113.7:2");
    drop(a);
    let mut d = behind_balancer(&counts, 1, 4);
    d.client(&header("203.0.113.7:3"));
    assert!(!d.session.is_closed());
}

#[test]
fn a_missing_or_malformed_header_ends_the_connection() {
    let counts = Arc::new(AddressCounts::default());
    // A client that reached pgate around the balancer (or a balancer not sending v2).
    for bytes in [
        startup(&[("user", "analyst")]),
        b"PROXY TCP4 203.0.113.7 10.0.0.1 4242 6432\r\n".to_vec(),
    ] {
        let mut s = behind_balancer(&counts, 10, 1);
        let r = messages(&s.client(&bytes));
        assert_eq!(error_field(&r[0].1, b'C'), "08P01");
        assert!(
            error_field(&r[0].1, b'M').contains("PROXY protocol"),
            "{r:?}"
        );
        assert!(s.session.is_closed());
        let l = audit_lines(&mut s);
        assert_eq!(l[0]["event"], "connection-refused");
        assert_eq!(l[0]["client"], BALANCER);
    }
    // LOCAL (the balancer's health check): its own address stands and is counted.
    let mut s = behind_balancer(&counts, 10, 2);
    s.session.tls_established(None);
    let mut local = pgate::proxy_protocol::SIGNATURE.to_vec();
    local.extend([0x20, 0, 0, 0]);
    local.extend(startup(&[("user", "analyst"), ("database", "app")]));
    assert_eq!(messages(&s.client(&local)), vec![(b'R', vec![0, 0, 0, 3])]);
    s.client(&msg(b'p', &cstr("good")));
    assert_eq!(audit_lines(&mut s)[0]["client"], BALANCER);
    assert_eq!(counts.count("10.0.0.2".parse().unwrap()), 1);
    drop(s);
    assert_eq!(counts.count("10.0.0.2".parse().unwrap()), 0);
    // PROXY naming no address (UNSPEC): refused, not taken as the balancer.
    let mut s = behind_balancer(&counts, 10, 3);
    let mut unspec = pgate::proxy_protocol::SIGNATURE.to_vec();
    unspec.extend([0x21, 0x00, 0, 0]);
    let r = messages(&s.client(&unspec));
    assert_eq!(error_field(&r[0].1, b'C'), "08P01");
    assert!(error_field(&r[0].1, b'M').contains("names no client address"));
    // A mapped IPv6 form of an IPv4 client counts as that client.
    let mut a = behind_balancer(&counts, 1, 4);
    a.client(&header("198.51.100.9:1"));
    let mut b = behind_balancer(&counts, 1, 5);
    let r = messages(&b.client(&header("[::ffff:198.51.100.9]:2")));
    assert_eq!(error_field(&r[0].1, b'C'), "53300");
}

#[test]
fn a_remote_client_behind_a_local_balancer_may_not_send_its_token_in_plaintext() {
    let counts = Arc::new(AddressCounts::default());
    let mut s = behind_balancer(&counts, 10, 1);
    let mut b = header("203.0.113.7:4242");
    b.extend(startup(&[("user", "analyst"), ("database", "app")]));
    let r = messages(&s.client(&b));
    assert_eq!(r[0].0, b'E', "{r:?}");
    assert_eq!(error_field(&r[0].1, b'C'), "28000");
    // A loopback client behind it may (allow-plaintext-loopback is for loopback clients).
    let mut s = behind_balancer(&counts, 10, 2);
    let mut b = header("127.0.0.9:4242");
    b.extend(startup(&[("user", "analyst"), ("database", "app")]));
    assert_eq!(messages(&s.client(&b)), vec![(b'R', vec![0, 0, 0, 3])]);
}

#[test]
fn without_a_trusted_balancer_a_header_is_not_read() {
    // From an untrusted peer the same bytes are just a malformed startup packet.
    let mut s = Sim::plaintext();
    let r = messages(&s.client(&header("203.0.113.7:4242")));
    assert_eq!(r[0].0, b'E');
    assert!(!error_field(&r[0].1, b'M').contains("PROXY"), "{r:?}");
}
