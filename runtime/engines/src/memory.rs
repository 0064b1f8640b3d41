//! Live-heap accounting per thread, so a Rhai call can be stopped when the
//! data it holds outgrows its budget, whatever route grew it.
//!
//! Rhai's own size checks count array items, map entries and string bytes,
//! but not map keys or what a function pointer carries; a script that builds
//! a map with long computed keys, or clones one tens of thousands of times
//! in one `pad`, passes every check. The allocator below counts the bytes
//! each thread has allocated and not yet freed; the Rhai progress hook reads
//! the count between operations and ends the call with
//! [`PolicyError::Memory`](moment_core::call::PolicyError::Memory) once the
//! call's share exceeds its budget. Rhai's size caps stay on, and bound what
//! one single operation can add before the next look.
//!
//! A binary that runs policies installs it around its allocator of choice:
//! `#[global_allocator] static A: Accounting<System> = Accounting(System);`.
//! Without it nothing is counted ([`installed`] says so, and the engines warn
//! at start), and only Rhai's caps hold.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

/// The allocator `A`, counting each thread's live bytes.
pub struct Accounting<A>(pub A);

thread_local! {
    /// Bytes allocated on this thread minus bytes freed on it. Memory freed
    /// on another thread than the one that allocated it makes the count
    /// drift, so only differences over a span of one thread's work mean
    /// anything.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // `try_with`: the allocator also runs while a thread's locals are torn down.
    let _ = LIVE.try_with(|live| live.set(live.get().wrapping_add(delta)));
}

/// Bytes this thread has allocated and not freed; compare two readings.
pub fn live_bytes() -> isize {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

/// Whether this process's allocator is an [`Accounting`] one.
pub fn installed() -> bool {
    let before = live_bytes();
    let probe = std::hint::black_box(vec![0u8; 4096]);
    let counted = live_bytes() - before >= 4096;
    drop(probe);
    counted
}

// SAFETY: every method forwards to `A` with the caller's own arguments and
// only adds bookkeeping that neither allocates nor unwinds.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for Accounting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let ptr = unsafe { self.0.alloc(layout) };
        if !ptr.is_null() {
            note(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { self.0.alloc_zeroed(layout) };
        if !ptr.is_null() {
            note(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which is `A`'s.
        unsafe { self.0.dealloc(ptr, layout) };
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        let new = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::{installed, live_bytes};

    #[test]
    fn counts_what_this_thread_holds() {
        assert!(installed());
        let before = live_bytes();
        let held = vec![0u8; 1 << 20];
        let during = live_bytes();
        drop(held);
        let after = live_bytes();
        assert!(during - before >= 1 << 20, "{before} → {during}");
        assert!(after - before < 1 << 10, "{before} → {after}");
    }
}
