//! classify() per statement, side by side with libpg_query's parse (pg_query crate) of the
//! same statements in the same run: the regression corpus (a sample) and pgbench's
//! statements; and pgbench -S's statement classified and decided against a compiled
//! policy, as the data plane does per Parse or Query (`pgate_classify_and_decide`).
//!
//! Run: `cargo bench -p pgate-core --bench classify -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly

use std::hint::black_box;
use std::time::Duration;

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pgate_core::class::StatementClass as C;
use pgate_core::facts::Facts;
use pgate_core::sql::{ClassifyContext, classify};
use pgate_core::table::model::*;
use pgate_core::table::{Table, write};

/// pgbench's built-in scripts (select-only and tpcb-like).
const PGBENCH: &[&str] = &[
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
    "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
    "BEGIN;",
    "END;",
];

/// pgbench's four tables in `public`, and a role that reads `pgbench_accounts` through a
/// column-restricted grant (so decide checks each column, as a real policy makes it).
fn pgbench_policy() -> Vec<u8> {
    let table = |name: &str, cols: &[&str]| TableDecl {
        schema: "public".into(),
        name: name.into(),
        columns: cols
            .iter()
            .map(|c| ColumnDecl {
                name: (*c).into(),
                tags: vec![],
            })
            .collect(),
        tags: vec![],
    };
    let rule = RuleInfo {
        file: "roles/bench.kdl".into(),
        line: 1,
        column: 1,
        kind: RuleKind::Allow,
        role: "bench".into(),
        text: "allow \"select\" table=\"pgbench_accounts\" columns=\"aid abalance\"".into(),
    };
    let policy = CompiledPolicy {
        source_digest: [7; 32],
        catalog: Catalog {
            aliases: vec![],
            tables: vec![
                table("pgbench_accounts", &["aid", "bid", "abalance", "filler"]),
                table("pgbench_branches", &["bid", "bbalance", "filler"]),
                table(
                    "pgbench_history",
                    &["tid", "bid", "aid", "delta", "mtime", "filler"],
                ),
                table("pgbench_tellers", &["tid", "bid", "tbalance", "filler"]),
            ],
            functions: vec![],
        },
        rules: vec![rule],
        roles: vec![CompiledRole {
            groups: None,
            name: "bench".into(),
            members: vec![],
            cells: vec![CellEntry {
                class: C::Select,
                table: Some(0),
                cell: Cell {
                    effect: Effect::Allow,
                    rule: Some(0),
                    columns: ColumnAccess::Only(vec![0, 2]),
                    denied_columns: vec![],
                    denied_columns_rule: None,
                },
            }],
            functions: vec![],
            patterns: vec![],
            masks: vec![],
            limits: Limits::default(),
            token_use: Default::default(),
            rates: vec![],
            budgets: vec![],
            delegation: Default::default(),
        }],
    };
    write(&policy).expect("the policy lays out")
}

/// Every 10th statement of the regression corpus that pg_query accepts.
fn corpus_sample() -> Vec<String> {
    let files = common::corpus_files();
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('\\'))
            .collect::<Vec<_>>()
            .join("\n");
        let Ok(pieces) = pg_query::split_with_scanner(&text) else {
            continue;
        };
        for p in pieces {
            let p = p.trim();
            if !p.is_empty() && pg_query::parse(p, 0).is_ok() {
                out.push(p.to_owned());
            }
        }
    }
    out.into_iter().step_by(10).collect()
}

fn bench_set(c: &mut Criterion, name: &str, stmts: &[String]) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(stmts.len() as u64));
    let ctx = ClassifyContext::default();
    let mut facts = Facts::default();
    g.bench_function("pgate_classify", |b| {
        b.iter(|| {
            for s in stmts {
                classify(black_box(s), &ctx, &mut facts);
                black_box(facts.statements().len());
            }
        })
    });
    g.bench_function("pg_query_parse", |b| {
        b.iter(|| {
            for s in stmts {
                let r = pg_query::parse(black_box(s), 0);
                black_box(r.is_ok());
            }
        })
    });
    g.finish();
}

/// The target: pgbench -S's statement classified and decided, as the data plane
/// does per Parse or Query (same context: the session's search path, no catalog).
fn bench_classify_decide(c: &mut Criterion) {
    let bytes = pgbench_policy();
    let table = Table::parse(&bytes).unwrap();
    let role = table.role("bench").unwrap();
    let ctx = ClassifyContext::default();
    let mut facts = Facts::default();
    classify(PGBENCH[0], &ctx, &mut facts);
    assert!(table.decide_all(role, &facts).is_allow());
    // The bench must measure a real decision: a denied column must be denied.
    classify(
        "SELECT filler FROM pgbench_accounts WHERE aid = $1",
        &ctx,
        &mut facts,
    );
    assert!(!table.decide_all(role, &facts).is_allow());
    let mut g = c.benchmark_group("pgbench_select_only");
    g.bench_function("pgate_classify_and_decide", |b| {
        b.iter(|| {
            classify(black_box(PGBENCH[0]), &ctx, &mut facts);
            table.decide_all(role, &facts).is_allow()
        })
    });
    // What the data plane runs since it resolves names with the table's catalog: the one
    // decision path (`pgate_core::decide`), compared with the catalog-less line above.
    let path = ["public"];
    let session = pgate_core::decide::SessionState::with_path(&path);
    assert!(
        pgate_core::decide::decide_sql(&table, role, PGBENCH[0], &session, &mut facts).is_allow()
    );
    g.bench_function("pgate_decide_sql_with_catalog", |b| {
        b.iter(|| {
            pgate_core::decide::decide_sql(
                &table,
                role,
                black_box(PGBENCH[0]),
                &session,
                &mut facts,
            )
            .is_allow()
        })
    });
    g.finish();
}

/// `PGATE_QUICK=<iterations>`: time classify() of pgbench -S's statement, then classify
/// and decide, in plain loops and exit (for `perf stat`/`callgrind` without criterion's
/// or the corpus's noise).
fn quick(iters: u64) {
    let ctx = ClassifyContext::default();
    let mut facts = Facts::default();
    let sql = PGBENCH[0];
    let t = std::time::Instant::now();
    for _ in 0..iters {
        classify(black_box(sql), &ctx, &mut facts);
        black_box(facts.statements().len());
    }
    let ns = t.elapsed().as_nanos() as f64 / iters.max(1) as f64;
    println!("classify {sql:?}: {ns:.0} ns/statement over {iters} iterations");
    let bytes = pgbench_policy();
    let table = Table::parse(&bytes).unwrap();
    let role = table.role("bench").unwrap();
    let t = std::time::Instant::now();
    let mut allowed = 0u64;
    for _ in 0..iters {
        classify(black_box(sql), &ctx, &mut facts);
        allowed += u64::from(table.decide_all(role, &facts).is_allow());
    }
    let ns = t.elapsed().as_nanos() as f64 / iters.max(1) as f64;
    assert_eq!(allowed, iters);
    println!("classify + decide: {ns:.0} ns/statement over {iters} iterations");
}

fn benches(c: &mut Criterion) {
    if let Some(n) = std::env::var("PGATE_QUICK")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        quick(n);
        std::process::exit(0);
    }
    // The target: pgbench -S's statement alone.
    bench_set(c, "pgbench_select_only", &[PGBENCH[0].to_owned()]);
    bench_classify_decide(c);
    let pgbench: Vec<String> = PGBENCH.iter().map(|s| (*s).to_owned()).collect();
    bench_set(c, "pgbench", &pgbench);
    let corpus = corpus_sample();
    if !corpus.is_empty() {
        bench_set(c, "regress_corpus_sample", &corpus);
    }
}

criterion_group! {
    name = classify_benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(classify_benches);
