//! Decision-table benchmarks: `decide()` per lookup, and load + validate of a large table
//! (50 roles × 2,000 tables × 30 columns, generated here as a compiled policy).
//!
//! Run: `cargo bench -p pgate-core --bench table`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pgate_core::class::{ClassSet, StatementClass as C};
use pgate_core::facts::{Clause, ColumnName, ColumnRef, Facts, QualifiedName, TableAccess};
use pgate_core::table::model::*;
use pgate_core::table::{Table, write};

const ROLES: usize = 50;
const TABLES: usize = 2000;
const COLUMNS: usize = 30;

/// Each role reads a tenth of the tables (some with column subsets), writes a few,
/// and has a column deny on every 7th table it reads.
fn large_policy() -> CompiledPolicy {
    let tables = (0..TABLES)
        .map(|t| TableDecl {
            schema: format!("s{}", t % 10),
            name: format!("table_{t}"),
            columns: (0..COLUMNS)
                .map(|c| ColumnDecl {
                    name: format!("col_{c}"),
                    tags: vec![],
                })
                .collect(),
            tags: vec![],
        })
        .collect();
    let mut rules = Vec::new();
    let roles = (0..ROLES)
        .map(|r| {
            let mut cells = Vec::new();
            for t in (r % 10..TABLES).step_by(10) {
                let rule = rules.len() as u32;
                rules.push(RuleInfo {
                    file: format!("roles/r{r}.kdl"),
                    line: t as u32 + 1,
                    column: 5,
                    kind: RuleKind::Allow,
                    role: format!("role_{r}"),
                    text: format!("allow \"select\" table=\"s{}.table_{t}\"", t % 10),
                });
                let columns = if t % 3 == 0 {
                    ColumnAccess::Only((0..(COLUMNS as u32 / 2)).collect())
                } else {
                    ColumnAccess::All
                };
                let (denied_columns, denied_columns_rule) = if t % 7 == 0 {
                    (vec![1, 2], Some(rule))
                } else {
                    (vec![], None)
                };
                cells.push(CellEntry {
                    class: C::Select,
                    table: Some(t as u32),
                    cell: Cell {
                        effect: Effect::Allow,
                        rule: Some(rule),
                        columns,
                        denied_columns,
                        denied_columns_rule,
                    },
                });
                if t % 50 == 0 {
                    for class in [C::Insert, C::Update] {
                        cells.push(CellEntry {
                            class,
                            table: Some(t as u32),
                            cell: Cell {
                                effect: Effect::Allow,
                                rule: Some(rule),
                                columns: ColumnAccess::All,
                                denied_columns: vec![],
                                denied_columns_rule: None,
                            },
                        });
                    }
                }
            }
            CompiledRole {
                groups: None,
                name: format!("role_{r}"),
                members: vec![Membership {
                    claim: "groups".into(),
                    value: format!("g{r}"),
                }],
                cells,
                functions: vec![],
                patterns: vec![PatternRule {
                    kind: PatternKind::Function,
                    classes: ClassSet::ALL,
                    pattern: "pg_catalog.*".into(),
                    effect: Effect::Allow,
                    rule: 0,
                }],
                masks: vec![],
                limits: Limits::default(),
                token_use: Default::default(),
                rates: vec![],
                budgets: vec![],
                delegation: Default::default(),
            }
        })
        .collect();
    CompiledPolicy {
        source_digest: [1; 32],
        catalog: Catalog {
            aliases: vec![],
            tables,
            functions: vec![],
        },
        rules,
        roles,
    }
}

fn pgbench_like_facts(schema: &str, table: &str, column: &str) -> Facts {
    let mut f = Facts::default();
    f.begin_statement(0, 10).unwrap();
    f.current_mut().unwrap().classes.insert(C::Select);
    let s = f.push_name(schema).unwrap();
    let n = f.push_name(table).unwrap();
    f.push_table(TableAccess {
        class: C::Select,
        name: QualifiedName { schema: s, name: n },
    })
    .unwrap();
    for c in [column, "col_0"] {
        let c = f.push_name(c).unwrap();
        f.push_column(ColumnRef {
            name: ColumnName::Named(c),
            candidates: 1,
            whole_row: 0,
            qualified: false,
            clause: Clause::SelectList,
            output_alias: false,
            plain: true,
        })
        .unwrap();
    }
    f
}

fn bench(c: &mut Criterion) {
    let policy = large_policy();
    let bytes = write(&policy).expect("the policy lays out");
    eprintln!(
        "generated table: {ROLES} roles × {TABLES} tables × {COLUMNS} columns = {} bytes ({:.2} MiB)",
        bytes.len(),
        bytes.len() as f64 / (1024.0 * 1024.0)
    );
    c.bench_function("table/load+validate 50x2000x30", |b| {
        b.iter(|| Table::parse(black_box(&bytes)).map(|t| t.role_count()))
    });

    let t = Table::parse(&bytes).unwrap();
    let role = t.role("role_3").unwrap();
    let facts = pgbench_like_facts("s3", "table_13", "col_5");
    assert!(t.decide_all(role, &facts).is_allow());
    c.bench_function("decide/one table two columns", |b| {
        b.iter(|| t.decide_all(black_box(role), black_box(&facts)).is_allow())
    });
    let tid = t.table_id("s3", "table_13").unwrap();
    let col = t.column_id(tid, "col_5").unwrap();
    c.bench_function("decide/cell lookup by ids", |b| {
        b.iter(|| t.column_allowed(black_box(role), C::Select, black_box(tid), black_box(col)))
    });
    c.bench_function("decide/name lookups (table + column)", |b| {
        b.iter(|| {
            let tid = t.table_id(black_box("s3"), black_box("table_13"));
            tid.and_then(|tid| t.column_id(tid, black_box("col_5")))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
