//! A provided-buffer ring: the worker's receive buffers, lent to the kernel. A multishot
//! receive takes one buffer per completion ("the kernel picks a buffer … and the CQE
//! tells which", io_uring_register_buf_ring(3)); the worker reads it, hands the bytes to
//! the session and gives the buffer back at once. So an idle connection holds no receive
//! buffer at all, and the worker's receive memory is `count × size`, whatever the number
//! of connections.
//!
//! What this module must never do: give the kernel a buffer the worker still reads, or
//! let the memory go while the ring can still write into it (the owner drops the ring
//! first).

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;
use memmap2::MmapMut;

pub(super) struct BufRing {
    /// The ring of entries the kernel reads (page aligned, `count` × 16 bytes).
    entries: MmapMut,
    /// The buffers themselves: buffer `bid` is `size` bytes at `bid × size`.
    slab: MmapMut,
    count: u16,
    size: usize,
    /// The producer cursor: entries below it are the kernel's.
    tail: Cell<u16>,
    pub(super) group: u16,
}

impl BufRing {
    /// Registers `count` buffers of `size` bytes as group `group` of `ring`. `count` is a
    /// power of two ≤ 32768.
    pub(super) fn new(ring: &IoUring, count: u16, size: usize, group: u16) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 1 << 15 {
            return Err(io::Error::other(
                "buffer count must be a power of two ≤ 32768",
            ));
        }
        let entries = MmapMut::map_anon(count as usize * std::mem::size_of::<BufRingEntry>())?;
        let slab = MmapMut::map_anon(count as usize * size)?;
        let r = BufRing {
            entries,
            slab,
            count,
            size,
            tail: Cell::new(0),
            group,
        };
        for bid in 0..count {
            r.give(bid);
        }
        r.publish();
        // SAFETY: both maps live in `self` and the owner (the worker) drops the ring
        // before them (its fields are declared in that order), so the addresses the kernel
        // holds stay valid for as long as it may use them.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                r.entries.as_ptr() as u64,
                count,
                group,
                0,
            )?;
        }
        Ok(r)
    }

    /// The bytes a completion put in buffer `bid`.
    pub(super) fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = (bid as usize % self.count as usize) * self.size;
        // SAFETY: the range lies inside the slab; the kernel filled this buffer and will
        // not write it again before `recycle` (which needs `&mut self`, so this borrow has
        // ended for the caller's use). A slice over the whole slab would alias buffers
        // the kernel is writing.
        unsafe { std::slice::from_raw_parts(self.slab.as_ptr().add(start), len.min(self.size)) }
    }

    /// Buffer `bid` is read (the caller holds no slice of it any more): the kernel may
    /// fill it again.
    pub(super) fn recycle(&self, bid: u16) {
        self.give(bid % self.count);
        self.publish();
    }

    fn give(&self, bid: u16) {
        let addr = self.slab.as_ptr() as u64 + bid as u64 * self.size as u64;
        let tail = self.tail.get();
        let idx = (tail & (self.count - 1)) as usize;
        let base = self.entries.as_ptr().cast::<BufRingEntry>().cast_mut();
        // SAFETY: `idx < count`, so the entry lies inside the map; entries at and above
        // the tail are not the kernel's until `publish`, and this worker is the ring's one
        // writer (the type is not Sync), so nothing else reads or writes this one now.
        let e = unsafe { &mut *base.add(idx) };
        e.set_addr(addr);
        e.set_len(self.size as u32);
        e.set_bid(bid);
        self.tail.set(tail.wrapping_add(1));
    }

    fn publish(&self) {
        let base = self.entries.as_ptr().cast::<BufRingEntry>();
        // SAFETY: the tail is the `resv` field of the first entry, inside the map, 2-byte
        // aligned (the map is page aligned); the kernel only reads it, and a release store
        // makes the entries written before it visible first.
        let tail = unsafe { &*(BufRingEntry::tail(base) as *const AtomicU16) };
        tail.store(self.tail.get(), Ordering::Release);
    }
}
