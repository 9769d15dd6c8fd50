//! Handing freed heap memory back to the system once the calls that used
//! it are gone.
//!
//! glibc's malloc keeps what a burst of work freed in its heaps: a server
//! that held 10,000 open streams would keep that RSS long after they
//! closed. A thread of its own looks once a second; when no call is in
//! flight and the heaps hold more free memory than is worth a trim, and
//! that amount has changed since the last trim, it calls `malloc_trim`,
//! which returns the free pages. The trigger is the heap's own free
//! memory, not the count of calls: an HTTP/2 flood (a rapid reset, say)
//! makes the C core allocate and free streams that never become calls.
//! Never on a call's path, and never while calls are running, so it costs
//! the hot path nothing.
//!
//! `malloc_trim` hands back free pages inside free chunks, but not the free
//! top of a thread arena's heap: that shrinks only when it passes malloc's
//! trim threshold, which glibc raises to twice the largest block it ever
//! served with mmap and freed. One large header (the C core parses a
//! client's header block whole) lifts it to megabytes, and every arena may
//! then keep that much. [`fix_malloc_thresholds`] pins both thresholds, so
//! what an arena keeps stays small.

use std::thread;
use std::time::Duration;

use crate::calls::CallTracker;

const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Free heap memory below which a trim is not worth its walk of the heaps.
const WORTH_TRIMMING: usize = 4 << 20;

/// Starts the trimmer for the calls counted by `calls`. It lives as long
/// as the process (a detached thread that sleeps between looks).
pub fn spawn_trimmer(calls: CallTracker) {
    let spawned = thread::Builder::new()
        .name("fibonacci-trim".to_string())
        .spawn(move || {
            // The free memory the last trim left (free pages handed back
            // still count as free chunks): a trim is due when it changes.
            let mut free_after_trim = 0;
            loop {
                thread::sleep(CHECK_EVERY);
                let free = free_heap_bytes();
                if free > WORTH_TRIMMING && free != free_after_trim && calls.in_flight() == 0 {
                    release_free_memory();
                    free_after_trim = free_heap_bytes();
                }
            }
        });
    // Without the thread the server still works; it only keeps its peak.
    if let Err(error) = spawned {
        log::warn!("cannot start the memory trimmer: {error}");
    }
}

/// Blocks from this size up are mmapped (and unmapped when freed)...
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 << 10;
/// ...and an arena's free top is handed back past this size. Both fixed,
/// which also stops glibc from raising them as it goes.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 1 << 20;

/// Pins glibc's mmap and trim thresholds (see the module's notes). Called
/// once, at start-up, before the threads that allocate.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn fix_malloc_thresholds() {
    for (parameter, value) in [
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ] {
        // SAFETY: mallopt only sets glibc's own tunables.
        if unsafe { libc::mallopt(parameter, value) } != 1 {
            log::warn!("cannot set malloc parameter {parameter} to {value}");
        }
    }
}

/// Nothing to fix outside glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn fix_malloc_thresholds() {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own heaps; 0 keeps no padding.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// Bytes in glibc's free chunks, every arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn free_heap_bytes() -> usize {
    // SAFETY: mallinfo2 only reads glibc's own statistics.
    unsafe { libc::mallinfo2() }.fordblks
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn free_heap_bytes() -> usize {
    0
}
