//! The database's answers: framing them, matching each to what was forwarded (final
//! responses by position, ReadyForQuery by unit), refusal markers, statement lines, copy
//! modes, and the result stream's caps and throttles (`results`), then passing them on.
//!
//! What this module must never do: pass the client a message the database did not send for
//! it (a real cancel key, a marker's own error), or lose count of the answers.

use super::*;
use masking::Planned;
use refusal::is_final;
use results::RateCheck;

impl Session {
    /// Consumes complete messages from the upstream; returns bytes consumed.
    pub fn handle_upstream(&mut self, input: &[u8], now: Clock) -> usize {
        self.now = now;
        self.resume_if_due(now.mono_us);
        let mut consumed = 0;
        while !matches!(self.state, State::Closed) {
            if self.upstream_paused() {
                break;
            }
            let rest = &input[consumed..];
            let f = match frame(rest, self.cfg.max_message_bytes) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let msg = format!("pgate: malformed message from the database: {e}");
                    self.fatal(sqlstate::PROTOCOL_VIOLATION, &msg);
                    break;
                }
            };
            if matches!(self.state, State::Ready)
                && matches!(f.tag, b'D' | b'd')
                && let RateCheck::WaitUntil(t) = self.check_rates(f.len as u64)
            {
                // Throttled: this message waits (unread) until the bucket has tokens.
                self.ready.paused_until = Some(t);
                break;
            }
            if matches!(self.state, State::Ready)
                && matches!(f.tag, b'T' | b'H')
                && self.masks_active()
                && matches!(self.plan_result(f.tag, f.body), Planned::Wait)
            {
                // The catalog must name the result's relations first: this message waits.
                break;
            }
            consumed += f.len;
            let raw = &rest[..f.len];
            match self.state {
                State::UpstreamAuth { .. } => self.on_upstream_auth(f.tag, f.body),
                State::UpstreamStartup { .. } => self.on_upstream_startup(f.tag, f.body, raw),
                State::Ready => self.on_upstream_message(f.tag, f.body, raw),
                _ => self.fatal(
                    sqlstate::PROTOCOL_VIOLATION,
                    "pgate: unexpected message from the database",
                ),
            }
        }
        consumed
    }

    pub(super) fn on_upstream_message(&mut self, tag: u8, body: &[u8], raw: &[u8]) {
        let mut position = 0;
        // The answer to pgate's own Describe (masks) counts as the server sent it, and
        // goes no further.
        let own = self.masks_on_message(tag);
        if tag == b'S' {
            // Kept for the next session on this connection (reuse).
            note_parameter(&mut self.upstream_params, body);
        }
        if tag == b'E' {
            // "In the event of a backend-detected error during copy-in mode … the backend
            // will issue an ErrorResponse": COPY is over, whoever's error it is.
            self.ready.copy_in = false;
            self.ready.unit_error = true;
        }
        let dropping = self.cut_drops(tag);
        let cut_unit = self.cut_unit();
        if is_final(tag) {
            position = self.ready.unit_finals;
            self.ready.unit_finals += 1;
            let shown = self.to_client.len();
            if self.refusal_answered(position, tag, body, raw) {
                if dropping {
                    // A marker later in a cut unit: skipped, for the client, as PostgreSQL
                    // would have skipped the refused message after the cap's error.
                    self.to_client.truncate(shown);
                }
                return;
            }
        }
        if own {
            return;
        }
        if self.on_cut_message(tag, position) {
            return;
        }
        if dropping && matches!(tag, b'C' | b'I') {
            self.cut_later_ran();
        }
        match tag {
            b'Z' => {
                self.ready.tx_status = body.first().copied().unwrap_or(b'I');
                self.ready.inflight = self.ready.inflight.saturating_sub(1);
                self.unit_answered(false);
                self.ready.unit_finals = 0;
                let errored = std::mem::take(&mut self.ready.unit_error);
                self.finish_unit();
                self.drop_skipped_refusals();
                let done = self
                    .ready
                    .unit_seq
                    .saturating_sub(self.ready.inflight as u64);
                self.drop_unconfirmed(done);
                self.path_unit_end(done, self.ready.tx_status, errored);
                if self.ready.tx_status == b'I' {
                    self.transaction_ended(done);
                }
                self.cursor_counts_end();
                if cut_unit && self.cut_ready(self.ready.tx_status) {
                    return;
                }
                self.to_client.extend_from_slice(raw);
                return;
            }
            // CommandComplete, EmptyQueryResponse, ErrorResponse end one statement.
            b'C' => {
                if let Some(n) = command_rows(body) {
                    self.ready.rows = n;
                }
                self.ready.cap_rows = 0;
                self.ready.cap_bytes = 0;
                self.complete_statement("ok", position);
            }
            b'I' => {
                self.ready.cap_rows = 0;
                self.ready.cap_bytes = 0;
                self.complete_statement("ok", position);
            }
            // The portal's result goes on at its next Execute: its counts carry over.
            b's' => {
                if let Some((id, (r, b))) =
                    self.ready.pending.front().map(|p| (p.portal, p.carried))
                {
                    self.portal_sent(id, (r + self.ready.cap_rows, b + self.ready.cap_bytes));
                }
                self.ready.cap_rows = 0;
                self.ready.cap_bytes = 0;
                self.complete_statement("suspended", position);
            }
            b'1' => self.confirmed(true),
            b'3' => self.confirmed(false),
            b'E' => {
                // "In the event of a backend-detected error during copy-in mode … the
                // backend will issue an ErrorResponse": COPY is over.
                self.ready.copy_in = false;
                self.ready.cap_rows = 0;
                self.ready.cap_bytes = 0;
                self.complete_statement("error", position);
            }
            b'D' => {
                if !dropping && !self.count_result(raw, true) {
                    return;
                }
                self.ready.rows += 1;
                self.ready.bytes += raw.len() as u64;
                if !dropping {
                    self.pass_data_row(body, raw);
                }
                return;
            }
            // COPY TO STDOUT data (copy-out; in copy-in mode the server sends none):
            // PostgreSQL sends one CopyData per row, so each counts as a row.
            b'd' => {
                if !dropping && !self.count_result(raw, true) {
                    return;
                }
                self.ready.bytes += raw.len() as u64;
                if !dropping {
                    self.pass_copy_data(body, raw);
                }
                return;
            }
            b'c' if !self.copy_done() => return,
            b'G' => {
                if dropping {
                    // A COPY FROM STDIN after a cut statement, in its unit: its answers are
                    // not the client's, and pgate cannot end the copy for it.
                    return self.fatal(
                        sqlstate::TOO_MANY,
                        "pgate: a result cap was reached in a request that goes on with COPY FROM STDIN; the session ends",
                    );
                }
                // The client may have ended the copy before this arrived.
                self.ready.copy_in = !std::mem::take(&mut self.ready.copy_ended_early);
                // Anything but Sync and Flush pipelined behind the COPY's command reaches
                // the server in copy-in mode, which fails the COPY: what it answers then
                // depends on where the server was, and pgate would lose count of it.
                let copy = self.ready.pending.front().map(|p| (p.unit, p.position));
                let more = self.ready.pending.iter().skip(1).any(|p| {
                    Some(p.unit) != copy.map(|c| c.0)
                        || (p.position.is_some() && copy.is_some_and(|c| c.1.is_some()))
                });
                if self.ready.sent_after_command > 0 || more || !self.ready.refusals.is_empty() {
                    return self.fatal(
                        sqlstate::PROTOCOL_VIOLATION,
                        "pgate: messages pipelined behind COPY FROM STDIN before the copy started are not supported",
                    );
                }
                {
                    // The client's Syncs after the COPY's command reached the server in
                    // copy-in mode and are ignored there: they will get no ReadyForQuery.
                    let k = std::mem::take(&mut self.ready.syncs_since_execute);
                    self.ready.inflight = self.ready.inflight.saturating_sub(k);
                    self.ready.unit_seq = self.ready.unit_seq.saturating_sub(k as u64);
                    for _ in 0..k {
                        self.unit_answered(true);
                    }
                }
            }
            b'W' => {
                return self.fatal(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "pgate: COPY BOTH (replication) is not supported",
                );
            }
            // A real cancel key must never reach the client.
            b'K' => return,
            _ => {}
        }
        if !dropping {
            if matches!(tag, b'E' | b'N') && self.masks_active() {
                // DETAIL may quote a row ("Failing row contains (…)", "Key (…)=(…)"),
                // masked columns and all: a role with masks does not get it.
                write_without_detail(&mut self.to_client, tag, body);
            } else {
                self.to_client.extend_from_slice(raw);
            }
        }
    }
}

/// An ErrorResponse or NoticeResponse without its DETAIL field ('D'): "The message body
/// consists of one or more identified fields, followed by a zero byte as a terminator".
fn write_without_detail(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    let at = out.len();
    out.push(tag);
    out.extend_from_slice(&[0; 4]);
    let mut rest = body;
    while let [code, tail @ ..] = rest {
        if *code == 0 {
            break;
        }
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        if *code != b'D' {
            out.push(*code);
            out.extend_from_slice(&tail[..end]);
            out.push(0);
        }
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    out.push(0);
    let len = (out.len() - at - 1) as u32;
    out[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
}
