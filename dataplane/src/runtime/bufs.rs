//! A worker's buffers, lent to connections while they have bytes in flight and taken back
//! when they are idle, so that an idle connection holds no buffer and a busy one allocates
//! nothing after warm-up (the pool keeps what it got back, grown to working size).
//!
//! What it must never do: keep without bound (at most [`KEEP_COUNT`] buffers of at most
//! [`KEEP_MAX_BYTES`] each), or hand out a buffer that still holds another connection's
//! bytes (a buffer comes back cleared).

/// Buffers lent to connections while they have bytes in flight.
pub(super) struct Bufs {
    free: Vec<Vec<u8>>,
}

/// A buffer above this capacity is dropped rather than kept for the next connection.
const KEEP_MAX_BYTES: usize = 256 << 10;
const KEEP_COUNT: usize = 256;
/// Every new buffer's capacity (io_uring: a send takes at most this much at once, so
/// buffers never grow on the way out).
const NEW_BYTES: usize = 64 << 10;

impl Bufs {
    pub(super) fn new() -> Bufs {
        Bufs { free: Vec::new() }
    }
    /// Gives `v` a buffer if it has none.
    pub(super) fn lend(&mut self, v: &mut Vec<u8>) {
        if v.capacity() == 0 {
            *v = self
                .free
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(NEW_BYTES));
        }
    }
    /// Takes `v`'s buffer back (leaving `v` unallocated).
    pub(super) fn back(&mut self, v: &mut Vec<u8>) {
        if v.capacity() == 0 {
            return;
        }
        let mut v = std::mem::take(v);
        if v.capacity() <= KEEP_MAX_BYTES && self.free.len() < KEEP_COUNT {
            v.clear();
            self.free.push(v);
        }
    }
}
