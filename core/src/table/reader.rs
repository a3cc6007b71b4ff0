//! Zero-copy reader of `.pgt` bytes and `decide()`.
//!
//! [`Table::parse`] validates everything once: magic, version, checksum, that every section
//! is present once and in bounds, and that every string, index and offset stored anywhere
//! points inside its section. After that, lookups index slices proven in range — and still
//! use `get`, so even a bug here cannot panic. Nothing in this module allocates.

use std::path::Path;

use zerocopy::FromBytes;

use super::format::*;
use super::model::{Budget, Limits, MaskKind, OnExceed, RateScope, RuleKind, TokenUse};
use crate::class::{ClassSet, StatementClass};
use crate::facts::{Clause, ColumnName, Facts, StatementFacts};

mod delegation;
pub use delegation::DelegationRefused;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleId(pub u32);
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub u32);
/// A column index within its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnId(pub u32);
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionId(pub u32);

/// Why a table file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy table {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a pgate policy table (bad magic); build one with `pgate-compile build`")]
    BadMagic,
    #[error(
        "policy table format version {found} is not supported (this build reads {expected}); rebuild it with this version's pgate-compile"
    )]
    Version { found: u32, expected: u32 },
    #[error("policy table is truncated: {0}; rebuild it or copy it again")]
    Truncated(&'static str),
    #[error("policy table checksum mismatch: the file is corrupt; rebuild it")]
    Checksum,
    #[error("policy table is malformed: {0}; rebuild it with pgate-compile")]
    Malformed(&'static str),
}

/// A rule as stored: where it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleView<'a> {
    pub id: u32,
    pub file: &'a str,
    pub line: u32,
    pub column: u32,
    pub kind: RuleKind,
    pub role: &'a str,
    pub text: &'a str,
}

/// Why a statement was denied. Indices point into the [`Facts`] of the statement decided
/// (access index into `Facts::tables(stmt)`, column index into `Facts::columns(stmt)`,
/// function index into `Facts::functions(stmt)`), so denying allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// The statement is class `unknown` and no rule allows `unknown`.
    UnknownStatement,
    /// The role has no access to this class (statements that touch no table).
    Class(StatementClass),
    /// The table is not allowed for this class.
    Table { class: StatementClass, access: u16 },
    /// The table is not in the policy catalog and no pattern rule allows it.
    UndeclaredTable { class: StatementClass, access: u16 },
    /// A referenced column is not allowed.
    Column {
        class: StatementClass,
        access: u16,
        column: u16,
    },
    /// A called function is not allowed.
    Function { function: u16 },
    /// A column the role reads masked is used other than as a plain output column (in an
    /// expression, a predicate, a join, a sort, a grouping, a set operation, a subquery):
    /// the value would reach the client, or decide what reaches it, unmasked. The rule is
    /// the mask's.
    MaskedColumn { access: u16, column: u16 },
    /// The role is not in this table.
    UnknownRole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny {
        /// The deciding rule, or `None` for default deny.
        rule: Option<u32>,
        /// Index of the denied statement in `Facts::statements()`.
        statement: u16,
        reason: DenyReason,
    },
}

/// The answer of `decide()`: the decision plus what the data plane enforces on an allowed
/// statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    /// An allow rule that granted part of the statement (the first consulted), for audit.
    pub allow_rule: Option<u32>,
    /// Per-statement caps of the role.
    pub limits: Limits,
    /// Whether any mask of the role applies to a table the statement reads.
    pub masked: bool,
}

impl Verdict {
    pub fn is_allow(&self) -> bool {
        matches!(self.decision, Decision::Allow)
    }
    /// The deny rule, if denied by a rule.
    pub fn rule(&self) -> Option<u32> {
        match self.decision {
            Decision::Allow => self.allow_rule,
            Decision::Deny { rule, .. } => rule,
        }
    }
}

/// A kind of rule beyond access decisions, which a data plane enforces on the result
/// stream (or does not yet: then it must refuse the table, see [`Table::features`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    Mask = 0,
    Limit = 1,
    Rate = 2,
    TokenUse = 3,
    Delegation = 4,
    Budget = 5,
}

impl Feature {
    pub const ALL: [Feature; 6] = [
        Feature::Mask,
        Feature::Limit,
        Feature::Rate,
        Feature::TokenUse,
        Feature::Delegation,
        Feature::Budget,
    ];

    /// As a policy author knows it.
    pub const fn name(self) -> &'static str {
        match self {
            Feature::Mask => "masks (`mask`)",
            Feature::Limit => "result caps (`limit`)",
            Feature::Rate => "byte-rate limits (`rate`)",
            Feature::TokenUse => "sessions per token (`token`)",
            Feature::Delegation => "delegation rules (`delegated`, `delegation`)",
            Feature::Budget => "per-identity budgets (`budget`)",
        }
    }
}

/// A byte-rate bucket of a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateView {
    pub bytes_per_second: u64,
    pub burst_bytes: u64,
    pub scope: RateScope,
    pub on_exceed: OnExceed,
    pub rule: u32,
}

/// Owns validated table bytes: read into memory, or any read-only byte owner such as a
/// memory map (the data plane maps the file; mapping needs `unsafe`, which this crate
/// forbids, so it lives with the driver that owns the file's lifetime).
pub struct TableFile {
    bytes: Bytes,
    digest: [u8; 32],
}

enum Bytes {
    Shared(Box<dyn AsRef<[u8]> + Send + Sync>),
    Owned(Vec<u8>),
}

impl TableFile {
    /// Reads and validates a table file.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_vec(bytes)
    }

    /// Validates bytes held by any read-only owner (e.g. a `memmap2::Mmap`). The owner must
    /// not change the bytes afterwards: replace a table by writing a new file and renaming
    /// it over the old one, never by writing in place.
    pub fn from_shared(owner: Box<dyn AsRef<[u8]> + Send + Sync>) -> Result<Self, LoadError> {
        let digest = Table::parse((*owner).as_ref())?.digest();
        Ok(TableFile {
            bytes: Bytes::Shared(owner),
            digest,
        })
    }

    pub fn from_vec(bytes: Vec<u8>) -> Result<Self, LoadError> {
        let digest = Table::parse(&bytes)?.digest();
        Ok(TableFile {
            bytes: Bytes::Owned(bytes),
            digest,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Shared(m) => (**m).as_ref(),
            Bytes::Owned(v) => v,
        }
    }

    /// The validated view. Re-validation is skipped: the bytes were proven at open time
    /// and a read-only mapping of a file replaced by rename never changes.
    pub fn table(&self) -> Table<'_> {
        match Table::parse_unchecked_checksum(self.bytes()) {
            Ok(t) => t,
            // Unreachable in practice (validated at open); an empty table denies everything.
            Err(_) => Table::EMPTY,
        }
    }

    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

/// A validated view over table bytes. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    header: Option<&'a Header>,
    strings: &'a [u8],
    rules: &'a [RuleRec],
    tables: &'a [TableRec],
    classes: &'a [ClassRec],
    column_lists: &'a [ColumnListRec],
    columns: &'a [ColumnRec],
    functions: &'a [FunctionRec],
    index: &'a [IndexSlot],
    roles: &'a [RoleRec],
    members: &'a [MemberRec],
    maps: &'a [MapRec],
    map_entries: &'a [zerocopy::little_endian::U16],
    locals: &'a [LocalRec],
    cells: &'a [CellRec],
    colsets: &'a [zerocopy::little_endian::U64],
    func_verdicts: &'a [zerocopy::little_endian::U32],
    patterns: &'a [PatternRec],
    masks: &'a [MaskRec],
    rates: &'a [RateRec],
    actors: &'a [StrRef],
    budgets: &'a [BudgetRec],
}

const MAX_COLUMNS_PER_TABLE: u32 = 1600; // PostgreSQL's own limit (MaxHeapAttributeNumber)

fn slice<'a, T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
    bytes: &'a [u8],
    e: &SectionEntry,
) -> Result<&'a [T], LoadError> {
    let start =
        usize::try_from(e.offset.get()).map_err(|_| LoadError::Truncated("section offset"))?;
    let len = usize::try_from(e.len.get()).map_err(|_| LoadError::Truncated("section length"))?;
    let end = start
        .checked_add(len)
        .ok_or(LoadError::Malformed("section bounds overflow"))?;
    let b = bytes
        .get(start..end)
        .ok_or(LoadError::Truncated("section extends past end of file"))?;
    let s = <[T]>::ref_from_bytes(b).map_err(|_| LoadError::Malformed("section length"))?;
    if s.len() != e.count.get() as usize && std::mem::size_of::<T>() != 1 {
        return Err(LoadError::Malformed("section record count"));
    }
    Ok(s)
}

impl<'a> Table<'a> {
    const EMPTY: Table<'static> = Table {
        header: None,
        strings: &[],
        rules: &[],
        tables: &[],
        classes: &[],
        column_lists: &[],
        columns: &[],
        functions: &[],
        index: &[],
        roles: &[],
        members: &[],
        maps: &[],
        map_entries: &[],
        locals: &[],
        cells: &[],
        colsets: &[],
        func_verdicts: &[],
        patterns: &[],
        masks: &[],
        rates: &[],
        actors: &[],
        budgets: &[],
    };

    /// Validates `bytes` completely and returns a view over them.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, LoadError> {
        let header = Self::header(bytes)?;
        // Under the fuzzer the checksum is not checked, so that mutated tables reach the
        // validation behind it (a real file with a wrong checksum never gets that far).
        if !cfg!(fuzzing) && file_checksum(bytes) != header.body_checksum {
            return Err(LoadError::Checksum);
        }
        let t = Self::sections(bytes, header)?;
        t.validate()?;
        Ok(t)
    }

    fn parse_unchecked_checksum(bytes: &'a [u8]) -> Result<Self, LoadError> {
        let header = Self::header(bytes)?;
        Self::sections(bytes, header)
    }

    fn header(bytes: &'a [u8]) -> Result<&'a Header, LoadError> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
                LoadError::Truncated("file shorter than its magic")
            } else {
                LoadError::BadMagic
            });
        }
        let (header, _) =
            Header::ref_from_prefix(bytes).map_err(|_| LoadError::Truncated("header"))?;
        if header.version.get() != FORMAT_VERSION {
            return Err(LoadError::Version {
                found: header.version.get(),
                expected: FORMAT_VERSION,
            });
        }
        let body_len = usize::try_from(header.body_len.get())
            .map_err(|_| LoadError::Malformed("body length"))?;
        match (bytes.len() - HEADER_LEN).cmp(&body_len) {
            std::cmp::Ordering::Less => {
                return Err(LoadError::Truncated("body shorter than header says"));
            }
            std::cmp::Ordering::Greater => {
                return Err(LoadError::Malformed("trailing bytes after body"));
            }
            std::cmp::Ordering::Equal => {}
        }
        Ok(header)
    }

    fn sections(bytes: &'a [u8], header: &'a Header) -> Result<Self, LoadError> {
        let n = header.section_count.get() as usize;
        if n != SECTION_KINDS.len() {
            return Err(LoadError::Malformed("section count"));
        }
        let table_bytes = bytes
            .get(HEADER_LEN..HEADER_LEN + n * std::mem::size_of::<SectionEntry>())
            .ok_or(LoadError::Truncated("section table"))?;
        let entries = <[SectionEntry]>::ref_from_bytes(table_bytes)
            .map_err(|_| LoadError::Malformed("section table"))?;
        // Sections are written in kind order; requiring it makes "each exactly once" trivial.
        for (e, kind) in entries.iter().zip(SECTION_KINDS) {
            if e.kind.get() != kind as u32 {
                return Err(LoadError::Malformed(
                    "section kinds out of order or missing",
                ));
            }
        }
        let e = |k: SectionKind| &entries[k as usize - 1];
        Ok(Table {
            header: Some(header),
            strings: slice::<u8>(bytes, e(SectionKind::Strings))?,
            rules: slice(bytes, e(SectionKind::Rules))?,
            tables: slice(bytes, e(SectionKind::Tables))?,
            classes: slice(bytes, e(SectionKind::Classes))?,
            column_lists: slice(bytes, e(SectionKind::ColumnLists))?,
            columns: slice(bytes, e(SectionKind::Columns))?,
            functions: slice(bytes, e(SectionKind::Functions))?,
            index: slice(bytes, e(SectionKind::NameIndex))?,
            roles: slice(bytes, e(SectionKind::Roles))?,
            members: slice(bytes, e(SectionKind::Members))?,
            maps: slice(bytes, e(SectionKind::Maps))?,
            map_entries: slice(bytes, e(SectionKind::MapEntries))?,
            locals: slice(bytes, e(SectionKind::Locals))?,
            cells: slice(bytes, e(SectionKind::Cells))?,
            colsets: slice(bytes, e(SectionKind::ColumnSets))?,
            func_verdicts: slice(bytes, e(SectionKind::FunctionVerdicts))?,
            patterns: slice(bytes, e(SectionKind::Patterns))?,
            masks: slice(bytes, e(SectionKind::Masks))?,
            rates: slice(bytes, e(SectionKind::Rates))?,
            actors: slice(bytes, e(SectionKind::Actors))?,
            budgets: slice(bytes, e(SectionKind::Budgets))?,
        })
    }

    fn check_str(&self, s: &StrRef) -> Result<(), LoadError> {
        let start = s.offset.get() as usize;
        let end = start
            .checked_add(s.len.get() as usize)
            .ok_or(LoadError::Malformed("string bounds"))?;
        let b = self
            .strings
            .get(start..end)
            .ok_or(LoadError::Malformed("string out of bounds"))?;
        std::str::from_utf8(b).map_err(|_| LoadError::Malformed("string is not UTF-8"))?;
        Ok(())
    }

    fn check_rule(&self, r: u32) -> Result<(), LoadError> {
        if r == NONE || (r as usize) < self.rules.len() {
            Ok(())
        } else {
            Err(LoadError::Malformed("rule id out of range"))
        }
    }

    fn check_range(
        first: u32,
        count: u32,
        len: usize,
        what: &'static str,
    ) -> Result<(), LoadError> {
        let end = u64::from(first) + u64::from(count);
        if end <= len as u64 {
            Ok(())
        } else {
            Err(LoadError::Malformed(what))
        }
    }

    fn check_colset(&self, offset: u32, columns: u32) -> Result<(), LoadError> {
        if offset == NONE {
            return Ok(());
        }
        if columns == 0 {
            return Err(LoadError::Malformed(
                "column set in a group without columns",
            ));
        }
        Self::check_range(
            offset,
            colset_words(columns),
            self.colsets.len(),
            "column set out of range",
        )
    }

    fn validate(&self) -> Result<(), LoadError> {
        for r in self.rules {
            self.check_str(&r.file)?;
            self.check_str(&r.role)?;
            self.check_str(&r.text)?;
            rule_kind(r.kind).ok_or(LoadError::Malformed("rule kind"))?;
        }
        for l in self.column_lists {
            if l.column_count.get() > MAX_COLUMNS_PER_TABLE {
                return Err(LoadError::Malformed("too many columns in a table"));
            }
            Self::check_range(
                l.first_column.get(),
                l.column_count.get(),
                self.columns.len(),
                "column list out of range",
            )?;
        }
        for c in self.classes {
            if c.column_list.get() as usize >= self.column_lists.len() {
                return Err(LoadError::Malformed("class column list out of range"));
            }
        }
        for t in self.tables {
            self.check_str(&t.schema)?;
            self.check_str(&t.name)?;
            let class = self
                .classes
                .get(t.class.get() as usize)
                .ok_or(LoadError::Malformed("table class out of range"))?;
            if class.column_list != t.column_list {
                return Err(LoadError::Malformed(
                    "table columns differ from its class's",
                ));
            }
        }
        for c in self.columns {
            self.check_str(&c.name)?;
        }
        for f in self.functions {
            self.check_str(&f.schema)?;
            self.check_str(&f.name)?;
            self.check_str(&f.overloads)?;
        }
        if !self.index.len().is_power_of_two() {
            return Err(LoadError::Malformed("name index size"));
        }
        let mut used = 0usize;
        for s in self.index {
            let limit = match s.kind.get() {
                0 => continue,
                KEY_ROLE => self.roles.len(),
                KEY_TABLE => self.tables.len(),
                KEY_COLUMN => self.columns.len(),
                KEY_FUNCTION | KEY_FUNCTION_NAME => self.functions.len(),
                _ => return Err(LoadError::Malformed("name index key kind")),
            };
            used += 1;
            if s.id.get() as usize >= limit {
                return Err(LoadError::Malformed("name index id out of range"));
            }
        }
        // Probing stops at an empty slot; a full index would loop forever.
        if used >= self.index.len() {
            return Err(LoadError::Malformed("name index has no empty slot"));
        }
        if self.cells.is_empty() {
            return Err(LoadError::Malformed("cell section is empty"));
        }
        for c in self.cells {
            if c.effect > EFFECT_DENY {
                return Err(LoadError::Malformed("cell effect"));
            }
            self.check_rule(c.rule.get())?;
            self.check_rule(c.denied_rule.get())?;
        }
        // Every entry of a map is below its group count: one pass per distinct map.
        let nclasses = self.classes.len();
        for m in self.maps {
            let first = m.first.get() as usize;
            let entries = self
                .map_entries
                .get(first..first.saturating_add(nclasses))
                .ok_or(LoadError::Malformed("map out of range"))?;
            let groups = m.groups.get();
            if entries.iter().any(|e| u32::from(e.get()) >= groups) {
                return Err(LoadError::Malformed("map entry out of range"));
            }
        }
        // Every cell a group uses has column sets of the group's width; every mask names
        // a column within it, in column order.
        for l in self.locals {
            let columns = l.columns.get();
            if columns > MAX_COLUMNS_PER_TABLE {
                return Err(LoadError::Malformed("too many columns in a group"));
            }
            for id in &l.cells {
                let cell = self
                    .cells
                    .get(id.get() as usize)
                    .ok_or(LoadError::Malformed("cell id out of range"))?;
                self.check_colset(cell.allow_cols.get(), columns)?;
                self.check_colset(cell.denied_cols.get(), columns)?;
            }
            Self::check_range(
                l.masks_first.get(),
                l.masks_count.get(),
                self.masks.len(),
                "group masks out of range",
            )?;
            let first = l.masks_first.get() as usize;
            let masks = self
                .masks
                .get(first..first + l.masks_count.get() as usize)
                .unwrap_or(&[]);
            let mut last: Option<u32> = None;
            for m in masks {
                if m.column.get() >= columns
                    || last.is_some_and(|c| c >= m.column.get())
                    || MaskKind::from_id(m.kind).is_none()
                    || m.flags & !MASK_PREDICATES != 0
                {
                    return Err(LoadError::Malformed("mask column or kind"));
                }
                last = Some(m.column.get());
                self.check_rule(m.rule.get())?;
            }
        }
        if self.func_verdicts.len() != self.roles.len() * self.functions.len() {
            return Err(LoadError::Malformed("function verdict count"));
        }
        for v in self.func_verdicts {
            if v.get() as usize >= self.cells.len() {
                return Err(LoadError::Malformed("function verdict out of range"));
            }
        }
        for r in self.roles {
            self.check_str(&r.name)?;
            for (first, count, len, what) in [
                (
                    r.members_first,
                    r.members_count,
                    self.members.len(),
                    "role members out of range",
                ),
                (
                    r.patterns_first,
                    r.patterns_count,
                    self.patterns.len(),
                    "role patterns out of range",
                ),
                (
                    r.locals_first,
                    r.locals_count,
                    self.locals.len(),
                    "role groups out of range",
                ),
                (
                    r.rates_first,
                    r.rates_count,
                    self.rates.len(),
                    "role rates out of range",
                ),
                (
                    r.budgets_first,
                    r.budgets_count,
                    self.budgets.len(),
                    "role budgets out of range",
                ),
            ] {
                Self::check_range(first.get(), count.get(), len, what)?;
            }
            let map = self
                .maps
                .get(r.map.get() as usize)
                .ok_or(LoadError::Malformed("role map out of range"))?;
            // The class-level record, then one per group the map refers to.
            if u64::from(map.groups.get()) + 1 != u64::from(r.locals_count.get()) {
                return Err(LoadError::Malformed("role group count"));
            }
            self.check_rule(r.limit_rule.get())?;
            self.check_rule(r.token_rule.get())?;
            if r.token_flags.get() & !1 != 0 {
                return Err(LoadError::Malformed("unknown token flags"));
            }
            self.check_delegation(r)?;
        }
        for m in self.members {
            self.check_str(&m.claim)?;
            self.check_str(&m.value)?;
        }
        for p in self.patterns {
            self.check_str(&p.pattern)?;
            if p.kind > 1 || p.effect == EFFECT_DEFAULT_DENY || p.effect > EFFECT_DENY {
                return Err(LoadError::Malformed("pattern kind or effect"));
            }
            self.check_rule(p.rule.get())?;
        }
        for r in self.rates {
            if r.scope > 1 || r.on_exceed > 1 {
                return Err(LoadError::Malformed("rate scope or on-exceed"));
            }
            self.check_rule(r.rule.get())?;
        }
        for b in self.budgets {
            if !matches!(b.window_secs.get(), 3_600 | 86_400)
                || (b.max_rows.get() == NO_LIMIT && b.max_bytes.get() == NO_LIMIT)
            {
                return Err(LoadError::Malformed("budget window or amount"));
            }
            self.check_rule(b.rule.get())?;
        }
        Ok(())
    }

    // ---- metadata ----

    pub fn source_digest(&self) -> [u8; 32] {
        self.header.map(|h| h.source_digest).unwrap_or([0; 32])
    }
    pub fn catalog_digest(&self) -> [u8; 32] {
        self.header.map(|h| h.catalog_digest).unwrap_or([0; 32])
    }
    /// The table digest audit lines carry: the body checksum, which covers every byte that
    /// decides anything.
    pub fn digest(&self) -> [u8; 32] {
        self.header.map(|h| h.body_checksum).unwrap_or([0; 32])
    }

    fn str(&self, s: &StrRef) -> &'a str {
        let start = s.offset.get() as usize;
        let end = start.saturating_add(s.len.get() as usize);
        self.strings
            .get(start..end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// Raw bytes of a stored string (validated as UTF-8 at load): for comparisons on the
    /// hot path, where re-validating would cost more than the lookup.
    #[inline(always)]
    fn raw(&self, s: &StrRef) -> &'a [u8] {
        let start = s.offset.get() as usize;
        let end = start.saturating_add(s.len.get() as usize);
        self.strings.get(start..end).unwrap_or(&[])
    }

    #[inline(always)]
    fn lookup(
        &self,
        kind: u32,
        prefix: u32,
        parts: &[&[u8]],
        matches: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let hash = key_hash(kind, prefix, parts);
        let mut pos = (hash as usize) & mask;
        // Bounded by the index size; validation proved an empty slot exists.
        for _ in 0..self.index.len() {
            let slot = self.index.get(pos)?;
            match slot.kind.get() {
                0 => return None,
                k if k == kind && slot.hash.get() == hash && matches(slot.id.get()) => {
                    return Some(slot.id.get());
                }
                _ => pos = (pos + 1) & mask,
            }
        }
        None
    }

    // ---- roles ----

    pub fn role(&self, name: &str) -> Option<RoleId> {
        self.lookup(KEY_ROLE, 0, &[name.as_bytes()], |id| {
            self.roles
                .get(id as usize)
                .is_some_and(|r| self.raw(&r.name) == name.as_bytes())
        })
        .map(RoleId)
    }
    /// The records of `items` a role's (first, count) fields name (validated at load; empty
    /// for an unknown role).
    fn role_range<T>(
        &self,
        items: &'a [T],
        role: RoleId,
        range: impl Fn(&RoleRec) -> (zerocopy::little_endian::U32, zerocopy::little_endian::U32),
    ) -> &'a [T] {
        let Some((first, count)) = self.roles.get(role.0 as usize).map(range) else {
            return &[];
        };
        let first = first.get() as usize;
        items
            .get(first..first + count.get() as usize)
            .unwrap_or(&[])
    }
    pub fn role_count(&self) -> u32 {
        self.roles.len() as u32
    }

    /// The features the table's rules use, each with the first rule (in role order) that
    /// uses it: a data plane refuses to load a table that uses one it does not enforce.
    pub fn features(&self) -> impl Iterator<Item = (Feature, u32)> + 'a {
        let mut found = [None; Feature::ALL.len()];
        for (i, r) in self.roles.iter().enumerate() {
            let first = |start: u32, count: u32| (count > 0).then_some(start as usize);
            if found[Feature::Mask as usize].is_none()
                && let Some(rule) = self.first_mask_of_role(RoleId(i as u32))
            {
                found[Feature::Mask as usize] = Some((Feature::Mask, rule));
            }
            if found[Feature::Rate as usize].is_none()
                && let Some(i) = first(r.rates_first.get(), r.rates_count.get())
                && let Some(m) = self.rates.get(i)
            {
                found[Feature::Rate as usize] = Some((Feature::Rate, m.rule.get()));
            }
            if found[Feature::Limit as usize].is_none()
                && let Some(rule) = none_to_opt(r.limit_rule.get())
            {
                found[Feature::Limit as usize] = Some((Feature::Limit, rule));
            }
            if found[Feature::TokenUse as usize].is_none()
                && let Some(rule) = none_to_opt(r.token_rule.get())
            {
                found[Feature::TokenUse as usize] = Some((Feature::TokenUse, rule));
            }
            if found[Feature::Budget as usize].is_none()
                && let Some(b) = first(r.budgets_first.get(), r.budgets_count.get())
                    .and_then(|i| self.budgets.get(i))
            {
                found[Feature::Budget as usize] = Some((Feature::Budget, b.rule.get()));
            }
            if found[Feature::Delegation as usize].is_none()
                && let Some(rule) = self.first_delegation_rule(RoleId(i as u32))
            {
                found[Feature::Delegation as usize] = Some((Feature::Delegation, rule));
            }
        }
        found.into_iter().flatten()
    }
    pub fn role_name(&self, role: RoleId) -> &'a str {
        self.roles
            .get(role.0 as usize)
            .map(|r| self.str(&r.name))
            .unwrap_or("")
    }
    /// (claim, value) pairs that grant the role.
    pub fn memberships(&self, role: RoleId) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let t = *self;
        self.role_range(self.members, role, |r| (r.members_first, r.members_count))
            .iter()
            .map(move |m| (t.str(&m.claim), t.str(&m.value)))
    }
    pub fn limits(&self, role: RoleId) -> Limits {
        let Some(r) = self.roles.get(role.0 as usize) else {
            return Limits::default();
        };
        let lim = |v: u64| (v != NO_LIMIT).then_some(v);
        Limits {
            max_rows: lim(r.max_rows.get()),
            max_bytes: lim(r.max_bytes.get()),
            rule: none_to_opt(r.limit_rule.get()),
        }
    }
    /// Sessions per token for the role.
    pub fn token_use(&self, role: RoleId) -> TokenUse {
        let Some(r) = self.roles.get(role.0 as usize) else {
            return TokenUse::default();
        };
        let lim = |v: u32| (v != u32::MAX).then_some(v);
        TokenUse {
            max_sessions: lim(r.max_sessions.get()),
            max_concurrent: lim(r.max_concurrent.get()),
            require_certificate: r.token_flags.get() & 1 != 0,
            rule: none_to_opt(r.token_rule.get()),
        }
    }
    /// The role's budgets.
    pub fn budgets(&self, role: RoleId) -> impl Iterator<Item = Budget> + 'a {
        let lim = |v: u64| (v != NO_LIMIT).then_some(v);
        self.role_range(self.budgets, role, |r| (r.budgets_first, r.budgets_count))
            .iter()
            .map(move |b| Budget {
                max_rows: lim(b.max_rows.get()),
                max_bytes: lim(b.max_bytes.get()),
                window_secs: b.window_secs.get(),
                rule: b.rule.get(),
            })
    }
    pub fn rates(&self, role: RoleId) -> impl Iterator<Item = RateView> + 'a {
        self.role_range(self.rates, role, |r| (r.rates_first, r.rates_count))
            .iter()
            .map(|r| RateView {
                bytes_per_second: r.bytes_per_second.get(),
                burst_bytes: r.burst_bytes.get(),
                scope: if r.scope == 1 {
                    RateScope::Identity
                } else {
                    RateScope::Session
                },
                on_exceed: if r.on_exceed == 1 {
                    OnExceed::Terminate
                } else {
                    OnExceed::Throttle
                },
                rule: r.rule.get(),
            })
    }

    // ---- catalog ----

    pub fn table_count(&self) -> u32 {
        self.tables.len() as u32
    }
    pub fn table_id(&self, schema: &str, name: &str) -> Option<TableId> {
        self.table_id_bytes(schema.as_bytes(), name.as_bytes())
    }
    #[inline]
    fn table_id_bytes(&self, schema: &[u8], name: &[u8]) -> Option<TableId> {
        self.lookup(KEY_TABLE, 0, &[schema, name], |id| {
            self.tables
                .get(id as usize)
                .is_some_and(|t| self.raw(&t.schema) == schema && self.raw(&t.name) == name)
        })
        .map(TableId)
    }
    /// (schema, name) of a declared table.
    pub fn table_name(&self, t: TableId) -> (&'a str, &'a str) {
        self.tables
            .get(t.0 as usize)
            .map(|r| (self.str(&r.schema), self.str(&r.name)))
            .unwrap_or(("", ""))
    }
    /// A table's column list.
    #[inline]
    fn list(&self, t: TableId) -> Option<(u32, &'a ColumnListRec)> {
        let id = self.tables.get(t.0 as usize)?.column_list.get();
        Some((id, self.column_lists.get(id as usize)?))
    }
    pub fn column_count(&self, t: TableId) -> u32 {
        self.list(t).map(|(_, l)| l.column_count.get()).unwrap_or(0)
    }
    /// How many decision classes the tables fall into (tables of one class are decided
    /// alike for every role).
    pub fn class_count(&self) -> u32 {
        self.classes.len() as u32
    }
    /// What decides `table` for `role`: its group among the role's groups and its column
    /// list. Two tables with the same pair are decided alike, column by column (for
    /// comparing two tables without walking every cell).
    pub fn decision_group(&self, role: RoleId, table: TableId) -> Option<(u32, u32)> {
        let r = self.roles.get(role.0 as usize)?;
        let t = self.tables.get(table.0 as usize)?;
        let map = self.maps.get(r.map.get() as usize)?;
        let e = self
            .map_entries
            .get(map.first.get() as usize + t.class.get() as usize)?;
        Some((u32::from(e.get()), t.column_list.get()))
    }
    /// The decision class of a table.
    pub fn table_class(&self, t: TableId) -> Option<u32> {
        self.tables.get(t.0 as usize).map(|r| r.class.get())
    }
    pub fn column_id(&self, t: TableId, name: &str) -> Option<ColumnId> {
        self.column_id_bytes(t, name.as_bytes())
    }
    #[inline]
    fn column_id_bytes(&self, t: TableId, name: &[u8]) -> Option<ColumnId> {
        /// Tables up to this wide are searched in order (a length compare per column
        /// beats hashing the name); wider ones through the name index.
        const SCAN_COLUMNS: u32 = 8;
        let (list, rec) = self.list(t)?;
        let first = rec.first_column.get();
        let count = rec.column_count.get();
        if count <= SCAN_COLUMNS {
            // Column names are unique within a table (the compiler's catalog checks it),
            // so the first match is the only one, as the index would find.
            let cols = self
                .columns
                .get(first as usize..(first + count) as usize)
                .unwrap_or(&[]);
            return cols
                .iter()
                .position(|c| c.name.len.get() as usize == name.len() && self.raw(&c.name) == name)
                .map(|i| ColumnId(i as u32));
        }
        self.lookup(KEY_COLUMN, list, &[name], |gid| {
            gid >= first
                && gid - first < rec.column_count.get()
                && self
                    .columns
                    .get(gid as usize)
                    .is_some_and(|c| self.raw(&c.name) == name)
        })
        .map(|gid| ColumnId(gid - first))
    }
    pub fn column_name(&self, t: TableId, c: ColumnId) -> &'a str {
        self.list(t)
            .filter(|(_, l)| c.0 < l.column_count.get())
            .and_then(|(_, l)| self.columns.get((l.first_column.get() + c.0) as usize))
            .map(|c| self.str(&c.name))
            .unwrap_or("")
    }
    pub fn function_count(&self) -> u32 {
        self.functions.len() as u32
    }
    pub fn function_id(&self, schema: &str, name: &str) -> Option<FunctionId> {
        self.lookup(
            KEY_FUNCTION,
            0,
            &[schema.as_bytes(), name.as_bytes()],
            |id| {
                self.functions.get(id as usize).is_some_and(|f| {
                    self.raw(&f.schema) == schema.as_bytes() && self.raw(&f.name) == name.as_bytes()
                })
            },
        )
        .map(FunctionId)
    }
    /// The overloads the catalog lists for `f`: their identity arguments, sorted, each
    /// followed by `\n`; `None` when it does not list them (see `FunctionRec::overloads`).
    pub fn function_overloads(&self, f: FunctionId) -> Option<&'a str> {
        let r = self.functions.get(f.0 as usize)?;
        Some(self.str(&r.overloads)).filter(|s| !s.is_empty())
    }
    pub fn function_name(&self, f: FunctionId) -> (&'a str, &'a str) {
        self.functions
            .get(f.0 as usize)
            .map(|r| (self.str(&r.schema), self.str(&r.name)))
            .unwrap_or(("", ""))
    }
    pub fn rule_count(&self) -> u32 {
        self.rules.len() as u32
    }
    pub fn rule(&self, id: u32) -> Option<RuleView<'a>> {
        let r = self.rules.get(id as usize)?;
        Some(RuleView {
            id,
            file: self.str(&r.file),
            line: r.line.get(),
            column: r.column.get(),
            kind: rule_kind(r.kind)?,
            role: self.str(&r.role),
            text: self.str(&r.text),
        })
    }

    // ---- cells ----

    /// The group record deciding `table` for `role` (`None` table: the class-level one).
    #[inline]
    fn group(&self, role: RoleId, table: Option<TableId>) -> Option<&'a LocalRec> {
        let r = self.roles.get(role.0 as usize)?;
        let at = match table {
            None => 0,
            Some(t) => {
                let class = self.tables.get(t.0 as usize)?.class.get() as usize;
                let map = self.maps.get(r.map.get() as usize)?;
                let e = self.map_entries.get(map.first.get() as usize + class)?;
                1 + usize::from(e.get())
            }
        };
        self.locals.get(r.locals_first.get() as usize + at)
    }

    #[inline]
    fn cell_rec(&self, role: RoleId, class: StatementClass, table: Option<TableId>) -> CellAt<'a> {
        let Some(g) = self.group(role, table) else {
            return CellAt::DEFAULT;
        };
        let rec = g
            .cells
            .get(class as usize)
            .and_then(|id| self.cells.get(id.get() as usize))
            .unwrap_or(&DEFAULT_CELL);
        CellAt {
            rec,
            columns: g.columns.get(),
        }
    }

    /// The cell verdict for (role, class, table) — `None` table: the class-level cell.
    /// Returns (allowed, deciding rule).
    pub fn cell(
        &self,
        role: RoleId,
        class: StatementClass,
        table: Option<TableId>,
    ) -> (bool, Option<u32>) {
        let c = self.cell_rec(role, class, table).rec;
        (c.effect == EFFECT_ALLOW, none_to_opt(c.rule.get()))
    }

    fn colset_has(&self, offset: u32, columns: u32, c: ColumnId) -> bool {
        let words = colset_words(columns);
        if c.0 / 64 >= words {
            return false;
        }
        self.colsets
            .get((offset + c.0 / 64) as usize)
            .is_some_and(|w| w.get() & (1u64 << (c.0 % 64)) != 0)
    }

    /// Whether one column is allowed for (role, class, table), with the deciding rule.
    #[inline]
    pub fn column_allowed(
        &self,
        role: RoleId,
        class: StatementClass,
        table: TableId,
        column: ColumnId,
    ) -> (bool, Option<u32>) {
        self.column_allowed_in(self.cell_rec(role, class, Some(table)), column)
    }

    /// [`Table::column_allowed`] given the (role, class, table) cell.
    #[inline]
    fn column_allowed_in(&self, at: CellAt<'a>, column: ColumnId) -> (bool, Option<u32>) {
        let c = at.rec;
        if c.effect != EFFECT_ALLOW {
            return (false, none_to_opt(c.rule.get()));
        }
        let denied = c.denied_cols.get();
        if denied != NONE && self.colset_has(denied, at.columns, column) {
            return (false, none_to_opt(c.denied_rule.get()));
        }
        let allow = c.allow_cols.get();
        if allow == NONE || self.colset_has(allow, at.columns, column) {
            (true, none_to_opt(c.rule.get()))
        } else {
            (false, None)
        }
    }

    /// Whether some declared column of `table` is allowed in the cell.
    #[cold]
    fn any_column_allowed(&self, c: CellAt<'a>, table: TableId) -> bool {
        (0..self.column_count(table)).any(|k| self.column_allowed_in(c, ColumnId(k)).0)
    }

    /// Whether every column (including ones the catalog does not declare) is allowed.
    fn all_columns_allowed(
        &self,
        role: RoleId,
        class: StatementClass,
        table: TableId,
    ) -> (bool, Option<u32>) {
        let c = self.cell_rec(role, class, Some(table)).rec;
        if c.effect != EFFECT_ALLOW {
            return (false, none_to_opt(c.rule.get()));
        }
        if c.denied_cols.get() != NONE {
            return (false, none_to_opt(c.denied_rule.get()));
        }
        (c.allow_cols.get() == NONE, None)
    }

    /// Every access in `mask` must allow every column (`*`, whole-row references, names the
    /// catalog does not know). Returns the first refusal: (rule, class, access index).
    /// Accesses of undeclared tables (allowed by a pattern) allow all their columns.
    #[cold]
    fn all_columns_of(
        &self,
        role: RoleId,
        mask: u64,
        accesses: &[crate::facts::TableAccess],
        ids: &[u32],
    ) -> Result<(), (Option<u32>, StatementClass, u16)> {
        for i in bits(mask) {
            let (Some(a), Some(t)) = (accesses.get(i), declared(ids, i)) else {
                continue;
            };
            let (ok, rule) = self.all_columns_allowed(role, a.class, t);
            if !ok {
                return Err((rule, a.class, i as u16));
            }
        }
        Ok(())
    }

    /// The columns a `NATURAL JOIN` of the accesses `left` and `right` compares must be
    /// allowed ([`ColumnName::Common`]): each name declared on both sides, on every table
    /// of either side that declares it. A side with an undeclared table (whose columns are
    /// not known) may share any column: the other side's are all checked.
    #[cold]
    fn common_columns_of(
        &self,
        role: RoleId,
        left: u64,
        right: u64,
        accesses: &[crate::facts::TableAccess],
        ids: &[u32],
    ) -> Result<(), (Option<u32>, StatementClass, u16)> {
        let undeclared = |mask: u64| bits(mask).any(|i| declared(ids, i).is_none());
        if undeclared(left) {
            self.all_columns_of(role, right, accesses, ids)?;
        }
        if undeclared(right) {
            self.all_columns_of(role, left, accesses, ids)?;
        }
        self.each_common_column(left, right, ids, |j, u, cu| {
            let Some(a) = accesses.get(j) else {
                return Ok(());
            };
            let (ok, rule) = self.column_allowed(role, a.class, u, cu);
            if ok {
                Ok(())
            } else {
                Err((rule, a.class, j as u16))
            }
        })
    }

    /// Calls `f(access, table, column)` for each declared column a `NATURAL JOIN` of the
    /// accesses `left` and `right` compares, on every declared table of either side.
    fn each_common_column<E>(
        &self,
        left: u64,
        right: u64,
        ids: &[u32],
        mut f: impl FnMut(usize, TableId, ColumnId) -> Result<(), E>,
    ) -> Result<(), E> {
        for i in bits(left) {
            let Some(t) = declared(ids, i) else { continue };
            for c in 0..self.column_count(t) {
                let name = self.column_name(t, ColumnId(c)).as_bytes();
                let shared = bits(right).any(|j| {
                    declared(ids, j).is_some_and(|u| self.column_id_bytes(u, name).is_some())
                });
                if !shared {
                    continue;
                }
                for j in bits(left | right) {
                    if let Some(u) = declared(ids, j)
                        && let Some(cu) = self.column_id_bytes(u, name)
                    {
                        f(j, u, cu)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Evaluates the role's pattern rules of `kind` for an undeclared name.
    #[cold]
    fn pattern_verdict(
        &self,
        role: RoleId,
        kind: u8,
        class: Option<StatementClass>,
        schema: &str,
        base: &str,
    ) -> (bool, Option<u32>) {
        let Some(r) = self.roles.get(role.0 as usize) else {
            return (false, None);
        };
        let first = r.patterns_first.get() as usize;
        let count = r.patterns_count.get() as usize;
        let mut allow = None;
        for p in self.patterns.get(first..first + count).unwrap_or(&[]) {
            if p.kind != kind {
                continue;
            }
            if let Some(c) = class
                && !ClassSet(p.classes.get()).contains(c)
            {
                continue;
            }
            if !glob_matches(self.str(&p.pattern), schema, base) {
                continue;
            }
            if p.effect == EFFECT_DENY {
                return (false, Some(p.rule.get()));
            }
            allow = allow.or(Some(p.rule.get()));
        }
        (allow.is_some(), allow)
    }

    /// Whether a function call is allowed for the role, with the deciding rule.
    pub fn function_allowed(&self, role: RoleId, schema: &str, name: &str) -> (bool, Option<u32>) {
        if let Some(f) = self.function_id(schema, name) {
            let idx = role.0 as usize * self.functions.len() + f.0 as usize;
            let c = self
                .func_verdicts
                .get(idx)
                .and_then(|v| self.cells.get(v.get() as usize))
                .unwrap_or(&DEFAULT_CELL);
            return (c.effect == EFFECT_ALLOW, none_to_opt(c.rule.get()));
        }
        self.pattern_verdict(role, 1, None, schema, name)
    }

    /// An unqualified call `name(…)`: the search path decides which function runs, and
    /// pgate cannot be sure which one that is. Fail closed: allowed only if `pg_catalog.name`
    /// (searched first) is allowed and so is every declared function of that name in any
    /// schema.
    pub fn unqualified_function_allowed(&self, role: RoleId, name: &str) -> (bool, Option<u32>) {
        let (ok, rule) = self.function_allowed(role, "pg_catalog", name);
        if !ok {
            return (false, rule);
        }
        let first = self.lookup(KEY_FUNCTION_NAME, 0, &[name.as_bytes()], |id| {
            self.functions
                .get(id as usize)
                .is_some_and(|f| self.raw(&f.name) == name.as_bytes())
        });
        if let Some(first) = first {
            for f in self.functions.iter().skip(first as usize) {
                if self.raw(&f.name) != name.as_bytes() {
                    break;
                }
                let (ok, r) = self.function_allowed(role, self.str(&f.schema), name);
                if !ok {
                    return (false, r);
                }
            }
        }
        (true, rule)
    }

    /// The masks of every role by decision class: (role, class, column, kind, rule), by
    /// role then class. A mask applies to every table of its class ([`Table::table_class`]).
    pub fn masked_classes(
        &self,
    ) -> impl Iterator<Item = (RoleId, u32, ColumnId, MaskKind, u32)> + 'a {
        let t = *self;
        (0..self.roles.len() as u32).flat_map(move |role| {
            t.role_masked_classes(RoleId(role))
                .map(move |(class, c, kind, rule)| (RoleId(role), class, c, kind, rule))
        })
    }

    /// The masks of one role by decision class: (class, column, kind, rule), by class.
    pub fn role_masked_classes(
        self,
        role: RoleId,
    ) -> impl Iterator<Item = (u32, ColumnId, MaskKind, u32)> + 'a {
        let t = self;
        let r = t.roles.get(role.0 as usize);
        let first = r
            .and_then(|r| t.maps.get(r.map.get() as usize))
            .map_or(0, |m| m.first.get() as usize);
        let locals_first = r.map_or(0, |r| r.locals_first.get() as usize);
        let classes = if r.is_some() {
            t.classes.len() as u32
        } else {
            0
        };
        (0..classes).flat_map(move |class| {
            let g = t
                .map_entries
                .get(first + class as usize)
                .and_then(|e| t.locals.get(locals_first + 1 + usize::from(e.get())));
            t.local_masks(g).iter().filter_map(move |m| {
                Some((
                    class,
                    ColumnId(m.column.get()),
                    MaskKind::from_id(m.kind)?,
                    m.rule.get(),
                ))
            })
        })
    }

    fn local_masks(&self, g: Option<&'a LocalRec>) -> &'a [MaskRec] {
        g.and_then(|g| {
            let first = g.masks_first.get() as usize;
            self.masks.get(first..first + g.masks_count.get() as usize)
        })
        .unwrap_or(&[])
    }

    /// The masks of the group deciding `table` for `role`, by column.
    #[inline]
    fn group_masks(&self, role: RoleId, table: Option<TableId>) -> &'a [MaskRec] {
        self.local_masks(self.group(role, table))
    }

    /// Whether the role has any mask.
    pub fn role_has_masks(&self, role: RoleId) -> bool {
        self.first_mask_of_role(role).is_some()
    }

    /// The rule of the role's first mask, in group order.
    fn first_mask_of_role(&self, role: RoleId) -> Option<u32> {
        let r = self.roles.get(role.0 as usize)?;
        let first = r.locals_first.get() as usize;
        self.locals
            .get(first..first + r.locals_count.get() as usize)?
            .iter()
            .find_map(|g| self.local_masks(Some(g)).first().map(|m| m.rule.get()))
    }

    pub fn mask(&self, role: RoleId, table: TableId, column: ColumnId) -> Option<(MaskKind, u32)> {
        let m = self.mask_rec(role, table, column)?;
        Some((MaskKind::from_id(m.kind)?, m.rule.get()))
    }

    /// Whether the role's mask on the column lets it be used in predicates
    /// (`predicates="allow"`).
    pub fn mask_allows_predicates(&self, role: RoleId, table: TableId, column: ColumnId) -> bool {
        self.mask_rec(role, table, column)
            .is_some_and(|m| m.flags & MASK_PREDICATES != 0)
    }

    fn mask_rec(&self, role: RoleId, table: TableId, column: ColumnId) -> Option<&'a MaskRec> {
        let masks = self.group_masks(role, Some(table));
        let i = masks
            .binary_search_by(|m| m.column.get().cmp(&column.0))
            .ok()?;
        masks.get(i)
    }

    fn has_masks_on(&self, role: RoleId, table: TableId) -> bool {
        self.first_mask_rule(role, table).is_some()
    }

    // ---- decide ----

    /// Decides every statement of `facts`; the first denied statement denies all.
    pub fn decide_all(&self, role: RoleId, facts: &Facts) -> Verdict {
        let limits = self.limits(role);
        // The common case: one statement, whose verdict is the message's.
        if let [s] = facts.statements() {
            return self.decide_statement(role, limits, facts, s, 0);
        }
        let mut out = Verdict {
            decision: Decision::Allow,
            allow_rule: None,
            limits,
            masked: false,
        };
        for (i, s) in facts.statements().iter().enumerate() {
            let v = self.decide_statement(role, limits, facts, s, i as u16);
            if !v.is_allow() {
                return v;
            }
            out.allow_rule = out.allow_rule.or(v.allow_rule);
            out.masked |= v.masked;
        }
        out
    }

    /// Decides one statement of `facts`.
    pub fn decide(&self, role: RoleId, facts: &Facts, stmt: &StatementFacts) -> Verdict {
        let index = facts
            .statements()
            .iter()
            .position(|s| std::ptr::eq(s, stmt))
            .unwrap_or(0) as u16;
        self.decide_statement(role, self.limits(role), facts, stmt, index)
    }

    fn decide_statement(
        &self,
        role: RoleId,
        limits: Limits,
        facts: &Facts,
        stmt: &StatementFacts,
        statement: u16,
    ) -> Verdict {
        match self.check_statement(role, facts, stmt) {
            Ok(Granted { allow_rule, masked }) => Verdict {
                decision: Decision::Allow,
                allow_rule,
                limits,
                masked,
            },
            Err(Refused { rule, reason }) => Verdict {
                decision: Decision::Deny {
                    rule,
                    statement,
                    reason,
                },
                allow_rule: None,
                limits,
                masked: false,
            },
        }
    }

    /// The checks of [`Table::decide_statement`], with small results (the verdict with
    /// its limits is built once, by the caller).
    fn check_statement(
        &self,
        role: RoleId,
        facts: &Facts,
        stmt: &StatementFacts,
    ) -> Result<Granted, Refused> {
        let deny = |rule: Option<u32>, reason: DenyReason| Err(Refused { rule, reason });
        if role.0 as usize >= self.roles.len() {
            return deny(None, DenyReason::UnknownRole);
        }
        let mut allow_rule: Option<u32> = None;
        let mut note = |r: Option<u32>| {
            if allow_rule.is_none() {
                allow_rule = r;
            }
        };
        if stmt.classes.contains(StatementClass::Unknown) || stmt.classes.is_empty() {
            let (ok, rule) = self.cell(role, StatementClass::Unknown, None);
            if !ok {
                return deny(rule, DenyReason::UnknownStatement);
            }
            note(rule);
            // An allowed `unknown` says nothing about its facts: there are none to check.
            return Ok(Granted {
                allow_rule,
                masked: false,
            });
        }

        let accesses = facts.tables(stmt);
        // Resolve each access to a declared table once (at most 64 per statement).
        // (`u32` with a sentinel rather than `Option<TableId>`: half the bytes to clear.)
        let mut ids = [UNDECLARED; crate::facts::MAX_TABLES_PER_STATEMENT];
        let mut masked = false;
        // Some table of the statement has masks for the role: uses are checked.
        let mut mask_uses = false;

        // Classes with no access in this statement are decided by the class-level cell.
        let mut with_access = ClassSet::EMPTY;
        for a in accesses {
            with_access.insert(a.class);
        }
        for class in stmt.classes.minus(with_access).iter() {
            let (ok, rule) = self.cell(role, class, None);
            if !ok {
                return deny(rule, DenyReason::Class(class));
            }
            note(rule);
        }

        // The cell of the last access looked up: column checks of a one-table statement
        // need no second cell lookup.
        let mut last_cell: (usize, CellAt<'_>) = (usize::MAX, CellAt::DEFAULT);
        for (i, a) in accesses.iter().enumerate() {
            let access = i as u16;
            let schema = facts.name_bytes(a.name.schema);
            let name = facts.name_bytes(a.name.name);
            match self.table_id_bytes(schema, name) {
                Some(t) => {
                    let at = self.cell_rec(role, a.class, Some(t));
                    last_cell = (i, at);
                    let cell = at.rec;
                    let (ok, rule) = (cell.effect == EFFECT_ALLOW, none_to_opt(cell.rule.get()));
                    if !ok {
                        return deny(
                            rule,
                            DenyReason::Table {
                                class: a.class,
                                access,
                            },
                        );
                    }
                    // PostgreSQL needs the privilege on at least one column of a table
                    // whose privilege is column-level, even when no column is named
                    // (`SELECT count(*) FROM t`).
                    if (cell.allow_cols.get() != NONE || cell.denied_cols.get() != NONE)
                        && !self.any_column_allowed(at, t)
                    {
                        let rule = none_to_opt(cell.denied_rule.get()).or(rule);
                        return deny(
                            rule,
                            DenyReason::Table {
                                class: a.class,
                                access,
                            },
                        );
                    }
                    note(rule);
                    if let Some(slot) = ids.get_mut(i) {
                        *slot = t.0;
                    }
                    mask_uses |= self.has_masks_on(role, t);
                    if matches!(
                        a.class,
                        StatementClass::Select
                            | StatementClass::CopyOut
                            | StatementClass::SelectInto
                    ) {
                        masked |= self.has_masks_on(role, t);
                    }
                }
                None => {
                    let (ok, rule) = self.pattern_verdict(
                        role,
                        0,
                        Some(a.class),
                        facts.name(a.name.schema),
                        facts.name(a.name.name),
                    );
                    if !ok {
                        return deny(
                            rule,
                            DenyReason::UndeclaredTable {
                                class: a.class,
                                access,
                            },
                        );
                    }
                    note(rule);
                }
            }
        }

        for (j, col) in facts.columns(stmt).iter().enumerate() {
            let column = j as u16;
            match col.name {
                ColumnName::All => {
                    if let Err((rule, class, access)) =
                        self.all_columns_of(role, col.candidates, accesses, &ids)
                    {
                        return deny(
                            rule,
                            DenyReason::Column {
                                class,
                                access,
                                column,
                            },
                        );
                    }
                }
                ColumnName::Common { right } => {
                    if let Err((rule, class, access)) =
                        self.common_columns_of(role, col.candidates, right, accesses, &ids)
                    {
                        return deny(
                            rule,
                            DenyReason::Column {
                                class,
                                access,
                                column,
                            },
                        );
                    }
                }
                ColumnName::Named(n) => {
                    let cname = facts.name_bytes(n);
                    let mut resolved = false;
                    for i in bits(col.candidates) {
                        let (Some(a), Some(t)) = (accesses.get(i), declared(&ids, i)) else {
                            if col.qualified {
                                resolved = true;
                            }
                            continue;
                        };
                        match self.column_id_bytes(t, cname) {
                            Some(c) => {
                                resolved = true;
                                let cell = if last_cell.0 == i {
                                    last_cell.1
                                } else {
                                    self.cell_rec(role, a.class, Some(t))
                                };
                                let (ok, rule) = self.column_allowed_in(cell, c);
                                if !ok {
                                    return deny(
                                        rule,
                                        DenyReason::Column {
                                            class: a.class,
                                            access: i as u16,
                                            column,
                                        },
                                    );
                                }
                            }
                            None if col.qualified => {
                                // `t.x` where the catalog does not know `x`: only a cell
                                // that allows every column can allow it.
                                resolved = true;
                                let (ok, rule) = self.all_columns_allowed(role, a.class, t);
                                if !ok {
                                    return deny(
                                        rule,
                                        DenyReason::Column {
                                            class: a.class,
                                            access: i as u16,
                                            column,
                                        },
                                    );
                                }
                            }
                            None => {}
                        }
                    }
                    if !resolved {
                        // A name no candidate table declares. PostgreSQL reads it as a
                        // whole-row reference to the relation of that name/alias if there
                        // is one (every column), or as an output alias in GROUP BY; else it
                        // is a column the catalog does not know, which a column-restricted
                        // grant cannot allow (`"SSN"` or a look-alike must not slip through).
                        let mut mask = col.whole_row;
                        if col.whole_row == 0 && !col.output_alias {
                            mask |= col.candidates;
                        }
                        if let Err((rule, class, access)) =
                            self.all_columns_of(role, mask, accesses, &ids)
                        {
                            return deny(
                                rule,
                                DenyReason::Column {
                                    class,
                                    access,
                                    column,
                                },
                            );
                        }
                    }
                }
            }
        }

        let columns = facts.columns(stmt);
        for (k, f) in facts.functions(stmt).iter().enumerate() {
            let name = facts.name(f.name.name);
            // `x.f`: a call of `f(x)` only if no candidate of `x` has a column `f`.
            if f.unless_column != crate::facts::FunctionRef::ALWAYS
                && let Some(c) = columns.get(f.unless_column as usize)
                && bits(c.candidates).any(|i| {
                    declared(&ids, i)
                        .is_some_and(|t| self.column_id_bytes(t, name.as_bytes()).is_some())
                })
            {
                continue;
            }
            let (ok, rule) = if f.name.schema.is_empty() {
                self.unqualified_function_allowed(role, name)
            } else {
                self.function_allowed(role, facts.name(f.name.schema), name)
            };
            if !ok {
                return deny(rule, DenyReason::Function { function: k as u16 });
            }
        }

        if mask_uses {
            self.masked_uses(role, facts, stmt, &ids)?;
        }
        Ok(Granted { allow_rule, masked })
    }

    /// Every use of a column the role reads masked must be a plain output column
    /// ([`ColumnRef::plain`]), where the data plane rewrites the value: anywhere else the
    /// database would compute with the real value (`WHERE email LIKE 'a%'`, `lower(email)`,
    /// `ORDER BY email`, a whole-row `c` of `SELECT c FROM customers c`).
    #[cold]
    fn masked_uses(
        &self,
        role: RoleId,
        facts: &Facts,
        stmt: &StatementFacts,
        ids: &[u32],
    ) -> Result<(), Refused> {
        for (j, col) in facts.columns(stmt).iter().enumerate() {
            let refuse = |i: usize, rule: u32| Refused {
                rule: Some(rule),
                reason: DenyReason::MaskedColumn {
                    access: i as u16,
                    column: j as u16,
                },
            };
            match col.name {
                ColumnName::Common { right } => {
                    // The compared columns are used in a predicate; a side whose columns
                    // are not known may compare any masked column of the other.
                    let ok_in_predicate = |t: TableId, c: ColumnId| {
                        self.mask(role, t, c).is_none() || self.mask_allows_predicates(role, t, c)
                    };
                    let undeclared = |m: u64| bits(m).any(|i| declared(ids, i).is_none());
                    let mut opaque_sides = 0u64;
                    if undeclared(col.candidates) {
                        opaque_sides |= right;
                    }
                    if undeclared(right) {
                        opaque_sides |= col.candidates;
                    }
                    for i in bits(opaque_sides) {
                        if let Some(t) = declared(ids, i)
                            && let Some(rule) = self.first_mask_rule(role, t)
                        {
                            return Err(refuse(i, rule));
                        }
                    }
                    self.each_common_column(col.candidates, right, ids, |j, t, c| {
                        match self.mask(role, t, c) {
                            Some((_, rule)) if !ok_in_predicate(t, c) => Err(refuse(j, rule)),
                            _ => Ok(()),
                        }
                    })?;
                }
                ColumnName::All => {
                    if col.plain {
                        continue;
                    }
                    for i in bits(col.candidates) {
                        if let Some(t) = declared(ids, i)
                            && let Some(rule) = self.first_mask_rule(role, t)
                        {
                            return Err(refuse(i, rule));
                        }
                    }
                }
                ColumnName::Named(n) => {
                    let cname = facts.name_bytes(n);
                    let mut resolved = false;
                    for i in bits(col.candidates) {
                        let Some(t) = declared(ids, i) else { continue };
                        let Some(c) = self.column_id_bytes(t, cname) else {
                            continue;
                        };
                        resolved = true;
                        let predicate =
                            matches!(col.clause, Clause::Where | Clause::Join | Clause::Having);
                        if !col.plain
                            && let Some((_, rule)) = self.mask(role, t, c)
                            && !(predicate && self.mask_allows_predicates(role, t, c))
                        {
                            return Err(refuse(i, rule));
                        }
                    }
                    if !resolved && !col.output_alias {
                        // A name no candidate table declares: a whole-row reference (`c`
                        // of `customers c`), attribute notation (`c.to_jsonb` is
                        // `to_jsonb(c)`), a column renamed by an alias list (`AS c(i, e)`)
                        // — every column, or any, as the database builds it.
                        for i in bits(col.whole_row | col.candidates) {
                            if let Some(t) = declared(ids, i)
                                && let Some(rule) = self.first_mask_rule(role, t)
                            {
                                return Err(refuse(i, rule));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The rule of the role's first mask on `table`.
    fn first_mask_rule(&self, role: RoleId, table: TableId) -> Option<u32> {
        self.group_masks(role, Some(table))
            .first()
            .map(|m| m.rule.get())
    }
}

/// A cell and the column count its column sets are for.
#[derive(Clone, Copy)]
struct CellAt<'a> {
    rec: &'a CellRec,
    columns: u32,
}

impl CellAt<'static> {
    const DEFAULT: CellAt<'static> = CellAt {
        rec: &DEFAULT_CELL,
        columns: 0,
    };
}

/// What an allowed statement passes on to its verdict.
struct Granted {
    allow_rule: Option<u32>,
    masked: bool,
}

/// Why a statement is denied.
struct Refused {
    rule: Option<u32>,
    reason: DenyReason,
}

static DEFAULT_CELL: CellRec = CellRec {
    effect: EFFECT_DEFAULT_DENY,
    pad: [0; 3],
    rule: zerocopy::little_endian::U32::ZERO,
    allow_cols: zerocopy::little_endian::U32::ZERO,
    denied_cols: zerocopy::little_endian::U32::ZERO,
    denied_rule: zerocopy::little_endian::U32::ZERO,
};

fn none_to_opt(v: u32) -> Option<u32> {
    (v != NONE).then_some(v)
}

fn rule_kind(k: u8) -> Option<RuleKind> {
    Some(match k {
        0 => RuleKind::Allow,
        1 => RuleKind::Deny,
        2 => RuleKind::Mask,
        3 => RuleKind::Limit,
        4 => RuleKind::Rate,
        5 => RuleKind::TokenUse,
        6 => RuleKind::Delegation,
        7 => RuleKind::Budget,
        _ => return None,
    })
}

/// Set bits of a candidate mask, lowest first.
/// `ids` entry of an access whose table the catalog does not declare.
const UNDECLARED: u32 = u32::MAX;

/// The declared table of access `i` (see `Table::decide_statement`).
#[inline]
fn declared(ids: &[u32], i: usize) -> Option<TableId> {
    ids.get(i)
        .copied()
        .filter(|&t| t != UNDECLARED)
        .map(TableId)
}

fn bits(mut m: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if m == 0 {
            return None;
        }
        let i = m.trailing_zeros() as usize;
        m &= m - 1;
        Some(i)
    })
}

/// Matches `schema.name` against a glob: `*` alone matches everything; otherwise `*` matches
/// any run of characters except `.`, and the pattern is compared with `schema` `.` `name`.
pub(crate) fn glob_matches(pattern: &str, schema: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let subject = |i: usize| -> Option<u8> {
        let s = schema.as_bytes();
        if i < s.len() {
            Some(s[i])
        } else if i == s.len() {
            Some(b'.')
        } else {
            name.as_bytes().get(i - s.len() - 1).copied()
        }
    };
    let len = schema.len() + 1 + name.len();
    let p = pattern.as_bytes();
    // Iterative wildcard matching with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < len {
        let sc = subject(si);
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if Some(c) == sc => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                // `*` may not swallow a dot.
                Some((sp, ss)) if subject(ss) != Some(b'.') => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                _ => return false,
            },
        }
    }
    while p.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {

    use super::glob_matches;

    #[test]
    fn globs() {
        assert!(glob_matches("*", "a", "b"));
        assert!(glob_matches("staging.*", "staging", "t1"));
        assert!(!glob_matches("staging.*", "public", "t1"));
        assert!(glob_matches("*.orders", "public", "orders"));
        assert!(!glob_matches("*.orders", "public", "orders2"));
        assert!(glob_matches(
            "pg_catalog.pg_*",
            "pg_catalog",
            "pg_read_file"
        ));
        assert!(!glob_matches(
            "pg_catalog.pg_*",
            "pg_catalogx",
            "pg_read_file"
        ));
        assert!(glob_matches("public.cust*", "public", "customers"));
        assert!(!glob_matches("pub*", "public", "customers"));
        assert!(glob_matches("public.exact", "public", "exact"));
        assert!(!glob_matches("public.exact", "public", "exactly"));
    }
}
