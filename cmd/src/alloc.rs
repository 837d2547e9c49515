//! The process allocator: glibc's malloc until [`use_mimalloc`] is called, mimalloc (v3,
//! without transparent huge pages) afterwards.
//!
//! The API server allocates and frees many small objects per request (JSON values,
//! headers, buffers) from several threads, and glibc's arenas took a quarter of its CPU in
//! figure 6 (BENCHMARKS.md); mimalloc halves that. The node agent is mostly idle, and
//! there glibc with two arenas keeps ~7 MiB less resident (figure 10), so only `minik8s
//! server` switches. Blocks are freed by whichever allocator owns them (mimalloc's page
//! map tells), so memory allocated before the switch stays valid. SQLite and other C
//! code keep glibc's malloc either way.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

static MIMALLOC: AtomicBool = AtomicBool::new(false);

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (libmimalloc-sys 0.1.49, whose
/// own constants follow v2's numbering); checked by a test against its v3 default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// See the module docs.
pub struct Allocator;

fn mi_owns(ptr: *mut u8) -> bool {
    // SAFETY: a page-map lookup; any pointer value may be asked about.
    MIMALLOC.load(Ordering::Relaxed) && unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr.cast()) }
}

// SAFETY: every call is forwarded to one of two allocators that uphold `GlobalAlloc`'s
// contract, and a block is always freed or resized by the allocator that made it.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MIMALLOC.load(Ordering::Relaxed) {
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if MIMALLOC.load(Ordering::Relaxed) {
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mi_owns(ptr) {
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if mi_owns(ptr) {
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        } else {
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

/// Switches new allocations to mimalloc and returns freed memory to the OS after 20 ms
/// instead of its default second, so an idle server does not keep the peak of its last
/// burst resident (figure 1); `MIMALLOC_PURGE_DELAY` in the environment overrides that.
pub fn use_mimalloc() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one allocator option; mimalloc reads it on later purges.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 20) };
    }
    switch();
}

fn switch() {
    MIMALLOC.store(true, Ordering::Relaxed);
}

/// Returns what the allocators hold free to the OS (both keep freed memory for reuse;
/// after an informer's initial list or a large LIST response that is the peak).
pub fn release_free_memory() {
    if MIMALLOC.load(Ordering::Relaxed) {
        // SAFETY: collects this thread's free pages and purges what is due.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe in glibc.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is mimalloc v3's `mi_option_purge_delay`: its default is 1000 ms
    /// (a v2 build or a renumbering would read another option here).
    #[test]
    fn purge_delay_option_is_v3s() {
        // SAFETY: reads one allocator option.
        let v = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(v, 1000);
    }

    /// Blocks made by either allocator are freed and resized by their owner across the
    /// switch.
    #[test]
    fn blocks_survive_the_switch() {
        let before: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 16 + i * 40]).collect();
        let mut grown = vec![7u8; 100];
        switch();
        let after: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 16 + i * 40]).collect();
        grown.resize(1 << 20, 1);
        assert_eq!(grown[99], 7);
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            assert_eq!(a, b, "block {i}");
        }
        assert!(after.iter().all(|v| mi_owns(v.as_ptr() as *mut u8)));
        assert!(!mi_owns(before[0].as_ptr() as *mut u8));
        drop(before);
        drop(after);
    }
}
