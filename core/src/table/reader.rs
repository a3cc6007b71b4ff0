//! Zero-copy reader of `.pgt` bytes and `decide()`.
use std::path::Path;

use crate::class::StatementClass;
use crate::facts::{Facts, StatementFacts};
use crate::table::model::{Limits, MaskKind, RuleKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleId(pub u32);
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub u32);
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
    #[error("policy table format version {found} is not supported (this build reads {expected}); rebuild it with this version's pgate-compile")]
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
    /// Deciding allow rule for audit (the first allow consulted), if any.
    pub allow_rule: Option<u32>,
    /// Per-statement caps of the role.
    pub limits: Limits,
    /// Whether any mask applies to a table the statement reads.
    pub masked: bool,
}

impl Verdict {
    pub fn is_allow(&self) -> bool {
        matches!(self.decision, Decision::Allow)
    }
}

/// Owns validated table bytes (memory-mapped read-only or in a buffer).
pub struct TableFile {
    bytes: Vec<u8>,
}

impl TableFile {
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_vec(bytes)
    }
    pub fn from_vec(bytes: Vec<u8>) -> Result<Self, LoadError> {
        Table::parse(&bytes)?;
        Ok(TableFile { bytes })
    }
    pub fn table(&self) -> Table<'_> {
        Table {
            _bytes: &self.bytes,
        }
    }
}

/// A validated view over table bytes.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    _bytes: &'a [u8],
}

impl<'a> Table<'a> {
    pub fn parse(_bytes: &'a [u8]) -> Result<Self, LoadError> {
        Err(LoadError::BadMagic)
    }
    pub fn source_digest(&self) -> [u8; 32] {
        [0; 32]
    }
    pub fn catalog_digest(&self) -> [u8; 32] {
        [0; 32]
    }
    /// BLAKE3 of the whole file: the "table digest" audit lines carry.
    pub fn digest(&self) -> [u8; 32] {
        [0; 32]
    }
    pub fn role(&self, _name: &str) -> Option<RoleId> {
        None
    }
    pub fn role_count(&self) -> u32 {
        0
    }
    pub fn role_name(&self, _role: RoleId) -> &'a str {
        ""
    }
    /// (claim, value) pairs that grant the role.
    pub fn memberships(&self, _role: RoleId) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        std::iter::empty()
    }
    pub fn table_count(&self) -> u32 {
        0
    }
    pub fn table_id(&self, _schema: &str, _name: &str) -> Option<TableId> {
        None
    }
    /// (schema, name) of a declared table.
    pub fn table_name(&self, _t: TableId) -> (&'a str, &'a str) {
        ("", "")
    }
    pub fn column_count(&self, _t: TableId) -> u32 {
        0
    }
    pub fn column_id(&self, _t: TableId, _name: &str) -> Option<ColumnId> {
        None
    }
    pub fn column_name(&self, _t: TableId, _c: ColumnId) -> &'a str {
        ""
    }
    pub fn function_id(&self, _schema: &str, _name: &str) -> Option<FunctionId> {
        None
    }
    pub fn rule_count(&self) -> u32 {
        0
    }
    pub fn rule(&self, _id: u32) -> Option<RuleView<'a>> {
        None
    }
    /// The cell verdict for (role, class, table) — `None` table: the class-level cell.
    /// Returns (allowed, deciding rule).
    pub fn cell(
        &self,
        _role: RoleId,
        _class: StatementClass,
        _table: Option<TableId>,
    ) -> (bool, Option<u32>) {
        (false, None)
    }
    /// Whether one column is allowed for (role, class, table), with the deciding rule.
    pub fn column_allowed(
        &self,
        _role: RoleId,
        _class: StatementClass,
        _table: TableId,
        _column: ColumnId,
    ) -> (bool, Option<u32>) {
        (false, None)
    }
    pub fn function_allowed(&self, _role: RoleId, _schema: &str, _name: &str) -> (bool, Option<u32>) {
        (false, None)
    }
    pub fn mask(&self, _role: RoleId, _table: TableId, _column: ColumnId) -> Option<(MaskKind, u32)> {
        None
    }
    pub fn limits(&self, _role: RoleId) -> Limits {
        Limits::default()
    }
    /// Decides one statement of `facts`.
    pub fn decide(&self, _role: RoleId, _facts: &Facts, _stmt: &StatementFacts) -> Verdict {
        unimplemented_verdict()
    }
    /// Decides every statement of `facts`; the first denied statement denies all.
    pub fn decide_all(&self, _role: RoleId, _facts: &Facts) -> Verdict {
        unimplemented_verdict()
    }
}

fn unimplemented_verdict() -> Verdict {
    Verdict {
        decision: Decision::Deny {
            rule: None,
            statement: 0,
            reason: DenyReason::UnknownRole,
        },
        allow_rule: None,
        limits: Limits::default(),
        masked: false,
    }
}
