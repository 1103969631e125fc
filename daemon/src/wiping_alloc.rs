//! A global allocator that wipes every heap block as it is freed, for the
//! processes that hold session keys (`mosh-daemon-worker`, `mosh-daemon`).
//!
//! Key-holding values wipe themselves when dropped, but Rust moves are
//! copies: a value moved out of a heap block (a task's future, a vector
//! that grew, a box that was unboxed) leaves its bytes in the block, and
//! the allocator hands the block back with them still there. Wiping at
//! `dealloc` covers every such copy at once, whichever code made it, so a
//! replaced key does not outlive its owner in freed memory. Growth goes
//! through allocate, copy and free (the trait's default `realloc`), so the
//! block left behind is wiped too.

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, with every block overwritten by zeros before it is
/// returned (`explicit_bzero`, which the compiler may not elide).
pub struct WipingAllocator;

// SAFETY: allocation is delegated unchanged to `System`, which upholds the
// `GlobalAlloc` contract; `dealloc` only writes zeros into the block it is
// about to free, which the caller owns and no longer uses.
unsafe impl GlobalAlloc for WipingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator with `layout`, so
        // `layout.size()` bytes from it are this block's, writable and
        // unused from now on; then it goes back to `System`, which made it.
        unsafe {
            libc::explicit_bzero(ptr.cast(), layout.size());
            System.dealloc(ptr, layout);
        }
    }
}
