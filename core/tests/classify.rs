//! Behaviour of the SQL classifier through its public API: classes, flags, tables,
//! columns and functions, including the adversarial cases policy depends on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly

use pgate_core::class::{ClassSet, StatementClass as C};
use pgate_core::facts::{Clause, ColumnName, Facts, StatementFacts, StatementFlags as F};
use pgate_core::sql::{CatalogLookup, ClassifyContext, classify};

struct Out {
    facts: Facts,
}

fn run(sql: &str) -> Out {
    run_ctx(sql, &ClassifyContext::default())
}

fn run_ctx(sql: &str, ctx: &ClassifyContext<'_>) -> Out {
    let mut facts = Facts::default();
    classify(sql, ctx, &mut facts);
    Out { facts }
}

impl Out {
    fn n(&self) -> usize {
        self.facts.statements().len()
    }
    fn st(&self, i: usize) -> StatementFacts {
        self.facts.statements()[i]
    }
    fn classes(&self, i: usize) -> Vec<&'static str> {
        self.st(i).classes.iter().map(|c| c.name()).collect()
    }
    fn tables(&self, i: usize) -> Vec<String> {
        let s = self.st(i);
        self.facts
            .tables(&s)
            .iter()
            .map(|t| {
                format!(
                    "{}:{}.{}",
                    t.class,
                    self.facts.name(t.name.schema),
                    self.facts.name(t.name.name)
                )
            })
            .collect()
    }
    /// Columns as `name@clause` with the tables (by index) they may belong to.
    fn columns(&self, i: usize) -> Vec<String> {
        let s = self.st(i);
        self.facts
            .columns(&s)
            .iter()
            .map(|c| {
                let n = match c.name {
                    ColumnName::Named(r) => self.facts.name(r).to_owned(),
                    ColumnName::All => "*".to_owned(),
                    ColumnName::Common { right } => format!("natural(right={right:b})"),
                };
                let mut out = format!("{n}@{}", c.clause.name());
                out += &format!("[{:b}]", c.candidates);
                if c.whole_row != 0 {
                    out += &format!("w{:b}", c.whole_row);
                }
                out
            })
            .collect()
    }
    fn column_names(&self, i: usize) -> Vec<String> {
        let s = self.st(i);
        self.facts
            .columns(&s)
            .iter()
            .map(|c| match c.name {
                ColumnName::Named(r) => self.facts.name(r).to_owned(),
                ColumnName::All => "*".to_owned(),
                ColumnName::Common { right } => format!("natural(right={right:b})"),
            })
            .collect()
    }
    fn functions(&self, i: usize) -> Vec<String> {
        let s = self.st(i);
        self.facts
            .functions(&s)
            .iter()
            .map(|f| {
                // Unqualified calls have an empty schema: shown without one.
                if f.name.schema.is_empty() {
                    self.facts.name(f.name.name).to_owned()
                } else {
                    format!(
                        "{}.{}",
                        self.facts.name(f.name.schema),
                        self.facts.name(f.name.name)
                    )
                }
            })
            .collect()
    }
    fn flags(&self, i: usize) -> u32 {
        self.st(i).flags.0
    }
    fn unknown(&self, i: usize) -> bool {
        self.st(i).classes == ClassSet::single(C::Unknown)
    }
}

#[test]
fn two_statements_are_two() {
    let o = run("SELECT 1; DROP TABLE x");
    assert_eq!(o.n(), 2);
    assert_eq!(o.classes(0), ["select"]);
    assert_eq!(o.classes(1), ["ddl"]);
    assert_eq!(o.tables(1), ["ddl:public.x"]);
    let s = o.st(1);
    assert_eq!(
        &"SELECT 1; DROP TABLE x"[s.start as usize..s.end as usize],
        "DROP TABLE x"
    );
}

#[test]
fn semicolons_inside_strings_comments_and_parens_do_not_split() {
    for sql in [
        "SELECT $$;$$",
        "SELECT $a$ ; $a$",
        "SELECT ';'",
        "SELECT 1 /* ; */",
        "SELECT 1 -- ;",
        r#"SELECT 1 AS ";""#,
    ] {
        let o = run(sql);
        assert_eq!(o.n(), 1, "{sql}");
        assert_eq!(o.classes(0), ["select"], "{sql}");
    }
    assert_eq!(run("/* ; */").n(), 0);
    assert_eq!(run(" ;; ").n(), 0);
}

#[test]
fn begin_atomic_bodies_do_not_split() {
    let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT 3";
    let o = run(sql);
    assert_eq!(o.n(), 2);
    assert_eq!(o.classes(0), ["ddl"]);
    assert_eq!(o.classes(1), ["select"]);
    let sql = "CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; END; COMMIT";
    let o = run(sql);
    assert_eq!(o.n(), 2);
    assert_eq!(o.classes(1), ["transaction"]);
}

#[test]
fn unterminated_constructs_are_unknown() {
    for sql in [
        "SELECT 'abc",
        "SELECT \"abc",
        "SELECT $$abc",
        "SELECT 1 /* abc",
        "SELECT E'abc\\'",
        "SELECT 1; SELECT 'x",
    ] {
        let o = run(sql);
        assert!(o.unknown(o.n() - 1), "{sql}");
        assert!(o.st(o.n() - 1).unknown_reason.is_some());
    }
}

#[test]
fn quoted_identifiers_are_names_not_keywords() {
    let o = run(r#"SELECT "a""b" FROM "My Table""#);
    assert_eq!(o.tables(0), ["select:public.My Table"]);
    assert_eq!(o.column_names(0), ["a\"b"]);
    // A quoted "drop" is a table name, not a statement keyword.
    let o = run(r#"SELECT * FROM U&"\0064rop""#);
    assert_eq!(o.tables(0), ["select:public.drop"]);
    // …and as the first word it is not DROP.
    let o = run(r#"U&"\0064rop" TABLE x"#);
    assert!(o.unknown(0));
}

#[test]
fn string_literals_are_not_columns() {
    let o = run("select ssn from customers");
    assert_eq!(o.columns(0), ["ssn@select-list[1]"]);
    let o = run("select 'ssn' from customers");
    assert_eq!(o.columns(0), Vec::<String>::new());
    assert_eq!(o.tables(0), ["select:public.customers"]);
}

#[test]
fn case_folding() {
    let o = run("SELECT SSN FROM Public.CUSTOMERS");
    assert_eq!(o.tables(0), ["select:public.customers"]);
    assert_eq!(o.column_names(0), ["ssn"]);
}

#[test]
fn data_modifying_cte() {
    let o = run("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
    assert_eq!(o.classes(0), ["select", "delete"]);
    assert!(o.flags(0) & F::DATA_MODIFYING_CTE != 0);
    // t is deleted from and read (RETURNING *); d is a CTE, not a table.
    assert_eq!(o.tables(0), ["delete:public.t", "select:public.t"]);
    let o = run("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x");
    assert_eq!(o.classes(0), ["insert"]);
    assert_eq!(o.tables(0), ["insert:public.t"]);
}

#[test]
fn copy_variants() {
    let o = run("COPY (SELECT * FROM t) TO STDOUT");
    assert_eq!(o.classes(0), ["select", "copy-out"]);
    assert_eq!(o.tables(0), ["select:public.t", "copy-out:public.t"]);
    // The column reference covers both accesses.
    assert_eq!(o.columns(0), ["*@select-list[11]"]);

    let o = run("COPY t TO PROGRAM 'x'");
    assert_eq!(o.classes(0), ["copy-server"]);
    assert_eq!(o.tables(0), ["copy-server:public.t"]);
    let o = run("COPY t FROM '/etc/passwd'");
    assert_eq!(o.classes(0), ["copy-server"]);
    let o = run("COPY t (a, b) TO STDOUT WITH (FORMAT csv)");
    assert_eq!(o.classes(0), ["copy-out"]);
    assert_eq!(o.column_names(0), ["a", "b"]);
    let o = run("COPY t FROM STDIN WITH CSV HEADER");
    assert_eq!(o.classes(0), ["copy-in"]);
    assert_eq!(o.tables(0), ["copy-in:public.t"]);
    let o = run("copy binary t from stdin");
    assert_eq!(o.classes(0), ["copy-in"]);
}

#[test]
fn whole_row_references() {
    let o = run("SELECT c FROM customers c");
    assert_eq!(o.columns(0), ["c@select-list[1]w1"]);
    let o = run("SELECT row_to_json(c) FROM customers c");
    assert_eq!(o.columns(0), ["c@select-list[1]w1"]);
    assert_eq!(o.functions(0), ["row_to_json"]);
    let o = run("SELECT to_jsonb(customers) FROM customers");
    assert_eq!(o.columns(0), ["customers@select-list[1]w1"]);
    let o = run("SELECT c.* FROM customers c, orders o");
    assert_eq!(o.columns(0), ["*@select-list[1]"]);
    let o = run("SELECT * FROM customers c, orders o");
    assert_eq!(o.columns(0), ["*@select-list[11]"]);
}

#[test]
fn functions_are_qualified_and_include_from() {
    let o = run("SELECT pg_catalog.pg_read_file('x')");
    assert_eq!(o.functions(0), ["pg_catalog.pg_read_file"]);
    // Unqualified built-in: empty schema (the decider checks pg_catalog and every
    // declared function of that name). Any other name is a path schema's function:
    // `dblink_exec` is not taken for a pg_catalog function.
    let o = run("SELECT pg_read_file('x')");
    assert_eq!(o.functions(0), ["pg_read_file"]);
    assert!(o.facts.functions(&o.st(0))[0].name.schema.is_empty());
    let o = run("SELECT dblink_exec('x')");
    assert_eq!(o.functions(0), ["public.dblink_exec"]);
    let o = run("SET search_path = a, pg_catalog, b; SELECT my_func(), lower('x')");
    assert_eq!(
        o.functions(1),
        ["a.my_func", "b.my_func", "lower", "a.lower"]
    );
    // Grammar forms are PostgreSQL's whatever the path: trim(…) is pg_catalog's btrim.
    let o = run("SELECT trim(both 'x' from 'y'), \"trim\"('y')");
    assert_eq!(o.functions(0), ["trim", "public.trim"]);
    // Special-syntax calls are pg_catalog functions by the grammar.
    let o = run("SELECT extract(year from now())");
    assert_eq!(o.functions(0), ["pg_catalog.extract", "now"]);
    let o = run("SELECT * FROM dblink('db', 'select 1') AS t(a int)");
    assert_eq!(o.functions(0), ["public.dblink"]);
    assert_eq!(o.tables(0), Vec::<String>::new());
    let o = run("SELECT g FROM generate_series(1, 3) g");
    assert_eq!(o.functions(0), ["generate_series"]);
    let o = run("SELECT lo_export(1, '/tmp/x'), x.y.z()");
    assert_eq!(o.functions(0), ["lo_export", "y.z"]);
    // count(*) references no column; a cast is no function call.
    let o = run("SELECT count(*), a::int FROM t");
    assert_eq!(o.functions(0), ["count"]);
    assert_eq!(o.column_names(0), ["a"]);
}

#[test]
fn session_settings() {
    let o = run("SET search_path = evil, public");
    assert_eq!(o.classes(0), ["session"]);
    assert!(o.flags(0) & F::SETS_SEARCH_PATH != 0);
    let s = o.st(0);
    let path: Vec<&str> = o
        .facts
        .search_path(&s)
        .iter()
        .map(|r| o.facts.name(*r))
        .collect();
    assert_eq!(path, ["evil", "public"]);
    let o = run("SET LOCAL search_path TO 'a', \"B\"");
    let s = o.st(0);
    let path: Vec<&str> = o
        .facts
        .search_path(&s)
        .iter()
        .map(|r| o.facts.name(*r))
        .collect();
    assert_eq!(path, ["a", "B"]);
    assert!(run("SET ROLE admin").flags(0) & F::SETS_ROLE != 0);
    assert!(run("SET SESSION AUTHORIZATION admin").flags(0) & F::SETS_ROLE != 0);
    assert!(run("RESET ROLE").flags(0) & F::SETS_ROLE != 0);
    assert!(run("RESET ALL").flags(0) & F::RESETS_SESSION != 0);
    assert!(run("DISCARD ALL").flags(0) & F::RESETS_SESSION != 0);
    assert!(run("RESET search_path").flags(0) & F::SETS_SEARCH_PATH != 0);
    let o = run("SELECT set_config('search_path', 'evil', false)");
    assert_eq!(o.classes(0), ["select"]);
    assert!(o.flags(0) & F::SETS_SEARCH_PATH != 0);
    assert!(run("SELECT set_config('role', 'x', false)").flags(0) & F::SETS_ROLE != 0);
    let o = run("SELECT set_config(a, 'x', false) FROM t");
    assert!(
        o.flags(0) & (F::SETS_ROLE | F::SETS_SEARCH_PATH) == F::SETS_ROLE | F::SETS_SEARCH_PATH
    );
    // pg_dump's form: the WHERE names the one setting changed.
    let o = run(
        "SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'",
    );
    assert_eq!(o.classes(0), ["select"]);
    assert_eq!(o.flags(0) & (F::SETS_ROLE | F::SETS_SEARCH_PATH), 0);
    let o = run(
        "SELECT pg_catalog.set_config(name, 'x', true) FROM pg_catalog.pg_settings WHERE name = 'restrict_nonsystem_relation_kind'",
    );
    assert_eq!(o.classes(0), ["select"]);
    assert_eq!(o.flags(0) & (F::SETS_ROLE | F::SETS_SEARCH_PATH), 0);
    // Any other name, any other shape, a literal continued on the next line: the setting
    // is not known.
    for sql in [
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'search_path'",
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'role'",
        "SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'standard_conforming_strings'",
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation'\n'_kind'",
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'Restrict_nonsystem_relation_kind'",
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'a' OR true",
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name <> 'a'",
        "SELECT set_config(name, 'x', false) FROM pg_settings",
        "SELECT set_config(name, 'x', false) FROM other.pg_settings WHERE name = 'a'",
        "SELECT set_config(name, 'x', false) FROM pg_settings s WHERE name = 'a'",
        "SELECT set_config(\"name\", 'x', false) FROM pg_settings WHERE name = 'a'",
        "SELECT 1, set_config(name, 'x', false) FROM pg_settings WHERE name = 'a'",
        "SELECT set_config(name, $1, false) FROM pg_settings WHERE name = 'a'",
        "SELECT set_config('ro'\n'le', 'x', false)",
        "SELECT set_config('search'\n'_path', 'x', false)",
    ] {
        let o = run(sql);
        assert!(
            o.unknown(0) || o.classes(0).contains(&"dcl"),
            "{sql}: {:?}",
            o.classes(0)
        );
        if !o.unknown(0) {
            assert!(o.flags(0) & F::SETS_ROLE != 0, "{sql}");
        }
    }
    assert_eq!(
        run("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").classes(0),
        ["transaction"]
    );
    assert_eq!(run("SHOW search_path").classes(0), ["session"]);
    assert_eq!(run("SET TIME ZONE 'UTC'").classes(0), ["session"]);
}

#[test]
fn settings_that_change_lexing_are_unknown() {
    for sql in [
        "SET standard_conforming_strings = off",
        "SET LOCAL standard_conforming_strings TO 'off'",
        "SET client_encoding TO 'SJIS'",
        "SET NAMES 'BIG5'",
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "SELECT set_config('client_encoding', 'SJIS', false)",
        "SELECT set_config('standard_conforming'\n'_strings', 'off', false)",
        "SET search_path = 'sec'\n'ret'; SELECT * FROM t",
    ] {
        assert!(run(sql).unknown(0), "{sql}");
    }
    for sql in [
        "SET standard_conforming_strings = on",
        "SET client_encoding = 'UTF8'",
        "SET NAMES 'utf8'",
        "SET client_encoding TO DEFAULT",
    ] {
        assert_eq!(run(sql).classes(0), ["session"], "{sql}");
    }
}

#[test]
fn hidden_statements_after_begin_parameter() {
    let o = run(
        "CREATE FUNCTION f(begin int) RETURNS int AS $$ select 1 $$ LANGUAGE sql; DROP TABLE customers",
    );
    assert_eq!(o.n(), 2);
    assert_eq!(o.tables(1), ["ddl:public.customers"]);
}

#[test]
fn statement_classes() {
    let cases: &[(&str, &[&str])] = &[
        ("SELECT 1", &["select"]),
        ("VALUES (1), (2)", &["select"]),
        ("TABLE t", &["select"]),
        ("(SELECT 1) UNION (SELECT 2)", &["select"]),
        ("INSERT INTO t VALUES (1)", &["insert"]),
        ("UPDATE t SET a = 1", &["update"]),
        ("DELETE FROM t", &["delete"]),
        (
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            &["merge"],
        ),
        ("TRUNCATE t", &["truncate"]),
        ("SELECT * INTO new FROM t", &["select", "select-into"]),
        (
            "CREATE TABLE n AS SELECT * FROM t",
            &["select", "select-into"],
        ),
        (
            "CREATE MATERIALIZED VIEW m AS SELECT 1",
            &["select", "select-into"],
        ),
        ("REFRESH MATERIALIZED VIEW m", &["select-into"]),
        ("CREATE TABLE t (a int)", &["ddl"]),
        (
            "CREATE FUNCTION f() RETURNS int AS $$ select 1 $$ LANGUAGE sql",
            &["ddl"],
        ),
        ("ALTER TABLE t ADD COLUMN b int", &["ddl"]),
        ("COMMENT ON TABLE t IS 'x'", &["ddl"]),
        ("GRANT SELECT ON t TO bob", &["dcl"]),
        ("REVOKE ALL ON t FROM bob", &["dcl"]),
        ("CREATE ROLE bob", &["dcl"]),
        ("ALTER ROLE bob SUPERUSER", &["dcl"]),
        ("CREATE USER MAPPING FOR bob SERVER s", &["ddl"]),
        ("CALL p(1)", &["call"]),
        ("DO $$ begin end $$", &["call"]),
        ("BEGIN", &["transaction"]),
        ("START TRANSACTION READ ONLY", &["transaction"]),
        ("COMMIT", &["transaction"]),
        ("ROLLBACK TO SAVEPOINT a", &["transaction"]),
        ("PREPARE TRANSACTION 'x'", &["transaction"]),
        ("SET x = 1", &["session"]),
        ("DISCARD PLANS", &["session"]),
        (
            "DECLARE c CURSOR FOR SELECT * FROM t",
            &["select", "cursor"],
        ),
        ("FETCH 10 FROM c", &["cursor"]),
        ("CLOSE c", &["cursor"]),
        (
            "PREPARE q AS SELECT * FROM t WHERE a = $1",
            &["select", "prepare"],
        ),
        ("EXECUTE q(1)", &["prepare"]),
        ("DEALLOCATE q", &["prepare"]),
        ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", &["lock"]),
        ("VACUUM t", &["utility"]),
        ("ANALYZE t", &["utility"]),
        ("CHECKPOINT", &["utility"]),
        ("EXPLAIN SELECT * FROM t", &["select", "utility"]),
        ("EXPLAIN ANALYZE DELETE FROM t", &["delete"]),
        ("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", &["update"]),
        (
            "EXPLAIN (ANALYZE false) UPDATE t SET a = 1",
            &["update", "utility"],
        ),
        ("LISTEN ch", &["notify"]),
        ("NOTIFY ch, 'x'", &["notify"]),
        ("FROBNICATE t", &["unknown"]),
        ("SELECT FROM", &["unknown"]),
        ("SELECT 1 +", &["select"]),
        ("SELECT a b c FROM t", &["unknown"]),
        (
            "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b",
            &["insert", "update"],
        ),
    ];
    for (sql, want) in cases {
        let o = run(sql);
        assert_eq!(o.n(), 1, "{sql}");
        assert_eq!(&o.classes(0), want, "{sql}");
    }
}

#[test]
fn explain_and_prepare_flags() {
    let o = run("EXPLAIN ANALYZE SELECT * FROM t");
    assert!(o.flags(0) & F::EXPLAIN_ANALYZE != 0);
    assert_eq!(o.tables(0), ["select:public.t"]);
    let o = run("PREPARE q (int) AS DELETE FROM t WHERE id = $1");
    assert!(o.flags(0) & F::PREPARES != 0);
    assert_eq!(o.facts.name(o.st(0).prepared_name), "q");
    assert_eq!(o.tables(0), ["delete:public.t", "select:public.t"]);
    let o = run("EXECUTE q (1)");
    assert!(o.flags(0) & F::EXECUTES_PREPARED != 0);
    assert_eq!(o.facts.name(o.st(0).prepared_name), "q");
    let o = run("DECLARE c CURSOR WITH HOLD FOR SELECT ssn FROM customers");
    assert!(o.flags(0) & F::DECLARES_CURSOR != 0);
    assert_eq!(o.facts.name(o.st(0).prepared_name), "c");
    assert_eq!(o.column_names(0), ["ssn"]);
}

#[test]
fn access_classes_of_dml() {
    let o = run("INSERT INTO t (a, b) SELECT x, y FROM s");
    assert_eq!(o.tables(0), ["insert:public.t", "select:public.s"]);
    assert_eq!(
        o.columns(0),
        [
            "a@insert-columns[1]",
            "b@insert-columns[1]",
            "x@select-list[10]",
            "y@select-list[10]"
        ]
    );
    let o = run("INSERT INTO t VALUES (1)");
    assert_eq!(o.columns(0), ["*@insert-columns[1]"]);

    // UPDATE: the target, and a select access for the columns it reads.
    let o = run("UPDATE accounts SET balance = balance + 1 WHERE id = 2 RETURNING owner");
    assert_eq!(
        o.tables(0),
        ["update:public.accounts", "select:public.accounts"]
    );
    assert_eq!(
        o.columns(0),
        [
            "balance@update-set[1]",
            "balance@update-set[10]",
            "id@where[10]",
            "owner@returning[10]"
        ]
    );
    // A blind update reads nothing.
    let o = run("UPDATE t SET a = 1");
    assert_eq!(o.tables(0), ["update:public.t"]);

    let o = run("UPDATE t SET a = s.b FROM s WHERE t.id = s.id");
    assert_eq!(
        o.tables(0),
        ["update:public.t", "select:public.s", "select:public.t"]
    );

    let o = run("DELETE FROM t USING u WHERE t.a = u.a");
    assert_eq!(
        o.tables(0),
        ["delete:public.t", "select:public.u", "select:public.t"]
    );

    let o = run(
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)",
    );
    assert_eq!(
        o.tables(0),
        ["merge:public.t", "select:public.s", "select:public.t"]
    );

    let o = run("TRUNCATE ONLY a, b.c *");
    assert_eq!(o.tables(0), ["truncate:public.a", "truncate:b.c"]);
    let o = run("LOCK a, b");
    assert_eq!(o.tables(0), ["lock:public.a", "lock:public.b"]);
}

#[test]
fn clauses_and_scopes() {
    let o = run(
        "SELECT a FROM t JOIN u ON t.x = u.y WHERE b > 1 GROUP BY c HAVING count(d) > 1 ORDER BY e",
    );
    assert_eq!(
        o.columns(0),
        [
            "x@join[1]",
            "y@join[10]",
            "a@select-list[11]",
            "b@where[11]",
            "c@group-by[11]",
            "d@having[11]",
            "e@order-by[11]"
        ]
    );
    // Aliases and CTEs are not tables.
    let o = run("WITH c AS (SELECT * FROM t) SELECT x.a FROM c x");
    assert_eq!(o.tables(0), ["select:public.t"]);
    assert_eq!(o.columns(0), ["*@select-list[1]", "a@select-list[0]"]);
    // Correlated subquery: inner column may come from either level.
    let o = run("SELECT (SELECT ssn FROM orders LIMIT 1) FROM customers");
    assert_eq!(
        o.tables(0),
        ["select:public.customers", "select:public.orders"]
    );
    assert_eq!(o.columns(0), ["ssn@select-list[11]"]);
    // Subqueries of every kind are read.
    let o = run(
        "SELECT 1 FROM a WHERE x IN (SELECT y FROM b) AND EXISTS (SELECT 1 FROM c) AND z = ANY (SELECT w FROM d)",
    );
    assert_eq!(o.tables(0).len(), 4);
    let o = run("SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.x = a.x) s");
    assert_eq!(o.tables(0), ["select:public.a", "select:public.b"]);
    let o = run("SELECT a FROM t UNION ALL SELECT b FROM u EXCEPT SELECT c FROM v");
    assert_eq!(o.tables(0).len(), 3);
    let o = run("SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t");
    assert_eq!(o.columns(0), ["a@window[1]", "b@window[1]"]);
    let o = run("SELECT * FROM a NATURAL JOIN b JOIN c USING (id)");
    assert_eq!(o.tables(0).len(), 3);
    let o = run("SELECT * FROM ONLY t TABLESAMPLE SYSTEM (10) REPEATABLE (1) FOR UPDATE");
    assert_eq!(o.tables(0), ["select:public.t", "lock:public.t"]);
    assert_eq!(o.classes(0), ["select", "lock"]);
    // The sampling arguments cannot see the sampled table (PostgreSQL transforms them
    // before adding it to the namespace): `a` is the outer table's, u (access 0) only.
    let o = run("SELECT * FROM u, LATERAL (SELECT count(*) FROM t TABLESAMPLE SYSTEM (a)) s");
    assert_eq!(o.tables(0), ["select:public.u", "select:public.t"]);
    assert_eq!(o.columns(0), ["a@other[1]", "*@select-list[1]"]);
    let o = run("SELECT * FROM t * x, u FOR NO KEY UPDATE OF x SKIP LOCKED");
    assert_eq!(
        o.tables(0),
        ["select:public.t", "select:public.u", "lock:public.t"]
    );
    let o =
        run("VACUUM (ANALYZE) a, b (x); CLUSTER VERBOSE c USING i; REINDEX TABLE CONCURRENTLY d");
    assert_eq!(o.tables(0), ["utility:public.a", "utility:public.b"]);
    assert_eq!(o.tables(1), ["utility:public.c"]);
    assert_eq!(o.tables(2), ["utility:public.d"]);
    let o = run(
        "INSERT INTO t AS x VALUES (1) ON CONFLICT (id) DO UPDATE SET v = excluded.v WHERE x.v < 10 RETURNING *",
    );
    assert_eq!(
        o.tables(0),
        ["insert:public.t", "select:public.t", "update:public.t"]
    );
}

#[test]
fn expressions_that_are_not_columns() {
    let o = run(
        "SELECT CAST(a AS double precision), b::timestamp with time zone, interval '1' day, date '2020-01-01', c IS NOT NULL, d AT TIME ZONE 'UTC', e COLLATE \"C\", EXTRACT(year FROM f), CASE WHEN g THEN h ELSE i END, true, null, current_user FROM t",
    );
    assert_eq!(
        o.column_names(0),
        ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
    );
    let o = run(
        "SELECT substring(a FROM 1 FOR 2), trim(both 'x' from b), position('a' IN c), count(DISTINCT d), string_agg(e, ',' ORDER BY f) FILTER (WHERE g) FROM t",
    );
    assert_eq!(o.column_names(0), ["a", "b", "c", "d", "e", "f", "g"]);
    let o = run("SELECT a x, b AS \"y\" FROM t");
    assert_eq!(o.column_names(0), ["a", "b"]);
}

#[test]
fn catalog_and_search_path_resolution() {
    struct Cat;
    impl CatalogLookup for Cat {
        fn has_table(&self, schema: &str, name: &str) -> bool {
            matches!(
                (schema, name),
                ("app", "orders") | ("pg_catalog", "pg_class")
            )
        }
    }
    let path = ["public", "app"];
    let ctx = ClassifyContext {
        search_path: &path,
        catalog: Some(&Cat),
        ..ClassifyContext::default()
    };
    let o = run_ctx("SELECT * FROM orders, pg_class, nothing", &ctx);
    assert_eq!(
        o.tables(0),
        [
            "select:app.orders",
            "select:pg_catalog.pg_class",
            // Declared nowhere on the path: it may be in either schema.
            "select:public.nothing",
            "select:app.nothing"
        ]
    );
    let o = run("SELECT * FROM pg_authid");
    assert_eq!(o.tables(0), ["select:pg_catalog.pg_authid"]);
}

#[test]
fn limits_make_statements_unknown() {
    let deep = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
    let o = run(&deep);
    assert!(o.unknown(0));
    let many: String = (0..100).map(|i| format!("SELECT * FROM t{i};")).collect();
    let o = run(&many);
    assert!(o.unknown(o.n() - 1));
    let wide = format!(
        "SELECT * FROM {}",
        (0..70)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(run(&wide).unknown(0));
}

#[test]
fn unknown_statements_carry_no_facts() {
    let o = run("SELECT ssn FROM customers WHERE ??? nonsense ((");
    assert!(o.unknown(0));
    assert!(o.tables(0).is_empty());
    assert!(o.columns(0).is_empty());
    assert_eq!(o.st(0).flags, Default::default());
}

#[test]
fn ambiguous_parentheses_backtrack() {
    let o = run("SELECT ((SELECT a FROM t) UNION (SELECT b FROM u))");
    assert_eq!(o.classes(0), ["select"]);
    assert_eq!(o.tables(0), ["select:public.t", "select:public.u"]);
    let o = run("SELECT ((SELECT a FROM t)::int + 1)");
    assert_eq!(o.tables(0), ["select:public.t"]);
    assert_eq!(o.column_names(0), ["a"]);
    let o = run("SELECT * FROM ((SELECT 1 AS x) s JOIN u ON true)");
    assert_eq!(o.tables(0), ["select:public.u"]);
    let o = run("SELECT * FROM ((SELECT 1 AS x) UNION (SELECT 2)) s");
    assert_eq!(o.classes(0), ["select"]);
    // The failed alternative leaves no facts behind.
    let o = run("SELECT ((SELECT ssn FROM customers)::text || 'x')");
    assert_eq!(o.tables(0), ["select:public.customers"]);
    assert_eq!(o.column_names(0), ["ssn"]);
}

#[test]
fn bulk_reads_are_also_bulk_accesses() {
    let o = run("SELECT ssn INTO TEMP x FROM customers");
    assert_eq!(
        o.tables(0),
        [
            "select-into:public.x",
            "select:public.customers",
            "select-into:public.customers"
        ]
    );
    assert_eq!(o.columns(0), ["ssn@select-list[110]"]);
    let o = run("CREATE TABLE x AS SELECT ssn FROM customers WITH NO DATA");
    assert_eq!(
        o.tables(0),
        [
            "select-into:public.x",
            "select:public.customers",
            "select-into:public.customers"
        ]
    );
    let o = run("EXPLAIN ANALYZE CREATE MATERIALIZED VIEW m AS SELECT * FROM customers");
    assert_eq!(o.classes(0), ["select", "select-into"]);
    assert_eq!(
        o.tables(0),
        [
            "select-into:public.m",
            "select:public.customers",
            "select-into:public.customers"
        ]
    );
    let o = run("COPY (SELECT c FROM customers c) TO STDOUT");
    assert_eq!(o.columns(0), ["c@select-list[11]w11"]);
}

#[test]
fn xml_and_json_arguments_over_report() {
    // Columns named like the functions' syntax words are still columns.
    let o = run("SELECT xmlforest(name, date), json_object('k' VALUE text) FROM t");
    let cols = o.column_names(0);
    for c in ["name", "date", "text"] {
        assert!(cols.iter().any(|x| x == c), "{c} missing from {cols:?}");
    }
    let o = run("SELECT xmlelement(NAME foo, ssn) FROM customers");
    assert!(o.column_names(0).iter().any(|x| x == "ssn"));
}

#[test]
fn cte_visibility() {
    // WITH RECURSIVE: every CTE is visible in every body, forward references included.
    let o = run(
        "WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1 UNION ALL SELECT * FROM a) SELECT * FROM a",
    );
    assert_eq!(o.tables(0), Vec::<String>::new());
    // Plain WITH: a CTE's own name inside its body is a table; later CTEs are not visible.
    let o = run("WITH a AS (SELECT * FROM a), b AS (SELECT * FROM a) SELECT * FROM b");
    assert_eq!(o.tables(0), ["select:public.a"]);
    // A CTE name does not leak out of the query that defines it.
    let o = run("SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) s, t");
    assert_eq!(o.tables(0), ["select:public.t"]);
}

#[test]
fn nested_join_syntax() {
    let o = run("SELECT * FROM a LEFT JOIN b FULL JOIN c ON true ON false");
    assert_eq!(o.tables(0).len(), 3);
    let o = run(
        "MERGE INTO t USING s1 JOIN s2 ON s1.id = s2.id ON t.id = s1.id WHEN MATCHED THEN DO NOTHING",
    );
    assert_eq!(
        o.tables(0),
        [
            "merge:public.t",
            "select:public.s1",
            "select:public.s2",
            "select:public.t"
        ]
    );
}

#[test]
fn clause_enum_is_used() {
    // Sanity: the Clause type is what the columns carry.
    let o = run("SELECT a FROM t");
    let s = o.st(0);
    assert_eq!(o.facts.columns(&s)[0].clause, Clause::SelectList);
}

/// Unknown statements, as `true`/`false` per statement.
fn unknowns(o: &Out) -> Vec<bool> {
    (0..o.n())
        .map(|i| o.st(i).classes.contains(C::Unknown))
        .collect()
}

#[test]
fn set_search_path_applies_to_later_statements_of_the_string() {
    // Without a catalog, an unqualified table may be in every schema of the path.
    let o = run("SET search_path = private, public; SELECT id FROM customers");
    assert_eq!(
        o.tables(1),
        ["select:private.customers", "select:public.customers"]
    );
    let o = run("SET search_path = private; SELECT id FROM customers");
    assert_eq!(o.tables(1), ["select:private.customers"]);
    // Qualified and pg_* names are not affected.
    let o = run("SET search_path = private; SELECT * FROM other.t, pg_class");
    assert_eq!(
        o.tables(1),
        ["select:other.t", "select:pg_catalog.pg_class"]
    );
    let o = run("SET LOCAL search_path TO private; SELECT * FROM t");
    assert_eq!(o.tables(1), ["select:private.t"]);
    let o = run("SET SCHEMA 'private'; SELECT * FROM t");
    assert_eq!(o.tables(1), ["select:private.t"]);
    // `$user` is dropped.
    let o = run("SET search_path = \"$user\", private; SELECT * FROM t");
    assert_eq!(o.tables(1), ["select:private.t"]);
    // set_config with literal arguments, as the whole statement.
    let o = run("SELECT set_config('search_path', ' a , \"B c\",D', false); SELECT * FROM t");
    let s = o.st(0);
    let path: Vec<&str> = o
        .facts
        .search_path(&s)
        .iter()
        .map(|r| o.facts.name(*r))
        .collect();
    assert_eq!(path, ["a", "B c", "d"]);
    assert_eq!(o.tables(1), ["select:a.t", "select:B c.t", "select:d.t"]);
    let o = run("SELECT pg_catalog.set_config('search_path', 'x', true); SELECT * FROM t");
    assert_eq!(o.tables(1), ["select:x.t"]);
    // Back to the caller's path.
    for reset in [
        "RESET search_path",
        "RESET ALL",
        "DISCARD ALL",
        "SET search_path TO DEFAULT",
    ] {
        let o = run(&format!("SET search_path = x; {reset}; SELECT * FROM t"));
        assert_eq!(o.tables(2), ["select:public.t"], "{reset}");
    }
    // A plain SET survives COMMIT; SET LOCAL does not, and ROLLBACK may undo either:
    // the path is then not known exactly, and statements resolving names are unknown.
    let o = run("SET search_path = x; COMMIT; SELECT * FROM t");
    assert_eq!(o.tables(2), ["select:x.t"]);
    let o = run("SET LOCAL search_path = x; COMMIT; SELECT * FROM t");
    assert_eq!(unknowns(&o), [false, false, true]);
    let o = run("BEGIN; SET search_path = x; ROLLBACK; SELECT * FROM t");
    assert_eq!(unknowns(&o), [false, false, false, true]);
    // Values not known exactly: later statements are unknown (fail closed).
    for sql in [
        "SELECT set_config('search_path', $1, false); SELECT * FROM t",
        "SELECT set_config('search_path', 'a', false) WHERE false; SELECT * FROM t",
        "SELECT set_config('search_path', 'a', $2); SELECT * FROM t",
        "SELECT set_config($1, 'a', false); SELECT * FROM t",
        "SELECT set_config('search_path', 'a,,b', false); SELECT * FROM t",
        "SELECT f(set_config('search_path', 'a', false)); SELECT * FROM t",
    ] {
        let o = run(sql);
        assert_eq!(o.n(), 2, "{sql}");
        assert!(o.st(1).classes.contains(C::Unknown), "{sql}");
    }
    // Before the SET, the caller's path.
    let o = run("SELECT * FROM t; SET search_path = x");
    assert_eq!(o.tables(0), ["select:public.t"]);
    // An unknown statement may have changed it.
    let o = run("SELECT (((; SELECT * FROM t");
    assert!(o.st(o.n() - 1).classes.contains(C::Unknown));
    // Too many schemas to follow.
    let many: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    let o = run(&format!(
        "SET search_path = {}; SELECT * FROM t",
        many.join(", ")
    ));
    assert!(o.st(1).classes.contains(C::Unknown));
}

#[test]
fn changing_the_role_is_dcl() {
    for sql in [
        "SET ROLE admin",
        "SET LOCAL ROLE admin",
        "SET SESSION ROLE admin",
        "SET role = admin",
        "SET SESSION AUTHORIZATION admin",
        "SET session_authorization TO admin",
        "RESET ROLE",
        "RESET SESSION AUTHORIZATION",
    ] {
        let o = run(sql);
        assert_eq!(o.classes(0), ["dcl"], "{sql}");
        assert!(o.flags(0) & F::SETS_ROLE != 0, "{sql}");
    }
    let o = run("SELECT set_config('role', 'admin', false)");
    assert!(o.st(0).classes.contains(C::Dcl));
    assert!(o.st(0).classes.contains(C::Select));
    assert!(o.flags(0) & F::SETS_ROLE != 0);
    // A first argument that is not a literal may name the role.
    let o = run("SELECT set_config($1, $2, false)");
    assert!(o.st(0).classes.contains(C::Dcl));
    // Other settings stay `session`.
    assert_eq!(run("SET work_mem = '1MB'").classes(0), ["session"]);
    assert_eq!(run("RESET work_mem").classes(0), ["session"]);
}

#[test]
fn order_by_output_names_are_not_columns() {
    let o = run("SELECT total AS t FROM orders ORDER BY t");
    assert_eq!(o.column_names(0), ["total"]);
    let o = run("SELECT total t FROM orders ORDER BY t DESC NULLS LAST, id");
    assert_eq!(o.column_names(0), ["total", "id"]);
    let o = run("SELECT total AS \"T\" FROM orders ORDER BY \"T\" LIMIT 3");
    assert_eq!(o.column_names(0), ["total"]);
    // Implicit output names: a column's or a function's name.
    let o = run("SELECT count(*) FROM orders ORDER BY count");
    assert_eq!(o.column_names(0), Vec::<String>::new());
    let o = run("SELECT o.total FROM orders o ORDER BY total");
    assert_eq!(o.column_names(0), ["total"]);
    // In an expression a name is an input column.
    let o = run("SELECT total AS t FROM orders ORDER BY t + 1");
    assert_eq!(o.column_names(0), ["total", "t"]);
    // Aliases of other query levels do not count.
    let o = run("SELECT (SELECT total AS t FROM orders) ORDER BY t");
    assert_eq!(o.column_names(0), ["total", "t"]);
    // Window and aggregate ORDER BY take input columns.
    let o = run("SELECT total AS t, rank() OVER (ORDER BY t) FROM orders");
    assert_eq!(o.column_names(0), ["total", "t"]);
    // GROUP BY prefers an input column of that name (PostgreSQL's rule is the reverse of
    // ORDER BY's): still reported, the decider sees it.
    let o = run("SELECT total AS t FROM orders GROUP BY t");
    assert_eq!(o.column_names(0), ["total", "t"]);
    // Columns of derived tables have no base-table candidates.
    let o = run("SELECT x FROM (SELECT total AS x FROM orders) s");
    assert_eq!(
        o.columns(0).last().map(String::as_str),
        Some("x@select-list[0]")
    );
}

#[test]
fn statements_longer_than_the_token_window() {
    // 1500 targets = 3000 tokens: the window slides while the FROM clause is looked for,
    // and the target list is re-read (re-lexed) afterwards.
    let cols: Vec<String> = (0..1500).map(|i| format!("c{i}")).collect();
    let sql = format!(
        "SELECT {} FROM t WHERE x = (SELECT y FROM u ORDER BY {}); SELECT z FROM v",
        cols.join(", "),
        cols.join(", ")
    );
    let o = run(&sql);
    assert_eq!(o.n(), 2);
    assert_eq!(o.classes(0), ["select"]);
    assert_eq!(o.tables(0), ["select:public.t", "select:public.u"]);
    let names = o.column_names(0);
    assert_eq!(names.len(), 1500 + 2 + 1500);
    assert_eq!(names[0], "c0");
    assert_eq!(names[1499], "c1499");
    assert_eq!(names[1500], "x");
    assert_eq!(o.tables(1), ["select:public.v"]);
}

/// Cursor and LISTEN statements name what they act on, for the session's bookkeeping
/// (re-deciding a cursor after a reload, the per-session limits).
#[test]
fn cursor_and_listen_statements_name_their_object() {
    let name = |sql: &str| {
        let o = run(sql);
        let s = o.st(0);
        (o.facts.name(s.prepared_name).to_owned(), s.flags)
    };
    for (sql, want) in [
        ("FETCH c", "c"),
        ("FETCH 10 FROM \"My Cur\"", "My Cur"),
        ("MOVE BACKWARD ALL IN c2", "c2"),
        ("fetch forward 5 from C3", "c3"),
    ] {
        let (n, f) = name(sql);
        assert_eq!(n, want, "{sql}");
        assert!(f.contains(F::USES_CURSOR), "{sql}");
        assert_eq!(run(sql).classes(0), ["cursor"]);
    }
    let (n, f) = name("CLOSE c");
    assert_eq!((n.as_str(), f.contains(F::CLOSES_CURSOR)), ("c", true));
    let (n, f) = name("CLOSE ALL");
    assert_eq!((n.as_str(), f.contains(F::CLOSES_CURSOR)), ("", true));
    let (_, f) = name("DECLARE c CURSOR WITH HOLD FOR SELECT 1");
    assert!(f.contains(F::HOLDS_CURSOR) && f.contains(F::DECLARES_CURSOR));
    let (_, f) = name("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1");
    assert!(!f.contains(F::HOLDS_CURSOR));
    let (n, f) = name("LISTEN chan");
    assert_eq!((n.as_str(), f.contains(F::LISTENS)), ("chan", true));
    let (n, f) = name("UNLISTEN *");
    assert_eq!((n.as_str(), f.contains(F::UNLISTENS)), ("", true));
    assert_eq!(run("LISTEN chan").classes(0), ["notify"]);
}

#[test]
fn transaction_control_reports_its_path_effect_and_savepoint_names() {
    use pgate_core::facts::PathEffect as E;
    let cases: &[(&str, E, &str)] = &[
        ("BEGIN", E::Begin, ""),
        (
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            E::Begin,
            "",
        ),
        ("COMMIT", E::Commit { chain: false }, ""),
        ("END WORK", E::Commit { chain: false }, ""),
        ("COMMIT AND CHAIN", E::Commit { chain: true }, ""),
        ("COMMIT AND NO CHAIN", E::Commit { chain: false }, ""),
        ("PREPARE TRANSACTION 'x'", E::Commit { chain: false }, ""),
        ("ROLLBACK", E::Rollback { chain: false }, ""),
        (
            "ABORT TRANSACTION AND CHAIN",
            E::Rollback { chain: true },
            "",
        ),
        ("ROLLBACK TO s1", E::RollbackTo, "s1"),
        ("ROLLBACK WORK TO SAVEPOINT \"S 2\"", E::RollbackTo, "S 2"),
        ("SAVEPOINT Sp", E::Savepoint, "sp"),
        ("RELEASE SAVEPOINT sp", E::Release, "sp"),
        ("RELEASE sp", E::Release, "sp"),
        ("COMMIT PREPARED 'gid'", E::None, ""),
        ("ROLLBACK PREPARED 'gid'", E::None, ""),
        ("SET search_path = a", E::Set { local: false }, ""),
        ("SET LOCAL search_path = a", E::Set { local: true }, ""),
        ("RESET search_path", E::Reset, ""),
        ("SELECT 1", E::None, ""),
    ];
    for (sql, effect, name) in cases {
        let o = run(sql);
        let s = o.st(0);
        assert!(!o.classes(0).is_empty(), "{sql}");
        assert!(
            !s.classes.contains(C::Unknown),
            "{sql}: {:?}",
            s.unknown_reason
        );
        assert_eq!(s.path_effect, *effect, "{sql}");
        assert_eq!(o.facts.name(s.prepared_name), *name, "{sql}");
    }
}

#[test]
fn commit_or_rollback_of_a_dirty_transaction_leaves_the_path_unknown_in_the_string() {
    // The session's path holds an uncommitted SET: after ROLLBACK in the same string
    // PostgreSQL resolves names through another path, so the classifier must not guess.
    let path = ["compat"];
    let ctx = ClassifyContext {
        search_path: &path,
        tx_path_dirty: true,
        ..ClassifyContext::default()
    };
    for sql in [
        "ROLLBACK; SELECT * FROM hidden",
        "COMMIT; SELECT * FROM hidden",
    ] {
        let o = run_ctx(sql, &ctx);
        assert!(o.st(1).classes.contains(C::Unknown), "{sql}");
    }
    let clean = ClassifyContext {
        search_path: &path,
        ..ClassifyContext::default()
    };
    let o = run_ctx("ROLLBACK; SELECT * FROM hidden", &clean);
    assert_eq!(o.tables(1), ["select:compat.hidden"]);
    // A path pgate could not read: unqualified relations are not resolved.
    let unknown = ClassifyContext {
        search_path: &path,
        path_unknown: true,
        ..ClassifyContext::default()
    };
    let o = run_ctx("SELECT * FROM hidden", &unknown);
    assert!(o.st(0).classes.contains(C::Unknown));
    let o = run_ctx("SELECT * FROM other.hidden", &unknown);
    assert!(!o.st(0).classes.contains(C::Unknown));
}

#[test]
fn alias_column_lists_rename_by_position() {
    // `x.id` through `x(ssn, id)` is the table's second column, whatever it is called.
    let o = run("SELECT x.id FROM customers AS x(ssn, id)");
    assert_eq!(o.column_names(0), ["*"]);
    // Unqualified names may be renamed ones: every column of the renamed table, and the
    // name itself on the others.
    let o = run("SELECT id FROM customers x(a, id), orders");
    assert_eq!(o.column_names(0), ["*", "id"]);
    // A parenthesised join renamed the same way.
    let o = run("SELECT j.a FROM (customers JOIN orders ON true) AS j(a)");
    assert_eq!(o.column_names(0), ["*"]);
    // A name the list does not give is the table's own column (only the first columns
    // are renamed).
    let o = run("SELECT x.name, email FROM customers AS x(a)");
    assert_eq!(o.column_names(0), ["name", "email"]);
    // Without a column list the alias is only a name.
    let o = run("SELECT x.id FROM customers AS x");
    assert_eq!(o.column_names(0), ["id"]);
    // A derived table's renamed columns are checked inside.
    let o = run("SELECT x.id FROM (SELECT name, id FROM customers) AS x(id, b)");
    assert_eq!(o.column_names(0), ["name", "id", "id"]);
}

#[test]
fn joins_compare_only_their_own_columns() {
    let o = run("SELECT 1 FROM a NATURAL JOIN b");
    assert_eq!(o.column_names(0), ["natural(right=10)"]);
    // A side that is not a table: its columns may match any of the other side's.
    let o = run("SELECT 1 FROM a NATURAL JOIN (SELECT 1 AS x) s");
    assert_eq!(o.column_names(0), ["*"]);
    // USING's columns belong to the join's two sides, not to other FROM items.
    let o = run("SELECT 1 FROM c, a JOIN b USING (id)");
    let s = o.st(0);
    let col = o.facts.columns(&s)[0];
    assert_eq!(col.candidates, 0b110);
}

#[test]
fn attribute_notation_is_a_call_of_a_declared_function() {
    struct Cat;
    impl CatalogLookup for Cat {
        fn has_table(&self, schema: &str, name: &str) -> bool {
            (schema, name) == ("public", "t")
        }
        fn has_function(&self, schema: &str, name: &str) -> bool {
            (schema, name) == ("public", "leak")
        }
    }
    let ctx = ClassifyContext {
        catalog: Some(&Cat),
        ..ClassifyContext::default()
    };
    // `x.leak` is `leak(x)` unless `t` has a column `leak`: recorded, conditional on the
    // column reference.
    let o = run_ctx("SELECT x.leak, (x).leak FROM t x", &ctx);
    assert_eq!(o.functions(0), ["public.leak", "public.leak"]);
    let s = o.st(0);
    let f = o.facts.functions(&s);
    assert_eq!(f[0].unless_column, 0);
    assert_eq!(f[1].unless_column, pgate_core::facts::FunctionRef::ALWAYS);
    // A name no schema declares a function of is a column only.
    let o = run_ctx("SELECT x.id FROM t x", &ctx);
    assert!(o.functions(0).is_empty());
}
