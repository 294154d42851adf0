"""Which processes have a log open, so that ``mode="w"`` starts one new file per fleet.

Every handler holds a *shared* ``flock`` on a second sidecar file (``.__app.open``
next to the lock file ``.__app.lock``) while it has the log open.  A handler opening
the log with ``mode="w"`` first tries to take that lock *exclusively*: it succeeds only
if no other process (and no other handler of this one) has the log open, and only then
truncates it; otherwise it appends, like every process that joins a running fleet.
The kernel drops the lock of a process that dies, so nothing goes stale, and a child
forked with the handler open shares its parent's (the lock belongs to the open file
description it inherits).  All of it happens under the writers' lock, so two openers
never decide at once.  See PROTOCOL.md, *Files and names* and *The writer's steps*.
"""

from __future__ import annotations

import contextlib
import os
import stat

from .permissions import FilePermissions

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no shared flock; mode="w" truncates
    fcntl = None  # type: ignore[assignment]

__all__ = ["Presence", "presence_path_for"]

_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO planted at the name must not block the open
)


def presence_path_for(lock_path: str) -> str:
    """``.__app.lock`` -> ``.__app.open``, in the same directory."""
    stem = lock_path[: -len(".lock")] if lock_path.endswith(".lock") else lock_path
    return stem + ".open"


class Presence:
    """This handler's shared lock on the presence file, held while it has the log open.

    :param path: the presence file (see :func:`presence_path_for`); created if missing.
    :param permissions: mode and owner of a newly created presence file.

    .. versionadded:: 0.1
    """

    def __init__(self, path: str, permissions: FilePermissions) -> None:
        self.path = path
        self.permissions = permissions
        self._fd: int | None = None

    @property
    def joined(self) -> bool:
        """True while this handler holds its shared lock (also in a forked child)."""
        return self._fd is not None

    def join(self) -> bool:
        """Take the shared lock (writers' lock held); return True if no other handler,
        in any process, had the log open: the caller may then start a new file."""
        if fcntl is None:  # pragma: no cover - Windows
            return True
        fd = self.permissions.open(self.path, _FLAGS)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{self.path} is not a regular file: remove it")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
            # Shared from here on: converting drops the exclusive lock first, but every
            # opener decides under the writers' lock, so none can slip in between.
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return alone

    def leave(self) -> None:
        """Let go of the shared lock (a child forked meanwhile keeps its own share)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
