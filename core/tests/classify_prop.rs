//! Property tests: any input classifies without panicking, within a linear work budget;
//! lexically broken input is `unknown`; unknown statements carry no facts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly

use pgate_core::class::{ClassSet, StatementClass};
use pgate_core::facts::Facts;
use pgate_core::sql::{ClassifyContext, classify_with_stats};
use proptest::prelude::*;

const FRAGMENTS: &[&str] = &[
    "SELECT",
    "select",
    "FROM",
    "WHERE",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "MERGE",
    "USING",
    "ON",
    "WITH",
    "AS",
    "(",
    ")",
    "((",
    "))",
    ",",
    ";",
    ".",
    "*",
    "=",
    "::",
    "int",
    "t",
    "u",
    "a",
    "b",
    "\"q\"\"x\"",
    "'s''t'",
    "E'\\''",
    "$$x;$$",
    "$t$;$t$",
    "$1",
    "1",
    "1.5e3",
    "0x1F",
    "--c\n",
    "/* ; */",
    "JOIN",
    "LEFT",
    "JOIN",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "UNION",
    "ALL",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "COPY",
    "TO",
    "STDOUT",
    "EXPLAIN",
    "ANALYZE",
    "PREPARE",
    "EXECUTE",
    "DECLARE",
    "CURSOR",
    "FOR",
    "LATERAL",
    "RETURNING",
    "count(*)",
    "f(",
    "EXISTS",
    "IN",
    "NOT",
    "NULL",
    "IS",
    "BETWEEN",
    "AND",
    "OR",
    "CREATE",
    "TABLE",
    "BEGIN",
    "ATOMIC",
    "FUNCTION",
    "U&\"\\0064\"",
    "[",
    "]",
    ":",
    "ARRAY",
    "OVER",
    "PARTITION",
    "WITHIN",
    "FILTER",
    "DISTINCT",
    "LIMIT",
    "OFFSET",
    "FETCH",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..60).prop_map(|v| v.join(" "))
}

/// Fragments that cannot leave a statement open (no brackets, quotes or comments), so that
/// repeating a statement repeats the split.
fn flat_soup() -> impl Strategy<Value = String> {
    let flat: Vec<&'static str> = FRAGMENTS
        .iter()
        .copied()
        .filter(|f| !f.contains(['(', ')', '[', ']', '\'', '"', '$', '/', '-']))
        .collect();
    prop::collection::vec(prop::sample::select(flat), 0..60).prop_map(|v| v.join(" "))
}

fn check(sql: &str) -> u64 {
    let mut facts = Facts::default();
    let stats = classify_with_stats(sql, &ClassifyContext::default(), &mut facts);
    let mut prev_end = 0u32;
    for s in facts.statements() {
        assert!(s.start <= s.end && s.end as usize <= sql.len());
        assert!(s.start >= prev_end);
        prev_end = s.end;
        assert!(!s.classes.is_empty());
        if s.classes.contains(StatementClass::Unknown) {
            assert_eq!(s.classes, ClassSet::single(StatementClass::Unknown));
            assert!(s.unknown_reason.is_some());
            assert!(facts.tables(s).is_empty());
            assert!(facts.columns(s).is_empty());
            assert!(facts.functions(s).is_empty());
        }
    }
    // Linear work: a generous constant per input byte (lookahead, the FROM-first re-read
    // of target lists and bounded backtracking are constant factors).
    assert!(
        stats.work <= 64 * (sql.len() as u64 + 1),
        "work {} for {} bytes",
        stats.work,
        sql.len()
    );
    stats.work
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        check(&s);
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text(b in prop::collection::vec(any::<u8>(), 0..300)) {
        check(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn sql_soup_never_panics(s in soup()) {
        check(&s);
    }

    #[test]
    fn unterminated_tail_is_unknown(s in soup(), tail in prop::sample::select(&["'abc", "\"abc", "$q$abc", "/* abc", "E'\\'"][..])) {
        let sql = format!("{s} ; {tail}");
        let mut facts = Facts::default();
        classify_with_stats(&sql, &ClassifyContext::default(), &mut facts);
        let last = facts.statements().last().copied();
        prop_assert!(last.is_some_and(|l| l.classes == ClassSet::single(StatementClass::Unknown)));
    }

    #[test]
    fn work_grows_linearly_with_repetition(s in flat_soup(), n in 2usize..20) {
        let one = format!("{s};");
        let w1 = check(&one);
        let wn = check(&one.repeat(n));
        // Statements are independent: n copies cost about n times one (plus the
        // statement limit cutting it short).
        prop_assert!(wn <= (n as u64) * (w1 + 4) + 16, "{wn} > {n} * {w1}");
    }
}

#[test]
fn adversarial_nesting_stays_linear() {
    for depth in [10usize, 50, 90, 200, 5000] {
        let sql = format!("SELECT {}1{}", "(SELECT ".repeat(depth), ")".repeat(depth));
        check(&sql);
        let sql = format!("SELECT {}1{}", "((".repeat(depth), "))".repeat(depth));
        check(&sql);
        let sql = format!("SELECT * FROM {}t{}", "(".repeat(depth), ")".repeat(depth));
        check(&sql);
        let sql = "/*".repeat(depth) + &"*/".repeat(depth);
        check(&sql);
    }
}

/// Token boundaries as PostgreSQL's scanner reports them (comments dropped, `UESCAPE 'c'`
/// folded into the preceding token), or `None` when the scanner rejects the input.
fn pg_tokens(sql: &str) -> Option<Vec<(usize, usize)>> {
    const SQL_COMMENT: i32 = 275;
    const C_COMMENT: i32 = 276;
    const UESCAPE: i32 = 717;
    let scan = pg_query::scan(sql).ok()?;
    let mut out = Vec::new();
    let mut toks = scan.tokens.iter().peekable();
    while let Some(t) = toks.next() {
        if t.token == SQL_COMMENT || t.token == C_COMMENT {
            continue;
        }
        let (start, mut end) = (t.start as usize, t.end as usize);
        let unicode = sql
            .get(start..)
            .is_some_and(|s| s.starts_with("U&") || s.starts_with("u&"));
        if unicode && toks.peek().is_some_and(|n| n.token == UESCAPE) {
            toks.next();
            if let Some(s) = toks.next() {
                end = s.end as usize;
            }
        }
        out.push((start, end));
    }
    Some(out)
}

fn our_tokens(sql: &str) -> Option<Vec<(usize, usize)>> {
    use pgate_core::sql::lexer::{Kind, Lexer};
    let mut lx = Lexer::new(sql);
    let mut out = Vec::new();
    loop {
        let t = lx.next_token().ok()?;
        if t.kind == Kind::Eof {
            return Some(out);
        }
        out.push((t.start as usize, t.end as usize));
    }
}

const LEX_PIECES: &[&str] = &[
    "'", "\"", "$", "\\", "-", "/", "*", "e", "E", "U", "u", "&", "0", "x", "b", "o", "_", ".",
    "1", "9", " ", "\n", "\t", "\u{b}", "\u{c}", "a", ":", ";", "+", "=", "<", ">", "!", "@", "#",
    "%", "^", "|", "`", "?", "~", "(", "[", "é", "$$", "$a$", "--", "/*", "*/", "''", "\"\"",
    "U&'", "U&\"", "UESCAPE", "'!'", "e'", "x'", "b'", "n'", "1e", "0x", "1_0",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Text PostgreSQL's scanner rejects is `unknown` (and so is denied unless a rule
    /// names `unknown`).
    #[test]
    fn unscannable_text_is_unknown(v in prop::collection::vec(prop::sample::select(LEX_PIECES), 0..24)) {
        let sql = v.concat();
        if pg_query::scan(&sql).is_err() {
            let mut facts = Facts::default();
            classify_with_stats(&sql, &ClassifyContext::default(), &mut facts);
            prop_assert!(
                facts.statements().iter().any(|s| s.classes == ClassSet::single(StatementClass::Unknown)),
                "{:?}", sql
            );
        }
    }

    /// The lexer is PostgreSQL's scanner: same token boundaries, same rejections.
    #[test]
    fn lexer_matches_postgres_scanner(v in prop::collection::vec(prop::sample::select(LEX_PIECES), 0..24)) {
        let sql = v.concat();
        let theirs = pg_tokens(&sql);
        let ours = our_tokens(&sql);
        match (&theirs, &ours) {
            (None, None) => {}
            (Some(t), Some(o)) => prop_assert_eq!(t, o, "{:?}", sql),
            // We reject where PostgreSQL's scanner does not: allowed only where its
            // grammar rejects the text (a bad `UESCAPE` is checked after scanning).
            (Some(_), None) if pg_query::parse(&sql, 0).is_err() => {}
            _ => prop_assert!(false, "{:?}: pg {:?} ours {:?}", sql, theirs, ours),
        }
    }
}
