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

/// PostgreSQL's reserved keywords (kwlist.h, RESERVED_KEYWORD): never a column or alias.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "system_user",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];
/// kwlist.h TYPE_FUNC_NAME_KEYWORD: function or type names, never columns or aliases.
const TYPE_FUNC_NAME: &[&str] = &[
    "authorization",
    "binary",
    "collation",
    "concurrently",
    "cross",
    "current_schema",
    "freeze",
    "full",
    "ilike",
    "inner",
    "is",
    "isnull",
    "join",
    "left",
    "like",
    "natural",
    "notnull",
    "outer",
    "overlaps",
    "right",
    "similar",
    "tablesample",
    "verbose",
];
/// Functions with special argument syntax whose arguments we read leniently: every
/// identifier inside that is not a keyword is reported as a column (over-reporting is safe).
const SPECIAL_SYNTAX_FUNCS: &[&str] = &[
    "xmlelement",
    "xmlforest",
    "xmlattributes",
    "xmlconcat",
    "xmlexists",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
    "json_object",
    "json_array",
    "json_objectagg",
    "json_arrayagg",
    "json_query",
    "json_value",
    "json_exists",
    "json_scalar",
    "json_serialize",
    "json",
    "json_table",
    "merge_action",
    "xmlnamespaces",
];
/// Words inside the lenient functions above that are syntax, not columns.
const SPECIAL_SYNTAX_WORDS: &[&str] = &[
    "name",
    "value",
    "passing",
    "by",
    "ref",
    "columns",
    "path",
    "ordinality",
    "returning",
    "format",
    "encoding",
    "error",
    "empty",
    "keep",
    "omit",
    "quotes",
    "scalar",
    "wrapper",
    "conditional",
    "unconditional",
    "array",
    "object",
    "keys",
    "absent",
    "nested",
    "document",
    "content",
    "version",
    "standalone",
    "yes",
    "no",
    "indent",
    "preserve",
    "strip",
    "whitespace",
    "xmlnamespaces",
    "exists",
    "true",
    "false",
    "unknown",
    "json",
    "text",
    "bytea",
    "varchar",
    "int",
    "integer",
    "jsonb",
    "xml",
    "boolean",
    "numeric",
    "character",
    "varying",
    "date",
    "time",
    "timestamp",
    "zone",
    "without",
    "with",
    "plan",
    "utf8",
    "string",
];

fn in_list(list: &[&str], word: &str) -> bool {
    list.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// Membership in a sorted keyword list (RESERVED, TYPE_FUNC_NAME): binary search on the
/// lower-cased word, since it runs for every identifier.
fn in_sorted(list: &[&str], word: &str) -> bool {
    let w = word.to_ascii_lowercase_fixed();
    !w.as_str().is_empty() && list.binary_search(&w.as_str()).is_ok()
}

/// A dotted name as written: up to [`MAX_NAME_PARTS`] parts, optionally ending in `*`.
#[derive(Clone, Copy)]
struct Chain {
    parts: [Name; MAX_NAME_PARTS],
    n: usize,
    star: bool,
    /// The first part was an unquoted identifier (so may be a keyword).
    first_unquoted: bool,
}

impl Chain {
    fn last(&self) -> &Name {
        &self.parts[self.n.saturating_sub(1)]
    }
}

pub struct Parser<'a, 'f, 'c> {
    sql: &'a str,
    lx: Lexer<'a>,
    peeked: Option<(Token, Lexer<'a>)>,
    /// End of the statement (byte offset): tokens at or after it are `Eof`.
    end: usize,
    pub facts: &'f mut Facts,
    ctx: &'c ClassifyContext<'c>,
    scopes: &'f mut Scopes,
    pub classes: ClassSet,
    pub flags: u32,
    pub prepared_name: NameRef,
    depth: u32,
    /// Backtracks left for this statement (each may re-read part of it).
    backtracks: u32,
    /// Tokens lexed (including lookahead): the work budget unit.
    pub work: u64,
}

/// Everything a failed alternative may have changed.
#[derive(Clone, Copy)]
struct Snapshot<'a> {
    lx: Lexer<'a>,
    facts: [u32; 5],
    scopes: (usize, u16, usize),
    classes: ClassSet,
    flags: u32,
    depth: u32,
}

/// Opening parentheses looked through to tell `((SELECT …` from `((a + b) …`.
pub const MAX_PAREN_LOOKAHEAD_TOKENS: usize = 32;

/// Backtracking attempts per statement: bounds the re-reading to a constant factor.
pub const MAX_BACKTRACKS: u32 = 16;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    pub fn new(
        sql: &'a str,
        start: usize,
        end: usize,
        facts: &'f mut Facts,
        scopes: &'f mut Scopes,
        ctx: &'c ClassifyContext<'c>,
    ) -> Self {
        scopes.reset();
        Parser {
            sql,
            lx: Lexer::at(sql, start),
            peeked: None,
            end,
            facts,
            ctx,
            scopes,
            classes: ClassSet::EMPTY,
            flags: 0,
            prepared_name: NameRef::EMPTY,
            depth: 0,
            backtracks: MAX_BACKTRACKS,
            work: 0,
        }
    }

    // ---------------------------------------------------------------- tokens

    fn lex(&mut self, lx: &mut Lexer<'a>) -> R<Token> {
        let before = lx.work;
        let t = lx.next_token();
        self.work += lx.work.saturating_sub(before);
        let t = t?;
        if t.start as usize >= self.end {
            return Ok(Token {
                kind: Kind::Eof,
                start: self.end as u32,
                end: self.end as u32,
            });
        }
        Ok(t)
    }

    fn peek(&mut self) -> R<Token> {
        if let Some((t, _)) = self.peeked {
            return Ok(t);
        }
        let mut lx = self.lx;
        let t = self.lex(&mut lx)?;
        self.peeked = Some((t, lx));
        Ok(t)
    }

    /// The token `n` places after the next one (`peek_n(0) == peek()`).
    fn peek_n(&mut self, n: usize) -> R<Token> {
        // Start after the cached next token: lookahead re-lexes only what it must.
        let (mut t, mut lx) = match self.peeked {
            Some(p) => p,
            None => {
                let mut lx = self.lx;
                let t = self.lex(&mut lx)?;
                self.peeked = Some((t, lx));
                (t, lx)
            }
        };
        for _ in 0..n {
            t = self.lex(&mut lx)?;
        }
        Ok(t)
    }

    fn next(&mut self) -> R<Token> {
        if let Some((t, lx)) = self.peeked.take() {
            self.lx = lx;
            return Ok(t);
        }
        let mut lx = self.lx;
        let t = self.lex(&mut lx)?;
        self.lx = lx;
        Ok(t)
    }

    fn snapshot(&self) -> Snapshot<'a> {
        Snapshot {
            lx: self.lx,
            facts: self.facts.current_mark(),
            scopes: self.scopes.mark(),
            classes: self.classes,
            flags: self.flags,
            depth: self.depth,
        }
    }
    fn rollback(&mut self, s: Snapshot<'a>) {
        self.restore(s.lx);
        self.facts.truncate_current(s.facts);
        self.scopes.restore(s.scopes);
        self.classes = s.classes;
        self.flags = s.flags;
        self.depth = s.depth;
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

    fn save(&self) -> Lexer<'a> {
        self.lx
    }
    fn restore(&mut self, lx: Lexer<'a>) {
        self.lx = lx;
        self.peeked = None;
    }

    fn at_kw(&mut self, kw: &str) -> R<bool> {
        let t = self.peek()?;
        Ok(t.is_kw(self.sql, kw))
    }
    fn at_kw_n(&mut self, n: usize, kw: &str) -> R<bool> {
        let t = self.peek_n(n)?;
        Ok(t.is_kw(self.sql, kw))
    }
    fn eat_kw(&mut self, kw: &str) -> R<bool> {
        if self.at_kw(kw)? {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }
    fn expect_kw(&mut self, kw: &'static str) -> R<()> {
        if self.eat_kw(kw)? {
            Ok(())
        } else {
            Err(Fail("unexpected token"))
        }
    }
    fn at(&mut self, k: Kind) -> R<bool> {
        Ok(self.peek()?.kind == k)
    }
    fn eat(&mut self, k: Kind) -> R<bool> {
        if self.at(k)? {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }
    fn expect(&mut self, k: Kind) -> R<Token> {
        let t = self.next()?;
        if t.kind == k {
            Ok(t)
        } else {
            Err(Fail("unexpected token"))
        }
    }
    fn at_end(&mut self) -> R<bool> {
        Ok(matches!(self.peek()?.kind, Kind::Eof))
    }
    fn expect_end(&mut self) -> R<()> {
        if self.at_end()? {
            Ok(())
        } else {
            Err(Fail("statement not fully understood"))
        }
    }
    fn text(&self, t: &Token) -> &'a str {
        t.text(self.sql)
    }
    fn is_reserved(&self, t: &Token) -> bool {
        t.kind == Kind::Ident
            && (in_sorted(RESERVED, self.text(t)) || in_sorted(TYPE_FUNC_NAME, self.text(t)))
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

    /// Skips to the end of the statement: for statements whose class is fully known from
    /// their first keywords and which carry no facts (transaction control, SHOW, …).
    fn rest(&mut self) -> R<()> {
        loop {
            if self.next()?.kind == Kind::Eof {
                return Ok(());
            }
        }
    }

    /// Skips a balanced `( … )` (the opening paren is next).
    fn skip_parens(&mut self) -> R<()> {
        self.expect(Kind::LParen)?;
        let mut depth = 1u32;
        loop {
            match self.next()?.kind {
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
        let t = self.next()?;
        if !t.is_name() {
            return Err(Fail("expected a name"));
        }
        self.name_of(&t)
    }

    /// `a[.b[.c[.d]]]` with an optional trailing `.*` (when `allow_star`).
    fn chain(&mut self, allow_star: bool) -> R<Chain> {
        let first = self.next()?;
        if !first.is_name() {
            return Err(Fail("expected a name"));
        }
        let mut c = Chain {
            parts: [Name::default(); MAX_NAME_PARTS],
            n: 1,
            star: false,
            first_unquoted: first.kind == Kind::Ident,
        };
        c.parts[0] = self.name_of(&first)?;
        while self.at(Kind::Dot)? {
            let t = self.peek_n(1)?;
            if t.is_op(self.sql, "*") && allow_star {
                self.next()?;
                self.next()?;
                c.star = true;
                break;
            }
            if !t.is_name() {
                break;
            }
            if c.n >= MAX_NAME_PARTS {
                return Err(Fail("name has too many parts"));
            }
            self.next()?;
            self.next()?;
            c.parts[c.n] = self.name_of(&t)?;
            c.n += 1;
        }
        Ok(c)
    }

    fn push(&mut self, s: &str) -> R<NameRef> {
        Ok(self.facts.push_name(s)?)
    }

    /// Resolves a relation name like PostgreSQL: qualified names are taken as written;
    /// unqualified ones search `pg_catalog` first, then the search path (with the catalog),
    /// else the first schema of the path. Without a catalog, `pg_*` names are `pg_catalog`.
    fn resolve_table(&mut self, c: &Chain) -> R<QualifiedName> {
        let name = c.last().as_str();
        if c.n >= 2 {
            let schema = c.parts[c.n - 2];
            let s = self.push(schema.as_str())?;
            let n = self.push(name)?;
            return Ok(QualifiedName { schema: s, name: n });
        }
        let schema: Option<&str> = match self.ctx.catalog {
            Some(cat) => {
                if cat.has_table("pg_catalog", name) {
                    Some("pg_catalog")
                } else {
                    self.ctx
                        .search_path
                        .iter()
                        .copied()
                        .find(|s| cat.has_table(s, name))
                        .or_else(|| self.ctx.search_path.first().copied())
                }
            }
            None if name.starts_with("pg_") => Some("pg_catalog"),
            None => self.ctx.search_path.first().copied(),
        };
        let s = match schema {
            Some(s) => self.push(s)?,
            None => NameRef::EMPTY,
        };
        let n = self.push(name)?;
        Ok(QualifiedName { schema: s, name: n })
    }

    fn push_access(&mut self, class: StatementClass, name: QualifiedName) -> R<u8> {
        let idx = self.facts.push_table(TableAccess { class, name })?;
        Ok(idx as u8)
    }

    /// Records a call of the function named by `c` (unqualified → `pg_catalog`).
    fn push_function(&mut self, c: &Chain) -> R<()> {
        let (schema, name) = if c.n >= 2 {
            (c.parts[c.n - 2].as_str(), c.last().as_str())
        } else {
            ("pg_catalog", c.last().as_str())
        };
        let s = self.push(schema)?;
        let n = self.push(name)?;
        self.facts.push_function(FunctionRef {
            name: QualifiedName { schema: s, name: n },
        })?;
        Ok(())
    }

    fn push_function_str(&mut self, name: &str) -> R<()> {
        let s = self.push("pg_catalog")?;
        let n = self.push(name)?;
        self.facts.push_function(FunctionRef {
            name: QualifiedName { schema: s, name: n },
        })?;
        Ok(())
    }

    // ---------------------------------------------------------------- columns

    /// The read access of scope entry `i`, created on first use for DML targets.
    fn entry_read(&mut self, i: usize) -> R<Option<u8>> {
        let Some(e) = self.scopes.get(i) else {
            return Ok(None);
        };
        match e.kind {
            EntryKind::Derived => Ok(None),
            EntryKind::Base {
                read: Some(r),
                name: _,
            } => Ok(Some(r)),
            EntryKind::Base { read: None, name } => {
                let r = self.push_access(StatementClass::Select, name)?;
                self.scopes.set_read(i, r);
                Ok(Some(r))
            }
        }
    }

    /// Every base table visible here (all levels: see the module docs).
    fn visible_bases(&mut self) -> R<u64> {
        let mut m = 0u64;
        for i in 0..self.scopes.len() {
            if let Some(r) = self.entry_read(i)? {
                m |= 1u64 << r;
            }
        }
        Ok(m)
    }

    /// Base tables of the current level (what `*` expands to).
    fn level_bases(&mut self) -> R<u64> {
        let mut m = 0u64;
        let level = self.scopes.level;
        for i in 0..self.scopes.len() {
            if self.scopes.get(i).is_some_and(|e| e.level == level)
                && let Some(r) = self.entry_read(i)?
            {
                m |= 1u64 << r;
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
        })?;
        Ok(())
    }

    /// A column reference written as `c` (no function call, no typed literal).
    fn column_ref(&mut self, c: &Chain, clause: Clause) -> R<()> {
        if c.n == 1 && !c.star {
            let name = c.parts[0];
            let candidates = self.visible_bases()?;
            let mut whole = 0u64;
            for i in 0..self.scopes.len() {
                if self.scopes.get(i).is_some_and(|e| e.name == name)
                    && let Some(r) = self.entry_read(i)?
                {
                    whole |= 1u64 << r;
                }
            }
            let n = self.push(name.as_str())?;
            return self.push_column(ColumnName::Named(n), candidates, whole, false, clause);
        }
        // Qualified: find the qualifier among the visible FROM items. `a.b.c` is
        // `schema.table.column` or `table.column.field`: try both.
        let (qual_idx, col): (Option<usize>, Option<Name>) = if c.star {
            (self.scopes.find(c.last()), None)
        } else {
            let mut found = (None, Some(*c.last()));
            let mut k = c.n - 1;
            while k > 0 {
                if let Some(i) = self.scopes.find(&c.parts[k - 1]) {
                    found = (Some(i), Some(c.parts[k]));
                    break;
                }
                k -= 1;
            }
            found
        };
        let candidates = match qual_idx {
            Some(i) => match self.entry_read(i)? {
                Some(r) => 1u64 << r,
                None => 0,
            },
            // Not a FROM item we know: be conservative, any visible table.
            None => self.visible_bases()?,
        };
        let name = match col {
            Some(n) => ColumnName::Named(self.push(n.as_str())?),
            None => ColumnName::All,
        };
        self.push_column(name, candidates, 0, true, clause)
    }

    // ---------------------------------------------------------------- statements

    /// One top-level statement, to its end.
    pub fn statement(&mut self) -> R<()> {
        let t = self.peek()?;
        if t.kind == Kind::LParen {
            self.class(StatementClass::Select);
            self.query()?;
            return self.expect_end();
        }
        if t.kind != Kind::Ident {
            return Err(Fail("statement does not start with a keyword"));
        }
        let kw = self.text(&t).to_ascii_lowercase_fixed();
        match kw.as_str() {
            "select" | "values" | "table" | "with" | "insert" | "update" | "delete" | "merge" => {
                let c = self.dml_or_query()?;
                self.class(c);
            }
            "truncate" => self.truncate()?,
            "copy" => self.copy()?,
            "lock" => self.lock()?,
            "explain" => self.explain()?,
            "prepare" => {
                if self.at_kw_n(1, "transaction")? {
                    self.class(StatementClass::Transaction);
                    self.rest()?;
                } else {
                    self.prepare()?;
                }
            }
            "execute" => self.execute()?,
            "deallocate" => {
                self.next()?;
                self.class(StatementClass::Prepare);
                self.flags |= StatementFlags::DEALLOCATES;
                self.eat_kw("prepare")?;
                if !self.eat_kw("all")? {
                    let n = self.any_name_token()?;
                    self.prepared_name = self.push(n.as_str())?;
                }
            }
            "declare" => self.declare()?,
            "fetch" | "move" | "close" => {
                self.class(StatementClass::Cursor);
                self.rest()?;
            }
            "begin" | "start" | "commit" | "end" | "rollback" | "abort" | "savepoint"
            | "release" => {
                self.class(StatementClass::Transaction);
                self.rest()?;
            }
            "set" => self.set()?,
            "reset" => self.reset()?,
            "show" => {
                self.class(StatementClass::Session);
                self.rest()?;
            }
            "discard" => {
                self.next()?;
                self.class(StatementClass::Session);
                if self.at_kw("all")? {
                    self.flags |= StatementFlags::RESETS_SESSION;
                }
                self.rest()?;
            }
            "listen" | "unlisten" | "notify" => {
                self.class(StatementClass::Notify);
                self.rest()?;
            }
            "call" => self.call()?,
            "do" => {
                self.class(StatementClass::Call);
                self.rest()?;
            }
            "grant" | "revoke" | "reassign" => {
                self.class(StatementClass::Dcl);
                self.rest()?;
            }
            "create" => self.create()?,
            "alter" => self.alter()?,
            "drop" => self.drop()?,
            "comment" | "security" | "import" => {
                self.class(StatementClass::Ddl);
                self.rest()?;
            }
            "refresh" => {
                // REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH [NO] DATA]
                self.next()?;
                self.expect_kw("materialized")?;
                self.expect_kw("view")?;
                self.eat_kw("concurrently")?;
                self.class(StatementClass::SelectInto);
                let c = self.chain(false)?;
                let q = self.resolve_table(&c)?;
                self.push_access(StatementClass::SelectInto, q)?;
                self.rest()?;
            }
            "vacuum" | "analyze" | "analyse" | "cluster" => self.maintenance()?,
            "reindex" | "checkpoint" | "load" => {
                self.class(StatementClass::Utility);
                self.next()?;
                if t.is_kw(self.sql, "reindex") {
                    // REINDEX [(opts)] TABLE [CONCURRENTLY] name
                    if self.at(Kind::LParen)? {
                        self.skip_parens()?;
                    }
                    if self.eat_kw("table")? {
                        self.eat_kw("concurrently")?;
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
        let cluster = self.at_kw("cluster")?;
        self.next()?;
        if self.at(Kind::LParen)? {
            self.skip_parens()?;
        }
        while ["full", "freeze", "verbose", "analyze", "analyse"]
            .iter()
            .any(|k| self.peek().is_ok_and(|t| t.is_kw(self.sql, k)))
        {
            self.next()?;
        }
        while self.peek()?.is_name() {
            let mut c = self.chain(false)?;
            if cluster && self.eat_kw("on")? {
                // Old syntax `CLUSTER index ON table`.
                c = self.chain(false)?;
            }
            let q = self.resolve_table(&c)?;
            self.push_access(StatementClass::Utility, q)?;
            if self.at(Kind::LParen)? {
                self.skip_parens()?;
            }
            if cluster && self.eat_kw("using")? {
                self.any_name_token()?;
            }
            if !self.eat(Kind::Comma)? {
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
        let r = self.dml_or_query_inner();
        self.scopes.cte_truncate(cte_mark);
        self.scopes.pop_level();
        self.leave();
        r
    }

    fn dml_or_query_inner(&mut self) -> R<StatementClass> {
        if self.at_kw("with")? {
            self.with_clause()?;
        }
        let t = self.peek()?;
        let kw = if t.kind == Kind::Ident {
            self.text(&t).to_ascii_lowercase_fixed()
        } else {
            Lower::default()
        };
        let class = match kw.as_str() {
            "insert" => {
                self.insert()?;
                StatementClass::Insert
            }
            "update" => {
                self.update()?;
                StatementClass::Update
            }
            "delete" => {
                self.delete()?;
                StatementClass::Delete
            }
            "merge" => {
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
        let r = (|| {
            if self.at_kw("with")? {
                self.with_clause()?;
            }
            self.set_expr()?;
            self.query_tail()
        })();
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
        // One lexer walks ahead (re-peeking from the start each time would be quadratic).
        self.peek()?;
        let Some((_, mut lx)) = self.peeked else {
            return Ok(Some(false));
        };
        loop {
            let t = self.lex(&mut lx)?;
            if t.kind == Kind::LParen {
                n += 1;
                if n > MAX_PAREN_LOOKAHEAD_TOKENS {
                    return Ok(Some(false));
                }
                continue;
            }
            let q = t.is_kw(self.sql, "select")
                || t.is_kw(self.sql, "values")
                || t.is_kw(self.sql, "with")
                || t.is_kw(self.sql, "table");
            return Ok(match (q, n) {
                (false, _) => Some(false),
                (true, 1) => Some(true),
                (true, _) => None,
            });
        }
    }

    /// `WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED] (stmt) [SEARCH …] [CYCLE …], …`
    fn with_clause(&mut self) -> R<()> {
        self.expect_kw("with")?;
        let recursive = self.eat_kw("recursive")?;
        if recursive {
            // In WITH RECURSIVE every CTE of the list is visible in every body, earlier
            // ones included (forward and mutual references): register all names first.
            let start = self.save();
            loop {
                let name = self.any_name_token()?;
                self.scopes.add_cte(name)?;
                if self.at(Kind::LParen)? {
                    self.skip_parens()?;
                }
                self.expect_kw("as")?;
                if self.eat_kw("not")? {
                    self.expect_kw("materialized")?;
                } else {
                    self.eat_kw("materialized")?;
                }
                self.skip_parens()?;
                self.skip_search_cycle()?;
                if !self.eat(Kind::Comma)? {
                    break;
                }
            }
            self.restore(start);
        }
        loop {
            let name = self.any_name_token()?;
            if self.at(Kind::LParen)? {
                self.skip_parens()?;
            }
            self.expect_kw("as")?;
            if self.eat_kw("not")? {
                self.expect_kw("materialized")?;
            } else {
                self.eat_kw("materialized")?;
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
            if !self.eat(Kind::Comma)? {
                break;
            }
        }
        Ok(())
    }

    /// `SEARCH {BREADTH|DEPTH} FIRST BY cols SET col` / `CYCLE cols SET col [TO v DEFAULT
    /// v] USING col`: names of the CTE's own output columns, skipped.
    fn skip_search_cycle(&mut self) -> R<()> {
        while self.at_kw("search")? || self.at_kw("cycle")? {
            loop {
                let t = self.peek()?;
                if matches!(t.kind, Kind::Eof | Kind::Comma | Kind::LParen)
                    && !(t.kind == Kind::Comma && self.in_search_list()?)
                {
                    break;
                }
                if [
                    "select", "insert", "update", "delete", "merge", "values", "table",
                ]
                .iter()
                .any(|k| t.is_kw(self.sql, k))
                {
                    break;
                }
                self.next()?;
            }
        }
        Ok(())
    }

    /// Inside SEARCH/CYCLE, a comma separates column names when a name follows and the
    /// token after that is not `AS`/`(` (which would start the next CTE).
    fn in_search_list(&mut self) -> R<bool> {
        let a = self.peek_n(1)?;
        let b = self.peek_n(2)?;
        Ok(a.is_name() && !b.is_kw(self.sql, "as") && b.kind != Kind::LParen)
    }

    /// `term ((UNION|INTERSECT|EXCEPT) [ALL|DISTINCT] term)*`
    fn set_expr(&mut self) -> R<()> {
        loop {
            self.select_term()?;
            if self.eat_kw("union")? || self.eat_kw("intersect")? || self.eat_kw("except")? {
                if !self.eat_kw("all")? {
                    self.eat_kw("distinct")?;
                }
                continue;
            }
            return Ok(());
        }
    }

    fn select_term(&mut self) -> R<()> {
        let t = self.peek()?;
        if t.kind == Kind::LParen {
            self.next()?;
            self.query()?;
            self.expect(Kind::RParen)?;
            return Ok(());
        }
        if t.is_kw(self.sql, "select") {
            return self.simple_select();
        }
        if t.is_kw(self.sql, "values") {
            self.next()?;
            loop {
                self.expect(Kind::LParen)?;
                self.expr_list_until_rparen(Clause::Other)?;
                if !self.eat(Kind::Comma)? {
                    return Ok(());
                }
            }
        }
        if t.is_kw(self.sql, "table") {
            // `TABLE name` = `SELECT * FROM name`.
            self.next()?;
            self.eat_kw("only")?;
            let c = self.chain(false)?;
            self.eat_op("*")?;
            let q = self.resolve_table(&c)?;
            let r = self.push_access(StatementClass::Select, q)?;
            return self.push_column(ColumnName::All, 1u64 << r, 0, true, Clause::SelectList);
        }
        Err(Fail("expected SELECT, VALUES, TABLE or ("))
    }

    fn eat_op(&mut self, op: &str) -> R<bool> {
        let t = self.peek()?;
        if t.is_op(self.sql, op) {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// `ORDER BY …`, `LIMIT`, `OFFSET`, `FETCH`, `FOR UPDATE …`, in any order.
    fn query_tail(&mut self) -> R<()> {
        loop {
            if self.at_kw("order")? {
                self.next()?;
                self.expect_kw("by")?;
                self.sort_list(Clause::OrderBy)?;
            } else if self.eat_kw("limit")? {
                if !self.eat_kw("all")? {
                    self.expr(Clause::Other)?;
                }
                if self.eat(Kind::Comma)? {
                    // LIMIT a, b: PostgreSQL rejects it, so do we.
                    return Err(Fail("LIMIT #,# syntax"));
                }
            } else if self.eat_kw("offset")? {
                self.expr(Clause::Other)?;
                if !self.eat_kw("row")? {
                    self.eat_kw("rows")?;
                }
            } else if self.eat_kw("fetch")? {
                if !self.eat_kw("first")? {
                    self.expect_kw("next")?;
                }
                if !(self.at_kw("row")? || self.at_kw("rows")?) {
                    self.expr(Clause::Other)?;
                }
                if !self.eat_kw("row")? {
                    self.expect_kw("rows")?;
                }
                if !self.eat_kw("only")? {
                    self.expect_kw("with")?;
                    self.expect_kw("ties")?;
                }
            } else if self.at_kw("for")? {
                self.next()?;
                // FOR {UPDATE | NO KEY UPDATE | SHARE | KEY SHARE} [OF names] [NOWAIT | SKIP LOCKED]
                if self.eat_kw("no")? {
                    self.expect_kw("key")?;
                    self.expect_kw("update")?;
                } else if self.eat_kw("key")? || !self.eat_kw("update")? {
                    self.expect_kw("share")?;
                }
                // Row locks need UPDATE privilege in PostgreSQL: policy sees them as `lock`
                // accesses on the tables locked.
                self.class(StatementClass::Lock);
                if self.eat_kw("of")? {
                    loop {
                        let c = self.chain(false)?;
                        if let Some(i) = self.scopes.find(c.last())
                            && let Some(e) = self.scopes.get(i)
                            && let EntryKind::Base { name, .. } = e.kind
                        {
                            self.push_access(StatementClass::Lock, name)?;
                        }
                        if !self.eat(Kind::Comma)? {
                            break;
                        }
                    }
                } else {
                    let level = self.scopes.level;
                    for i in 0..self.scopes.len() {
                        if let Some(e) = self.scopes.get(i)
                            && e.level == level
                            && let EntryKind::Base { name, .. } = e.kind
                        {
                            self.push_access(StatementClass::Lock, name)?;
                        }
                    }
                }
                if !self.eat_kw("nowait")? && self.eat_kw("skip")? {
                    self.expect_kw("locked")?;
                }
            } else {
                return Ok(());
            }
        }
    }

    /// `expr [ASC|DESC|USING op] [NULLS FIRST|LAST], …`
    fn sort_list(&mut self, clause: Clause) -> R<()> {
        loop {
            self.expr(clause)?;
            if !self.eat_kw("asc")? && !self.eat_kw("desc")? && self.eat_kw("using")? {
                self.operator_name()?;
            }
            if self.eat_kw("nulls")? && !self.eat_kw("first")? {
                self.expect_kw("last")?;
            }
            if !self.eat(Kind::Comma)? {
                return Ok(());
            }
        }
    }

    /// An operator after `USING`: `<` or `OPERATOR(schema.op)`.
    fn operator_name(&mut self) -> R<()> {
        let t = self.next()?;
        if t.kind == Kind::Op {
            return Ok(());
        }
        if t.is_kw(self.sql, "operator") {
            self.skip_parens()?;
            return Ok(());
        }
        Err(Fail("expected an operator"))
    }

    /// Stops (without consuming) at a clause keyword at parenthesis depth 0: used to read
    /// FROM before the target list that precedes it, as PostgreSQL's scoping requires.
    fn skip_to_clause(&mut self, stops: &[&str]) -> R<()> {
        let mut depth = 0u32;
        let mut prev_distinct = false;
        let mut prev_within = false;
        let mut prev_collation = false;
        loop {
            let t = self.peek()?;
            match t.kind {
                Kind::Eof | Kind::Semicolon => return Ok(()),
                Kind::LParen | Kind::LBracket => depth += 1,
                Kind::RParen | Kind::RBracket => {
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                Kind::Ident if depth == 0 => {
                    let w = self.text(&t);
                    // `a IS [NOT] DISTINCT FROM b` is not a FROM clause.
                    // `WITH [NO] DATA` ends CREATE TABLE AS's query.
                    if w.eq_ignore_ascii_case("with") {
                        let n = self.peek_n(1)?;
                        if n.is_kw(self.sql, "no") || n.is_kw(self.sql, "data") {
                            return Ok(());
                        }
                    }
                    if in_list(stops, w)
                        && !(prev_distinct && w.eq_ignore_ascii_case("from"))
                        && !(prev_within && w.eq_ignore_ascii_case("group"))
                        && !(prev_collation && w.eq_ignore_ascii_case("for"))
                    {
                        return Ok(());
                    }
                }
                _ => {}
            }
            prev_distinct = t.is_kw(self.sql, "distinct");
            prev_within = t.is_kw(self.sql, "within");
            prev_collation = t.is_kw(self.sql, "collation");
            self.next()?;
        }
    }

    const SELECT_CLAUSES: &'static [&'static str] = &[
        "into",
        "from",
        "where",
        "group",
        "having",
        "window",
        "union",
        "intersect",
        "except",
        "order",
        "limit",
        "offset",
        "fetch",
        "for",
        "returning",
        "on",
    ];

    fn simple_select(&mut self) -> R<()> {
        self.expect_kw("select")?;
        let mut distinct_on = None;
        if self.eat_kw("distinct")? {
            if self.at_kw("on")? {
                self.next()?;
                distinct_on = Some(self.save());
                self.skip_parens()?;
            }
        } else {
            self.eat_kw("all")?;
        }
        let targets = self.save();
        self.skip_to_clause(Self::SELECT_CLAUSES)?;
        let targets_end = self.peek()?.start;
        if self.at_kw("into")? {
            self.select_into_clause()?;
        }
        if self.eat_kw("from")? {
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
        if self.peek()?.start < targets_end {
            self.target_list(Clause::SelectList)?;
        }
        if self.peek()?.start != targets_end {
            return Err(Fail("target list not understood"));
        }
        self.restore(after_from);
        if self.eat_kw("where")? {
            self.expr(Clause::Where)?;
        }
        if self.at_kw("group")? {
            self.next()?;
            self.expect_kw("by")?;
            if !self.eat_kw("all")? {
                self.eat_kw("distinct")?;
            }
            self.grouping_list()?;
        }
        if self.eat_kw("having")? {
            self.expr(Clause::Having)?;
        }
        if self.eat_kw("window")? {
            loop {
                self.any_name_token()?;
                self.expect_kw("as")?;
                self.window_spec()?;
                if !self.eat(Kind::Comma)? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `INTO [TEMPORARY|TEMP|UNLOGGED] [TABLE] name`
    fn select_into_clause(&mut self) -> R<()> {
        self.expect_kw("into")?;
        let _ = self.eat_kw("temporary")? || self.eat_kw("temp")? || self.eat_kw("unlogged")?;
        self.eat_kw("table")?;
        let c = self.chain(false)?;
        let q = self.resolve_table(&c)?;
        self.push_access(StatementClass::SelectInto, q)?;
        self.class(StatementClass::SelectInto);
        Ok(())
    }

    fn grouping_list(&mut self) -> R<()> {
        loop {
            self.grouping_item()?;
            if !self.eat(Kind::Comma)? {
                return Ok(());
            }
        }
    }

    fn grouping_item(&mut self) -> R<()> {
        if self.at(Kind::LParen)? && self.peek_n(1)?.kind == Kind::RParen {
            self.next()?;
            self.next()?;
            return Ok(());
        }
        if (self.at_kw("rollup")? || self.at_kw("cube")?) && self.peek_n(1)?.kind == Kind::LParen {
            self.next()?;
            self.expect(Kind::LParen)?;
            self.expr_list_until_rparen(Clause::GroupBy)?;
            return Ok(());
        }
        if self.at_kw("grouping")? && self.at_kw_n(1, "sets")? {
            self.next()?;
            self.next()?;
            self.expect(Kind::LParen)?;
            self.enter()?;
            if !self.at(Kind::RParen)? {
                self.grouping_list()?;
            }
            self.leave();
            self.expect(Kind::RParen)?;
            return Ok(());
        }
        self.expr(Clause::GroupBy)
    }

    /// `( [name] [PARTITION BY …] [ORDER BY …] [frame] )`
    fn window_spec(&mut self) -> R<()> {
        self.expect(Kind::LParen)?;
        let t = self.peek()?;
        if t.is_name()
            && !["partition", "order", "range", "rows", "groups"]
                .iter()
                .any(|k| t.is_kw(self.sql, k))
        {
            self.next()?;
        }
        if self.eat_kw("partition")? {
            self.expect_kw("by")?;
            loop {
                self.expr(Clause::Window)?;
                if !self.eat(Kind::Comma)? {
                    break;
                }
            }
        }
        if self.eat_kw("order")? {
            self.expect_kw("by")?;
            self.sort_list(Clause::Window)?;
        }
        if self.eat_kw("range")? || self.eat_kw("rows")? || self.eat_kw("groups")? {
            if self.eat_kw("between")? {
                self.frame_bound()?;
                self.expect_kw("and")?;
                self.frame_bound()?;
            } else {
                self.frame_bound()?;
            }
            if self.eat_kw("exclude")? {
                if self.eat_kw("current")? {
                    self.expect_kw("row")?;
                } else if self.eat_kw("no")? {
                    self.expect_kw("others")?;
                } else if !self.eat_kw("group")? {
                    self.expect_kw("ties")?;
                }
            }
        }
        self.expect(Kind::RParen)?;
        Ok(())
    }

    fn frame_bound(&mut self) -> R<()> {
        if self.eat_kw("unbounded")? {
            if !self.eat_kw("preceding")? {
                self.expect_kw("following")?;
            }
            return Ok(());
        }
        if self.at_kw("current")? && self.at_kw_n(1, "row")? {
            self.next()?;
            self.next()?;
            return Ok(());
        }
        self.expr(Clause::Window)?;
        if !self.eat_kw("preceding")? {
            self.expect_kw("following")?;
        }
        Ok(())
    }

    /// `item [AS label | label], …` (select list, RETURNING).
    fn target_list(&mut self, clause: Clause) -> R<()> {
        loop {
            if self.peek()?.is_op(self.sql, "*") {
                self.next()?;
                let m = self.level_bases()?;
                self.push_column(ColumnName::All, m, 0, false, clause)?;
            } else {
                self.expr(clause)?;
                if self.eat_kw("as")? {
                    self.any_name_token()?;
                } else {
                    let t = self.peek()?;
                    if t.kind == Kind::QuotedIdent
                        || (t.kind == Kind::Ident
                            && !in_list(Self::SELECT_CLAUSES, self.text(&t))
                            && !t.is_kw(self.sql, "as")
                            && !t.is_kw(self.sql, "with"))
                    {
                        // A bare column label.
                        self.next()?;
                    }
                }
            }
            if !self.eat(Kind::Comma)? {
                return Ok(());
            }
        }
    }

    // ---------------------------------------------------------------- FROM

    fn table_list(&mut self) -> R<()> {
        loop {
            self.table_item()?;
            if !self.eat(Kind::Comma)? {
                return Ok(());
            }
        }
    }

    fn table_item(&mut self) -> R<()> {
        self.enter()?;
        self.table_primary()?;
        while self.join_step()? {}
        self.leave();
        Ok(())
    }

    /// Whether a join operator (`[NATURAL] [INNER|LEFT|RIGHT|FULL [OUTER]] JOIN`, `CROSS
    /// JOIN`) starts here.
    fn at_join(&mut self) -> R<bool> {
        let t = self.peek()?;
        Ok(
            ["join", "cross", "natural", "inner", "left", "right", "full"]
                .iter()
                .any(|k| t.is_kw(self.sql, k)),
        )
    }

    /// One join operator, its right operand and its qualifier. PostgreSQL's grammar lets
    /// the right operand be a join itself whose qualifier comes first
    /// (`a LEFT JOIN b FULL JOIN c ON x ON y`), so the right side takes further joins
    /// until this join's ON/USING.
    fn join_step(&mut self) -> R<bool> {
        if !self.at_join()? {
            return Ok(false);
        }
        self.enter()?;
        if self.eat_kw("cross")? {
            self.expect_kw("join")?;
            self.table_primary()?;
            self.leave();
            return Ok(true);
        }
        let natural = self.eat_kw("natural")?;
        if !self.eat_kw("inner")?
            && (self.eat_kw("left")? || self.eat_kw("right")? || self.eat_kw("full")?)
        {
            self.eat_kw("outer")?;
        }
        self.expect_kw("join")?;
        self.table_primary()?;
        if natural {
            // NATURAL JOIN compares every common column.
            let m = self.level_bases()?;
            self.push_column(ColumnName::All, m, 0, false, Clause::Join)?;
            self.leave();
            return Ok(true);
        }
        while !self.at_kw("on")? && !self.at_kw("using")? && self.join_step()? {}
        if self.eat_kw("on")? {
            self.expr(Clause::Join)?;
        } else if self.eat_kw("using")? {
            self.expect(Kind::LParen)?;
            let m = self.level_bases()?;
            loop {
                let n = self.any_name_token()?;
                let r = self.push(n.as_str())?;
                self.push_column(ColumnName::Named(r), m, 0, false, Clause::Join)?;
                if !self.eat(Kind::Comma)? {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
            if self.eat_kw("as")? {
                let a = self.any_name_token()?;
                self.scopes.add(a, EntryKind::Derived)?;
            }
        } else {
            return Err(Fail("JOIN without ON/USING"));
        }
        self.leave();
        Ok(true)
    }

    /// `[AS] alias [(cols)]`; returns the alias if there is one. `no_bare` lists words that
    /// must not be taken as a bare alias in this position (e.g. `SET` after UPDATE's target).
    fn alias(&mut self, no_bare: &[&str]) -> R<Option<Name>> {
        let name = if self.eat_kw("as")? {
            Some(self.any_name_token()?)
        } else {
            let t = self.peek()?;
            let bare = match t.kind {
                Kind::QuotedIdent | Kind::UnicodeIdent(_) => true,
                Kind::Ident => !self.is_reserved(&t) && !in_list(no_bare, self.text(&t)),
                _ => false,
            };
            if bare {
                self.next()?;
                Some(self.name_of(&t)?)
            } else {
                None
            }
        };
        if name.is_some() && self.at(Kind::LParen)? {
            self.skip_parens()?;
        }
        Ok(name)
    }

    fn table_primary(&mut self) -> R<()> {
        self.eat_kw("lateral")?;
        let t = self.peek()?;
        if t.kind == Kind::LParen {
            // `(query) alias` or `(joined tables) [alias]`; `((…` can be either.
            fn derived(p: &mut Parser<'_, '_, '_>) -> R<()> {
                p.next()?;
                p.query()?;
                p.expect(Kind::RParen)?;
                if let Some(a) = p.alias(&[])? {
                    p.scopes.add(a, EntryKind::Derived)?;
                }
                Ok(())
            }
            fn joined(p: &mut Parser<'_, '_, '_>) -> R<()> {
                p.next()?;
                p.table_item()?;
                p.expect(Kind::RParen)?;
                if let Some(a) = p.alias(&[])? {
                    p.scopes.add(a, EntryKind::Derived)?;
                }
                Ok(())
            }
            return match self.paren_starts_query()? {
                Some(true) => derived(self),
                Some(false) => joined(self),
                None => self.either(derived, joined),
            };
        }
        if t.is_kw(self.sql, "rows") && self.at_kw_n(1, "from")? {
            self.next()?;
            self.next()?;
            self.expect(Kind::LParen)?;
            loop {
                let c = self.chain(false)?;
                self.function_call(&c, Clause::Other)?;
                if self.eat_kw("as")? {
                    self.skip_parens()?;
                }
                if !self.eat(Kind::Comma)? {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
            self.func_alias()?;
            return Ok(());
        }
        if t.is_kw(self.sql, "only") {
            self.next()?;
            let paren = self.eat(Kind::LParen)?;
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
        if self.at(Kind::LParen)? {
            self.function_call(&c, Clause::Other)?;
            self.func_alias()?;
            return Ok(());
        }
        if c.n == 1 && c.first_unquoted && in_sorted(RESERVED, c.parts[0].as_str()) {
            return Err(Fail("reserved keyword in FROM"));
        }
        self.table_ref(&c)
    }

    /// `[WITH ORDINALITY] [[AS] alias [(coldefs)] | AS (coldefs)]` after a function in FROM.
    fn func_alias(&mut self) -> R<()> {
        if self.at_kw("with")? && self.at_kw_n(1, "ordinality")? {
            self.next()?;
            self.next()?;
        }
        if self.at_kw("as")? && self.peek_n(1)?.kind == Kind::LParen {
            self.next()?;
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
        self.eat_op("*")?;
        let alias = self.alias(&[])?;
        let entry_name = alias.unwrap_or(*c.last());
        if c.n == 1 && self.scopes.is_cte(&c.parts[0]) {
            self.scopes.add(entry_name, EntryKind::Derived)?;
        } else {
            let q = self.resolve_table(c)?;
            let r = self.push_access(StatementClass::Select, q)?;
            self.scopes.add(
                entry_name,
                EntryKind::Base {
                    read: Some(r),
                    name: q,
                },
            )?;
        }
        if self.eat_kw("tablesample")? {
            let m = self.chain(false)?;
            self.function_call(&m, Clause::Other)?;
            if self.eat_kw("repeatable")? {
                self.expect(Kind::LParen)?;
                self.expr_list_until_rparen(Clause::Other)?;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- expressions

    /// `expr, expr, … )` — consumes the closing paren. Empty lists are allowed.
    fn expr_list_until_rparen(&mut self, clause: Clause) -> R<()> {
        if self.eat(Kind::RParen)? {
            return Ok(());
        }
        loop {
            self.expr(clause)?;
            if !self.eat(Kind::Comma)? {
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
            let t = self.peek()?;
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
                    self.next()?;
                    if op == "*" && !operand && !lenient {
                        return Err(Fail("unexpected *"));
                    }
                    operand = false;
                }
                Kind::Typecast => {
                    self.next()?;
                    self.type_name()?;
                    operand = true;
                }
                Kind::Dot => {
                    if !operand {
                        return Err(Fail("unexpected ."));
                    }
                    self.next()?;
                    let f = self.next()?;
                    if !(f.is_name() || f.is_op(self.sql, "*")) {
                        return Err(Fail("expected a field name"));
                    }
                }
                Kind::LBracket => {
                    self.next()?;
                    self.enter()?;
                    loop {
                        if self.eat(Kind::RBracket)? {
                            break;
                        }
                        if self.eat(Kind::Colon)? || self.eat(Kind::Comma)? {
                            continue;
                        }
                        if self.at(Kind::LBracket)? {
                            // Nested array literal `[[1,2],[3,4]]` after ARRAY.
                            self.expr_inner(clause, lenient)?;
                            continue;
                        }
                        let before = self.peek()?.start;
                        self.expr(clause)?;
                        if self.peek()?.start == before {
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
                    self.next()?;
                    operand = true;
                }
                Kind::Ident | Kind::QuotedIdent | Kind::UnicodeIdent(_) => {
                    if operand {
                        if t.kind != Kind::Ident {
                            if lenient {
                                self.next()?;
                                continue;
                            }
                            break;
                        }
                        let w = self.text(&t).to_ascii_lowercase_fixed();
                        match w.as_str() {
                            "and" | "or" | "like" | "ilike" | "in" | "overlaps" | "escape"
                            | "not" => {
                                self.next()?;
                                operand = false;
                            }
                            "between" => {
                                self.next()?;
                                let _ = self.eat_kw("symmetric")? || self.eat_kw("asymmetric")?;
                                operand = false;
                            }
                            "similar" => {
                                self.next()?;
                                self.expect_kw("to")?;
                                operand = false;
                            }
                            "is" => {
                                self.next()?;
                                operand = self.is_tail()?;
                            }
                            "isnull" | "notnull" => {
                                self.next()?;
                            }
                            "at" => {
                                self.next()?;
                                if !self.eat_kw("local")? {
                                    self.expect_kw("time")?;
                                    self.expect_kw("zone")?;
                                    operand = false;
                                }
                            }
                            "collate" => {
                                self.next()?;
                                self.chain(false)?;
                            }
                            "operator" if self.peek_n(1)?.kind == Kind::LParen => {
                                self.next()?;
                                self.skip_parens()?;
                                operand = false;
                            }
                            "when" | "then" | "else" if case_depth > 0 => {
                                self.next()?;
                                operand = false;
                            }
                            "end" if case_depth > 0 => {
                                self.next()?;
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
            let t = p.peek()?;
            let w = p.text(&t);
            if in_list(SPECIAL_SYNTAX_WORDS, w) || p.is_reserved(&t) {
                p.next()?;
                return Ok(());
            }
            let c = p.chain(true)?;
            if p.at(Kind::LParen)? {
                return p.function_call(&c, clause);
            }
            p.column_ref(&c, clause)
        }
    }

    /// After `IS`: returns whether an operand was completed.
    fn is_tail(&mut self) -> R<bool> {
        self.eat_kw("not")?;
        if self.eat_kw("distinct")? {
            self.expect_kw("from")?;
            return Ok(false);
        }
        for w in ["null", "true", "false", "unknown", "document"] {
            if self.eat_kw(w)? {
                return Ok(true);
            }
        }
        let _ = self.eat_kw("nfc")?
            || self.eat_kw("nfd")?
            || self.eat_kw("nfkc")?
            || self.eat_kw("nfkd")?;
        if self.eat_kw("normalized")? {
            return Ok(true);
        }
        if self.eat_kw("json")? {
            let _ = self.eat_kw("value")?
                || self.eat_kw("array")?
                || self.eat_kw("object")?
                || self.eat_kw("scalar")?;
            if self.eat_kw("with")? || self.eat_kw("without")? {
                self.expect_kw("unique")?;
                self.eat_kw("keys")?;
            }
            return Ok(true);
        }
        if self.eat_kw("of")? {
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
        let t = self.peek()?;
        let next = self.peek_n(1)?;
        if t.kind == Kind::Ident {
            let w = self.text(&t).to_ascii_lowercase_fixed();
            let paren = next.kind == Kind::LParen;
            match w.as_str() {
                "null" | "true" | "false" | "current_date" | "current_role" | "current_user"
                | "session_user" | "user" | "system_user" | "current_catalog" | "default" => {
                    self.next()?;
                    return Ok(Some(true));
                }
                "current_time" | "current_timestamp" | "localtime" | "localtimestamp"
                | "current_schema" => {
                    self.next()?;
                    if paren {
                        self.skip_parens()?;
                    }
                    return Ok(Some(true));
                }
                "not" | "distinct" | "variadic" | "in" | "like" | "ilike" => {
                    self.next()?;
                    return Ok(Some(false));
                }
                "all" if !paren => {
                    self.next()?;
                    return Ok(Some(false));
                }
                "between" => {
                    self.next()?;
                    let _ = self.eat_kw("symmetric")? || self.eat_kw("asymmetric")?;
                    return Ok(Some(false));
                }
                "similar" => {
                    self.next()?;
                    self.expect_kw("to")?;
                    return Ok(Some(false));
                }
                "case" => {
                    self.next()?;
                    *case_depth += 1;
                    return Ok(Some(false));
                }
                "when" | "then" | "else" if *case_depth > 0 => {
                    self.next()?;
                    return Ok(Some(false));
                }
                "cast" | "treat" if paren => {
                    self.next()?;
                    self.next()?;
                    self.expr(clause)?;
                    self.expect_kw("as")?;
                    self.type_name()?;
                    self.expect(Kind::RParen)?;
                    return Ok(Some(true));
                }
                "exists" if paren => {
                    self.next()?;
                    self.paren_expr(clause, lenient)?;
                    return Ok(Some(true));
                }
                "array" if paren || next.kind == Kind::LBracket => {
                    self.next()?;
                    if paren {
                        self.paren_expr(clause, lenient)?;
                    } else {
                        self.array_literal(clause)?;
                    }
                    return Ok(Some(true));
                }
                "any" | "some" | "all" | "row" | "grouping" | "coalesce" | "greatest" | "least"
                | "nullif"
                    if paren =>
                {
                    self.next()?;
                    self.paren_expr(clause, lenient)?;
                    return Ok(Some(true));
                }
                "extract" if paren => {
                    // EXTRACT(field FROM expr): the field is a keyword or string.
                    self.next()?;
                    self.next()?;
                    self.push_function_str("extract")?;
                    let f = self.next()?;
                    if !(f.is_name() || f.is_string()) {
                        return Err(Fail("bad EXTRACT"));
                    }
                    self.expect_kw("from")?;
                    self.expr(clause)?;
                    self.expect(Kind::RParen)?;
                    return Ok(Some(true));
                }
                "normalize" if paren => {
                    self.next()?;
                    self.next()?;
                    self.push_function_str("normalize")?;
                    self.expr(clause)?;
                    if self.eat(Kind::Comma)? {
                        self.any_name_token()?;
                    }
                    self.expect(Kind::RParen)?;
                    return Ok(Some(true));
                }
                "interval" if next.is_string() || paren => {
                    self.next()?;
                    if paren {
                        self.skip_parens()?;
                    }
                    if !self.peek()?.is_string() {
                        return Err(Fail("bad interval literal"));
                    }
                    self.next()?;
                    self.interval_fields()?;
                    return Ok(Some(true));
                }
                "timestamp" | "time"
                    if paren
                        || next.is_string()
                        || next.is_kw(self.sql, "with")
                        || next.is_kw(self.sql, "without") =>
                {
                    // Typed literal: TIME[STAMP] [(p)] [WITH[OUT] TIME ZONE] 'literal'.
                    self.next()?;
                    if paren {
                        self.skip_parens()?;
                    }
                    if self.eat_kw("with")? || self.eat_kw("without")? {
                        self.expect_kw("time")?;
                        self.expect_kw("zone")?;
                    }
                    if !self.peek()?.is_string() {
                        return Err(Fail("bad typed literal"));
                    }
                    self.next()?;
                    return Ok(Some(true));
                }
                "double" if next.is_kw(self.sql, "precision") => {
                    self.next()?;
                    self.next()?;
                    if !self.peek()?.is_string() {
                        return Err(Fail("bad typed literal"));
                    }
                    self.next()?;
                    return Ok(Some(true));
                }
                "collation" if next.is_kw(self.sql, "for") => {
                    // COLLATION FOR (expr)
                    self.next()?;
                    self.next()?;
                    self.push_function_str("pg_collation_for")?;
                    self.paren_expr(clause, lenient)?;
                    return Ok(Some(true));
                }
                "operator" if paren => {
                    // Prefix operator `OPERATOR(schema.-) x`.
                    self.next()?;
                    self.skip_parens()?;
                    return Ok(Some(false));
                }
                _ => {}
            }
            if in_sorted(RESERVED, w.as_str()) {
                return Ok(None);
            }
            if in_sorted(TYPE_FUNC_NAME, w.as_str()) && !paren {
                return Ok(None);
            }
            // In lenient (XML/JSON) arguments a syntax word in operand position (`NAME`,
            // `VALUE`, …) is still read as a column: `xmlforest(name, date)` names
            // columns, and over-reporting is the safe side.
        }
        // A name: column reference, function call or typed literal.
        let c = self.chain(true)?;
        if self.at(Kind::LParen)? && !c.star {
            self.function_call(&c, clause)?;
            return Ok(Some(true));
        }
        if self.peek()?.is_string() && !c.star {
            // `type 'literal'` (e.g. date '2020-01-01').
            self.next()?;
            return Ok(Some(true));
        }
        if self.peek()?.is_op(self.sql, "=>") {
            // Named argument `name => value`: not a column.
            self.next()?;
            return Ok(Some(false));
        }
        self.column_ref(&c, clause)?;
        Ok(Some(true))
    }

    fn array_literal(&mut self, clause: Clause) -> R<()> {
        self.expect(Kind::LBracket)?;
        self.enter()?;
        loop {
            if self.eat(Kind::RBracket)? {
                break;
            }
            if self.eat(Kind::Comma)? {
                continue;
            }
            if self.at(Kind::LBracket)? {
                self.array_literal(clause)?;
                continue;
            }
            let before = self.peek()?.start;
            self.expr(clause)?;
            if self.peek()?.start == before {
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
            if self.eat(Kind::RBracket)? {
                return Ok(());
            }
            if self.eat(Kind::Colon)? {
                continue;
            }
            let before = self.peek()?.start;
            self.expr(clause)?;
            if self.peek()?.start == before {
                return Err(Fail("bad subscript"));
            }
        }
    }

    /// Interval qualifiers after an interval literal: `YEAR TO MONTH`, `SECOND(3)`, …
    fn interval_fields(&mut self) -> R<()> {
        loop {
            let t = self.peek()?;
            if ["year", "month", "day", "hour", "minute", "second", "to"]
                .iter()
                .any(|k| t.is_kw(self.sql, k))
            {
                self.next()?;
                if self.at(Kind::LParen)? && t.is_kw(self.sql, "second") {
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
        if self.eat(Kind::RParen)? {
            return Ok(());
        }
        loop {
            self.expr_inner(clause, lenient)?;
            if !self.eat(Kind::Comma)? {
                break;
            }
        }
        self.expect(Kind::RParen)?;
        Ok(())
    }

    /// `name(args) [WITHIN GROUP (…)] [FILTER (WHERE …)] [OVER …]`; `name` already read.
    fn function_call(&mut self, c: &Chain, clause: Clause) -> R<()> {
        self.enter()?;
        let lenient = c.n == 1 && in_list(SPECIAL_SYNTAX_FUNCS, c.parts[0].as_str());
        if !(lenient && c.parts[0].as_str() == "merge_action") {
            self.push_function(c)?;
        }
        let fname = c.last().as_str();
        if fname == "set_config" && (c.n == 1 || c.parts[c.n - 2].as_str() == "pg_catalog") {
            self.set_config_flags()?;
        }
        self.expect(Kind::LParen)?;
        if lenient {
            self.lenient_args(clause)?;
        } else {
            self.func_args(clause)?;
        }
        if self.at_kw("within")? {
            self.next()?;
            self.expect_kw("group")?;
            self.expect(Kind::LParen)?;
            self.expect_kw("order")?;
            self.expect_kw("by")?;
            self.sort_list(clause)?;
            self.expect(Kind::RParen)?;
        }
        if self.at_kw("filter")? && self.peek_n(1)?.kind == Kind::LParen {
            self.next()?;
            self.next()?;
            self.expect_kw("where")?;
            self.expr(Clause::Where)?;
            self.expect(Kind::RParen)?;
        }
        if self.eat_kw("over")? {
            if self.at(Kind::LParen)? {
                self.window_spec()?;
            } else {
                self.any_name_token()?;
            }
        }
        self.leave();
        Ok(())
    }

    /// `set_config('search_path' | 'role' | …, …)`: flags from the literal first argument;
    /// anything but a literal sets both flags (conservative).
    fn set_config_flags(&mut self) -> R<()> {
        let a = self.peek_n(1)?;
        let after = self.peek_n(2)?;
        if a.kind == Kind::Str(StrKind::Standard) && after.kind == Kind::Comma {
            let n = self.name_of(&a)?;
            let s = n.as_str();
            if LEXING_SETTINGS.iter().any(|l| s.eq_ignore_ascii_case(l)) {
                return Err(Fail(
                    "set_config of a setting that changes how SQL is lexed",
                ));
            }
            if s.eq_ignore_ascii_case("search_path") {
                self.flags |= StatementFlags::SETS_SEARCH_PATH;
            } else if s.eq_ignore_ascii_case("role")
                || s.eq_ignore_ascii_case("session_authorization")
            {
                self.flags |= StatementFlags::SETS_ROLE;
            }
        } else {
            self.flags |= StatementFlags::SETS_SEARCH_PATH | StatementFlags::SETS_ROLE;
        }
        Ok(())
    }

    /// Ordinary function arguments, after `(`; consumes `)`.
    fn func_args(&mut self, clause: Clause) -> R<()> {
        if self.eat(Kind::RParen)? {
            return Ok(());
        }
        if self.peek()?.is_op(self.sql, "*") && self.peek_n(1)?.kind == Kind::RParen {
            // count(*): no column.
            self.next()?;
            self.next()?;
            return Ok(());
        }
        let _ = self.eat_kw("distinct")? || self.eat_kw("all")?;
        loop {
            let _ = self.eat_kw("variadic")?
                || self.eat_kw("both")?
                || self.eat_kw("leading")?
                || self.eat_kw("trailing")?;
            // Named argument: `name => value` / `name := value`.
            let t = self.peek()?;
            let n1 = self.peek_n(1)?;
            if t.is_name() && (n1.is_op(self.sql, "=>") || n1.is_op(self.sql, ":=")) {
                self.next()?;
                self.next()?;
            }
            if !self.at_kw("from")? {
                self.expr(clause)?;
            }
            // Separators of the special argument syntaxes (SUBSTRING … FROM … FOR …,
            // OVERLAY … PLACING …, TRIM … FROM …), and aggregate ORDER BY.
            if self.eat(Kind::Comma)?
                || self.eat_kw("from")?
                || self.eat_kw("for")?
                || self.eat_kw("placing")?
            {
                continue;
            }
            if self.at_kw("order")? {
                self.next()?;
                self.expect_kw("by")?;
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
            let t = self.peek()?;
            match t.kind {
                Kind::RParen => {
                    self.next()?;
                    return Ok(());
                }
                Kind::Eof => return Err(Fail("unbalanced parentheses")),
                Kind::Comma => {
                    self.next()?;
                }
                _ => {
                    let before = t.start;
                    self.expr_inner(clause, true)?;
                    if self.peek()?.start == before {
                        // Something expr could not start with (`=>`, `:` …): skip it.
                        self.next()?;
                    }
                }
            }
        }
    }

    /// A type name after `::` or `AS` in CAST: skipped (type names are not columns).
    fn type_name(&mut self) -> R<()> {
        self.eat_kw("setof")?;
        let t = self.next()?;
        if !t.is_name() {
            return Err(Fail("expected a type name"));
        }
        let w = self.text(&t).to_ascii_lowercase_fixed();
        match w.as_str() {
            "double" => {
                self.expect_kw("precision")?;
            }
            "character" | "char" | "nchar" | "bit" => {
                self.eat_kw("varying")?;
            }
            "national" => {
                if !self.eat_kw("character")? {
                    self.expect_kw("char")?;
                }
                self.eat_kw("varying")?;
            }
            "interval" => {
                self.interval_fields()?;
            }
            _ => {
                while self.at(Kind::Dot)? {
                    self.next()?;
                    if !self.next()?.is_name() {
                        return Err(Fail("expected a type name"));
                    }
                }
            }
        }
        if self.at(Kind::LParen)? {
            self.skip_parens()?;
        }
        if (w.as_str() == "timestamp" || w.as_str() == "time")
            && (self.at_kw("with")? || self.at_kw("without")?)
            && self.at_kw_n(1, "time")?
        {
            self.next()?;
            self.next()?;
            self.expect_kw("zone")?;
        }
        if w.as_str() == "interval" {
            self.interval_fields()?;
        }
        loop {
            if self.at(Kind::LBracket)? {
                self.next()?;
                if self.at(Kind::Number)? {
                    self.next()?;
                }
                self.expect(Kind::RBracket)?;
            } else if self.at_kw("array")? {
                self.next()?;
                if self.at(Kind::LBracket)? {
                    self.next()?;
                    if self.at(Kind::Number)? {
                        self.next()?;
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
        no_bare: &[&str],
        add_now: bool,
    ) -> R<(u8, Name, QualifiedName)> {
        let paren = if self.eat_kw("only")? {
            self.eat(Kind::LParen)?
        } else {
            false
        };
        let c = self.chain(false)?;
        if paren {
            self.expect(Kind::RParen)?;
        }
        self.eat_op("*")?;
        let q = self.resolve_table(&c)?;
        let w = self.push_access(class, q)?;
        let alias = if class == StatementClass::Insert {
            // INSERT's alias needs AS.
            if self.eat_kw("as")? {
                Some(self.any_name_token()?)
            } else {
                None
            }
        } else {
            self.alias(no_bare)?
        };
        let name = alias.unwrap_or(*c.last());
        if add_now {
            self.scopes.add(
                name,
                EntryKind::Base {
                    read: None,
                    name: q,
                },
            )?;
        }
        Ok((w, name, q))
    }

    fn insert(&mut self) -> R<()> {
        self.expect_kw("insert")?;
        self.expect_kw("into")?;
        let (w, name, q) = self.dml_target(StatementClass::Insert, &[], false)?;
        // Column list (or all columns).
        let mut listed = false;
        if self.at(Kind::LParen)? && self.paren_starts_query()? == Some(false) {
            self.next()?;
            listed = true;
            loop {
                let n = self.any_name_token()?;
                // `col.field` / `col[1]` target the column `col`.
                loop {
                    if self.eat(Kind::Dot)? {
                        self.any_name_token()?;
                    } else if self.at(Kind::LBracket)? {
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
                if !self.eat(Kind::Comma)? {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        }
        if !listed {
            self.push_column(ColumnName::All, 1u64 << w, 0, true, Clause::InsertColumns)?;
        }
        if self.eat_kw("overriding")? {
            if !self.eat_kw("system")? {
                self.expect_kw("user")?;
            }
            self.expect_kw("value")?;
        }
        if self.at_kw("default")? {
            self.next()?;
            self.expect_kw("values")?;
        } else {
            self.query()?;
        }
        // The target is visible from here on (ON CONFLICT, RETURNING), not in the source.
        self.scopes.add(
            name,
            EntryKind::Base {
                read: None,
                name: q,
            },
        )?;
        if self.at_kw("on")? {
            self.next()?;
            self.expect_kw("conflict")?;
            self.scopes
                .add(Name::from_str_truncated("excluded"), EntryKind::Derived)?;
            if self.eat_kw("on")? {
                self.expect_kw("constraint")?;
                self.any_name_token()?;
            } else if self.eat(Kind::LParen)? {
                loop {
                    self.expr(Clause::Other)?;
                    if self.eat_kw("collate")? {
                        self.chain(false)?;
                    }
                    let t = self.peek()?;
                    if t.is_name() && !self.is_reserved(&t) {
                        self.chain(false)?; // operator class
                    }
                    let _ = self.eat_kw("asc")? || self.eat_kw("desc")?;
                    if self.eat_kw("nulls")? && !self.eat_kw("first")? {
                        self.expect_kw("last")?;
                    }
                    if !self.eat(Kind::Comma)? {
                        break;
                    }
                }
                self.expect(Kind::RParen)?;
                if self.eat_kw("where")? {
                    self.expr(Clause::Where)?;
                }
            }
            self.expect_kw("do")?;
            if !self.eat_kw("nothing")? {
                self.expect_kw("update")?;
                self.class(StatementClass::Update);
                let u = self.push_access(StatementClass::Update, q)?;
                self.expect_kw("set")?;
                self.set_list(u)?;
                if self.eat_kw("where")? {
                    self.expr(Clause::Where)?;
                }
            }
        }
        self.returning()
    }

    /// `RETURNING [WITH (OLD|NEW AS name, …)] targets`
    fn returning(&mut self) -> R<()> {
        if !self.eat_kw("returning")? {
            return Ok(());
        }
        if self.at_kw("with")? && self.peek_n(1)?.kind == Kind::LParen {
            self.next()?;
            self.next()?;
            loop {
                let _ = self.eat_kw("old")? || self.eat_kw("new")?;
                self.expect_kw("as")?;
                self.any_name_token()?;
                if !self.eat(Kind::Comma)? {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        }
        self.target_list(Clause::Returning)
    }

    /// `col = expr | (cols) = (exprs) | (cols) = ROW(…) | (cols) = (subquery), …`
    fn set_list(&mut self, target: u8) -> R<()> {
        loop {
            if self.eat(Kind::LParen)? {
                loop {
                    self.set_target(target)?;
                    if !self.eat(Kind::Comma)? {
                        break;
                    }
                }
                self.expect(Kind::RParen)?;
            } else {
                self.set_target(target)?;
            }
            if !self.eat_op("=")? {
                return Err(Fail("expected = in SET"));
            }
            self.expr(Clause::UpdateSet)?;
            if !self.eat(Kind::Comma)? {
                return Ok(());
            }
        }
    }

    fn set_target(&mut self, target: u8) -> R<()> {
        let n = self.any_name_token()?;
        loop {
            if self.at(Kind::Dot)? {
                self.next()?;
                self.any_name_token()?;
            } else if self.at(Kind::LBracket)? {
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
        )
    }

    fn update(&mut self) -> R<()> {
        self.expect_kw("update")?;
        let (w, _, _) = self.dml_target(StatementClass::Update, &["set"], true)?;
        self.expect_kw("set")?;
        let set_start = self.save();
        self.skip_to_clause(&["from", "where", "returning"])?;
        let set_end = self.peek()?.start;
        if self.eat_kw("from")? {
            self.table_list()?;
        }
        let after = self.save();
        self.restore(set_start);
        self.set_list(w)?;
        if self.peek()?.start != set_end {
            return Err(Fail("SET list not understood"));
        }
        self.restore(after);
        self.where_clause()?;
        self.returning()
    }

    fn where_clause(&mut self) -> R<()> {
        if self.eat_kw("where")? {
            if self.at_kw("current")? && self.at_kw_n(1, "of")? {
                self.next()?;
                self.next()?;
                self.any_name_token()?;
                return Ok(());
            }
            self.expr(Clause::Where)?;
        }
        Ok(())
    }

    fn delete(&mut self) -> R<()> {
        self.expect_kw("delete")?;
        self.expect_kw("from")?;
        self.dml_target(StatementClass::Delete, &[], true)?;
        if self.eat_kw("using")? {
            self.table_list()?;
        }
        self.where_clause()?;
        self.returning()
    }

    fn merge(&mut self) -> R<()> {
        self.expect_kw("merge")?;
        self.expect_kw("into")?;
        let (w, _, _) = self.dml_target(StatementClass::Merge, &[], true)?;
        self.expect_kw("using")?;
        self.table_item()?;
        self.expect_kw("on")?;
        self.expr(Clause::Join)?;
        let mut any = false;
        while self.eat_kw("when")? {
            any = true;
            self.eat_kw("not")?;
            self.expect_kw("matched")?;
            if self.eat_kw("by")? && !self.eat_kw("source")? {
                self.expect_kw("target")?;
            }
            if self.eat_kw("and")? {
                self.expr(Clause::Where)?;
            }
            self.expect_kw("then")?;
            if self.eat_kw("update")? {
                self.expect_kw("set")?;
                self.set_list(w)?;
            } else if self.eat_kw("delete")? {
            } else if self.eat_kw("insert")? {
                if self.at(Kind::LParen)? {
                    self.next()?;
                    loop {
                        self.set_target(w)?;
                        if !self.eat(Kind::Comma)? {
                            break;
                        }
                    }
                    self.expect(Kind::RParen)?;
                } else {
                    self.push_column(ColumnName::All, 1u64 << w, 0, true, Clause::InsertColumns)?;
                }
                if self.eat_kw("overriding")? {
                    if !self.eat_kw("system")? {
                        self.expect_kw("user")?;
                    }
                    self.expect_kw("value")?;
                }
                if self.eat_kw("default")? {
                    self.expect_kw("values")?;
                } else {
                    self.expect_kw("values")?;
                    self.expect(Kind::LParen)?;
                    self.expr_list_until_rparen(Clause::Other)?;
                }
            } else {
                self.expect_kw("do")?;
                self.expect_kw("nothing")?;
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
        self.expect_kw("truncate")?;
        self.class(StatementClass::Truncate);
        self.eat_kw("table")?;
        self.table_name_list(StatementClass::Truncate)?;
        if self.eat_kw("restart")? || self.eat_kw("continue")? {
            self.expect_kw("identity")?;
        }
        let _ = self.eat_kw("cascade")? || self.eat_kw("restrict")?;
        Ok(())
    }

    fn table_name_list(&mut self, class: StatementClass) -> R<()> {
        loop {
            self.eat_kw("only")?;
            let c = self.chain(false)?;
            self.eat_op("*")?;
            let q = self.resolve_table(&c)?;
            self.push_access(class, q)?;
            if !self.eat(Kind::Comma)? {
                return Ok(());
            }
        }
    }

    /// `LOCK [TABLE] [ONLY] name [*], … [IN mode MODE] [NOWAIT]`
    fn lock(&mut self) -> R<()> {
        self.expect_kw("lock")?;
        self.class(StatementClass::Lock);
        self.eat_kw("table")?;
        self.table_name_list(StatementClass::Lock)?;
        if self.eat_kw("in")? {
            loop {
                if self.eat_kw("mode")? {
                    break;
                }
                let t = self.next()?;
                if t.kind != Kind::Ident {
                    return Err(Fail("bad lock mode"));
                }
            }
        }
        self.eat_kw("nowait")?;
        Ok(())
    }

    /// `COPY { table [(cols)] | (query) } { FROM | TO } { STDIN | STDOUT | 'file' | PROGRAM 'cmd' } …`
    fn copy(&mut self) -> R<()> {
        self.expect_kw("copy")?;
        self.eat_kw("binary")?;
        let mark_tables = self.facts.current_table_count();
        let mark_cols = self.facts.current_columns_mut().len();
        let mut table: Option<Chain> = None;
        let mut cols = [Name::default(); MAX_COPY_COLUMNS];
        let mut n_cols = None;
        if self.at(Kind::LParen)? {
            self.next()?;
            let c = self.dml_or_query()?;
            self.class(c);
            self.expect(Kind::RParen)?;
        } else {
            table = Some(self.chain(false)?);
            if self.eat(Kind::LParen)? {
                let mut n = 0;
                loop {
                    let name = self.any_name_token()?;
                    let slot = cols.get_mut(n).ok_or(Fail("COPY column list too long"))?;
                    *slot = name;
                    n += 1;
                    if !self.eat(Kind::Comma)? {
                        break;
                    }
                }
                self.expect(Kind::RParen)?;
                n_cols = Some(n);
            }
        }
        let from = if self.eat_kw("from")? {
            true
        } else {
            self.expect_kw("to")?;
            false
        };
        if from && table.is_none() {
            return Err(Fail("COPY (query) FROM"));
        }
        let class = if self.eat_kw("stdin")? || self.eat_kw("stdout")? {
            if from {
                StatementClass::CopyIn
            } else {
                StatementClass::CopyOut
            }
        } else {
            self.eat_kw("program")?;
            let t = self.next()?;
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
                    }
                }
                None => self.push_column(ColumnName::All, 1u64 << idx, 0, true, Clause::Other)?,
            }
            target = Some((*c.last(), q));
        } else {
            // Every read of the query is also a read under the COPY's class.
            self.mirror_reads(mark_tables, mark_cols, class)?;
        }
        // Options: `[WITH] (opts)` or the old `BINARY|CSV|HEADER|DELIMITER 'x'…` words.
        self.eat_kw("with")?;
        if self.at(Kind::LParen)? {
            self.skip_parens()?;
        }
        loop {
            let t = self.peek()?;
            if t.is_kw(self.sql, "where") {
                self.next()?;
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
                    self.next()?;
                }
                Kind::Op if t.is_op(self.sql, "*") || t.is_op(self.sql, "-") => {
                    self.next()?;
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
        self.expect_kw("explain")?;
        let mut analyze = false;
        if self.at(Kind::LParen)? {
            self.next()?;
            loop {
                let opt = self.any_name_token()?;
                let is_analyze = matches!(opt.as_str(), "analyze" | "analyse");
                let mut value = true;
                if !(self.at(Kind::Comma)? || self.at(Kind::RParen)?) {
                    let v = self.next()?;
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
                if !self.eat(Kind::Comma)? {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        } else {
            if self.eat_kw("analyze")? || self.eat_kw("analyse")? {
                analyze = true;
            }
            self.eat_kw("verbose")?;
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
        let t = self.peek()?;
        if t.is_kw(self.sql, "execute") {
            return self.execute();
        }
        if t.is_kw(self.sql, "declare") {
            return self.declare();
        }
        if t.is_kw(self.sql, "create") {
            return self.create();
        }
        if t.kind == Kind::LParen {
            self.class(StatementClass::Select);
            return self.query();
        }
        let c = self.dml_or_query()?;
        self.class(c);
        Ok(())
    }

    /// `PREPARE name [(types)] AS stmt`
    fn prepare(&mut self) -> R<()> {
        self.expect_kw("prepare")?;
        self.class(StatementClass::Prepare);
        self.flags |= StatementFlags::PREPARES;
        let n = self.any_name_token()?;
        self.prepared_name = self.push(n.as_str())?;
        if self.at(Kind::LParen)? {
            self.skip_parens()?;
        }
        self.expect_kw("as")?;
        let t = self.peek()?;
        if t.kind == Kind::LParen {
            self.class(StatementClass::Select);
            return self.query();
        }
        let c = self.dml_or_query()?;
        self.class(c);
        Ok(())
    }

    /// `EXECUTE name [(params)]`: the caller resolves `name`.
    fn execute(&mut self) -> R<()> {
        self.expect_kw("execute")?;
        self.class(StatementClass::Prepare);
        self.flags |= StatementFlags::EXECUTES_PREPARED;
        let n = self.any_name_token()?;
        self.prepared_name = self.push(n.as_str())?;
        if self.eat(Kind::LParen)? {
            self.expr_list_until_rparen(Clause::Other)?;
        }
        Ok(())
    }

    /// `DECLARE name [BINARY] [ASENSITIVE|INSENSITIVE] [[NO] SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`
    fn declare(&mut self) -> R<()> {
        self.expect_kw("declare")?;
        self.class(StatementClass::Cursor);
        self.flags |= StatementFlags::DECLARES_CURSOR;
        let n = self.any_name_token()?;
        self.prepared_name = self.push(n.as_str())?;
        loop {
            if self.eat_kw("cursor")? {
                break;
            }
            let t = self.next()?;
            if !["binary", "asensitive", "insensitive", "no", "scroll"]
                .iter()
                .any(|k| t.is_kw(self.sql, k))
            {
                return Err(Fail("DECLARE not understood"));
            }
        }
        if self.eat_kw("with")? || self.eat_kw("without")? {
            self.expect_kw("hold")?;
        }
        self.expect_kw("for")?;
        if self.at(Kind::LParen)? {
            self.class(StatementClass::Select);
            return self.query();
        }
        let c = self.dml_or_query()?;
        self.class(c);
        Ok(())
    }

    /// `SET [SESSION|LOCAL] …`
    fn set(&mut self) -> R<()> {
        self.expect_kw("set")?;
        if self.at_transaction_setting()? {
            self.class(StatementClass::Transaction);
            return self.rest();
        }
        self.class(StatementClass::Session);
        let scope_word = (self.at_kw("local")? && !self.is_set_to(1)?)
            || (self.at_kw("session")?
                && !self.at_kw_n(1, "authorization")?
                && !self.at_kw_n(1, "characteristics")?
                && !self.is_set_to(1)?);
        if scope_word {
            self.next()?;
            if self.at_transaction_setting()? {
                self.classes = ClassSet::single(StatementClass::Transaction);
                return self.rest();
            }
        }
        if self.at_kw("role")? && !self.is_set_to(1)? {
            self.flags |= StatementFlags::SETS_ROLE;
            return self.rest();
        }
        if self.at_kw("session")? && self.at_kw_n(1, "authorization")? {
            self.flags |= StatementFlags::SETS_ROLE;
            return self.rest();
        }
        if self.at_kw("schema")? && !self.is_set_to(1)? {
            // `SET SCHEMA 'x'` is `SET search_path TO 'x'`.
            self.next()?;
            self.flags |= StatementFlags::SETS_SEARCH_PATH;
            let t = self.next()?;
            let n = self.name_of(&t)?;
            let r = self.push(n.as_str())?;
            self.facts.push_path_name(r)?;
            return Ok(());
        }
        if self.at_kw("names")? {
            // SET NAMES 'enc' = SET client_encoding TO 'enc'.
            self.next()?;
            return self.check_lexing_setting("client_encoding");
        }
        let var = self.chain(false)?;
        let vname = var.last().as_str();
        if var.n == 1 && LEXING_SETTINGS.contains(&vname) {
            if !self.eat_kw("to")? && !self.eat_op("=")? {
                return Err(Fail("SET not understood"));
            }
            return self.check_lexing_setting(vname);
        }
        let is_path = var.n == 1 && vname == "search_path";
        if var.n == 1 && (vname == "role" || vname == "session_authorization") {
            self.flags |= StatementFlags::SETS_ROLE;
        }
        if !is_path {
            // Any other setting (`SET TIME ZONE …`, `SET NAMES …`, `SET x TO …`): the class
            // is all policy needs.
            return self.rest();
        }
        self.flags |= StatementFlags::SETS_SEARCH_PATH;
        if !self.eat_kw("to")? && !self.eat_op("=")? {
            return Err(Fail("SET search_path not understood"));
        }
        if self.eat_kw("default")? {
            return Ok(());
        }
        loop {
            let t = self.next()?;
            if !(t.is_name() || t.kind == Kind::Str(StrKind::Standard)) {
                return Err(Fail("search_path value not understood"));
            }
            // A quoted list `SET search_path = 'a, b'` names one schema "a, b" in
            // PostgreSQL too; recorded as written.
            let n = self.name_of(&t)?;
            let r = self.push(n.as_str())?;
            self.facts.push_path_name(r)?;
            if !self.eat(Kind::Comma)? {
                return Ok(());
            }
        }
    }

    /// The value of a setting that changes how later SQL is lexed: only values under
    /// which this classifier's lexer is still PostgreSQL's are understood.
    fn check_lexing_setting(&mut self, setting: &str) -> R<()> {
        let t = self.next()?;
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
    fn at_transaction_setting(&mut self) -> R<bool> {
        Ok((self.at_kw("transaction")? && !self.is_set_to(1)?)
            || (self.at_kw("session")? && self.at_kw_n(1, "characteristics")?)
            || (self.at_kw("constraints")? && !self.is_set_to(1)?))
    }

    fn is_set_to(&mut self, n: usize) -> R<bool> {
        let t = self.peek_n(n)?;
        Ok(t.is_kw(self.sql, "to") || t.is_op(self.sql, "="))
    }

    /// `RESET name | ALL | ROLE | SESSION AUTHORIZATION | TIME ZONE …`
    fn reset(&mut self) -> R<()> {
        self.expect_kw("reset")?;
        self.class(StatementClass::Session);
        if self.at_kw("all")? {
            self.flags |= StatementFlags::RESETS_SESSION;
        } else if self.at_kw("role")?
            || (self.at_kw("session")? && self.at_kw_n(1, "authorization")?)
        {
            self.flags |= StatementFlags::SETS_ROLE;
        } else if self.at_kw("search_path")? {
            self.flags |= StatementFlags::SETS_SEARCH_PATH;
        }
        self.rest()
    }

    /// `CALL name(args)`: the procedure is recorded as a function call.
    fn call(&mut self) -> R<()> {
        self.expect_kw("call")?;
        self.class(StatementClass::Call);
        let c = self.chain(false)?;
        self.function_call(&c, Clause::Other)
    }

    fn create(&mut self) -> R<()> {
        self.expect_kw("create")?;
        if self.eat_kw("or")? {
            self.expect_kw("replace")?;
        }
        let _ = self.eat_kw("global")? || self.eat_kw("local")?;
        let _ = self.eat_kw("temporary")? || self.eat_kw("temp")? || self.eat_kw("unlogged")?;
        if self.at_kw("table")? {
            self.next()?;
            if self.at_kw("if")? {
                self.next()?;
                self.expect_kw("not")?;
                self.expect_kw("exists")?;
            }
            return self.create_table_like(false);
        }
        if self.at_kw("materialized")? {
            self.next()?;
            self.expect_kw("view")?;
            if self.at_kw("if")? {
                self.next()?;
                self.expect_kw("not")?;
                self.expect_kw("exists")?;
            }
            return self.create_table_like(true);
        }
        if self.at_kw("role")?
            || self.at_kw("group")?
            || (self.at_kw("user")? && !self.at_kw_n(1, "mapping")?)
        {
            self.class(StatementClass::Dcl);
            return self.rest();
        }
        if self.at_kw("unique")? || self.at_kw("index")? {
            self.class(StatementClass::Ddl);
            // … ON [ONLY] table …
            loop {
                let t = self.next()?;
                if t.kind == Kind::Eof {
                    return Ok(());
                }
                if t.is_kw(self.sql, "on") {
                    self.eat_kw("only")?;
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
        let q = self.resolve_table(&c)?;
        // Find `AS` at depth 0 followed by a query or EXECUTE.
        let mut depth = 0u32;
        loop {
            let t = self.peek()?;
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
            if depth == 0 && t.is_kw(self.sql, "as") {
                let n = self.peek_n(1)?;
                if n.kind == Kind::LParen
                    || ["select", "values", "with", "table", "execute"]
                        .iter()
                        .any(|k| n.is_kw(self.sql, k))
                {
                    self.next()?;
                    break;
                }
            }
            self.next()?;
        }
        self.class(StatementClass::SelectInto);
        self.push_access(StatementClass::SelectInto, q)?;
        if self.at_kw("execute")? {
            self.execute()?;
        } else if self.at(Kind::LParen)? {
            self.class(StatementClass::Select);
            self.query()?;
        } else {
            let c = self.dml_or_query()?;
            self.class(c);
        }
        if self.eat_kw("with")? {
            self.eat_kw("no")?;
            self.expect_kw("data")?;
        }
        Ok(())
    }

    fn alter(&mut self) -> R<()> {
        self.expect_kw("alter")?;
        if self.at_kw("role")?
            || self.at_kw("group")?
            || (self.at_kw("user")? && !self.at_kw_n(1, "mapping")?)
            || (self.at_kw("default")? && self.at_kw_n(1, "privileges")?)
        {
            self.class(StatementClass::Dcl);
            return self.rest();
        }
        self.class(StatementClass::Ddl);
        if self.eat_kw("table")? {
            if self.at_kw("if")? {
                self.next()?;
                self.expect_kw("exists")?;
            }
            if self.at_kw("all")? {
                return self.rest();
            }
            self.eat_kw("only")?;
            let c = self.chain(false)?;
            let q = self.resolve_table(&c)?;
            self.push_access(StatementClass::Ddl, q)?;
        }
        self.rest()
    }

    fn drop(&mut self) -> R<()> {
        self.expect_kw("drop")?;
        if self.at_kw("role")?
            || self.at_kw("group")?
            || self.at_kw("owned")?
            || (self.at_kw("user")? && !self.at_kw_n(1, "mapping")?)
        {
            self.class(StatementClass::Dcl);
            return self.rest();
        }
        self.class(StatementClass::Ddl);
        if self.eat_kw("table")? {
            if self.at_kw("if")? {
                self.next()?;
                self.expect_kw("exists")?;
            }
            loop {
                let c = self.chain(false)?;
                let q = self.resolve_table(&c)?;
                self.push_access(StatementClass::Ddl, q)?;
                if !self.eat(Kind::Comma)? {
                    break;
                }
            }
        }
        self.rest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_lists_are_sorted_for_binary_search() {
        for list in [RESERVED, TYPE_FUNC_NAME] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
        assert!(in_sorted(RESERVED, "SeLeCt"));
        assert!(!in_sorted(RESERVED, "ssn"));
        assert!(in_sorted(TYPE_FUNC_NAME, "JOIN"));
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
