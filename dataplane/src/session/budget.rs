//! The session's share of its identity's budgets (`budget …`, [`crate::budgets`]): per
//! record (subject, where the rule was written, window, rows or bytes) a lease, spent
//! locally on each DataRow and CopyData, topped up from the store when it runs out, given
//! back when the session ends or its budgets change.
//!
//! A message no lease can cover cuts the result as a cap does (54000 naming the budget and
//! when it resets). While the store is being asked (a shared store's round trip) the
//! upstream waits, as for a throttle; a store that cannot be reached fails closed.
//!
//! What this module must never do: pass a row or byte no lease covers, or allocate per
//! message (leases are rare; their keys are built at login).

use std::sync::Arc;

use super::*;
use crate::budgets::{BudgetStore, Lease, Window, record_key};

/// How long a session waits before asking a pending store again (µs).
const PENDING_POLL_US: u64 = 2_000;
/// A lease asks for this share of the budget (at least what the message needs).
const CHUNK_DIVISOR: u64 = 32;

/// One budget record this session spends from.
#[derive(Debug)]
pub(super) struct Spend {
    key: String,
    rows: bool,
    /// The smallest budget of the role on this record.
    limit: u64,
    window_secs: u32,
    /// `file:line` of the rule that sets `limit`.
    rule: String,
    /// The window the lease is for, and what is left of it.
    window: Option<Window>,
    left: u64,
    store: Arc<dyn BudgetStore>,
}

impl Drop for Spend {
    fn drop(&mut self) {
        if let (Some(w), true) = (self.window, self.left > 0) {
            self.store.give_back(&self.key, w, self.left);
        }
    }
}

/// What the budgets say about the next result message.
pub(super) enum BudgetCheck {
    Pass,
    /// The store is being asked: read nothing more upstream until then (µs).
    WaitUntil(u64),
    /// Spent (or the store unavailable): cut, with this message and the budget's limit.
    Cut {
        what: String,
        rule: String,
        limit: u64,
        rows: bool,
    },
}

impl Spend {
    /// The role's budgets for `subject`: one record per (where written, window, rows or
    /// bytes), with the smallest limit the role sets on it.
    pub fn of(
        table: &Table<'_>,
        role: RoleId,
        subject: &str,
        store: &Arc<dyn BudgetStore>,
    ) -> Vec<Spend> {
        let mut out: Vec<Spend> = Vec::new();
        for b in table.budgets(role) {
            let (written_in, rule) = match table.rule(b.rule) {
                Some(r) => (r.role, format!("{}:{}", r.file, r.line)),
                None => ("", String::new()),
            };
            for (rows, limit) in [(true, b.max_rows), (false, b.max_bytes)] {
                let Some(limit) = limit else { continue };
                let key = record_key(subject, written_in, b.window_secs, rows);
                match out.iter_mut().find(|s| s.key == key) {
                    Some(s) if limit < s.limit => {
                        s.limit = limit;
                        s.rule = rule.clone();
                    }
                    Some(_) => {}
                    None => out.push(Spend {
                        key,
                        rows,
                        limit,
                        window_secs: b.window_secs,
                        rule: rule.clone(),
                        window: None,
                        left: 0,
                        store: store.clone(),
                    }),
                }
            }
        }
        out
    }

    fn need(&self, bytes: u64) -> u64 {
        if self.rows { 1 } else { bytes }
    }

    /// Makes sure the lease covers `need` in the window of `now_unix`.
    fn cover(&mut self, need: u64, now_unix: u64) -> Lease {
        let window = Window::at(now_unix, self.window_secs);
        if self.window != Some(window) {
            if let (Some(old), true) = (self.window, self.left > 0) {
                self.store.give_back(&self.key, old, self.left);
            }
            self.window = Some(window);
            self.left = 0;
        }
        while self.left < need {
            let want = (self.limit / CHUNK_DIVISOR).max(need - self.left).max(1);
            match self
                .store
                .lease(&self.key, window, self.limit, want, now_unix)
            {
                Lease::Granted(n) => self.left += n,
                Lease::Pending => return Lease::Pending,
                other => {
                    // Cut: what it holds could serve another session of the identity.
                    if self.left > 0 {
                        self.store.give_back(&self.key, window, self.left);
                        self.left = 0;
                    }
                    return other;
                }
            }
        }
        Lease::Granted(self.left)
    }
}

impl Session {
    /// Before a DataRow or CopyData of `bytes` is taken: every budget must cover it. Spends
    /// it only when all do.
    pub(super) fn check_budgets(&mut self, bytes: u64) -> BudgetCheck {
        if self.ready.budgets.is_empty() {
            return BudgetCheck::Pass;
        }
        let now_unix = self.now.unix_ms / 1000;
        for s in &mut self.ready.budgets {
            let need = s.need(bytes);
            match s.cover(need, now_unix) {
                Lease::Granted(_) => {}
                Lease::Pending => {
                    return BudgetCheck::WaitUntil(self.now.mono_us + PENDING_POLL_US);
                }
                outcome => {
                    let subject = self.identity.as_ref().map_or("", |i| i.subject.as_str());
                    let unit = if s.rows { "rows" } else { "bytes" };
                    let per = if s.window_secs == 3_600 {
                        "hour"
                    } else {
                        "day"
                    };
                    let resets = s.window.map_or(0, Window::ends_unix);
                    let resets = humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(resets),
                    );
                    let what = if outcome == Lease::Unavailable {
                        format!(
                            "the budget store cannot be reached, and budgets fail closed (the budget rule at {})",
                            s.rule
                        )
                    } else {
                        format!(
                            "{subject} may receive {} {unit} per {per} (the budget rule at {}), and they are spent until {resets}",
                            s.limit, s.rule
                        )
                    };
                    return BudgetCheck::Cut {
                        what,
                        rule: s.rule.clone(),
                        limit: s.limit,
                        rows: s.rows,
                    };
                }
            }
        }
        for s in &mut self.ready.budgets {
            s.left -= s.need(bytes).min(s.left);
        }
        BudgetCheck::Pass
    }
}
