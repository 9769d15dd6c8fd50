//! The server's limit on open files, set to what its connection cap needs.
//!
//! Every connection is a file descriptor, and a shell's soft limit is
//! often 1,024, far below the hard limit. A server left at the soft limit
//! is taken down by anyone who opens that many idle connections: past it,
//! the C core cannot accept, and every new client waits in the listen
//! backlog behind the idle ones until its deadline (docs/hardening.md,
//! "Idle connections by the thousand"). So the server sets its soft limit at start-up to what its
//! connection cap (`--max-connections`) needs, and the files it keeps
//! besides, up to the hard limit.
//!
//! Not simply to the hard limit, as Go's runtime does: the C core accepts
//! as fast as connections come and closes those past the cap afterwards,
//! and under a flood of connections opened and reset it held every
//! descriptor the limit allowed (20,000 on a test machine) and kept the
//! poller's state of each for reuse, tens of megabytes. The soft limit
//! bounds the descriptors, and with them that memory.

/// Sets the soft limit on open files to `wanted`, or to the hard limit if
/// that is lower, up or down. Returns the limit now in force, or why it
/// could not be read or set (the server then runs with what it has).
pub fn set_soft_limit(wanted: u64) -> std::io::Result<u64> {
    let limit = read_limit()?;
    let soft = wanted.min(limit.rlim_max);
    if soft != limit.rlim_cur {
        let set = libc::rlimit {
            rlim_cur: soft,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &set) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(soft)
}

/// The limit on open files in force now (the soft one), `u64::MAX` if
/// there is none.
pub fn current_limit() -> std::io::Result<u64> {
    read_limit().map(|limit| limit.rlim_cur)
}

fn read_limit() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}
