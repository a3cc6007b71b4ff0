//! Per-identity budgets (`budget rows=… bytes=… per="hour|day"`): what one identity (a
//! token subject) may receive per fixed window aligned to UTC (the hour, the day), across
//! all its sessions — on every worker of this instance, and with a shared store on every
//! replica (`budget-store`, [`crate::shared_store`]).
//!
//! A session does not count against the shared record row by row: it leases a chunk (a
//! share of what is left) and spends it locally; what it has not spent goes back when it
//! ends, when its window closes, or when a reload changes its budgets. Nothing passes that
//! no lease covers, so the budget is never overspent; while other sessions hold unspent
//! chunks a refusal can come early, by at most one chunk per session.
//!
//! A budget's record is keyed by the subject, where the rule was written (the role, or the
//! role's `delegated` block), the window length and what it counts (rows or bytes) — not
//! by its amount, so editing `rows=` keeps what was spent in the window.
//!
//! What this module must never do: let a lease exceed what is left; block (a store that
//! cannot answer now says [`Lease::Pending`], and the caller asks again).

use std::collections::HashMap;
use std::sync::Mutex;

/// Most budget records one instance keeps (then, once no expired window can be dropped,
/// new identities are refused: fail closed).
pub const MAX_RECORDS: usize = 262_144;

/// What a lease request got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// This much more may be spent (at least 1, at most what was asked).
    Granted(u64),
    /// Nothing is left in this window (or the store refuses: see [`Lease::Unavailable`]).
    Spent,
    /// The store is being asked; ask again shortly (the caller waits meanwhile).
    Pending,
    /// The shared store cannot be reached and the configuration fails closed.
    Unavailable,
}

/// Where budget records live: this instance's memory, or a store replicas share.
pub trait BudgetStore: Send + Sync + std::fmt::Debug {
    /// Takes up to `want` (≥ 1) of `key`'s budget `limit` in window `window` (`now_unix /
    /// window_secs`).
    fn lease(&self, key: &str, window: Window, limit: u64, want: u64, now_unix: u64) -> Lease;
    /// Gives back `n` unspent of a lease in `window` (ignored once the window is over).
    fn give_back(&self, key: &str, window: Window, n: u64);
}

/// One budget window: its number since the epoch and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub number: u64,
    pub secs: u32,
}

impl Window {
    pub fn at(now_unix: u64, secs: u32) -> Window {
        Window {
            number: now_unix / u64::from(secs.max(1)),
            secs: secs.max(1),
        }
    }
    /// When it ends (seconds since the epoch): the budget resets then.
    pub fn ends_unix(self) -> u64 {
        self.number
            .saturating_add(1)
            .saturating_mul(u64::from(self.secs))
    }
}

/// The embedded store: this instance's own records.
#[derive(Debug, Default)]
pub struct LocalBudgets {
    records: Mutex<HashMap<String, Record>>,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    window: u64,
    ends_unix: u64,
    spent: u64,
}

impl BudgetStore for LocalBudgets {
    fn lease(&self, key: &str, window: Window, limit: u64, want: u64, now_unix: u64) -> Lease {
        let Ok(mut records) = self.records.lock() else {
            return Lease::Unavailable;
        };
        let fresh = Record {
            window: window.number,
            ends_unix: window.ends_unix(),
            spent: 0,
        };
        if !records.contains_key(key) {
            if records.len() >= MAX_RECORDS {
                // Windows that are over hold nothing: drop them before refusing.
                records.retain(|_, r| r.ends_unix > now_unix);
                if records.len() >= MAX_RECORDS {
                    return Lease::Unavailable;
                }
            }
            records.insert(key.to_string(), fresh);
        }
        let Some(r) = records.get_mut(key) else {
            return Lease::Unavailable;
        };
        if r.window < window.number {
            *r = fresh;
        } else if r.window > window.number {
            // A session whose clock read an earlier window: nothing for it.
            return Lease::Spent;
        }
        let left = limit.saturating_sub(r.spent);
        let n = want.min(left);
        if n == 0 {
            return Lease::Spent;
        }
        r.spent += n;
        Lease::Granted(n)
    }

    fn give_back(&self, key: &str, window: Window, n: u64) {
        if let Ok(mut records) = self.records.lock()
            && let Some(r) = records.get_mut(key)
            && r.window == window.number
        {
            r.spent = r.spent.saturating_sub(n);
        }
    }
}

/// The key of a budget's record: subject, where the rule was written, window length and
/// what it counts. NUL never occurs in a verified subject or a role name.
pub fn record_key(subject: &str, written_in: &str, window_secs: u32, rows: bool) -> String {
    format!(
        "{subject}\u{0}{written_in}\u{0}{window_secs}\u{0}{}",
        if rows { "rows" } else { "bytes" }
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn leases_never_exceed_the_budget_and_unspent_ones_come_back() {
        let s = LocalBudgets::default();
        let w7 = Window::at(700, 100);
        let w8 = Window::at(899, 100);
        assert_eq!((w7.number, w7.ends_unix()), (7, 800));
        assert_eq!(s.lease("k", w7, 10, 4, 700), Lease::Granted(4));
        assert_eq!(s.lease("k", w7, 10, 4, 700), Lease::Granted(4));
        assert_eq!(s.lease("k", w7, 10, 4, 700), Lease::Granted(2));
        assert_eq!(s.lease("k", w7, 10, 1, 700), Lease::Spent);
        s.give_back("k", w7, 3);
        assert_eq!(s.lease("k", w7, 10, 5, 700), Lease::Granted(3));
        // Another key, another window.
        assert_eq!(s.lease("j", w7, 10, 10, 700), Lease::Granted(10));
        assert_eq!(s.lease("k", w8, 10, 10, 800), Lease::Granted(10));
        // A give-back for a window that is over changes nothing.
        s.give_back("k", w7, 10);
        assert_eq!(s.lease("k", w8, 10, 1, 800), Lease::Spent);
        // An earlier window than the record's gets nothing.
        assert_eq!(s.lease("k", w7, 10, 1, 700), Lease::Spent);
        // A smaller budget after a reload: what was spent counts against it.
        assert_eq!(s.lease("j", w7, 5, 1, 700), Lease::Spent);
    }
}
