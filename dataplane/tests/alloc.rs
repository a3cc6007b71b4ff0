//! The data plane's hot path allocates nothing: after warm-up, deciding and forwarding a
//! simple query, binding + executing a prepared statement, and parsing + binding +
//! executing the unnamed statement (extended protocol), perform zero heap
//! allocations inside the session (counted by a global allocator around the session calls
//! only; the fake server's own allocations are outside the counted regions).
//!
//! One test in this file on purpose: the count is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly

mod common;

use std::alloc::System;

use common::*;
use pgate::session::Clock;
use pgate_core::table::Table;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// One round trip: client bytes in, upstream bytes out, the recorded server reply in,
/// client bytes out. Returns allocations counted inside the session calls.
fn round_trip(s: &mut Sim, table: &Table<'_>, request: &[u8], reply: &[u8], t: Clock) -> usize {
    let region = Region::new(GLOBAL);
    let n = s.session.handle_client(request, table, &TestAuth, t);
    assert_eq!(n, request.len());
    let up = s.session.poll_upstream().len();
    s.session.upstream_written(up);
    let n = s.session.handle_upstream(reply, t);
    assert_eq!(n, reply.len());
    let out = s.session.poll_client().len();
    s.session.client_written(out);
    s.session.audit_taken();
    let stats = region.change();
    assert!(out > 0, "the client got an answer");
    stats.allocations + stats.reallocations
}

#[test]
fn steady_state_allocates_nothing() {
    let mut s = Sim::plaintext();
    s.connect();
    let table_bytes = s.table.clone();
    let table = Table::parse(&table_bytes).unwrap();

    // Record what the fake server answers, once, outside the counted regions.
    let simple = query("select id, total from orders where id = 42");
    let simple_reply = s.server.feed(&simple);
    let mut prep = parse("p1", "select total from orders where id = $1");
    prep.extend(sync());
    s.client(&prep);
    let mut exec = bind("", "p1");
    exec.extend(execute(""));
    exec.extend(sync());
    let exec_reply = s.server.feed(&exec);
    // pgbench -M extended: the unnamed statement parsed again for every query.
    let mut unnamed = parse("", "select total from orders where id = $1");
    unnamed.extend(bind("", ""));
    unnamed.extend(execute(""));
    unnamed.extend(sync());
    let unnamed_reply = s.server.feed(&unnamed);
    let denied = query("select ssn from customers");

    let mut t = Clock {
        mono_us: 1_000,
        unix_ms: 600_000,
    };
    // Warm-up: buffers reach their working sizes.
    for _ in 0..50 {
        t.mono_us += 100;
        round_trip(&mut s, &table, &simple, &simple_reply, t);
        round_trip(&mut s, &table, &exec, &exec_reply, t);
        round_trip(&mut s, &table, &unnamed, &unnamed_reply, t);
    }
    let mut allocations = 0;
    for _ in 0..1000 {
        t.mono_us += 100;
        allocations += round_trip(&mut s, &table, &simple, &simple_reply, t);
        allocations += round_trip(&mut s, &table, &exec, &exec_reply, t);
        allocations += round_trip(&mut s, &table, &unnamed, &unnamed_reply, t);
    }
    assert_eq!(allocations, 0, "allocations on the hot path after warm-up");

    // Denials format a message naming the rule: not the hot path, but bounded — and the
    // counter does see them (so the zero above is a real zero).
    let region = Region::new(GLOBAL);
    s.session.handle_client(&denied, &table, &TestAuth, t);
    // The refusal rides on a marker upstream (the database fails the transaction as
    // its own error would); the client's answer comes with the database's.
    assert!(s.session.poll_client().is_empty());
    assert!(String::from_utf8_lossy(s.session.poll_upstream()).contains("pgate refused"));
    let n = region.change().allocations;
    assert!(n > 0 && n < 64, "{n} allocations for a denial");
}
