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
pub const FORMAT_VERSION: u32 = 7;

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
    Classes = 4,
    ColumnLists = 5,
    Columns = 6,
    Functions = 7,
    NameIndex = 8,
    Roles = 9,
    Members = 10,
    Maps = 11,
    MapEntries = 12,
    Locals = 13,
    Cells = 14,
    ColumnSets = 15,
    FunctionVerdicts = 16,
    Patterns = 17,
    Masks = 18,
    Rates = 19,
    /// The actors (`act` subjects) delegated variants apply to, one [`StrRef`] each.
    Actors = 20,
    /// Per-identity budgets (`budget rows= bytes= per=`).
    Budgets = 21,
}

pub const SECTION_KINDS: [SectionKind; 21] = [
    SectionKind::Strings,
    SectionKind::Rules,
    SectionKind::Tables,
    SectionKind::Classes,
    SectionKind::ColumnLists,
    SectionKind::Columns,
    SectionKind::Functions,
    SectionKind::NameIndex,
    SectionKind::Roles,
    SectionKind::Members,
    SectionKind::Maps,
    SectionKind::MapEntries,
    SectionKind::Locals,
    SectionKind::Cells,
    SectionKind::ColumnSets,
    SectionKind::FunctionVerdicts,
    SectionKind::Patterns,
    SectionKind::Masks,
    SectionKind::Rates,
    SectionKind::Actors,
    SectionKind::Budgets,
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

/// One declared table. Tables no rule tells apart share a class: decisions are stored
/// per class, so the file grows with what the policy distinguishes, not with the catalog.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct TableRec {
    pub schema: StrRef,
    pub name: StrRef,
    /// Index into the class section.
    pub class: U32,
    /// Index into the column-list section (the class's: every member has the same).
    pub column_list: U32,
}

/// A decision class of tables: every member has the same decisions for every role.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct ClassRec {
    pub column_list: U32,
}

/// One distinct column list (names in declaration order), shared by every table that has
/// exactly these columns.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct ColumnListRec {
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
    /// Every overload's identity arguments, sorted, each followed by `\n` (the overload
    /// without arguments is a lone `\n`); empty when the catalog does not list them.
    pub overloads: StrRef,
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
/// at most half full). `id` is a role, table, global column or function index; a
/// column's key has its column list as prefix.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct IndexSlot {
    pub hash: U64,
    pub kind: U32,
    pub id: U32,
}

/// A role. Its table decisions: class `k` of a table → `map` entry `k` (a local group) →
/// `locals[locals_first + 1 + entry]`; `locals[locals_first]` holds the class-level cells
/// (statements that touch no table).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct RoleRec {
    pub name: StrRef,
    pub members_first: U32,
    pub members_count: U32,
    pub patterns_first: U32,
    pub patterns_count: U32,
    pub rates_first: U32,
    pub rates_count: U32,
    /// Index into the map section.
    pub map: U32,
    pub locals_first: U32,
    /// The class-level record and the role's table groups.
    pub locals_count: U32,
    pub limit_rule: U32,
    pub max_rows: U64,
    pub max_bytes: U64,
    /// Sessions per token (`token sessions= concurrent=`), `u32::MAX` for none.
    pub token_rule: U32,
    pub max_sessions: U32,
    pub max_concurrent: U32,
    /// Bit 0: only certificate-bound tokens (`token binding="certificate"`).
    pub token_flags: U32,
    /// `delegation max-depth=N`: the longest RFC 8693 `act` chain a session of this role may
    /// carry (`u32::MAX`: any), and the rule that says so (`NONE`).
    pub delegation_rule: U32,
    pub max_depth: U32,
    /// A delegated variant: the role (claims grant it) whose sessions it narrows when their
    /// chain is at least `min_depth` long and names every actor of `actors_*` (a range of
    /// the actor section, sorted); `NONE` for a role claims grant.
    pub variant_of: U32,
    pub min_depth: U32,
    pub actors_first: U32,
    pub actors_count: U32,
    /// The role's budgets: a range of the budget section.
    pub budgets_first: U32,
    pub budgets_count: U32,
}

/// A class → group map, shared by every role that groups classes alike: one u16 entry
/// per class from `first` in the map-entry section.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct MapRec {
    pub first: U32,
    /// Every entry is below this (validated once per map, and against each role's group
    /// count, so lookups need no per-entry check).
    pub groups: U32,
}

/// The decisions of one group of tables a role cannot tell apart (or, first of each role,
/// its class-level cells): a cell per statement class and the masks.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct LocalRec {
    /// Cell value per statement class.
    pub cells: [U32; crate::class::StatementClass::COUNT],
    /// The column count the cells' column sets and the masks are for (every table of the
    /// group has it; 0 when nothing here depends on columns).
    pub columns: U32,
    pub masks_first: U32,
    pub masks_count: U32,
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

/// A mask in a group (sorted by column within the group).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct MaskRec {
    /// Column index within the table.
    pub column: U32,
    pub rule: U32,
    pub kind: u8,
    /// Bit 0: predicates allowed (`MASK_PREDICATES`).
    pub flags: u8,
    pub pad: [u8; 2],
}

/// [`MaskRec::flags`]: the masked column may be used in predicates.
pub const MASK_PREDICATES: u8 = 1;

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

/// A budget: rows and bytes one identity may receive per window, across its sessions.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct BudgetRec {
    /// `NO_LIMIT` for none (at least one of the two is set).
    pub max_rows: U64,
    pub max_bytes: U64,
    /// 3,600 (`per="hour"`) or 86,400 (`per="day"`).
    pub window_secs: U32,
    pub rule: U32,
}

/// Hash of one name part (format version 2): its length and each 8-byte word (the last
/// zero-padded) multiplied by a constant of its own and summed. No product depends on
/// another, so a CPU computes them side by side — the name lookups of a statement's
/// decision are a chain of hash, probe, compare, and this keeps the hash off the
/// critical path (version 1 chained a multiply per word). Stable: part of the file
/// format.
#[inline]
pub fn part_hash(b: &[u8]) -> u64 {
    // Odd 64-bit constants (digits of π, e and √2).
    const MUL: [u64; 8] = [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7345,
        0xa409_3822_299f_31d1,
        0x082e_fa98_ec4e_6c89,
        0x4528_21e6_38d0_1377,
        0xbe54_66cf_34e9_0c6d,
        0xb7e1_5162_8aed_2a6b,
        0x6a09_e667_f3bc_c909,
    ];
    // Word `k` is rotated by 13 × (k / 8) bits (0 for names up to 63 bytes) so that
    // words 8 apart, which share a multiplier, do not cancel out.
    #[inline(always)]
    fn term(w: u64, k: usize) -> u64 {
        let w = if k < 8 {
            w
        } else {
            w.rotate_left((k / 8) as u32 * 13)
        };
        (w ^ 0x5555_5555_5555_5555).wrapping_mul(MUL[k & 7])
    }
    let mut h = (b.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut chunks = b.chunks_exact(8);
    let mut k = 0usize;
    for c in &mut chunks {
        if let Some(&a) = c.first_chunk::<8>() {
            h = h.wrapping_add(term(u64::from_le_bytes(a), k));
        }
        k += 1;
    }
    h.wrapping_add(term(crate::words::tail_word(chunks.remainder()), k))
}

/// Hash of a name-index key: the key kind, a prefix (the table id for columns) and the
/// parts' hashes ([`part_hash`]), each weighted by its position so that `("a.b", "c")`
/// and `("a", "b.c")` differ, with a final avalanche (murmur3 fmix64) so the low bits
/// used for the slot depend on every byte. The prefix comes in last: a column's name
/// hash does not wait for its table's lookup. Stable: part of the file format.
#[inline]
pub fn key_hash_of_parts(kind: u32, prefix: u32, parts: &[u64]) -> u64 {
    let mut h = ((u64::from(kind) << 32) | u64::from(prefix)).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    for (i, &p) in parts.iter().enumerate() {
        h = h.wrapping_add(p.rotate_left(i as u32 * 23));
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// [`key_hash_of_parts`] of the parts' bytes.
#[inline]
pub fn key_hash(kind: u32, prefix: u32, parts: &[&[u8]]) -> u64 {
    let mut hs = [0u64; 2];
    match parts {
        [a] => key_hash_of_parts(kind, prefix, &[part_hash(a)]),
        [a, b] => {
            hs[0] = part_hash(a);
            hs[1] = part_hash(b);
            key_hash_of_parts(kind, prefix, &hs)
        }
        _ => {
            // Not used by the format (keys have one or two parts); kept total.
            let mut h = key_hash_of_parts(kind, prefix, &[]);
            for p in parts {
                h = key_hash_of_parts(kind, prefix, &[h, part_hash(p)]);
            }
            h
        }
    }
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

    /// Parts are not interchangeable, and moving bytes between parts changes the key.
    #[test]
    fn key_hash_separates_parts() {
        let h = |p: &[&[u8]]| key_hash(KEY_TABLE, 0, p);
        assert_ne!(h(&[b"a", b"b"]), h(&[b"b", b"a"]));
        assert_ne!(h(&[b"a.b", b"c"]), h(&[b"a", b"b.c"]));
        assert_ne!(h(&[b"ab", b""]), h(&[b"a", b"b"]));
        assert_ne!(
            key_hash(KEY_COLUMN, 1, &[b"x"]),
            key_hash(KEY_COLUMN, 2, &[b"x"])
        );
        assert_ne!(
            key_hash(KEY_COLUMN, 1, &[b"x"]),
            key_hash(KEY_TABLE, 1, &[b"x"])
        );
        // Long names: words 8 apart do not cancel out.
        let a = [b'a'; 72];
        let mut b = a;
        b[0] = b'b';
        b[64] = b'b';
        assert_ne!(part_hash(&a), part_hash(&b));
    }

    #[test]
    fn tail_word_is_the_zero_padded_bytes() {
        let bytes = [0x81u8, 2, 0xff, 4, 5, 6, 7];
        for n in 0..=7 {
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(&bytes[..n]);
            assert_eq!(
                crate::words::tail_word(&bytes[..n]),
                u64::from_le_bytes(w),
                "{n}"
            );
        }
    }

    /// The index hash is part of the file format: these values (computed by format
    /// version 2's first implementation) must not change without a version bump.
    #[test]
    fn key_hash_is_stable() {
        const GOLDEN_TABLE: u64 = 10_866_733_407_578_543_953;
        const GOLDEN_COLUMN: u64 = 637_267_241_180_526_404;
        const GOLDEN_EMPTY: u64 = 1_936_146_520_166_862_881;
        assert_eq!(
            key_hash(KEY_TABLE, 0, &[b"public", b"pgbench_accounts"]),
            GOLDEN_TABLE
        );
        assert_eq!(key_hash(KEY_COLUMN, 7, &[b"abalance"]), GOLDEN_COLUMN);
        assert_eq!(key_hash(KEY_COLUMN, 7, &[b""]), GOLDEN_EMPTY);
    }
}
