//! The classifier never allocates: classifying the whole regression corpus a second time
//! with a reused `Facts` performs zero heap allocations (counted by a global allocator).
//!
//! One test in this file on purpose: the count is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly

mod common;

use std::alloc::System;

use pgate_core::facts::Facts;
use pgate_core::sql::{ClassifyContext, classify};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn classifying_allocates_nothing() {
    let files = common::corpus_texts();
    assert!(!files.is_empty(), "corpus not found (set PGATE_CORPUS)");
    // Whole files are far more than one message; classify them line-block by block so
    // that Facts' per-message limits are exercised as in real use, and also whole.
    let blocks: Vec<&str> = files
        .iter()
        .flat_map(|f| f.split("\n\n"))
        .chain(files.iter().map(String::as_str))
        .collect();
    let ctx = ClassifyContext::default();
    let mut facts = Facts::default();
    let mut statements = 0usize;
    for b in &blocks {
        classify(b, &ctx, &mut facts);
        statements += facts.statements().len();
    }
    assert!(statements > 10_000);

    // The counter works: a Box is one allocation.
    let probe = Region::new(GLOBAL);
    let b = std::hint::black_box(Box::new(1u64));
    drop(b);
    assert!(probe.change().allocations >= 1);

    let region = Region::new(GLOBAL);
    let mut again = 0usize;
    for b in &blocks {
        classify(b, &ctx, &mut facts);
        again += facts.statements().len();
    }
    let stats = region.change();
    assert_eq!(again, statements);
    assert_eq!(
        stats.allocations + stats.reallocations,
        0,
        "classify allocated: {stats:?}"
    );
}
