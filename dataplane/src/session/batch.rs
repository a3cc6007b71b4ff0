//! Batch tracking: what was forwarded in the current unit (a simple Query, or an
//! extended-protocol batch up to its Sync), how many final responses it will bring, and
//! the units in flight (bounded by `max_pipeline_depth` and `max_pipeline_bytes`).
//!
//! What this module must never do: count a message that was not forwarded.

use super::*;

impl Session {
    pub(super) fn forward(&mut self, raw: &[u8]) {
        self.to_upstream.extend_from_slice(raw);
        self.current_unit_bytes += raw.len();
    }

    /// A Parse, Bind, Describe, Execute or Close: each gets one final response.
    pub(super) fn forward_in_batch(&mut self, raw: &[u8]) {
        self.forward(raw);
        self.batch_forwarded = true;
        self.batch_finals += 1;
        self.sent_after_command += 1;
    }

    /// A Query, Sync or FunctionCall went upstream: one more ReadyForQuery to come.
    pub(super) fn unit_forwarded(&mut self) {
        self.inflight += 1;
        self.unit_seq += 1;
        self.batch_forwarded = false;
        self.batch_finals = 0;
        let bytes = std::mem::take(&mut self.current_unit_bytes);
        self.unit_bytes.push_back(bytes);
        self.inflight_bytes += bytes;
        if self.inflight > self.cfg.max_pipeline_depth {
            self.fatal(
                sqlstate::TOO_MANY,
                "pgate: too many pipelined queries without reading their results",
            );
        } else if self.inflight_bytes > self.cfg.max_pipeline_bytes {
            self.fatal(
                sqlstate::TOO_MANY,
                "pgate: too many bytes of pipelined queries without reading their results",
            );
        }
    }

    /// A unit was answered (or will never be): its bytes leave the pipeline.
    pub(super) fn unit_answered(&mut self, newest: bool) {
        let b = if newest {
            self.unit_bytes.pop_back()
        } else {
            self.unit_bytes.pop_front()
        };
        self.inflight_bytes = self.inflight_bytes.saturating_sub(b.unwrap_or(0));
    }
}
