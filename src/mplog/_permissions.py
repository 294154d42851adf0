"""Modes and ownership of the files mplog creates (log, lock, compressed backups).

concurrent-log-handler's meanings: ``chmod`` is the exact mode; ``umask`` gives
``0o666 & ~umask``; ``owner`` is a ``(user, group)`` pair.  Modes are octal ints
(``0o640``), octal strings (``"0640"``, ``"640"``, ``"0o640"``) or symbolic
(``"u=rw,g=r"``).  A mode must let the owner read the file and set no bit beyond
``0o777``: an int that does not (``chmod=640`` is the *decimal* 640, ``0o1200``, a
file its owner cannot read) is refused with the octal spelling that was meant.  A file is created
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
import errno
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, Union

from .exceptions import MplogError

__all__ = ["FilePermissions", "parse_mode", "private_directory"]

Owner = tuple[Union[str, int], Union[str, int]]

# Waits, in seconds, for a file another process just created to get its mode and owner
# (about a second in all): it sets them right after creating it.
_SETTLE = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.3)
# A file whose status changed longer ago than this (seconds) is not being created.
_FRESH = 2.0

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
            given = [repr(v) if isinstance(v, str) else f"{v:#o}" for v in (chmod, umask)]
            raise ValueError(f"chmod={given[0]} and umask={given[1]}: give only one")
        chmod, umask = parse_mode(chmod, "chmod"), parse_mode(umask, "umask")
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
            folder = os.path.dirname(path)
            if folder in _private:  # removed (a tmp cleaner): private again
                private_directory(folder, *_private[folder])
            else:
                os.makedirs(folder, exist_ok=True)
            return self._open(path, flags)

    def _open(self, path: str, flags: int) -> int:
        if not self.exact and self.owner is None:
            return os.open(path, flags, self.mode)
        try:
            fd = os.open(path, flags | os.O_EXCL, self.mode)
        except FileExistsError:
            return self._open_existing(path, flags)
        try:
            if self.exact:
                os.fchmod(fd, self.mode)
            if self.owner is not None:
                self._chown(fd, path, self.owner)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_existing(self, path: str, flags: int) -> int:
        """Open *path*, which exists.  Another user's process may have created it an
        instant ago and not yet given it the requested mode or owner (its umask narrows
        the creation, then it sets them): refused meanwhile, wait for that, briefly,
        rather than fail.  A refusal once the file has them is final."""
        for delay in _SETTLE:
            try:
                return os.open(path, flags, self.mode)
            except PermissionError:
                if self._settled(path):
                    raise
            time.sleep(delay)
        return os.open(path, flags, self.mode)

    def _settled(self, path: str) -> bool:
        """True if *path* has the requested mode and owner, or will not get them: it
        was last changed more than :data:`_FRESH` seconds ago (a misconfiguration,
        not a creation in progress: never worth a wait).  False if it is gone."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False  # removed meanwhile: try again
        if abs(time.time() - st.st_ctime) > _FRESH:
            return True
        if self.exact and stat.S_IMODE(st.st_mode) != self.mode:
            return False
        return self.owner is None or (st.st_uid, st.st_gid) == self.owner

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

    def apply_fd(self, fd: int, path: str, mode: int | None = None) -> None:
        """Give the existing file open on *fd* (named *path*: a custom compressor's
        output) the requested mode, or else *mode* if given, and the requested owner.

        Through the descriptor, never the name: in a directory others may write, the
        name may have become a symbolic link to a file elsewhere meanwhile."""
        if self.exact:
            mode = self.mode
        if mode is not None:
            os.fchmod(fd, mode)
        if self.owner is not None:
            self._chown(fd, path, self.owner)

    def _chown(self, fd: int, path: str, owner: tuple[int, int]) -> None:
        try:
            os.fchown(fd, *owner)
        except OSError as error:  # EPERM unless root: keep the file, report
            if self.report is None:
                raise
            self.report(path, error)


# The directories private_directory made: {path: (what it is, the fix)}.
_private: dict[str, tuple[str, str]] = {}


def private_directory(folder: str, what: str, fix: str) -> str:
    """Make *folder* (*what*, for the errors) a directory only this user may enter:
    create it mode 0700, or check that the one there is this user's (not a symbolic
    link) and set 0700; return it.  :meth:`FilePermissions.open` makes it so again
    if it is removed.

    :raises PermissionError: naming it and *fix*, if it is a symbolic link, not a
        directory, or another user's.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        kind = "a symbolic link" if os.path.islink(folder) else "not a directory"
        raise PermissionError(
            error.errno or errno.EACCES, f"{folder}, {what}, is {kind}; remove it, or {fix}"
        ) from error
    try:
        st = os.fstat(fd)
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise PermissionError(
                errno.EACCES, f"{folder}, {what}, belongs to user {st.st_uid}; remove it, or {fix}"
            )
        if stat.S_IMODE(st.st_mode) != 0o700:  # ours: nobody else may reach what is in it
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    _private[folder] = (what, fix)
    return folder


_MODE_FORMS = "an octal mode such as 0o640 (or the string '0640', '640' or 'u=rw,g=r')"
_UMASK_FORMS = "an octal umask such as 0o027 (or the string '027')"
_WHO = {"u": 0o700, "g": 0o070, "o": 0o007, "a": 0o777}
_WHAT = {"r": 0o444, "w": 0o222, "x": 0o111}


def parse_mode(value: int | str | None, name: str) -> int | None:
    """The permission bits of the ``chmod`` (*name* ``"chmod"``) or ``umask`` option.

    :raises ValueError: naming the value, for a form not understood, bits beyond
        ``0o777``, and a mode (or umask) that leaves the owner unable to read;
        for an int, with the octal spelling that was probably meant.

    .. versionadded:: 0.1
    """
    if value is None:
        return None
    forms = _MODE_FORMS if name == "chmod" else _UMASK_FORMS
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{name}={value!r}: expected {forms}")
    bits = value if isinstance(value, int) else _mode_string(value, name)
    problem = _mode_problem(bits, name)
    if problem is None:
        return bits
    if isinstance(value, str):
        raise ValueError(f"{name}={value!r} {problem}; expected {forms}")
    digits = str(value)
    if set(digits) <= set("01234567") and _mode_problem(int(digits, 8), name) is None:
        raise ValueError(
            f"{name}={value!r} is the decimal number {value}, which as a {name} is {value:#o} "
            f"and {problem}: write {name}=0o{digits} in Python, or {name}: '{digits}' in a "
            f"config file (YAML reads {name}: 0{digits} as octal too)"
        )
    raise ValueError(f"{name}={value!r} ({value:#o}) {problem}; expected {forms}")


def _mode_problem(bits: int, name: str) -> str | None:
    """What is wrong with *bits* as a chmod or umask, or None."""
    if not 0 <= bits <= 0o777:
        return "sets bits beyond 0o777"
    mode = bits if name == "chmod" else 0o666 & ~bits
    return None if mode & 0o400 else "leaves the owner unable to read the log"


def _mode_string(value: str, name: str) -> int:
    """ "0640", "640", "0o640" (octal), or "u=rw,g=r" (symbolic, absolute)."""
    text = value.strip()
    try:
        return int(text, 8)
    except ValueError:
        pass
    bits = 0
    for clause in text.split(","):
        who, equals, what = clause.partition("=")
        if not equals or not set(who) <= set(_WHO) or not set(what) <= set(_WHAT):
            forms = _MODE_FORMS if name == "chmod" else _UMASK_FORMS
            raise ValueError(f"{name}={value!r}: expected {forms}") from None
        scope = 0
        for letter in who or "a":
            scope |= _WHO[letter]
        for letter in what:
            bits |= _WHAT[letter] & scope
    return bits


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
    in_the_way = _file_in_the_way(failed or log_path) if error.errno in _NOT_A_DIR else None
    if in_the_way is not None:  # no permission fixes that
        message = (
            f"cannot log to {log_path}: {in_the_way} is a file, not a directory: "
            "move that file away, or log to another directory"
        )
    elif failed is not None and os.path.isdir(failed) and failed in (log_path, lock_path):
        what = "the log" if failed == log_path else f"its lock file {lock_path}"
        fix = (
            f"give a file in it, such as {os.path.join(log_path, 'app.log')}"
            if failed == log_path
            else "move that directory away, or choose another lock_file_directory="
        )
        message = f"cannot log to {log_path}: {what} is a directory: {fix}"
    elif failed == lock_path and lock_dir == log_dir:
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


# What opening (or creating the directories of) a path below a file fails with.
_NOT_A_DIR = (errno.ENOTDIR, errno.EEXIST)


def _file_in_the_way(path: str) -> str | None:
    """The deepest existing ancestor of *path*, if it is not a directory."""
    parent = os.path.dirname(path)
    while parent and not os.path.lexists(parent):
        if parent == os.path.dirname(parent):
            return None
        parent = os.path.dirname(parent)
    return parent if parent and not os.path.isdir(parent) else None
