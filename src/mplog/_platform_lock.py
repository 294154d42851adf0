"""The platform's exclusive file lock, one interface for POSIX and Windows.

On POSIX ``fcntl.flock`` does the work, and :data:`flock` is that function itself,
so a caller that binds it to a module global reaches the system call with no
Python frame in between (portalocker wraps the same primitive with more overhead
per call).  On Windows portalocker does the work, and :data:`flock` is a small
function with flock's signature and errors over it.

flock locks belong to an *open file description*: every descriptor that shares
it (a ``dup``, one inherited over ``fork``) shares the lock.
"""

from __future__ import annotations

import sys

__all__ = ["EX_NB", "UN", "flock", "lock_descriptor", "try_lock_descriptor"]

if sys.platform != "win32":
    import fcntl

    #: ``flock(fd, EX_NB)`` locks or raises :class:`BlockingIOError`; ``flock(fd, UN)`` unlocks.
    flock = fcntl.flock
    EX_NB, UN = fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN

    def try_lock_descriptor(fd: int) -> bool:
        """Lock *fd*'s file exclusively if nobody else holds it; return whether it did."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def lock_descriptor(fd: int) -> None:
        """Block until *fd*'s file is locked exclusively by this open file description."""
        fcntl.flock(fd, fcntl.LOCK_EX)

else:  # pragma: no cover - exercised on Windows only
    import portalocker

    def try_lock_descriptor(fd: int) -> bool:
        """Lock *fd*'s file exclusively if nobody else holds it; return whether it did."""
        try:
            portalocker.lock(fd, portalocker.LOCK_EX | portalocker.LOCK_NB)
        except portalocker.AlreadyLocked:
            return False
        return True

    def lock_descriptor(fd: int) -> None:
        """Block until *fd*'s file is locked exclusively by this open file description."""
        portalocker.lock(fd, portalocker.LOCK_EX)

    EX_NB, UN = 1, 0

    def flock(fd: int, operation: int) -> None:
        """flock's ``EX_NB`` and ``UN`` operations, with its :class:`BlockingIOError`."""
        if operation == UN:
            portalocker.unlock(fd)
        elif not try_lock_descriptor(fd):
            raise BlockingIOError(f"lock on descriptor {fd} is held")
