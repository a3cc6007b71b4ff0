//! The result stream: per-statement caps on the rows and bytes a result sends the client
//! (`limit rows=… bytes=…`), DataRow and COPY TO STDOUT data alike, and byte-rate buckets
//! (`rate …`, [`crate::buckets`]): `throttle` stops reading the upstream until the bucket
//! has tokens again (TCP backpressure: nothing is buffered beyond the message that must
//! wait), `terminate` cuts the result as a cap does.
//!
//! A result that would go past a cap is cut: the message that would exceed it and
//! everything after it of that statement is dropped, the database is sent a CancelRequest
//! (with the real key) so that it stops producing, and the statement ends, for the client,
//! with ErrorResponse 54000 naming the cap and its rule. From there the client sees what
//! PostgreSQL shows for its own error:
//! - the cancel reached the statement: the database's own error (57014, replaced by the
//!   54000) fails the transaction or the batch, skips the rest to Sync, and its
//!   ReadyForQuery follows;
//! - the statement had finished before the cancel reached it: pgate drops the rest of the
//!   unit's answers (PostgreSQL would have skipped that work) and, in a transaction block,
//!   sends the database a marker statement (as for a refusal, `refusal.rs`) that fails the
//!   transaction, so that COMMIT rolls back as the client expects. Outside a transaction
//!   block the unit has committed by then (see docs/dataplane.md).
//!
//! While a cut is being settled, pgate reads nothing more from the client: the cancel must
//! not hit a later statement (pgate waits until the database has taken the cancel, which
//! it ignores once idle) and the marker must follow the cut unit directly. If the client
//! had already pipelined later work the transaction cannot be failed in place: the session
//! ends with FATAL 54000 (closing the upstream connection rolls its transaction back).
//!
//! A result fetched in pieces is one result: counts carry over a PortalSuspended to the
//! next Execute, and every piece of a SQL cursor's result (`FETCH`, an Execute of its
//! portal) counts with the others until no cursor is left outside a transaction (pieces
//! of different cursors count together: never less than each cursor's own).
//!
//! What this module must never do: pass a row or a COPY byte past a cap, or let the
//! client's view of the transaction differ from the database's.

use super::*;
use crate::buckets::{Bucket, IdentityBuckets, SharedBucket};
use pgate_core::table::model::{OnExceed, RateScope};
use std::sync::Arc;

/// The role's caps and the rule that sets them, looked up at login and at every swap.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Caps {
    pub max_rows: Option<u64>,
    pub max_bytes: Option<u64>,
    /// `file:line` of the `limit` rule.
    pub rule: String,
}

impl Caps {
    pub fn of(table: &Table<'_>, role: RoleId) -> Caps {
        let l = table.limits(role);
        let rule = l
            .rule
            .and_then(|r| table.rule(r))
            .map(|r| format!("{}:{}", r.file, r.line))
            .unwrap_or_default();
        Caps {
            max_rows: l.max_rows,
            max_bytes: l.max_bytes,
            rule,
        }
    }
}

/// A `rate` rule of the role, with its bucket.
#[derive(Debug)]
pub(super) struct Rate {
    bucket: RateBucket,
    bytes_per_second: u64,
    burst_bytes: u64,
    terminate: bool,
    /// `file:line` of the rule.
    rule: String,
}

#[derive(Debug)]
enum RateBucket {
    Session(Bucket),
    Identity(Arc<SharedBucket>),
}

impl Rate {
    /// The role's rates; identity-scoped buckets come from `shared` (this instance's
    /// registry), keyed by the subject and the bucket's size and rate.
    pub fn of(
        table: &Table<'_>,
        role: RoleId,
        subject: &str,
        shared: &IdentityBuckets,
        now_us: u64,
    ) -> Vec<Rate> {
        table
            .rates(role)
            .map(|r| {
                let bucket = match r.scope {
                    RateScope::Session => {
                        RateBucket::Session(Bucket::new(r.bytes_per_second, r.burst_bytes, now_us))
                    }
                    RateScope::Identity => RateBucket::Identity(shared.get(
                        subject,
                        r.bytes_per_second,
                        r.burst_bytes,
                        now_us,
                    )),
                };
                Rate {
                    bucket,
                    bytes_per_second: r.bytes_per_second,
                    burst_bytes: r.burst_bytes,
                    terminate: r.on_exceed == OnExceed::Terminate,
                    rule: table
                        .rule(r.rule)
                        .map(|v| format!("{}:{}", v.file, v.line))
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// After a table swap: the new rates, each keeping the bucket of an old rate of the
    /// same kind (a reload must not refill a bucket).
    pub fn carry_over(old: Vec<Rate>, mut new: Vec<Rate>) -> Vec<Rate> {
        let mut old: Vec<Option<Rate>> = old.into_iter().map(Some).collect();
        for n in &mut new {
            let same = old.iter_mut().find(|o| {
                o.as_ref().is_some_and(|o| {
                    o.bytes_per_second == n.bytes_per_second
                        && o.burst_bytes == n.burst_bytes
                        && o.terminate == n.terminate
                        && matches!(
                            (&o.bucket, &n.bucket),
                            (RateBucket::Session(_), RateBucket::Session(_))
                                | (RateBucket::Identity(_), RateBucket::Identity(_))
                        )
                })
            });
            if let Some(o) = same.and_then(Option::take) {
                n.bucket = o.bucket;
            }
        }
        new
    }

    fn ready_at(&mut self, now_us: u64) -> Option<u64> {
        match &mut self.bucket {
            RateBucket::Session(b) => b.ready_at(now_us),
            RateBucket::Identity(b) => b.ready_at(now_us),
        }
    }

    fn take(&mut self, bytes: u64) {
        match &mut self.bucket {
            RateBucket::Session(b) => b.take(bytes),
            RateBucket::Identity(b) => b.take(bytes),
        }
    }
}

/// What the rates say about the next result message.
pub(super) enum RateCheck {
    Pass,
    /// Throttled: read nothing more upstream until this time (µs).
    WaitUntil(u64),
}

/// A result being cut, until its unit is settled.
#[derive(Debug)]
pub(super) struct Cut {
    /// The unit the cut statement belongs to.
    unit: u64,
    /// The cut statement's own end (CommandComplete, PortalSuspended or an error) came:
    /// the rest of the unit's answers are dropped until its ReadyForQuery.
    ended: bool,
    /// It ended as completed: the database does not know it failed.
    completed: bool,
    /// The unit's ReadyForQuery status, held until the cut is settled.
    ready: Option<u8>,
    /// A CancelRequest is on its way and not yet taken by the database.
    cancel_pending: bool,
    /// The client got the cap's error already.
    error_sent: bool,
    /// A statement after the cut one, in its unit, completed in the database.
    later_ran: bool,
    /// Client input may go on (the cut unit's batch is open: its Sync must come).
    release_input: bool,
    /// "pgate: result cap reached: …" without its ending (which depends on the outcome).
    message: String,
    /// The cut statement's audit note.
    note: String,
    /// What the cut statement itself sent the client.
    rows: u64,
    bytes: u64,
}

impl Session {
    /// Before a DataRow or CopyData of `bytes` is taken from the upstream: every rate must
    /// have tokens. A throttling rate without them makes the upstream wait; a terminating
    /// one cuts the result (the message is then dropped with the rest).
    pub(super) fn check_rates(&mut self, bytes: u64) -> RateCheck {
        if (self.ready.rates.is_empty() && self.ready.budgets.is_empty())
            || self.ready.cut.is_some()
        {
            return RateCheck::Pass;
        }
        let now = self.now.mono_us;
        let mut wait = None;
        let mut over = None;
        for (i, r) in self.ready.rates.iter_mut().enumerate() {
            if let Some(at) = r.ready_at(now) {
                if r.terminate {
                    over = Some(i);
                    break;
                }
                wait = Some(wait.map_or(at, |w: u64| w.max(at)));
            }
        }
        if let Some(i) = over {
            let (bps, rule) = match self.ready.rates.get(i) {
                Some(r) => (r.bytes_per_second, r.rule.clone()),
                None => (0, String::new()),
            };
            let sent = self.sent_so_far();
            let what = format!(
                "the result came faster than its byte rate of {bps} bytes per second (the rate rule at {rule})"
            );
            self.start_cut_with("rate", bps, &rule, &what, sent);
            return RateCheck::Pass;
        }
        if let Some(at) = wait {
            self.ready.paused_since.get_or_insert(now);
            return RateCheck::WaitUntil(at);
        }
        match self.check_budgets(bytes) {
            super::budget::BudgetCheck::Pass => {}
            super::budget::BudgetCheck::WaitUntil(at) => {
                self.ready.paused_since.get_or_insert(now);
                return RateCheck::WaitUntil(at);
            }
            super::budget::BudgetCheck::Cut {
                what,
                rule,
                limit,
                rows,
            } => {
                let sent = self.sent_so_far();
                let cap = if rows { "budget-rows" } else { "budget-bytes" };
                self.start_cut_with(cap, limit, &rule, &what, sent);
                return RateCheck::Pass;
            }
        }
        for r in &mut self.ready.rates {
            r.take(bytes);
        }
        RateCheck::Pass
    }

    /// What the statement being answered sent so far (a FETCH's own rows, not its
    /// cursor's), for its audit line.
    fn sent_so_far(&self) -> (u64, u64) {
        let fetch = self
            .ready
            .pending
            .front()
            .is_some_and(|p| matches!(p.effect.as_deref(), Some(SqlEffect::Fetch)));
        // Without caps nothing is counted for them: the statement's own counts then.
        let uncapped = self.ready.caps.max_rows.is_none() && self.ready.caps.max_bytes.is_none();
        if fetch || uncapped {
            (self.ready.rows, self.ready.bytes)
        } else {
            (self.ready.cap_rows, self.ready.cap_bytes)
        }
    }

    /// Whether the driver must not read (or feed) upstream bytes now: a rate is throttling
    /// the result ([`Session::poll_timeout`] says until when), the masks wait for the
    /// catalog, or the audit lines of what was fed fill their batch (the driver ships them
    /// with [`Session::audit_taken`], then feeds the rest: the buffer keeps the size it
    /// grew to while warming up, however many answers one read brings).
    pub fn upstream_paused(&self) -> bool {
        self.ready.paused_until.is_some() || self.catalog_wait() || self.audit_full()
    }

    pub(super) fn audit_full(&self) -> bool {
        self.audit.len() >= AUDIT_BATCH_BYTES
    }

    /// Time passed: a throttle whose time is up lets the upstream go on.
    pub(super) fn resume_if_due(&mut self, now_us: u64) {
        if self.ready.paused_until.is_some_and(|t| now_us >= t) {
            self.ready.paused_until = None;
            if let Some(since) = self.ready.paused_since.take() {
                self.ready.throttled_us += now_us.saturating_sub(since);
            }
        }
    }

    /// A DataRow (`row`) or CopyData of the result being answered: counts it; false if it
    /// must not reach the client (a cap is reached: the result is cut from here).
    pub(super) fn count_result(&mut self, raw: &[u8], row: bool) -> bool {
        if self.ready.caps.max_rows.is_none() && self.ready.caps.max_bytes.is_none() {
            return true;
        }
        // A piece of a cursor's result counts with the cursor's other pieces: otherwise
        // `FETCH 100` in a loop would walk past any cap.
        let front = self.ready.pending.front();
        let fetch = front.is_some_and(|p| matches!(p.effect.as_deref(), Some(SqlEffect::Fetch)));
        let (before_rows, before_bytes) = front.map_or((0, 0), |p| p.carried);
        let (so_far_rows, so_far_bytes) = if fetch {
            (self.ready.fetch_rows, self.ready.fetch_bytes)
        } else {
            (
                before_rows + self.ready.cap_rows,
                before_bytes + self.ready.cap_bytes,
            )
        };
        let rows = so_far_rows + u64::from(row);
        let bytes = so_far_bytes + raw.len() as u64;
        let over = match (self.ready.caps.max_rows, self.ready.caps.max_bytes) {
            (Some(m), _) if rows > m => Some(("rows", m)),
            (_, Some(m)) if bytes > m => Some(("bytes", m)),
            _ => None,
        };
        let Some((cap, limit)) = over else {
            if fetch {
                (self.ready.fetch_rows, self.ready.fetch_bytes) = (rows, bytes);
            } else {
                (self.ready.cap_rows, self.ready.cap_bytes) =
                    (rows - before_rows, bytes - before_bytes);
            }
            return true;
        };
        // What this statement itself sent so far, for its audit line (a FETCH's own rows,
        // not its cursor's; a COPY's CopyData rows).
        let sent = if fetch {
            (self.ready.rows, self.ready.bytes)
        } else {
            (self.ready.cap_rows, self.ready.cap_bytes)
        };
        self.start_cut(cap, limit, sent);
        false
    }

    fn start_cut(&mut self, cap: &str, limit: u64, sent: (u64, u64)) {
        let what = if cap == "rows" {
            format!("the statement returned more than {limit} rows")
        } else {
            format!("the statement returned more than {limit} bytes")
        };
        let rule = self.ready.caps.rule.clone();
        let what = format!("{what} (the limit rule at {rule})");
        self.start_cut_with(cap, limit, &rule, &what, sent);
    }

    fn start_cut_with(
        &mut self,
        cap: &str,
        limit: u64,
        rule: &str,
        what: &str,
        (rows, bytes): (u64, u64),
    ) {
        let reached = match cap {
            "rate" => "byte rate exceeded",
            "budget-rows" | "budget-bytes" => "budget spent",
            _ => "result cap reached",
        };
        let message = format!("pgate: {reached}: {what}; the rest of the result was not sent");
        let mut note = String::from(",\"cut\":{\"cap\":\"");
        note.push_str(cap);
        let _ = write!(note, "\",\"limit\":{limit},\"rule\":\"");
        audit::json_escape_into(&mut note, rule);
        note.push_str("\"}");
        // A cancel is safe only when nothing of the client's after this unit is upstream:
        // otherwise it could stop a later statement instead.
        let cancel = !self.later_work_upstream();
        if cancel {
            self.actions.push_back(Action::CancelUpstream);
        }
        self.ready.cut = Some(Cut {
            unit: self.upstream_unit(),
            ended: false,
            completed: false,
            ready: None,
            cancel_pending: cancel,
            error_sent: false,
            later_ran: false,
            release_input: false,
            message,
            note,
            rows,
            bytes,
        });
    }

    /// Whether the client has work upstream after the unit being answered.
    fn later_work_upstream(&self) -> bool {
        self.ready.inflight > 1 || (self.ready.inflight == 1 && self.ready.batch_forwarded)
    }

    /// ReadyForQuery: once no cursor can be open, cursor pieces count from zero again
    /// (a cursor pgate did not see declared, a function's refcursor, lives until its
    /// transaction ends).
    pub(super) fn cursor_counts_end(&mut self) {
        if self.ready.tx_status == b'I' && self.ready.cursors.is_empty() {
            self.ready.fetch_rows = 0;
            self.ready.fetch_bytes = 0;
        }
    }

    /// Whether client input waits: a cut is being settled, or a unit that may change the
    /// search path is in flight (`path`).
    pub fn holding_client(&self) -> bool {
        self.ready.cut.as_ref().is_some_and(|c| !c.release_input) || self.path_holds_client()
    }

    /// The driver: the database has taken the CancelRequest (its connection closed), or
    /// sending it failed.
    ///
    /// `taken` false: the database could not be reached (or did not answer in time), so
    /// the statement may run on, and a late cancel could still stop a later statement: the
    /// session ends (closing the upstream connection stops the backend).
    pub fn upstream_cancel_done(&mut self, taken: bool) {
        if !taken && self.ready.cut.is_some() {
            let msg = self
                .ready
                .cut
                .as_ref()
                .map(|c| c.message.clone())
                .unwrap_or_default();
            self.fatal(
                sqlstate::TOO_MANY,
                &format!("{msg}; the database could not be asked to stop the statement, so the session ends"),
            );
            return;
        }
        if let Some(c) = self.ready.cut.as_mut() {
            c.cancel_pending = false;
        }
        self.settle_cut();
    }

    /// The cap's error, ending as the outcome says, for the client.
    fn send_cut_error(&mut self, committed: bool) {
        let Some(c) = self.ready.cut.as_mut() else {
            return;
        };
        c.error_sent = true;
        let ending = if committed {
            "; the statement had already completed in the database, and its transaction committed"
        } else {
            " and the statement was cancelled"
        };
        let text = format!("{}{ending}", c.message);
        wire::write_error(
            &mut self.to_client,
            Severity::Error,
            sqlstate::TOO_MANY,
            &text,
        );
    }

    /// A statement after the cut one, in its unit, completed (its answer is dropped).
    pub(super) fn cut_later_ran(&mut self) {
        if let Some(c) = self.ready.cut.as_mut() {
            c.later_ran = true;
        }
    }

    /// While a cut is on: handles an upstream message of the cut statement or of the rest
    /// of its unit. True if it was consumed here (dropped, or replaced).
    pub(super) fn on_cut_message(&mut self, tag: u8, position: u32) -> bool {
        let Some(cut) = self.ready.cut.as_mut() else {
            return false;
        };
        if !cut.ended {
            match tag {
                b'D' | b'd' | b'c' => return true,
                b'C' | b's' | b'I' | b'E' => {
                    cut.ended = true;
                    cut.completed = tag != b'E';
                    self.ready.cut_note = Some(std::mem::take(&mut cut.note));
                    self.ready.rows = cut.rows;
                    self.ready.bytes = cut.bytes;
                    self.ready.cap_rows = 0;
                    self.ready.cap_bytes = 0;
                    if tag == b'E' {
                        // The database's own error (the cancel's 57014, or another): the
                        // client gets the cap's error in its place; the database's state
                        // (failed transaction, batch skipped to Sync) is the client's.
                        self.send_cut_error(false);
                    }
                    self.complete_statement("cut", position);
                    self.settle_cut();
                    return true;
                }
                _ => return false,
            }
        }
        false
    }

    /// After the cut statement ended: the rest of its unit is not shown to the client
    /// (PostgreSQL would have skipped it), apart from notices and notifications.
    pub(super) fn cut_drops(&self, tag: u8) -> bool {
        self.ready.cut.as_ref().is_some_and(|c| {
            c.ended
                && c.ready.is_none()
                && c.unit == self.upstream_unit()
                && !matches!(tag, b'N' | b'A' | b'S')
        })
    }

    /// Whether the upstream is answering the cut's unit (and it is not answered yet).
    pub(super) fn cut_unit(&self) -> bool {
        self.ready
            .cut
            .as_ref()
            .is_some_and(|c| c.ready.is_none() && c.unit == self.upstream_unit())
    }

    /// The cut unit's ReadyForQuery (`status`): held until the cut is settled. True if it
    /// was (the caller does not forward it).
    pub(super) fn cut_ready(&mut self, status: u8) -> bool {
        let Some(cut) = self.ready.cut.as_mut() else {
            return false;
        };
        if !cut.ended {
            // A ReadyForQuery before the cut statement's end cannot happen: take it as
            // completed, so that the client gets the error (and a block fails).
            cut.ended = true;
            cut.completed = true;
        }
        cut.ready = Some(status);
        self.settle_cut();
        true
    }

    /// Once the cut statement ended and the cancel is taken: what the client is owed.
    fn settle_cut(&mut self) {
        let Some(cut) = self.ready.cut.as_ref() else {
            return;
        };
        if !cut.ended || cut.cancel_pending {
            return;
        }
        let Some(status) = cut.ready else {
            // The unit is not answered yet. If its batch is still open (the client sends
            // Sync after reading the results: Flush, pipeline mode), the client must be
            // able to send it: the error now, and — when the statement completed — a
            // marker in the same batch, which fails its implicit transaction as the error
            // would have (the rest of the batch is skipped to its Sync).
            if cut.unit == self.ready.unit_seq && !cut.release_input {
                let (completed, error_sent) = (cut.completed, cut.error_sent);
                if completed && !error_sent {
                    self.send_silent_marker();
                }
                if !error_sent {
                    self.send_cut_error(false);
                }
                if let Some(c) = self.ready.cut.as_mut() {
                    c.release_input = true;
                }
            }
            return;
        };
        let (completed, error_sent, later_ran) = (cut.completed, cut.error_sent, cut.later_ran);
        if error_sent {
            self.ready.cut = None;
            wire::write_ready_for_query(&mut self.to_client, status);
            return;
        }
        debug_assert!(completed, "an uncompleted cut sends its error at its end");
        match status {
            b'T' if self.ready.inflight > 0 || self.ready.batch_forwarded => {
                let msg = format!(
                    "{}; later statements were already sent, so the session ends and its transaction is rolled back",
                    cut.message
                );
                self.ready.cut = None;
                self.fatal(sqlstate::TOO_MANY, &msg);
            }
            // The transaction must fail as it would for PostgreSQL's own error.
            b'T' => {
                let msg = format!("{} and the statement was cancelled", cut.message);
                self.ready.cut = None;
                self.refuse_alone(sqlstate::TOO_MANY, &msg);
            }
            // Committed (no transaction block): what ran cannot be undone. Statements
            // after the cut one ran too, and the client was not shown them: it must know.
            b'I' if later_ran => {
                let msg = format!(
                    "{}; the statement, and those after it in the same request, had already completed in the database and committed, so the session ends",
                    cut.message
                );
                self.ready.cut = None;
                self.fatal(sqlstate::TOO_MANY, &msg);
            }
            _ => {
                self.send_cut_error(status == b'I');
                self.ready.cut = None;
                wire::write_ready_for_query(&mut self.to_client, status);
            }
        }
    }
}
