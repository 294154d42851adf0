"""Running the calling thread at the lowest CPU priority: for the compressing thread.

Compressing a 10 MB backup takes a core for a fraction of a second.  On a machine
with few cores that core is taken from the processes that log, and a writer's
slowest calls (its p99.9) grow several times.  At the lowest priority the
compression uses only the CPU time that the writers leave.

On Linux a thread's nice value is its own (``setpriority`` on its native id
changes that thread, not the process), so :func:`lower_this_thread` in the
compressing thread leaves the threads that log untouched.  Nice 19, not
``SCHED_IDLE``: the scheduler still gives a nice-19 thread a small share of a
busy core (about 1.5% against one nice-0 thread), so compression on a fully
loaded machine is slowed, never stopped; an unprivileged thread cannot raise
its priority back, which is fine for a thread that only compresses.

Elsewhere (other systems, where ``setpriority`` would change the whole process)
and when the call fails (a seccomp filter, a missing ``get_native_id``), it does
nothing: compression then runs at the process's priority, as before.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

__all__ = ["LOWEST", "lower_this_thread"]

LOWEST = 19  # the highest nice value: the lowest priority


def lower_this_thread() -> None:
    """Set the calling thread's nice value to :data:`LOWEST` on Linux; else do nothing."""
    if not sys.platform.startswith("linux"):  # elsewhere setpriority changes the process
        return
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST)
