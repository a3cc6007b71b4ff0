//! The `.pgt` decision table: format, writer, zero-copy reader and `decide()`.
//!
//! Layout (all integers little-endian, every section 8-byte aligned):
//!
//! ```text
//! Header (fixed, 160 bytes)
//!   magic "PGATE\0T\x01", format version, flags, section count,
//!   source digest (32), catalog digest (32), body checksum (BLAKE3 of every byte after the
//!   header and section table), body length
//! Section table: [ { kind, offset, length, count } ; section count ]
//! Sections: strings, rules, tables, columns, functions, name index (open-addressing hash),
//!           roles, memberships, role→class row ids, rows (cell-value ids per table),
//!           cell values, column sets (u64 words), function verdicts, patterns, masks, rates
//! ```
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
    ColumnId, Decision, DenyReason, Feature, FunctionId, LoadError, RoleId, RuleView, Table,
    TableId, Verdict,
};
pub use writer::{catalog_digest, write};

/// Owns the bytes of a table file: a read-only memory map (or a buffer) validated once.
pub use reader::TableFile;
