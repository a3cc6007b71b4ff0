//! Batch tracking: what was forwarded in the current unit (a simple Query, or an
//! extended-protocol batch up to its Sync), how many final responses it will bring, and
//! the units in flight (bounded by `max_pipeline_depth` and `max_pipeline_bytes`).
//!
//! What this module must never do: count a message that was not forwarded.

use super::*;

impl Session {
    pub(super) fn forward(&mut self, raw: &[u8]) {
        self.to_upstream.extend_from_slice(raw);
        self.ready.current_unit_bytes += raw.len();
    }

    /// A Parse, Bind, Describe, Execute or Close: each gets one final response.
    pub(super) fn forward_in_batch(&mut self, raw: &[u8]) {
        self.forward(raw);
        self.ready.batch_forwarded = true;
        self.ready.batch_finals += 1;
        self.ready.sent_after_command += 1;
    }

    /// A Query, Sync or FunctionCall went upstream: one more ReadyForQuery to come.
    pub(super) fn unit_forwarded(&mut self) {
        self.path_unit_forwarded();
        self.ready.inflight += 1;
        self.ready.unit_seq += 1;
        self.ready.batch_forwarded = false;
        self.ready.batch_finals = 0;
        let bytes = std::mem::take(&mut self.ready.current_unit_bytes);
        self.ready.unit_bytes.push_back(bytes);
        self.ready.inflight_bytes += bytes;
        if self.ready.inflight > self.cfg.max_pipeline_depth {
            self.fatal(
                sqlstate::TOO_MANY,
                "pgate: too many pipelined queries without reading their results",
            );
        } else if self.ready.inflight_bytes > self.cfg.max_pipeline_bytes {
            self.fatal(
                sqlstate::TOO_MANY,
                "pgate: too many bytes of pipelined queries without reading their results",
            );
        }
    }

    /// A unit was answered (or will never be): its bytes leave the pipeline.
    pub(super) fn unit_answered(&mut self, newest: bool) {
        let b = if newest {
            self.ready.unit_bytes.pop_back()
        } else {
            self.ready.unit_bytes.pop_front()
        };
        self.ready.inflight_bytes = self.ready.inflight_bytes.saturating_sub(b.unwrap_or(0));
    }
}
