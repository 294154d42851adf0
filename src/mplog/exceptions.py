"""Exceptions raised by mplog.

The hierarchy is short on purpose::

    MplogError                 base class for everything mplog raises itself
    ├── LockTimeout            the inter-process lock was not acquired in time
    │                          (also a TimeoutError)
    ├── LockFileConflict       two logs would share one lock file (also a ValueError)
    ├── ReentrantLogging       a record logged while this thread was inside the handler
    └── QueueFull              batched mode dropped records (overflow="drop")

Configuration mistakes raise the stdlib's ``ValueError`` / ``TypeError`` with a
message that quotes the offending value; errors of the operating system stay
``OSError`` and carry the path involved.  Every exception here pickles, so it can
cross a process boundary (a ``multiprocessing`` result, a pool error).
"""

from __future__ import annotations

__all__ = ["LockFileConflict", "LockTimeout", "MplogError", "QueueFull", "ReentrantLogging"]


class MplogError(Exception):
    """Base class of the exceptions mplog raises itself.

    .. versionadded:: 0.1
    """


class ReentrantLogging(MplogError, RuntimeError):
    """A record was logged while the same thread was inside the same handler (writing,
    waiting for the lock, rotating, closing): from a ``__del__`` run by the garbage
    collector or a signal handler that interrupted it.  In sync mode that record is
    not written (waiting would deadlock); it goes to ``handleError``.  So does one
    logged (by a ``__del__``) in one of mplog's threads while it holds a lock that the
    thread holding the writers' lock may wait for.

    :param path: the lock file of the log this thread was already inside.

    .. versionadded:: 0.1
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:
        return (
            f"a record was logged while this thread was inside the handler of {self.path}, "
            "or held a lock its writers may wait for (from a __del__ or a signal handler "
            "that interrupted it); it was not written"
        )


class LockFileConflict(MplogError, ValueError):
    """Two logs would share one lock file (``logs/app`` and ``logs/app.log`` both use
    ``.__app.lock``, as do logs with one name under a common ``lock_file_directory``):
    they would share their rotation state, so mplog refuses.

    :param log: the log being set up.
    :param lock: the lock file it would use.
    :param other: the log that lock file already serves.

    .. versionadded:: 0.1
    """

    def __init__(self, log: str, lock: str, other: str) -> None:
        super().__init__(log, lock, other)
        self.log, self.lock, self.other = log, lock, other

    def __str__(self) -> str:
        return (
            f"cannot log to {self.log!r}: its lock file {self.lock!r} already serves the log "
            f"{self.other!r}, and two logs cannot share one lock file; give one of them its own "
            "lock_file_directory= (or another file name), or, if the other log is no longer "
            "written, delete that lock file"
        )


class LockTimeout(MplogError, TimeoutError):
    """The lock file could not be locked within *timeout* seconds.

    :param path: the lock file that stayed locked.
    :param timeout: how long mplog waited, in seconds.

    .. versionadded:: 0.1
    """

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(path, timeout)
        self.path = path
        self.timeout = timeout

    def __str__(self) -> str:
        return f"could not lock {self.path!r} within {self.timeout:g} s (lock_timeout)"


class QueueFull(MplogError):
    """Batched mode's queue was full and records were dropped (``overflow="drop"``).

    Reported through ``Handler.handleError`` once per episode, never raised
    into the application.

    .. versionadded:: 0.1
    """
