//! Statement classes: the vocabulary policy is written in.
//!
//! The numeric ids are part of the `.pgt` file format and of audit logs: never renumber,
//! only append. Names are the spelling used in KDL policies and in JSON output.

use std::fmt;

/// What a statement does, as policy sees it. A statement may have several classes
/// (a SELECT whose CTE deletes is also a `delete`; `EXPLAIN ANALYZE` has its inner
/// statement's classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum StatementClass {
    /// SELECT, VALUES, TABLE, SHOW-free reads of relations.
    Select = 0,
    Insert = 1,
    Update = 2,
    Delete = 3,
    Merge = 4,
    Truncate = 5,
    /// `COPY … TO STDOUT` (including `COPY (query) TO STDOUT`).
    CopyOut = 6,
    /// `COPY … FROM STDIN`.
    CopyIn = 7,
    /// SELECT INTO, CREATE TABLE AS, CREATE MATERIALIZED VIEW, REFRESH MATERIALIZED VIEW.
    SelectInto = 8,
    /// CREATE/ALTER/DROP/COMMENT and friends, including CREATE FUNCTION/PROCEDURE.
    Ddl = 9,
    /// GRANT, REVOKE, CREATE/ALTER/DROP ROLE/USER/GROUP, ALTER DEFAULT PRIVILEGES.
    Dcl = 10,
    /// CALL, DO and other procedural code.
    Call = 11,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT, START TRANSACTION, SET TRANSACTION, PREPARE TRANSACTION…
    Transaction = 12,
    /// SET, RESET, SHOW, DISCARD.
    Session = 13,
    /// DECLARE … CURSOR, FETCH, MOVE, CLOSE.
    Cursor = 14,
    /// PREPARE, EXECUTE, DEALLOCATE (the inner statement of PREPARE is classified too).
    Prepare = 15,
    Lock = 16,
    /// VACUUM, ANALYZE, CLUSTER, REINDEX, CHECKPOINT, LOAD, EXPLAIN (plain) and the like.
    Utility = 17,
    /// Anything the classifier does not fully understand. Allowed only by an explicit rule.
    Unknown = 18,
    /// COPY to or from a server-side file or PROGRAM (runs with the server's privileges).
    CopyServer = 19,
    /// LISTEN, UNLISTEN, NOTIFY.
    Notify = 20,
}

impl StatementClass {
    /// Every class, in id order.
    pub const ALL: [StatementClass; 21] = [
        Self::Select,
        Self::Insert,
        Self::Update,
        Self::Delete,
        Self::Merge,
        Self::Truncate,
        Self::CopyOut,
        Self::CopyIn,
        Self::SelectInto,
        Self::Ddl,
        Self::Dcl,
        Self::Call,
        Self::Transaction,
        Self::Session,
        Self::Cursor,
        Self::Prepare,
        Self::Lock,
        Self::Utility,
        Self::Unknown,
        Self::CopyServer,
        Self::Notify,
    ];

    /// Number of classes; the `.pgt` cell matrix has this many class columns.
    pub const COUNT: usize = Self::ALL.len();

    /// Stable numeric id (file format, audit).
    pub const fn id(self) -> u8 {
        self as u8
    }

    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.get(usize::from(id)).copied()
    }

    /// The spelling used in policies and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Select => "select",
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Merge => "merge",
            Self::Truncate => "truncate",
            Self::CopyOut => "copy-out",
            Self::CopyIn => "copy-in",
            Self::SelectInto => "select-into",
            Self::Ddl => "ddl",
            Self::Dcl => "dcl",
            Self::Call => "call",
            Self::Transaction => "transaction",
            Self::Session => "session",
            Self::Cursor => "cursor",
            Self::Prepare => "prepare",
            Self::Lock => "lock",
            Self::Utility => "utility",
            Self::Unknown => "unknown",
            Self::CopyServer => "copy-server",
            Self::Notify => "notify",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// Whether this class reads or writes relations (so a table cell applies to it).
    /// Classes like `transaction` or `session` carry no table facts.
    pub const fn touches_tables(self) -> bool {
        matches!(
            self,
            Self::Select
                | Self::Insert
                | Self::Update
                | Self::Delete
                | Self::Merge
                | Self::Truncate
                | Self::CopyOut
                | Self::CopyIn
                | Self::SelectInto
                | Self::Lock
                | Self::CopyServer
                | Self::Ddl
                | Self::Utility
        )
    }
}

impl fmt::Display for StatementClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of classes as a bitset over class ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassSet(pub u32);

impl ClassSet {
    pub const EMPTY: ClassSet = ClassSet(0);
    pub const ALL: ClassSet = ClassSet((1u32 << StatementClass::COUNT) - 1);

    pub const fn single(c: StatementClass) -> Self {
        ClassSet(1u32 << c as u32)
    }
    pub fn insert(&mut self, c: StatementClass) {
        self.0 |= 1u32 << c as u32;
    }
    pub const fn contains(self, c: StatementClass) -> bool {
        self.0 & (1u32 << c as u32) != 0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn union(self, o: ClassSet) -> ClassSet {
        ClassSet(self.0 | o.0)
    }
    /// The classes in `self` and not in `o`.
    pub const fn minus(self, o: ClassSet) -> ClassSet {
        ClassSet(self.0 & !o.0)
    }
    /// The classes in id order (one step per member, not per class).
    pub fn iter(self) -> impl Iterator<Item = StatementClass> {
        let mut m = self.0 & Self::ALL.0;
        std::iter::from_fn(move || {
            while m != 0 {
                let id = m.trailing_zeros();
                m &= m - 1;
                if let Some(c) = StatementClass::from_id(id as u8) {
                    return Some(c);
                }
            }
            None
        })
    }
}

impl fmt::Display for ClassSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for c in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(c.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_round_trip() {
        for (i, c) in StatementClass::ALL.iter().enumerate() {
            assert_eq!(usize::from(c.id()), i);
            assert_eq!(StatementClass::from_id(c.id()), Some(*c));
            assert_eq!(StatementClass::from_name(c.name()), Some(*c));
        }
        // Pinned ids: changing one breaks every table and audit log written before.
        assert_eq!(StatementClass::Select.id(), 0);
        assert_eq!(StatementClass::Unknown.id(), 18);
        assert_eq!(StatementClass::Notify.id(), 20);
        assert_eq!(StatementClass::from_id(21), None);
    }
}
