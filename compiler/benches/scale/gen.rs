//! The generated policy of the scale benchmarks, one shape for every size.
//!
//! Tables: `TABLES / 100` schemas `s0…` of 100 tables `t0…t99`, 30 columns each (`c3`
//! tagged `pii`; `c4` also `secret` on every 10th table), table tags `group{n % 10}` and
//! `pii` on every 10th table (10 % of tables, the ones whose column lists differ).
//! Roles: every role has five schema-glob allows, one column-restricted allow by tag, an
//! insert/update/delete allow naming one table, a tag deny with a column tag, every third
//! a `copy-out` deny on `*`, transaction/session and function rules, a mask by column
//! tag, a limit and a rate; four of five inherit from a base role. One invariant.
#![allow(dead_code)]

use std::fmt::Write as _;

pub const TABLES_PER_SCHEMA: usize = 100;
pub const COLUMNS: usize = 30;
pub const TABLES_PER_FILE: usize = 10_000;

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub roles: usize,
    pub tables: usize,
}

impl Shape {
    pub fn schemas(&self) -> usize {
        self.tables.div_ceil(TABLES_PER_SCHEMA).max(1)
    }

    /// The catalog in files of at most [`TABLES_PER_FILE`] tables (a policy file is
    /// limited to 16 MiB).
    pub fn catalog_files(&self) -> Vec<(String, String)> {
        let files = self.tables.div_ceil(TABLES_PER_FILE).max(1);
        (0..files)
            .map(|i| {
                let tables = i * TABLES_PER_FILE..((i + 1) * TABLES_PER_FILE).min(self.tables);
                (
                    format!("catalog-{i:03}.kdl"),
                    self.catalog_part(tables, i == 0),
                )
            })
            .collect()
    }

    /// The whole catalog as one text.
    pub fn catalog(&self) -> String {
        self.catalog_part(0..self.tables, true)
    }

    fn catalog_part(&self, tables: std::ops::Range<usize>, functions: bool) -> String {
        let mut s = String::with_capacity(tables.len() * 300 + 4096);
        for n in tables {
            let (sc, t) = (n / TABLES_PER_SCHEMA, n % TABLES_PER_SCHEMA);
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
            let _ = write!(s, "    tags \"group{}\"", n % 10);
            if n.is_multiple_of(10) {
                s.push_str(" \"pii\"");
            }
            s.push_str("\n}\n");
        }
        if !functions {
            return s;
        }
        for f in 0..50 {
            let _ = writeln!(s, "function \"pg_catalog.f{f}\"");
        }
        s.push_str("function \"pg_catalog.pg_read_file\" { tags \"server-files\" }\n");
        s
    }

    pub fn roles(&self) -> String {
        let schemas = self.schemas();
        let mut s = String::with_capacity(self.roles * 1200 + 4096);
        for r in 0..self.roles {
            let _ = writeln!(s, "role \"role{r}\" {{");
            let _ = writeln!(s, "    member claim=\"groups\" value=\"team-{r}\"");
            if r % 5 != 0 {
                let _ = writeln!(s, "    inherits \"role{}\"", r - r % 5);
            }
            for k in 0..5 {
                let _ = writeln!(
                    s,
                    "    allow \"select\" table=\"s{}.*\"",
                    (r * 5 + k) % schemas
                );
            }
            let _ = writeln!(
                s,
                "    allow \"select\" \"copy-out\" tag=\"group{}\" {{\n        columns \"c0\" \"c1\" \"c2\" \"c3\" \"c5\" \"c6\" \"c7\" \"c8\" \"c9\"\n    }}",
                r % 10
            );
            let _ = writeln!(
                s,
                "    allow \"insert\" \"update\" \"delete\" table=\"s{}.t{}\"",
                r % schemas,
                r % TABLES_PER_SCHEMA
            );
            s.push_str(
                "    deny \"select\" \"copy-out\" tag=\"pii\" {\n        column-tag \"secret\"\n    }\n",
            );
            if r % 3 == 0 {
                s.push_str("    deny \"copy-out\" table=\"*\"\n");
            }
            s.push_str("    allow \"transaction\" \"session\"\n");
            s.push_str("    allow-function \"pg_catalog.*\"\n");
            s.push_str("    deny-function tag=\"server-files\"\n");
            s.push_str("    mask column-tag=\"pii\" with=\"hash\"\n");
            let _ = writeln!(s, "    limit rows={} bytes=\"16MiB\"", 10_000 + r);
            s.push_str(
                "    rate bytes=\"1MiB\" per=\"second\" burst=\"8MiB\" scope=\"identity\"\n",
            );
            s.push_str("}\n");
        }
        s.push_str(
            "invariant \"secrets never leave\" {\n    forbid \"select\" \"copy-out\" tag=\"pii\" column-tag=\"secret\"\n}\n",
        );
        s
    }
}
