//! Differential test: the classifier against PostgreSQL's own parser (libpg_query via the
//! `pg_query` crate) over every statement of the PostgreSQL regression suite.
//!
//! For each statement pg_query accepts, classes and the set of relations are derived from
//! its parse tree and compared with `classify`. Tables are compared for statements whose
//! relations the classifier reports fully (queries, DML, COPY, TRUNCATE, LOCK, SELECT INTO,
//! and EXPLAIN/PREPARE/DECLARE of those); DDL/DCL/utility statements compare classes only.
//!
//! Remaining disagreements are listed in `differential_mismatches.txt` (`file:line:col
//! reason`). A disagreement not listed fails the test, and so does a listed one that now
//! agrees, so the list stays honest. Agreement must be at least 99%.
//!
//! The corpus lives at `$CARGO_MANIFEST_DIR/../../shared/corpus` or `$PGATE_CORPUS`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use pgate_core::facts::Facts;
use pgate_core::sql::{ClassifyContext, classify};
use serde_json::Value;

/// Blanks psql meta-command lines and COPY … FROM stdin data blocks, keeping line numbers.
fn strip_psql(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_copy_data = false;
    for line in text.split_inclusive('\n') {
        let nl = if line.ends_with('\n') { "\n" } else { "" };
        let trimmed = line.trim_end();
        if in_copy_data {
            if trimmed == "\\." {
                in_copy_data = false;
            }
            out.push_str(nl);
            continue;
        }
        if trimmed.trim_start().starts_with('\\') {
            out.push_str(nl);
            continue;
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("copy") && lower.ends_with("stdin;") {
            in_copy_data = true;
        }
        out.push_str(line);
    }
    out
}

fn node(v: &Value) -> Option<(&str, &Value)> {
    let obj = v.get("node")?.as_object()?;
    obj.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// Classes of a statement node, as the classifier defines them.
fn classes_of(name: &str, body: &Value, out: &mut BTreeSet<&'static str>) {
    let inner = |key: &str, out: &mut BTreeSet<&'static str>| {
        if let Some((n, b)) = body.get(key).and_then(node) {
            classes_of(n, b, out);
        }
    };
    match name {
        "SelectStmt" => {
            out.insert("select");
            if has_locking(body) {
                out.insert("lock");
            }
            if body.get("into_clause").is_some_and(|v| !v.is_null()) {
                out.insert("select-into");
            }
            dml_ctes(body, out);
        }
        "InsertStmt" => {
            out.insert("insert");
            let action = body
                .get("on_conflict_clause")
                .and_then(|c| c.get("action"))
                .and_then(Value::as_i64);
            if action == Some(3) {
                out.insert("update");
            }
            dml_ctes(body, out);
        }
        "UpdateStmt" => {
            out.insert("update");
            dml_ctes(body, out);
        }
        "DeleteStmt" => {
            out.insert("delete");
            dml_ctes(body, out);
        }
        "MergeStmt" => {
            out.insert("merge");
            dml_ctes(body, out);
        }
        "TruncateStmt" => {
            out.insert("truncate");
        }
        "CopyStmt" => {
            inner("query", out);
            let file = body.get("filename").and_then(Value::as_str).unwrap_or("");
            let program = body
                .get("is_program")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let from = body
                .get("is_from")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            out.insert(if !file.is_empty() || program {
                "copy-server"
            } else if from {
                "copy-in"
            } else {
                "copy-out"
            });
        }
        "CreateTableAsStmt" => {
            out.insert("select-into");
            inner("query", out);
        }
        "RefreshMatViewStmt" => {
            out.insert("select-into");
        }
        "ExplainStmt" => {
            inner("query", out);
            let analyze = body
                .get("options")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(node)
                .any(|(_, d)| {
                    let n = d.get("defname").and_then(Value::as_str).unwrap_or("");
                    if n != "analyze" && n != "analyse" {
                        return false;
                    }
                    // A missing argument means true.
                    match d.get("arg").and_then(node) {
                        None => true,
                        Some((_, a)) => {
                            let s = a.to_string().to_ascii_lowercase();
                            !(s.contains("false")
                                || s.contains("\"off\"")
                                || s.contains("\"0\"")
                                || s.contains(":0"))
                        }
                    }
                });
            if !analyze {
                out.insert("utility");
            }
        }
        "PrepareStmt" => {
            out.insert("prepare");
            inner("query", out);
        }
        "ExecuteStmt" | "DeallocateStmt" => {
            out.insert("prepare");
        }
        "DeclareCursorStmt" => {
            out.insert("cursor");
            inner("query", out);
        }
        "FetchStmt" | "ClosePortalStmt" => {
            out.insert("cursor");
        }
        "TransactionStmt" | "ConstraintsSetStmt" => {
            out.insert("transaction");
        }
        "VariableSetStmt" => {
            let n = body.get("name").and_then(Value::as_str).unwrap_or("");
            if n.eq_ignore_ascii_case("transaction")
                || n.eq_ignore_ascii_case("session characteristics")
            {
                out.insert("transaction");
            } else if n.eq_ignore_ascii_case("role")
                || n.eq_ignore_ascii_case("session_authorization")
            {
                // SET/RESET ROLE, SET/RESET SESSION AUTHORIZATION: changing the database
                // role through the proxy is a privilege operation.
                out.insert("dcl");
            } else {
                out.insert("session");
            }
        }
        "VariableShowStmt" | "DiscardStmt" => {
            out.insert("session");
        }
        "LockStmt" => {
            out.insert("lock");
        }
        "VacuumStmt" | "ClusterStmt" | "ReindexStmt" | "CheckPointStmt" | "LoadStmt" => {
            out.insert("utility");
        }
        "NotifyStmt" | "ListenStmt" | "UnlistenStmt" => {
            out.insert("notify");
        }
        "CallStmt" | "DoStmt" => {
            out.insert("call");
        }
        "GrantStmt"
        | "GrantRoleStmt"
        | "CreateRoleStmt"
        | "AlterRoleStmt"
        | "AlterRoleSetStmt"
        | "DropRoleStmt"
        | "AlterDefaultPrivilegesStmt"
        | "ReassignOwnedStmt"
        | "DropOwnedStmt" => {
            out.insert("dcl");
        }
        "RenameStmt" if body.get("rename_type").and_then(Value::as_i64) == Some(34) => {
            out.insert("dcl");
        }
        _ => {
            out.insert("ddl");
        }
    }
}

/// Whether a FOR UPDATE/SHARE clause appears anywhere in the query (the classifier reports
/// row locks as `lock`).
fn has_locking(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| {
            (k == "locking_clause" && x.as_array().is_some_and(|a| !a.is_empty())) || has_locking(x)
        }),
        Value::Array(a) => a.iter().any(has_locking),
        _ => false,
    }
}

/// Classes of data-modifying statements in the WITH clause of `body`.
fn dml_ctes(body: &Value, out: &mut BTreeSet<&'static str>) {
    let Some(ctes) = body
        .get("with_clause")
        .and_then(|w| w.get("ctes"))
        .and_then(Value::as_array)
    else {
        return;
    };
    for cte in ctes {
        let Some(("CommonTableExpr", c)) = node(cte) else {
            continue;
        };
        if let Some((n, b)) = c.get("ctequery").and_then(node)
            && n != "SelectStmt"
        {
            classes_of(n, b, out);
        }
    }
}

/// Whether the classifier is expected to report every relation of this statement.
fn compares_tables(name: &str, body: &Value) -> bool {
    match name {
        "SelectStmt" | "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" | "CopyStmt"
        | "TruncateStmt" | "LockStmt" | "CreateTableAsStmt" | "RefreshMatViewStmt" => true,
        "ExplainStmt" | "PrepareStmt" | "DeclareCursorStmt" => body
            .get("query")
            .and_then(node)
            .is_some_and(|(n, b)| compares_tables(n, b)),
        _ => false,
    }
}

/// Relations named anywhere in `v`, CTE references excluded (scoped by WITH clauses).
fn tables_of(v: &Value, ctes: &mut Vec<String>, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            let pushed = ctes.len();
            if let Some(list) = map
                .get("with_clause")
                .and_then(|w| w.get("ctes"))
                .and_then(Value::as_array)
            {
                for cte in list {
                    if let Some(("CommonTableExpr", c)) = node(cte)
                        && let Some(n) = c.get("ctename").and_then(Value::as_str)
                    {
                        ctes.push(n.to_owned());
                    }
                }
            }
            // A RangeVar appears wrapped (`{"RangeVar": {…}}` in node lists) or bare (as
            // InsertStmt.relation, IntoClause.rel, …).
            let bare = map.contains_key("relname") && map.contains_key("relpersistence");
            if let Some(rv) = map.get("RangeVar").or(bare.then_some(v)) {
                let schema = rv.get("schemaname").and_then(Value::as_str).unwrap_or("");
                let rel = rv.get("relname").and_then(Value::as_str).unwrap_or("");
                if !(schema.is_empty() && ctes.iter().any(|c| c == rel)) {
                    out.insert(qualify(schema, rel));
                }
            }
            for (k, child) in map {
                // FOR UPDATE OF names FROM items (aliases), not relations.
                if k == "locking_clause" || k == "RangeVar" || bare {
                    continue;
                }
                tables_of(child, ctes, out);
            }
            ctes.truncate(pushed);
        }
        Value::Array(a) => {
            for x in a {
                tables_of(x, ctes, out);
            }
        }
        _ => {}
    }
}

fn qualify(schema: &str, rel: &str) -> String {
    if !schema.is_empty() {
        format!("{schema}.{rel}")
    } else if rel.starts_with("pg_") {
        format!("pg_catalog.{rel}")
    } else {
        format!("public.{rel}")
    }
}

struct Outcome {
    key: String,
    agree: bool,
    detail: String,
}

/// How the classifier's view of one statement compares with pg_query's.
struct Verdict {
    agree: bool,
    /// Ours is a superset of pg_query's (more classes and/or tables): stricter policy.
    conservative: bool,
    detail: String,
}

fn compare(sql: &str, facts: &mut Facts) -> Option<(bool, String)> {
    compare_full(sql, facts).map(|v| (v.agree, v.detail))
}

fn compare_full(sql: &str, facts: &mut Facts) -> Option<Verdict> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    let json = serde_json::to_value(&parsed.protobuf).ok()?;
    let stmts = json.get("stmts")?.as_array()?;
    if stmts.len() != 1 {
        return None;
    }
    let (name, body) = stmts[0].get("stmt").and_then(node)?;
    let mut want = BTreeSet::new();
    classes_of(name, body, &mut want);
    let want_tables = if compares_tables(name, body) {
        let mut t = BTreeSet::new();
        tables_of(body, &mut Vec::new(), &mut t);
        Some(t)
    } else {
        None
    };

    classify(sql, &ClassifyContext::default(), facts);
    let st = facts.statements();
    if st.len() != 1 {
        return Some(Verdict {
            agree: false,
            conservative: false,
            detail: format!("split into {} statements (pg: {name})", st.len()),
        });
    }
    let s = st[0];
    let got: BTreeSet<&str> = s.classes.iter().map(|c| c.name()).collect();
    if got != want {
        return Some(Verdict {
            agree: false,
            conservative: got.is_superset(&want),
            detail: format!(
                "classes {got:?} != pg {want:?} ({name}) {}",
                s.unknown_reason.unwrap_or("")
            ),
        });
    }
    if let Some(want_tables) = want_tables {
        let got_tables: BTreeSet<String> = facts
            .tables(&s)
            .iter()
            .map(|t| format!("{}.{}", facts.name(t.name.schema), facts.name(t.name.name)))
            .collect();
        if got_tables != want_tables {
            return Some(Verdict {
                agree: false,
                conservative: got_tables.is_superset(&want_tables),
                detail: format!("tables {got_tables:?} != pg {want_tables:?}"),
            });
        }
    }
    Some(Verdict {
        agree: true,
        conservative: true,
        detail: String::new(),
    })
}

#[test]
fn agrees_with_postgres_parser() {
    let dir = common::corpus_dir();
    assert!(
        dir.is_some(),
        "corpus not found: set PGATE_CORPUS to the folder holding pg-regress/"
    );
    let Some(dir) = dir else { return };
    let files = common::corpus_files();
    assert!(!files.is_empty(), "no .sql files in {}", dir.display());

    let mut facts = Facts::default();
    let mut outcomes = Vec::new();
    for path in &files {
        let Ok(raw) = std::fs::read_to_string(path) else {
            continue;
        };
        let text = strip_psql(&raw);
        let Ok(pieces) = pg_query::split_with_scanner(&text) else {
            continue;
        };
        let fname = path.file_name().and_then(|f| f.to_str()).unwrap_or("?");
        for piece in pieces {
            let sql = piece.trim();
            if sql.is_empty() {
                continue;
            }
            let offset = sql.as_ptr() as usize - text.as_ptr() as usize;
            let line = text[..offset].matches('\n').count() + 1;
            let col = offset - text[..offset].rfind('\n').map(|p| p + 1).unwrap_or(0) + 1;
            let Some((agree, detail)) = compare(sql, &mut facts) else {
                continue;
            };
            outcomes.push(Outcome {
                key: format!("{fname}:{line}:{col}"),
                agree,
                detail,
            });
        }
    }

    let listed_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/differential_mismatches.txt");
    let listed_text = std::fs::read_to_string(&listed_path).unwrap_or_default();
    let listed: BTreeMap<&str, &str> = listed_text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .collect();

    let total = outcomes.len();
    let agreeing = outcomes.iter().filter(|o| o.agree).count();
    let pct = 100.0 * agreeing as f64 / total.max(1) as f64;
    println!("differential: {agreeing}/{total} statements agree ({pct:.2}%)");

    let mut unlisted = Vec::new();
    let mut stale = Vec::new();
    for o in &outcomes {
        match (o.agree, listed.contains_key(o.key.as_str())) {
            (false, false) => unlisted.push(format!("{} {}", o.key, o.detail)),
            (true, true) => stale.push(o.key.clone()),
            _ => {}
        }
    }
    let seen: BTreeSet<&str> = outcomes.iter().map(|o| o.key.as_str()).collect();
    let missing: Vec<&&str> = listed.keys().filter(|k| !seen.contains(**k)).collect();
    if std::env::var_os("PGATE_WRITE_MISMATCHES").is_some_and(|v| v == "1") {
        let mut body = String::from(
            "# Known disagreements with pg_query (file:line:col reason). Kept honest by\n# tests/differential.rs: unlisted mismatches and listed agreements both fail.\n",
        );
        for o in outcomes.iter().filter(|o| !o.agree) {
            body += &format!("{} {}\n", o.key, o.detail.replace('\n', " "));
        }
        let _ = std::fs::write(&listed_path, body);
    }
    for u in unlisted.iter().take(50) {
        println!("UNLISTED {u}");
    }
    for s in stale.iter().take(50) {
        println!("STALE {s}");
    }
    assert!(
        unlisted.is_empty(),
        "{} mismatches not in differential_mismatches.txt",
        unlisted.len()
    );
    assert!(
        stale.is_empty(),
        "{} listed mismatches now agree: remove them",
        stale.len()
    );
    assert!(
        missing.is_empty(),
        "listed entries not in the corpus: {missing:?}"
    );
    assert!(pct >= 99.0, "agreement {pct:.2}% is below 99%");
}

/// The lexer against PostgreSQL's own scanner (`pg_query::scan`): the same token
/// boundaries for every statement of the corpus. Comments are trivia for us; `UESCAPE 'c'`
/// is part of the preceding `U&` token for us and separate tokens for PostgreSQL.
#[test]
fn lexer_agrees_with_postgres_scanner() {
    use pgate_core::sql::lexer::{Kind, Lexer};
    const SQL_COMMENT: i32 = 275;
    const C_COMMENT: i32 = 276;
    const UESCAPE: i32 = 717;

    let files = common::corpus_files();
    assert!(!files.is_empty(), "corpus not found");
    let (mut total, mut differ) = (0usize, Vec::new());
    for path in &files {
        let Ok(raw) = std::fs::read_to_string(path) else {
            continue;
        };
        let text = strip_psql(&raw);
        let Ok(pieces) = pg_query::split_with_scanner(&text) else {
            continue;
        };
        for piece in pieces {
            let sql = piece.trim();
            if sql.is_empty() {
                continue;
            }
            // Also statements the grammar rejects: the scanner must still agree, and a
            // scanner error must be a lexer error here too.
            let scan = match pg_query::scan(sql) {
                Ok(s) => s,
                Err(_) => {
                    total += 1;
                    let mut lx = Lexer::new(sql);
                    let errs = loop {
                        match lx.next_token() {
                            Ok(t) if t.kind == Kind::Eof => break false,
                            Ok(_) => {}
                            Err(_) => break true,
                        }
                    };
                    if !errs {
                        differ.push(format!(
                            "{}: scanner error not seen: {:?}",
                            path.display(),
                            sql.chars().take(60).collect::<String>()
                        ));
                    }
                    continue;
                }
            };
            let mut want = Vec::new();
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
                want.push((start, end));
            }
            let mut got = Vec::new();
            let mut lx = Lexer::new(sql);
            loop {
                match lx.next_token() {
                    Ok(t) if t.kind == Kind::Eof => break,
                    Ok(t) => got.push((t.start as usize, t.end as usize)),
                    Err(_) => {
                        got.push((usize::MAX, 0));
                        break;
                    }
                }
            }
            total += 1;
            if got != want {
                let first = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
                differ.push(format!(
                    "{}: near {:?}",
                    path.display(),
                    sql.get(want.get(first).map(|w| w.0).unwrap_or(0)..)
                        .map(|s| s.chars().take(40).collect::<String>())
                ));
            }
        }
    }
    println!(
        "lexer: {}/{} statements tokenise identically",
        total - differ.len(),
        total
    );
    for d in differ.iter().take(20) {
        println!("LEXER {d}");
    }
    assert!(
        differ.is_empty(),
        "{} statements tokenise differently",
        differ.len()
    );
}

/// Mutation hunt for fail-open classifications: corpus statements with one token deleted,
/// duplicated, swapped or replaced. Whenever PostgreSQL's parser accepts a mutant, the
/// classifier must either agree with it (classes and tables) or say `unknown`.
#[test]
fn mutants_are_understood_or_unknown() {
    use pgate_core::class::StatementClass;
    use pgate_core::sql::lexer::{Kind, Lexer};
    const WORDS: &[&str] = &[
        "SELECT",
        "FROM",
        "WHERE",
        "(",
        ")",
        ",",
        "AS",
        "JOIN",
        "ON",
        "INTO",
        "TABLE",
        "WITH",
        "DELETE",
        "UPDATE",
        "INSERT",
        "SET",
        "VALUES",
        "UNION",
        "x",
        "t",
        "1",
        "'s'",
        "*",
        ".",
        "USING",
        "RETURNING",
        "LATERAL",
        "ONLY",
        "ORDER",
        "BY",
        "GROUP",
        "FOR",
        "COPY",
        "TO",
        "STDOUT",
        "CASE",
        "END",
        "NOT",
        "IN",
        "EXISTS",
        "::",
        "ARRAY",
        "[",
        "]",
        ";",
    ];
    let files = common::corpus_files();
    if files.is_empty() {
        return;
    }
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move |n: usize| -> usize {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % (n.max(1) as u64)) as usize
    };
    let mut facts = Facts::default();
    let (mut accepted, mut stricter, mut bad) = (0usize, 0usize, Vec::new());
    for path in &files {
        let Ok(raw) = std::fs::read_to_string(path) else {
            continue;
        };
        let text = strip_psql(&raw);
        let Ok(pieces) = pg_query::split_with_scanner(&text) else {
            continue;
        };
        for (n, piece) in pieces.iter().enumerate() {
            let sql = piece.trim();
            if sql.is_empty() || n % 3 != 0 || sql.len() > 2000 {
                continue;
            }
            let mut toks = Vec::new();
            let mut lx = Lexer::new(sql);
            while let Ok(t) = lx.next_token() {
                if t.kind == Kind::Eof {
                    break;
                }
                toks.push((t.start as usize, t.end as usize));
            }
            if toks.is_empty() {
                continue;
            }
            for _ in 0..4 {
                let k = rand(toks.len());
                let (s, e) = toks[k];
                let mutant = match rand(4) {
                    0 => format!("{} {}", &sql[..s], &sql[e..]),
                    1 => format!("{} {} {}", &sql[..e], &sql[s..e], &sql[e..]),
                    2 if k + 1 < toks.len() => {
                        let (s2, e2) = toks[k + 1];
                        format!(
                            "{} {} {} {}",
                            &sql[..s],
                            &sql[s2..e2],
                            &sql[s..e],
                            &sql[e2..]
                        )
                    }
                    _ => format!("{} {} {}", &sql[..s], WORDS[rand(WORDS.len())], &sql[e..]),
                };
                let Some(v) = compare_full(&mutant, &mut facts) else {
                    continue;
                };
                accepted += 1;
                let unknown = facts
                    .statements()
                    .first()
                    .is_some_and(|s| s.classes.contains(StatementClass::Unknown));
                if !v.agree && !unknown {
                    if !v.conservative {
                        bad.push(format!("{mutant:?}: {}", v.detail));
                    }
                    stricter += 1;
                }
            }
        }
    }
    println!(
        "mutants accepted by PostgreSQL: {accepted}; classified more strictly: {stricter}; \
         less strictly (fail open): {}",
        bad.len()
    );
    for b in bad.iter().take(40) {
        println!("MUTANT {b}");
    }
    assert!(accepted > 1000, "too few mutants accepted: {accepted}");
    assert!(
        bad.is_empty(),
        "{} mutants classified less strictly than PostgreSQL reads them",
        bad.len()
    );
}
