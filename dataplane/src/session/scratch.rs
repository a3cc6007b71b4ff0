//! The classifier's buffers, owned by the worker and lent to one session for one
//! [`Session::handle_client`] call.
//!
//! A statement's facts live only while its message is decided: what outlives the message
//! (a stored statement's text, its audit summary, its search_path effect) is copied out
//! before the call returns. So one set of buffers per worker thread serves every session on
//! it, and an idle session holds none of their tens of KiB (issue: memory per idle
//! connection).
//!
//! What it must never do: let one session see another's facts. They are cleared when lent,
//! and a session that is not inside `handle_client` holds only empty, unallocated ones.

use pgate_core::facts::{Facts, FactsLimits};

use super::Session;

/// The buffers a worker lends: the facts of the message being decided, and those of a
/// stored statement decided again under a new table.
#[derive(Debug)]
pub struct Scratch {
    facts: Facts,
    recheck: Facts,
}

impl Scratch {
    /// Allocates both buffers once, at the classifier's limits.
    pub fn new(limits: FactsLimits) -> Self {
        Scratch {
            facts: Facts::new(limits),
            recheck: Facts::new(limits),
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new(FactsLimits::default())
    }
}

impl Session {
    /// Takes the worker's buffers for one call (emptied: nothing of the session that used
    /// them last is visible).
    pub(super) fn lend_scratch(&mut self, scratch: &mut Scratch) {
        std::mem::swap(&mut self.facts, &mut scratch.facts);
        std::mem::swap(&mut self.ready.recheck, &mut scratch.recheck);
        self.facts.clear();
        self.ready.recheck.clear();
    }

    /// Gives them back: the session keeps the unallocated placeholders.
    pub(super) fn return_scratch(&mut self, scratch: &mut Scratch) {
        std::mem::swap(&mut self.facts, &mut scratch.facts);
        std::mem::swap(&mut self.ready.recheck, &mut scratch.recheck);
    }
}
