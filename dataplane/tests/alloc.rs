//! The data plane's hot path allocates nothing: after warm-up, deciding and forwarding a
//! simple query, binding + executing a prepared statement, and parsing + binding +
//! executing the unnamed statement (extended protocol), perform zero heap
//! allocations inside the session (counted by a global allocator around the session calls
//! only; the fake server's own allocations are outside the counted regions).
//!
//! So does a role with masks: its rows rewritten (a hashed and a redacted column) and
//! pgate's own Describe sent before every Execute; and a role with identity budgets, every
//! row charged against the session's share.
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
    let n = s
        .session
        .handle_client(request, table, &TestAuth, t, &mut s.scratch);
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
    masked_results_allocate_nothing();
    budgeted_results_allocate_nothing();

    // Denials format a message naming the rule: not the hot path, but bounded — and the
    // counter does see them (so the zero above is a real zero).
    let region = Region::new(GLOBAL);
    s.session
        .handle_client(&denied, &table, &TestAuth, t, &mut s.scratch);
    // The refusal rides on a marker upstream (the database fails the transaction as
    // its own error would); the client's answer comes with the database's.
    assert!(s.session.poll_client().is_empty());
    assert!(String::from_utf8_lossy(s.session.poll_upstream()).contains("pgate refused"));
    let n = region.change().allocations;
    assert!(n > 0 && n < 64, "{n} allocations for a denial");
}

/// The budgeted phase: rows and bytes per day, every result row charged.
fn budgeted_results_allocate_nothing() {
    let mut s = Sim::plaintext();
    s.table = policy_budget(Some(1 << 40), Some(1 << 50));
    s.server.rows = 5;
    s.connect();
    let table_bytes = s.table.clone();
    let table = Table::parse(&table_bytes).unwrap();
    let simple = query("select id, total from orders where id = 42");
    let reply = s.server.feed(&simple);
    let mut t = Clock {
        mono_us: 1_000,
        unix_ms: 600_000,
    };
    for _ in 0..50 {
        t.mono_us += 100;
        round_trip(&mut s, &table, &simple, &reply, t);
    }
    let mut allocations = 0;
    for _ in 0..1000 {
        t.mono_us += 100;
        allocations += round_trip(&mut s, &table, &simple, &reply, t);
    }
    assert_eq!(
        allocations, 0,
        "allocations on a budgeted role's hot path after warm-up"
    );
}

/// The masked phase of the test (see the module docs).
fn masked_results_allocate_nothing() {
    use pgate::masks::HashKey;
    use pgate::masks::catalog::{AttributeRow, MaskCatalog, MaskIndex, RelationRow};
    use pgate::session::SessionConfig;
    use std::sync::Arc;

    let mut s = Sim::new(SessionConfig {
        allow_plaintext_auth: true,
        upstream_user: "pgate_upstream".into(),
        mask_hash_key: Some(Arc::new(HashKey::new([7; 32]))),
        ..SessionConfig::default()
    });
    s.table = policy_masked();
    s.connect();
    let table_bytes = s.table.clone();
    let table = Table::parse(&table_bytes).unwrap();
    let attr = |attnum: i16, name: &str, typ: u32, send: &str| AttributeRow {
        oid: 16_400,
        attnum,
        name: name.into(),
        type_oid: typ,
        base_type_oid: typ,
        send: send.into(),
        generated: false,
    };
    let rows = [
        attr(1, "id", 23, "int4send"),
        attr(2, "name", 25, "textsend"),
        attr(3, "ssn", 25, "textsend"),
    ];
    let relations = [RelationRow {
        oid: 16_400,
        schema: "public".into(),
        relation: "customers".into(),
        natts: 3,
    }];
    let index = MaskIndex::new(&table);
    let catalog =
        MaskCatalog::build(&table, index, table.digest(), "app", &relations, &rows).unwrap();
    let answer = pgate::session::CatalogAnswer {
        catalog: Arc::new(catalog),
        copy: None,
    };
    s.session.handle_catalog(Ok(answer), &table);

    // RowDescription (id, name, ssn of customers), one row, CommandComplete.
    let mut rd = 3i16.to_be_bytes().to_vec();
    for (i, (attnum, typ)) in [(1i16, 23u32), (2, 25), (3, 25)].iter().enumerate() {
        rd.extend(cstr(&format!("c{i}")));
        rd.extend(16_400u32.to_be_bytes());
        rd.extend(attnum.to_be_bytes());
        rd.extend(typ.to_be_bytes());
        rd.extend((-1i16).to_be_bytes());
        rd.extend((-1i32).to_be_bytes());
        rd.extend(0i16.to_be_bytes());
    }
    let mut row = 3i16.to_be_bytes().to_vec();
    for v in [&b"1"[..], b"Ada Lovelace", b"900-10-0001"] {
        row.extend((v.len() as i32).to_be_bytes());
        row.extend(v);
    }
    let mut result = msg(b'T', &rd);
    result.extend(msg(b'D', &row));
    result.extend(msg(b'C', &cstr("SELECT 1")));
    result.extend(msg(b'Z', b"I"));
    let simple = query("select id, name, ssn from customers where id = 1");
    let mut exec = parse("", "select id, name, ssn from customers where id = $1");
    exec.extend(bind("", ""));
    exec.extend(execute(""));
    exec.extend(sync());
    let mut exec_reply = msg(b'1', &[]);
    exec_reply.extend(msg(b'2', &[]));
    exec_reply.extend(&result);

    let mut t = Clock {
        mono_us: 1_000_000,
        unix_ms: 700_000,
    };
    for _ in 0..50 {
        t.mono_us += 100;
        round_trip(&mut s, &table, &simple, &result, t);
        round_trip(&mut s, &table, &exec, &exec_reply, t);
    }
    assert!(
        String::from_utf8_lossy(s.session.poll_client()).is_empty(),
        "the client's output was taken"
    );
    let mut allocations = 0;
    for _ in 0..1000 {
        t.mono_us += 100;
        allocations += round_trip(&mut s, &table, &simple, &result, t);
        allocations += round_trip(&mut s, &table, &exec, &exec_reply, t);
    }
    assert_eq!(
        allocations, 0,
        "allocations on a masked role's hot path after warm-up"
    );
    // And the rows were masked: the last answer has the redaction, not the real ssn.
    let region_free = {
        let n = s
            .session
            .handle_client(&simple, &table, &TestAuth, t, &mut s.scratch);
        assert_eq!(n, simple.len());
        let up = s.session.poll_upstream().len();
        s.session.upstream_written(up);
        s.session.handle_upstream(&result, t);
        let out = String::from_utf8_lossy(s.session.poll_client()).into_owned();
        let len = s.session.poll_client().len();
        s.session.client_written(len);
        out
    };
    assert!(region_free.contains("***"), "{region_free:?}");
    assert!(!region_free.contains("900-10-0001") && !region_free.contains("Lovelace"));
}
