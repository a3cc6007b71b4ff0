//! The SQL classifier: statement classes and the facts policy decides on.
//!
//! What it is for: given a SQL string as a client sends it (one or more statements), fill
//! the caller's [`Facts`] with, per top-level statement, its classes, flags, the tables it
//! reads or writes (schema-qualified, each with the class of the access), the columns it
//! references (with candidate tables) and the functions it calls.
//!
//! What it must never do:
//! - guess: anything not fully understood makes that statement `unknown` (its partial facts
//!   are removed) — the policy then denies unless a rule names `unknown`;
//! - allocate: every limit is a fixed array or a [`Facts`] capacity; running out is
//!   `unknown`;
//! - panic, loop, or take more than linear-ish time on any input.
//!
//! Layout: [`lexer`] (PostgreSQL's `scan.l` token rules), [`scope`] (which FROM items and
//! CTEs are visible), [`parser`] (statements → facts). This module splits the string into
//! statements and drives the parser.
//!
//! Documented choices:
//! - `standard_conforming_strings = on` is assumed (PostgreSQL's default since 9.1).
//! - Unqualified relations: `pg_catalog` first, then `search_path` (with the catalog when one
//!   is given), else the first schema of the path; without a catalog, `pg_*` names resolve
//!   to `pg_catalog`. `pg_temp` is not searched implicitly: a temporary table shadowing a
//!   permanent one is attributed to the permanent one (which can only deny more); names
//!   written `pg_temp.x` stay `pg_temp.x`.
//! - Unqualified functions are attributed to `pg_catalog`.
//! - An unqualified column's candidates are every base table visible where it appears,
//!   outer query levels included (a correlated reference can reach them). A policy check
//!   must require the column to be allowed on every candidate that has it.

pub mod lexer;
pub mod parser;
pub mod scope;

use crate::class::{ClassSet, StatementClass};
use crate::facts::{Facts, StatementFlags};
use lexer::{Kind, Lexer};
use parser::Parser;

/// What the caller knows about the session when classifying.
#[derive(Clone, Copy, Debug)]
pub struct ClassifyContext<'a> {
    /// The session's search_path, schemas in order (`$user` already expanded or dropped).
    /// Unqualified relation names resolve to the first schema where `catalog` has the table,
    /// else to the first schema of the path.
    pub search_path: &'a [&'a str],
    /// Optional: tells which relations exist (the data plane passes its decision table).
    pub catalog: Option<&'a dyn CatalogLookup>,
}

/// Lets the classifier resolve unqualified names like PostgreSQL does.
pub trait CatalogLookup {
    fn has_table(&self, schema: &str, name: &str) -> bool;
}

impl std::fmt::Debug for dyn CatalogLookup + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogLookup")
    }
}

impl Default for ClassifyContext<'_> {
    fn default() -> Self {
        ClassifyContext {
            search_path: &["public"],
            catalog: None,
        }
    }
}

/// Counters of one [`classify`] run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassifyStats {
    /// Units of lexer work (tokens and trivia runs, lookahead included): the classifier's
    /// running time is proportional to this, and it grows linearly with the input.
    pub work: u64,
}

/// Classifies `sql` (one or more statements) into `facts` (cleared first).
pub fn classify(sql: &str, ctx: &ClassifyContext<'_>, facts: &mut Facts) {
    classify_with_stats(sql, ctx, facts);
}

/// [`classify`], also returning how much work it did.
pub fn classify_with_stats(
    sql: &str,
    ctx: &ClassifyContext<'_>,
    facts: &mut Facts,
) -> ClassifyStats {
    facts.clear();
    let mut stats = ClassifyStats::default();
    // Statement offsets are u32 in Facts: longer strings are one unknown statement.
    if sql.len() > u32::MAX as usize / 2 {
        if facts.begin_statement(0, 0).is_ok() {
            mark_unknown(facts, "SQL string too long");
        }
        return stats;
    }
    // One scope stack per call, reset per statement (it is a few KiB: not re-initialised
    // per statement).
    let mut scopes = scope::Scopes::default();
    let mut pos = 0usize;
    loop {
        let split = next_statement(sql, pos, &mut stats.work);
        let Some((start, end, next, lex_error)) = split else {
            return stats;
        };
        pos = next;
        if facts.begin_statement(start as u32, end as u32).is_err() {
            // No room for another statement: the last one recorded stands for the rest,
            // and it must not be allowed.
            mark_unknown(facts, "too many statements");
            return stats;
        }
        if let Some(reason) = lex_error {
            mark_unknown(facts, reason);
            return stats;
        }
        let mut p = Parser::new(sql, start, end, facts, &mut scopes, ctx);
        let result = p.statement();
        let (classes, flags, prepared) = (p.classes, p.flags, p.prepared_name);
        stats.work += p.work;
        match result {
            Ok(()) if !classes.is_empty() => {
                if let Some(s) = facts.current_mut() {
                    s.classes = classes;
                    s.flags = StatementFlags(flags);
                    s.prepared_name = prepared;
                }
            }
            Ok(()) => mark_unknown(facts, "no class"),
            Err(e) => mark_unknown(facts, e.0),
        }
    }
}

fn mark_unknown(facts: &mut Facts, reason: &'static str) {
    facts.reset_current();
    if let Some(s) = facts.current_mut() {
        s.classes = ClassSet::single(StatementClass::Unknown);
        s.flags = StatementFlags::default();
        s.prepared_name = crate::facts::NameRef::EMPTY;
        s.unknown_reason = Some(reason);
    }
}

/// Nesting of `BEGIN … END` blocks inside one statement before giving up.
const MAX_BEGIN_LEVELS: u32 = 1024;

/// The next non-empty statement from `pos`: (start, end, where to continue, lex error).
/// Splits at semicolons outside parentheses and outside `BEGIN ATOMIC … END` bodies of
/// `CREATE [OR REPLACE] FUNCTION|PROCEDURE` (inside a body, `CASE` opens and `END` closes
/// a block, as in psql's `psqlscan.l`).
/// On a lexing error the statement runs to the end of the string.
fn next_statement(
    sql: &str,
    pos: usize,
    work: &mut u64,
) -> Option<(usize, usize, usize, Option<&'static str>)> {
    let mut lx = Lexer::at(sql, pos);
    let mut start = None;
    let mut depth = 0u32;
    let mut begin_depth = 0u32;
    // The first four identifiers, to recognise CREATE [OR REPLACE] FUNCTION/PROCEDURE.
    let mut first: [u8; 4] = [0; 4]; // 1=create 2=or 3=replace 4=function/procedure 5=other
    let mut n_ident = 0usize;
    let mut end = pos;
    loop {
        let before = lx.work;
        let t = lx.next_token();
        *work += lx.work.saturating_sub(before);
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                let s = start.unwrap_or(pos);
                return Some((s, sql.len(), sql.len(), Some(e.0)));
            }
        };
        match t.kind {
            Kind::Eof => {
                return start.map(|s| (s, end, sql.len(), None));
            }
            Kind::Semicolon if depth == 0 && begin_depth == 0 => {
                if let Some(s) = start {
                    return Some((s, end, t.end as usize, None));
                }
                continue;
            }
            // psqlscan.l counts parentheses only (not brackets).
            Kind::LParen => depth = depth.saturating_add(1),
            Kind::RParen => depth = depth.saturating_sub(1),
            Kind::Ident => {
                let w = t.text(sql);
                if n_ident < 4 {
                    first[n_ident] = if w.eq_ignore_ascii_case("create") {
                        1
                    } else if w.eq_ignore_ascii_case("or") {
                        2
                    } else if w.eq_ignore_ascii_case("replace") {
                        3
                    } else if w.eq_ignore_ascii_case("function")
                        || w.eq_ignore_ascii_case("procedure")
                    {
                        4
                    } else {
                        5
                    };
                    n_ident += 1;
                }
                let is_routine = first[0] == 1
                    && (first[1] == 4 || (first[1] == 2 && first[2] == 3 && first[3] == 4));
                // Only `BEGIN ATOMIC` opens a body (gram.y: `BEGIN_P ATOMIC
                // routine_body_stmt_list END_P`). psql counts any BEGIN, but then
                // `CREATE FUNCTION f(begin int) …; DROP TABLE t` would hide the DROP inside
                // the CREATE: the server runs it as a statement of its own.
                let opens_body =
                    is_routine && begin_depth == 0 && w.eq_ignore_ascii_case("begin") && {
                        let mut probe = lx;
                        probe.next_token().is_ok_and(|n| n.is_kw(sql, "atomic"))
                    };
                if opens_body || (begin_depth > 0 && w.eq_ignore_ascii_case("case")) {
                    begin_depth = (begin_depth + 1).min(MAX_BEGIN_LEVELS);
                } else if begin_depth > 0 && w.eq_ignore_ascii_case("end") {
                    begin_depth -= 1;
                }
            }
            _ => {}
        }
        if start.is_none() {
            start = Some(t.start as usize);
        }
        end = t.end as usize;
    }
}

#[cfg(test)]
mod tests;
