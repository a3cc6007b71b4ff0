//! PostgreSQL's own privilege checker as the oracle of pgate's decisions.
//!
//! Random policies (roles with table- and column-level allows and denies, insert, update
//! and delete rights, function allows) are mirrored as GRANTs on a fixture of two schemas
//! in the live test database: column-level `GRANT SELECT (…)`, `GRANT UPDATE (…)`,
//! `INSERT`, `DELETE`, `EXECUTE` only on allowed functions (revoked from PUBLIC), nothing
//! else. A grammar-driven generator writes statements over the fixture — joins (ON, USING,
//! NATURAL, LEFT, CROSS), subqueries, CTEs (data-modifying too), set operations, window
//! functions, aliases and alias column lists, row constructors and whole-row references,
//! attribute notation, casts, LATERAL, VALUES, functions in every clause, DML with
//! RETURNING — and the regression corpus's queries and DML rewritten onto the fixture's
//! tables and columns (`corpus_on_fixture`); each runs once through pgate's classifier and `decide()` (the one
//! decision path of `pgate_core::decide`, as the data plane runs it) and once in
//! PostgreSQL as the mirrored role, inside a transaction that is rolled back, with a
//! statement timeout.
//!
//! - Every statement PostgreSQL refuses with 42501 must be denied by pgate: zero false
//!   allows. A statement PostgreSQL rejects for another reason before execution (an
//!   unknown or ambiguous column, a type error) says nothing and is skipped; a run-time
//!   error (division by zero, a timeout) comes after the privilege checks and counts as
//!   allowed.
//! - A statement pgate denies but PostgreSQL runs is a false deny. Each generator kind that
//!   produced one must be listed, with its reason, in `privilege_oracle_false_denies.txt`,
//!   and false denies must stay under 1 % of the statements PostgreSQL judged.
//! - Session scripts (`SET`/`SET LOCAL`/`RESET search_path`, transactions, savepoints,
//!   rollbacks, failing statements) run before an access of an unqualified name whose
//!   schema the path decides, through the live proxy (which tracks the session) and
//!   straight in PostgreSQL as the role: their verdicts must agree the same way.
//! - A sample of the statements also goes through the live proxy, whose verdict must be
//!   the in-process one.
//!
//! `PGATE_ORACLE_SEEDS` (default 2) policies × `PGATE_ORACLE_STATEMENTS` (default 600)
//! generated statements and `PGATE_ORACLE_CORPUS` (default 150) corpus statements per
//! role: ci/test.sh runs the default, `ci/oracle.sh` a longer run. The fixture's catalog
//! is the one `schema --from` reads from it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod live;
use live::*;
#[path = "../../core/tests/common/mod.rs"]
mod corpus;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pgate_core::class::StatementClass;
use pgate_core::decide::{SessionState, decide_sql};
use pgate_core::facts::{ColumnName, Facts};
use pgate_core::sql::{ClassifyContext, classify};

/// A fixture table (every column `int`, so generated expressions type-check).
struct T {
    schema: &'static str,
    name: &'static str,
    cols: &'static [&'static str],
}

const TABLES: &[T] = &[
    T {
        schema: "fx1",
        name: "t1",
        cols: &["id", "a", "b", "c"],
    },
    T {
        schema: "fx1",
        name: "t2",
        cols: &["id", "a", "d"],
    },
    T {
        schema: "fx2",
        name: "t3",
        cols: &["id", "e", "b"],
    },
    // A twin name in the second schema: unqualified `t1` is `fx1.t1` on the path.
    T {
        schema: "fx2",
        name: "t1",
        cols: &["id", "z"],
    },
];

/// Fixture functions, each `(int) RETURNS int`.
const FUNCS: &[(&str, &str)] = &[("fx1", "fa"), ("fx1", "fb"), ("fx2", "fa"), ("fx2", "fc")];

/// The search path every statement runs under, pgate's and PostgreSQL's.
const PATH: &[&str] = &["fx1", "fx2"];
const ROLES: usize = 6;

/// splitmix64: a small deterministic generator (runs are reproducible from their seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, X>(&mut self, xs: &'a [X]) -> &'a X {
        &xs[self.below(xs.len())]
    }
    /// A non-empty random subset of `xs`, in order.
    fn subset<'a>(&mut self, xs: &[&'a str]) -> Vec<&'a str> {
        loop {
            let v: Vec<&str> = xs.iter().copied().filter(|_| self.chance(50)).collect();
            if !v.is_empty() {
                return v;
            }
        }
    }
}

fn role_name(seed: u64, i: usize) -> String {
    format!("pgo{seed}_{i}")
}

/// One generated policy: its KDL, and the SQL that mirrors it as privileges.
struct Policy {
    kdl: String,
    grants: String,
}

/// The regression corpus rewritten onto the fixture: its single queries and DML (classes
/// select, insert, update, delete only, nothing unknown, at least one table) with every
/// word that names one of their tables replaced by a fixture table and every word that
/// names one of their columns by a fixture column (chosen by a hash of the word, so a
/// statement stays self-consistent). Words inside string literals and comments are left
/// alone. Most rewrites do not type-check and PostgreSQL skips them; the rest are judged
/// like generated statements (kind `corpus`).
fn corpus_on_fixture() -> Vec<String> {
    const FIXTURE_TABLES: [&str; 3] = ["t1", "t2", "t3"];
    const FIXTURE_COLUMNS: [&str; 3] = ["id", "a", "b"];
    let plain = [
        StatementClass::Select,
        StatementClass::Insert,
        StatementClass::Update,
        StatementClass::Delete,
    ];
    let ctx = ClassifyContext::default();
    let mut facts = Facts::default();
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for text in corpus::corpus_texts() {
        for sql in text.split(";\n") {
            let sql = sql.trim();
            if sql.is_empty() || sql.len() > 2000 || sql.contains('\\') {
                continue;
            }
            classify(sql, &ctx, &mut facts);
            let [s] = facts.statements() else { continue };
            let tables = facts.tables(s);
            if s.unknown_reason.is_some()
                || tables.is_empty()
                || s.classes.iter().any(|c| !plain.contains(&c))
            {
                continue;
            }
            let table_names: Vec<String> = tables
                .iter()
                .map(|t| facts.name(t.name.name).to_string())
                .collect();
            let schema_names: Vec<String> = tables
                .iter()
                .map(|t| facts.name(t.name.schema).to_string())
                .filter(|n| !n.is_empty())
                .collect();
            let column_names: Vec<String> = facts
                .columns(s)
                .iter()
                .filter_map(|c| match c.name {
                    ColumnName::Named(n) => Some(facts.name(n).to_string()),
                    _ => None,
                })
                .collect();
            let pick = |w: &str, n: usize| {
                w.bytes()
                    .fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
                    % n
            };
            let rewritten = rewrite_words(sql, |w| {
                let lower = w.to_ascii_lowercase();
                if table_names.contains(&lower) {
                    Some(FIXTURE_TABLES[pick(&lower, 3)].to_string())
                } else if schema_names.contains(&lower) {
                    Some("fx1".to_string())
                } else if column_names.contains(&lower) {
                    Some(FIXTURE_COLUMNS[pick(&lower, 3)].to_string())
                } else {
                    None
                }
            });
            if seen.insert(rewritten.clone()) {
                out.push(rewritten);
            }
        }
    }
    out
}

/// `sql` with each unquoted word outside literals, quoted identifiers and comments
/// replaced where `f` says.
fn rewrite_words(sql: &str, f: impl Fn(&str) -> Option<String>) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        let end = if c == b'\'' || c == b'"' {
            // To the closing quote (a doubled quote stays inside).
            let mut j = i + 1;
            while j < b.len() {
                if b[j] == c {
                    if b.get(j + 1) == Some(&c) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
            (j + 1).min(b.len())
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            sql[i..].find('\n').map_or(b.len(), |n| i + n)
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2)
        } else if is_word(c) && !c.is_ascii_digit() {
            let mut j = i;
            while j < b.len() && is_word(b[j]) {
                j += 1;
            }
            // `$1` and `E'…'`-style prefixes are left to the literal branch.
            let w = &sql[i..j];
            match f(w) {
                Some(r) => out.push_str(&r),
                None => out.push_str(w),
            }
            i = j;
            continue;
        } else {
            let mut j = i + 1;
            while j < b.len() && !sql.is_char_boundary(j) {
                j += 1;
            }
            j
        };
        out.push_str(&sql[i..end]);
        i = end;
    }
    out
}

/// The fixture's catalog as `pgate-compile schema --from` writes it from the database
/// (tables with their columns, functions with their overloads).
fn fixture_catalog() -> String {
    let url = std::env::var("PGATE_TEST_DATABASE_URL").unwrap();
    let (server, _) = url.rsplit_once('/').unwrap();
    let args = pgate_compile::cmd::SchemaArgs {
        from: format!("{server}/{DB}"),
        output: None,
        output_dir: None,
        schemas: vec!["fx1".into(), "fx2".into()],
    };
    let catalog = pgate_compile::cmd::schema::fetch(&args).expect("schema --from the fixture");
    let text = pgate_compile::cmd::schema::render(&catalog);
    for t in TABLES {
        assert!(
            text.contains(&format!("table \"{}.{}\"", t.schema, t.name)),
            "{text}"
        );
    }
    // Both `fa` take one integer: fx2's is hidden behind fx1's on the path (fx1, fx2).
    assert!(
        text.contains("function \"fx2.fa\" { overloads \"integer\" }"),
        "{text}"
    );
    text
}

fn gen_policy(seed: u64, rng: &mut Rng, catalog: &str) -> Policy {
    let mut kdl = catalog.to_string();
    let mut grants = String::new();
    for i in 0..ROLES {
        let r = role_name(seed, i);
        let _ = writeln!(
            grants,
            "CREATE ROLE {r} NOLOGIN; GRANT USAGE ON SCHEMA fx1, fx2 TO {r};"
        );
        let _ = writeln!(
            kdl,
            "role \"{r}\" {{\n    member claim=\"groups\" value=\"{r}\""
        );
        // Without a table, a SELECT needs only the class: `SELECT 1` runs for everyone.
        let _ = writeln!(kdl, "    allow \"transaction\" \"session\"");
        let _ = writeln!(kdl, "    allow-function \"pg_catalog.*\"");
        for t in TABLES {
            let q = format!("{}.{}", t.schema, t.name);
            match rng.below(4) {
                0 => {}
                1 => {
                    let _ = writeln!(kdl, "    allow \"select\" table=\"{q}\"");
                    let _ = writeln!(grants, "GRANT SELECT ON {q} TO {r};");
                }
                2 => {
                    // A proper subset: every column is the table-wide branch above (a
                    // list naming every declared column does not allow `*`, whose columns
                    // pgate cannot know the catalog lists completely: see the list of
                    // false-deny kinds).
                    let mut cols = rng.subset(t.cols);
                    if cols.len() == t.cols.len() {
                        cols.pop();
                    }
                    let _ = writeln!(
                        kdl,
                        "    allow \"select\" table=\"{q}\" {{ columns {}; }}",
                        quoted(&cols)
                    );
                    let _ = writeln!(grants, "GRANT SELECT ({}) ON {q} TO {r};", cols.join(", "));
                }
                _ => {
                    // A table-wide allow narrowed by a column deny.
                    let denied = rng.subset(t.cols);
                    let kept: Vec<&str> = t
                        .cols
                        .iter()
                        .copied()
                        .filter(|c| !denied.contains(c))
                        .collect();
                    let _ = writeln!(kdl, "    allow \"select\" table=\"{q}\"");
                    let _ = writeln!(
                        kdl,
                        "    deny \"select\" table=\"{q}\" {{ columns {}; }}",
                        quoted(&denied)
                    );
                    if !kept.is_empty() {
                        let _ =
                            writeln!(grants, "GRANT SELECT ({}) ON {q} TO {r};", kept.join(", "));
                    }
                }
            }
            if rng.chance(30) {
                let _ = writeln!(kdl, "    allow \"insert\" table=\"{q}\"");
                let _ = writeln!(grants, "GRANT INSERT ON {q} TO {r};");
            }
            if rng.chance(30) {
                let cols = rng.subset(t.cols);
                let _ = writeln!(
                    kdl,
                    "    allow \"update\" table=\"{q}\" {{ columns {}; }}",
                    quoted(&cols)
                );
                let _ = writeln!(grants, "GRANT UPDATE ({}) ON {q} TO {r};", cols.join(", "));
            }
            if rng.chance(30) {
                let _ = writeln!(kdl, "    allow \"delete\" table=\"{q}\"");
                let _ = writeln!(grants, "GRANT DELETE ON {q} TO {r};");
            }
        }
        if rng.chance(50) {
            let _ = writeln!(kdl, "    allow-function \"fx1.rowf\"");
            let _ = writeln!(grants, "GRANT EXECUTE ON FUNCTION fx1.rowf(fx1.t1) TO {r};");
        }
        for (s, f) in FUNCS {
            if rng.chance(60) {
                let _ = writeln!(kdl, "    allow-function \"{s}.{f}\"");
                let _ = writeln!(grants, "GRANT EXECUTE ON FUNCTION {s}.{f}(int) TO {r};");
            } else if rng.chance(50) {
                let _ = writeln!(kdl, "    deny-function \"{s}.{f}\"");
            }
        }
        kdl.push_str("}\n");
    }
    Policy { kdl, grants }
}

fn quoted(cols: &[&str]) -> String {
    cols.iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fixture, created afresh (dropping an earlier run's roles of the same seeds).
fn fixture_sql(seeds: &[u64]) -> String {
    let mut s = String::from("DROP SCHEMA IF EXISTS fx1, fx2 CASCADE;\n");
    for &seed in seeds {
        for i in 0..ROLES {
            let _ = writeln!(s, "DROP ROLE IF EXISTS {};", role_name(seed, i));
        }
    }
    s.push_str("CREATE SCHEMA fx1; CREATE SCHEMA fx2;\n");
    for t in TABLES {
        let cols: Vec<String> = t.cols.iter().map(|c| format!("{c} int")).collect();
        let _ = writeln!(
            s,
            "CREATE TABLE {}.{} ({});",
            t.schema,
            t.name,
            cols.join(", ")
        );
        let vals: Vec<String> = (1..=3)
            .map(|k| {
                let row: Vec<String> = (0..t.cols.len()).map(|j| (k + j).to_string()).collect();
                format!("({})", row.join(", "))
            })
            .collect();
        let _ = writeln!(
            s,
            "INSERT INTO {}.{} VALUES {};",
            t.schema,
            t.name,
            vals.join(", ")
        );
    }
    // A function of a row: attribute notation `x.rowf` calls it.
    s.push_str(
        "CREATE FUNCTION fx1.rowf(fx1.t1) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1.a';
         REVOKE EXECUTE ON FUNCTION fx1.rowf(fx1.t1) FROM PUBLIC;\n",
    );
    for (sch, f) in FUNCS {
        let _ = writeln!(
            s,
            "CREATE FUNCTION {sch}.{f}(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1';
             REVOKE EXECUTE ON FUNCTION {sch}.{f}(int) FROM PUBLIC;"
        );
    }
    s
}

/// A FROM item as the generator knows it: its SQL, its alias and its visible columns.
struct Item {
    sql: String,
    alias: String,
    cols: Vec<String>,
}

struct Gen<'r> {
    rng: &'r mut Rng,
    n: usize,
}

impl Gen<'_> {
    fn alias(&mut self) -> String {
        self.n += 1;
        format!("x{}", self.n)
    }

    /// A table reference: qualified or not (unqualified `t1` is `fx1.t1` on the path).
    fn table(&mut self) -> (String, &'static T) {
        let t = self.rng.pick(TABLES);
        if self.rng.chance(50) {
            let resolved = TABLES
                .iter()
                .find(|u| u.name == t.name)
                .expect("a table of that name");
            (t.name.to_string(), resolved)
        } else {
            (format!("{}.{}", t.schema, t.name), t)
        }
    }

    /// A table in FROM, sometimes renamed by an alias column list.
    fn base_item(&mut self, renames: bool) -> Item {
        let (name, t) = self.table();
        let alias = self.alias();
        let mut cols: Vec<String> = t.cols.iter().map(|c| c.to_string()).collect();
        if renames && self.rng.chance(25) {
            let k = 1 + self.rng.below(cols.len());
            let new: Vec<String> = (0..k).map(|j| format!("r{j}")).collect();
            cols.splice(0..k, new.iter().cloned());
            Item {
                sql: format!("{name} AS {alias}({})", new.join(", ")),
                alias,
                cols,
            }
        } else {
            Item {
                sql: format!("{name} {alias}"),
                alias,
                cols,
            }
        }
    }

    fn col(&mut self, items: &[Item]) -> String {
        let it = self.rng.pick(items);
        let c = self.rng.pick(&it.cols).clone();
        if self.rng.chance(20) && items.len() == 1 {
            c
        } else {
            format!("{}.{c}", it.alias)
        }
    }

    fn func(&mut self) -> String {
        let (s, f) = *self.rng.pick(FUNCS);
        if self.rng.chance(50) {
            f.to_string()
        } else {
            format!("{s}.{f}")
        }
    }

    fn expr(&mut self, items: &[Item], depth: u32) -> String {
        if depth > 2 {
            return self.col(items);
        }
        match self.rng.below(12) {
            0..=3 => self.col(items),
            4 => format!("{}({})", self.func(), self.expr(items, depth + 1)),
            5 => format!("{} + 1", self.expr(items, depth + 1)),
            6 => format!("abs({})", self.expr(items, depth + 1)),
            7 => format!("({})::int", self.expr(items, depth + 1)),
            8 => {
                let it = self.rng.pick(items);
                let c = self.rng.pick(&it.cols).clone();
                format!("({}).{c}", it.alias)
            }
            9 => format!(
                "CASE WHEN {} > 1 THEN {} ELSE 0 END",
                self.expr(items, depth + 1),
                self.expr(items, depth + 1)
            ),
            10 => {
                let inner = self.base_item(false);
                let c = self.rng.pick(&inner.cols).clone();
                format!("(SELECT max({}.{c}) FROM {})", inner.alias, inner.sql)
            }
            _ => "1".to_string(),
        }
    }

    fn pred(&mut self, items: &[Item]) -> String {
        match self.rng.below(6) {
            0 => format!("{} = {}", self.expr(items, 1), self.expr(items, 1)),
            1 => format!("{} > 1", self.expr(items, 1)),
            2 => {
                let inner = self.base_item(false);
                let c = self.rng.pick(&inner.cols).clone();
                format!(
                    "{} IN (SELECT {}.{c} FROM {})",
                    self.col(items),
                    inner.alias,
                    inner.sql
                )
            }
            3 => {
                let inner = self.base_item(false);
                let c = self.rng.pick(&inner.cols).clone();
                let outer = self.col(items);
                format!(
                    "EXISTS (SELECT 1 FROM {} WHERE {}.{c} = {outer})",
                    inner.sql, inner.alias
                )
            }
            4 => format!("ROW({}, {}) = ROW(1, 2)", self.col(items), self.col(items)),
            _ => format!("{} IS NOT NULL", self.col(items)),
        }
    }

    fn select_list(&mut self, items: &[Item]) -> String {
        match self.rng.below(10) {
            0 => "*".to_string(),
            1 => format!("{}.*", self.rng.pick(items).alias),
            // A whole-row reference reads every column.
            2 => self.rng.pick(items).alias.clone(),
            3 => "count(*)".to_string(),
            4 => format!(
                "{}, row_number() OVER (PARTITION BY {} ORDER BY {})",
                self.col(items),
                self.col(items),
                self.col(items)
            ),
            _ => {
                let n = 1 + self.rng.below(3);
                (0..n)
                    .map(|_| self.expr(items, 0))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
    }

    /// Two items and a join between them.
    fn join(&mut self) -> (&'static str, String, Vec<Item>) {
        let a = self.base_item(true);
        let b = self.base_item(true);
        let common: Vec<String> = a
            .cols
            .iter()
            .filter(|c| b.cols.contains(c))
            .cloned()
            .collect();
        let (kind, sql) = match self.rng.below(5) {
            0 if !common.is_empty() => (
                "join-using",
                format!(
                    "{} JOIN {} USING ({})",
                    a.sql,
                    b.sql,
                    self.rng.pick(&common)
                ),
            ),
            1 => ("natural-join", format!("{} NATURAL JOIN {}", a.sql, b.sql)),
            2 => ("cross-join", format!("{} CROSS JOIN {}", a.sql, b.sql)),
            3 => {
                let on = format!(
                    "{}.{} = {}.{}",
                    a.alias,
                    self.rng.pick(&a.cols),
                    b.alias,
                    self.rng.pick(&b.cols)
                );
                (
                    "left-join",
                    format!("{} LEFT JOIN {} ON {on}", a.sql, b.sql),
                )
            }
            _ => {
                let on = format!(
                    "{}.{} = {}.{}",
                    a.alias,
                    self.rng.pick(&a.cols),
                    b.alias,
                    self.rng.pick(&b.cols)
                );
                ("join-on", format!("{} JOIN {} ON {on}", a.sql, b.sql))
            }
        };
        (kind, sql, vec![a, b])
    }

    /// One statement and the name of the form it has.
    fn statement(&mut self) -> (&'static str, String) {
        if self.rng.chance(4) {
            // Attribute notation is a function call: `x.rowf` is `rowf(x)`.
            let a = self.alias();
            let t = if self.rng.chance(50) { "t1" } else { "fx1.t1" };
            let call = match self.rng.below(3) {
                0 => format!("{a}.rowf"),
                1 => format!("({a}).rowf"),
                _ => format!("rowf({a})"),
            };
            return ("attribute-call", format!("SELECT {call} FROM {t} {a}"));
        }
        match self.rng.below(16) {
            0..=2 => {
                let it = vec![self.base_item(true)];
                let mut sql = format!("SELECT {} FROM {}", self.select_list(&it), it[0].sql);
                if self.rng.chance(60) {
                    let _ = write!(sql, " WHERE {}", self.pred(&it));
                }
                let renamed = it[0].sql.contains('(');
                (if renamed { "alias-columns" } else { "select" }, sql)
            }
            3 | 4 => {
                let (kind, from, items) = self.join();
                let list = if kind == "natural-join" || kind == "join-using" {
                    // Their common columns are merged: qualified names stay unambiguous.
                    format!("{}.{}", items[0].alias, self.rng.pick(&items[0].cols))
                } else {
                    self.select_list(&items)
                };
                (kind, format!("SELECT {list} FROM {from}"))
            }
            5 => {
                let inner = self.base_item(true);
                let c = self.rng.pick(&inner.cols).clone();
                let d = self.alias();
                let renamed = self.rng.chance(50);
                let (alias, outer_col) = if renamed {
                    (format!("{d}(v)"), "v".to_string())
                } else {
                    (d.clone(), c.clone())
                };
                (
                    "derived",
                    format!(
                        "SELECT {d}.{outer_col} FROM (SELECT {}.{c} FROM {}) AS {alias}",
                        inner.alias, inner.sql
                    ),
                )
            }
            6 => {
                let inner = self.base_item(false);
                let list = self.select_list(std::slice::from_ref(&inner));
                (
                    "cte",
                    format!(
                        "WITH w AS (SELECT {list} FROM {}) SELECT * FROM w",
                        inner.sql
                    ),
                )
            }
            7 => {
                let (name, t) = self.table();
                let set = *self.rng.pick(t.cols);
                let ret = *self.rng.pick(t.cols);
                let src = *self.rng.pick(t.cols);
                (
                    "cte-dml",
                    format!(
                        "WITH u AS (UPDATE {name} SET {set} = {src} WHERE id = 1 RETURNING {ret}) SELECT * FROM u"
                    ),
                )
            }
            8 => {
                let a = self.base_item(false);
                let b = self.base_item(false);
                let ca = self.rng.pick(&a.cols).clone();
                let cb = self.rng.pick(&b.cols).clone();
                let op = *self
                    .rng
                    .pick(&["UNION", "UNION ALL", "INTERSECT", "EXCEPT"]);
                (
                    "set-operation",
                    format!(
                        "SELECT {}.{ca} FROM {} {op} SELECT {}.{cb} FROM {}",
                        a.alias, a.sql, b.alias, b.sql
                    ),
                )
            }
            9 => {
                let a = self.base_item(false);
                let b = self.base_item(false);
                let ca = self.rng.pick(&a.cols).clone();
                let cb = self.rng.pick(&b.cols).clone();
                let cb2 = self.rng.pick(&b.cols).clone();
                (
                    "lateral",
                    format!(
                        "SELECT l.v FROM {}, LATERAL (SELECT {}.{cb} AS v FROM {} WHERE {}.{cb2} = {}.{ca}) l",
                        a.sql, b.alias, b.sql, b.alias, a.alias
                    ),
                )
            }
            10 => {
                let a = self.base_item(false);
                let ca = self.rng.pick(&a.cols).clone();
                let list = self.select_list(std::slice::from_ref(&a));
                (
                    "values-join",
                    format!(
                        "SELECT v.n, {list} FROM (VALUES (1), (2)) AS v(n) JOIN {} ON {}.{ca} = v.n",
                        a.sql, a.alias
                    ),
                )
            }
            11 => {
                let f = self.func();
                let g = self.func();
                (
                    "function-from",
                    format!("SELECT s.n, {g}(s.n) FROM {f}(1) AS s(n)"),
                )
            }
            12 => {
                let (name, t) = self.table();
                let cols = self.rng.subset(t.cols);
                let vals: Vec<String> = (0..cols.len()).map(|k| k.to_string()).collect();
                let ret = if self.rng.chance(50) {
                    format!(" RETURNING {}", self.rng.pick(t.cols))
                } else {
                    String::new()
                };
                if self.rng.chance(50) {
                    (
                        "insert",
                        format!(
                            "INSERT INTO {name} ({}) VALUES ({}){ret}",
                            cols.join(", "),
                            vals.join(", ")
                        ),
                    )
                } else {
                    let src = self.base_item(false);
                    let exprs: Vec<String> = (0..cols.len())
                        .map(|_| format!("{}.{}", src.alias, self.rng.pick(&src.cols)))
                        .collect();
                    (
                        "insert-select",
                        format!(
                            "INSERT INTO {name} ({}) SELECT {} FROM {}{ret}",
                            cols.join(", "),
                            exprs.join(", "),
                            src.sql
                        ),
                    )
                }
            }
            13 => {
                let (name, t) = self.table();
                let set = *self.rng.pick(t.cols);
                let items = vec![Item {
                    sql: name.clone(),
                    alias: name.rsplit('.').next().unwrap_or(&name).to_string(),
                    cols: t.cols.iter().map(|c| c.to_string()).collect(),
                }];
                let value = if self.rng.chance(50) {
                    "7".to_string()
                } else {
                    self.expr(&items, 1)
                };
                let mut sql = format!("UPDATE {name} SET {set} = {value}");
                if self.rng.chance(70) {
                    let _ = write!(sql, " WHERE {}", self.pred(&items));
                }
                if self.rng.chance(30) {
                    let _ = write!(sql, " RETURNING {}", self.rng.pick(t.cols));
                }
                ("update", sql)
            }
            14 => {
                let (name, t) = self.table();
                let items = vec![Item {
                    sql: name.clone(),
                    alias: name.rsplit('.').next().unwrap_or(&name).to_string(),
                    cols: t.cols.iter().map(|c| c.to_string()).collect(),
                }];
                let mut sql = format!("DELETE FROM {name}");
                if self.rng.chance(70) {
                    let _ = write!(sql, " WHERE {}", self.pred(&items));
                }
                if self.rng.chance(30) {
                    let _ = write!(sql, " RETURNING {}", self.rng.pick(t.cols));
                }
                ("delete", sql)
            }
            _ => {
                let it = vec![self.base_item(false)];
                let g = self.col(&it);
                (
                    "aggregate",
                    format!(
                        "SELECT {g}, count({}) FROM {} GROUP BY {g} HAVING max({}) > 0 ORDER BY 1",
                        self.col(&it),
                        it[0].sql,
                        self.col(&it)
                    ),
                )
            }
        }
    }
}

/// What PostgreSQL said about one statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pg {
    /// It ran (or failed at run time, after its privilege checks).
    Ran,
    /// 42501.
    Refused,
    /// Rejected before execution for another reason: no verdict.
    Invalid,
}

fn judge(r: &Result<(), tokio_postgres::Error>) -> Pg {
    let Err(e) = r else { return Pg::Ran };
    let Some(db) = e.as_db_error() else {
        panic!("no answer from PostgreSQL: {e}")
    };
    let code = db.code().code();
    if code == "42501" {
        Pg::Refused
    } else if code.starts_with("22") || code.starts_with("23") || code == "21000" || code == "57014"
    {
        Pg::Ran
    } else {
        Pg::Invalid
    }
}

/// Runs `sql` as `role` in a transaction that is rolled back.
///
/// A data error does not always come after the privilege checks: parse analysis runs a
/// literal's input function (`INSERT INTO t VALUES ('x')` into an integer) and the planner
/// folds constants (`1/0`) before the executor checks privileges at its start. So after
/// such an error the statement is explained as well: `EXPLAIN` reaches the executor's
/// start, and its checks, without running anything. It succeeds: the privileges were
/// granted (the error came from the rows); 42501: refused; another error: the statement
/// never reached the checks and says nothing.
async fn in_postgres(c: &tokio_postgres::Client, role: &str, sql: &str) -> Pg {
    let run = |sql: String| async move {
        c.batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE {role}; SET LOCAL search_path = {}; SET LOCAL statement_timeout = '2s'",
            PATH.join(", ")
        ))
        .await
        .unwrap();
        let r = c.simple_query(&sql).await.map(|_| ());
        c.batch_execute("ROLLBACK").await.unwrap();
        r
    };
    let r = run(sql.to_string()).await;
    match (judge(&r), r.is_err()) {
        (Pg::Ran, true) => {
            let explained = run(format!("EXPLAIN {sql}")).await;
            match judge(&explained) {
                Pg::Refused => Pg::Refused,
                _ if explained.is_ok() => Pg::Ran,
                _ => Pg::Invalid,
            }
        }
        (verdict, _) => verdict,
    }
}

/// Whether the proxy refused `sql` itself (a 42501 whose message is pgate's).
fn pgate_refused(
    r: &Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error>,
) -> bool {
    match r {
        Ok(_) => false,
        Err(e) => e
            .as_db_error()
            .is_some_and(|d| d.code().code() == "42501" && d.message().starts_with("pgate:")),
    }
}

#[derive(Default)]
struct Tally {
    judged: usize,
    invalid: usize,
    false_allows: Vec<String>,
    false_denies: BTreeMap<&'static str, (usize, String)>,
    by_kind: BTreeMap<&'static str, usize>,
    proxied: usize,
    scripts: usize,
}

/// The function a verdict denies, by its unqualified name, if it denies a function.
fn denied_function(v: &pgate_core::table::Verdict, facts: &Facts) -> Option<String> {
    use pgate_core::table::{Decision, DenyReason};
    let Decision::Deny {
        statement,
        reason: DenyReason::Function { function },
        ..
    } = v.decision
    else {
        return None;
    };
    let s = facts.statements().get(statement as usize)?;
    let f = facts.functions(s).get(function as usize)?;
    Some(facts.name(f.name.name).to_string())
}

/// The family a false deny belongs to, by what the statement uses and what pgate denied:
/// the families of the checked-in list, else the generator's kind.
fn family(kind: &'static str, sql: &str, denied: Option<&str>, types: &[String]) -> &'static str {
    if let Some(f) = denied
        && types.iter().any(|t| t == f)
        && !pgate_core::sql::resolve::is_builtin_function(f)
    {
        return "function-style-cast";
    }
    let b = sql.as_bytes();
    let unqualified_fa = sql
        .match_indices("fa(")
        .any(|(i, _)| i == 0 || !(b[i - 1] == b'.' || b[i - 1].is_ascii_alphanumeric()));
    if sql.contains("CASE WHEN 1 > 1") {
        "dead-branch"
    } else if unqualified_fa {
        "unqualified-overloaded-function"
    } else if sql.contains("(r0") {
        "alias-column-list"
    } else if sql.contains("EXISTS (SELECT 1 FROM") {
        // The generator's correlated form, whose outer reference may be unqualified.
        "correlated-unqualified-column"
    } else {
        kind
    }
}

fn false_deny_list() -> BTreeMap<String, String> {
    let text = include_str!("privilege_oracle_false_denies.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Session scripts: path changes with PostgreSQL's transaction semantics, before an access
/// of `t1` (which is `fx1.t1` or `fx2.t1` depending on the path).
const SCRIPTS: &[&[&str]] = &[
    &["SET search_path = fx2, fx1"],
    &["BEGIN", "SET search_path = fx2, fx1", "ROLLBACK"],
    &["BEGIN", "SET LOCAL search_path = fx2", "COMMIT"],
    &["BEGIN", "SET LOCAL search_path = fx2"],
    &[
        "SET search_path = fx2",
        "RESET search_path",
        "SET search_path = fx2, fx1",
    ],
    &[
        "SET search_path = fx2",
        "BEGIN",
        "SAVEPOINT s",
        "SET search_path = fx1",
        "ROLLBACK TO SAVEPOINT s",
    ],
    &[
        "SET search_path = fx2",
        "BEGIN",
        "SAVEPOINT s",
        "SET search_path = fx1",
        "RELEASE SAVEPOINT s",
        "COMMIT",
    ],
    &["SET search_path = fx2; SELECT 1/0"],
    &[
        "SET search_path = fx2",
        "BEGIN",
        "SET search_path = fx1",
        "SELECT 1/0",
        "ROLLBACK",
    ],
    &["SELECT set_config('search_path', 'fx2', false)"],
    &[
        "BEGIN",
        "SELECT set_config('search_path', 'fx2', true)",
        "COMMIT",
    ],
    &["SET search_path TO DEFAULT", "SET search_path = fx2"],
];

#[test]
fn postgresql_refuses_nothing_pgate_allows() {
    let e = require_env!();
    let seeds: Vec<u64> = (1..=env_usize("PGATE_ORACLE_SEEDS", 2) as u64).collect();
    let per_role = env_usize("PGATE_ORACLE_STATEMENTS", 600);
    let listed = false_deny_list();
    admin_psql(&e.socket, &e.pg_port, DB, &fixture_sql(&seeds));
    let catalog = fixture_catalog();
    let corpus = corpus_on_fixture();
    let corpus_per_role = env_usize("PGATE_ORACLE_CORPUS", 150);
    // Every false deny with pgate's verdict, for whoever studies a family.
    let show_denies = std::env::var_os("PGATE_ORACLE_SHOW_DENIES").is_some();
    assert!(
        corpus.len() > 1000,
        "the regression corpus gave {} statements (set PGATE_CORPUS)",
        corpus.len()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // PostgreSQL's own type names: `inet(x)` with no function `inet` is a cast.
    let type_names: Vec<String> = rt.block_on(async {
        direct()
            .await
            .query(
                "SELECT typname::text FROM pg_catalog.pg_type \
                 WHERE typnamespace = 'pg_catalog'::pg_catalog.regnamespace",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    });
    let mut tally = Tally::default();
    for &seed in &seeds {
        let mut rng = Rng(seed);
        let policy = gen_policy(seed, &mut rng, &catalog);
        admin_psql(&e.socket, &e.pg_port, DB, &policy.grants);
        let compiled = pgate_compile::compile_str("oracle.kdl", &policy.kdl);
        assert!(
            !compiled.has_errors(),
            "the generated policy compiles:\n{}\n{:?}",
            policy.kdl,
            compiled.diagnostics
        );
        let bytes = compiled.table_bytes().expect("table bytes");
        let table = pgate_core::table::Table::parse(&bytes).expect("the table loads");
        // The same policy behind a live proxy, for the sample and the session scripts.
        let name = format!("oracle{seed}");
        let path = e.dir.join(format!("policy-{name}.pgt"));
        build_table(&policy.kdl, &path);
        let (_guard, addr) = start_pgate(&e.dir, &name, &upstream_line(e), "").expect("pgate");

        rt.block_on(async {
            let pg = direct().await;
            let mut facts = Facts::default();
            let session = SessionState::with_path(PATH);
            for i in 0..ROLES {
                let role = role_name(seed, i);
                let role_id = table.role(&role).expect("the role is in the table");
                let t = token(
                    e,
                    TokenSpec {
                        sub: "oracle@example.com",
                        groups: &role,
                        ..TokenSpec::default()
                    },
                );
                let proxy = client_as(addr, &role, &t).await.unwrap();
                proxy
                    .batch_execute(&format!("SET search_path = {}", PATH.join(", ")))
                    .await
                    .unwrap();
                let mut g = Gen {
                    rng: &mut rng,
                    n: 0,
                };
                let mut batch: Vec<(&'static str, String)> =
                    (0..per_role).map(|_| g.statement()).collect();
                for _ in 0..corpus_per_role.min(corpus.len()) {
                    let pick = g.rng.below(corpus.len());
                    batch.push(("corpus", corpus[pick].clone()));
                }
                for (k, (kind, sql)) in batch.into_iter().enumerate() {
                    let verdict = decide_sql(&table, role_id, &sql, &session, &mut facts);
                    let ours = verdict.is_allow();
                    let theirs = in_postgres(&pg, &role, &sql).await;
                    *tally.by_kind.entry(kind).or_default() += 1;
                    match (theirs, ours) {
                        (Pg::Invalid, _) => tally.invalid += 1,
                        (Pg::Refused, true) => {
                            tally.judged += 1;
                            tally.false_allows.push(format!("{role} [{kind}]: {sql}"));
                        }
                        (Pg::Ran, false) => {
                            tally.judged += 1;
                            if show_denies {
                                eprintln!("false deny [{kind}] {role}: {sql}\n  {verdict:?}");
                            }
                            let entry = tally
                                .false_denies
                                .entry(family(
                                    kind,
                                    &sql,
                                    denied_function(&verdict, &facts).as_deref(),
                                    &type_names,
                                ))
                                .or_insert((0, format!("{role}: {sql}")));
                            entry.0 += 1;
                        }
                        _ => tally.judged += 1,
                    }
                    // Every tenth statement also through the live proxy: its verdict is
                    // the in-process one.
                    if k % 10 == 0 && theirs != Pg::Invalid {
                        proxy.batch_execute("BEGIN").await.unwrap();
                        let r = proxy.simple_query(&sql).await;
                        let _ = proxy.batch_execute("ROLLBACK").await;
                        assert_eq!(
                            pgate_refused(&r),
                            !ours,
                            "the proxy and decide() disagree on {sql:?} for {role}: {r:?}"
                        );
                        tally.proxied += 1;
                    }
                }
                // Session scripts: the proxy tracks the path; PostgreSQL is the oracle.
                for steps in SCRIPTS {
                    for access in ["SELECT id FROM t1", "SELECT * FROM t1", "SELECT fa(1)"] {
                        // Fresh sessions per access: an earlier refusal inside a
                        // transaction must not decide this one.
                        let d = direct().await;
                        d.batch_execute(&format!("SET ROLE {role}")).await.unwrap();
                        let c = client_as(addr, &role, &t).await.unwrap();
                        for s in *steps {
                            let _ = d.simple_query(s).await;
                            let _ = c.simple_query(s).await;
                        }
                        let theirs = judge(&d.simple_query(access).await.map(|_| ()));
                        let r = c.simple_query(access).await;
                        let ours = !pgate_refused(&r);
                        tally.scripts += 1;
                        match (theirs, ours) {
                            (Pg::Refused, true) => tally.false_allows.push(format!(
                                "{role} [session script]: {steps:?} then {access}: {r:?}"
                            )),
                            (Pg::Ran, false) => {
                                let entry = tally
                                    .false_denies
                                    .entry(family("session-script", access, None, &[]))
                                    .or_insert((0, format!("{role}: {steps:?} then {access}")));
                                entry.0 += 1;
                            }
                            _ => {}
                        }
                    }
                }
            }
        });
    }

    let mut report = String::new();
    let denies: usize = tally.false_denies.values().map(|(n, _)| n).sum();
    let _ = writeln!(
        report,
        "oracle: {} statements judged by PostgreSQL ({} invalid skipped), {} through the live proxy, {} session-script accesses; false allows {}, false denies {} ({:.2} %)",
        tally.judged,
        tally.invalid,
        tally.proxied,
        tally.scripts,
        tally.false_allows.len(),
        denies,
        100.0 * denies as f64 / tally.judged.max(1) as f64
    );
    for (kind, n) in &tally.by_kind {
        let _ = writeln!(report, "  generated {kind}: {n}");
    }
    for (kind, (n, example)) in &tally.false_denies {
        let _ = writeln!(report, "  false deny {kind}: {n}, e.g. {example}");
    }
    eprintln!("{report}");
    assert!(
        tally.false_allows.is_empty(),
        "PostgreSQL refused (42501) what pgate allows:\n{}\n{report}",
        tally.false_allows.join("\n")
    );
    let unlisted: Vec<&&str> = tally
        .false_denies
        .keys()
        .filter(|k| !listed.contains_key(**k))
        .collect();
    assert!(
        unlisted.is_empty(),
        "false denies of kinds not in privilege_oracle_false_denies.txt: {unlisted:?}\n{report}"
    );
    assert!(
        denies * 100 < tally.judged,
        "false denies are 1 % or more of the judged statements\n{report}"
    );
    assert!(
        tally.judged > per_role,
        "the generator wrote too few valid statements\n{report}"
    );
}

/// pgate-core's list of built-in function names is PostgreSQL's own (the server the
/// scripts start is the version it was generated from).
#[test]
fn the_builtin_function_list_is_the_servers() {
    let e = require_env!();
    let _ = e;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pg = direct().await;
        let v: String = pg
            .query_one("SHOW server_version", &[])
            .await
            .unwrap()
            .get(0);
        let ours = pgate_core::sql::builtin_functions::PG_VERSION;
        if v.split('.').next() != ours.split('.').next() {
            eprintln!("server {v}, list from {ours}: major versions differ, not compared");
            return;
        }
        let rows = pg
            .query(
                "SELECT DISTINCT proname::text COLLATE \"C\" FROM pg_proc
                 WHERE pronamespace = 'pg_catalog'::regnamespace ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        let theirs: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let ours: Vec<String> = pgate_core::sql::builtin_functions::NAMES
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(ours, theirs, "regenerate with ci/gen-catalog.sh");
    });
}
