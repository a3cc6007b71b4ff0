//! Build time and table size for a generated policy: 50 roles × 2,000 tables × 30 columns
//! (the shape of `benches/scale/gen.rs`), generated in memory as KDL text (so parsing is
//! included). Larger sizes, with memory and the other commands: `ci/scale.sh`.
//!
//! Run: `cargo bench -p pgate-compile --bench build`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pgate_compile::{Sources, compile};

#[path = "scale/gen.rs"]
mod generated;

const SHAPE: generated::Shape = generated::Shape {
    roles: 50,
    tables: 2000,
};
const COLUMNS: usize = generated::COLUMNS;

fn sources() -> Sources {
    let mut files = SHAPE.catalog_files();
    files.push(("roles.kdl".to_string(), SHAPE.roles()));
    Sources::from_memory(files)
}

fn bench(c: &mut Criterion) {
    let src = sources();
    let kdl_bytes: usize = src.files.iter().map(|f| f.text.len()).sum();

    // One instrumented run: phase times and the table size.
    let t0 = Instant::now();
    let compiled = compile(src.clone());
    let t1 = Instant::now();
    assert!(
        !compiled.has_errors(),
        "{:?}",
        compiled
            .diagnostics
            .items
            .iter()
            .take(3)
            .collect::<Vec<_>>()
    );
    let bytes = compiled.table_bytes().unwrap();
    let t2 = Instant::now();
    let policy = compiled.policy.as_ref().unwrap();
    let groups: usize = policy
        .roles
        .iter()
        .map(|r| r.groups.as_ref().map_or(0, |g| g.groups.len()))
        .sum();
    eprintln!(
        "policy: {} roles × {} tables ({} classes) × {} columns, {} rules, {} groups, {:.1} MiB of KDL",
        policy.roles.len(),
        policy.catalog.tables.len() + policy.catalog.aliases.len(),
        policy.catalog.tables.len(),
        COLUMNS,
        policy.rules.len(),
        groups,
        kdl_bytes as f64 / (1 << 20) as f64
    );
    eprintln!(
        "compile (parse+resolve+combine+verify): {:?}, write: {:?}, total {:?}",
        t1 - t0,
        t2 - t1,
        t2 - t0
    );
    eprintln!(
        "table size: {} bytes ({:.2} MiB), warnings: {}",
        bytes.len(),
        bytes.len() as f64 / (1 << 20) as f64,
        compiled.diagnostics.items.len()
    );

    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("50 roles x 2000 tables x 30 columns", |b| {
        b.iter(|| {
            let c = compile(src.clone());
            let bytes = c.table_bytes().unwrap();
            std::hint::black_box(bytes.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
