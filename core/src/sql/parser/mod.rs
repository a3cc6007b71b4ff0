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
//!
//! Layout: this file holds the parser's state and limits; each grammar area is one
//! `impl` block in its own file — `tokens` (the window, lookahead, backtracking), `names`
//! (dotted names, search-path resolution), `columns`, `statements` (dispatch), `query`
//! (WITH, set operations, ORDER BY), `select`, `from` (joins, aliases), `expr` and
//! `operand`, `functions`, `settings` (SET, RESET, set_config), `dml`, `copy`, `session`
//! (EXPLAIN, PREPARE, cursors) and `ddl`.

use super::ClassifyContext;
use super::keywords::Kw;
use super::lexer::{Kind, LexError, Lexer, Name, StrKind, Token};
use super::scope::{EntryKind, ScopeFull, Scopes};
use crate::class::{ClassSet, StatementClass};
use crate::facts::{
    Clause, ColumnName, ColumnRef, Facts, FunctionRef, NameRef, Overflow, QualifiedName,
    StatementFlags, TableAccess,
};

mod columns;
mod copy;
mod ddl;
mod dml;
mod expr;
mod from;
mod functions;
mod names;
mod operand;
mod query;
mod select;
mod session;
mod settings;
mod statements;
mod tokens;

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
