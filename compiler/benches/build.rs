//! Build time and table size for a large generated policy: 50 roles × 2,000 tables × 30
//! columns, generated in memory as KDL text (so parsing is included).
//!
//! Targets: build ≤ 2 s, table ≤ 8 MiB. Run: `cargo bench -p pgate-compile --bench build`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pgate_compile::{Sources, compile};

const ROLES: usize = 50;
const SCHEMAS: usize = 20;
const TABLES_PER_SCHEMA: usize = 100;
const COLUMNS: usize = 30;

fn catalog() -> String {
    let mut s = String::with_capacity(4 << 20);
    for sc in 0..SCHEMAS {
        for t in 0..TABLES_PER_SCHEMA {
            let n = sc * TABLES_PER_SCHEMA + t;
            let _ = writeln!(s, "table \"s{sc}.t{t}\" {{");
            s.push_str("    columns");
            for c in 0..COLUMNS {
                if c == 3 || c == 4 {
                    continue;
                }
                let _ = write!(s, " \"c{c}\"");
            }
            s.push('\n');
            s.push_str("    column \"c3\" { tags \"pii\" }\n");
            if n.is_multiple_of(10) {
                s.push_str("    column \"c4\" { tags \"pii\" \"secret\" }\n");
            } else {
                s.push_str("    columns \"c4\"\n");
            }
            let mut tags = vec![format!("\"group{}\"", n % 10)];
            if n.is_multiple_of(5) {
                tags.push("\"pii\"".to_string());
            }
            let _ = writeln!(s, "    tags {}", tags.join(" "));
            s.push_str("}\n");
        }
    }
    for f in 0..50 {
        let _ = writeln!(s, "function \"pg_catalog.f{f}\"");
    }
    s.push_str("function \"pg_catalog.pg_read_file\" { tags \"server-files\" }\n");
    s
}

fn roles() -> String {
    let mut s = String::with_capacity(1 << 20);
    for r in 0..ROLES {
        let _ = writeln!(s, "role \"role{r}\" {{");
        let _ = writeln!(s, "    member claim=\"groups\" value=\"team-{r}\"");
        if r % 5 != 0 {
            let _ = writeln!(s, "    inherits \"role{}\"", r - r % 5);
        }
        let _ = writeln!(s, "    allow \"select\" table=\"s{}.*\"", r % SCHEMAS);
        let _ = writeln!(
            s,
            "    allow \"select\" \"copy-out\" tag=\"group{}\" {{\n        columns \"c0\" \"c1\" \"c2\" \"c3\" \"c5\" \"c6\" \"c7\" \"c8\" \"c9\"\n    }}",
            r % 10
        );
        let _ = writeln!(
            s,
            "    allow \"insert\" \"update\" \"delete\" table=\"s{}.t{}\"",
            r % SCHEMAS,
            r % TABLES_PER_SCHEMA
        );
        s.push_str("    deny \"select\" \"copy-out\" tag=\"pii\" {\n        column-tag \"secret\"\n    }\n");
        if r % 3 == 0 {
            s.push_str("    deny \"copy-out\" table=\"*\"\n");
        }
        s.push_str("    allow \"transaction\" \"session\"\n");
        s.push_str("    allow-function \"pg_catalog.*\"\n");
        s.push_str("    deny-function tag=\"server-files\"\n");
        s.push_str("    mask column-tag=\"pii\" with=\"hash\"\n");
        let _ = writeln!(s, "    limit rows={} bytes=\"16MiB\"", 10_000 + r);
        s.push_str("    rate bytes=\"1MiB\" per=\"second\" burst=\"8MiB\" scope=\"identity\"\n");
        s.push_str("}\n");
    }
    s.push_str(
        "invariant \"secrets never leave\" {\n    forbid \"select\" \"copy-out\" tag=\"pii\" column-tag=\"secret\"\n}\n",
    );
    s
}

fn sources() -> Sources {
    Sources::from_memory([("catalog.kdl", catalog()), ("roles.kdl", roles())])
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
    let cells: usize = policy.roles.iter().map(|r| r.cells.len()).sum();
    eprintln!(
        "policy: {} roles × {} tables × {} columns, {} rules, {} cells, {:.1} MiB of KDL",
        policy.roles.len(),
        policy.catalog.tables.len(),
        COLUMNS,
        policy.rules.len(),
        cells,
        kdl_bytes as f64 / (1 << 20) as f64
    );
    eprintln!(
        "compile (parse+resolve+combine+verify): {:?}, write: {:?}, total {:?}",
        t1 - t0,
        t2 - t1,
        t2 - t0
    );
    eprintln!(
        "table size: {} bytes ({:.2} MiB; target ≤ 8 MiB), warnings: {}",
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
