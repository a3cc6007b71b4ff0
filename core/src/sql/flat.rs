//! The fast path for flat statements: one pass over the bytes of the commonest statement
//! of OLTP traffic, a point or range query on one table —
//!
//! `SELECT c [, c …] FROM [s.]t [WHERE c op v {AND | OR} c op v …] [;]`
//!
//! where every `c`, `s`, `t` is a plain ASCII identifier (no keyword, at most 63 bytes),
//! `op` is one of `= <> != < > <= >=` and `v` is a parameter (`$n`), a plain integer, a
//! standard string (`'…'`) or such a column.
//!
//! What it is for: classifying such a string without the full machinery (splitter, token
//! window, scopes, clause dispatch), which it does not need — a fraction of the cost on
//! the statement pgbench, ORMs and most services send most.
//!
//! What it must never do:
//! - accept anything it does not fully understand: any byte, token or shape outside the
//!   subset above (comments, quoted identifiers, prefixed or continued strings, decimal
//!   or hex numbers, operators other than the comparisons, a second statement, non-ASCII
//!   identifiers, a catalog to resolve names against, a facts limit reached) returns
//!   `None` with `facts` cleared, and the full classifier reads the string from scratch;
//! - record facts that differ from the full classifier's for the same string:
//!   `tests/classify_fast.rs` compares the two over the regression corpus and generated
//!   statements and near misses, and `sql::classify_general` is the reference.

use super::keywords::{self, Kw};
use super::{ClassifyContext, ClassifyStats};
use crate::class::{ClassSet, StatementClass};
use crate::facts::{Clause, ColumnName, ColumnRef, Facts, NameRef, QualifiedName, TableAccess};

/// Columns a flat statement may name (more: the full classifier reads it).
const MAX_FLAT_COLUMNS: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// A plain identifier, with the keyword it spells.
    Ident(Kw),
    Comma,
    Dot,
    /// One of the comparison operators.
    Compare,
    /// `$n`, a plain integer or a standard string.
    Value,
    Semicolon,
    End,
}

/// A token: its kind and byte range (small enough to travel in registers).
#[derive(Clone, Copy)]
struct T {
    tok: Tok,
    start: u32,
    end: u32,
}

/// The subset's scanner. `next` returns `None` for anything outside the subset.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    /// Where the token before the last one returned ended.
    prev_end: usize,
    tokens: u64,
}

const SPACE: u8 = 1;
/// scan.l `ident_cont`, ASCII only (`[A-Za-z0-9_$]`).
const CONT: u8 = 2;
/// scan.l `op_chars`.
const OP: u8 = 4;

/// Byte classes (one load per byte in the scanning loops).
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut k = 0;
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            k |= SPACE;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
            k |= CONT;
        }
        if super::lexer::is_op_char(c) {
            k |= OP;
        }
        t[i] = k;
        i += 1;
    }
    t
};

#[inline(always)]
fn class(c: u8) -> u8 {
    CLASS[usize::from(c)]
}

/// scan.l `ident_cont`, ASCII only.
#[inline(always)]
fn ident_cont(c: u8) -> bool {
    class(c) & CONT != 0
}

/// `word` as a keyword spelling, lower case, zero-padded (for the structural keywords).
const fn kw_word(word: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < word.len() {
        w |= (word[i] as u64) << (8 * i);
        i += 1;
    }
    w
}
const SELECT: u64 = kw_word(b"select");
const FROM: u64 = kw_word(b"from");
const WHERE: u64 = kw_word(b"where");
const AND: u64 = kw_word(b"and");
const OR: u64 = kw_word(b"or");

impl Scan<'_> {
    /// The next token, where a name may stand: an identifier is looked up among all
    /// keywords (a name must be none).
    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        self.scan(true)
    }

    /// The next token, where only a structural keyword (`SELECT`, `FROM`, `WHERE`, `AND`,
    /// `OR`) or punctuation may stand: an identifier is compared with those five only and
    /// is `Ident(Kw::None)` otherwise, which no such position accepts.
    #[inline(always)]
    fn next_structural(&mut self) -> Option<T> {
        self.scan(false)
    }

    #[inline(always)]
    fn scan(&mut self, names: bool) -> Option<T> {
        let b = self.b;
        self.prev_end = self.i;
        let mut i = self.i;
        while b.get(i).is_some_and(|&c| class(c) & SPACE != 0) {
            i += 1;
        }
        let start = i;
        self.tokens += 1;
        let Some(&c) = b.get(i) else {
            self.i = i;
            return Some(T {
                tok: Tok::End,
                start: start as u32,
                end: start as u32,
            });
        };
        let tok = match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                i += 1;
                while b.get(i).copied().is_some_and(ident_cont) {
                    i += 1;
                }
                // A quote or `&` right after a name would make it a prefixed literal
                // (`E'…'`, `U&"…"`, …); non-ASCII bytes continue an identifier.
                if i - start > super::lexer::MAX_IDENT_BYTES
                    || b.get(i)
                        .is_some_and(|&n| matches!(n, b'\'' | b'"' | b'&') || n >= 0x80)
                {
                    return None;
                }
                if names {
                    Tok::Ident(keywords::lookup_in(b, start, i))
                } else {
                    let n = i - start;
                    let w = if n <= 8 {
                        keywords::word_rt(b, start, n, 0)
                    } else {
                        0
                    };
                    Tok::Ident(match (n, w) {
                        (6, SELECT) => Kw::Select,
                        (4, FROM) => Kw::From,
                        (5, WHERE) => Kw::Where,
                        (3, AND) => Kw::And,
                        (2, OR) => Kw::Or,
                        _ => Kw::None,
                    })
                }
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b';' => {
                i += 1;
                Tok::Semicolon
            }
            // Not `.5` (a number) nor `..`.
            b'.' => {
                i += 1;
                if b.get(i).is_some_and(|&n| n.is_ascii_digit() || n == b'.') {
                    return None;
                }
                Tok::Dot
            }
            b'0'..=b'9' => {
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                // `1.5`, `1e5`, `0x1F`, `1_000`, `1abc`: not plain integers.
                if b.get(i)
                    .is_some_and(|&n| ident_cont(n) || n == b'.' || n >= 0x80)
                {
                    return None;
                }
                Tok::Value
            }
            b'$' => {
                i += 1;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                // `$` + 1..=9 digits (always an int32), and then no identifier byte.
                if !(2..=10).contains(&(i - start))
                    || b.get(i).is_some_and(|&n| ident_cont(n) || n >= 0x80)
                {
                    return None;
                }
                Tok::Value
            }
            b'\'' => {
                // standard_conforming_strings: `''` is the only escape.
                i += 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                Tok::Value
            }
            _ => {
                // An operator: the whole run of scan.l `op_chars` must be a comparison
                // (so no comment start and no trailing `+`/`-` rule is involved).
                while b.get(i).is_some_and(|&n| class(n) & OP != 0) {
                    i += 1;
                }
                match b.get(start..i) {
                    Some(b"=" | b"<>" | b"!=" | b"<" | b">" | b"<=" | b">=") => Tok::Compare,
                    _ => return None,
                }
            }
        };
        self.i = i;
        Some(T {
            tok,
            start: start as u32,
            end: i as u32,
        })
    }

    /// The next token if it is a plain identifier (no keyword).
    #[inline(always)]
    fn name(&mut self) -> Option<T> {
        self.next().filter(|t| t.tok == Tok::Ident(Kw::None))
    }
}

/// Classifies `sql` if it is one flat statement (see the module docs); `None` (with
/// `facts` cleared) otherwise.
pub(super) fn classify_flat(
    sql: &str,
    ctx: &ClassifyContext<'_>,
    facts: &mut Facts,
) -> Option<ClassifyStats> {
    let b = sql.as_bytes();
    // Offsets are u32 in tokens and facts.
    if b.len() > u32::MAX as usize / 2 {
        return None;
    }
    let mut s = Scan {
        b,
        i: 0,
        prev_end: 0,
        tokens: 0,
    };
    let select = s.next_structural()?;
    if select.tok != Tok::Ident(Kw::Select) {
        return None;
    }
    // Byte ranges of every column, in the full classifier's order: the select list, then
    // WHERE left to right (from `where_from` on). Plain pairs: clearing them is a few
    // vector stores.
    let mut cols = [(0u32, 0u32); MAX_FLAT_COLUMNS];
    let mut n = 0;
    loop {
        let c = s.name()?;
        *cols.get_mut(n)? = (c.start, c.end);
        n += 1;
        match s.next_structural()?.tok {
            Tok::Comma => continue,
            Tok::Ident(Kw::From) => break,
            _ => return None,
        }
    }
    let first = s.name()?;
    let mut second = None;
    let mut t = s.next_structural()?;
    if t.tok == Tok::Dot {
        second = Some(s.name()?);
        t = s.next_structural()?;
    }
    let where_from = n;
    if t.tok == Tok::Ident(Kw::Where) {
        loop {
            let c = s.name()?;
            if s.next_structural()?.tok != Tok::Compare {
                return None;
            }
            *cols.get_mut(n)? = (c.start, c.end);
            n += 1;
            let v = s.next()?;
            match v.tok {
                Tok::Value => {}
                Tok::Ident(Kw::None) => {
                    *cols.get_mut(n)? = (v.start, v.end);
                    n += 1;
                }
                _ => return None,
            }
            t = s.next_structural()?;
            if !matches!(t.tok, Tok::Ident(Kw::And) | Tok::Ident(Kw::Or)) {
                break;
            }
        }
    }
    // The statement ends with the token before `t`; only blanks may follow a `;`.
    let end = s.prev_end;
    if t.tok == Tok::Semicolon {
        t = s.next_structural()?;
    }
    if t.tok != Tok::End {
        return None;
    }
    let stats = ClassifyStats { work: s.tokens };
    facts.clear();
    let cols = cols.get(..n)?;
    if record(
        b,
        ctx,
        facts,
        select.start as usize,
        end,
        first,
        second,
        cols,
        where_from,
    )
    .is_none()
    {
        // A facts limit: the full classifier says what that means.
        facts.clear();
        return None;
    }
    Some(stats)
}

/// Records the facts of a flat statement, exactly as the full classifier would.
#[allow(clippy::too_many_arguments)]
fn record(
    b: &[u8],
    ctx: &ClassifyContext<'_>,
    facts: &mut Facts,
    start: usize,
    end: usize,
    first: T,
    second: Option<T>,
    cols: &[(u32, u32)],
    where_from: usize,
) -> Option<()> {
    let name = |facts: &mut Facts, t: T| -> Option<NameRef> {
        facts
            .push_ascii_lowercase(b, t.start as usize, t.end as usize)
            .ok()
            .flatten()
    };
    facts
        .begin_statement(u32::try_from(start).ok()?, u32::try_from(end).ok()?)
        .ok()?;
    // The relation, resolved as the full classifier does (`super::resolve::relation`):
    // qualified as written; an unqualified name that may be in more than one schema is
    // left to the full classifier, which checks each.
    let q = match second {
        Some(t) => QualifiedName {
            schema: name(facts, first)?,
            name: name(facts, t)?,
        },
        None => {
            let n = name(facts, first)?;
            let table_name = facts.name(n);
            let pg = table_name.starts_with("pg_");
            let cands = super::resolve::relation(
                ctx.search_path.iter().copied(),
                ctx.catalog,
                table_name,
                pg,
            )
            .ok()?;
            let schema = if cands.count() > 1 {
                return None;
            } else if cands.pg_catalog {
                facts.push_name("pg_catalog").ok()?
            } else if cands.path != 0 {
                let i = cands.path.trailing_zeros() as usize;
                facts.push_name(ctx.search_path.get(i)?).ok()?
            } else {
                NameRef::EMPTY
            };
            QualifiedName { schema, name: n }
        }
    };
    let table = second.unwrap_or(first);
    let access = facts
        .push_table(TableAccess {
            class: StatementClass::Select,
            name: q,
        })
        .ok()?;
    let bit = 1u64 << access;
    let table_name = b.get(table.start as usize..table.end as usize)?;
    for (k, &(start, end)) in cols.iter().enumerate() {
        let clause = if k < where_from {
            Clause::SelectList
        } else {
            Clause::Where
        };
        // A column named like the table is (also) a whole-row reference to it.
        let same = b
            .get(start as usize..end as usize)
            .is_some_and(|n| n.eq_ignore_ascii_case(table_name));
        let n = facts
            .push_ascii_lowercase(b, start as usize, end as usize)
            .ok()
            .flatten()?;
        facts
            .push_column(ColumnRef {
                name: ColumnName::Named(n),
                candidates: bit,
                whole_row: if same { bit } else { 0 },
                qualified: false,
                clause,
                output_alias: false,
                // A bare name of a flat SELECT's list (no DISTINCT, no ORDER BY).
                plain: k < where_from,
            })
            .ok()?;
    }
    let s = facts.current_mut()?;
    s.classes = ClassSet::single(StatementClass::Select);
    Some(())
}
