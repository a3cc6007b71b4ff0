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
//! Layout: [`lexer`] (PostgreSQL's `scan.l` token rules), [`keywords`] (every keyword,
//! identified once per token), [`scope`] (which FROM items and CTEs are visible),
//! [`parser`] (statements → facts). This module splits the string into statements and
//! drives the parser. `flat` is a fast path for the commonest shape of statement (a
//! single-table point or range query): one pass over the bytes, handing anything else
//! to the full classifier, and tested to record exactly what the full classifier does.
//!
//! Speed: each token is lexed once — the splitter leaves a statement's tokens in a window
//! the parser reads by index (lookahead and backtracking are index moves) — and keywords
//! are small integers compared as such. The token window and the scopes live in a
//! per-thread [`Scratch`], allocated on the thread's first call, so a call neither
//! allocates nor initialises large arrays, and [`Facts`] (the output) knows nothing of
//! the classifier's working memory.
//!
//! Documented choices:
//! - `standard_conforming_strings = on` is assumed (PostgreSQL's default since 9.1).
//! - Unqualified relations resolve as [`resolve::relation`] says: the first schema (implicit
//!   `pg_catalog` first) whose catalog entry declares the name; declared nowhere on the
//!   path, every schema of it (and `pg_catalog` for a `pg_*` name), each a checked access
//!   of a read in FROM (a write of such a name is `unknown`). `pg_temp` is not searched: a
//!   temporary table shadowing a permanent one is attributed to the permanent one (which can
//!   only deny more); names written `pg_temp.x` stay `pg_temp.x`.
//! - Unqualified function calls resolve as [`resolve::function`] says: a PostgreSQL built-in
//!   ([`builtin_functions`]) is recorded with an empty schema (the decider checks it against
//!   `pg_catalog` and every declared function of that name); any other name once per path
//!   schema it may be in (its argument types, which pick the overload, are not known).
//! - A `SET search_path` (also `SET LOCAL`, `SET SCHEMA`, and `SELECT set_config('search_path',
//!   'literal', true|false)` as a whole statement) applies to the later statements of the
//!   same string; `RESET search_path`, `RESET ALL`, `DISCARD ALL` and `SET search_path TO
//!   DEFAULT` restore the caller's path. `$user` is dropped. When the new path is not known
//!   exactly (a non-literal or conditional `set_config`, more than [`MAX_PATH_OVERRIDE`]
//!   schemas, an `unknown` statement, `COMMIT` after `SET LOCAL`, `ROLLBACK` after any
//!   change), later statements that resolve an unqualified relation are `unknown`.
//! - Changing the session's role (`SET ROLE`, `SET SESSION AUTHORIZATION`, their `RESET`s,
//!   `set_config('role' | 'session_authorization', …)`) is class `dcl`.
//! - In a query's `ORDER BY`, an item that is a bare name matching an output name of the
//!   select list (an alias, or the implicit name of a column or function target) is that
//!   output column, not a column reference (PostgreSQL's rule). `GROUP BY` prefers input
//!   columns, so names there are always reported.
//! - An unqualified column's candidates are every base table visible where it appears,
//!   outer query levels included (a correlated reference can reach them). A policy check
//!   must require the column to be allowed on every candidate that has it.

pub mod builtin_functions;
pub mod copy_options;
mod flat;
pub mod keywords;
pub mod lexer;
pub mod parser;
pub mod resolve;
pub mod scope;

use std::cell::Cell;

use crate::class::{ClassSet, StatementClass};
use crate::facts::{Facts, StatementFlags};
use keywords::Kw;
use lexer::{Kind, Lexer, Token};
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
    /// The current transaction holds search-path changes a `COMMIT` or `ROLLBACK` would
    /// undo: after one in the same string, unqualified relations cannot be resolved.
    pub tx_path_dirty: bool,
    /// The session's path is not known exactly (an earlier `set_config` with a value
    /// pgate could not read): unqualified relations cannot be resolved.
    pub path_unknown: bool,
}

/// Lets the classifier resolve unqualified names like PostgreSQL does.
pub trait CatalogLookup {
    fn has_table(&self, schema: &str, name: &str) -> bool;
    /// Whether the catalog declares a function `schema.name` (any overload).
    fn has_function(&self, _schema: &str, _name: &str) -> bool {
        false
    }
    /// The overloads the catalog lists for `schema.name`: each one's identity arguments
    /// followed by `\n`, sorted; `None` when not listed (then none is known to be
    /// hidden: see [`resolve::function`]).
    fn function_overloads(&self, _schema: &str, _name: &str) -> Option<&str> {
        None
    }
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
            tx_path_dirty: false,
            path_unknown: false,
        }
    }
}

/// Counters of one [`classify`] run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassifyStats {
    /// Units of work: tokens and trivia runs lexed (re-lexing included) plus tokens the
    /// parser consumed (re-reading after backtracking included). The classifier's running
    /// time is proportional to this, and it grows linearly with the input.
    pub work: u64,
}

/// The classifier's working memory: one per thread ([`SCRATCH`]), allocated on the
/// thread's first classification and reused by every later one, whatever the session.
/// It holds nothing between calls (each call resets what it reads), so sessions share
/// memory, not state.
pub struct Scratch {
    /// The token window of the statement being classified (fixed capacity).
    pub(crate) tokens: Window,
    pub(crate) scopes: scope::Scopes,
    /// The parser's output names (see `Parser`): kept here so that a call does not
    /// initialise the array (only the count is reset).
    pub(crate) outs: parser::OutputNames,
}

thread_local! {
    /// This thread's [`Scratch`] (`None` before its first classification, and while a
    /// call holds it). Per thread rather than per session: a worker classifies one
    /// message at a time, and an idle session then holds none of its kilobytes.
    static SCRATCH: Cell<Option<Box<Scratch>>> = const { Cell::new(None) };
}

/// Tokens of one statement kept after splitting: statements up to this long are lexed
/// exactly once; longer ones are parsed through a sliding window of this size.
pub const TOKEN_WINDOW: usize = 2048;

/// A statement's tokens, in a fixed array: reading one is a compare and a load (the
/// parser reads tokens far more often than anything else).
pub(crate) struct Window {
    len: usize,
    toks: [Token; TOKEN_WINDOW],
}

impl Window {
    /// Token `off` of the window, if there is one.
    #[inline(always)]
    pub(crate) fn get(&self, off: usize) -> Option<Token> {
        if off < self.len {
            self.toks.get(off).copied()
        } else {
            None
        }
    }
    /// Appends `t`; false (and nothing kept) when the window is full.
    #[inline(always)]
    pub(crate) fn push(&mut self, t: Token) -> bool {
        match self.toks.get_mut(self.len) {
            Some(slot) => {
                *slot = t;
                self.len += 1;
                true
            }
            None => false,
        }
    }
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
    pub(crate) fn is_full(&self) -> bool {
        self.len >= TOKEN_WINDOW
    }
    pub(crate) fn last(&self) -> Option<Token> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }
    /// Drops the first `n` tokens (the window slides forward).
    pub(crate) fn drop_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.toks.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl Default for Window {
    fn default() -> Self {
        Window {
            len: 0,
            toks: [Token::EOF; TOKEN_WINDOW],
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            tokens: Window::default(),
            scopes: scope::Scopes::default(),
            outs: [(0, lexer::Token::EOF); parser::MAX_OUTPUT_NAMES],
        }
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

/// Schemas an in-message `SET search_path` may name before the path is given up on.
pub const MAX_PATH_OVERRIDE: usize = 16;

/// The search path in force for a statement of a multi-statement string.
#[derive(Clone, Copy, Debug)]
pub enum PathState {
    /// The caller's (`ClassifyContext::search_path`).
    Original,
    /// Set by an earlier statement of the same string (names in the `Facts` arena).
    Set {
        names: [crate::facts::NameRef; MAX_PATH_OVERRIDE],
        n: usize,
    },
    /// Changed in a way the classifier cannot follow exactly: unqualified relation names
    /// cannot be resolved (their statements are `unknown`).
    Unknown,
}

pub use crate::facts::PathEffect;

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
    // The fast path resolves names through the caller's path, which must then be known.
    let flat = if ctx.path_unknown {
        None
    } else {
        flat::classify_flat(sql, ctx, facts)
    };
    match flat {
        Some(stats) => stats,
        None => classify_general(sql, ctx, facts),
    }
}

/// [`classify`] through the full classifier only (without the fast path for flat
/// statements, `flat`): the reference the fast path is tested against.
#[doc(hidden)]
pub fn classify_general(sql: &str, ctx: &ClassifyContext<'_>, facts: &mut Facts) -> ClassifyStats {
    // Taken out of the thread's slot for the call: a nested call (there is none today) or
    // one during thread teardown gets a fresh one (one allocation) instead of a panic.
    let mut scratch = SCRATCH
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_default();
    let stats = classify_inner(sql, ctx, facts, &mut scratch);
    let _ = SCRATCH.try_with(|slot| slot.set(Some(scratch)));
    stats
}

fn classify_inner(
    sql: &str,
    ctx: &ClassifyContext<'_>,
    facts: &mut Facts,
    scratch: &mut Scratch,
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
    let Scratch {
        tokens,
        scopes,
        outs,
    } = scratch;
    let mut path = if ctx.path_unknown {
        PathState::Unknown
    } else {
        PathState::Original
    };
    // Whether this string changed the path (a later ROLLBACK may undo it), and whether
    // by `SET LOCAL` (a later COMMIT ends it).
    let (mut changed, mut local) = (false, false);
    let mut pos = 0usize;
    loop {
        let split = next_statement(sql, pos, &mut stats.work, tokens);
        let Some((start, end, next, lex_error, resume)) = split else {
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
        let mut p = Parser::new(sql, end, tokens, resume, facts, scopes, outs, ctx, &path);
        let result = p.statement();
        let (classes, flags, prepared) = (p.classes, p.flags, p.prepared_name);
        if p.unplain_all {
            for c in p.facts.current_columns_mut() {
                c.plain = false;
            }
        }
        let effect = p.path_effect;
        stats.work += p.work;
        let ok = matches!(result, Ok(())) && !classes.is_empty();
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
        // The search path for the statements after this one.
        let effect = if ok { effect } else { PathEffect::Unknown };
        if let Some(s) = facts.current_mut() {
            s.path_effect = effect;
        }
        match effect {
            PathEffect::None | PathEffect::Begin | PathEffect::Savepoint | PathEffect::Release => {}
            PathEffect::Set { local: l } => {
                changed = true;
                local |= l;
                path = path_from_facts(facts);
            }
            PathEffect::Reset => {
                changed = true;
                local = false;
                path = PathState::Original;
            }
            PathEffect::Unknown => path = PathState::Unknown,
            // The caller's path may itself hold uncommitted changes (`tx_path_dirty`).
            PathEffect::Commit { .. } => {
                if local || ctx.tx_path_dirty {
                    path = PathState::Unknown;
                }
            }
            PathEffect::Rollback { .. } | PathEffect::RollbackTo => {
                if changed || ctx.tx_path_dirty {
                    path = PathState::Unknown;
                }
            }
        }
    }
}

/// The path the current statement's `SET search_path` set (`$user` dropped).
fn path_from_facts(facts: &Facts) -> PathState {
    let Some(s) = facts.statements().last() else {
        return PathState::Unknown;
    };
    let mut names = [crate::facts::NameRef::EMPTY; MAX_PATH_OVERRIDE];
    let mut n = 0;
    for &r in facts.search_path(s) {
        if facts.name(r) == "$user" {
            continue;
        }
        match names.get_mut(n) {
            Some(slot) => *slot = r,
            None => return PathState::Unknown,
        }
        n += 1;
    }
    PathState::Set { names, n }
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

/// The next non-empty statement from `pos`: (start, end, where to continue, lex error, the
/// lexer after the last token left in `toks`). Splits at semicolons outside parentheses
/// and outside `BEGIN ATOMIC … END` bodies of `CREATE [OR REPLACE] FUNCTION|PROCEDURE`
/// (inside a body, `CASE` opens and `END` closes a block, as in psql's `psqlscan.l`).
/// On a lexing error the statement runs to the end of the string.
///
/// The statement's tokens are left in `toks` (as many as its capacity holds, followed by
/// an `Eof` at `end` when there is room), so the parser does not lex them again.
///
/// This loop runs once per token of every statement: it keeps no per-token state beyond
/// the parenthesis depth (the lexer has no state between tokens, so the resume point is
/// rebuilt from the last kept token's end), and looks for routine bodies only in
/// statements that start with `CREATE`.
#[allow(clippy::type_complexity)]
fn next_statement<'a>(
    sql: &'a str,
    pos: usize,
    work: &mut u64,
    toks: &mut Window,
) -> Option<(usize, usize, usize, Option<&'static str>, Lexer<'a>)> {
    let mut lx = Lexer::at(sql, pos);
    toks.clear();
    let mut err = None;
    // Empty statements (`;;`) are skipped.
    let mut t = lx.next_or_eof(&mut err);
    while t.kind == Kind::Semicolon {
        t = lx.next_or_eof(&mut err);
    }
    if t.kind == Kind::Eof {
        *work += lx.work;
        return err.map(|e| (pos, sql.len(), sql.len(), Some(e.0), lx));
    }
    let start = t.start as usize;
    let create = t.kw == Kw::Create;
    let mut depth = 0u32;
    let mut begin_depth = 0u32;
    // After CREATE: the next three identifiers, to recognise [OR REPLACE] FUNCTION/PROCEDURE.
    let mut first: [u8; 4] = [1, 0, 0, 0]; // 1=create 2=or 3=replace 4=function/procedure 5=other
    let mut n_ident = 0usize;
    let mut end;
    // Byte offset after the last token kept in `toks` (where the parser resumes lexing).
    let mut kept_end = pos;
    loop {
        match t.kind {
            // psqlscan.l counts parentheses only (not brackets).
            Kind::LParen => depth = depth.saturating_add(1),
            Kind::RParen => depth = depth.saturating_sub(1),
            Kind::Ident if create => {
                if n_ident < 4 {
                    if n_ident > 0 {
                        first[n_ident] = match t.kw {
                            Kw::Or => 2,
                            Kw::Replace => 3,
                            Kw::Function | Kw::Procedure => 4,
                            _ => 5,
                        };
                    }
                    n_ident += 1;
                }
                let is_routine = first[1] == 4 || (first[1] == 2 && first[2] == 3 && first[3] == 4);
                // Only `BEGIN ATOMIC` opens a body (gram.y: `BEGIN_P ATOMIC
                // routine_body_stmt_list END_P`). psql counts any BEGIN, but then
                // `CREATE FUNCTION f(begin int) …; DROP TABLE t` would hide the DROP
                // inside the CREATE: the server runs it as a statement of its own.
                let opens_body = is_routine && begin_depth == 0 && t.kw == Kw::Begin && {
                    let mut probe = lx;
                    probe.next_token().is_ok_and(|n| n.kw == Kw::Atomic)
                };
                if opens_body || (begin_depth > 0 && t.kw == Kw::Case) {
                    begin_depth = (begin_depth + 1).min(MAX_BEGIN_LEVELS);
                } else if begin_depth > 0 && t.kw == Kw::End {
                    begin_depth -= 1;
                }
            }
            _ => {}
        }
        end = t.end as usize;
        if toks.push(t) {
            kept_end = end;
        }
        t = lx.next_or_eof(&mut err);
        let next = match t.kind {
            Kind::Eof => {
                if let Some(e) = err {
                    *work += lx.work;
                    return Some((start, sql.len(), sql.len(), Some(e.0), lx));
                }
                sql.len()
            }
            Kind::Semicolon if depth == 0 && begin_depth == 0 => t.end as usize,
            _ => continue,
        };
        *work += lx.work;
        toks.push(Token {
            kind: Kind::Eof,
            start: end as u32,
            end: end as u32,
            kw: keywords::Kw::None,
        });
        return Some((start, end, next, None, Lexer::at(sql, kept_end)));
    }
}

#[cfg(test)]
mod tests;
