//! Facts: what the classifier found in a SQL string, in a caller-owned buffer.
//!
//! The buffer is created once per session with fixed capacities ([`FactsLimits`]) and reused
//! for every message: [`Facts::clear`] keeps the capacity, and no push ever grows a vector
//! past the capacity it was created with. A push that would exceed a limit fails with
//! [`Overflow`]; the classifier then marks the statement `unknown` (fail closed).
//!
//! Names are stored normalised (case-folded when unquoted, escapes resolved) in one byte
//! arena and referred to by [`NameRef`]. Everything here is plain data: no policy, no I/O.

use crate::class::{ClassSet, StatementClass};

/// Capacities of a [`Facts`] buffer. Everything that comes from outside has a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FactsLimits {
    /// Statements in one SQL string (top-level, split at semicolons).
    pub max_statements: usize,
    /// Table accesses over all statements. One statement may use at most 64 (column
    /// candidate sets are 64-bit masks over a statement's accesses).
    pub max_tables: usize,
    /// Column references over all statements.
    pub max_columns: usize,
    /// Function calls over all statements.
    pub max_functions: usize,
    /// Bytes of normalised names over all statements.
    pub max_name_bytes: usize,
    /// Schema names set by `SET search_path` over all statements.
    pub max_path_names: usize,
}

impl Default for FactsLimits {
    fn default() -> Self {
        FactsLimits {
            max_statements: 64,
            max_tables: 512,
            max_columns: 4096,
            max_functions: 1024,
            max_name_bytes: 64 * 1024,
            max_path_names: 64,
        }
    }
}

/// Maximum table accesses in one statement (column candidate masks are `u64`).
pub const MAX_TABLES_PER_STATEMENT: usize = 64;

/// A fixed capacity was exhausted; the statement must be treated as `unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("statement too large to classify: the {0} limit was reached")]
pub struct Overflow(pub &'static str);

/// A normalised name in the [`Facts`] arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NameRef {
    pub start: u32,
    pub len: u32,
}

impl NameRef {
    pub const EMPTY: NameRef = NameRef { start: 0, len: 0 };
    pub const fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// `schema.name`; `schema` is empty for a relation no search path could resolve, and for
/// an unqualified function call (see [`FunctionRef`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QualifiedName {
    pub schema: NameRef,
    pub name: NameRef,
}

/// One access of one relation by one statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableAccess {
    /// The class this access is made under (`insert` for the target of an INSERT, `select`
    /// for the tables its SELECT reads, …).
    pub class: StatementClass,
    pub name: QualifiedName,
}

/// Where in a statement a column is referenced. Informational (explain, audit): policy
/// checks every referenced column wherever it appears, so filtering on a forbidden column
/// in WHERE is as denied as selecting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Clause {
    SelectList,
    Where,
    Join,
    GroupBy,
    Having,
    OrderBy,
    Window,
    Returning,
    UpdateSet,
    InsertColumns,
    Other,
}

impl Clause {
    pub const fn name(self) -> &'static str {
        match self {
            Clause::SelectList => "select-list",
            Clause::Where => "where",
            Clause::Join => "join",
            Clause::GroupBy => "group-by",
            Clause::Having => "having",
            Clause::OrderBy => "order-by",
            Clause::Window => "window",
            Clause::Returning => "returning",
            Clause::UpdateSet => "update-set",
            Clause::InsertColumns => "insert-columns",
            Clause::Other => "other",
        }
    }
}

/// What a column reference names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnName {
    Named(NameRef),
    /// `*`, `t.*`, or a whole-row reference: every column of the candidate tables.
    All,
    /// The columns a `NATURAL JOIN` compares: every column name declared both by a table
    /// of `candidates` (the left side) and by a table of `right`, on each table that has
    /// it; every column of the other side where a side's table is not declared.
    Common {
        right: u64,
    },
}

/// A column reference. `candidates` and `whole_row` are bitmasks over the accesses of the
/// statement the reference belongs to (bit i = `Facts::tables(stmt)[i]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnRef {
    pub name: ColumnName,
    /// The base-table accesses this column may belong to: exactly one when qualified by a
    /// table name or alias, every base table in scope when unqualified. Zero when it
    /// belongs to a derived table, CTE or function result (checked inside those instead).
    pub candidates: u64,
    /// For an unqualified name: the in-scope accesses whose alias (or name) it equals. If no
    /// candidate table has a column of that name, PostgreSQL reads it as a whole-row
    /// reference to these tables (`SELECT c FROM customers c`), i.e. every column.
    pub whole_row: u64,
    pub qualified: bool,
    pub clause: Clause,
    /// An unqualified GROUP BY item equal to an output name of the select list
    /// (`SELECT date_trunc('day', t) AS day … GROUP BY day`). PostgreSQL reads it as an input
    /// column if one of that name exists, else as the output (whose own columns are
    /// reported where it is written): a name no candidate table declares is then not a
    /// column at all.
    pub output_alias: bool,
    /// A plain output column: the whole of one item of the select list whose rows reach
    /// the client (a top-level SELECT, a cursor's or a prepared statement's query), written
    /// as a bare column reference (`c`, `t.c`, `*`, `t.*`), in a select without DISTINCT,
    /// set operation or INTO, and not sorted or grouped by (by name, alias or position).
    /// Its value reaches the client as itself, and RowDescription names its table and
    /// column: a mask can rewrite it there. Anything else that uses a masked column is
    /// denied (see `Table::decide`).
    pub plain: bool,
}

/// A function call as written: `schema` empty = unqualified: the decider checks it against
/// `pg_catalog` and every declared function of that name (which one PostgreSQL picks
/// depends on the search path and on argument types, neither of which the classifier
/// knows). Calls written with special syntax (`EXTRACT(… FROM …)`, `NORMALIZE`,
/// `COLLATION FOR`) are `pg_catalog` functions by the grammar and recorded so.
///
/// Attribute notation is a call too: `x.f` and `(expr).f` are `f(x)` when `f` is not a
/// column (PostgreSQL tries the column first). Such a call is recorded for each path schema
/// whose catalog entry declares a function `f`, with `unless_column` naming the column
/// reference `x.f`: it is checked only when no candidate table of that reference declares
/// a column `f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: QualifiedName,
    /// [`FunctionRef::ALWAYS`], or the index (in the statement) of the column reference
    /// that makes this call only if it is not a column.
    pub unless_column: u16,
}

impl FunctionRef {
    /// `unless_column` of a call that is always made.
    pub const ALWAYS: u16 = u16::MAX;

    pub const fn call(name: QualifiedName) -> Self {
        FunctionRef {
            name,
            unless_column: Self::ALWAYS,
        }
    }
}

/// What one statement does to the search path (and the transaction state that decides
/// how long a setting lasts). Savepoint names are the statement's `prepared_name`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PathEffect {
    #[default]
    None,
    /// Sets it to the statement's `Facts::search_path` (`local`: until the transaction ends).
    Set { local: bool },
    /// Back to the session default (`RESET search_path`, `RESET ALL`, `DISCARD ALL`,
    /// `SET search_path TO DEFAULT`).
    Reset,
    /// Changes it in a way that is not known exactly.
    Unknown,
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT` / `END` / `PREPARE TRANSACTION` (`chain`: `AND CHAIN` opens the next).
    Commit { chain: bool },
    /// `ROLLBACK` / `ABORT` without `TO`.
    Rollback { chain: bool },
    /// `SAVEPOINT name`.
    Savepoint,
    /// `RELEASE [SAVEPOINT] name`.
    Release,
    /// `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`.
    RollbackTo,
}

/// Statement-level flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StatementFlags(pub u32);

impl StatementFlags {
    /// `SET [LOCAL|SESSION] search_path …` or `set_config('search_path', …)`. The
    /// classifier also applies the new path to the later statements of the same string
    /// (see `sql` module docs); the caller tracks it across messages.
    pub const SETS_SEARCH_PATH: u32 = 1 << 0;
    /// `SET ROLE`, `SET SESSION AUTHORIZATION`, `RESET ROLE`, `RESET SESSION AUTHORIZATION`,
    /// `set_config('role', …)`. Such statements are class `dcl` (not `session`): which role
    /// the upstream session runs as is a privilege decision.
    pub const SETS_ROLE: u32 = 1 << 1;
    /// `EXECUTE name`: the caller must resolve `prepared_name` through the session's
    /// prepared statements and check their facts too.
    pub const EXECUTES_PREPARED: u32 = 1 << 2;
    /// `PREPARE name AS …`: the inner statement's facts are this statement's facts.
    pub const PREPARES: u32 = 1 << 3;
    /// `DEALLOCATE name` / `DEALLOCATE ALL` (prepared_name empty for ALL).
    pub const DEALLOCATES: u32 = 1 << 4;
    /// `EXPLAIN ANALYZE`: the inner statement runs.
    pub const EXPLAIN_ANALYZE: u32 = 1 << 5;
    /// A WITH clause contains INSERT/UPDATE/DELETE/MERGE.
    pub const DATA_MODIFYING_CTE: u32 = 1 << 6;
    /// `RESET ALL` / `DISCARD ALL`: session state returns to defaults (search path included).
    pub const RESETS_SESSION: u32 = 1 << 7;
    /// `DECLARE name CURSOR FOR …`: `prepared_name` holds the cursor name.
    pub const DECLARES_CURSOR: u32 = 1 << 8;
    /// `DECLARE … WITH HOLD`: the cursor outlives its transaction.
    pub const HOLDS_CURSOR: u32 = 1 << 9;
    /// `FETCH` / `MOVE`: `prepared_name` holds the cursor name.
    pub const USES_CURSOR: u32 = 1 << 10;
    /// `CLOSE name` / `CLOSE ALL` (`prepared_name` empty for ALL).
    pub const CLOSES_CURSOR: u32 = 1 << 11;
    /// `LISTEN channel`: `prepared_name` holds the channel.
    pub const LISTENS: u32 = 1 << 12;
    /// `UNLISTEN channel` / `UNLISTEN *` (`prepared_name` empty for `*`).
    pub const UNLISTENS: u32 = 1 << 13;

    pub const fn contains(self, f: u32) -> bool {
        self.0 & f == f
    }
    pub fn insert(&mut self, f: u32) {
        self.0 |= f;
    }
}

/// One top-level statement of a SQL string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatementFacts {
    /// Byte range of the statement in the SQL string (without the terminating `;`).
    pub start: u32,
    pub end: u32,
    pub classes: ClassSet,
    pub flags: StatementFlags,
    /// PREPARE / EXECUTE / DEALLOCATE / DECLARE / FETCH / MOVE / CLOSE name, or the
    /// LISTEN / UNLISTEN channel, if any.
    pub prepared_name: NameRef,
    /// Why the statement is `unknown`, when it is (a short static reason for explain/audit).
    pub unknown_reason: Option<&'static str>,
    /// What it does to the session's search path when it completes (the caller tracks it
    /// across messages with PostgreSQL's transaction semantics: `search_path::PathTracker`).
    pub path_effect: PathEffect,
    tables: (u32, u32),
    columns: (u32, u32),
    functions: (u32, u32),
    path: (u32, u32),
}

/// The name arena: a buffer allocated once (8 bytes of slack past the limit) and its fill.
/// Writes are word stores into the buffer, not `Vec` growth: names are pushed on every
/// statement's hot path.
#[derive(Debug)]
struct Arena {
    buf: Box<[u8]>,
    len: usize,
}

impl Arena {
    fn new(max: usize) -> Self {
        Arena {
            buf: vec![0; max + 8].into_boxed_slice(),
            len: 0,
        }
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }
    fn clear(&mut self) {
        self.len = 0;
    }
    #[inline(always)]
    fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }
    #[inline(always)]
    fn get(&self, r: std::ops::Range<usize>) -> Option<&[u8]> {
        self.buf.get(..self.len)?.get(r)
    }
    /// Stores `w` at the end (8 bytes; the caller has checked the limit, which leaves
    /// the slack) without counting it: the caller sets the length with `set_len`.
    #[inline(always)]
    fn store_word(&mut self, at: usize, w: u64) -> bool {
        match self
            .buf
            .get_mut(at..)
            .and_then(|s| s.first_chunk_mut::<8>())
        {
            Some(d) => {
                *d = w.to_le_bytes();
                true
            }
            None => false,
        }
    }
    #[inline(always)]
    fn set_len(&mut self, n: usize) {
        self.len = n.min(self.buf.len());
    }
    /// Appends `s` (the caller has checked the limit).
    #[inline(always)]
    fn extend(&mut self, s: &[u8]) {
        let at = self.len;
        let mut i = 0;
        while i < s.len() {
            // Zero-padded past the end of `s`; the length set below trims it.
            let w = crate::words::load_word(s, i);
            if !self.store_word(at + i, w) {
                return;
            }
            i += 8;
        }
        self.set_len(at + s.len());
    }
}

/// The caller-owned buffer the classifier fills. See the module docs.
#[derive(Debug)]
pub struct Facts {
    limits: FactsLimits,
    names: Arena,
    statements: Vec<StatementFacts>,
    tables: Vec<TableAccess>,
    columns: Vec<ColumnRef>,
    functions: Vec<FunctionRef>,
    path: Vec<NameRef>,
}

impl Default for Facts {
    fn default() -> Self {
        Self::new(FactsLimits::default())
    }
}

impl Facts {
    /// Allocates every buffer once, at its full capacity.
    pub fn new(limits: FactsLimits) -> Self {
        Facts {
            limits,
            names: Arena::new(limits.max_name_bytes),
            statements: Vec::with_capacity(limits.max_statements),
            tables: Vec::with_capacity(limits.max_tables),
            columns: Vec::with_capacity(limits.max_columns),
            functions: Vec::with_capacity(limits.max_functions),
            path: Vec::with_capacity(limits.max_path_names),
        }
    }

    /// Facts that hold nothing and allocated nothing: a placeholder for a holder that
    /// allocates the real buffers ([`Facts::new`]) only once it classifies (a connection
    /// that has not logged in yet). Classifying into it fails every statement on its
    /// limits (fail closed).
    pub fn unallocated() -> Self {
        let limits = FactsLimits {
            max_statements: 0,
            max_tables: 0,
            max_columns: 0,
            max_functions: 0,
            max_name_bytes: 0,
            max_path_names: 0,
        };
        Facts {
            limits,
            names: Arena::new(0),
            statements: Vec::new(),
            tables: Vec::new(),
            columns: Vec::new(),
            functions: Vec::new(),
            path: Vec::new(),
        }
    }

    /// Whether this is [`Facts::unallocated`].
    pub fn is_unallocated(&self) -> bool {
        self.limits.max_statements == 0
    }

    pub fn limits(&self) -> FactsLimits {
        self.limits
    }

    /// Empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        self.names.clear();
        self.statements.clear();
        self.tables.clear();
        self.columns.clear();
        self.functions.clear();
        self.path.clear();
    }

    // ---- reading ----

    pub fn statements(&self) -> &[StatementFacts] {
        &self.statements
    }
    pub fn tables(&self, s: &StatementFacts) -> &[TableAccess] {
        self.tables
            .get(s.tables.0 as usize..s.tables.1 as usize)
            .unwrap_or(&[])
    }
    pub fn columns(&self, s: &StatementFacts) -> &[ColumnRef] {
        self.columns
            .get(s.columns.0 as usize..s.columns.1 as usize)
            .unwrap_or(&[])
    }
    pub fn functions(&self, s: &StatementFacts) -> &[FunctionRef] {
        self.functions
            .get(s.functions.0 as usize..s.functions.1 as usize)
            .unwrap_or(&[])
    }
    /// The schemas a `SET search_path` statement sets, in order.
    pub fn search_path(&self, s: &StatementFacts) -> &[NameRef] {
        self.path
            .get(s.path.0 as usize..s.path.1 as usize)
            .unwrap_or(&[])
    }
    pub fn name(&self, r: NameRef) -> &str {
        let bytes = self
            .names
            .get(r.start as usize..(r.start as usize).saturating_add(r.len as usize))
            .unwrap_or(&[]);
        // Names are only ever pushed as `&str`, so this never fails; an empty name is the
        // safe answer if it somehow did.
        std::str::from_utf8(bytes).unwrap_or("")
    }

    /// The bytes of a name (UTF-8: names are only ever pushed as `&str`/`char`).
    pub fn name_bytes(&self, r: NameRef) -> &[u8] {
        self.names
            .get(r.start as usize..(r.start as usize).saturating_add(r.len as usize))
            .unwrap_or(&[])
    }

    // ---- writing (used by the classifier) ----

    /// Interns a name (already normalised by the caller).
    pub fn push_name(&mut self, s: &str) -> Result<NameRef, Overflow> {
        if self.names.len() + s.len() > self.limits.max_name_bytes {
            return Err(Overflow("name bytes"));
        }
        let start = self.names.len() as u32;
        self.names.extend(s.as_bytes());
        Ok(NameRef {
            start,
            len: s.len() as u32,
        })
    }

    /// Interns the name `sql[start..end]` lower-cased, if it is ASCII (the classifier's
    /// fast path for plain identifiers; `None`, and nothing kept, otherwise). Eight bytes
    /// at a time: each word is checked, folded and stored whole (the arena has 8 bytes of
    /// slack), then the arena is trimmed to the name's end.
    #[inline(always)]
    pub(crate) fn push_ascii_lowercase(
        &mut self,
        sql: &[u8],
        start: usize,
        end: usize,
    ) -> Result<Option<NameRef>, Overflow> {
        let len = end.saturating_sub(start);
        let at = self.names.len();
        if at + len > self.limits.max_name_bytes {
            return Err(Overflow("name bytes"));
        }
        let mut i = start;
        let mut high = 0u64;
        while i < end {
            let mut w = crate::words::load_word(sql, i);
            if end - i < 8 {
                w &= (1u64 << (8 * (end - i))) - 1;
            }
            high |= w;
            if !self
                .names
                .store_word(at + (i - start), crate::words::fold(w))
            {
                return Err(Overflow("name bytes"));
            }
            i += 8;
        }
        if high & 0x8080_8080_8080_8080 != 0 {
            return Ok(None);
        }
        self.names.set_len(at + len);
        Ok(Some(NameRef {
            start: at as u32,
            len: len as u32,
        }))
    }

    /// Appends to the arena char by char (for names being normalised while lexed); returns
    /// the name started at `start` (a value returned earlier by [`Facts::name_cursor`]).
    pub fn push_name_char(&mut self, c: char) -> Result<(), Overflow> {
        let mut buf = [0u8; 4];
        let enc = c.encode_utf8(&mut buf);
        if self.names.len() + enc.len() > self.limits.max_name_bytes {
            return Err(Overflow("name bytes"));
        }
        self.names.extend(enc.as_bytes());
        Ok(())
    }

    /// Current end of the name arena: start a name here, push chars, then
    /// [`Facts::finish_name`].
    pub fn name_cursor(&self) -> u32 {
        self.names.len() as u32
    }

    pub fn finish_name(&self, start: u32) -> NameRef {
        NameRef {
            start,
            len: self.names.len() as u32 - start,
        }
    }

    /// Drops names pushed after `cursor` (e.g. a name that turned out not to be needed).
    pub fn truncate_names(&mut self, cursor: u32) {
        self.names.truncate(cursor as usize);
    }

    /// Opens a new statement covering `start..end` of the SQL string.
    pub fn begin_statement(&mut self, start: u32, end: u32) -> Result<(), Overflow> {
        if self.statements.len() >= self.limits.max_statements {
            return Err(Overflow("statements"));
        }
        let t = self.tables.len() as u32;
        let c = self.columns.len() as u32;
        let f = self.functions.len() as u32;
        let p = self.path.len() as u32;
        self.statements.push(StatementFacts {
            start,
            end,
            classes: ClassSet::EMPTY,
            flags: StatementFlags::default(),
            prepared_name: NameRef::EMPTY,
            unknown_reason: None,
            path_effect: PathEffect::None,
            tables: (t, t),
            columns: (c, c),
            functions: (f, f),
            path: (p, p),
        });
        Ok(())
    }

    /// The statement being written. Panics never: returns `None` before `begin_statement`.
    pub fn current_mut(&mut self) -> Option<&mut StatementFacts> {
        self.statements.last_mut()
    }

    /// Index (within the current statement) of the next table access pushed.
    pub fn current_table_count(&self) -> usize {
        self.statements
            .last()
            .map(|s| (s.tables.1 - s.tables.0) as usize)
            .unwrap_or(0)
    }

    /// Adds a table access to the current statement; returns its index within the statement.
    pub fn push_table(&mut self, access: TableAccess) -> Result<usize, Overflow> {
        let idx = self.current_table_count();
        if idx >= MAX_TABLES_PER_STATEMENT || self.tables.len() >= self.limits.max_tables {
            return Err(Overflow("tables"));
        }
        let Some(s) = self.statements.last_mut() else {
            return Err(Overflow("statements"));
        };
        self.tables.push(access);
        s.tables.1 += 1;
        Ok(idx)
    }

    pub fn push_column(&mut self, col: ColumnRef) -> Result<(), Overflow> {
        if self.columns.len() >= self.limits.max_columns {
            return Err(Overflow("columns"));
        }
        let Some(s) = self.statements.last_mut() else {
            return Err(Overflow("statements"));
        };
        self.columns.push(col);
        s.columns.1 += 1;
        Ok(())
    }

    pub fn push_function(&mut self, f: FunctionRef) -> Result<(), Overflow> {
        if self.functions.len() >= self.limits.max_functions {
            return Err(Overflow("functions"));
        }
        let Some(s) = self.statements.last_mut() else {
            return Err(Overflow("statements"));
        };
        self.functions.push(f);
        s.functions.1 += 1;
        Ok(())
    }

    pub fn push_path_name(&mut self, n: NameRef) -> Result<(), Overflow> {
        if self.path.len() >= self.limits.max_path_names {
            return Err(Overflow("search path"));
        }
        let Some(s) = self.statements.last_mut() else {
            return Err(Overflow("statements"));
        };
        self.path.push(n);
        s.path.1 += 1;
        Ok(())
    }

    /// The current statement's column references, mutable: the classifier widens candidate
    /// masks after the fact (e.g. `COPY (query) TO`: every read is also a `copy-out` read).
    /// Never changes how many there are.
    pub fn current_columns_mut(&mut self) -> &mut [ColumnRef] {
        match self.statements.last() {
            Some(s) => {
                let (a, b) = (s.columns.0 as usize, s.columns.1 as usize);
                self.columns.get_mut(a..b).unwrap_or(&mut [])
            }
            None => &mut [],
        }
    }

    /// The current statement's table access `idx` (within the statement), if any.
    pub fn current_table(&self, idx: usize) -> Option<TableAccess> {
        let s = self.statements.last()?;
        self.tables.get(s.tables.0 as usize + idx).copied()
    }

    /// How many tables, columns, functions and path names the current statement has, and
    /// the name arena's end: a mark to return to with [`Facts::truncate_current`].
    pub fn current_mark(&self) -> [u32; 5] {
        match self.statements.last() {
            Some(s) => [
                s.tables.1 - s.tables.0,
                s.columns.1 - s.columns.0,
                s.functions.1 - s.functions.0,
                s.path.1 - s.path.0,
                self.names.len() as u32,
            ],
            None => [0, 0, 0, 0, self.names.len() as u32],
        }
    }

    /// Drops what the current statement gained since `mark` (the classifier backtracks
    /// when PostgreSQL's grammar needs more lookahead than one token, e.g. `((SELECT …`).
    pub fn truncate_current(&mut self, mark: [u32; 5]) {
        if let Some(s) = self.statements.last_mut() {
            s.tables.1 = s.tables.1.min(s.tables.0 + mark[0]);
            s.columns.1 = s.columns.1.min(s.columns.0 + mark[1]);
            s.functions.1 = s.functions.1.min(s.functions.0 + mark[2]);
            s.path.1 = s.path.1.min(s.path.0 + mark[3]);
            self.tables.truncate(s.tables.1 as usize);
            self.columns.truncate(s.columns.1 as usize);
            self.functions.truncate(s.functions.1 as usize);
            self.path.truncate(s.path.1 as usize);
        }
        self.names.truncate(mark[4] as usize);
    }

    /// Removes the current statement's tables, columns, functions and path names (used when
    /// a statement turns out to be `unknown`: its partial facts must not be trusted).
    pub fn reset_current(&mut self) {
        if let Some(s) = self.statements.last_mut() {
            self.tables.truncate(s.tables.0 as usize);
            self.columns.truncate(s.columns.0 as usize);
            self.functions.truncate(s.functions.0 as usize);
            self.path.truncate(s.path.0 as usize);
            s.tables.1 = s.tables.0;
            s.columns.1 = s.columns.0;
            s.functions.1 = s.functions.0;
            s.path.1 = s.path.0;
        }
    }
}
