"""Exceptions raised by mplog.

The hierarchy is short on purpose::

    MplogError                 base class for everything mplog raises itself
    ├── LockTimeout            the inter-process lock was not acquired in time
    │                          (also a TimeoutError)
    └── QueueFull              batched mode dropped records (overflow="drop")

Configuration mistakes raise the stdlib's ``ValueError`` / ``TypeError`` with a
message that quotes the offending value; errors of the operating system stay
``OSError`` and carry the path involved.  Every exception here pickles, so it can
cross a process boundary (a ``multiprocessing`` result, a pool error).
"""

from __future__ import annotations

__all__ = ["LockTimeout", "MplogError", "QueueFull", "ReentrantLogging"]


class MplogError(Exception):
    """Base class of the exceptions mplog raises itself.

    .. versionadded:: 0.1
    """


class ReentrantLogging(MplogError, RuntimeError):
    """A record was logged while the same thread was writing to the same log: from a
    ``__del__`` run by the garbage collector or a signal handler that interrupted the
    write.  That record is not written (waiting would deadlock); it goes to
    ``handleError``.

    :param path: the lock file this thread already held.

    .. versionadded:: 0.1
    """

    def __init__(self, path: str) -> None:
        super().__init__(
            f"a record was logged while this thread held {path} (from a __del__ or a "
            "signal handler that interrupted a write); it was not written"
        )
        self.path = path


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
