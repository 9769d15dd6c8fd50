//! The shutdown signal: SIGINT (Ctrl-C) or SIGTERM (what `kill`, systemd and
//! Kubernetes send), and nothing else.

use std::io;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Installs the handlers. Do this before the server starts, so a signal
/// that arrives during start-up is not lost (nor fatal).
pub fn listen() -> io::Result<Signals> {
    Signals::new([SIGINT, SIGTERM])
}

/// Blocks until SIGINT or SIGTERM arrives and returns its name.
pub fn wait(signals: &mut Signals) -> &'static str {
    for signal in signals.forever() {
        match signal {
            SIGINT => return "SIGINT",
            SIGTERM => return "SIGTERM",
            _ => continue,
        }
    }
    // `forever` ends only if the handle is closed, which nothing here does.
    "signal handler closed"
}
