"""The lock file itself: its name, its descriptors, its header's claim, and its defence.

The sidecar is never renamed or deleted by mplog, so every process that opens
it, now or later, locks the same inode.  Its header holds the state the writers
share (:mod:`mplog._header`).  Other programs may delete, replace or truncate it,
and another log's handler may claim it: :class:`LockFile` notices and recovers
(:meth:`LockFile.revalidate` at each path check and before each rotation; an orphan
left open by processes that still use a deleted lock file is adopted when a new
one is created), carrying the shared state over (PROTOCOL.md, sections 2.3-2.4).

:class:`mplog._lock.InterProcessLock` adds the locking to it: threads, timeout, contention.
"""

from __future__ import annotations

import abc
import contextlib
import os
import stat
import tempfile
import time

from ._header import HEADER_SIZE, SharedState, owner_key
from ._permissions import FilePermissions, private_directory
from ._platform_lock import UN, flock
from .exceptions import LockFileConflict

__all__ = [
    "LockFile",
    "find_deleted",
    "is_special_file",
    "lock_path_for",
    "private_lock_directory",
]

_OPEN_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_BINARY", 0)
)
# An empty lock file older than this was made by a program that does not write
# mplog's header (concurrent-log-handler): see LockFile.foreign.
_FOREIGN_AGE = 2.0


class LockFile(abc.ABC):
    """The sidecar lock file of one log, as one process sees it: the descriptor it
    locks, the shared state in its header, and the repairs when either goes wrong.

    Every method that reads or writes the header runs with the lock held; taking
    the lock is the subclass's :meth:`_lock_fd`.
    """

    def __init__(
        self,
        path: str,
        permissions: FilePermissions | None = None,
        log_path: str | None = None,
        direct_io: bool = False,
    ) -> None:
        self.path = path
        self.permissions = permissions or FilePermissions()
        self.log_path = log_path or path
        self._log_key: int | None = None if log_path is not None else 0  # 0: claims nothing
        self._fd: int | None = None
        self.direct_io = direct_io and hasattr(os, "O_DIRECT")
        self._shared: SharedState | None = None
        self._created = False  # the lock file was new (empty) when we opened it
        #: True once this lock file was found made by a program that does not write
        #: mplog's header (concurrent-log-handler); the handler reports it to the others.
        self.foreign = False

    @abc.abstractmethod
    def _lock_fd(self, fd: int) -> None:
        """Lock *fd* as the lock's own descriptor would be (same timeout)."""

    def _open(self) -> int:
        fd = self.permissions.open(self.path, _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if st.st_size == 0 and time.time() - st.st_mtime > _FOREIGN_AGE:
                self.foreign = True  # mplog grows its lock files at once; this one is old
            self._created = st.st_size == 0 and not self.foreign
            if st.st_size < HEADER_SIZE:
                # Growing is safe without the lock: it never shortens a header
                # another process may have written meanwhile.
                os.ftruncate(fd, HEADER_SIZE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def _attach(self, fd: int) -> SharedState:
        """Read the header of the lock file just locked; claim it for our log."""
        shared = SharedState(self._state_fd(fd))
        try:
            key = self._key_of_log(fresh=True)  # the directory may have been replaced
            other = shared.claim(self.log_path, key)
            if other is not None and _real(other) == _real(self.log_path):
                # Our log, claimed from a directory since replaced (``rm -rf logs;
                # mkdir logs``): the writers still there move to our key at their
                # next check (revalidate); the state stays.
                shared.take_over(self.log_path, key)
            elif other is not None and not os.path.exists(other):
                shared.repair()  # another log's, and it is gone: nothing of it is ours
                shared.claim(self.log_path, key)
            elif other is not None:
                raise LockFileConflict(self.log_path, self.path, other)
        except BaseException:  # let go of everything: the next acquire starts afresh
            flock(fd, UN)
            if shared.fd != fd:
                os.close(shared.fd)
            self._close_fd()
            raise
        self._shared = shared
        return shared

    def _state_fd(self, fd: int) -> int:
        """The descriptor the shared state is read and written through: *fd*, or with
        :attr:`direct_io` a second one on the same file, opened ``O_DIRECT``."""
        if not self.direct_io:
            return fd
        try:
            return os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC)
        except OSError:
            return fd

    def _orphan(self) -> int | None:
        """We just created the lock file although the log already holds records: the
        old lock file may have been deleted while processes still use it.  Find it
        (Linux: through /proc) and lock it, before our new one, as :meth:`_move` does."""
        self._created = False
        try:
            if not os.path.getsize(self.log_path):
                return None
        except OSError:
            return None
        fd = find_deleted(self.path)
        if fd is not None:
            try:
                self._lock_fd(fd)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def _adopt(self, orphan: int, shared: SharedState) -> None:
        """Carry the deleted lock file's state over to our new one, and send its users
        through their checks (they move here at their next record); then let go of it."""
        try:
            old = SharedState(orphan)
            if old.valid(self._key_of_log()):
                shared.copy_from(old)
                shared.bump()
                old.bump()
        finally:
            flock(orphan, UN)
            os.close(orphan)

    def _key_of_log(self, fresh: bool = False) -> int:
        """The log's key in the header: its directory's inode and its name, the same
        through every mount of a shared filesystem (paths and device numbers differ
        from host to host), and the same for every path that names it locally.

        Kept from the last time, unless *fresh*: a directory removed and made again
        (``rm -rf logs && mkdir logs``) has a new inode, so the processes started
        since have a new key, and those still running must take it up too, or each
        side would take the other's header for a damaged one."""
        key = self._log_key
        if key is None or (fresh and key != 0):
            folder, name = os.path.split(os.path.abspath(self.log_path))
            try:
                st: os.stat_result | None = os.stat(folder)
            except FileNotFoundError:
                st = None
            if st is None or not stat.S_ISDIR(st.st_mode):
                # about to be created for the log anyway (a file in the way: FileExistsError)
                os.makedirs(folder, exist_ok=True)
                st = os.stat(folder)
            key = self._log_key = owner_key(f"{st.st_ino}/{name}")
        return key

    def revalidate(self) -> str | None:
        """Check that the path still names the locked file and that its header is
        intact (lock held); repair what is not.  Return what was wrong, or None.

        Deleted or replaced (``rm``, a tmp cleaner): move to the file the path
        names now, creating it if needed, and carry the shared state over unless
        processes started since already keep theirs there; both generations are
        bumped so that every writer, on either file, checks everything at its
        next record (and those on the old file move too).  Truncated or
        overwritten: write a fresh header.  Claimed with another key of our own
        log (its directory was removed and made again): take that key up, as
        every process does, so that nobody repairs what another just wrote.
        Another log's handler may have claimed a recreated file:
        :class:`LockFileConflict`.
        """
        fd, shared = self._fd, self._shared
        assert fd is not None, "acquire the lock first"
        assert shared is not None, "acquire the lock first"
        held = os.fstat(fd)
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        if (
            current is None
            or held.st_nlink == 0
            or (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino)
        ):
            if self._move(fd, shared):
                return f"lock file {self.path} was deleted or replaced; moved to the new one"
            return None
        if shared.valid(self._key_of_log()) or shared.valid(self._key_of_log(fresh=True)):
            return None  # intact (claimed with the key of a directory made again: ours now)
        shared.repair()
        shared.claim(self.log_path, self._key_of_log())
        return f"lock file {self.path} was damaged (truncated or overwritten); repaired"

    def _move(self, old_fd: int, shared: SharedState) -> bool:
        """Lock the file now at our path while still holding the old one, then let go
        of the old one (see :meth:`revalidate`).  No deadlock: only a process moving off
        the old file holds both, and nobody on the new file waits for the old one."""
        new_fd = self.permissions.open(self.path, _OPEN_FLAGS)
        held, now_named = os.fstat(old_fd), os.fstat(new_fd)
        if (held.st_dev, held.st_ino) == (now_named.st_dev, now_named.st_ino):
            os.close(new_fd)  # the same file after all: locking it again would wait for us
            return False
        try:
            if now_named.st_size < HEADER_SIZE:
                os.ftruncate(new_fd, HEADER_SIZE)
            self._lock_fd(new_fd)
            new = SharedState(new_fd)
            key = self._key_of_log(fresh=True)  # its directory may be a new one too
            if not new.valid(key):  # a fresh file: the state we know is the best
                other = new.claim(self.log_path, key)
                if other is not None and _real(other) != _real(self.log_path):
                    flock(new_fd, UN)
                    raise LockFileConflict(self.log_path, self.path, other)
                if other is not None:  # ours, claimed from a directory since replaced
                    new.take_over(self.log_path, key)
                new.copy_from(shared)  # the state, not the claim
            new.bump()
            shared.bump()
        except BaseException:
            os.close(new_fd)
            raise
        flock(old_fd, UN)
        os.close(old_fd)
        if shared.fd != old_fd:
            os.close(shared.fd)
        self._fd, shared.fd = new_fd, self._state_fd(new_fd)
        return True

    def discard(self) -> None:
        """Close the descriptors of a lock that no thread holds or waits for (its
        handler's construction failed), without taking any lock to do so."""
        self._close_fd()

    def _close_fd(self) -> None:
        """Close the descriptors (the lock file stays on disk for the other processes)."""
        fd, self._fd = self._fd, None
        shared, self._shared = self._shared, None
        if shared is not None and shared.fd != fd:  # the O_DIRECT descriptor
            with contextlib.suppress(OSError):
                os.close(shared.fd)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def find_deleted(path: str) -> int | None:
    """Open the deleted file last named *path* that some process still holds open
    (through ``/proc/<pid>/fd``, as far as this user may look); None if there is none."""
    target = f"{path} (deleted)"
    try:
        pids = [pid for pid in os.listdir("/proc") if pid.isdigit()]
    except OSError:  # no /proc: not Linux
        return None
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(folder)
        except OSError:
            continue
        for fd in fds:
            link = f"{folder}/{fd}"
            try:
                if os.readlink(link) == target:
                    # The /proc link must be followed: no O_NOFOLLOW here.
                    return os.open(link, _OPEN_FLAGS & ~(os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)))
            except OSError:
                continue
    return None


# -- naming ------------------------------------------------------------------------------


def _real(path: str) -> str:
    """*path* with its directory's symbolic links resolved (the file may not exist)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(folder), name)


def lock_path_for(log_path: str, directory: str | os.PathLike[str] | None) -> str:
    """concurrent-log-handler's lock name: ``app.log`` -> ``.__app.lock``, next to the log
    or in *directory* (created if missing).

    A device or pipe (``/dev/stdout``, ``/dev/null``, a FIFO; bpo-45401: never rotated)
    keeps its lock in this user's own directory (:func:`private_lock_directory`): its
    directory is usually not writable, and a shared one (the system temp directory)
    would let another user take the lock and hang every writer, or own it first so
    that this user could not open it.  So processes of one user exclude each other on
    it, whatever the size of a record, and users never wait for each other."""
    folder, name = os.path.split(log_path)
    if name.endswith(".log"):
        name = name[:-4]
    if directory is not None:
        folder = os.path.abspath(os.fspath(directory))
        os.makedirs(folder, exist_ok=True)
    elif is_special_file(log_path):
        folder = private_lock_directory()
    return os.path.join(folder, f".__{name}.lock")


def private_lock_directory() -> str:
    """``mplog-<uid>`` in the temp directory: made mode 0700 and checked to be a
    directory of this user's that nobody else may enter (not a symbolic link); made
    again so if a tmp cleaner removes it (:func:`~mplog._permissions.private_directory`).

    Raises :class:`PermissionError` naming it if another user made that name first
    (only on purpose: nothing else makes it), with the fix: ``lock_file_directory=``.
    """
    base = tempfile.gettempdir()
    if not hasattr(os, "geteuid"):  # pragma: no cover - Windows: per-user temp directories
        return base
    return private_directory(
        os.path.join(base, f"mplog-{os.geteuid()}"),
        "the directory for this user's lock files of devices and pipes",
        "give the handler a lock_file_directory= of its own",
    )


def is_special_file(path: str) -> bool:
    """True if *path* exists and is not a regular file (a device, FIFO or socket)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
