//! Handing freed heap memory back to the system once the calls that used
//! it are gone.
//!
//! glibc's malloc keeps what a burst of calls freed in its heaps: a server
//! that held 10,000 open streams would keep that RSS long
//! after they closed. A thread of its own looks once a second; when the
//! server has gone quiet (no call in flight) after being busy, it calls
//! `malloc_trim`, which returns the free pages. Never on a call's path, and
//! never while calls are running, so it costs the hot path nothing.

use std::thread;
use std::time::Duration;

use crate::calls::CallTracker;

const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Starts the trimmer for the calls counted by `calls`. It lives as long
/// as the process (a detached thread that sleeps between looks).
pub fn spawn_trimmer(calls: CallTracker) {
    let spawned = thread::Builder::new()
        .name("fibonacci-trim".to_string())
        .spawn(move || {
            let mut trimmed_at = calls.started();
            loop {
                thread::sleep(CHECK_EVERY);
                let started = calls.started();
                if started != trimmed_at && calls.in_flight() == 0 {
                    release_free_memory();
                    trimmed_at = started;
                }
            }
        });
    // Without the thread the server still works; it only keeps its peak.
    if let Err(error) = spawned {
        log::warn!("cannot start the memory trimmer: {error}");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own heaps; 0 keeps no padding.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
