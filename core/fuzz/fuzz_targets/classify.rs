//! Any bytes (as text) classify without panicking, unknown statements carry no facts, and
//! the fast path for flat statements records exactly what the full classifier records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgate_core::class::{ClassSet, StatementClass};
use pgate_core::facts::{ColumnName, Facts};
use pgate_core::sql::{CatalogLookup, ClassifyContext, classify, classify_general};

/// A catalog with a few tables and functions, so that resolution through a path of several
/// schemas (and the fast path's use of it) is exercised too.
struct Cat;
impl CatalogLookup for Cat {
    fn has_table(&self, schema: &str, name: &str) -> bool {
        matches!(
            (schema, name),
            ("public", "t") | ("other", "t") | ("other", "u") | ("pg_catalog", "pg_class")
        )
    }
    fn has_function(&self, schema: &str, name: &str) -> bool {
        matches!((schema, name), ("public", "f") | ("other", "f"))
    }
}

/// Everything a decision depends on, names resolved.
fn describe(f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    for s in f.statements() {
        out.push(format!(
            "{}..{} {:?} {:?} {:?} {}",
            s.start,
            s.end,
            s.classes,
            s.flags,
            s.unknown_reason,
            f.name(s.prepared_name)
        ));
        for t in f.tables(s) {
            out.push(format!("T {:?} {}.{}", t.class, f.name(t.name.schema), f.name(t.name.name)));
        }
        for c in f.columns(s) {
            let name = match c.name {
                ColumnName::All => "*".to_string(),
                ColumnName::Named(n) => f.name(n).to_string(),
                ColumnName::Common { right } => format!("natural {right}"),
            };
            out.push(format!(
                "C {name} {} {} {} {:?} {}",
                c.candidates, c.whole_row, c.qualified, c.clause, c.output_alias
            ));
        }
        for x in f.functions(s) {
            out.push(format!("F {}.{}", f.name(x.name.schema), f.name(x.name.name)));
        }
        for &p in f.search_path(s) {
            out.push(format!("P {}", f.name(p)));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let path = ["public", "other"];
    let with_catalog = ClassifyContext {
        search_path: &path,
        catalog: Some(&Cat),
        ..ClassifyContext::default()
    };
    check(sql, &ClassifyContext::default());
    check(sql, &with_catalog);
});

fn check(sql: &str, ctx: &ClassifyContext<'_>) {
    let ctx = *ctx;
    let mut facts = Facts::default();
    classify(sql, &ctx, &mut facts);
    for s in facts.statements() {
        assert!(s.end as usize <= sql.len());
        if s.classes.contains(StatementClass::Unknown) {
            assert_eq!(s.classes, ClassSet::single(StatementClass::Unknown));
            assert!(facts.tables(s).is_empty());
        }
    }
    let mut general = Facts::default();
    classify_general(sql, &ctx, &mut general);
    assert_eq!(describe(&facts), describe(&general), "{sql:?}");
}
