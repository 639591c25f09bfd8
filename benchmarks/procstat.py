"""A process's CPU seconds and scheduler state, read from /proc (Linux): the one reader of the load and
server benchmarks and of the fuzz driver's watchdog."""

from __future__ import annotations

import os

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
"""Clock ticks per second, the unit of /proc's CPU times."""


def proc_stat(pid: int) -> tuple[float, str] | None:
    """User + system CPU seconds of a process (all its threads, not its children) and its scheduler
    state (``R`` running or runnable, ``S`` sleeping, ``D`` waiting for the disk ...); None when the
    process is gone or there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
        return (int(fields[11]) + int(fields[12])) / TICKS, fields[0]
    except (OSError, ValueError, IndexError):
        return None
