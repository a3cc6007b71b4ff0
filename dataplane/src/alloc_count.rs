//! Heap allocations made on the worker threads, counted: the hot path must make none in
//! steady state (a live test reads the count before and after 10,000 pipelined queries),
//! and the count is a metric (`pgate_worker_heap_allocations_total`) so that an operator
//! sees a regression too. The bytes held on the heap by the whole process are counted as
//! well (`pgate_heap_bytes`): a live test bounds what an idle session adds.
//!
//! Only threads that call [`count_this_thread`] (the workers) are counted: the audit
//! writer, the metrics endpoint and the reloader allocate as they please, off the path
//! of a statement. The binary installs [`Counting`] as its global allocator.
//!
//! What this module must never do: allocate (it runs inside the allocator), or change
//! what the system allocator returns.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static WORKER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Bytes the process holds on the heap (every thread): what an idle session costs shows
/// here first, before the allocator's own overhead and RSS.
static HEAP_BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// The system allocator, counting allocations and reallocations of counted threads.
pub struct Counting;

fn note() {
    if COUNTED.with(Cell::get) {
        WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// contract `System` upholds is the one callers get; the only addition is a relaxed atomic
// increment and a read of a const thread-local, neither of which allocates or unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        HEAP_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl's note).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        HEAP_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP_BYTES.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // Wrapping: a shrink subtracts (the sum over all calls stays exact).
        HEAP_BYTES.fetch_add(
            (new_size as u64).wrapping_sub(layout.size() as u64),
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Counts this thread's allocations from now on (called by each worker at its start).
pub fn count_this_thread() {
    COUNTED.with(|c| c.set(true));
}

/// Allocations and reallocations made on counted threads since start.
pub fn worker_allocations() -> u64 {
    WORKER_ALLOCATIONS.load(Ordering::Relaxed)
}

/// Bytes held on the heap by the whole process (requested sizes, without the allocator's
/// overhead).
pub fn heap_bytes() -> u64 {
    HEAP_BYTES.load(Ordering::Relaxed)
}
