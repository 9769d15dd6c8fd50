//! The server's limit on open files, raised to what the system allows.
//!
//! Every connection is a file descriptor, and a shell's soft limit is
//! often 1,024, far below the hard limit. A server left at the soft limit
//! is taken down by anyone who opens that many idle connections: past it,
//! the C core cannot accept, and every new client waits in the listen
//! backlog behind the idle ones until its deadline (README, "Hard to
//! break"). So the server raises its soft limit to the hard one at
//! start-up, as Go's runtime does for every Go server; what the system
//! allows beyond that is the operator's to set.

/// Raises the soft limit on open files to the hard limit. Returns the limit
/// now in force, or why it could not be read or raised (the server then
/// runs with what it has).
pub fn raise_to_hard_limit() -> std::io::Result<u64> {
    let mut limit = read_limit()?;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
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
