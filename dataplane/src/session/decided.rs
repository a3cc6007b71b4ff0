//! Statements pgate decided once and may have to decide again: prepared statements,
//! portals, SQL-level `PREPARE`s and cursors outlive the message that created them, and a
//! table swap must not let them run under the rules of the table they were decided by
//! ("re-decided under the new one before their next use").
//!
//! What this module must never do: report a stored statement as allowed under a table
//! generation other than the one that decided it.

use pgate_core::decide::{SessionState, decide_sql};
use pgate_core::facts::Facts;
use pgate_core::table::{RoleId, Table, Verdict};

/// A statement text with the context it was decided in.
#[derive(Debug, Default, Clone)]
pub(super) struct Decided {
    pub sql: String,
    /// The search path in effect when it was decided: PostgreSQL re-plans a prepared
    /// statement under the search_path it was prepared with, so pgate decides it again
    /// under that path too.
    pub search_path: Vec<String>,
    /// The table generation whose table decided it.
    pub table_gen: u32,
}

impl Decided {
    pub fn new(sql: &str, search_path: &[String], table_gen: u32) -> Self {
        Decided {
            sql: sql.to_owned(),
            search_path: search_path.to_vec(),
            table_gen,
        }
    }

    /// Overwrites in place, keeping the strings' capacity (the unnamed statement is
    /// re-parsed on every query by extended-protocol clients).
    pub fn set(&mut self, sql: &str, search_path: &[String], table_gen: u32) {
        self.sql.clear();
        self.sql.push_str(sql);
        self.search_path.truncate(search_path.len());
        for (i, p) in search_path.iter().enumerate() {
            match self.search_path.get_mut(i) {
                Some(s) => s.clone_from(p),
                None => self.search_path.push(p.clone()),
            }
        }
        self.table_gen = table_gen;
    }
}

/// Classifies `sql` under `search_path` into `facts` and decides it for `role`, through
/// the one decision path explain and test use (`pgate_core::decide`), with the table's
/// catalog.
pub(super) fn decide_text(
    facts: &mut Facts,
    sql: &str,
    search_path: &[String],
    (tx_path_dirty, path_unknown): (bool, bool),
    role: RoleId,
    table: &Table<'_>,
) -> Verdict {
    let mut path = [""; MAX_SEARCH_PATH];
    // A path longer than pgate follows is not known exactly: names are not resolved.
    let path_unknown = path_unknown || search_path.len() > path.len();
    let n = search_path.len().min(path.len());
    for (slot, s) in path.iter_mut().zip(search_path) {
        *slot = s.as_str();
    }
    let session = SessionState {
        search_path: &path[..n],
        tx_path_dirty,
        path_unknown,
    };
    decide_sql(table, role, sql, &session, facts)
}

/// Schemas of a session's search path pgate follows (PostgreSQL has no limit; a longer
/// path makes unqualified names unresolvable, so their statements are `unknown`).
pub(super) const MAX_SEARCH_PATH: usize = 32;

/// The first 8 bytes of a table digest in lower-case hex: what audit lines carry.
pub(super) type DigestHex = [u8; 16];

pub(super) fn digest_hex(d: &[u8; 32]) -> DigestHex {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, b) in d.iter().take(8).enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    out
}
