//! The `.pgt` decision table: format, writer, zero-copy reader and `decide()`.
//!
//! Layout (all integers little-endian, every section 8-byte aligned):
//!
//! ```text
//! Header (fixed, 128 bytes)
//!   magic "PGATE\0T\x01", format version, flags, section count,
//!   source digest (32), catalog digest (32), body checksum (BLAKE3 of every byte after the
//!   header and section table), body length
//! Section table: [ { kind, offset, length, count } ; section count ]
//! Sections: strings, rules, tables (name, class, column list), classes, column lists,
//!           columns, functions, name index (open-addressing hash), roles, memberships,
//!           maps (class → group, u16 entries, shared by roles that group alike), groups
//!           (a cell per statement class and the masks), cell values, column sets (u64
//!           words), function verdicts, patterns, masks, rates, actors (of delegated
//!           variants)
//! ```
//!
//! Sharing what is equal (format version 4): tables no rule tells apart form one class,
//! identical column lists are stored once, and per role, classes with the same decisions
//! form one group. A lookup is still a few indexed loads: table → class → the role's map
//! entry → group → cell. The file grows with what the policy distinguishes, not with
//! roles × tables.
//!
//! Loading validates once — checksum, bounds of every offset and index, enum values — so
//! that lookups afterwards only index into slices already proven in range (and still never
//! panic: every access goes through `get`). The reader never allocates.

mod format;
pub mod model;
mod reader;
mod writer;

pub use format::{FORMAT_VERSION, MAGIC};
pub use reader::{
    ColumnId, Decision, DelegationRefused, DenyReason, Feature, FunctionId, LoadError, RoleId,
    RuleView, Table, TableId, Verdict,
};
pub use writer::{MAX_GROUPS_PER_ROLE, WriteError, catalog_digest, write};

/// Owns the bytes of a table file: a read-only memory map (or a buffer) validated once.
pub use reader::TableFile;
