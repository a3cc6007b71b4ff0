//! Refusals: pgate says no the way PostgreSQL says no to its own errors.
//!
//! pgate never answers a refused message by itself. It sends the database, in the refused
//! message's place, a marker statement the database rejects, and gives the client pgate's
//! ErrorResponse in place of the database's. Everything else the client sees is the
//! database's own: inside a transaction block the transaction is failed (ReadyForQuery
//! `E`, 25P02 for what follows, COMMIT answered as ROLLBACK); in an extended-protocol batch
//! or pipeline the implicit transaction is rolled back and the rest of the batch skipped
//! to Sync; in a transaction that had already failed, the client gets the database's own
//! 25P02, as it would for any statement. Local answers could only guess at that state —
//! with a pipeline in flight pgate cannot know it.
//!
//! The marker is a Parse that PostgreSQL rejects during parse analysis with 42P10 — after
//! its check for an aborted transaction (25P02) and before it runs or looks up anything,
//! so nothing an attacker creates (a function, a table, a setting) can make it succeed.
//! `log_statement` does not log it (extended-protocol statements are logged at Execute);
//! the server log shows its error, whose text names pgate. For the simple protocol the
//! marker is followed by a Sync of pgate's own, whose ReadyForQuery answers the Query.
//!
//! Responses are matched to the marker by position: every forwarded Parse, Bind,
//! Describe, Execute and Close gets exactly one final response (ParseComplete,
//! BindComplete, RowDescription or NoData, CommandComplete, EmptyQueryResponse,
//! PortalSuspended, CloseComplete — or ErrorResponse), in order, and after an error the
//! server skips to Sync. A marker whose position was not reached by the next
//! ReadyForQuery was skipped after an earlier error, as the refused message would have
//! been.
//!
//! What this module must never do: let a refused message's batch continue upstream, or
//! hide a database error other than the marker's own.

use super::*;

/// "ORDER BY position 2 is not in select list" (42P10), raised by parse analysis.
pub(super) const MARKER_SQL: &str =
    "SELECT 'pgate refused the client''s statement; see the pgate audit log' ORDER BY 2";
/// Named, so that the unnamed statement survives, as it does when PostgreSQL refuses a
/// named Parse, a Bind or an Execute. A client's own statement of this name does not
/// matter: the duplicate check comes after parse analysis.
const MARKER_NAME: &str = "pgate.refused";
const MARKER_SQLSTATE: &str = "42P10";

/// A marker in flight and the error the client gets for it.
#[derive(Debug)]
pub(super) struct Refusal {
    /// The unit (Query, or batch up to Sync) it was sent in.
    unit: u64,
    /// Final responses the unit produces before the marker's.
    position: u32,
    /// The refused message was a Parse of the unnamed statement, which PostgreSQL drops
    /// before parsing: so does the marker, and so does pgate's record of it.
    drops_unnamed: bool,
    /// pgate's ErrorResponse, in `refusal_buf`.
    start: usize,
    end: usize,
}

/// Whether `tag` is the final response to a Parse, Bind, Describe, Execute or Close
/// (counted per unit to find the marker's answer).
pub(super) fn is_final(tag: u8) -> bool {
    matches!(
        tag,
        b'1' | b'2' | b'3' | b'C' | b'I' | b's' | b'n' | b'T' | b'E'
    )
}

impl Session {
    /// Refuses the current message of an extended-protocol batch: the marker goes
    /// upstream and the rest of the batch, up to the client's Sync, is dropped.
    pub(super) fn refuse_in_batch(&mut self, code: &str, msg: &str) {
        self.send_marker(MARKER_NAME, code, msg);
        self.ready.skipping_batch = true;
    }

    /// Refuses a Parse: like [`Session::refuse_in_batch`], and a refused Parse of the
    /// unnamed statement drops it, as PostgreSQL's failed Parse does.
    pub(super) fn refuse_parse(&mut self, statement: &str, code: &str, msg: &str) {
        let name = if statement.is_empty() {
            ""
        } else {
            MARKER_NAME
        };
        self.send_marker(name, code, msg);
        self.ready.skipping_batch = true;
    }

    /// Refuses a message that is a unit by itself (a simple Query, a FunctionCall): the
    /// marker and a Sync of pgate's own, whose ReadyForQuery answers the client.
    pub(super) fn refuse_alone(&mut self, code: &str, msg: &str) {
        self.send_marker(MARKER_NAME, code, msg);
        wire::write_sync(&mut self.to_upstream);
        self.unit_forwarded();
    }

    /// A marker in the current batch whose failure the client does not see (it was told
    /// already, `results`): it fails the batch's implicit transaction, and the rest of the
    /// batch is dropped up to the client's Sync.
    pub(super) fn send_silent_marker(&mut self) {
        self.send_marker(MARKER_NAME, "", "");
        self.ready.skipping_batch = true;
    }

    fn send_marker(&mut self, name: &str, code: &str, msg: &str) {
        let start = self.ready.refusal_buf.len();
        if !code.is_empty() {
            wire::write_error(&mut self.ready.refusal_buf, Severity::Error, code, msg);
        }
        self.ready.refusals.push_back(Refusal {
            unit: self.ready.unit_seq,
            position: self.ready.batch_finals,
            drops_unnamed: name.is_empty(),
            start,
            end: self.ready.refusal_buf.len(),
        });
        let before = self.to_upstream.len();
        wire::write_parse(&mut self.to_upstream, name, MARKER_SQL);
        self.ready.current_unit_bytes += self.to_upstream.len() - before;
        self.ready.batch_finals += 1;
        self.ready.batch_forwarded = true;
    }

    /// The client's Sync that ends a refused batch: forwarded, so that the database ends
    /// the batch (rolling back its implicit transaction) and answers it.
    pub(super) fn end_refused_batch(&mut self, raw: &[u8]) {
        self.ready.skipping_batch = false;
        self.forward(raw);
        self.ready.syncs_since_execute += 1;
        self.unit_forwarded();
    }

    /// The unit the upstream is answering now.
    pub(super) fn upstream_unit(&self) -> u64 {
        self.ready
            .unit_seq
            .saturating_sub(self.ready.inflight as u64)
    }

    /// A final response at `position` of the current upstream unit: if it answers a
    /// marker, handles it and returns true.
    pub(super) fn refusal_answered(
        &mut self,
        position: u32,
        tag: u8,
        body: &[u8],
        raw: &[u8],
    ) -> bool {
        let unit = self.upstream_unit();
        let due = self
            .ready
            .refusals
            .front()
            .is_some_and(|r| r.unit == unit && r.position == position);
        if !due {
            return false;
        }
        let Some(r) = self.ready.refusals.pop_front() else {
            return false;
        };
        if r.drops_unnamed {
            self.forget_unnamed_statement();
        }
        if tag != b'E' {
            // The database accepted what must fail: pgate's picture of the session is
            // wrong, and nothing more is decided on it.
            self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: the database accepted the statement pgate sends in place of a refused one; the session ends",
            );
            return true;
        }
        if wire::error_field(body, b'C') == Some(MARKER_SQLSTATE) {
            self.to_client
                .extend_from_slice(self.ready.refusal_buf.get(r.start..r.end).unwrap_or(&[]));
        } else {
            // 25P02 (the transaction had failed already: PostgreSQL would not have looked
            // at the statement either), or the server ending the session.
            self.to_client.extend_from_slice(raw);
        }
        if self.ready.refusals.is_empty() {
            self.ready.refusal_buf.clear();
        }
        true
    }

    /// ReadyForQuery: markers of answered units that were never reached were skipped
    /// after an earlier error in their batch.
    pub(super) fn drop_skipped_refusals(&mut self) {
        let done = self.upstream_unit();
        while self.ready.refusals.front().is_some_and(|r| r.unit < done) {
            self.ready.refusals.pop_front();
        }
        if self.ready.refusals.is_empty() {
            self.ready.refusal_buf.clear();
        }
    }
}
