"""What /proc says about a process (resident memory, threads, open files,
CPU time) and about the machine (load average), for the suite's memory
and resource checks and the benchmarks' CPU accounting."""

import os
from pathlib import Path


def resident_bytes(pid: int) -> int:
    """A process's resident memory (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def thread_count(pid: int) -> int:
    """A process's threads (Threads in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Threads for pid {pid}")


def open_file_count(pid: int) -> int:
    """A process's open file descriptors (its sockets among them)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far, user plus system, in
    seconds (clock-tick resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name, in parentheses, may itself hold spaces and ")".
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages, as /proc prints
    them ("0.52 0.58 0.59")."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
