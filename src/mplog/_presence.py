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

The file also records the rotation settings of the fleet: the handler that finds
itself alone writes its own (``maxBytes=... backupCount=... when=... interval=...``),
and every later one compares: processes on one log with different settings rotate
by the smallest size and the earliest time without a word, so a mismatch is
reported, once per handler, naming both.  A new fleet (everyone gone) starts afresh.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Callable

from ._permissions import FilePermissions

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
    :param settings: this handler's rotation settings, as one line of text.

    .. versionadded:: 0.1
    """

    def __init__(
        self, path: str, permissions: FilePermissions, settings: Callable[[], str]
    ) -> None:
        self.path = path
        self.permissions = permissions
        self.settings = settings
        #: The settings the fleet recorded, if they differ from ours (set by :meth:`join`).
        self.mismatch: str | None = None
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
            self.mismatch = self._record(fd, alone)
            # Shared from here on: converting drops the exclusive lock first, but every
            # opener decides under the writers' lock, so none can slip in between.
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return alone

    def _record(self, fd: int, alone: bool) -> str | None:
        """Alone: record our settings for the fleet.  Else: return the recorded ones if
        they differ from ours (nothing recorded, or unreadable: nothing to compare)."""
        ours = self.settings()
        if alone:
            os.ftruncate(fd, 0)
            os.pwrite(fd, ours.encode() + b"\n", 0)
            return None
        recorded = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        return recorded if recorded and recorded != ours else None

    def leave(self) -> None:
        """Let go of the shared lock (a child forked meanwhile keeps its own share)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
