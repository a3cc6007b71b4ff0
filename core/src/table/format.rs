//! On-disk structures of the `.pgt` format (see the module docs of [`crate::table`]).

/// File magic.
pub const MAGIC: [u8; 8] = *b"PGATE\0T\x01";
/// Bumped on any incompatible layout change; readers refuse other versions.
pub const FORMAT_VERSION: u32 = 1;
