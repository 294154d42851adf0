"""Claims on backups being compressed, and the compressors' temporary files.

A process compressing a backup *claims* it: it holds ``flock(LOCK_EX | LOCK_NB)``
on a descriptor of the backup, and on each temporary file it writes.  flock
belongs to the open file description, so a claim follows the file through
renames (``.1`` -> ``.2``) and ends when the descriptor is closed, a crash
included.  Other processes and threads skip a claimed backup, and retention
spares it (:func:`is_claimed`, :func:`discard`).

Temporary files are named ``.<log>.mplog-<pid>-<token>.tmp`` (:func:`temp_name`),
next to the backup; a callable compressor's output adds its suffix to that name.
:func:`clean_leftovers` removes those nobody holds any more: what crashes left,
name by name: a name like theirs that is not a regular file is left alone (and
returned, to be reported), and another user's file this user may not open is
left to its owner.  How a compression uses them is :mod:`mplog._compress_backup`'s;
the protocol every process follows is PROTOCOL.md's section 6.
"""

from __future__ import annotations

import contextlib
import os
import secrets

from ._lock import try_lock_descriptor
from ._untrusted import READ_FLAGS, UnexpectedFile, describe, open_checked

__all__ = [
    "READ_FLAGS",
    "after_fork_in_child",
    "clean_leftovers",
    "discard",
    "is_claimed",
    "open_to_lock",
    "remove_all",
    "temp_name",
    "temp_prefix",
]

# Locks held for a moment outside any compression (is_claimed, discard, clean_leftovers):
# closed in a forked child, which would otherwise keep the file claimed for its whole life.
_transient: set[int] = set()


def open_to_lock(path: str) -> int:
    """Open the regular file *path* so that it can be flock'ed exclusively: for writing
    where allowed, since NFS grants exclusive locks only on descriptors open for writing.
    Anything but a regular file raises :class:`~mplog._untrusted.UnexpectedFile`."""
    try:
        return open_checked(path, (READ_FLAGS & ~os.O_RDONLY) | os.O_RDWR)
    except PermissionError:
        return open_checked(path, READ_FLAGS)


def after_fork_in_child() -> None:
    """Close the descriptors of momentary locks inherited over fork (not releasing them)."""
    for fd in list(_transient):
        with contextlib.suppress(OSError):
            os.close(fd)
    _transient.clear()


def _claimed(path: str) -> bool | None:
    """True if a process (this one included) is compressing *path*, False if not,
    None if that cannot be told (the lock attempt failed)."""
    try:
        fd = open_to_lock(path)
    except OSError:
        return False  # gone, or not ours to open: nobody compresses it through us
    _transient.add(fd)
    try:
        return not try_lock_descriptor(fd)  # closing the descriptor releases it
    except OSError:
        return None
    finally:
        _transient.discard(fd)
        os.close(fd)


def is_claimed(path: str) -> bool:
    """True if a process (this one included) is compressing *path* right now, or if
    that cannot be told (retention then leaves the file for a later rotation)."""
    return _claimed(path) is not False


def discard(path: str, base: str) -> None:
    """Remove the backup *path* of the log *base*; if it is being compressed, rename it
    into the compressors' temporary names instead: the first sweep after the
    compression lets go of it removes it (and the compression, not finding its
    backup any more, drops its result)."""
    if _claimed(path) is not True:
        os.remove(path)
        return
    os.rename(path, temp_name(base, os.path.dirname(path)))


def temp_prefix(base: str, pid: int | None = None) -> str:
    """How the temporary names of the log *base* start: anyone's, or with *pid*, those
    of that process (see :func:`temp_name`)."""
    prefix = f".{os.path.basename(base)}.mplog-"
    return prefix if pid is None else f"{prefix}{pid}-"


def temp_name(base: str, directory: str = "") -> str:
    """A fresh temporary name for the log *base*, in *directory*: the one name every
    temporary file of mplog gets (a compression's output, an original set aside or a
    backup discarded while claimed, a callable compressor's input, a network probe).

    ``.<name>.mplog-<pid>-<hex8>.tmp`` (PROTOCOL.md, section 1): this process's id,
    which :func:`clean_leftovers` reads, and 8 random hexadecimal digits.  Every
    version since the first makes and recognizes exactly this form."""
    return os.path.join(directory, f"{temp_prefix(base, os.getpid())}{secrets.token_hex(4)}.tmp")


def clean_leftovers(directory: str, prefix: str) -> list[OSError]:
    """Remove temporary files of crashed compressions in *directory*: every name of a
    token whose ``.tmp`` nobody holds, or, without a ``.tmp``, whose process is gone.

    Each name on its own: what is not a regular file (a directory, symbolic link or
    FIFO named like them) is left alone and returned as an
    :class:`~mplog._untrusted.UnexpectedFile`, for the caller to report; a file this
    user may not open or remove (another user's compression, in a directory they
    share) is skipped, for its owner's sweeps."""
    try:
        entries = [e for e in os.listdir(directory or ".") if e.startswith(prefix)]
    except FileNotFoundError:
        return []
    odd: list[OSError] = []
    tokens: dict[str, list[str]] = {}
    for entry in entries:
        tokens.setdefault(entry[len(prefix) :].split(".", 1)[0], []).append(entry)
    for token, names in tokens.items():
        anchor = f"{prefix}{token}.tmp"
        if anchor in names:
            try:
                fd = open_to_lock(os.path.join(directory, anchor))
            except FileNotFoundError:
                continue
            except UnexpectedFile as error:
                odd.append(error)
                continue
            except PermissionError:
                continue  # another user's, in use (or theirs to clean up)
            _transient.add(fd)
            try:
                free = try_lock_descriptor(fd)  # nobody is using it
            finally:
                _transient.discard(fd)
                os.close(fd)
            if free:
                odd += remove_all(directory, names)
        elif not _process_alive(token):  # a callable's output without its input link
            odd += remove_all(directory, names)
    return odd


def remove_all(directory: str, names: list[str]) -> list[OSError]:
    """Remove the regular files *names* in *directory*, those already gone skipped;
    return an :class:`~mplog._untrusted.UnexpectedFile` for each name that is not a
    regular file (left alone), skipping files this user may not remove."""
    odd: list[OSError] = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            what = describe(os.lstat(path))
            if what is not None:
                odd.append(UnexpectedFile(path, what))
                continue
            os.remove(path)
        except (FileNotFoundError, PermissionError):
            continue
        except IsADirectoryError:  # swapped since the lstat
            odd.append(UnexpectedFile(path, "a directory"))
    return odd


def _process_alive(token: str) -> bool:
    try:
        pid = int(token.split("-", 1)[0])
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True
