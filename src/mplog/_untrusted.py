"""Names in a directory that other users may write: open them without trusting them.

Any name in a log directory may be a symbolic link, a directory, a FIFO, a device,
a hard link to a file elsewhere or another user's file, put there by accident or by
someone who can write the directory.  mplog acts on such a name only through a
descriptor it opened without following a symbolic link (``O_NOFOLLOW``) and without
waiting for a writer (``O_NONBLOCK``: a FIFO opens at once), and only after checking
with ``fstat`` what that descriptor is: :func:`open_checked`.  Changes then go
through the descriptor (``fchmod``, ``fchown``, ``os.utime`` on it), never through
the name, which may have been swapped meanwhile.

What is not what mplog expects raises :class:`UnexpectedFile`; the callers skip that
name, leave it alone and report it once: one odd name never
stops the work on the others.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["READ_FLAGS", "UnexpectedFile", "describe", "open_checked", "set_times"]

READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
)


class UnexpectedFile(OSError):
    """A name where mplog expected a regular file (of its own) holds something else;
    mplog left it alone.  ``filename`` is the name, ``strerror`` says what it is."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(errno.EINVAL, f"{what}, not a file mplog may use; left alone", path)


def describe(st: os.stat_result, *, single: bool = False, own: bool = False) -> str | None:
    """What the file described by *st* is, if it is not a regular file (with *single*:
    with one link; with *own*: owned by this process's user); None if it is one."""
    kind = stat.S_IFMT(st.st_mode)
    if kind != stat.S_IFREG:
        return _KINDS.get(kind, "a device")
    if single and st.st_nlink != 1:
        return f"a file with {st.st_nlink} links"
    if own and hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"a file of user {st.st_uid}"
    return None


_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def open_checked(
    path: str, flags: int = READ_FLAGS, *, single: bool = False, own: bool = False
) -> int:
    """Open *path*, which must be a regular file (with *single*: with one link, so not
    a hard link to a file elsewhere; with *own*: of this process's user), and return
    the descriptor; raise :class:`UnexpectedFile` if it is anything else.  A name that
    shows a device or a FIFO is never opened at all.

    *flags* must include ``O_NOFOLLOW`` and ``O_NONBLOCK`` (as :data:`READ_FLAGS`)."""
    what = describe(os.lstat(path), single=single, own=own)
    if what is not None and not what.startswith("a file"):
        raise UnexpectedFile(path, what)  # never open a device or a FIFO at all
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK):  # swapped for a symlink meanwhile
            raise UnexpectedFile(path, "a symbolic link") from error
        if error.errno == errno.EISDIR:
            raise UnexpectedFile(path, "a directory") from error
        raise
    try:
        what = describe(os.fstat(fd), single=single, own=own)
        if what is not None:
            raise UnexpectedFile(path, what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def set_times(fd: int, path: str, like: os.stat_result) -> None:
    """Give the file open on *fd* (named *path*) the access and modification times of
    *like*: through the descriptor (``futimens``), or where that is not supported, the
    name."""
    times = (like.st_atime_ns, like.st_mtime_ns)
    if os.utime in os.supports_fd:
        os.utime(fd, ns=times)
    else:  # pragma: no cover - Windows
        os.utime(path, ns=times)
