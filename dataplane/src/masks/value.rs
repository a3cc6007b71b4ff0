//! Masking one value: the replacement a `mask` rule puts where a column value would be,
//! in PostgreSQL's text or binary wire format, whole ([`mask_value`]) or fed in pieces
//! ([`ValueHasher`], for COPY data whose fields may span messages).
//!
//! | action   | family           | NULL    | text format                      | binary format |
//! |----------|------------------|---------|----------------------------------|---------------|
//! | `null`   | every family     | NULL    | NULL                             | NULL          |
//! | `redact` | text only        | NULL    | `***`                            | `***`         |
//! | `hash`   | text             | NULL    | 32 lowercase hex digits of M[..16] | the same 32 bytes |
//! | `hash`   | int2, int4, int8 | NULL    | decimal of M[..w] read as a big-endian signed w-byte integer (w = 2, 4, 8) | M[..w] |
//! | `hash`   | uuid             | NULL    | M[..16] made version 8 (RFC 9562), hyphenated lowercase | the same 16 bytes |
//! | `hash`   | bytea            | NULL    | `\x` and 32 lowercase hex digits of M[..16] | M[..16] |
//!
//! M = HMAC-SHA256(key, `pgate-mask-v1\0` ‖ domain ‖ `\0` ‖ canonical value):
//!
//! | family           | domain  | canonical value                                           |
//! |------------------|---------|-----------------------------------------------------------|
//! | text             | `text`  | the bytes (text, varchar, bpchar, name send them as is)   |
//! | int2, int4, int8 | `int`   | the integer as a big-endian i64                           |
//! | uuid             | `uuid`  | its 16 bytes                                              |
//! | bytea            | `bytea` | the raw bytes (text format: decoded from hex or escape)   |
//!
//! The hash is over the canonical form so that one value hashes the same in text and binary
//! format, in COPY, and in every column of one family: joins and `count(DISTINCT …)` on
//! hashed columns keep working. (Across int widths the MAC is the same but the outputs take
//! 2, 4 or 8 of its bytes, so an int4 and an int8 column do not join on their hashes.)
//!
//! Text input accepted: integers as PostgreSQL writes them (an optional `-`, then decimal
//! digits, at most 20 bytes); uuids in every form `uuid_in` accepts (upper or lower case,
//! hyphens after any group of four digits, braces); bytea in hex format (`\x…`, upper or lower
//! case, whitespace between digit pairs) and escape format (`\\`, `\ooo`).
//!
//! What this module must never do: return, log or put into an error any part of a value it
//! masks (a value that does not parse as its type is an error, never passed through); print
//! the key ([`HashKey`]'s `Debug` does not); or allocate, other than by growing the caller's
//! buffer.

use std::fmt;

use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The marker `redact` writes, in both formats.
pub const REDACTED: &[u8] = b"***";

// Domain separation: the version lets a future canonical form change without colliding
// with this one; the family keeps `'1'::text` and `1::int` apart.
const DOMAIN_TEXT: &[u8] = b"pgate-mask-v1\0text\0";
const DOMAIN_INT: &[u8] = b"pgate-mask-v1\0int\0";
const DOMAIN_UUID: &[u8] = b"pgate-mask-v1\0uuid\0";
const DOMAIN_BYTEA: &[u8] = b"pgate-mask-v1\0bytea\0";

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Longest integer in text format: `-9223372036854775808`.
const MAX_INT_TEXT: u8 = 20;

/// What the policy asks for a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaskAction {
    Redact,
    Null,
    Hash,
}

/// The family of a column's type: what its values look like on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Text,
    Int2,
    Int4,
    Int8,
    Uuid,
    Bytea,
}

/// PostgreSQL's wire format of a value (format code 0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Binary,
}

impl fmt::Display for MaskAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Redact => "redact",
            Self::Null => "null",
            Self::Hash => "hash",
        })
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Int2 => "int2",
            Self::Int4 => "int4",
            Self::Int8 => "int8",
            Self::Uuid => "uuid",
            Self::Bytea => "bytea",
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Binary => "binary",
        })
    }
}

/// Why a value (or COPY data) could not be masked. Never carries any part of the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("`{action}` cannot mask a {family} column")]
    Unsupported { action: MaskAction, family: Family },
    #[error("a masked {family} value in text format is not a number")]
    NotANumber { family: Family },
    #[error("a masked {family} value in text format is out of range")]
    OutOfRange { family: Family },
    #[error("a masked {family} value in {format} format is too long")]
    TooLong { family: Family, format: Format },
    #[error("a masked {family} value in binary format is not {expected} bytes long")]
    BadLength { family: Family, expected: usize },
    #[error("a masked uuid value in text format is not a uuid")]
    BadUuid,
    #[error("a masked bytea value in text format is not valid bytea: {0}")]
    BadBytea(&'static str),
    // COPY data (crate::masks::copy): here so that one error type covers a whole rewrite.
    #[error("COPY options cannot be masked: {0}")]
    CopyPlan(&'static str),
    #[error("COPY data: row {row} has more than the {expected} columns of the statement")]
    CopyTooManyFields { row: u64, expected: usize },
    #[error("COPY data: row {row} has {found} fields, the statement has {expected} columns")]
    CopyFieldCount {
        row: u64,
        expected: usize,
        found: usize,
    },
    #[error("COPY data is malformed: {0}")]
    CopyMalformed(&'static str),
    #[error("COPY data ended inside a row")]
    CopyIncomplete,
}

/// The data plane's key for `hash`. Holds the keyed HMAC state, not the key bytes.
#[derive(Clone)]
pub struct HashKey {
    mac: HmacSha256,
}

impl HashKey {
    pub fn new(key: [u8; 32]) -> Self {
        // HMAC pads a key shorter than the block with zeros (RFC 2104 §2), so the padded
        // 64-byte key is the same key; the typed constructor cannot fail.
        let mut padded = Key::<HmacSha256>::default();
        for (d, s) in padded.iter_mut().zip(key) {
            *d = s;
        }
        Self {
            mac: <HmacSha256 as KeyInit>::new(&padded),
        }
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(..)")
    }
}

/// Whether `action` can mask a column of `family`: `redact` writes `***`, which only a
/// text column can hold; `null` and `hash` work for every family.
pub fn supports(action: MaskAction, family: Family) -> bool {
    action != MaskAction::Redact || family == Family::Text
}

/// The length of the `hash` output when it does not depend on the value (every family in
/// binary format; text, uuid and bytea in text format).
pub fn hash_len(family: Family, format: Format) -> Option<usize> {
    match (family, format) {
        (Family::Text, _) => Some(32),
        (Family::Int2, Format::Binary) => Some(2),
        (Family::Int4, Format::Binary) => Some(4),
        (Family::Int8, Format::Binary) => Some(8),
        (Family::Int2 | Family::Int4 | Family::Int8, Format::Text) => None,
        (Family::Uuid, Format::Binary) | (Family::Bytea, Format::Binary) => Some(16),
        (Family::Uuid, Format::Text) => Some(36),
        (Family::Bytea, Format::Text) => Some(34),
    }
}

/// Writes the masked replacement for `value` (None = SQL NULL) into `out` (appending).
/// Returns Ok(true) if a value was written, Ok(false) if the result is SQL NULL (nothing
/// written). On error nothing is written.
pub fn mask_value(
    action: MaskAction,
    family: Family,
    format: Format,
    key: &HashKey,
    value: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<bool, MaskError> {
    if !supports(action, family) {
        return Err(MaskError::Unsupported { action, family });
    }
    let Some(value) = value else {
        return Ok(false);
    };
    match action {
        MaskAction::Null => Ok(false),
        MaskAction::Redact => {
            out.extend_from_slice(REDACTED);
            Ok(true)
        }
        MaskAction::Hash => {
            let mut hasher = ValueHasher::new(family, format, key);
            hasher.update(value)?;
            hasher.finish(out)?;
            Ok(true)
        }
    }
}

/// `hash` of one non-NULL value fed in pieces: text and bytea stream into the MAC, integers
/// and uuids collect in a fixed buffer. After an error every call returns that error.
pub struct ValueHasher {
    mac: HmacSha256,
    family: Family,
    format: Format,
    parse: Parse,
}

// Deliberately not derived: the parse state holds bytes of the value.
impl fmt::Debug for ValueHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueHasher")
            .field("family", &self.family)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Parse {
    /// The bytes are the canonical form (text in both formats, bytea in binary).
    Raw,
    /// Decimal text: bytes seen, sign, whether a digit was seen, the value so far negated
    /// (accumulating downwards lets `i64::MIN` parse).
    IntText {
        len: u8,
        neg: bool,
        digits: bool,
        acc: i64,
    },
    /// Binary int or uuid: the bytes so far.
    Fixed {
        buf: [u8; 16],
        len: usize,
    },
    UuidText(UuidText),
    ByteaText(ByteaText),
    Failed(MaskError),
}

#[derive(Clone, Copy)]
struct UuidText {
    bytes: [u8; 16],
    nibbles: usize,
    braces: bool,
    hyphen_ok: bool,
    state: UuidState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum UuidState {
    Start,
    Digits,
    Close,
    Done,
}

#[derive(Clone, Copy)]
enum ByteaText {
    /// Nothing seen: `\x` starts hex format, anything else is escape format.
    Start,
    /// A leading backslash: `x` makes it hex format, else it starts an escape.
    Lead,
    Hex {
        hi: Option<u8>,
    },
    Esc,
    EscBackslash,
    EscOctal {
        digits: u8,
        value: u8,
    },
}

impl ValueHasher {
    /// Starts hashing a `family` value in `format`; [`ValueHasher::finish`] writes the
    /// output in the same format.
    pub fn new(family: Family, format: Format, key: &HashKey) -> Self {
        let mut mac = key.mac.clone();
        mac.update(match family {
            Family::Text => DOMAIN_TEXT,
            Family::Int2 | Family::Int4 | Family::Int8 => DOMAIN_INT,
            Family::Uuid => DOMAIN_UUID,
            Family::Bytea => DOMAIN_BYTEA,
        });
        let parse = match (family, format) {
            (Family::Text, _) | (Family::Bytea, Format::Binary) => Parse::Raw,
            (Family::Int2 | Family::Int4 | Family::Int8, Format::Text) => Parse::IntText {
                len: 0,
                neg: false,
                digits: false,
                acc: 0,
            },
            (Family::Int2 | Family::Int4 | Family::Int8 | Family::Uuid, Format::Binary) => {
                Parse::Fixed {
                    buf: [0; 16],
                    len: 0,
                }
            }
            (Family::Uuid, Format::Text) => Parse::UuidText(UuidText {
                bytes: [0; 16],
                nibbles: 0,
                braces: false,
                hyphen_ok: false,
                state: UuidState::Start,
            }),
            (Family::Bytea, Format::Text) => Parse::ByteaText(ByteaText::Start),
        };
        Self {
            mac,
            family,
            format,
            parse,
        }
    }

    /// Feeds the next piece of the value (in the wire format given to `new`).
    pub fn update(&mut self, piece: &[u8]) -> Result<(), MaskError> {
        let family = self.family;
        let result = match &mut self.parse {
            Parse::Raw => {
                self.mac.update(piece);
                Ok(())
            }
            Parse::IntText {
                len,
                neg,
                digits,
                acc,
            } => int_text_update(family, len, neg, digits, acc, piece),
            Parse::Fixed { buf, len } => {
                let width = binary_width(family);
                match buf
                    .get_mut(*len..width)
                    .and_then(|b| b.get_mut(..piece.len()))
                {
                    Some(dst) => {
                        dst.copy_from_slice(piece);
                        *len += piece.len();
                        Ok(())
                    }
                    None => Err(MaskError::BadLength {
                        family,
                        expected: width,
                    }),
                }
            }
            Parse::UuidText(u) => uuid_text_update(u, piece),
            Parse::ByteaText(st) => bytea_text_update(&mut self.mac, st, piece),
            Parse::Failed(e) => Err(*e),
        };
        if let Err(e) = result {
            self.parse = Parse::Failed(e);
        }
        result
    }

    /// Ends the value and appends the hash output to `out`; on error nothing is written.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), MaskError> {
        let Self {
            mut mac,
            family,
            format,
            parse,
        } = self;
        match parse {
            Parse::Raw => {}
            Parse::IntText {
                neg, digits, acc, ..
            } => {
                if !digits {
                    return Err(MaskError::NotANumber { family });
                }
                let range = MaskError::OutOfRange { family };
                let v = if neg {
                    acc
                } else {
                    acc.checked_neg().ok_or(range)?
                };
                let fits = match family {
                    Family::Int2 => i16::try_from(v).is_ok(),
                    Family::Int4 => i32::try_from(v).is_ok(),
                    _ => true,
                };
                if !fits {
                    return Err(range);
                }
                mac.update(&v.to_be_bytes());
            }
            Parse::Fixed { buf, len } => {
                let width = binary_width(family);
                if len != width {
                    return Err(MaskError::BadLength {
                        family,
                        expected: width,
                    });
                }
                let [a, b, c, d, e, f, g, h, ..] = buf;
                let v = match family {
                    Family::Int2 => Some(i64::from(i16::from_be_bytes([a, b]))),
                    Family::Int4 => Some(i64::from(i32::from_be_bytes([a, b, c, d]))),
                    Family::Int8 => Some(i64::from_be_bytes([a, b, c, d, e, f, g, h])),
                    Family::Uuid | Family::Text | Family::Bytea => {
                        mac.update(&buf);
                        None
                    }
                };
                if let Some(v) = v {
                    mac.update(&v.to_be_bytes());
                }
            }
            Parse::UuidText(u) => {
                if u.state != UuidState::Done {
                    return Err(MaskError::BadUuid);
                }
                mac.update(&u.bytes);
            }
            Parse::ByteaText(st) => match st {
                ByteaText::Start | ByteaText::Esc | ByteaText::Hex { hi: None } => {}
                ByteaText::Hex { hi: Some(_) } => {
                    return Err(MaskError::BadBytea("odd number of hex digits"));
                }
                ByteaText::Lead | ByteaText::EscBackslash | ByteaText::EscOctal { .. } => {
                    return Err(MaskError::BadBytea("unfinished escape"));
                }
            },
            Parse::Failed(e) => return Err(e),
        }
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        write_hash(family, format, &tag, out);
        Ok(())
    }
}

fn binary_width(family: Family) -> usize {
    match family {
        Family::Int2 => 2,
        Family::Int4 => 4,
        Family::Int8 => 8,
        _ => 16,
    }
}

fn int_text_update(
    family: Family,
    len: &mut u8,
    neg: &mut bool,
    digits: &mut bool,
    acc: &mut i64,
    piece: &[u8],
) -> Result<(), MaskError> {
    for &b in piece {
        *len = len.saturating_add(1);
        if *len > MAX_INT_TEXT {
            return Err(MaskError::TooLong {
                family,
                format: Format::Text,
            });
        }
        match b {
            // int2out/int4out/int8out write an optional minus and digits, nothing else.
            b'-' if *len == 1 => *neg = true,
            b'0'..=b'9' => {
                *digits = true;
                *acc = acc
                    .checked_mul(10)
                    .and_then(|a| a.checked_sub(i64::from(b - b'0')))
                    .ok_or(MaskError::OutOfRange { family })?;
            }
            _ => return Err(MaskError::NotANumber { family }),
        }
    }
    Ok(())
}

pub(super) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

// PostgreSQL, "UUID Type": "PostgreSQL also accepts the following alternative forms for
// input: use of upper-case digits, the standard format surrounded by braces, omitting some
// or all hyphens, adding a hyphen after any group of four digits." (uuid_in: one optional
// hyphen after every fourth digit but the last.)
fn uuid_text_update(u: &mut UuidText, piece: &[u8]) -> Result<(), MaskError> {
    for &b in piece {
        if u.state == UuidState::Start {
            u.state = UuidState::Digits;
            if b == b'{' {
                u.braces = true;
                continue;
            }
        }
        match u.state {
            UuidState::Start | UuidState::Digits => {
                if let Some(v) = hex_value(b) {
                    let byte = &mut u.bytes[u.nibbles / 2];
                    *byte = (*byte << 4) | v;
                    u.nibbles += 1;
                    u.hyphen_ok = u.nibbles.is_multiple_of(4) && u.nibbles < 32;
                    if u.nibbles == 32 {
                        u.state = if u.braces {
                            UuidState::Close
                        } else {
                            UuidState::Done
                        };
                    }
                } else if b == b'-' && u.hyphen_ok {
                    u.hyphen_ok = false;
                } else {
                    return Err(MaskError::BadUuid);
                }
            }
            UuidState::Close if b == b'}' => u.state = UuidState::Done,
            UuidState::Close | UuidState::Done => return Err(MaskError::BadUuid),
        }
    }
    Ok(())
}

/// Decoded bytea bytes on their way into the MAC, batched so that one update is not
/// one byte.
struct Batch {
    buf: [u8; 64],
    len: usize,
}

impl Batch {
    fn push(&mut self, mac: &mut HmacSha256, b: u8) {
        if self.len == self.buf.len() {
            self.flush(mac);
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn flush(&mut self, mac: &mut HmacSha256) {
        mac.update(&self.buf[..self.len]);
        self.len = 0;
    }
}

// PostgreSQL, "Binary Data Types": "The “hex” format encodes binary data as 2 hexadecimal
// digits per byte, most significant nibble first. The entire string is preceded by the
// sequence \x (to distinguish it from the escape format). … The hexadecimal digits can be
// either upper or lower case, and whitespace is permitted between digit pairs (but not
// within a digit pair nor in the starting \x sequence)." And for the escape format: "to
// escape an octet, convert it into its three-digit octal value and precede it by a
// backslash. Backslash itself (octet decimal value 92) can alternatively be represented by
// double backslashes." (byteain: the first octal digit is 0-3; any other backslash is an
// error.)
fn bytea_text_update(
    mac: &mut HmacSha256,
    st: &mut ByteaText,
    piece: &[u8],
) -> Result<(), MaskError> {
    let mut batch = Batch {
        buf: [0; 64],
        len: 0,
    };
    let mut i = 0;
    while let Some(&b) = piece.get(i) {
        match *st {
            ByteaText::Start => {
                if b == b'\\' {
                    *st = ByteaText::Lead;
                    i += 1;
                } else {
                    *st = ByteaText::Esc;
                }
            }
            ByteaText::Lead => {
                if b == b'x' {
                    *st = ByteaText::Hex { hi: None };
                    i += 1;
                } else {
                    // Not hex format: `b` is the byte after an escape's backslash.
                    *st = ByteaText::EscBackslash;
                }
            }
            ByteaText::Hex { hi } => {
                i += 1;
                match (hi, hex_value(b)) {
                    (None, None) if matches!(b, b' ' | b'\n' | b'\r' | b'\t') => {}
                    (None, Some(v)) => *st = ByteaText::Hex { hi: Some(v) },
                    (Some(h), Some(v)) => {
                        batch.push(mac, (h << 4) | v);
                        *st = ByteaText::Hex { hi: None };
                    }
                    _ => return Err(MaskError::BadBytea("invalid hex digit")),
                }
            }
            ByteaText::Esc => {
                let rest = &piece[i..];
                let run = rest.iter().position(|&c| c == b'\\').unwrap_or(rest.len());
                batch.flush(mac);
                mac.update(&rest[..run]);
                i += run;
                if run < rest.len() {
                    *st = ByteaText::EscBackslash;
                    i += 1;
                }
            }
            ByteaText::EscBackslash => {
                i += 1;
                match b {
                    b'\\' => {
                        batch.push(mac, b'\\');
                        *st = ByteaText::Esc;
                    }
                    b'0'..=b'3' => {
                        *st = ByteaText::EscOctal {
                            digits: 1,
                            value: b - b'0',
                        }
                    }
                    _ => return Err(MaskError::BadBytea("invalid escape")),
                }
            }
            ByteaText::EscOctal { digits, value } => {
                i += 1;
                let Some(d) = b.checked_sub(b'0').filter(|d| *d < 8) else {
                    return Err(MaskError::BadBytea("invalid escape"));
                };
                // At most 0o377 = 255: the first digit is 0-3.
                let value = (value << 3) | d;
                if digits == 2 {
                    batch.push(mac, value);
                    *st = ByteaText::Esc;
                } else {
                    *st = ByteaText::EscOctal {
                        digits: digits + 1,
                        value,
                    };
                }
            }
        }
    }
    batch.flush(mac);
    Ok(())
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0x0f)]);
    }
}

/// Decimal without `format!` (which would allocate).
fn write_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        at -= 1;
        // n % 10 < 10: the cast cannot truncate.
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[at..]);
}

fn write_hash(family: Family, format: Format, tag: &[u8; 32], out: &mut Vec<u8>) {
    let [a, b, c, d, e, f, g, h, ..] = *tag;
    let int = |v: i64, bytes: &[u8], out: &mut Vec<u8>| match format {
        Format::Text => write_int(out, v),
        Format::Binary => out.extend_from_slice(bytes),
    };
    match family {
        Family::Text => write_hex(out, &tag[..16]),
        Family::Int2 => int(i64::from(i16::from_be_bytes([a, b])), &[a, b], out),
        Family::Int4 => int(
            i64::from(i32::from_be_bytes([a, b, c, d])),
            &[a, b, c, d],
            out,
        ),
        Family::Int8 => int(
            i64::from_be_bytes([a, b, c, d, e, f, g, h]),
            &[a, b, c, d, e, f, g, h],
            out,
        ),
        Family::Uuid => {
            let mut u = [0u8; 16];
            u.copy_from_slice(&tag[..16]);
            // RFC 9562 §5.8: version 8 (custom) in the high nibble of octet 6, variant
            // 0b10 in the high bits of octet 8.
            u[6] = (u[6] & 0x0f) | 0x80;
            u[8] = (u[8] & 0x3f) | 0x80;
            match format {
                Format::Binary => out.extend_from_slice(&u),
                Format::Text => {
                    for (i, group) in [&u[0..4], &u[4..6], &u[6..8], &u[8..10], &u[10..16]]
                        .into_iter()
                        .enumerate()
                    {
                        if i > 0 {
                            out.push(b'-');
                        }
                        write_hex(out, group);
                    }
                }
            }
        }
        Family::Bytea => match format {
            Format::Binary => out.extend_from_slice(&tag[..16]),
            Format::Text => {
                out.extend_from_slice(b"\\x");
                write_hex(out, &tag[..16]);
            }
        },
    }
}

#[cfg(test)]
#[path = "value_tests.rs"]
mod tests;
