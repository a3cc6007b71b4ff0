//! On-disk structures of the `.pgt` format (see the module docs of [`crate::table`]).
//!
//! Every record is `#[repr(C)]` of byte-order-explicit little-endian fields and `u8`s, so it
//! has alignment 1 and is read in place with `zerocopy` from any offset of a memory map —
//! no hand-written pointer casts, no alignment assumptions. This module must never contain
//! logic beyond layout: the writer and the reader own what the fields mean.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// File magic.
pub const MAGIC: [u8; 8] = *b"PGATE\0T\x01";
/// Bumped on any incompatible layout change; readers refuse other versions.
pub const FORMAT_VERSION: u32 = 1;

/// "No value" in a `u32` index field (no rule, all columns, no column set).
pub const NONE: u32 = u32::MAX;
/// "No limit" in a `u64` field.
pub const NO_LIMIT: u64 = u64::MAX;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: U32,
    pub flags: U32,
    pub section_count: U32,
    pub reserved: U32,
    pub source_digest: [u8; 32],
    pub catalog_digest: [u8; 32],
    /// BLAKE3 of the whole file with these 32 bytes zeroed: every other byte of the file,
    /// header included, is covered.
    pub body_checksum: [u8; 32],
    pub body_len: U64,
}

pub const HEADER_LEN: usize = std::mem::size_of::<Header>();
/// Where `body_checksum` sits in the header.
pub const CHECKSUM_RANGE: std::ops::Range<usize> = 88..120;

/// The file checksum: BLAKE3 over the file with the checksum field zeroed.
pub fn file_checksum(bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(bytes.get(..CHECKSUM_RANGE.start).unwrap_or(&[]));
    h.update(&[0u8; 32]);
    h.update(bytes.get(CHECKSUM_RANGE.end..).unwrap_or(&[]));
    *h.finalize().as_bytes()
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct SectionEntry {
    pub kind: U32,
    /// Number of records (or bytes, for the string section).
    pub count: U32,
    /// From the start of the file.
    pub offset: U64,
    pub len: U64,
}

/// Section kinds, in the order they are written. Every one is required exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionKind {
    Strings = 1,
    Rules = 2,
    Tables = 3,
    Columns = 4,
    Functions = 5,
    NameIndex = 6,
    Roles = 7,
    Members = 8,
    RoleRows = 9,
    Rows = 10,
    Cells = 11,
    ColumnSets = 12,
    FunctionVerdicts = 13,
    Patterns = 14,
    Masks = 15,
    Rates = 16,
}

pub const SECTION_KINDS: [SectionKind; 16] = [
    SectionKind::Strings,
    SectionKind::Rules,
    SectionKind::Tables,
    SectionKind::Columns,
    SectionKind::Functions,
    SectionKind::NameIndex,
    SectionKind::Roles,
    SectionKind::Members,
    SectionKind::RoleRows,
    SectionKind::Rows,
    SectionKind::Cells,
    SectionKind::ColumnSets,
    SectionKind::FunctionVerdicts,
    SectionKind::Patterns,
    SectionKind::Masks,
    SectionKind::Rates,
];

/// A UTF-8 string in the string section.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct StrRef {
    pub offset: U32,
    pub len: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct RuleRec {
    pub file: StrRef,
    pub line: U32,
    pub column: U32,
    pub role: StrRef,
    pub text: StrRef,
    pub kind: u8,
    pub pad: [u8; 7],
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct TableRec {
    pub schema: StrRef,
    pub name: StrRef,
    /// Index of the first column in the column section.
    pub first_column: U32,
    pub column_count: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct ColumnRec {
    pub name: StrRef,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct FunctionRec {
    pub schema: StrRef,
    pub name: StrRef,
}

/// Name-index slot kinds (0 = empty slot).
pub const KEY_ROLE: u32 = 1;
pub const KEY_TABLE: u32 = 2;
pub const KEY_COLUMN: u32 = 3;
pub const KEY_FUNCTION: u32 = 4;
/// A function name without its schema → the first function of that name (functions are
/// sorted by (name, schema), so all of one name are contiguous).
pub const KEY_FUNCTION_NAME: u32 = 5;

/// One slot of the open-addressing name index (linear probing, power-of-two capacity,
/// at most half full). `id` is a role, table, global column or function index.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct IndexSlot {
    pub hash: U64,
    pub kind: U32,
    pub id: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct RoleRec {
    pub name: StrRef,
    pub members_first: U32,
    pub members_count: U32,
    pub patterns_first: U32,
    pub patterns_count: U32,
    pub masks_first: U32,
    pub masks_count: U32,
    pub rates_first: U32,
    pub rates_count: U32,
    pub limit_rule: U32,
    pub pad: U32,
    pub max_rows: U64,
    pub max_bytes: U64,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct MemberRec {
    pub claim: StrRef,
    pub value: StrRef,
}

/// Effects stored in a cell (0 = default deny: no rule matched).
pub const EFFECT_DEFAULT_DENY: u8 = 0;
pub const EFFECT_ALLOW: u8 = 1;
pub const EFFECT_DENY: u8 = 2;

/// An interned cell value. Cell value 0 is always the default deny.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq, Hash,
)]
#[repr(C)]
pub struct CellRec {
    pub effect: u8,
    pub pad: [u8; 3],
    pub rule: U32,
    /// Word offset of the allowed-column set, or `NONE` for every column.
    pub allow_cols: U32,
    /// Word offset of the explicitly denied column set, or `NONE` for none.
    pub denied_cols: U32,
    pub denied_rule: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct PatternRec {
    pub kind: u8,
    pub effect: u8,
    pub pad: [u8; 2],
    pub classes: U32,
    pub pattern: StrRef,
    pub rule: U32,
    pub pad2: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct MaskRec {
    pub table: U32,
    /// Column index within the table.
    pub column: U32,
    pub rule: U32,
    pub kind: u8,
    pub pad: [u8; 3],
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct RateRec {
    pub bytes_per_second: U64,
    pub burst_bytes: U64,
    pub rule: U32,
    pub scope: u8,
    pub on_exceed: u8,
    pub pad: [u8; 2],
}

/// Hash of a name-index key: the key kind, a prefix (the table id for columns) and the
/// name parts, each part's length mixed in so that `("a.b", "c")` and `("a", "b.c")` differ.
/// Word-at-a-time (FxHash-style multiply-rotate) with a final avalanche: name lookups sit on
/// the per-statement path. Stable: part of the file format.
pub fn key_hash(kind: u32, prefix: u32, parts: &[&[u8]]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    #[inline(always)]
    fn mix(h: u64, w: u64) -> u64 {
        (h.rotate_left(5) ^ w).wrapping_mul(K)
    }
    let mut h = mix(0, (u64::from(kind) << 32) | u64::from(prefix));
    for part in parts {
        let mut chunks = part.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = mix(h, u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(w));
        h = mix(h, part.len() as u64);
    }
    // Avalanche (murmur3 fmix64) so the low bits used for the slot depend on every byte.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Words in a column set for a table with `columns` columns.
pub const fn colset_words(columns: u32) -> u32 {
    columns.div_ceil(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_field_is_where_the_range_says() {
        assert_eq!(
            std::mem::offset_of!(Header, body_checksum),
            CHECKSUM_RANGE.start
        );
        assert_eq!(HEADER_LEN, 128);
    }
}
