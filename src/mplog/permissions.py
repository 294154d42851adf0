"""Modes and ownership of the files mplog creates (log, lock, compressed backups).

concurrent-log-handler's meanings: ``chmod`` is the exact mode; ``umask`` gives
``0o666 & ~umask``; ``owner`` is a ``(user, group)`` pair.  A file is created
with a mode no wider than requested (the process umask can only narrow it) and
then set to the exact mode, so it never exists, even briefly, with more access.
Rotated files keep their mode (they are renamed); a compressed backup gets the
requested mode, or without one, the mode of the file it compresses.

A failed ``chown`` (only root may give files away) does not stop logging: the
file is kept with the process's own ids and the failure is reported through
:attr:`FilePermissions.report` (the handler reports it once).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, Union

from .exceptions import MplogError

__all__ = ["FilePermissions"]

Owner = tuple[Union[str, int], Union[str, int]]

_EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL
_EXCLUSIVE |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


@dataclass
class FilePermissions:
    """Normalized permission options; build with :meth:`parse`."""

    mode: int = 0o666
    exact: bool = False
    owner: tuple[int, int] | None = None
    #: called as ``report(path, error)`` when a chown fails; the file is kept.
    report: Callable[[str, OSError], None] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(
        cls,
        chmod: int | str | None = None,
        umask: int | str | None = None,
        owner: Owner | None = None,
    ) -> FilePermissions:
        """Validate the options; errors name the bad value."""
        if chmod is not None and umask is not None:
            raise ValueError(f"chmod={chmod:#o} and umask={umask:#o}: give only one")
        chmod, umask = _octal(chmod, "chmod"), _octal(umask, "umask")
        for name, value in (("chmod", chmod), ("umask", umask)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777
            ):
                raise ValueError(f"{name}={value!r}: expected permission bits such as 0o640")
        resolved = None if owner is None else _resolve_owner(owner)
        if chmod is not None:
            return cls(chmod, True, resolved)
        if umask is not None:
            return cls(0o666 & ~umask, True, resolved)
        return cls(owner=resolved)

    def open(self, path: str, flags: int) -> int:
        """``os.open`` *path* with *flags* (which include O_CREAT), applying the options
        to the file if this call created it.

        A missing (or since removed) directory is created, so logging recovers by
        itself once the path is writable again.
        """
        try:
            return self._open(path, flags)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return self._open(path, flags)

    def _open(self, path: str, flags: int) -> int:
        if not self.exact and self.owner is None:
            return os.open(path, flags, self.mode)
        try:
            fd = os.open(path, flags | os.O_EXCL, self.mode)
        except FileExistsError:
            return os.open(path, flags, self.mode)
        try:
            if self.exact:
                os.fchmod(fd, self.mode)
            if self.owner is not None:
                self._chown(fd, path, self.owner)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def create_like(self, path: str, source: os.stat_result) -> int:
        """Create *path* (which must not exist) for writing, as a copy of the file
        described by *source* would be: the requested mode and owner, or else
        the source's mode (and, for root, the source's owner)."""
        mode = self.mode if self.exact else stat.S_IMODE(source.st_mode)
        fd = os.open(path, _EXCLUSIVE, mode & 0o600)  # no wider than asked, even briefly
        try:
            os.fchmod(fd, mode)
            if self.owner is not None:
                self._chown(fd, path, self.owner)
            elif hasattr(os, "geteuid") and os.geteuid() == 0:
                with contextlib.suppress(OSError):  # best effort (root_squash on NFS)
                    os.fchown(fd, source.st_uid, source.st_gid)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def apply(self, path: str) -> None:
        """Give an existing file (a custom compressor's output) the requested mode and owner."""
        if self.exact:
            os.chmod(path, self.mode)
        if self.owner is not None:
            try:
                os.chown(path, *self.owner)
            except OSError as error:
                if self.report is None:
                    raise
                self.report(path, error)

    def _chown(self, fd: int, path: str, owner: tuple[int, int]) -> None:
        try:
            os.fchown(fd, *owner)
        except OSError as error:  # EPERM unless root: keep the file, report
            if self.report is None:
                raise
            self.report(path, error)


def _octal(value: int | str | None, name: str) -> int | None:
    """Config files often spell modes as strings: "0640" or "0o640"."""
    if not isinstance(value, str):
        return value
    try:
        return int(value, 8)
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected permission bits such as 0o640") from None


def _resolve_owner(owner: Owner) -> tuple[int, int]:
    try:
        user, group = owner
    except (TypeError, ValueError):
        raise ValueError(f"owner={owner!r}: expected a (user, group) pair") from None
    try:
        import grp
        import pwd
    except ImportError:  # pragma: no cover - Windows
        raise ValueError(f"owner={owner!r}: file ownership is not supported here") from None
    try:
        uid = user if isinstance(user, int) else pwd.getpwnam(user).pw_uid
        gid = group if isinstance(group, int) else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"owner={owner!r}: no such user or group") from None
    return uid, gid


@contextlib.contextmanager
def explained_open_errors(log_path: str, lock_path: str) -> Iterator[None]:
    """Re-raise an ``OSError`` from opening *log_path* or *lock_path* explained
    (see :func:`explain_open_error`), chained to the original."""
    try:
        yield
    except MplogError:  # LockTimeout is an OSError too, and says what it is already
        raise
    except OSError as error:
        raise explain_open_error(error, log_path, lock_path) from error


def explain_open_error(error: OSError, log_path: str, lock_path: str) -> OSError:
    """Return *error* (from opening the log or its lock file) as an error that names
    the log, what mplog needs there, and the fix.

    A bare ``Permission denied: '/var/log/app/.__app.lock'`` names only the hidden
    lock file, although the cause is usually the directory.  The result keeps the
    errno, so it is still a :class:`PermissionError`, :class:`FileNotFoundError`...

    .. versionadded:: 0.1
    """
    failed = os.path.abspath(os.fspath(error.filename)) if error.filename else None
    log_dir, lock_dir = os.path.dirname(log_path), os.path.dirname(lock_path)
    reason = error.strerror or str(error)
    if failed == lock_path and lock_dir == log_dir:
        message = (
            f"cannot log to {log_path}: {reason} creating its lock file {lock_path}. "
            f"mplog needs to create its lock file (and rename files for rotation) in {log_dir}: "
            f"give this user write permission on {log_dir}, or put the lock file in a "
            "writable directory with lock_file_directory= (enough for a log that is not rotated)"
        )
    elif failed == lock_path:
        message = (
            f"cannot log to {log_path}: {reason} creating its lock file {lock_path}: "
            f"give this user write permission on {lock_dir}, or choose another "
            "lock_file_directory="
        )
    elif failed is not None and failed != log_path and (log_path + os.sep).startswith(failed):
        message = (
            f"cannot log to {log_path}: {reason} creating the directory {failed}: "
            "create it with write permission for this user, or log to a directory that exists"
        )
    else:
        message = (
            f"cannot open the log file {log_path}: {reason}: mplog needs to open it for "
            f"appending (and, to rotate, to rename files in {log_dir}): give this user write "
            "permission on it, or choose another file"
        )
    return OSError(error.errno, message)  # no filename: str() would append it once more
