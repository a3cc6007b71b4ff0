//! The classifier's fast path for flat statements (`Parser::flat_select`) records exactly
//! what the general path records: compared statement by statement over the regression
//! corpus and over generated flat statements and near misses (one token changed so that
//! the fast path must hand the statement to the general path), under several search
//! paths and after in-string `SET search_path`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly

mod common;

use std::fmt::Write as _;

use pgate_core::facts::{ColumnName, Facts};
use pgate_core::sql::{ClassifyContext, classify_general, classify_with_stats};

/// Everything a decision can depend on, with names resolved (name offsets may differ).
fn describe(f: &Facts) -> String {
    let mut out = String::new();
    for s in f.statements() {
        let _ = write!(
            out,
            "[{}..{} {:?} {:?} {:?} prepared={:?} path={:?}",
            s.start,
            s.end,
            s.classes,
            s.flags,
            s.unknown_reason,
            f.name(s.prepared_name),
            f.search_path(s)
                .iter()
                .map(|&n| f.name(n))
                .collect::<Vec<_>>()
        );
        for t in f.tables(s) {
            let _ = write!(
                out,
                " T({:?} {}.{})",
                t.class,
                f.name(t.name.schema),
                f.name(t.name.name)
            );
        }
        for c in f.columns(s) {
            let name = match c.name {
                ColumnName::All => "*".to_owned(),
                ColumnName::Common { right } => format!("natural(right={right:b})"),
                ColumnName::Named(n) => f.name(n).to_owned(),
            };
            let _ = write!(
                out,
                " C({name} cand={:b} whole={:b} q={} {:?} alias={})",
                c.candidates, c.whole_row, c.qualified, c.clause, c.output_alias
            );
        }
        for fun in f.functions(s) {
            let _ = write!(
                out,
                " F({}.{})",
                f.name(fun.name.schema),
                f.name(fun.name.name)
            );
        }
        out.push(']');
    }
    out
}

/// Classifies `sql` both ways and compares; returns whether the fast path was taken
/// (it reads fewer tokens than the general path).
fn both(sql: &str, ctx: &ClassifyContext<'_>, fast: &mut Facts, general: &mut Facts) -> bool {
    let a = classify_with_stats(sql, ctx, fast).work;
    let b = classify_general(sql, ctx, general).work;
    assert_eq!(
        describe(fast),
        describe(general),
        "fast path and general path differ on {sql:?}"
    );
    a < b
}

#[test]
fn fast_path_agrees_with_the_general_path_over_the_corpus() {
    let files = common::corpus_texts();
    assert!(!files.is_empty(), "corpus not found (set PGATE_CORPUS)");
    let (mut fast, mut general) = (Facts::default(), Facts::default());
    let ctx = ClassifyContext::default();
    let (mut blocks, mut taken) = (0, 0);
    for f in &files {
        for block in f.split(";\n") {
            taken += usize::from(both(block, &ctx, &mut fast, &mut general));
            blocks += 1;
        }
    }
    assert!(blocks > 10_000);
    assert!(taken > 50, "the corpus has flat statements: {taken}");
}

/// Flat statements and near misses, built from pieces.
fn generated() -> Vec<String> {
    let targets = [
        "abalance",
        "aid, abalance",
        "AID,Abalance , bid",
        "pgbench_accounts",
        "abalance, pgbench_accounts",
        "a",
        // near misses
        "*",
        "t.a",
        "\"aid\"",
        "count(*)",
        "aid AS x",
        "aid x",
        "user",
        "current_user",
        "name",
        "aid,",
        "aid abalance, bid",
        "date 'x'",
        "aid::text",
    ];
    let tables = [
        "pgbench_accounts",
        "public.pgbench_accounts",
        "s.PGBENCH_ACCOUNTS",
        "a",
        "pg_class",
        "pg_catalog.pg_class",
        // near misses
        "pgbench_accounts p",
        "pgbench_accounts AS p",
        "\"T\"",
        "t1, t2",
        "t1 JOIN t2 ON x = y",
        "only t",
        "f()",
        "a.b.c",
        "s.",
    ];
    let wheres = [
        "",
        " WHERE aid = $1",
        " WHERE aid = $1 AND bid > 2",
        " WHERE aid <> 'x' OR bid <= 1.5e3 AND c >= d",
        " WHERE a != b",
        " WHERE pgbench_accounts = $1",
        " WHERE aid < $1 or aid > $2",
        // near misses
        " WHERE aid = $1 ORDER BY aid",
        " WHERE aid = -1",
        " WHERE aid = $1::int",
        " WHERE aid IN (1, 2)",
        " WHERE aid = f($1)",
        " WHERE (aid = 1)",
        " WHERE aid = E'x'",
        " WHERE aid = 'a' 'b'",
        " WHERE aid => 1",
        " WHERE aid = $1 AND",
        " WHERE NOT aid = 1",
        " WHERE aid = abalance = 1",
        " WHERE aid = user",
        " LIMIT 1",
        " FOR UPDATE",
        " WHERE",
        // the byte scanner's edges
        " WHERE aid = 'it''s' AND b = '\u{e9}'",
        " WHERE a$b = $123456789",
        " WHERE aid = $1234567890",
        " WHERE aid = $1a",
        " WHERE aid = 1.5",
        " WHERE aid = 1e5",
        " WHERE aid = 0x1F",
        " WHERE aid = 1_000",
        " WHERE aid = 12abc",
        " WHERE aid = E'x'",
        " WHERE aid = U&'x'",
        " WHERE aid = U&\"x\"",
        " WHERE aid = N'x'",
        " WHERE aid = B'1'",
        " WHERE aid = a'x'",
        " WHERE aid = 'a'\n'b'",
        " WHERE aid = 'unterminated",
        " WHERE aid =-1",
        " WHERE aid <=> 1",
        " WHERE aid !== 1",
        " WHERE aid = .5",
        " WHERE aid = t..x",
        " WHERE aid /* c */ = 1",
        " WHERE\taid\x0c=\x0b$1\r\n",
        " WHERE \u{e9} = 1",
        " WHERE aid = $1 AND bid = $2 AND cid = $3 AND did = $4 AND eid = $5 AND fid = $6 \
         AND gid = $7 AND hid = $8 AND iid = $9 AND jid = $10 AND kid = $11 AND lid = $12 \
         AND mid = $13 AND nid = $14 AND oid = $15 AND pid = $16 AND qid = $17",
    ];
    let tails = [
        "",
        ";",
        "; ",
        ";\n\t",
        " ;",
        ";;",
        "; -- c",
        "; SELECT abalance FROM x WHERE aid = $1",
        " -- c",
        "\n",
    ];
    let mut out = Vec::new();
    for t in targets {
        for f in tables {
            for w in wheres {
                for tail in tails {
                    out.push(format!("SELECT {t} FROM {f}{w}{tail}"));
                }
            }
        }
    }
    let long = "x".repeat(64);
    out.push(format!("SELECT {long} FROM {long}"));
    out.push(format!("SELECT {long}a FROM {long}b WHERE {long}c = 1"));
    out.push("select AbAlance from PgBench_Accounts where Aid = $1".to_owned());
    out.push("SELECT a FROM t WHERE a = $1; SET search_path = s2, public; SELECT a FROM t".into());
    out.push("SET search_path = x; SELECT a FROM t WHERE b = 1".into());
    out.push("SET search_path = DEFAULT; SELECT a FROM t".into());
    out.push("SELECT set_config('search_path', 'q', false); SELECT a FROM t".into());
    out.push("SELECT\u{e9} FROM t".into());
    out.push("SELECT \u{e9}t\u{e9} FROM \u{c9}t\u{c9} WHERE \u{e9}t\u{e9} = 1".into());
    out
}

#[test]
fn fast_path_agrees_with_the_general_path_on_generated_statements() {
    let (mut fast, mut general) = (Facts::default(), Facts::default());
    let paths: [&[&str]; 3] = [&["public"], &["s", "public"], &[]];
    let (mut n, mut taken) = (0, 0);
    for sql in generated() {
        for path in paths {
            let ctx = ClassifyContext {
                search_path: path,
                catalog: None,
                ..ClassifyContext::default()
            };
            taken += usize::from(both(&sql, &ctx, &mut fast, &mut general));
            n += 1;
        }
    }
    assert!(n > 10_000, "{n}");
    // Both sides of the boundary are covered.
    assert!(taken > 1_000 && n - taken > 1_000, "{taken} of {n}");
}

/// The fast path is taken where it should be (less work than the general path) and the
/// facts it records are the expected ones.
#[test]
fn fast_path_is_taken_for_flat_statements() {
    let ctx = ClassifyContext::default();
    let sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
    let mut facts = Facts::default();
    let fast = classify_with_stats(sql, &ctx, &mut facts).work;
    assert_eq!(
        describe(&facts),
        "[0..52 ClassSet(1) StatementFlags(0) None prepared=\"\" path=[] \
         T(Select public.pgbench_accounts) \
         C(abalance cand=1 whole=0 q=false SelectList alias=false) \
         C(aid cand=1 whole=0 q=false Where alias=false)]"
    );
    // A near miss (an alias) goes the general way, which reads more.
    let miss = "SELECT abalance FROM pgbench_accounts a WHERE aid = $1";
    let general = classify_with_stats(miss, &ctx, &mut facts).work;
    assert!(general > fast, "{general} > {fast}");
}

mod random {
    use super::*;
    use proptest::prelude::*;

    /// Pieces a flat statement is made of, and the ones that must send it back to the
    /// full classifier.
    const PIECES: &[&str] = &[
        "a",
        "b",
        "Ab",
        "t",
        "s",
        "pgbench_accounts",
        "x$1",
        "_",
        "from",
        "FROM",
        "where",
        "and",
        "or",
        "OR",
        "not",
        "select",
        "user",
        "name",
        "order",
        ",",
        ".",
        ";",
        "=",
        "<>",
        "!=",
        "<",
        ">=",
        "=-",
        "$1",
        "$22",
        "1",
        "007",
        "1.5",
        "'x'",
        "''",
        "'a''b'",
        "E'x'",
        "\"q\"",
        "(",
        ")",
        "*",
        "--c\n",
        "/*c*/",
        "\u{e9}",
        "\t",
        "\n",
        "\x0c",
        " ",
    ];

    /// A flat statement built from random names, operators and values, then with up to
    /// two random pieces inserted or substituted (most of those leave the subset).
    fn statement(max_edits: usize) -> impl Strategy<Value = String> {
        let name = prop::sample::select(&["a", "b", "Ab", "t", "x$1", "_", "pgbench_accounts"][..]);
        let op = prop::sample::select(&["=", "<>", "!=", "<", ">", "<=", ">="][..]);
        let value =
            prop::sample::select(&["$1", "$22", "1", "007", "'x'", "''", "'a''b'", "b"][..]);
        let joiner = prop::sample::select(&["AND", "or"][..]);
        let targets = prop::collection::vec(name.clone(), 1..4);
        let preds = prop::collection::vec((name.clone(), op, value, joiner), 0..4);
        let table = (name.clone(), prop::option::of(name));
        let edits = prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop::sample::select(PIECES),
                any::<bool>(),
            ),
            0..=max_edits,
        );
        let tail = prop::sample::select(&["", ";", " ; ", "\n"][..]);
        (targets, table, preds, edits, tail).prop_map(|(targets, (t, s), preds, edits, tail)| {
            let mut words: Vec<String> = vec!["SELECT".into()];
            for (k, c) in targets.iter().enumerate() {
                if k > 0 {
                    words.push(",".into());
                }
                words.push((*c).into());
            }
            words.push("FROM".into());
            match s {
                Some(s) => words.push(format!("{t}.{s}")),
                None => words.push(t.into()),
            }
            for (k, (c, op, v, j)) in preds.iter().enumerate() {
                words.push(if k == 0 { "WHERE".into() } else { (*j).into() });
                words.extend([(*c).into(), (*op).into(), (*v).into()]);
            }
            for (at, piece, replace) in edits {
                let i = at.index(words.len() + 1);
                if replace && i < words.len() {
                    words[i] = piece.into();
                } else {
                    words.insert(i.min(words.len()), piece.into());
                }
            }
            words.join(" ") + tail
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn fast_path_agrees_on_random_statements(sql in statement(2)) {
            let (mut fast, mut general) = (Facts::default(), Facts::default());
            for path in [&["public"][..], &["s", "public"][..], &[][..]] {
                let ctx = ClassifyContext { search_path: path, ..ClassifyContext::default() };
                both(&sql, &ctx, &mut fast, &mut general);
            }
        }

        /// Unedited, the generator's statements are flat: the fast path takes them.
        #[test]
        fn generated_flat_statements_take_the_fast_path(sql in statement(0)) {
            let (mut fast, mut general) = (Facts::default(), Facts::default());
            let ctx = ClassifyContext::default();
            prop_assert!(both(&sql, &ctx, &mut fast, &mut general), "{sql:?}");
        }
    }
}
