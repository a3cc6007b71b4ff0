//! The statement parser: classes, flags and facts of one top-level statement.
//!
//! What it is for: reading just enough of PostgreSQL's grammar to know every statement
//! class, every relation read or written (with the class of the access), every column
//! referenced (with its candidate tables) and every function called.
//!
//! What it must never do: guess. Every construct it does not recognise ends in
//! [`Fail`], which makes the statement `unknown` (the caller resets its facts). It never
//! allocates (scopes are fixed arrays, lookahead copies the `Copy` lexer) and never
//! recurses deeper than [`MAX_NESTING_LEVELS`].
//!
//! Reading of columns is deliberately conservative: an identifier that could be a column
//! is reported as one; an unqualified column's candidates are every base table visible at
//! that point, including those of enclosing queries (a correlated reference can reach
//! them, and without the catalog's column lists we cannot tell which level supplies it).

use super::ClassifyContext;
use super::keywords::Kw;
use super::lexer::{Kind, LexError, Lexer, Name, StrKind, Token};
use super::scope::{EntryKind, ScopeFull, Scopes};
use crate::class::{ClassSet, StatementClass};
use crate::facts::{
    Clause, ColumnName, ColumnRef, Facts, FunctionRef, NameRef, Overflow, QualifiedName,
    StatementFlags, TableAccess,
};

/// Nesting depth (parentheses, subqueries, expressions) before giving up: `unknown`.
pub const MAX_NESTING_LEVELS: u32 = 96;
/// Parts of a dotted name (`catalog.schema.table.column`).
pub const MAX_NAME_PARTS: usize = 4;
/// Settings whose value changes how PostgreSQL lexes later SQL (see `check_lexing_setting`).
const LEXING_SETTINGS: &[&str] = &["standard_conforming_strings", "client_encoding"];
/// Columns in a `COPY t (cols)` list.
pub const MAX_COPY_COLUMNS: usize = 256;

/// Why a statement could not be classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fail(pub &'static str);

impl From<LexError> for Fail {
    fn from(e: LexError) -> Self {
        Fail(e.0)
    }
}
impl From<Overflow> for Fail {
    fn from(_: Overflow) -> Self {
        Fail("facts capacity exceeded")
    }
}
impl From<ScopeFull> for Fail {
    fn from(_: ScopeFull) -> Self {
        Fail("scope capacity exceeded")
    }
}

type R<T> = Result<T, Fail>;

/// Functions with special argument syntax whose arguments we read leniently: every
/// identifier inside that is not a keyword is reported as a column (over-reporting is safe).
const SPECIAL_SYNTAX_FUNCS: &[Kw] = &[
    Kw::Xmlelement,
    Kw::Xmlforest,
    Kw::Xmlattributes,
    Kw::Xmlconcat,
    Kw::Xmlexists,
    Kw::Xmlparse,
    Kw::Xmlpi,
    Kw::Xmlroot,
    Kw::Xmlserialize,
    Kw::Xmltable,
    Kw::JsonObject,
    Kw::JsonArray,
    Kw::JsonObjectagg,
    Kw::JsonArrayagg,
    Kw::JsonQuery,
    Kw::JsonValue,
    Kw::JsonExists,
    Kw::JsonScalar,
    Kw::JsonSerialize,
    Kw::Json,
    Kw::JsonTable,
    Kw::MergeAction,
    Kw::Xmlnamespaces,
];
/// Function names PostgreSQL's grammar turns into `pg_catalog` calls when written
/// unqualified (`func_expr_common_subexpr` in gram.y), whatever the search path holds.
const GRAMMAR_FUNCTIONS: &[&str] = &["trim", "substring", "overlay", "position"];
/// Words inside the lenient functions above that are syntax, not columns.
const SPECIAL_SYNTAX_WORDS: &[Kw] = &[
    Kw::Name,
    Kw::Value,
    Kw::Passing,
    Kw::By,
    Kw::Ref,
    Kw::Columns,
    Kw::Path,
    Kw::Ordinality,
    Kw::Returning,
    Kw::Format,
    Kw::Encoding,
    Kw::Error,
    Kw::Empty,
    Kw::Keep,
    Kw::Omit,
    Kw::Quotes,
    Kw::Scalar,
    Kw::Wrapper,
    Kw::Conditional,
    Kw::Unconditional,
    Kw::Array,
    Kw::Object,
    Kw::Keys,
    Kw::Absent,
    Kw::Nested,
    Kw::Document,
    Kw::Content,
    Kw::Version,
    Kw::Standalone,
    Kw::Yes,
    Kw::No,
    Kw::Indent,
    Kw::Preserve,
    Kw::Strip,
    Kw::Whitespace,
    Kw::Xmlnamespaces,
    Kw::Exists,
    Kw::True,
    Kw::False,
    Kw::Unknown,
    Kw::Json,
    Kw::Text,
    Kw::Bytea,
    Kw::Varchar,
    Kw::Int,
    Kw::Integer,
    Kw::Jsonb,
    Kw::Xml,
    Kw::Boolean,
    Kw::Numeric,
    Kw::Character,
    Kw::Varying,
    Kw::Date,
    Kw::Time,
    Kw::Timestamp,
    Kw::Zone,
    Kw::Without,
    Kw::With,
    Kw::Plan,
    Kw::Utf8,
    Kw::String,
];

/// A dotted name as written: up to [`MAX_NAME_PARTS`] parts, optionally ending in `*`.
#[derive(Clone, Copy)]
struct Chain {
    /// The name tokens (normalised only where a name is needed).
    parts: [Token; MAX_NAME_PARTS],
    n: usize,
    star: bool,
    /// The keyword the first part spells (`Kw::None` if quoted or not a keyword).
    first_kw: Kw,
}

impl Chain {
    fn last(&self) -> Token {
        self.parts[self.n.saturating_sub(1)]
    }
}

pub struct Parser<'a, 'f, 'c> {
    sql: &'a str,
    /// The token window: tokens `base..base + toks.len()` of the statement (absolute
    /// indexes from the statement's first token). Filled by the statement splitter, which
    /// lexes each token once; extended (sliding past tokens already consumed) only for
    /// statements longer than the window, and re-lexed from a token's byte offset only
    /// when the parser backtracks to a token that slid out.
    toks: &'f mut super::Window,
    base: usize,
    /// Absolute index of the next token.
    cur: usize,
    /// Lexer positioned after the window's last token (unless that is `Eof`).
    lx: Lexer<'a>,
    /// End of the statement (byte offset): tokens at or after it are `Eof`.
    end: usize,
    pub facts: &'f mut Facts,
    ctx: &'c ClassifyContext<'c>,
    scopes: &'f mut Scopes,
    /// The search path in force for this statement (see `super::PathState`).
    path: &'f super::PathState,
    pub classes: ClassSet,
    pub flags: u32,
    pub prepared_name: NameRef,
    /// What this statement does to the search path of the statements after it.
    pub path_effect: super::PathEffect,
    /// Output names of the select lists being read, with their query level (for ORDER BY).
    outs: &'f mut OutputNames,
    n_outs: usize,
    /// Whether `outs` overflowed at some level (then ORDER BY names are all reported).
    outs_full: bool,
    /// For each remembered output name, the select-list column it names when that item
    /// is a plain output column (else `NO_COLUMN`): sorting or grouping by it uses the
    /// value (see `ColumnRef::plain`).
    outs_col: [u32; MAX_OUTPUT_NAMES],
    /// The query level whose select list is the statement's result (`NO_LEVEL`: none).
    output_level: u16,
    /// An ORDER BY / GROUP BY item by position: no column of the statement stays plain.
    pub unplain_all: bool,
    /// The plain column of the select-list item being read (`NO_COLUMN`: none).
    out_col: u32,
    depth: u32,
    /// Backtracks left for this statement (each may re-read part of it).
    backtracks: u32,
    /// A failure while fetching a token (tokens then read as `Eof`; the statement fails).
    token_error: Option<Fail>,
    /// Tokens lexed or consumed (including lookahead): the work budget unit.
    pub work: u64,
    /// The column list of the last [`Parser::alias`], if it had one (token indexes).
    alias_renamed: Option<(u32, u32)>,
}

/// A position in the token stream: absolute token index and that token's byte offset
/// (to re-lex from, should the token have slid out of the window).
#[derive(Clone, Copy, Debug)]
pub struct Pos {
    idx: usize,
    byte: u32,
}

/// Everything a failed alternative may have changed.
#[derive(Clone, Copy)]
struct Snapshot {
    pos: Pos,
    facts: [u32; 5],
    scopes: (usize, u16, usize),
    classes: ClassSet,
    flags: u32,
    depth: u32,
    n_outs: usize,
}

/// Opening parentheses looked through to tell `((SELECT …` from `((a + b) …`.
pub const MAX_PAREN_LOOKAHEAD_TOKENS: usize = 32;

/// Backtracking attempts per statement: bounds the re-reading to a constant factor.
pub const MAX_BACKTRACKS: u32 = 16;

/// `Parser::outs_col` of an output that is not a plain column.
const NO_COLUMN: u32 = u32::MAX;
/// `Parser::output_level` of a statement whose rows are not a query's select list.
const NO_LEVEL: u16 = u16::MAX;

/// Output names (aliases) remembered per statement for ORDER BY / GROUP BY.
pub const MAX_OUTPUT_NAMES: usize = 16;

/// The output names remembered while parsing (query level, name token).
pub type OutputNames = [(u16, Token); MAX_OUTPUT_NAMES];

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// A parser over the statement `start..end` whose first tokens the splitter left in
    /// `toks`; `resume` is the lexer after the last of them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        sql: &'a str,
        end: usize,
        toks: &'f mut super::Window,
        resume: Lexer<'a>,
        facts: &'f mut Facts,
        scopes: &'f mut Scopes,
        outs: &'f mut OutputNames,
        ctx: &'c ClassifyContext<'c>,
        path: &'f super::PathState,
    ) -> Self {
        scopes.reset();
        Parser {
            sql,
            toks,
            base: 0,
            cur: 0,
            lx: resume,
            end,
            facts,
            ctx,
            scopes,
            path,
            classes: ClassSet::EMPTY,
            flags: 0,
            prepared_name: NameRef::EMPTY,
            path_effect: super::PathEffect::None,
            // Entries at or after `n_outs` are never read: no need to clear them.
            outs,
            n_outs: 0,
            outs_full: false,
            outs_col: [NO_COLUMN; MAX_OUTPUT_NAMES],
            output_level: NO_LEVEL,
            unplain_all: false,
            out_col: NO_COLUMN,
            depth: 0,
            backtracks: MAX_BACKTRACKS,
            token_error: None,
            work: 0,
            alias_renamed: None,
        }
    }

    // ---------------------------------------------------------------- tokens

    fn eof(&self) -> Token {
        Token {
            kind: Kind::Eof,
            start: self.end as u32,
            end: self.end as u32,
            kw: Kw::None,
        }
    }

    /// Lexes the token after the window (tokens at or after the statement end are `Eof`).
    /// The splitter lexed the whole statement without error, so re-lexing it cannot fail;
    /// should it anyway, the error is kept (the statement fails) and `Eof` returned.
    fn lex_more(&mut self) -> Token {
        let before = self.lx.work;
        let mut err = None;
        let t = self.lx.next_or_eof(&mut err);
        self.work += self.lx.work.saturating_sub(before);
        if let Some(e) = err {
            self.token_error.get_or_insert(Fail(e.0));
            return self.eof();
        }
        if (t.start as usize) < self.end {
            t
        } else {
            self.eof()
        }
    }

    /// The token with absolute index `idx` (>= the current one). Infallible (so that
    /// tokens travel in registers): a failure is kept in `token_error` and reads as `Eof`.
    #[inline]
    fn tok(&mut self, idx: usize) -> Token {
        // `base` is 0 unless a long statement slid the window: `wrapping_sub` turns an
        // index before it into a huge offset, which the slow path reports.
        if let Some(t) = self.toks.get(idx.wrapping_sub(self.base)) {
            return t;
        }
        self.tok_slow(idx)
    }

    #[cold]
    #[inline(never)]
    fn tok_slow(&mut self, idx: usize) -> Token {
        if idx < self.base {
            self.token_error.get_or_insert(Fail("token window lost"));
            return self.eof();
        }
        loop {
            if let Some(t) = self.toks.get(idx - self.base) {
                return t;
            }
            if let Some(last) = self.toks.last()
                && last.kind == Kind::Eof
            {
                return last;
            }
            if self.toks.is_full() {
                // Slide: drop what was consumed. The window is far larger than any
                // lookahead, so this always frees room.
                let drop = self.cur.saturating_sub(self.base).min(self.toks.len());
                if drop == 0 {
                    self.token_error.get_or_insert(Fail("lookahead too long"));
                    return self.eof();
                }
                self.toks.drop_front(drop);
                self.base += drop;
            }
            let t = self.lex_more();
            if !self.toks.push(t) {
                self.token_error.get_or_insert(Fail("lookahead too long"));
                return self.eof();
            }
        }
    }

    #[inline]
    fn peek(&mut self) -> Token {
        self.tok(self.cur)
    }

    /// The token `n` places after the next one (`peek_n(0) == peek()`).
    #[inline]
    fn peek_n(&mut self, n: usize) -> Token {
        self.tok(self.cur + n)
    }

    #[inline]
    fn next(&mut self) -> Token {
        let t = self.tok(self.cur);
        self.work += 1;
        if t.kind != Kind::Eof {
            self.cur += 1;
        }
        t
    }

    fn snapshot(&mut self) -> Snapshot {
        Snapshot {
            pos: self.save(),
            facts: self.facts.current_mark(),
            scopes: self.scopes.mark(),
            classes: self.classes,
            flags: self.flags,
            depth: self.depth,
            n_outs: self.n_outs,
        }
    }
    fn rollback(&mut self, s: Snapshot) {
        self.restore(s.pos);
        self.facts.truncate_current(s.facts);
        self.scopes.restore(s.scopes);
        self.classes = s.classes;
        self.flags = s.flags;
        self.depth = s.depth;
        self.n_outs = s.n_outs;
    }

    /// Runs `first`; if it fails, undoes its effects and runs `second`. Only for
    /// constructs PostgreSQL's grammar resolves with more than one token of lookahead.
    fn either(
        &mut self,
        first: impl FnOnce(&mut Self) -> R<()>,
        second: impl FnOnce(&mut Self) -> R<()>,
    ) -> R<()> {
        if self.backtracks == 0 {
            return Err(Fail("too ambiguous"));
        }
        self.backtracks -= 1;
        let snap = self.snapshot();
        match first(self) {
            Ok(()) => Ok(()),
            Err(e) if e.0 == "facts capacity exceeded" => Err(e),
            Err(_) => {
                self.rollback(snap);
                second(self)
            }
        }
    }

    fn save(&mut self) -> Pos {
        let t = self.peek();
        Pos {
            idx: self.cur,
            byte: t.start,
        }
    }
    fn restore(&mut self, p: Pos) {
        if p.idx >= self.base {
            self.cur = p.idx;
        } else {
            // Slid out of the window: re-lex from the token's start (the lexer has no
            // state between tokens, so this yields the same tokens again).
            self.toks.clear();
            self.base = p.idx;
            self.cur = p.idx;
            self.lx = Lexer::at(self.sql, p.byte as usize);
        }
    }

    #[inline]
    fn at_kw(&mut self, kw: Kw) -> bool {
        self.peek().kw == kw
    }
    #[inline]
    fn at_kw_n(&mut self, n: usize, kw: Kw) -> bool {
        self.peek_n(n).kw == kw
    }
    #[inline]
    fn eat_kw(&mut self, kw: Kw) -> bool {
        if self.at_kw(kw) {
            self.next();
            return true;
        }
        false
    }
    fn expect_kw(&mut self, kw: Kw) -> R<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(Fail("unexpected token"))
        }
    }
    #[inline]
    fn at(&mut self, k: Kind) -> bool {
        self.peek().kind == k
    }
    #[inline]
    fn eat(&mut self, k: Kind) -> bool {
        if self.at(k) {
            self.next();
            return true;
        }
        false
    }
    fn expect(&mut self, k: Kind) -> R<Token> {
        let t = self.next();
        if t.kind == k {
            Ok(t)
        } else {
            Err(Fail("unexpected token"))
        }
    }
    fn at_end(&mut self) -> bool {
        matches!(self.peek().kind, Kind::Eof)
    }
    fn expect_end(&mut self) -> R<()> {
        if let Some(e) = self.token_error {
            return Err(e);
        }
        if self.at_end() {
            Ok(())
        } else {
            Err(Fail("statement not fully understood"))
        }
    }
    fn text(&self, t: &Token) -> &'a str {
        t.text(self.sql)
    }
    fn is_reserved(&self, t: &Token) -> bool {
        t.kw.is_reserved() || t.kw.is_type_func_name()
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING_LEVELS {
            return Err(Fail("nesting too deep"));
        }
        Ok(())
    }
    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Transaction control, for the search path's transaction semantics:
    /// `BEGIN`/`START TRANSACTION`, `COMMIT`/`END [AND [NO] CHAIN]`,
    /// `ROLLBACK`/`ABORT [AND [NO] CHAIN]`, `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`,
    /// `SAVEPOINT name`, `RELEASE [SAVEPOINT] name` (the name goes to `prepared_name`).
    fn transaction_control(&mut self, kw: Kw) -> R<()> {
        use super::PathEffect as E;
        self.next();
        let word = |p: &mut Self, w: &str| {
            let t = p.peek();
            let hit = t.kind == Kind::Ident && p.text(&t).eq_ignore_ascii_case(w);
            if hit {
                p.next();
            }
            hit
        };
        match kw {
            Kw::Begin | Kw::Start => self.path_effect = E::Begin,
            Kw::Savepoint => {
                let n = self.any_name_token()?;
                self.prepared_name = self.push(n.as_str())?;
                self.path_effect = E::Savepoint;
            }
            Kw::Release => {
                self.eat_kw(Kw::Savepoint);
                let n = self.any_name_token()?;
                self.prepared_name = self.push(n.as_str())?;
                self.path_effect = E::Release;
            }
            _ => {
                let commit = matches!(kw, Kw::Commit | Kw::End);
                // `COMMIT PREPARED 'gid'` / `ROLLBACK PREPARED 'gid'` end a prepared
                // transaction, not this session's (and cannot run inside one).
                if word(self, "prepared") {
                    return self.rest();
                }
                let _ = word(self, "work") || self.eat_kw(Kw::Transaction);
                if !commit && self.eat_kw(Kw::To) {
                    self.eat_kw(Kw::Savepoint);
                    let n = self.any_name_token()?;
                    self.prepared_name = self.push(n.as_str())?;
                    self.path_effect = E::RollbackTo;
                    return self.expect_end();
                }
                let mut chain = false;
                if self.eat_kw(Kw::And) {
                    let no = self.eat_kw(Kw::No);
                    if !word(self, "chain") {
                        return Err(Fail("expected CHAIN"));
                    }
                    chain = !no;
                }
                self.path_effect = if commit {
                    E::Commit { chain }
                } else {
                    E::Rollback { chain }
                };
                return self.expect_end();
            }
        }
        // BEGIN's modes (ISOLATION LEVEL …, READ ONLY) carry no facts.
        self.rest()
    }

    /// Skips to the end of the statement: for statements whose class is fully known from
    /// their first keywords and which carry no facts (transaction control, SHOW, …).
    fn rest(&mut self) -> R<()> {
        loop {
            if self.next().kind == Kind::Eof {
                return Ok(());
            }
        }
    }

    /// Skips a balanced `( … )` (the opening paren is next).
    fn skip_parens(&mut self) -> R<()> {
        self.expect(Kind::LParen)?;
        let mut depth = 1u32;
        loop {
            match self.next().kind {
                Kind::LParen => depth += 1,
                Kind::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Kind::Eof => return Err(Fail("unbalanced parentheses")),
                _ => {}
            }
        }
    }

    fn class(&mut self, c: StatementClass) {
        self.classes.insert(c);
    }

    // ---------------------------------------------------------------- names

    fn name_of(&self, t: &Token) -> R<Name> {
        Ok(Name::of_token(t, self.sql)?)
    }

    /// Any name token (keywords allowed): labels, option names, …
    fn any_name_token(&mut self) -> R<Name> {
        let t = self.next();
        if !t.is_name() {
            return Err(Fail("expected a name"));
        }
        self.name_of(&t)
    }

    /// `a[.b[.c[.d]]]` with an optional trailing `.*` (when `allow_star`).
    fn chain(&mut self, allow_star: bool) -> R<Chain> {
        let first = self.next();
        if !first.is_name() {
            return Err(Fail("expected a name"));
        }
        let mut c = Chain {
            parts: [first; MAX_NAME_PARTS],
            n: 1,
            star: false,
            first_kw: first.kw,
        };
        while self.at(Kind::Dot) {
            let t = self.peek_n(1);
            if t.is_op(self.sql, "*") && allow_star {
                self.next();
                self.next();
                c.star = true;
                break;
            }
            if !t.is_name() {
                break;
            }
            if c.n >= MAX_NAME_PARTS {
                return Err(Fail("name has too many parts"));
            }
            self.next();
            self.next();
            c.parts[c.n] = t;
            c.n += 1;
        }
        Ok(c)
    }

    fn push(&mut self, s: &str) -> R<NameRef> {
        Ok(self.facts.push_name(s)?)
    }

    /// Pushes the normalised name of a name token (plain ASCII identifiers are folded
    /// straight into the arena).
    #[inline]
    fn push_tok(&mut self, t: &Token) -> R<NameRef> {
        let (start, end) = (t.start as usize, t.end as usize);
        if t.kind == Kind::Ident
            && end.saturating_sub(start) <= super::lexer::MAX_IDENT_BYTES
            && let Some(n) = self
                .facts
                .push_ascii_lowercase(self.sql.as_bytes(), start, end)?
        {
            return Ok(n);
        }
        let n = self.name_of(t)?;
        self.push(n.as_str())
    }

    /// Schemas on the path in force for this statement (an error when that path is not
    /// known: see `super::PathState`).
    fn path_len(&self) -> R<usize> {
        match *self.path {
            super::PathState::Unknown => Err(Fail(
                "search_path was changed earlier in this string in a way not followed",
            )),
            super::PathState::Set { n, .. } => Ok(n),
            super::PathState::Original => Ok(self.ctx.search_path.len()),
        }
    }

    /// Schema `i` of the path in force.
    fn path_schema(&self, i: usize) -> &str {
        match *self.path {
            super::PathState::Set { names, n } if i < n => {
                names.get(i).map_or("", |&r| self.facts.name(r))
            }
            super::PathState::Set { .. } => "",
            _ => self.ctx.search_path.get(i).copied().unwrap_or(""),
        }
    }

    /// Schema `i` of the path in force, as a name in the facts arena.
    fn path_schema_ref(&mut self, i: usize) -> R<NameRef> {
        if let super::PathState::Set { names, n } = *self.path
            && i < n
        {
            return Ok(names.get(i).copied().unwrap_or(NameRef::EMPTY));
        }
        match self.ctx.search_path.get(i).copied() {
            Some(s) => self.push(s),
            None => Ok(NameRef::EMPTY),
        }
    }

    /// The schemas the relation `c` may be in (see `super::resolve::relation`), and its
    /// normalised name in the arena.
    fn relation_candidates(&mut self, c: &Chain) -> R<(super::resolve::Candidates, NameRef)> {
        let last = c.last();
        let n = self.path_len()?;
        let name_n = self.name_of(&last)?;
        let name = name_n.as_str();
        let cands = super::resolve::relation(
            (0..n).map(|i| self.path_schema(i)),
            self.ctx.catalog,
            name,
            name.starts_with("pg_"),
        )
        .map_err(|_| Fail("search_path has too many schemas to resolve a name through"))?;
        let r = self.push(name)?;
        Ok((cands, r))
    }

    /// The schema of candidate `k` of `cands`: `pg_catalog` first, then path positions.
    fn candidate_schema(&mut self, cands: super::resolve::Candidates, k: u32) -> R<NameRef> {
        let mut k = k;
        if cands.pg_catalog {
            if k == 0 {
                return self.push("pg_catalog");
            }
            k -= 1;
        }
        let mut bits = cands.path;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            if k == 0 {
                return self.path_schema_ref(i);
            }
            k -= 1;
            bits &= bits - 1;
        }
        Ok(NameRef::EMPTY)
    }

    /// Resolves a relation name like PostgreSQL: qualified names are taken as written;
    /// unqualified ones as `super::resolve::relation` says. A name that may be in several
    /// schemas of the path is refused here (the statement is `unknown`): only a read in
    /// FROM is checked under each of them ([`Parser::read_access`]).
    /// The path is the caller's, or the one an earlier `SET search_path` of the same
    /// string set; if that could not be followed exactly, the statement is `unknown`.
    fn resolve_table(&mut self, c: &Chain) -> R<QualifiedName> {
        if c.n >= 2 {
            let s = self.push_tok(&c.parts[c.n - 2])?;
            let n = self.push_tok(&c.last())?;
            return Ok(QualifiedName { schema: s, name: n });
        }
        if let Some(q) = self.resolve_simple(c)? {
            return Ok(q);
        }
        let (cands, name) = self.relation_candidates(c)?;
        if cands.count() > 1 {
            return Err(Fail(
                "an unqualified table the catalog does not declare may be in several schemas of the search path",
            ));
        }
        let schema = self.candidate_schema(cands, 0)?;
        Ok(QualifiedName { schema, name })
    }

    /// The commonest case, without a catalog lookup: a plain identifier, the caller's path
    /// of at most one schema, no catalog.
    fn resolve_simple(&mut self, c: &Chain) -> R<Option<QualifiedName>> {
        let last = c.last();
        if c.n == 1
            && last.kind == Kind::Ident
            && self.ctx.catalog.is_none()
            && self.ctx.search_path.len() <= 1
            && matches!(*self.path, super::PathState::Original)
            && let Some(b) = self
                .sql
                .as_bytes()
                .get(last.start as usize..last.end as usize)
            && b.is_ascii()
        {
            let schema = if b.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(b"pg_")) {
                Some("pg_catalog")
            } else {
                self.ctx.search_path.first().copied()
            };
            let s = match schema {
                Some(s) => self.push(s)?,
                None => NameRef::EMPTY,
            };
            let n = self.push_tok(&last)?;
            return Ok(Some(QualifiedName { schema: s, name: n }));
        }
        Ok(None)
    }

    /// Where a relation created by this statement goes: as written, else the first schema
    /// of the path (PostgreSQL's creation namespace).
    fn creation_name(&mut self, c: &Chain) -> R<QualifiedName> {
        if c.n >= 2 {
            return self.resolve_table(c);
        }
        self.path_len()?;
        let schema = self.path_schema_ref(0)?;
        let name = self.push_tok(&c.last())?;
        Ok(QualifiedName { schema, name })
    }

    /// A `select` read of the relation `c`: one access per schema it may resolve to (see
    /// `super::resolve::relation`). Returns the first access and the bits of all of them.
    fn read_access(&mut self, c: &Chain) -> R<(u8, QualifiedName, u64)> {
        if c.n >= 2 {
            let q = self.resolve_table(c)?;
            let r = self.push_access(StatementClass::Select, q)?;
            return Ok((r, q, 1u64 << r));
        }
        if let Some(q) = self.resolve_simple(c)? {
            let r = self.push_access(StatementClass::Select, q)?;
            return Ok((r, q, 1u64 << r));
        }
        let (cands, name) = self.relation_candidates(c)?;
        let mut first = None;
        let mut bits = 0u64;
        for k in 0..cands.count().max(1) {
            let schema = self.candidate_schema(cands, k)?;
            let q = QualifiedName { schema, name };
            let r = self.push_access(StatementClass::Select, q)?;
            bits |= 1u64 << r;
            first.get_or_insert((r, q));
        }
        let (r, q) = first.ok_or(Fail("no access"))?;
        Ok((r, q, bits))
    }

    fn push_access(&mut self, class: StatementClass, name: QualifiedName) -> R<u8> {
        let idx = self.facts.push_table(TableAccess { class, name })?;
        Ok(idx as u8)
    }

    /// Records a call of the function named by `c` (unqualified: empty schema, see
    /// [`FunctionRef`]).
    ///
    /// An unqualified name is resolved as `super::resolve::function` says: a built-in (or
    /// a grammar form such as `trim(…)`, always PostgreSQL's) is recorded unqualified; any
    /// other name once under each schema of the path, where PostgreSQL looks for it.
    fn push_function(&mut self, c: &Chain) -> R<()> {
        if c.n >= 2 {
            let s = self.push_tok(&c.parts[c.n - 2])?;
            let n = self.push_tok(&c.last())?;
            self.facts
                .push_function(FunctionRef::call(QualifiedName { schema: s, name: n }))?;
            return Ok(());
        }
        let t = c.last();
        let n = self.push_tok(&t)?;
        let grammar = t.kind == Kind::Ident
            && (SPECIAL_SYNTAX_FUNCS.contains(&t.kw)
                || GRAMMAR_FUNCTIONS.contains(&self.facts.name(n)));
        let cands = if grammar {
            super::resolve::Candidates {
                pg_catalog: true,
                path: 0,
            }
        } else {
            let len = match self.path_len() {
                Ok(len) => len,
                // A built-in stays PostgreSQL's whatever the path; anything else needs it.
                Err(_) if super::resolve::is_builtin_function(self.facts.name(n)) => 0,
                Err(e) => return Err(e),
            };
            super::resolve::function(
                (0..len).map(|i| self.path_schema(i)),
                self.ctx.catalog,
                self.facts.name(n),
            )
            .map_err(|_| Fail("search_path has too many schemas to resolve a name through"))?
        };
        if cands.pg_catalog || cands.count() == 0 {
            self.facts.push_function(FunctionRef::call(QualifiedName {
                schema: NameRef::EMPTY,
                name: n,
            }))?;
        }
        let mut bits = cands.path;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let s = self.path_schema_ref(i)?;
            self.facts
                .push_function(FunctionRef::call(QualifiedName { schema: s, name: n }))?;
        }
        Ok(())
    }

    /// Attribute notation: `x.f` or `(expr).f` calls `f(x)` when `f` is not a column (see
    /// [`FunctionRef::unless_column`]). Recorded for each path schema whose catalog entry
    /// declares a function `f` (built-ins take no row argument the parser could be
    /// reading); `column`: the column reference `x.f`, if this is one.
    fn push_attribute_function(&mut self, t: &Token, column: Option<usize>) -> R<()> {
        let Some(cat) = self.ctx.catalog else {
            return Ok(());
        };
        let name = self.name_of(t)?;
        if super::resolve::is_builtin_function(name.as_str()) {
            return Ok(());
        }
        let len = self.path_len()?;
        let unless_column = match column {
            Some(c) => u16::try_from(c).map_err(|_| Fail("too many columns"))?,
            None => FunctionRef::ALWAYS,
        };
        let mut n = None;
        for i in 0..len.min(super::resolve::MAX_RESOLVED_PATH) {
            if !cat.has_function(self.path_schema(i), name.as_str()) {
                continue;
            }
            let schema = self.path_schema_ref(i)?;
            let fname = match n {
                Some(r) => r,
                None => *n.insert(self.push(name.as_str())?),
            };
            self.facts.push_function(FunctionRef {
                name: QualifiedName {
                    schema,
                    name: fname,
                },
                unless_column,
            })?;
        }
        Ok(())
    }

    fn push_function_str(&mut self, name: &str) -> R<()> {
        let s = self.push("pg_catalog")?;
        let n = self.push(name)?;
        self.facts
            .push_function(FunctionRef::call(QualifiedName { schema: s, name: n }))?;
        Ok(())
    }

    // ---------------------------------------------------------------- columns

    /// The read access of scope entry `i`, created on first use for DML targets.
    fn entry_read(&mut self, i: usize) -> R<Option<u8>> {
        let Some(kind) = self.scopes.get(i).map(|e| e.kind) else {
            return Ok(None);
        };
        match kind {
            EntryKind::Derived | EntryKind::Join { .. } => Ok(None),
            EntryKind::Base { read: Some(r), .. } => Ok(Some(r)),
            EntryKind::Base {
                read: None, name, ..
            } => {
                let r = self.push_access(StatementClass::Select, name)?;
                self.scopes.set_read(i, r);
                Ok(Some(r))
            }
        }
    }

    /// The accesses entry `i` reads columns through: one for a base table, the joined
    /// tables' for a join alias, none for a derived table.
    fn entry_bits(&mut self, i: usize) -> R<u64> {
        if let Some(EntryKind::Join { reads }) = self.scopes.get(i).map(|e| e.kind) {
            return Ok(reads);
        }
        self.base_bits(i)
    }

    /// The accesses of entry `i` if it is a base table (its read and its alternatives).
    fn base_bits(&mut self, i: usize) -> R<u64> {
        let alts = match self.scopes.get(i).map(|e| e.kind) {
            Some(EntryKind::Base { alts, .. }) => alts,
            _ => 0,
        };
        Ok(self.entry_read(i)?.map_or(0, |r| 1u64 << r) | alts)
    }

    /// `FOR UPDATE|SHARE` of entry `i`: a `lock` access of its table (of each schema its
    /// name may resolve to) if it is a base table.
    fn lock_entry(&mut self, i: usize) -> R<()> {
        let Some(EntryKind::Base { name, alts, .. }) = self.scopes.get(i).map(|e| e.kind) else {
            return Ok(());
        };
        self.push_access(StatementClass::Lock, name)?;
        let mut bits = alts;
        while bits != 0 {
            let k = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(a) = self.facts.current_table(k) {
                self.push_access(StatementClass::Lock, a.name)?;
            }
        }
        Ok(())
    }

    /// Whether the name token `t` is one of the names of the alias column list whose
    /// tokens are `list` (`(` to after `)`). A name not in the list is the table's own
    /// column of that name (PostgreSQL renames only the first columns).
    fn in_alias_list(&mut self, list: (u32, u32), t: &Token) -> R<bool> {
        let name = self.name_of(t)?;
        for k in (list.0 as usize + 1)..(list.1 as usize).saturating_sub(1) {
            let u = self.tok(k);
            if u.is_name() && self.name_of(&u)? == name {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every base table visible here (all levels: see the module docs).
    fn visible_bases(&mut self) -> R<u64> {
        let mut m = 0u64;
        for i in 0..self.scopes.len() {
            m |= self.base_bits(i)?;
        }
        Ok(m)
    }

    /// Base tables of the current level (what `*` expands to).
    fn level_bases(&mut self) -> R<u64> {
        let mut m = 0u64;
        let level = self.scopes.level;
        for i in 0..self.scopes.len() {
            if self.scopes.get(i).is_some_and(|e| e.level == level) {
                m |= self.base_bits(i)?;
            }
        }
        Ok(m)
    }

    fn push_column(
        &mut self,
        name: ColumnName,
        candidates: u64,
        whole_row: u64,
        qualified: bool,
        clause: Clause,
    ) -> R<()> {
        self.facts.push_column(ColumnRef {
            name,
            candidates,
            whole_row,
            qualified,
            clause,
            output_alias: false,
            // An INSERT's target column is written: it reads nothing.
            plain: clause == Clause::InsertColumns,
        })?;
        Ok(())
    }

    /// A column reference written as `c` (no function call, no typed literal).
    fn column_ref(&mut self, c: &Chain, clause: Clause) -> R<()> {
        if c.n == 1 && !c.star {
            let tok = c.parts[0];
            let candidates = self.visible_bases()?;
            let mut whole = 0u64;
            let mut renamed = 0u64;
            for i in 0..self.scopes.len() {
                let Some(e) = self.scopes.get(i) else { break };
                let named = e.name.eq_token(&tok, self.sql);
                let ren = match e.renamed {
                    Some(list) => self.in_alias_list(list, &tok)?,
                    None => false,
                };
                if named || ren {
                    let b = self.entry_bits(i)?;
                    if named {
                        whole |= b;
                    }
                    if ren {
                        renamed |= b;
                    }
                }
            }
            if renamed != 0 {
                // The name is one an alias column list gave a column of these tables by
                // position: which column is not known here, so every one is read.
                self.push_column(ColumnName::All, renamed, 0, false, clause)?;
            }
            let n = self.push_tok(&c.parts[0])?;
            return self.push_column(ColumnName::Named(n), candidates, whole, false, clause);
        }
        // Qualified: find the qualifier among the visible FROM items. `a.b.c` is
        // `schema.table.column` or `table.column.field`: try both.
        let (qual_idx, col): (Option<usize>, Option<Token>) = if c.star {
            (self.scopes.find(&self.name_of(&c.last())?), None)
        } else {
            let mut found = (None, Some(c.last()));
            let mut k = c.n - 1;
            while k > 0 {
                if let Some(i) = self.scopes.find(&self.name_of(&c.parts[k - 1])?) {
                    found = (Some(i), Some(c.parts[k]));
                    break;
                }
                k -= 1;
            }
            found
        };
        let candidates = match qual_idx {
            Some(i) => self.entry_bits(i)?,
            // Not a FROM item we know: be conservative, any visible table.
            None => self.visible_bases()?,
        };
        // Through an alias column list (`x(a, b)`), `x.a` is the table's column at a
        // position, not the one called `a`: every column is read.
        let list = qual_idx
            .and_then(|i| self.scopes.get(i))
            .and_then(|e| e.renamed);
        let renamed = match (list, col) {
            (Some(list), Some(t)) => self.in_alias_list(list, &t)?,
            _ => false,
        };
        let name = match col {
            Some(t) if !renamed => ColumnName::Named(self.push_tok(&t)?),
            _ => ColumnName::All,
        };
        self.push_column(name, candidates, 0, true, clause)?;
        if let (Some(t), false) = (col, renamed) {
            let idx = self.facts.current_columns_mut().len().saturating_sub(1);
            self.push_attribute_function(&t, Some(idx))?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- statements

    /// One top-level statement, to its end.
    pub fn statement(&mut self) -> R<()> {
        let t = self.peek();
        if t.kind == Kind::LParen {
            self.class(StatementClass::Select);
            self.query()?;
            return self.expect_end();
        }
        if t.kind != Kind::Ident {
            return Err(Fail("statement does not start with a keyword"));
        }
        match t.kw {
            Kw::Select
            | Kw::Values
            | Kw::Table
            | Kw::With
            | Kw::Insert
            | Kw::Update
            | Kw::Delete
            | Kw::Merge => {
                self.output_level = self.scopes.level.saturating_add(1);
                let c = self.dml_or_query()?;
                self.class(c);
            }
            Kw::Truncate => self.truncate()?,
            Kw::Copy => self.copy()?,
            Kw::Lock => self.lock()?,
            Kw::Explain => self.explain()?,
            Kw::Prepare => {
                if self.at_kw_n(1, Kw::Transaction) {
                    self.class(StatementClass::Transaction);
                    // Ends the transaction; its settings are kept as by COMMIT
                    // (PostgreSQL's PrepareTransaction runs AtEOXact_GUC(true, …)).
                    self.path_effect = super::PathEffect::Commit { chain: false };
                    self.rest()?;
                } else {
                    self.prepare()?;
                }
            }
            Kw::Execute => self.execute()?,
            Kw::Deallocate => {
                self.next();
                self.class(StatementClass::Prepare);
                self.flags |= StatementFlags::DEALLOCATES;
                self.eat_kw(Kw::Prepare);
                if !self.eat_kw(Kw::All) {
                    let n = self.any_name_token()?;
                    self.prepared_name = self.push(n.as_str())?;
                }
            }
            Kw::Declare => self.declare()?,
            Kw::Fetch | Kw::Move | Kw::Close => self.cursor_use(t.kw)?,
            Kw::Begin
            | Kw::Start
            | Kw::Commit
            | Kw::End
            | Kw::Rollback
            | Kw::Abort
            | Kw::Savepoint
            | Kw::Release => {
                self.class(StatementClass::Transaction);
                self.transaction_control(t.kw)?;
            }
            Kw::Set => self.set()?,
            Kw::Reset => self.reset()?,
            Kw::Show => {
                self.class(StatementClass::Session);
                self.rest()?;
            }
            Kw::Discard => {
                self.next();
                self.class(StatementClass::Session);
                if self.at_kw(Kw::All) {
                    self.flags |= StatementFlags::RESETS_SESSION;
                    self.path_effect = super::PathEffect::Reset;
                }
                self.rest()?;
            }
            Kw::Listen | Kw::Unlisten => self.listen(t.kw)?,
            Kw::Notify => {
                self.class(StatementClass::Notify);
                self.rest()?;
            }
            Kw::Call => self.call()?,
            Kw::Do => {
                self.class(StatementClass::Call);
                self.rest()?;
            }
            Kw::Grant | Kw::Revoke | Kw::Reassign => {
                self.class(StatementClass::Dcl);
                self.rest()?;
            }
            Kw::Create => self.create()?,
            Kw::Alter => self.alter()?,
            Kw::Drop => self.drop()?,
            Kw::Comment | Kw::Security | Kw::Import => {
                self.class(StatementClass::Ddl);
                self.rest()?;
            }
            Kw::Refresh => {
                // REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH [NO] DATA]
                self.next();
                self.expect_kw(Kw::Materialized)?;
                self.expect_kw(Kw::View)?;
                self.eat_kw(Kw::Concurrently);
                self.class(StatementClass::SelectInto);
                let c = self.chain(false)?;
                let q = self.resolve_table(&c)?;
                self.push_access(StatementClass::SelectInto, q)?;
                self.rest()?;
            }
            Kw::Vacuum | Kw::Analyze | Kw::Analyse | Kw::Cluster => self.maintenance()?,
            Kw::Reindex | Kw::Checkpoint | Kw::Load => {
                self.class(StatementClass::Utility);
                self.next();
                if t.is(Kw::Reindex) {
                    // REINDEX [(opts)] TABLE [CONCURRENTLY] name
                    if self.at(Kind::LParen) {
                        self.skip_parens()?;
                    }
                    if self.eat_kw(Kw::Table) {
                        self.eat_kw(Kw::Concurrently);
                        let c = self.chain(false)?;
                        let q = self.resolve_table(&c)?;
                        self.push_access(StatementClass::Utility, q)?;
                    }
                }
                self.rest()?;
            }
            _ => return Err(Fail("unknown statement keyword")),
        }
        self.expect_end()?;
        if self.classes.contains(StatementClass::SelectInto) {
            // SELECT … INTO, CREATE TABLE AS (also under EXPLAIN ANALYZE): every read
            // also feeds the new table, so it is also a `select-into` access.
            self.mirror_reads(0, 0, StatementClass::SelectInto)?;
        }
        Ok(())
    }

    /// `VACUUM|ANALYZE [(opts)] [FULL|FREEZE|VERBOSE|ANALYZE…] [name [(cols)], …]` and
    /// `CLUSTER [(opts)] [VERBOSE] [name [USING index]]`: utility accesses on the tables.
    fn maintenance(&mut self) -> R<()> {
        self.class(StatementClass::Utility);
        let cluster = self.at_kw(Kw::Cluster);
        self.next();
        if self.at(Kind::LParen) {
            self.skip_parens()?;
        }
        while [Kw::Full, Kw::Freeze, Kw::Verbose, Kw::Analyze, Kw::Analyse]
            .contains(&self.peek().kw)
        {
            self.next();
        }
        while self.peek().is_name() {
            let mut c = self.chain(false)?;
            if cluster && self.eat_kw(Kw::On) {
                // Old syntax `CLUSTER index ON table`.
                c = self.chain(false)?;
            }
            let q = self.resolve_table(&c)?;
            self.push_access(StatementClass::Utility, q)?;
            if self.at(Kind::LParen) {
                self.skip_parens()?;
            }
            if cluster && self.eat_kw(Kw::Using) {
                self.any_name_token()?;
            }
            if !self.eat(Kind::Comma) {
                break;
            }
        }
        Ok(())
    }

    /// `[WITH …] SELECT/VALUES/TABLE/INSERT/UPDATE/DELETE/MERGE …` — a statement that may
    /// stand inside EXPLAIN, PREPARE, DECLARE, COPY (…), CREATE TABLE AS and CTEs.
    /// Returns the class of the main statement.
    fn dml_or_query(&mut self) -> R<StatementClass> {
        self.enter()?;
        self.scopes.push_level();
        let cte_mark = self.scopes.cte_mark();
        let outs_mark = self.n_outs;
        let r = self.dml_or_query_inner();
        self.n_outs = outs_mark;
        self.scopes.cte_truncate(cte_mark);
        self.scopes.pop_level();
        self.leave();
        r
    }

    fn dml_or_query_inner(&mut self) -> R<StatementClass> {
        if self.at_kw(Kw::With) {
            self.with_clause()?;
        }
        let t = self.peek();
        let class = match t.kw {
            Kw::Insert => {
                self.insert()?;
                StatementClass::Insert
            }
            Kw::Update => {
                self.update()?;
                StatementClass::Update
            }
            Kw::Delete => {
                self.delete()?;
                StatementClass::Delete
            }
            Kw::Merge => {
                self.merge()?;
                StatementClass::Merge
            }
            _ => {
                // The WITH clause was already read: parse the body in this level.
                self.set_expr()?;
                self.query_tail()?;
                StatementClass::Select
            }
        };
        Ok(class)
    }

    /// A SELECT-ish query with its own level (subqueries, derived tables, INSERT sources).
    fn query(&mut self) -> R<()> {
        self.enter()?;
        self.scopes.push_level();
        let cte_mark = self.scopes.cte_mark();
        let outs_mark = self.n_outs;
        let r = (|| {
            if self.at_kw(Kw::With) {
                self.with_clause()?;
            }
            self.set_expr()?;
            self.query_tail()
        })();
        self.n_outs = outs_mark;
        self.scopes.cte_truncate(cte_mark);
        self.scopes.pop_level();
        self.leave();
        r
    }

    /// Whether `( … )` at the current position starts a subquery: `Some(true)` for
    /// `(SELECT`, `(VALUES`, `(WITH`, `(TABLE`; `None` for `((…` that reaches one of those
    /// (a parenthesised query, or an expression/join that begins with one: ambiguous).
    fn paren_starts_query(&mut self) -> R<Option<bool>> {
        let mut n = 1;
        let mut k = 1;
        loop {
            let t = self.peek_n(k);
            k += 1;
            if t.kind == Kind::LParen {
                n += 1;
                if n > MAX_PAREN_LOOKAHEAD_TOKENS {
                    return Ok(Some(false));
                }
                continue;
            }
            let q = t.is(Kw::Select) || t.is(Kw::Values) || t.is(Kw::With) || t.is(Kw::Table);
            return Ok(match (q, n) {
                (false, _) => Some(false),
                (true, 1) => Some(true),
                (true, _) => None,
            });
        }
    }

    /// `WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED] (stmt) [SEARCH …] [CYCLE …], …`
    fn with_clause(&mut self) -> R<()> {
        self.expect_kw(Kw::With)?;
        let recursive = self.eat_kw(Kw::Recursive);
        if recursive {
            // In WITH RECURSIVE every CTE of the list is visible in every body, earlier
            // ones included (forward and mutual references): register all names first.
            let start = self.save();
            loop {
                let name = self.any_name_token()?;
                self.scopes.add_cte(name)?;
                if self.at(Kind::LParen) {
                    self.skip_parens()?;
                }
                self.expect_kw(Kw::As)?;
                if self.eat_kw(Kw::Not) {
                    self.expect_kw(Kw::Materialized)?;
                } else {
                    self.eat_kw(Kw::Materialized);
                }
                self.skip_parens()?;
                self.skip_search_cycle()?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.restore(start);
        }
        loop {
            let name = self.any_name_token()?;
            if self.at(Kind::LParen) {
                self.skip_parens()?;
            }
            self.expect_kw(Kw::As)?;
            if self.eat_kw(Kw::Not) {
                self.expect_kw(Kw::Materialized)?;
            } else {
                self.eat_kw(Kw::Materialized);
            }
            self.expect(Kind::LParen)?;
            let class = self.dml_or_query()?;
            if class != StatementClass::Select {
                self.flags |= StatementFlags::DATA_MODIFYING_CTE;
                self.class(class);
            }
            self.expect(Kind::RParen)?;
            if !recursive {
                // A plain CTE is visible after its definition only (in its own body the
                // name is a table).
                self.scopes.add_cte(name)?;
            }
            self.skip_search_cycle()?;
            if !self.eat(Kind::Comma) {
                break;
            }
        }
        Ok(())
    }

    /// `SEARCH {BREADTH|DEPTH} FIRST BY cols SET col` / `CYCLE cols SET col [TO v DEFAULT
    /// v] USING col`: names of the CTE's own output columns, skipped.
    fn skip_search_cycle(&mut self) -> R<()> {
        while self.at_kw(Kw::Search) || self.at_kw(Kw::Cycle) {
            loop {
                let t = self.peek();
                if matches!(t.kind, Kind::Eof | Kind::Comma | Kind::LParen)
                    && !(t.kind == Kind::Comma && self.in_search_list())
                {
                    break;
                }
                if [
                    Kw::Select,
                    Kw::Insert,
                    Kw::Update,
                    Kw::Delete,
                    Kw::Merge,
                    Kw::Values,
                    Kw::Table,
                ]
                .contains(&t.kw)
                {
                    break;
                }
                self.next();
            }
        }
        Ok(())
    }

    /// Inside SEARCH/CYCLE, a comma separates column names when a name follows and the
    /// token after that is not `AS`/`(` (which would start the next CTE).
    fn in_search_list(&mut self) -> bool {
        let a = self.peek_n(1);
        let b = self.peek_n(2);
        a.is_name() && !b.is(Kw::As) && b.kind != Kind::LParen
    }

    /// `term ((UNION|INTERSECT|EXCEPT) [ALL|DISTINCT] term)*`
    fn set_expr(&mut self) -> R<()> {
        let mark = self.facts.current_columns_mut().len();
        let mut set_op = false;
        loop {
            self.select_term()?;
            if self.eat_kw(Kw::Union) || self.eat_kw(Kw::Intersect) || self.eat_kw(Kw::Except) {
                set_op = true;
                if !self.eat_kw(Kw::All) {
                    self.eat_kw(Kw::Distinct);
                }
                continue;
            }
            if set_op {
                // A set operation compares the rows, and its result names no table.
                for c in self.facts.current_columns_mut().iter_mut().skip(mark) {
                    c.plain = false;
                }
            }
            return Ok(());
        }
    }

    fn select_term(&mut self) -> R<()> {
        let t = self.peek();
        if t.kind == Kind::LParen {
            self.next();
            self.query()?;
            self.expect(Kind::RParen)?;
            return Ok(());
        }
        if t.is(Kw::Select) {
            return self.simple_select();
        }
        if t.is(Kw::Values) {
            self.next();
            loop {
                self.expect(Kind::LParen)?;
                self.expr_list_until_rparen(Clause::Other)?;
                if !self.eat(Kind::Comma) {
                    return Ok(());
                }
            }
        }
        if t.is(Kw::Table) {
            // `TABLE name` = `SELECT * FROM name`.
            self.next();
            self.eat_kw(Kw::Only);
            let c = self.chain(false)?;
            self.eat_op("*");
            let (_, _, reads) = self.read_access(&c)?;
            self.push_column(ColumnName::All, reads, 0, true, Clause::SelectList)?;
            if self.scopes.level == self.output_level {
                self.mark_last_plain();
            }
            return Ok(());
        }
        Err(Fail("expected SELECT, VALUES, TABLE or ("))
    }

    fn eat_op(&mut self, op: &str) -> bool {
        let t = self.peek();
        if t.is_op(self.sql, op) {
            self.next();
            return true;
        }
        false
    }

    /// `ORDER BY …`, `LIMIT`, `OFFSET`, `FETCH`, `FOR UPDATE …`, in any order.
    fn query_tail(&mut self) -> R<()> {
        loop {
            if self.at_kw(Kw::Order) {
                self.next();
                self.expect_kw(Kw::By)?;
                self.order_by_list()?;
            } else if self.eat_kw(Kw::Limit) {
                if !self.eat_kw(Kw::All) {
                    self.expr(Clause::Other)?;
                }
                if self.eat(Kind::Comma) {
                    // LIMIT a, b: PostgreSQL rejects it, so do we.
                    return Err(Fail("LIMIT #,# syntax"));
                }
            } else if self.eat_kw(Kw::Offset) {
                self.expr(Clause::Other)?;
                if !self.eat_kw(Kw::Row) {
                    self.eat_kw(Kw::Rows);
                }
            } else if self.eat_kw(Kw::Fetch) {
                if !self.eat_kw(Kw::First) {
                    self.expect_kw(Kw::Next)?;
                }
                if !(self.at_kw(Kw::Row) || self.at_kw(Kw::Rows)) {
                    self.expr(Clause::Other)?;
                }
                if !self.eat_kw(Kw::Row) {
                    self.expect_kw(Kw::Rows)?;
                }
                if !self.eat_kw(Kw::Only) {
                    self.expect_kw(Kw::With)?;
                    self.expect_kw(Kw::Ties)?;
                }
            } else if self.at_kw(Kw::For) {
                self.next();
                // FOR {UPDATE | NO KEY UPDATE | SHARE | KEY SHARE} [OF names] [NOWAIT | SKIP LOCKED]
                if self.eat_kw(Kw::No) {
                    self.expect_kw(Kw::Key)?;
                    self.expect_kw(Kw::Update)?;
                } else if self.eat_kw(Kw::Key) || !self.eat_kw(Kw::Update) {
                    self.expect_kw(Kw::Share)?;
                }
                // Row locks need UPDATE privilege in PostgreSQL: policy sees them as `lock`
                // accesses on the tables locked.
                self.class(StatementClass::Lock);
                if self.eat_kw(Kw::Of) {
                    loop {
                        let c = self.chain(false)?;
                        if let Some(i) = self.scopes.find(&self.name_of(&c.last())?) {
                            self.lock_entry(i)?;
                        }
                        if !self.eat(Kind::Comma) {
                            break;
                        }
                    }
                } else {
                    let level = self.scopes.level;
                    for i in 0..self.scopes.len() {
                        if self.scopes.get(i).is_some_and(|e| e.level == level) {
                            self.lock_entry(i)?;
                        }
                    }
                }
                if !self.eat_kw(Kw::Nowait) && self.eat_kw(Kw::Skip) {
                    self.expect_kw(Kw::Locked)?;
                }
            } else {
                return Ok(());
            }
        }
    }

    /// `expr [ASC|DESC|USING op] [NULLS FIRST|LAST], …`
    fn sort_list(&mut self, clause: Clause) -> R<()> {
        self.sort_items(clause, false)
    }

    /// A query's `ORDER BY` list. PostgreSQL (`findTargetlistEntrySQL92`) reads an item
    /// that is a bare name as the select list's output column of that name first (an
    /// alias, or the name a column or function target gets): such an item references
    /// no table column (the target's own columns are reported where it is written).
    fn order_by_list(&mut self) -> R<()> {
        self.sort_items(Clause::OrderBy, true)
    }

    fn sort_items(&mut self, clause: Clause, outputs: bool) -> R<()> {
        loop {
            if outputs && matches!(self.peek().kind, Kind::Number | Kind::LParen) {
                // `ORDER BY 2` sorts by a select-list item: whichever it is, it is used
                // (PostgreSQL drops the parentheses of `ORDER BY (2)`, `(e)`).
                self.unplain_all = true;
            }
            if !(outputs && self.eat_output_name()?) {
                self.expr(clause)?;
            }
            if !self.eat_kw(Kw::Asc) && !self.eat_kw(Kw::Desc) && self.eat_kw(Kw::Using) {
                self.operator_name()?;
            }
            if self.eat_kw(Kw::Nulls) && !self.eat_kw(Kw::First) {
                self.expect_kw(Kw::Last)?;
            }
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    /// At a bare name that is an output name of the current query level's select list,
    /// and ends the sort item: consumes it.
    fn eat_output_name(&mut self) -> R<bool> {
        let t = self.peek();
        if !t.is_name() || (t.kind == Kind::Ident && t.kw.is_reserved()) || self.outs_full {
            return Ok(false);
        }
        let after = self.peek_n(1);
        let ends = matches!(after.kind, Kind::Comma | Kind::Eof | Kind::RParen)
            || [
                Kw::Asc,
                Kw::Desc,
                Kw::Using,
                Kw::Nulls,
                Kw::Limit,
                Kw::Offset,
                Kw::Fetch,
                Kw::For,
            ]
            .contains(&after.kw);
        if !ends {
            return Ok(false);
        }
        let level = self.scopes.level;
        let name = self.name_of(&t)?;
        for i in 0..self.n_outs.min(MAX_OUTPUT_NAMES) {
            let (l, o) = self.outs[i];
            if l == level && self.name_of(&o)? == name {
                self.next();
                self.unplain_output(i);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The output `i` is sorted or grouped by: its column's value is used.
    fn unplain_output(&mut self, i: usize) {
        let c = self.outs_col.get(i).copied().unwrap_or(NO_COLUMN);
        if let Some(col) = self.facts.current_columns_mut().get_mut(c as usize) {
            col.plain = false;
        }
    }

    /// The column just pushed is a plain one (see `ColumnRef::plain`).
    fn mark_last_plain(&mut self) {
        if let Some(c) = self.facts.current_columns_mut().last_mut() {
            c.plain = true;
        }
    }

    /// Whether tokens `start..end` are a bare column reference: `name(.name)*`, optionally
    /// ending in `.*`.
    fn is_bare_chain(&mut self, start: usize, end: usize) -> bool {
        if end <= start || !self.tok(start).is_name() {
            return false;
        }
        let mut i = start + 1;
        while i + 1 < end && self.tok(i).kind == Kind::Dot {
            let t = self.tok(i + 1);
            if !(t.is_name() || t.is_op(self.sql, "*")) {
                return false;
            }
            i += 2;
        }
        i == end
    }

    /// Remembers an output name of the select list being read (see `order_by_list`).
    fn record_output(&mut self, t: Token) {
        match self.outs.get_mut(self.n_outs) {
            Some(slot) => {
                *slot = (self.scopes.level, t);
                if let Some(c) = self.outs_col.get_mut(self.n_outs) {
                    *c = self.out_col;
                }
                self.n_outs += 1;
            }
            // Too many to remember: ORDER BY names are then all reported (fail closed),
            // and no column stays plain (a sort by alias could not be told).
            None => {
                self.outs_full = true;
                self.unplain_all = true;
            }
        }
    }

    /// The output name PostgreSQL gives a target without an alias, if it is a plain
    /// (possibly qualified) column reference or a function call (`FigureColname`).
    fn implicit_output_name(&mut self, start: usize, end: usize) -> Option<Token> {
        let first = self.tok(start);
        if !first.is_name() || end <= start {
            return None;
        }
        // name(.name)*
        let mut i = start + 1;
        let mut last = first;
        while i + 1 < end && self.tok(i).kind == Kind::Dot && self.tok(i + 1).is_name() {
            last = self.tok(i + 1);
            i += 2;
        }
        if i == end {
            return Some(last);
        }
        // name(.name)*( … ) as the whole target
        if self.tok(i).kind == Kind::LParen && self.tok(end - 1).kind == Kind::RParen {
            let mut depth = 0u32;
            for j in i..end {
                match self.tok(j).kind {
                    Kind::LParen => depth += 1,
                    Kind::RParen => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 && j + 1 != end {
                            return None;
                        }
                    }
                    _ => {}
                }
            }
            return Some(last);
        }
        None
    }

    /// An operator after `USING`: `<` or `OPERATOR(schema.op)`.
    fn operator_name(&mut self) -> R<()> {
        let t = self.next();
        if t.kind == Kind::Op {
            return Ok(());
        }
        if t.is(Kw::Operator) {
            self.skip_parens()?;
            return Ok(());
        }
        Err(Fail("expected an operator"))
    }

    /// Stops (without consuming) at a clause keyword at parenthesis depth 0: used to read
    /// FROM before the target list that precedes it, as PostgreSQL's scoping requires.
    fn skip_to_clause(&mut self, stops: &[Kw]) -> R<()> {
        let mut depth = 0u32;
        let mut prev_distinct = false;
        let mut prev_within = false;
        let mut prev_collation = false;
        loop {
            let t = self.peek();
            match t.kind {
                Kind::Eof | Kind::Semicolon => return Ok(()),
                Kind::LParen | Kind::LBracket => depth += 1,
                Kind::RParen | Kind::RBracket => {
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                Kind::Ident if depth == 0 && t.kw != Kw::None => {
                    let w = t.kw;
                    // `a IS [NOT] DISTINCT FROM b` is not a FROM clause.
                    // `WITH [NO] DATA` ends CREATE TABLE AS's query.
                    if w == Kw::With {
                        let n = self.peek_n(1);
                        if n.is(Kw::No) || n.is(Kw::Data) {
                            return Ok(());
                        }
                    }
                    if stops.contains(&w)
                        && !(prev_distinct && w == Kw::From)
                        && !(prev_within && w == Kw::Group)
                        && !(prev_collation && w == Kw::For)
                    {
                        return Ok(());
                    }
                }
                _ => {}
            }
            prev_distinct = t.is(Kw::Distinct);
            prev_within = t.is(Kw::Within);
            prev_collation = t.is(Kw::Collation);
            self.next();
        }
    }

    const SELECT_CLAUSES: &'static [Kw] = &[
        Kw::Into,
        Kw::From,
        Kw::Where,
        Kw::Group,
        Kw::Having,
        Kw::Window,
        Kw::Union,
        Kw::Intersect,
        Kw::Except,
        Kw::Order,
        Kw::Limit,
        Kw::Offset,
        Kw::Fetch,
        Kw::For,
        Kw::Returning,
        Kw::On,
    ];

    fn simple_select(&mut self) -> R<()> {
        self.expect_kw(Kw::Select)?;
        let mut distinct_on = None;
        // DISTINCT compares the values, INTO stores them: no item is a plain output.
        let mut plain = self.scopes.level == self.output_level;
        if self.eat_kw(Kw::Distinct) {
            plain = false;
            if self.at_kw(Kw::On) {
                self.next();
                distinct_on = Some(self.save());
                self.skip_parens()?;
            }
        } else {
            self.eat_kw(Kw::All);
        }
        let targets = self.save();
        self.skip_to_clause(Self::SELECT_CLAUSES)?;
        let targets_end = self.peek().start;
        if self.at_kw(Kw::Into) {
            plain = false;
            self.select_into_clause()?;
        }
        if self.eat_kw(Kw::From) {
            self.table_list()?;
        }
        let after_from = self.save();
        // Now the FROM items are in scope: DISTINCT ON and the target list.
        if let Some(d) = distinct_on {
            self.restore(d);
            self.expect(Kind::LParen)?;
            self.expr_list_until_rparen(Clause::OrderBy)?;
        }
        self.restore(targets);
        if self.peek().start < targets_end {
            self.target_list(Clause::SelectList, plain)?;
        }
        if self.peek().start != targets_end {
            return Err(Fail("target list not understood"));
        }
        self.restore(after_from);
        if self.eat_kw(Kw::Where) {
            self.expr(Clause::Where)?;
        }
        if self.at_kw(Kw::Group) {
            self.next();
            self.expect_kw(Kw::By)?;
            if !self.eat_kw(Kw::All) {
                self.eat_kw(Kw::Distinct);
            }
            self.grouping_list()?;
        }
        if self.eat_kw(Kw::Having) {
            self.expr(Clause::Having)?;
        }
        if self.eat_kw(Kw::Window) {
            loop {
                self.any_name_token()?;
                self.expect_kw(Kw::As)?;
                self.window_spec()?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `INTO [TEMPORARY|TEMP|UNLOGGED] [TABLE] name`
    fn select_into_clause(&mut self) -> R<()> {
        self.expect_kw(Kw::Into)?;
        let _ = self.eat_kw(Kw::Temporary) || self.eat_kw(Kw::Temp) || self.eat_kw(Kw::Unlogged);
        self.eat_kw(Kw::Table);
        let c = self.chain(false)?;
        let q = self.creation_name(&c)?;
        self.push_access(StatementClass::SelectInto, q)?;
        self.class(StatementClass::SelectInto);
        Ok(())
    }

    fn grouping_list(&mut self) -> R<()> {
        loop {
            self.grouping_item()?;
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    fn grouping_item(&mut self) -> R<()> {
        if self.at(Kind::LParen) && self.peek_n(1).kind == Kind::RParen {
            self.next();
            self.next();
            return Ok(());
        }
        if (self.at_kw(Kw::Rollup) || self.at_kw(Kw::Cube)) && self.peek_n(1).kind == Kind::LParen {
            // Their items may be select-list positions or aliases too.
            self.unplain_all = true;
            self.next();
            self.expect(Kind::LParen)?;
            self.expr_list_until_rparen(Clause::GroupBy)?;
            return Ok(());
        }
        if self.at_kw(Kw::Grouping) && self.at_kw_n(1, Kw::Sets) {
            self.unplain_all = true;
            self.next();
            self.next();
            self.expect(Kind::LParen)?;
            self.enter()?;
            if !self.at(Kind::RParen) {
                self.grouping_list()?;
            }
            self.leave();
            self.expect(Kind::RParen)?;
            return Ok(());
        }
        if matches!(self.peek().kind, Kind::Number | Kind::LParen) {
            // `GROUP BY 1` groups by a select-list item (and so may `(1)`, `(e)`).
            self.unplain_all = true;
        }
        let alias = self.at_group_output_name()?;
        let mark = self.facts.current_columns_mut().len();
        self.expr(Clause::GroupBy)?;
        if alias {
            for c in self.facts.current_columns_mut().iter_mut().skip(mark) {
                c.output_alias = true;
            }
        }
        Ok(())
    }

    /// At a bare name that is a whole GROUP BY item and equals an output name of the
    /// current select list (not consumed: PostgreSQL prefers an input column of that name,
    /// which the decider resolves with the catalog — see `ColumnRef::output_alias`).
    fn at_group_output_name(&mut self) -> R<bool> {
        let t = self.peek();
        if !t.is_name() || (t.kind == Kind::Ident && t.kw.is_reserved()) || self.outs_full {
            return Ok(false);
        }
        let after = self.peek_n(1);
        let ends = matches!(
            after.kind,
            Kind::Comma | Kind::Eof | Kind::RParen | Kind::Semicolon
        ) || [
            Kw::Having,
            Kw::Window,
            Kw::Order,
            Kw::Limit,
            Kw::Offset,
            Kw::Fetch,
            Kw::For,
            Kw::Union,
            Kw::Intersect,
            Kw::Except,
        ]
        .contains(&after.kw);
        if !ends {
            return Ok(false);
        }
        let level = self.scopes.level;
        let name = self.name_of(&t)?;
        for i in 0..self.n_outs.min(MAX_OUTPUT_NAMES) {
            let (l, o) = self.outs[i];
            if l == level && self.name_of(&o)? == name {
                self.unplain_output(i);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `( [name] [PARTITION BY …] [ORDER BY …] [frame] )`
    fn window_spec(&mut self) -> R<()> {
        self.expect(Kind::LParen)?;
        let t = self.peek();
        if t.is_name()
            && ![Kw::Partition, Kw::Order, Kw::Range, Kw::Rows, Kw::Groups].contains(&t.kw)
        {
            self.next();
        }
        if self.eat_kw(Kw::Partition) {
            self.expect_kw(Kw::By)?;
            loop {
                self.expr(Clause::Window)?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
        }
        if self.eat_kw(Kw::Order) {
            self.expect_kw(Kw::By)?;
            self.sort_list(Clause::Window)?;
        }
        if self.eat_kw(Kw::Range) || self.eat_kw(Kw::Rows) || self.eat_kw(Kw::Groups) {
            if self.eat_kw(Kw::Between) {
                self.frame_bound()?;
                self.expect_kw(Kw::And)?;
                self.frame_bound()?;
            } else {
                self.frame_bound()?;
            }
            if self.eat_kw(Kw::Exclude) {
                if self.eat_kw(Kw::Current) {
                    self.expect_kw(Kw::Row)?;
                } else if self.eat_kw(Kw::No) {
                    self.expect_kw(Kw::Others)?;
                } else if !self.eat_kw(Kw::Group) {
                    self.expect_kw(Kw::Ties)?;
                }
            }
        }
        self.expect(Kind::RParen)?;
        Ok(())
    }

    fn frame_bound(&mut self) -> R<()> {
        if self.eat_kw(Kw::Unbounded) {
            if !self.eat_kw(Kw::Preceding) {
                self.expect_kw(Kw::Following)?;
            }
            return Ok(());
        }
        if self.at_kw(Kw::Current) && self.at_kw_n(1, Kw::Row) {
            self.next();
            self.next();
            return Ok(());
        }
        self.expr(Clause::Window)?;
        if !self.eat_kw(Kw::Preceding) {
            self.expect_kw(Kw::Following)?;
        }
        Ok(())
    }

    /// `item [AS label | label], …` (select list, RETURNING). `plain`: this is the
    /// statement's result, whose bare column items are plain output columns.
    fn target_list(&mut self, clause: Clause, plain: bool) -> R<()> {
        loop {
            if self.peek().is_op(self.sql, "*") {
                self.next();
                let m = self.level_bases()?;
                self.push_column(ColumnName::All, m, 0, false, clause)?;
                if plain {
                    self.mark_last_plain();
                }
            } else {
                let start = self.cur;
                let mark = self.facts.current_columns_mut().len();
                self.expr(clause)?;
                let end = self.cur;
                self.out_col = NO_COLUMN;
                if plain
                    && self.facts.current_columns_mut().len() == mark + 1
                    && self.is_bare_chain(start, end)
                {
                    self.mark_last_plain();
                    self.out_col = mark as u32;
                }
                let outputs = clause == Clause::SelectList;
                if self.eat_kw(Kw::As) {
                    let t = self.peek();
                    self.any_name_token()?;
                    if outputs {
                        self.record_output(t);
                    }
                } else {
                    let t = self.peek();
                    if t.kind == Kind::QuotedIdent
                        || (t.kind == Kind::Ident
                            && !Self::SELECT_CLAUSES.contains(&t.kw)
                            && !t.is(Kw::As)
                            && !t.is(Kw::With))
                    {
                        // A bare column label.
                        self.next();
                        if outputs {
                            self.record_output(t);
                        }
                    } else if outputs
                        && self.base <= start
                        && let Some(n) = self.implicit_output_name(start, end)
                    {
                        self.record_output(n);
                    }
                }
            }
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    // ---------------------------------------------------------------- FROM

    fn table_list(&mut self) -> R<()> {
        loop {
            self.table_item()?;
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    fn table_item(&mut self) -> R<()> {
        self.enter()?;
        let mark = self.scopes.len();
        self.table_primary()?;
        while self.join_step(mark)? {}
        self.leave();
        Ok(())
    }

    /// Whether a join operator (`[NATURAL] [INNER|LEFT|RIGHT|FULL [OUTER]] JOIN`, `CROSS
    /// JOIN`) starts here.
    fn at_join(&mut self) -> bool {
        let t = self.peek();
        [
            Kw::Join,
            Kw::Cross,
            Kw::Natural,
            Kw::Inner,
            Kw::Left,
            Kw::Right,
            Kw::Full,
        ]
        .contains(&t.kw)
    }

    /// One join operator, its right operand and its qualifier. PostgreSQL's grammar lets
    /// the right operand be a join itself whose qualifier comes first
    /// (`a LEFT JOIN b FULL JOIN c ON x ON y`), so the right side takes further joins
    /// until this join's ON/USING.
    fn join_step(&mut self, left_mark: usize) -> R<bool> {
        if !self.at_join() {
            return Ok(false);
        }
        self.enter()?;
        if self.eat_kw(Kw::Cross) {
            self.expect_kw(Kw::Join)?;
            self.table_primary()?;
            self.leave();
            return Ok(true);
        }
        let natural = self.eat_kw(Kw::Natural);
        if !self.eat_kw(Kw::Inner)
            && (self.eat_kw(Kw::Left) || self.eat_kw(Kw::Right) || self.eat_kw(Kw::Full))
        {
            self.eat_kw(Kw::Outer);
        }
        self.expect_kw(Kw::Join)?;
        let right_mark = self.scopes.len();
        self.table_primary()?;
        if natural {
            // NATURAL JOIN compares the columns both sides have. With a side whose columns
            // are not a table's (a subquery, a function), any column of the other side
            // may be one of them.
            let (left, left_opaque) = self.join_side(left_mark, right_mark)?;
            let (right, right_opaque) = self.join_side(right_mark, self.scopes.len())?;
            if left_opaque || right_opaque {
                self.push_column(ColumnName::All, left | right, 0, false, Clause::Join)?;
            } else {
                self.push_column(ColumnName::Common { right }, left, 0, false, Clause::Join)?;
            }
            self.leave();
            return Ok(true);
        }
        while !self.at_kw(Kw::On) && !self.at_kw(Kw::Using) && self.join_step(right_mark)? {}
        if self.eat_kw(Kw::On) {
            self.expr(Clause::Join)?;
        } else if self.eat_kw(Kw::Using) {
            // `USING (c)` compares the column `c` of each side.
            self.expect(Kind::LParen)?;
            let (left, _) = self.join_side(left_mark, right_mark)?;
            let (right, _) = self.join_side(right_mark, self.scopes.len())?;
            loop {
                let n = self.any_name_token()?;
                let r = self.push(n.as_str())?;
                self.push_column(ColumnName::Named(r), left | right, 0, false, Clause::Join)?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
            if self.eat_kw(Kw::As) {
                let a = self.any_name_token()?;
                self.scopes.add(a, EntryKind::Derived)?;
            }
        } else {
            return Err(Fail("JOIN without ON/USING"));
        }
        self.leave();
        Ok(true)
    }

    /// One side of a join: the base-table accesses of the scope entries `from..to` of this
    /// level, and whether the side also has columns that are not a table's (a derived
    /// table or function, a table renamed by an alias column list).
    fn join_side(&mut self, from: usize, to: usize) -> R<(u64, bool)> {
        let level = self.scopes.level;
        let (mut bits, mut opaque) = (0u64, false);
        for i in from..to {
            let Some(e) = self.scopes.get(i) else { break };
            if e.level != level {
                continue;
            }
            let (kind, renamed) = (e.kind, e.renamed);
            match kind {
                EntryKind::Base { .. } => bits |= self.base_bits(i)?,
                // A join alias's tables are entries of this side already.
                EntryKind::Join { .. } => {}
                EntryKind::Derived => opaque = true,
            }
            opaque |= renamed.is_some();
        }
        Ok((bits, opaque))
    }

    /// `[AS] alias [(cols)]`; returns the alias if there is one. `no_bare` lists words that
    /// must not be taken as a bare alias in this position (e.g. `SET` after UPDATE's target).
    fn alias(&mut self, no_bare: &[Kw]) -> R<Option<Name>> {
        let name = if self.eat_kw(Kw::As) {
            Some(self.any_name_token()?)
        } else {
            let t = self.peek();
            let bare = match t.kind {
                Kind::QuotedIdent | Kind::UnicodeIdent => true,
                Kind::Ident => !self.is_reserved(&t) && !no_bare.contains(&t.kw),
                _ => false,
            };
            if bare {
                self.next();
                Some(self.name_of(&t)?)
            } else {
                None
            }
        };
        self.alias_renamed = None;
        if name.is_some() && self.at(Kind::LParen) {
            let start = self.cur as u32;
            self.skip_parens()?;
            self.alias_renamed = Some((start, self.cur as u32));
        }
        Ok(name)
    }

    fn table_primary(&mut self) -> R<()> {
        self.eat_kw(Kw::Lateral);
        let t = self.peek();
        if t.kind == Kind::LParen {
            // `(query) alias` or `(joined tables) [alias]`; `((…` can be either.
            fn derived(p: &mut Parser<'_, '_, '_>) -> R<()> {
                p.next();
                p.query()?;
                p.expect(Kind::RParen)?;
                if let Some(a) = p.alias(&[])? {
                    p.scopes.add(a, EntryKind::Derived)?;
                }
                Ok(())
            }
            fn joined(p: &mut Parser<'_, '_, '_>) -> R<()> {
                p.next();
                let mark = p.scopes.len();
                p.table_item()?;
                p.expect(Kind::RParen)?;
                if let Some(a) = p.alias(&[])? {
                    // `j.c` is a column of one of the joined tables: checked on all of
                    // them (a join alias is not a derived table checked inside).
                    let renamed = p.alias_renamed;
                    let mut reads = 0u64;
                    for i in mark..p.scopes.len() {
                        reads |= p.entry_bits(i)?;
                    }
                    let i = p.scopes.add(a, EntryKind::Join { reads })?;
                    p.scopes.set_renamed(i, renamed);
                }
                Ok(())
            }
            return match self.paren_starts_query()? {
                Some(true) => derived(self),
                Some(false) => joined(self),
                None => self.either(derived, joined),
            };
        }
        if t.is(Kw::Rows) && self.at_kw_n(1, Kw::From) {
            self.next();
            self.next();
            self.expect(Kind::LParen)?;
            loop {
                let c = self.chain(false)?;
                self.function_call(&c, Clause::Other)?;
                if self.eat_kw(Kw::As) {
                    self.skip_parens()?;
                }
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
            self.func_alias()?;
            return Ok(());
        }
        if t.is(Kw::Only) {
            self.next();
            let paren = self.eat(Kind::LParen);
            let c = self.chain(false)?;
            if paren {
                self.expect(Kind::RParen)?;
            }
            return self.table_ref(&c);
        }
        if !t.is_name() {
            return Err(Fail("expected a FROM item"));
        }
        let c = self.chain(false)?;
        if self.at(Kind::LParen) {
            self.function_call(&c, Clause::Other)?;
            self.func_alias()?;
            return Ok(());
        }
        if c.n == 1 && c.first_kw.is_reserved() {
            return Err(Fail("reserved keyword in FROM"));
        }
        self.table_ref(&c)
    }

    /// `[WITH ORDINALITY] [[AS] alias [(coldefs)] | AS (coldefs)]` after a function in FROM.
    fn func_alias(&mut self) -> R<()> {
        if self.at_kw(Kw::With) && self.at_kw_n(1, Kw::Ordinality) {
            self.next();
            self.next();
        }
        if self.at_kw(Kw::As) && self.peek_n(1).kind == Kind::LParen {
            self.next();
            self.skip_parens()?;
            return Ok(());
        }
        if let Some(a) = self.alias(&[])? {
            self.scopes.add(a, EntryKind::Derived)?;
        }
        Ok(())
    }

    /// A relation in FROM (or a CTE reference): `name [*] [alias] [TABLESAMPLE …]`.
    fn table_ref(&mut self, c: &Chain) -> R<()> {
        self.eat_op("*");
        let alias = self.alias(&[])?;
        let renamed = self.alias_renamed;
        let tname = self.name_of(&c.last())?;
        let entry_name = alias.unwrap_or(tname);
        if c.n == 1 && self.scopes.is_cte(&tname) {
            self.scopes.add(entry_name, EntryKind::Derived)?;
        } else {
            let (r, q, reads) = self.read_access(c)?;
            let i = self.scopes.add(
                entry_name,
                EntryKind::Base {
                    read: Some(r),
                    name: q,
                    alts: reads & !(1u64 << r),
                },
            )?;
            self.scopes.set_renamed(i, renamed);
        }
        if self.eat_kw(Kw::Tablesample) {
            let m = self.chain(false)?;
            self.function_call(&m, Clause::Other)?;
            if self.eat_kw(Kw::Repeatable) {
                self.expect(Kind::LParen)?;
                self.expr_list_until_rparen(Clause::Other)?;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- expressions

    /// `expr, expr, … )` — consumes the closing paren. Empty lists are allowed.
    fn expr_list_until_rparen(&mut self, clause: Clause) -> R<()> {
        if self.eat(Kind::RParen) {
            return Ok(());
        }
        loop {
            self.expr(clause)?;
            if !self.eat(Kind::Comma) {
                break;
            }
        }
        self.expect(Kind::RParen)?;
        Ok(())
    }

    /// One expression. Stops (without consuming) at a token that cannot continue it at
    /// this depth; the caller checks that it is what it expects.
    fn expr(&mut self, clause: Clause) -> R<()> {
        self.enter()?;
        let r = self.expr_inner(clause, false);
        self.leave();
        r
    }

    fn expr_inner(&mut self, clause: Clause, lenient: bool) -> R<()> {
        let mut operand = false;
        let mut case_depth = 0u32;
        loop {
            let t = self.peek();
            match t.kind {
                Kind::Eof
                | Kind::Semicolon
                | Kind::Comma
                | Kind::RParen
                | Kind::RBracket
                | Kind::Colon
                | Kind::DotDot => break,
                Kind::Other => return Err(Fail("unexpected character")),
                Kind::Op => {
                    let op = self.text(&t);
                    if op == "=>" || op == ":=" {
                        break;
                    }
                    self.next();
                    if op == "*" && !operand && !lenient {
                        return Err(Fail("unexpected *"));
                    }
                    operand = false;
                }
                Kind::Typecast => {
                    self.next();
                    self.type_name()?;
                    operand = true;
                }
                Kind::Dot => {
                    if !operand {
                        return Err(Fail("unexpected ."));
                    }
                    self.next();
                    let f = self.next();
                    if !(f.is_name() || f.is_op(self.sql, "*")) {
                        return Err(Fail("expected a field name"));
                    }
                    if f.is_name() {
                        // `(expr).f`: a field, or the call `f(expr)`.
                        self.push_attribute_function(&f, None)?;
                    }
                }
                Kind::LBracket => {
                    self.next();
                    self.enter()?;
                    loop {
                        if self.eat(Kind::RBracket) {
                            break;
                        }
                        if self.eat(Kind::Colon) || self.eat(Kind::Comma) {
                            continue;
                        }
                        if self.at(Kind::LBracket) {
                            // Nested array literal `[[1,2],[3,4]]` after ARRAY.
                            self.expr_inner(clause, lenient)?;
                            continue;
                        }
                        let before = self.peek().start;
                        self.expr(clause)?;
                        if self.peek().start == before {
                            return Err(Fail("bad subscript"));
                        }
                    }
                    self.leave();
                    operand = true;
                }
                Kind::LParen => {
                    if operand {
                        break;
                    }
                    self.paren_expr(clause, lenient)?;
                    operand = true;
                }
                Kind::Str(_) | Kind::Number | Kind::Param => {
                    if operand {
                        break;
                    }
                    self.next();
                    operand = true;
                }
                Kind::Ident | Kind::QuotedIdent | Kind::UnicodeIdent => {
                    if operand {
                        if t.kind != Kind::Ident {
                            if lenient {
                                self.next();
                                continue;
                            }
                            break;
                        }
                        match t.kw {
                            Kw::And
                            | Kw::Or
                            | Kw::Like
                            | Kw::Ilike
                            | Kw::In
                            | Kw::Overlaps
                            | Kw::Escape
                            | Kw::Not => {
                                self.next();
                                operand = false;
                            }
                            Kw::Between => {
                                self.next();
                                let _ = self.eat_kw(Kw::Symmetric) || self.eat_kw(Kw::Asymmetric);
                                operand = false;
                            }
                            Kw::Similar => {
                                self.next();
                                self.expect_kw(Kw::To)?;
                                operand = false;
                            }
                            Kw::Is => {
                                self.next();
                                operand = self.is_tail()?;
                            }
                            Kw::Isnull | Kw::Notnull => {
                                self.next();
                            }
                            Kw::At => {
                                self.next();
                                if !self.eat_kw(Kw::Local) {
                                    self.expect_kw(Kw::Time)?;
                                    self.expect_kw(Kw::Zone)?;
                                    operand = false;
                                }
                            }
                            Kw::Collate => {
                                self.next();
                                self.chain(false)?;
                            }
                            Kw::Operator if self.peek_n(1).kind == Kind::LParen => {
                                self.next();
                                self.skip_parens()?;
                                operand = false;
                            }
                            Kw::When | Kw::Then | Kw::Else if case_depth > 0 => {
                                self.next();
                                operand = false;
                            }
                            Kw::End if case_depth > 0 => {
                                self.next();
                                case_depth -= 1;
                            }
                            _ if lenient => {
                                // Special-syntax functions: unknown words are treated as
                                // possible columns (over-reporting is safe).
                                operand = false;
                                continue_lenient(self, clause)?;
                            }
                            _ => break,
                        }
                    } else {
                        match self.operand_word(clause, &mut case_depth, lenient)? {
                            Some(o) => operand = o,
                            None => break,
                        }
                    }
                }
            }
        }
        if case_depth > 0 {
            return Err(Fail("unterminated CASE"));
        }
        return Ok(());

        fn continue_lenient(p: &mut Parser<'_, '_, '_>, clause: Clause) -> R<()> {
            let t = p.peek();
            if SPECIAL_SYNTAX_WORDS.contains(&t.kw) || p.is_reserved(&t) {
                p.next();
                return Ok(());
            }
            let c = p.chain(true)?;
            if p.at(Kind::LParen) {
                return p.function_call(&c, clause);
            }
            p.column_ref(&c, clause)
        }
    }

    /// After `IS`: returns whether an operand was completed.
    fn is_tail(&mut self) -> R<bool> {
        self.eat_kw(Kw::Not);
        if self.eat_kw(Kw::Distinct) {
            self.expect_kw(Kw::From)?;
            return Ok(false);
        }
        for w in [Kw::Null, Kw::True, Kw::False, Kw::Unknown, Kw::Document] {
            if self.eat_kw(w) {
                return Ok(true);
            }
        }
        let _ = self.eat_kw(Kw::Nfc)
            || self.eat_kw(Kw::Nfd)
            || self.eat_kw(Kw::Nfkc)
            || self.eat_kw(Kw::Nfkd);
        if self.eat_kw(Kw::Normalized) {
            return Ok(true);
        }
        if self.eat_kw(Kw::Json) {
            let _ = self.eat_kw(Kw::Value)
                || self.eat_kw(Kw::Array)
                || self.eat_kw(Kw::Object)
                || self.eat_kw(Kw::Scalar);
            if self.eat_kw(Kw::With) || self.eat_kw(Kw::Without) {
                self.expect_kw(Kw::Unique)?;
                self.eat_kw(Kw::Keys);
            }
            return Ok(true);
        }
        if self.eat_kw(Kw::Of) {
            self.skip_parens()?;
            return Ok(true);
        }
        Err(Fail("unknown IS predicate"))
    }

    /// A word in operand position. `Some(operand_complete)` when consumed, `None` when it
    /// ends the expression.
    fn operand_word(
        &mut self,
        clause: Clause,
        case_depth: &mut u32,
        lenient: bool,
    ) -> R<Option<bool>> {
        let t = self.peek();
        let next = self.peek_n(1);
        if t.kind == Kind::Ident {
            let paren = next.kind == Kind::LParen;
            match t.kw {
                Kw::Null
                | Kw::True
                | Kw::False
                | Kw::CurrentDate
                | Kw::CurrentRole
                | Kw::CurrentUser
                | Kw::SessionUser
                | Kw::User
                | Kw::SystemUser
                | Kw::CurrentCatalog
                | Kw::Default => {
                    self.next();
                    return Ok(Some(true));
                }
                Kw::CurrentTime
                | Kw::CurrentTimestamp
                | Kw::Localtime
                | Kw::Localtimestamp
                | Kw::CurrentSchema => {
                    self.next();
                    if paren {
                        self.skip_parens()?;
                    }
                    return Ok(Some(true));
                }
                Kw::Not | Kw::Distinct | Kw::Variadic | Kw::In | Kw::Like | Kw::Ilike => {
                    self.next();
                    return Ok(Some(false));
                }
                Kw::All if !paren => {
                    self.next();
                    return Ok(Some(false));
                }
                Kw::Between => {
                    self.next();
                    let _ = self.eat_kw(Kw::Symmetric) || self.eat_kw(Kw::Asymmetric);
                    return Ok(Some(false));
                }
                Kw::Similar => {
                    self.next();
                    self.expect_kw(Kw::To)?;
                    return Ok(Some(false));
                }
                Kw::Case => {
                    self.next();
                    *case_depth += 1;
                    return Ok(Some(false));
                }
                Kw::When | Kw::Then | Kw::Else if *case_depth > 0 => {
                    self.next();
                    return Ok(Some(false));
                }
                Kw::Cast | Kw::Treat if paren => {
                    self.next();
                    self.next();
                    self.expr(clause)?;
                    self.expect_kw(Kw::As)?;
                    self.type_name()?;
                    self.expect(Kind::RParen)?;
                    return Ok(Some(true));
                }
                Kw::Exists if paren => {
                    self.next();
                    self.paren_expr(clause, lenient)?;
                    return Ok(Some(true));
                }
                Kw::Array if paren || next.kind == Kind::LBracket => {
                    self.next();
                    if paren {
                        self.paren_expr(clause, lenient)?;
                    } else {
                        self.array_literal(clause)?;
                    }
                    return Ok(Some(true));
                }
                Kw::Any
                | Kw::Some
                | Kw::All
                | Kw::Row
                | Kw::Grouping
                | Kw::Coalesce
                | Kw::Greatest
                | Kw::Least
                | Kw::Nullif
                    if paren =>
                {
                    self.next();
                    self.paren_expr(clause, lenient)?;
                    return Ok(Some(true));
                }
                Kw::Extract if paren => {
                    // EXTRACT(field FROM expr): the field is a keyword or string.
                    self.next();
                    self.next();
                    self.push_function_str("extract")?;
                    let f = self.next();
                    if !(f.is_name() || f.is_string()) {
                        return Err(Fail("bad EXTRACT"));
                    }
                    self.expect_kw(Kw::From)?;
                    self.expr(clause)?;
                    self.expect(Kind::RParen)?;
                    return Ok(Some(true));
                }
                Kw::Normalize if paren => {
                    self.next();
                    self.next();
                    self.push_function_str("normalize")?;
                    self.expr(clause)?;
                    if self.eat(Kind::Comma) {
                        self.any_name_token()?;
                    }
                    self.expect(Kind::RParen)?;
                    return Ok(Some(true));
                }
                Kw::Interval if next.is_string() || paren => {
                    self.next();
                    if paren {
                        self.skip_parens()?;
                    }
                    if !self.peek().is_string() {
                        return Err(Fail("bad interval literal"));
                    }
                    self.next();
                    self.interval_fields()?;
                    return Ok(Some(true));
                }
                Kw::Timestamp | Kw::Time
                    if paren || next.is_string() || next.is(Kw::With) || next.is(Kw::Without) =>
                {
                    // Typed literal: TIME[STAMP] [(p)] [WITH[OUT] TIME ZONE] 'literal'.
                    self.next();
                    if paren {
                        self.skip_parens()?;
                    }
                    if self.eat_kw(Kw::With) || self.eat_kw(Kw::Without) {
                        self.expect_kw(Kw::Time)?;
                        self.expect_kw(Kw::Zone)?;
                    }
                    if !self.peek().is_string() {
                        return Err(Fail("bad typed literal"));
                    }
                    self.next();
                    return Ok(Some(true));
                }
                Kw::Double if next.is(Kw::Precision) => {
                    self.next();
                    self.next();
                    if !self.peek().is_string() {
                        return Err(Fail("bad typed literal"));
                    }
                    self.next();
                    return Ok(Some(true));
                }
                Kw::Collation if next.is(Kw::For) => {
                    // COLLATION FOR (expr)
                    self.next();
                    self.next();
                    self.push_function_str("pg_collation_for")?;
                    self.paren_expr(clause, lenient)?;
                    return Ok(Some(true));
                }
                Kw::Operator if paren => {
                    // Prefix operator `OPERATOR(schema.-) x`.
                    self.next();
                    self.skip_parens()?;
                    return Ok(Some(false));
                }
                _ => {}
            }
            if t.kw.is_reserved() {
                return Ok(None);
            }
            if t.kw.is_type_func_name() && !paren {
                return Ok(None);
            }
            // In lenient (XML/JSON) arguments a syntax word in operand position (`NAME`,
            // `VALUE`, …) is still read as a column: `xmlforest(name, date)` names
            // columns, and over-reporting is the safe side.
        }
        // A name: column reference, function call or typed literal.
        let c = self.chain(true)?;
        if self.at(Kind::LParen) && !c.star {
            self.function_call(&c, clause)?;
            return Ok(Some(true));
        }
        if self.peek().is_string() && !c.star {
            // `type 'literal'` (e.g. date '2020-01-01').
            self.next();
            return Ok(Some(true));
        }
        if self.peek().is_op(self.sql, "=>") {
            // Named argument `name => value`: not a column.
            self.next();
            return Ok(Some(false));
        }
        self.column_ref(&c, clause)?;
        Ok(Some(true))
    }

    fn array_literal(&mut self, clause: Clause) -> R<()> {
        self.expect(Kind::LBracket)?;
        self.enter()?;
        loop {
            if self.eat(Kind::RBracket) {
                break;
            }
            if self.eat(Kind::Comma) {
                continue;
            }
            if self.at(Kind::LBracket) {
                self.array_literal(clause)?;
                continue;
            }
            let before = self.peek().start;
            self.expr(clause)?;
            if self.peek().start == before {
                return Err(Fail("bad array literal"));
            }
        }
        self.leave();
        Ok(())
    }

    /// `[i]`, `[a:b]`, `[:b]`, `[a:]`, `[:]` after a column.
    fn subscript(&mut self, clause: Clause) -> R<()> {
        self.expect(Kind::LBracket)?;
        loop {
            if self.eat(Kind::RBracket) {
                return Ok(());
            }
            if self.eat(Kind::Colon) {
                continue;
            }
            let before = self.peek().start;
            self.expr(clause)?;
            if self.peek().start == before {
                return Err(Fail("bad subscript"));
            }
        }
    }

    /// Interval qualifiers after an interval literal: `YEAR TO MONTH`, `SECOND(3)`, …
    fn interval_fields(&mut self) -> R<()> {
        loop {
            let t = self.peek();
            if [
                Kw::Year,
                Kw::Month,
                Kw::Day,
                Kw::Hour,
                Kw::Minute,
                Kw::Second,
                Kw::To,
            ]
            .contains(&t.kw)
            {
                self.next();
                if self.at(Kind::LParen) && t.is(Kw::Second) {
                    self.skip_parens()?;
                }
                continue;
            }
            return Ok(());
        }
    }

    /// `( … )` in an expression: a subquery, a parenthesised expression or a row.
    fn paren_expr(&mut self, clause: Clause, lenient: bool) -> R<()> {
        self.enter()?;
        let r = match self.paren_starts_query()? {
            Some(true) => self.paren_query(),
            Some(false) => self.paren_list(clause, lenient),
            // `((SELECT …) UNION …)` or `((SELECT …)::int + 1)`.
            None => self.either(|p| p.paren_query(), |p| p.paren_list(clause, lenient)),
        };
        self.leave();
        r
    }

    fn paren_query(&mut self) -> R<()> {
        self.expect(Kind::LParen)?;
        self.query()?;
        self.expect(Kind::RParen)?;
        Ok(())
    }

    fn paren_list(&mut self, clause: Clause, lenient: bool) -> R<()> {
        self.expect(Kind::LParen)?;
        if self.eat(Kind::RParen) {
            return Ok(());
        }
        loop {
            self.expr_inner(clause, lenient)?;
            if !self.eat(Kind::Comma) {
                break;
            }
        }
        self.expect(Kind::RParen)?;
        Ok(())
    }

    /// `name(args) [WITHIN GROUP (…)] [FILTER (WHERE …)] [OVER …]`; `name` already read.
    fn function_call(&mut self, c: &Chain, clause: Clause) -> R<()> {
        self.enter()?;
        let lenient = c.n == 1 && SPECIAL_SYNTAX_FUNCS.contains(&c.first_kw);
        if !(lenient && c.first_kw == Kw::MergeAction) {
            self.push_function(c)?;
        }
        if self.name_of(&c.last())?.as_str() == "set_config"
            && (c.n == 1 || self.name_of(&c.parts[c.n - 2])?.as_str() == "pg_catalog")
        {
            self.set_config_flags(c)?;
        }
        self.expect(Kind::LParen)?;
        if lenient {
            self.lenient_args(clause)?;
        } else {
            self.func_args(clause)?;
        }
        if self.at_kw(Kw::Within) {
            self.next();
            self.expect_kw(Kw::Group)?;
            self.expect(Kind::LParen)?;
            self.expect_kw(Kw::Order)?;
            self.expect_kw(Kw::By)?;
            self.sort_list(clause)?;
            self.expect(Kind::RParen)?;
        }
        if self.at_kw(Kw::Filter) && self.peek_n(1).kind == Kind::LParen {
            self.next();
            self.next();
            self.expect_kw(Kw::Where)?;
            self.expr(Clause::Where)?;
            self.expect(Kind::RParen)?;
        }
        if self.eat_kw(Kw::Over) {
            if self.at(Kind::LParen) {
                self.window_spec()?;
            } else {
                self.any_name_token()?;
            }
        }
        self.leave();
        Ok(())
    }

    /// `set_config('search_path' | 'role' | …, …)`: flags from the literal first argument;
    /// anything but a literal sets both flags (conservative). Changing the role is `dcl`.
    /// The search path it sets is followed by later statements of the string only for
    /// the exact form `SELECT [pg_catalog.]set_config('search_path', 'literal', true|false)`
    /// (anything else could run conditionally, or with a value not known here).
    fn set_config_flags(&mut self, c: &Chain) -> R<()> {
        let a = self.peek_n(1);
        let after = self.peek_n(2);
        let setting = if a.kind == Kind::Str(StrKind::Standard) && after.kind == Kind::Comma {
            Some(self.name_of(&a)?)
        } else {
            self.pg_settings_setting(c)?
        };
        if let Some(n) = setting {
            let s = n.as_str();
            if LEXING_SETTINGS.iter().any(|l| s.eq_ignore_ascii_case(l)) {
                return Err(Fail(
                    "set_config of a setting that changes how SQL is lexed",
                ));
            }
            if s.eq_ignore_ascii_case("search_path") {
                self.flags |= StatementFlags::SETS_SEARCH_PATH;
                let effect = self.set_config_path(c)?;
                self.set_path_effect(effect);
            } else if s.eq_ignore_ascii_case("role")
                || s.eq_ignore_ascii_case("session_authorization")
            {
                self.flags |= StatementFlags::SETS_ROLE;
                self.class(StatementClass::Dcl);
            }
        } else {
            self.flags |= StatementFlags::SETS_SEARCH_PATH | StatementFlags::SETS_ROLE;
            self.class(StatementClass::Dcl);
            self.set_path_effect(super::PathEffect::Unknown);
        }
        Ok(())
    }

    /// The setting `set_config(name, 'value', bool)` changes when it is exactly pg_dump's
    /// `SELECT set_config(name, 'value', true|false) FROM [pg_catalog.]pg_settings WHERE
    /// name = 'restrict_nonsystem_relation_kind'` (the `(` is next). Only that name, byte
    /// for byte: a temporary relation can stand in for an unqualified `pg_settings`, and a
    /// padded or differently typed `name` could then equal another setting's name, but
    /// nothing makes `restrict_nonsystem_relation_kind` name a setting that changes how SQL
    /// is read, resolved or checked (the worst a stand-in can do is set that one, or none).
    /// `None` for any other shape or name.
    fn pg_settings_setting(&mut self, c: &Chain) -> R<Option<Name>> {
        let call_start = (self.cur + 1).checked_sub(2 * c.n);
        let first = self.tok(self.base);
        if self.base != 0 || call_start != Some(1) || !first.is(Kw::Select) {
            return Ok(None);
        }
        let is_name_column = |t: &Token| t.kind == Kind::Ident && t.kw == Kw::Name;
        let head = [
            self.peek_n(1),
            self.peek_n(2),
            self.peek_n(3),
            self.peek_n(4),
        ];
        let flag = self.peek_n(5);
        if !is_name_column(&head[0])
            || head[1].kind != Kind::Comma
            || head[2].kind != Kind::Str(StrKind::Standard)
            || head[3].kind != Kind::Comma
            || !(flag.is(Kw::True) || flag.is(Kw::False))
            || self.peek_n(6).kind != Kind::RParen
            || !self.peek_n(7).is(Kw::From)
        {
            return Ok(None);
        }
        let mut i = 8;
        let t = self.peek_n(i);
        if t.kind == Kind::Ident && self.name_of(&t)?.as_str() == "pg_catalog" {
            if self.peek_n(i + 1).kind != Kind::Dot {
                return Ok(None);
            }
            i += 2;
        }
        let table = self.peek_n(i);
        if table.kind != Kind::Ident || self.name_of(&table)?.as_str() != "pg_settings" {
            return Ok(None);
        }
        let (w, col, eq, lit, end) = (
            self.peek_n(i + 1),
            self.peek_n(i + 2),
            self.peek_n(i + 3),
            self.peek_n(i + 4),
            self.peek_n(i + 5),
        );
        if !w.is(Kw::Where)
            || !is_name_column(&col)
            || eq.kind != Kind::Op
            || self.text(&eq) != "="
            || self.text(&lit) != "'restrict_nonsystem_relation_kind'"
            || !matches!(end.kind, Kind::Eof)
        {
            return Ok(None);
        }
        Ok(Some(self.name_of(&lit)?))
    }

    /// A path effect; `Unknown` is never replaced.
    fn set_path_effect(&mut self, e: super::PathEffect) {
        if self.path_effect != super::PathEffect::Unknown {
            self.path_effect = e;
        }
    }

    /// The path effect of `set_config('search_path', …)` (the `(` is next); pushes the
    /// schemas it sets when it is the exact, unconditional form.
    fn set_config_path(&mut self, c: &Chain) -> R<super::PathEffect> {
        use super::PathEffect;
        // Tokens: SELECT name[.name] ( 'search_path' , 'value' , bool ) <end>
        let call_start = (self.cur + 1).checked_sub(2 * c.n);
        let first = self.tok(self.base);
        if self.base != 0 || call_start != Some(1) || !first.is(Kw::Select) {
            return Ok(PathEffect::Unknown);
        }
        let v = self.peek_n(3);
        let local = match self.peek_n(5).kw {
            Kw::True => true,
            Kw::False => false,
            _ => return Ok(PathEffect::Unknown),
        };
        if v.kind != Kind::Str(StrKind::Standard)
            || self.peek_n(4).kind != Kind::Comma
            || self.peek_n(6).kind != Kind::RParen
            || self.peek_n(7).kind != Kind::Eof
        {
            return Ok(PathEffect::Unknown);
        }
        // The literal's value ('' is a quote; a continuation line is not followed).
        let text = self.text(&v);
        let body = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
        let mut buf = [0u8; 1024];
        let mut len = 0;
        let mut bytes = body.bytes();
        while let Some(b) = bytes.next() {
            if b == b'\'' && bytes.next() != Some(b'\'') {
                return Ok(PathEffect::Unknown);
            }
            let Some(slot) = buf.get_mut(len) else {
                return Ok(PathEffect::Unknown);
            };
            *slot = b;
            len += 1;
        }
        let Ok(value) = std::str::from_utf8(buf.get(..len).unwrap_or(&[])) else {
            return Ok(PathEffect::Unknown);
        };
        if !self.push_path_list(value)? {
            return Ok(PathEffect::Unknown);
        }
        Ok(PathEffect::Set { local })
    }

    /// PostgreSQL's `SplitIdentifierString(value, ',')` as `search_path` uses it: names
    /// separated by commas, unquoted ones case-folded (ASCII), `"…"` ones as written
    /// (`""` = `"`), each truncated to 63 bytes. `false` if PostgreSQL would reject it.
    fn push_path_list(&mut self, value: &str) -> R<bool> {
        let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c');
        let mut rest = value.trim_start_matches(is_space);
        if rest.is_empty() {
            return Ok(true);
        }
        loop {
            let name;
            if let Some(q) = rest.strip_prefix('"') {
                // Quoted: up to the closing quote; `""` is a quote.
                let mut end = None;
                let mut it = q.char_indices().peekable();
                while let Some((i, ch)) = it.next() {
                    if ch == '"' {
                        if it.peek().map(|&(_, c)| c) == Some('"') {
                            it.next();
                            continue;
                        }
                        end = Some(i);
                        break;
                    }
                }
                let Some(e) = end else { return Ok(false) };
                let raw = q.get(..e).unwrap_or("");
                let mut chars = raw.chars();
                name = Name::from_chars(std::iter::from_fn(|| {
                    let ch = chars.next()?;
                    if ch == '"' {
                        chars.next();
                    }
                    Some(ch)
                }));
                rest = q.get(e + 1..).unwrap_or("");
            } else {
                let e = rest
                    .find(|c: char| c == ',' || is_space(c))
                    .unwrap_or(rest.len());
                if e == 0 {
                    return Ok(false);
                }
                let raw = rest.get(..e).unwrap_or("");
                name = Name::from_chars(raw.chars().map(|c| c.to_ascii_lowercase()));
                rest = rest.get(e..).unwrap_or("");
            }
            let r = self.push(name.as_str())?;
            self.facts.push_path_name(r)?;
            rest = rest.trim_start_matches(is_space);
            if rest.is_empty() {
                return Ok(true);
            }
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start_matches(is_space),
                None => return Ok(false),
            }
        }
    }

    /// Ordinary function arguments, after `(`; consumes `)`.
    fn func_args(&mut self, clause: Clause) -> R<()> {
        if self.eat(Kind::RParen) {
            return Ok(());
        }
        if self.peek().is_op(self.sql, "*") && self.peek_n(1).kind == Kind::RParen {
            // count(*): no column.
            self.next();
            self.next();
            return Ok(());
        }
        let _ = self.eat_kw(Kw::Distinct) || self.eat_kw(Kw::All);
        loop {
            let _ = self.eat_kw(Kw::Variadic)
                || self.eat_kw(Kw::Both)
                || self.eat_kw(Kw::Leading)
                || self.eat_kw(Kw::Trailing);
            // Named argument: `name => value` / `name := value`.
            let t = self.peek();
            let n1 = self.peek_n(1);
            if t.is_name() && (n1.is_op(self.sql, "=>") || n1.is_op(self.sql, ":=")) {
                self.next();
                self.next();
            }
            if !self.at_kw(Kw::From) {
                self.expr(clause)?;
            }
            // Separators of the special argument syntaxes (SUBSTRING … FROM … FOR …,
            // OVERLAY … PLACING …, TRIM … FROM …), and aggregate ORDER BY.
            if self.eat(Kind::Comma)
                || self.eat_kw(Kw::From)
                || self.eat_kw(Kw::For)
                || self.eat_kw(Kw::Placing)
            {
                continue;
            }
            if self.at_kw(Kw::Order) {
                self.next();
                self.expect_kw(Kw::By)?;
                self.sort_list(clause)?;
            }
            break;
        }
        self.expect(Kind::RParen)?;
        Ok(())
    }

    /// Arguments of XML/JSON functions with keyword syntax: read leniently to `)`.
    fn lenient_args(&mut self, clause: Clause) -> R<()> {
        loop {
            let t = self.peek();
            match t.kind {
                Kind::RParen => {
                    self.next();
                    return Ok(());
                }
                Kind::Eof => return Err(Fail("unbalanced parentheses")),
                Kind::Comma => {
                    self.next();
                }
                _ => {
                    let before = t.start;
                    self.expr_inner(clause, true)?;
                    if self.peek().start == before {
                        // Something expr could not start with (`=>`, `:` …): skip it.
                        self.next();
                    }
                }
            }
        }
    }

    /// A type name after `::` or `AS` in CAST: skipped (type names are not columns).
    fn type_name(&mut self) -> R<()> {
        self.eat_kw(Kw::Setof);
        let t = self.next();
        if !t.is_name() {
            return Err(Fail("expected a type name"));
        }
        match t.kw {
            Kw::Double => {
                self.expect_kw(Kw::Precision)?;
            }
            Kw::Character | Kw::Char | Kw::Nchar | Kw::Bit => {
                self.eat_kw(Kw::Varying);
            }
            Kw::National => {
                if !self.eat_kw(Kw::Character) {
                    self.expect_kw(Kw::Char)?;
                }
                self.eat_kw(Kw::Varying);
            }
            Kw::Interval => {
                self.interval_fields()?;
            }
            _ => {
                while self.at(Kind::Dot) {
                    self.next();
                    if !self.next().is_name() {
                        return Err(Fail("expected a type name"));
                    }
                }
            }
        }
        if self.at(Kind::LParen) {
            self.skip_parens()?;
        }
        if (t.kw == Kw::Timestamp || t.kw == Kw::Time)
            && (self.at_kw(Kw::With) || self.at_kw(Kw::Without))
            && self.at_kw_n(1, Kw::Time)
        {
            self.next();
            self.next();
            self.expect_kw(Kw::Zone)?;
        }
        if t.kw == Kw::Interval {
            self.interval_fields()?;
        }
        loop {
            if self.at(Kind::LBracket) {
                self.next();
                if self.at(Kind::Number) {
                    self.next();
                }
                self.expect(Kind::RBracket)?;
            } else if self.at_kw(Kw::Array) {
                self.next();
                if self.at(Kind::LBracket) {
                    self.next();
                    if self.at(Kind::Number) {
                        self.next();
                    }
                    self.expect(Kind::RBracket)?;
                }
            } else {
                return Ok(());
            }
        }
    }

    // ---------------------------------------------------------------- DML

    /// A DML target: `[ONLY] name [*] [[AS] alias]`; pushes the write access and adds the
    /// scope entry (reads created lazily). Returns (write access, scope entry).
    fn dml_target(
        &mut self,
        class: StatementClass,
        no_bare: &[Kw],
        add_now: bool,
    ) -> R<(u8, Name, QualifiedName)> {
        let paren = if self.eat_kw(Kw::Only) {
            self.eat(Kind::LParen)
        } else {
            false
        };
        let c = self.chain(false)?;
        if paren {
            self.expect(Kind::RParen)?;
        }
        self.eat_op("*");
        let q = self.resolve_table(&c)?;
        let w = self.push_access(class, q)?;
        let alias = if class == StatementClass::Insert {
            // INSERT's alias needs AS.
            if self.eat_kw(Kw::As) {
                Some(self.any_name_token()?)
            } else {
                None
            }
        } else {
            self.alias(no_bare)?
        };
        let name = match alias {
            Some(a) => a,
            None => self.name_of(&c.last())?,
        };
        if add_now {
            self.scopes.add(
                name,
                EntryKind::Base {
                    read: None,
                    name: q,
                    alts: 0,
                },
            )?;
        }
        Ok((w, name, q))
    }

    fn insert(&mut self) -> R<()> {
        self.expect_kw(Kw::Insert)?;
        self.expect_kw(Kw::Into)?;
        let (w, name, q) = self.dml_target(StatementClass::Insert, &[], false)?;
        // Column list (or all columns).
        let mut listed = false;
        if self.at(Kind::LParen) && self.paren_starts_query()? == Some(false) {
            self.next();
            listed = true;
            loop {
                let n = self.any_name_token()?;
                // `col.field` / `col[1]` target the column `col`.
                loop {
                    if self.eat(Kind::Dot) {
                        self.any_name_token()?;
                    } else if self.at(Kind::LBracket) {
                        self.subscript(Clause::InsertColumns)?;
                    } else {
                        break;
                    }
                }
                let r = self.push(n.as_str())?;
                self.push_column(
                    ColumnName::Named(r),
                    1u64 << w,
                    0,
                    true,
                    Clause::InsertColumns,
                )?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        }
        if !listed {
            self.push_column(ColumnName::All, 1u64 << w, 0, true, Clause::InsertColumns)?;
        }
        if self.eat_kw(Kw::Overriding) {
            if !self.eat_kw(Kw::System) {
                self.expect_kw(Kw::User)?;
            }
            self.expect_kw(Kw::Value)?;
        }
        if self.at_kw(Kw::Default) {
            self.next();
            self.expect_kw(Kw::Values)?;
        } else {
            self.query()?;
        }
        // The target is visible from here on (ON CONFLICT, RETURNING), not in the source.
        self.scopes.add(
            name,
            EntryKind::Base {
                read: None,
                name: q,
                alts: 0,
            },
        )?;
        if self.at_kw(Kw::On) {
            self.next();
            self.expect_kw(Kw::Conflict)?;
            self.scopes
                .add(Name::from_str_truncated("excluded"), EntryKind::Derived)?;
            if self.eat_kw(Kw::On) {
                self.expect_kw(Kw::Constraint)?;
                self.any_name_token()?;
            } else if self.eat(Kind::LParen) {
                loop {
                    self.expr(Clause::Other)?;
                    if self.eat_kw(Kw::Collate) {
                        self.chain(false)?;
                    }
                    let t = self.peek();
                    if t.is_name() && !self.is_reserved(&t) {
                        self.chain(false)?; // operator class
                    }
                    let _ = self.eat_kw(Kw::Asc) || self.eat_kw(Kw::Desc);
                    if self.eat_kw(Kw::Nulls) && !self.eat_kw(Kw::First) {
                        self.expect_kw(Kw::Last)?;
                    }
                    if !self.eat(Kind::Comma) {
                        break;
                    }
                }
                self.expect(Kind::RParen)?;
                if self.eat_kw(Kw::Where) {
                    self.expr(Clause::Where)?;
                }
            }
            self.expect_kw(Kw::Do)?;
            if !self.eat_kw(Kw::Nothing) {
                self.expect_kw(Kw::Update)?;
                self.class(StatementClass::Update);
                let u = self.push_access(StatementClass::Update, q)?;
                self.expect_kw(Kw::Set)?;
                self.set_list(u)?;
                if self.eat_kw(Kw::Where) {
                    self.expr(Clause::Where)?;
                }
            }
        }
        self.returning()
    }

    /// `RETURNING [WITH (OLD|NEW AS name, …)] targets`
    fn returning(&mut self) -> R<()> {
        if !self.eat_kw(Kw::Returning) {
            return Ok(());
        }
        if self.at_kw(Kw::With) && self.peek_n(1).kind == Kind::LParen {
            self.next();
            self.next();
            loop {
                let _ = self.eat_kw(Kw::Old) || self.eat_kw(Kw::New);
                self.expect_kw(Kw::As)?;
                self.any_name_token()?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        }
        self.target_list(Clause::Returning, false)
    }

    /// `col = expr | (cols) = (exprs) | (cols) = ROW(…) | (cols) = (subquery), …`
    fn set_list(&mut self, target: u8) -> R<()> {
        loop {
            if self.eat(Kind::LParen) {
                loop {
                    self.set_target(target)?;
                    if !self.eat(Kind::Comma) {
                        break;
                    }
                }
                self.expect(Kind::RParen)?;
            } else {
                self.set_target(target)?;
            }
            if !self.eat_op("=") {
                return Err(Fail("expected = in SET"));
            }
            self.expr(Clause::UpdateSet)?;
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    fn set_target(&mut self, target: u8) -> R<()> {
        let n = self.any_name_token()?;
        loop {
            if self.at(Kind::Dot) {
                self.next();
                self.any_name_token()?;
            } else if self.at(Kind::LBracket) {
                self.subscript(Clause::UpdateSet)?;
            } else {
                break;
            }
        }
        let r = self.push(n.as_str())?;
        self.push_column(
            ColumnName::Named(r),
            1u64 << target,
            0,
            true,
            Clause::UpdateSet,
        )?;
        // A column written reads nothing.
        self.mark_last_plain();
        Ok(())
    }

    fn update(&mut self) -> R<()> {
        self.expect_kw(Kw::Update)?;
        let (w, _, _) = self.dml_target(StatementClass::Update, &[Kw::Set], true)?;
        self.expect_kw(Kw::Set)?;
        let set_start = self.save();
        self.skip_to_clause(&[Kw::From, Kw::Where, Kw::Returning])?;
        let set_end = self.peek().start;
        if self.eat_kw(Kw::From) {
            self.table_list()?;
        }
        let after = self.save();
        self.restore(set_start);
        self.set_list(w)?;
        if self.peek().start != set_end {
            return Err(Fail("SET list not understood"));
        }
        self.restore(after);
        self.where_clause()?;
        self.returning()
    }

    fn where_clause(&mut self) -> R<()> {
        if self.eat_kw(Kw::Where) {
            if self.at_kw(Kw::Current) && self.at_kw_n(1, Kw::Of) {
                self.next();
                self.next();
                self.any_name_token()?;
                return Ok(());
            }
            self.expr(Clause::Where)?;
        }
        Ok(())
    }

    fn delete(&mut self) -> R<()> {
        self.expect_kw(Kw::Delete)?;
        self.expect_kw(Kw::From)?;
        self.dml_target(StatementClass::Delete, &[], true)?;
        if self.eat_kw(Kw::Using) {
            self.table_list()?;
        }
        self.where_clause()?;
        self.returning()
    }

    fn merge(&mut self) -> R<()> {
        self.expect_kw(Kw::Merge)?;
        self.expect_kw(Kw::Into)?;
        let (w, _, _) = self.dml_target(StatementClass::Merge, &[], true)?;
        self.expect_kw(Kw::Using)?;
        self.table_item()?;
        self.expect_kw(Kw::On)?;
        self.expr(Clause::Join)?;
        let mut any = false;
        while self.eat_kw(Kw::When) {
            any = true;
            self.eat_kw(Kw::Not);
            self.expect_kw(Kw::Matched)?;
            if self.eat_kw(Kw::By) && !self.eat_kw(Kw::Source) {
                self.expect_kw(Kw::Target)?;
            }
            if self.eat_kw(Kw::And) {
                self.expr(Clause::Where)?;
            }
            self.expect_kw(Kw::Then)?;
            if self.eat_kw(Kw::Update) {
                self.expect_kw(Kw::Set)?;
                self.set_list(w)?;
            } else if self.eat_kw(Kw::Delete) {
            } else if self.eat_kw(Kw::Insert) {
                if self.at(Kind::LParen) {
                    self.next();
                    loop {
                        self.set_target(w)?;
                        if !self.eat(Kind::Comma) {
                            break;
                        }
                    }
                    self.expect(Kind::RParen)?;
                } else {
                    self.push_column(ColumnName::All, 1u64 << w, 0, true, Clause::InsertColumns)?;
                }
                if self.eat_kw(Kw::Overriding) {
                    if !self.eat_kw(Kw::System) {
                        self.expect_kw(Kw::User)?;
                    }
                    self.expect_kw(Kw::Value)?;
                }
                if self.eat_kw(Kw::Default) {
                    self.expect_kw(Kw::Values)?;
                } else {
                    self.expect_kw(Kw::Values)?;
                    self.expect(Kind::LParen)?;
                    self.expr_list_until_rparen(Clause::Other)?;
                }
            } else {
                self.expect_kw(Kw::Do)?;
                self.expect_kw(Kw::Nothing)?;
            }
        }
        if !any {
            return Err(Fail("MERGE without WHEN"));
        }
        self.returning()
    }

    // ---------------------------------------------------------------- other statements

    /// `TRUNCATE [TABLE] [ONLY] name [*], … [RESTART|CONTINUE IDENTITY] [CASCADE|RESTRICT]`
    fn truncate(&mut self) -> R<()> {
        self.expect_kw(Kw::Truncate)?;
        self.class(StatementClass::Truncate);
        self.eat_kw(Kw::Table);
        self.table_name_list(StatementClass::Truncate)?;
        if self.eat_kw(Kw::Restart) || self.eat_kw(Kw::Continue) {
            self.expect_kw(Kw::Identity)?;
        }
        let _ = self.eat_kw(Kw::Cascade) || self.eat_kw(Kw::Restrict);
        Ok(())
    }

    fn table_name_list(&mut self, class: StatementClass) -> R<()> {
        loop {
            self.eat_kw(Kw::Only);
            let c = self.chain(false)?;
            self.eat_op("*");
            let q = self.resolve_table(&c)?;
            self.push_access(class, q)?;
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    /// `LOCK [TABLE] [ONLY] name [*], … [IN mode MODE] [NOWAIT]`
    fn lock(&mut self) -> R<()> {
        self.expect_kw(Kw::Lock)?;
        self.class(StatementClass::Lock);
        self.eat_kw(Kw::Table);
        self.table_name_list(StatementClass::Lock)?;
        if self.eat_kw(Kw::In) {
            loop {
                if self.eat_kw(Kw::Mode) {
                    break;
                }
                let t = self.next();
                if t.kind != Kind::Ident {
                    return Err(Fail("bad lock mode"));
                }
            }
        }
        self.eat_kw(Kw::Nowait);
        Ok(())
    }

    /// `COPY { table [(cols)] | (query) } { FROM | TO } { STDIN | STDOUT | 'file' | PROGRAM 'cmd' } …`
    fn copy(&mut self) -> R<()> {
        self.expect_kw(Kw::Copy)?;
        self.eat_kw(Kw::Binary);
        let mark_tables = self.facts.current_table_count();
        let mark_cols = self.facts.current_columns_mut().len();
        let mut table: Option<Chain> = None;
        let mut cols = [Name::default(); MAX_COPY_COLUMNS];
        let mut n_cols = None;
        if self.at(Kind::LParen) {
            self.next();
            let c = self.dml_or_query()?;
            self.class(c);
            self.expect(Kind::RParen)?;
        } else {
            table = Some(self.chain(false)?);
            if self.eat(Kind::LParen) {
                let mut n = 0;
                loop {
                    let name = self.any_name_token()?;
                    let slot = cols.get_mut(n).ok_or(Fail("COPY column list too long"))?;
                    *slot = name;
                    n += 1;
                    if !self.eat(Kind::Comma) {
                        break;
                    }
                }
                self.expect(Kind::RParen)?;
                n_cols = Some(n);
            }
        }
        let from = if self.eat_kw(Kw::From) {
            true
        } else {
            self.expect_kw(Kw::To)?;
            false
        };
        if from && table.is_none() {
            return Err(Fail("COPY (query) FROM"));
        }
        let class = if self.eat_kw(Kw::Stdin) || self.eat_kw(Kw::Stdout) {
            if from {
                StatementClass::CopyIn
            } else {
                StatementClass::CopyOut
            }
        } else {
            self.eat_kw(Kw::Program);
            let t = self.next();
            if !t.is_string() {
                return Err(Fail("COPY target not understood"));
            }
            StatementClass::CopyServer
        };
        self.class(class);
        let mut target = None;
        if let Some(c) = table {
            let q = self.resolve_table(&c)?;
            let idx = self.push_access(class, q)?;
            match n_cols {
                Some(n) => {
                    for name in cols.iter().take(n) {
                        let r = self.push(name.as_str())?;
                        self.push_column(
                            ColumnName::Named(r),
                            1u64 << idx,
                            0,
                            true,
                            Clause::Other,
                        )?;
                        if class == StatementClass::CopyOut {
                            self.mark_last_plain();
                        }
                    }
                }
                None => {
                    self.push_column(ColumnName::All, 1u64 << idx, 0, true, Clause::Other)?;
                    // `COPY t TO STDOUT` sends the table's columns as they are.
                    if class == StatementClass::CopyOut {
                        self.mark_last_plain();
                    }
                }
            }
            target = Some((self.name_of(&c.last())?, q));
        } else {
            // Every read of the query is also a read under the COPY's class.
            self.mirror_reads(mark_tables, mark_cols, class)?;
        }
        // Options: `[WITH] (opts)` or the old `BINARY|CSV|HEADER|DELIMITER 'x'…` words.
        self.eat_kw(Kw::With);
        if self.at(Kind::LParen) {
            self.skip_parens()?;
        }
        loop {
            let t = self.peek();
            if t.is(Kw::Where) {
                self.next();
                let Some((name, q)) = target.filter(|_| from) else {
                    return Err(Fail("COPY TO … WHERE"));
                };
                // The rows loaded are filtered on the target's columns: reads of it.
                self.scopes.push_level();
                self.scopes.add(
                    name,
                    EntryKind::Base {
                        read: None,
                        name: q,
                        alts: 0,
                    },
                )?;
                let r = self.expr(Clause::Where);
                self.scopes.pop_level();
                r?;
                continue;
            }
            match t.kind {
                Kind::Eof => return Ok(()),
                Kind::Ident | Kind::Str(_) | Kind::Number | Kind::QuotedIdent | Kind::Comma => {
                    self.next();
                }
                Kind::Op if t.is_op(self.sql, "*") || t.is_op(self.sql, "-") => {
                    self.next();
                }
                Kind::LParen => self.skip_parens()?,
                _ => return Err(Fail("COPY options not understood")),
            }
        }
    }

    /// For every `select` access made since `mark_tables`, adds an access under `class`
    /// to the same table, and widens the candidate masks of the columns since `mark_cols`.
    fn mirror_reads(
        &mut self,
        mark_tables: usize,
        mark_cols: usize,
        class: StatementClass,
    ) -> R<()> {
        let end = self.facts.current_table_count();
        let mut map = [0u64; 64];
        for i in mark_tables..end {
            if let Some(a) = self.facts.current_table(i)
                && a.class == StatementClass::Select
            {
                let j = self.push_access(class, a.name)?;
                if let Some(m) = map.get_mut(i) {
                    *m = 1u64 << j;
                }
            }
        }
        for c in self.facts.current_columns_mut().iter_mut().skip(mark_cols) {
            let (mut cand, mut whole) = (c.candidates, c.whole_row);
            for (i, m) in map.iter().enumerate() {
                if c.candidates & (1u64 << i) != 0 {
                    cand |= m;
                }
                if c.whole_row & (1u64 << i) != 0 {
                    whole |= m;
                }
            }
            c.candidates = cand;
            c.whole_row = whole;
        }
        Ok(())
    }

    /// `EXPLAIN [(opts)] | [ANALYZE] [VERBOSE] stmt`
    fn explain(&mut self) -> R<()> {
        self.expect_kw(Kw::Explain)?;
        let mut analyze = false;
        if self.at(Kind::LParen) {
            self.next();
            loop {
                let opt = self.any_name_token()?;
                let is_analyze = matches!(opt.as_str(), "analyze" | "analyse");
                let mut value = true;
                if !(self.at(Kind::Comma) || self.at(Kind::RParen)) {
                    let v = self.next();
                    let txt = self.text(&v).to_ascii_lowercase_fixed();
                    if matches!(
                        txt.as_str(),
                        "false" | "off" | "0" | "'false'" | "'off'" | "'0'"
                    ) {
                        value = false;
                    }
                }
                if is_analyze && value {
                    analyze = true;
                }
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        } else {
            if self.eat_kw(Kw::Analyze) || self.eat_kw(Kw::Analyse) {
                analyze = true;
            }
            self.eat_kw(Kw::Verbose);
        }
        if analyze {
            self.flags |= StatementFlags::EXPLAIN_ANALYZE;
        } else {
            self.class(StatementClass::Utility);
        }
        self.inner_statement()
    }

    /// The statement inside EXPLAIN / PREPARE: a query, DML, EXECUTE, DECLARE or CREATE
    /// TABLE AS / MATERIALIZED VIEW.
    fn inner_statement(&mut self) -> R<()> {
        let t = self.peek();
        if t.is(Kw::Execute) {
            return self.execute();
        }
        if t.is(Kw::Declare) {
            return self.declare();
        }
        if t.is(Kw::Create) {
            return self.create();
        }
        self.preparable()
    }

    /// A query or DML statement standing inside another (`PREPARE … AS`, EXPLAIN),
    /// with its class: `(query)` or `[WITH …] SELECT/VALUES/TABLE/INSERT/…`.
    fn preparable(&mut self) -> R<()> {
        if self.at(Kind::LParen) {
            self.class(StatementClass::Select);
            return self.query();
        }
        // A prepared statement's rows reach the client (EXECUTE); EXPLAIN's name no
        // values.
        self.output_level = self.scopes.level.saturating_add(1);
        let c = self.dml_or_query()?;
        self.class(c);
        Ok(())
    }

    /// `PREPARE name [(types)] AS stmt`
    fn prepare(&mut self) -> R<()> {
        self.expect_kw(Kw::Prepare)?;
        self.class(StatementClass::Prepare);
        self.flags |= StatementFlags::PREPARES;
        let n = self.any_name_token()?;
        self.prepared_name = self.push(n.as_str())?;
        if self.at(Kind::LParen) {
            self.skip_parens()?;
        }
        self.expect_kw(Kw::As)?;
        self.preparable()
    }

    /// `EXECUTE name [(params)]`: the caller resolves `name`.
    fn execute(&mut self) -> R<()> {
        self.expect_kw(Kw::Execute)?;
        self.class(StatementClass::Prepare);
        self.flags |= StatementFlags::EXECUTES_PREPARED;
        let n = self.any_name_token()?;
        self.prepared_name = self.push(n.as_str())?;
        if self.eat(Kind::LParen) {
            self.expr_list_until_rparen(Clause::Other)?;
        }
        Ok(())
    }

    /// `FETCH [direction] [FROM|IN] name`, `MOVE …` (the same), `CLOSE {name|ALL}`: the
    /// cursor name is the statement's last token, recorded in `prepared_name` (empty for
    /// `CLOSE ALL`, or when the last token is no name: the server rejects those).
    fn cursor_use(&mut self, kw: Kw) -> R<()> {
        self.next();
        self.class(StatementClass::Cursor);
        self.flags |= if kw == Kw::Close {
            StatementFlags::CLOSES_CURSOR
        } else {
            StatementFlags::USES_CURSOR
        };
        let mut last = None;
        let mut count = 0u32;
        loop {
            let t = self.next();
            if t.kind == Kind::Eof {
                break;
            }
            count += 1;
            last = Some(t);
        }
        match last {
            Some(t)
                if kw == Kw::Close && count == 1 && t.kind == Kind::Ident && t.kw == Kw::All => {}
            Some(t) if t.is_name() => self.prepared_name = self.push_tok(&t)?,
            _ => {}
        }
        Ok(())
    }

    /// `LISTEN channel`, `UNLISTEN {channel|*}`: the channel in `prepared_name` (empty for
    /// `UNLISTEN *`).
    fn listen(&mut self, kw: Kw) -> R<()> {
        self.next();
        self.class(StatementClass::Notify);
        if kw == Kw::Listen {
            self.flags |= StatementFlags::LISTENS;
        } else {
            self.flags |= StatementFlags::UNLISTENS;
        }
        let t = self.peek();
        if t.is_name() {
            self.next();
            self.prepared_name = self.push_tok(&t)?;
        }
        self.rest()
    }

    /// `DECLARE name [BINARY] [ASENSITIVE|INSENSITIVE] [[NO] SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`
    fn declare(&mut self) -> R<()> {
        self.expect_kw(Kw::Declare)?;
        self.class(StatementClass::Cursor);
        self.flags |= StatementFlags::DECLARES_CURSOR;
        let n = self.any_name_token()?;
        self.prepared_name = self.push(n.as_str())?;
        loop {
            if self.eat_kw(Kw::Cursor) {
                break;
            }
            let t = self.next();
            if ![
                Kw::Binary,
                Kw::Asensitive,
                Kw::Insensitive,
                Kw::No,
                Kw::Scroll,
            ]
            .contains(&t.kw)
            {
                return Err(Fail("DECLARE not understood"));
            }
        }
        if self.eat_kw(Kw::With) {
            self.expect_kw(Kw::Hold)?;
            self.flags |= StatementFlags::HOLDS_CURSOR;
        } else if self.eat_kw(Kw::Without) {
            self.expect_kw(Kw::Hold)?;
        }
        self.expect_kw(Kw::For)?;
        if self.at(Kind::LParen) {
            self.class(StatementClass::Select);
            return self.query();
        }
        // The cursor's rows reach the client (FETCH).
        self.output_level = self.scopes.level.saturating_add(1);
        let c = self.dml_or_query()?;
        self.class(c);
        Ok(())
    }

    /// `SET [SESSION|LOCAL] …`. Changing the role (`SET ROLE`, `SET SESSION
    /// AUTHORIZATION`) is `dcl`: the proxy has its own database identity, and which role
    /// the session runs as is a privilege decision.
    fn set(&mut self) -> R<()> {
        use super::PathEffect;
        self.expect_kw(Kw::Set)?;
        if self.at_transaction_setting() {
            self.class(StatementClass::Transaction);
            return self.rest();
        }
        self.class(StatementClass::Session);
        let local = self.at_kw(Kw::Local) && !self.is_set_to(1);
        let scope_word = local
            || (self.at_kw(Kw::Session)
                && !self.at_kw_n(1, Kw::Authorization)
                && !self.at_kw_n(1, Kw::Characteristics)
                && !self.is_set_to(1));
        if scope_word {
            self.next();
            if self.at_transaction_setting() {
                self.classes = ClassSet::single(StatementClass::Transaction);
                return self.rest();
            }
        }
        if (self.at_kw(Kw::Role) && !self.is_set_to(1))
            || (self.at_kw(Kw::Session) && self.at_kw_n(1, Kw::Authorization))
        {
            self.flags |= StatementFlags::SETS_ROLE;
            self.classes = ClassSet::single(StatementClass::Dcl);
            return self.rest();
        }
        if self.at_kw(Kw::Schema) && !self.is_set_to(1) {
            // `SET SCHEMA 'x'` is `SET search_path TO 'x'`.
            self.next();
            self.flags |= StatementFlags::SETS_SEARCH_PATH;
            let t = self.next();
            let n = self.name_of(&t)?;
            let r = self.push(n.as_str())?;
            self.facts.push_path_name(r)?;
            self.set_path_effect(PathEffect::Set { local });
            return Ok(());
        }
        if self.at_kw(Kw::Names) {
            // SET NAMES 'enc' = SET client_encoding TO 'enc'.
            self.next();
            return self.check_lexing_setting("client_encoding");
        }
        let var = self.chain(false)?;
        let vname_n = self.name_of(&var.last())?;
        let vname = vname_n.as_str();
        if var.n == 1 && LEXING_SETTINGS.contains(&vname) {
            if !self.eat_kw(Kw::To) && !self.eat_op("=") {
                return Err(Fail("SET not understood"));
            }
            return self.check_lexing_setting(vname);
        }
        let is_path = var.n == 1 && vname == "search_path";
        if var.n == 1 && (vname == "role" || vname == "session_authorization") {
            self.flags |= StatementFlags::SETS_ROLE;
            self.classes = ClassSet::single(StatementClass::Dcl);
        }
        if !is_path {
            // Any other setting (`SET TIME ZONE …`, `SET NAMES …`, `SET x TO …`): the class
            // is all policy needs.
            return self.rest();
        }
        self.flags |= StatementFlags::SETS_SEARCH_PATH;
        if !self.eat_kw(Kw::To) && !self.eat_op("=") {
            return Err(Fail("SET search_path not understood"));
        }
        if self.eat_kw(Kw::Default) {
            self.set_path_effect(PathEffect::Reset);
            return Ok(());
        }
        loop {
            let t = self.next();
            if !(t.is_name() || t.kind == Kind::Str(StrKind::Standard)) {
                return Err(Fail("search_path value not understood"));
            }
            // A quoted list `SET search_path = 'a, b'` names one schema "a, b" in
            // PostgreSQL too; recorded as written.
            let n = self.name_of(&t)?;
            let r = self.push(n.as_str())?;
            self.facts.push_path_name(r)?;
            if !self.eat(Kind::Comma) {
                self.set_path_effect(PathEffect::Set { local });
                return Ok(());
            }
        }
    }

    /// The value of a setting that changes how later SQL is lexed: only values under
    /// which this classifier's lexer is still PostgreSQL's are understood.
    fn check_lexing_setting(&mut self, setting: &str) -> R<()> {
        let t = self.next();
        let v = match t.kind {
            Kind::Ident | Kind::Number => self.text(&t).to_ascii_lowercase_fixed(),
            Kind::Str(StrKind::Standard) => self.name_of(&t)?.as_str().to_ascii_lowercase_fixed(),
            _ => return Err(Fail("setting value not understood")),
        };
        let ok = match setting {
            "standard_conforming_strings" => {
                matches!(v.as_str(), "on" | "true" | "yes" | "1" | "default")
            }
            _ => matches!(
                v.as_str(),
                "utf8" | "utf-8" | "unicode" | "sql_ascii" | "default"
            ),
        };
        if !ok {
            // `standard_conforming_strings = off` makes `\'` end no string; a client
            // encoding like SJIS or BIG5 can hide a quote or backslash inside a character.
            // Either way later messages would be lexed differently from here.
            return Err(Fail("setting changes how SQL is lexed"));
        }
        Ok(())
    }

    /// `SET TRANSACTION …`, `SET SESSION CHARACTERISTICS AS TRANSACTION …`,
    /// `SET CONSTRAINTS …` (but not variables of those names: `SET constraints TO x`).
    fn at_transaction_setting(&mut self) -> bool {
        (self.at_kw(Kw::Transaction) && !self.is_set_to(1))
            || (self.at_kw(Kw::Session) && self.at_kw_n(1, Kw::Characteristics))
            || (self.at_kw(Kw::Constraints) && !self.is_set_to(1))
    }

    fn is_set_to(&mut self, n: usize) -> bool {
        let t = self.peek_n(n);
        t.is(Kw::To) || t.is_op(self.sql, "=")
    }

    /// `RESET name | ALL | ROLE | SESSION AUTHORIZATION | TIME ZONE …` (the role ones are
    /// `dcl`, as in [`Parser::set`]).
    fn reset(&mut self) -> R<()> {
        self.expect_kw(Kw::Reset)?;
        self.class(StatementClass::Session);
        if self.at_kw(Kw::All) {
            self.flags |= StatementFlags::RESETS_SESSION;
            self.set_path_effect(super::PathEffect::Reset);
        } else if self.at_kw(Kw::Role)
            || (self.at_kw(Kw::Session) && self.at_kw_n(1, Kw::Authorization))
        {
            self.flags |= StatementFlags::SETS_ROLE;
            self.classes = ClassSet::single(StatementClass::Dcl);
        } else if self.at_kw(Kw::SearchPath) {
            self.flags |= StatementFlags::SETS_SEARCH_PATH;
            self.set_path_effect(super::PathEffect::Reset);
        }
        self.rest()
    }

    /// `CALL name(args)`: the procedure is recorded as a function call.
    fn call(&mut self) -> R<()> {
        self.expect_kw(Kw::Call)?;
        self.class(StatementClass::Call);
        let c = self.chain(false)?;
        self.function_call(&c, Clause::Other)
    }

    fn create(&mut self) -> R<()> {
        self.expect_kw(Kw::Create)?;
        if self.eat_kw(Kw::Or) {
            self.expect_kw(Kw::Replace)?;
        }
        let _ = self.eat_kw(Kw::Global) || self.eat_kw(Kw::Local);
        let _ = self.eat_kw(Kw::Temporary) || self.eat_kw(Kw::Temp) || self.eat_kw(Kw::Unlogged);
        if self.at_kw(Kw::Table) {
            self.next();
            if self.at_kw(Kw::If) {
                self.next();
                self.expect_kw(Kw::Not)?;
                self.expect_kw(Kw::Exists)?;
            }
            return self.create_table_like(false);
        }
        if self.at_kw(Kw::Materialized) {
            self.next();
            self.expect_kw(Kw::View)?;
            if self.at_kw(Kw::If) {
                self.next();
                self.expect_kw(Kw::Not)?;
                self.expect_kw(Kw::Exists)?;
            }
            return self.create_table_like(true);
        }
        if self.at_kw(Kw::Role)
            || self.at_kw(Kw::Group)
            || (self.at_kw(Kw::User) && !self.at_kw_n(1, Kw::Mapping))
        {
            self.class(StatementClass::Dcl);
            return self.rest();
        }
        if self.at_kw(Kw::Unique) || self.at_kw(Kw::Index) {
            self.class(StatementClass::Ddl);
            // … ON [ONLY] table …
            loop {
                let t = self.next();
                if t.kind == Kind::Eof {
                    return Ok(());
                }
                if t.is(Kw::On) {
                    self.eat_kw(Kw::Only);
                    let c = self.chain(false)?;
                    let q = self.resolve_table(&c)?;
                    self.push_access(StatementClass::Ddl, q)?;
                    return self.rest();
                }
            }
        }
        self.class(StatementClass::Ddl);
        self.rest()
    }

    /// After `CREATE … TABLE [IF NOT EXISTS]` / `CREATE MATERIALIZED VIEW …`: either
    /// `… AS query` (select-into: the new table is written from the query's reads) or a
    /// plain definition (ddl).
    fn create_table_like(&mut self, matview: bool) -> R<()> {
        let c = self.chain(false)?;
        let q = self.creation_name(&c)?;
        // Find `AS` at depth 0 followed by a query or EXECUTE.
        let mut depth = 0u32;
        loop {
            let t = self.peek();
            match t.kind {
                Kind::Eof => {
                    if matview {
                        return Err(Fail("materialized view without AS"));
                    }
                    self.class(StatementClass::Ddl);
                    self.push_access(StatementClass::Ddl, q)?;
                    return Ok(());
                }
                Kind::LParen => depth += 1,
                Kind::RParen => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth == 0 && t.is(Kw::As) {
                let n = self.peek_n(1);
                if n.kind == Kind::LParen
                    || [Kw::Select, Kw::Values, Kw::With, Kw::Table, Kw::Execute].contains(&n.kw)
                {
                    self.next();
                    break;
                }
            }
            self.next();
        }
        self.class(StatementClass::SelectInto);
        self.push_access(StatementClass::SelectInto, q)?;
        if self.at_kw(Kw::Execute) {
            self.execute()?;
        } else if self.at(Kind::LParen) {
            self.class(StatementClass::Select);
            self.query()?;
        } else {
            let c = self.dml_or_query()?;
            self.class(c);
        }
        if self.eat_kw(Kw::With) {
            self.eat_kw(Kw::No);
            self.expect_kw(Kw::Data)?;
        }
        Ok(())
    }

    fn alter(&mut self) -> R<()> {
        self.expect_kw(Kw::Alter)?;
        if self.at_kw(Kw::Role)
            || self.at_kw(Kw::Group)
            || (self.at_kw(Kw::User) && !self.at_kw_n(1, Kw::Mapping))
            || (self.at_kw(Kw::Default) && self.at_kw_n(1, Kw::Privileges))
        {
            self.class(StatementClass::Dcl);
            return self.rest();
        }
        self.class(StatementClass::Ddl);
        if self.eat_kw(Kw::Table) {
            if self.at_kw(Kw::If) {
                self.next();
                self.expect_kw(Kw::Exists)?;
            }
            if self.at_kw(Kw::All) {
                return self.rest();
            }
            self.eat_kw(Kw::Only);
            let c = self.chain(false)?;
            let q = self.resolve_table(&c)?;
            self.push_access(StatementClass::Ddl, q)?;
        }
        self.rest()
    }

    fn drop(&mut self) -> R<()> {
        self.expect_kw(Kw::Drop)?;
        if self.at_kw(Kw::Role)
            || self.at_kw(Kw::Group)
            || self.at_kw(Kw::Owned)
            || (self.at_kw(Kw::User) && !self.at_kw_n(1, Kw::Mapping))
        {
            self.class(StatementClass::Dcl);
            return self.rest();
        }
        self.class(StatementClass::Ddl);
        if self.eat_kw(Kw::Table) {
            if self.at_kw(Kw::If) {
                self.next();
                self.expect_kw(Kw::Exists)?;
            }
            loop {
                let c = self.chain(false)?;
                let q = self.resolve_table(&c)?;
                self.push_access(StatementClass::Ddl, q)?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
        }
        self.rest()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keyword_categories_follow_kwlist() {
        use super::super::keywords::lookup;
        assert!(lookup(b"SeLeCt").is_reserved());
        assert!(!lookup(b"ssn").is_reserved());
        assert!(lookup(b"JOIN").is_type_func_name());
    }
}

/// A short lower-cased copy of a keyword-length word, on the stack.
#[derive(Default, Clone, Copy)]
pub struct Lower {
    buf: [u8; 32],
    len: usize,
}

impl Lower {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

trait ToLowerFixed {
    fn to_ascii_lowercase_fixed(&self) -> Lower;
}

impl ToLowerFixed for str {
    /// Words longer than any keyword (or non-ASCII) become an empty `Lower`, which matches
    /// no keyword.
    fn to_ascii_lowercase_fixed(&self) -> Lower {
        let mut l = Lower::default();
        if self.len() > l.buf.len() || !self.is_ascii() {
            return l;
        }
        for (i, b) in self.bytes().enumerate() {
            l.buf[i] = b.to_ascii_lowercase();
        }
        l.len = self.len();
        l
    }
}
