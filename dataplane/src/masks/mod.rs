//! Result masks: rewriting the values of masked columns in what the database sends the
//! client (DataRow in both formats, COPY TO STDOUT in text, csv and binary).
//!
//! - [`value`]: what each mask makes of one value, by type family and format;
//! - [`copy`]: the streaming rewrite of COPY data (rows and values may span messages);
//! - [`catalog`]: which relation OID and attribute number is which policy column, and
//!   the type of each masked column;
//! - [`lookup`]: the sans-IO connection that asks the database for that catalog with
//!   pgate's own credential.
//!
//! Which statements may carry a masked column at all is decided before they run
//! (`pgate_core::table::DenyReason::MaskedColumn`): only plain output columns, whose
//! values RowDescription ties to their table and column. The session's result path
//! (`session::masking`) applies the plan. What this module must never do: let a masked
//! column's value through unrewritten, or turn a value into one its type cannot decode.

pub mod catalog;
pub mod copy;
pub mod lookup;
pub mod value;

use std::path::Path;

use pgate_core::table::model::MaskKind;
use sha2::Digest;

pub use value::{Family, Format, HashKey, MaskAction};

/// The policy's mask kind as the rewriter's action.
pub fn action_of(kind: MaskKind) -> MaskAction {
    match kind {
        MaskKind::Redact => MaskAction::Redact,
        MaskKind::Null => MaskAction::Null,
        MaskKind::Hash => MaskAction::Hash,
    }
}

/// The least key material a hash key file must hold.
pub const MIN_KEY_BYTES: usize = 32;

/// Reads the `hash` masks' key: the file's bytes (a trailing newline aside), at least
/// [`MIN_KEY_BYTES`] of them; the key is their SHA-256 (so any length of secret gives a
/// full-strength 32-byte key).
pub fn load_hash_key(path: &Path) -> Result<HashKey, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("masks: hash key {}: {e}", path.display()))?;
    hash_key_from(&bytes).map_err(|e| format!("masks: hash key {}: {e}", path.display()))
}

/// [`load_hash_key`] for key material from elsewhere (an environment variable).
pub fn hash_key_from(material: &[u8]) -> Result<HashKey, String> {
    let material = material.strip_suffix(b"\n").unwrap_or(material);
    let material = material.strip_suffix(b"\r").unwrap_or(material);
    if material.len() < MIN_KEY_BYTES {
        return Err(format!(
            "holds {} bytes; a key needs at least {MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`)",
            material.len()
        ));
    }
    let mut h = sha2::Sha256::new();
    h.update(b"pgate-mask-key-v1\0");
    h.update(material);
    Ok(HashKey::new(h.finalize().into()))
}
