//! Eight bytes at a time: loading little-endian words from byte strings and folding ASCII
//! case in all their bytes at once (SWAR). Shared by the keyword lookup, the facts' name
//! arena and the decision table's name hashes, so that each reads names the same way.
//!
//! What this module must never do: read past a slice (short tails are zero-padded).

const ONES: u64 = 0x0101_0101_0101_0101;

/// ASCII upper case to lower case in each byte of `w` (SWAR: no loop over the bytes).
/// Bytes >= 0x80 and non-letters are left alone, as PostgreSQL's `downcase_identifier`
/// leaves them for keyword matching.
#[inline(always)]
pub(crate) const fn fold(w: u64) -> u64 {
    let low7 = w & (0x7F * ONES);
    // Per byte, bit 7 of `ge_a` is set iff the low 7 bits are >= 'A', of `gt_z` iff > 'Z'
    // (no carry crosses a byte: every lane stays below 0x100).
    let ge_a = low7.wrapping_add((0x80 - b'A' as u64) * ONES);
    let gt_z = low7.wrapping_add((0x7F - b'Z' as u64) * ONES);
    let upper = ge_a & !gt_z & !w & (0x80 * ONES);
    w | (upper >> 2)
}

/// Bytes `s..s + 8` of `b` as a little-endian word, zero-padded past the end of `b`:
/// one unaligned load when eight bytes are there to read.
#[inline(always)]
pub(crate) fn load_word(b: &[u8], s: usize) -> u64 {
    match b.get(s..).and_then(|c| c.first_chunk::<8>()) {
        Some(&a) => u64::from_le_bytes(a),
        // Fewer than 8 bytes left: exactly what `tail_word` reads.
        None => tail_word(b.get(s..).unwrap_or(&[])),
    }
}

/// Up to 7 bytes as a little-endian word, zero-padded (4-, 2- and 1-byte reads: no
/// call to `memcpy` for a variable-length copy on the name-lookup path).
#[inline(always)]
pub(crate) fn tail_word(rest: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    if let Some(&[a, b, c, d]) = rest.get(..4).and_then(|s| <&[u8; 4]>::try_from(s).ok()) {
        w = u64::from(u32::from_le_bytes([a, b, c, d]));
        i = 4;
    }
    if let Some(&[a, b]) = rest
        .get(i..i + 2)
        .and_then(|s| <&[u8; 2]>::try_from(s).ok())
    {
        w |= u64::from(u16::from_le_bytes([a, b])) << (8 * i);
        i += 2;
    }
    if let Some(&a) = rest.get(i).filter(|_| i < 8) {
        w |= u64::from(a) << (8 * i);
    }
    w
}
