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
                    terminate: r.on_exceed == OnExceed::Terminate,
                    rule: table
                        .rule(r.rule)
                        .map(|v| format!("{}:{}", v.file, v.line))
                        .unwrap_or_default(),
                }
            })
            .collect()
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
    /// pgate's ErrorResponse for the client.
    error: Vec<u8>,
    /// The message text (for the marker's refusal, when one is needed).
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
        if self.rates.is_empty() || self.cut.is_some() {
            return RateCheck::Pass;
        }
        let now = self.now.mono_us;
        let mut wait = None;
        let mut over = None;
        for (i, r) in self.rates.iter_mut().enumerate() {
            if let Some(at) = r.ready_at(now) {
                if r.terminate {
                    over = Some(i);
                    break;
                }
                wait = Some(wait.map_or(at, |w: u64| w.max(at)));
            }
        }
        if let Some(i) = over {
            let (bps, rule) = match self.rates.get(i) {
                Some(r) => (r.bytes_per_second, r.rule.clone()),
                None => (0, String::new()),
            };
            let sent = (self.rows, self.bytes);
            let what = format!(
                "the result came faster than its byte rate of {bps} bytes per second (the rate rule at {rule})"
            );
            self.start_cut_with("rate", bps, &rule, &what, sent);
            return RateCheck::Pass;
        }
        if let Some(at) = wait {
            self.paused_since.get_or_insert(now);
            return RateCheck::WaitUntil(at);
        }
        for r in &mut self.rates {
            r.take(bytes);
        }
        RateCheck::Pass
    }

    /// Whether the driver must not read (or feed) upstream bytes now: a rate is throttling
    /// the result; [`Session::poll_timeout`] says until when.
    pub fn upstream_paused(&self) -> bool {
        self.paused_until.is_some()
    }

    /// Time passed: a throttle whose time is up lets the upstream go on.
    pub(super) fn resume_if_due(&mut self, now_us: u64) {
        if self.paused_until.is_some_and(|t| now_us >= t) {
            self.paused_until = None;
            if let Some(since) = self.paused_since.take() {
                self.throttled_us += now_us.saturating_sub(since);
            }
        }
    }

    /// A DataRow (`row`) or CopyData of the result being answered: counts it; false if it
    /// must not reach the client (a cap is reached: the result is cut from here).
    pub(super) fn count_result(&mut self, raw: &[u8], row: bool) -> bool {
        // A piece of a cursor's result counts with the cursor's other pieces: otherwise
        // `FETCH 100` in a loop would walk past any cap.
        let fetch = self
            .pending
            .front()
            .is_some_and(|p| matches!(p.effect.as_deref(), Some(SqlEffect::Fetch)));
        let (so_far_rows, so_far_bytes) = if fetch {
            (self.fetch_rows, self.fetch_bytes)
        } else {
            (self.cap_rows, self.cap_bytes)
        };
        let rows = so_far_rows + u64::from(row);
        let bytes = so_far_bytes + raw.len() as u64;
        let over = match (self.caps.max_rows, self.caps.max_bytes) {
            (Some(m), _) if rows > m => Some(("rows", m)),
            (_, Some(m)) if bytes > m => Some(("bytes", m)),
            _ => None,
        };
        let Some((cap, limit)) = over else {
            if fetch {
                (self.fetch_rows, self.fetch_bytes) = (rows, bytes);
            } else {
                (self.cap_rows, self.cap_bytes) = (rows, bytes);
            }
            return true;
        };
        // What this statement itself sent so far, for its audit line (a FETCH's own rows,
        // not its cursor's; a COPY's CopyData rows).
        let sent = if fetch {
            (self.rows, self.bytes)
        } else {
            (self.cap_rows, self.cap_bytes)
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
        let rule = self.caps.rule.clone();
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
        let reached = if cap == "rate" {
            "byte rate exceeded"
        } else {
            "result cap reached"
        };
        let message = format!(
            "pgate: {reached}: {what}; the rest of the result was not sent and the statement was cancelled"
        );
        let mut error = Vec::new();
        wire::write_error(&mut error, Severity::Error, sqlstate::TOO_MANY, &message);
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
        self.cut = Some(Cut {
            unit: self.upstream_unit(),
            ended: false,
            completed: false,
            ready: None,
            cancel_pending: cancel,
            error,
            message,
            note,
            rows,
            bytes,
        });
    }

    /// Whether the client has work upstream after the unit being answered.
    fn later_work_upstream(&self) -> bool {
        self.inflight > 1 || (self.inflight == 1 && self.batch_forwarded)
    }

    /// ReadyForQuery: once no cursor can be open, cursor pieces count from zero again
    /// (a cursor pgate did not see declared, a function's refcursor, lives until its
    /// transaction ends).
    pub(super) fn cursor_counts_end(&mut self) {
        if self.tx_status == b'I' && self.cursors.is_empty() {
            self.fetch_rows = 0;
            self.fetch_bytes = 0;
        }
    }

    /// Whether client input waits: a cut is being settled.
    pub fn holding_client(&self) -> bool {
        self.cut.is_some()
    }

    /// The driver: the database has taken the CancelRequest (its connection closed), or
    /// sending it failed.
    pub fn upstream_cancel_done(&mut self) {
        if let Some(c) = self.cut.as_mut() {
            c.cancel_pending = false;
        }
        self.settle_cut();
    }

    /// While a cut is on: handles an upstream message of the cut statement or of the rest
    /// of its unit. True if it was consumed here (dropped, or replaced).
    pub(super) fn on_cut_message(&mut self, tag: u8, position: u32) -> bool {
        let Some(cut) = self.cut.as_mut() else {
            return false;
        };
        if !cut.ended {
            match tag {
                b'D' | b'd' | b'c' => return true,
                b'C' | b's' | b'I' | b'E' => {
                    cut.ended = true;
                    cut.completed = tag != b'E';
                    if tag == b'E' {
                        // The database's own error (the cancel's 57014, or another):
                        // the client gets the cap's error in its place.
                        self.to_client.extend_from_slice(&cut.error);
                    }
                    self.cut_note = Some(std::mem::take(&mut cut.note));
                    self.rows = cut.rows;
                    self.bytes = cut.bytes;
                    self.cap_rows = 0;
                    self.cap_bytes = 0;
                    self.complete_statement("cut", position);
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
        self.cut.as_ref().is_some_and(|c| {
            c.ended
                && c.ready.is_none()
                && c.unit == self.upstream_unit()
                && !matches!(tag, b'N' | b'A' | b'S')
        })
    }

    /// Whether the upstream is answering the cut's unit (and it is not answered yet).
    pub(super) fn cut_unit(&self) -> bool {
        self.cut
            .as_ref()
            .is_some_and(|c| c.ready.is_none() && c.unit == self.upstream_unit())
    }

    /// The cut unit's ReadyForQuery (`status`): held until the cut is settled. True if it
    /// was (the caller does not forward it).
    pub(super) fn cut_ready(&mut self, status: u8) -> bool {
        let Some(cut) = self.cut.as_mut() else {
            return false;
        };
        if !cut.ended {
            // A ReadyForQuery before the cut statement's end cannot happen; settle anyway.
            cut.ended = true;
        }
        cut.ready = Some(status);
        self.settle_cut();
        true
    }

    /// Once the unit is answered and the cancel taken: what the client is owed.
    fn settle_cut(&mut self) {
        let done = self
            .cut
            .as_ref()
            .is_some_and(|c| c.ready.is_some() && !c.cancel_pending);
        if !done {
            return;
        }
        let Some(cut) = self.cut.take() else { return };
        let status = cut.ready.unwrap_or(b'I');
        if !cut.completed {
            // The database failed the statement: its state is the client's already.
            wire::write_ready_for_query(&mut self.to_client, status);
            return;
        }
        match status {
            b'T' if self.inflight > 0 || self.batch_forwarded => {
                let msg = format!(
                    "{}; later statements were already sent, so the session ends and its transaction is rolled back",
                    cut.message
                );
                self.fatal(sqlstate::TOO_MANY, &msg);
            }
            // The transaction must fail as it would for PostgreSQL's own error.
            b'T' => self.refuse_alone(sqlstate::TOO_MANY, &cut.message),
            _ => {
                self.to_client.extend_from_slice(&cut.error);
                wire::write_ready_for_query(&mut self.to_client, status);
            }
        }
    }
}
