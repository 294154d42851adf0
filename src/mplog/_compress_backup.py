"""Compressing one backup, safely against concurrent processes and crashes.

:meth:`BackupCompressor.compress` compresses one uncompressed backup of a log
(:mod:`mplog._compression_scheduler` decides when, in a background thread), following the
claim protocol of PROTOCOL.md, section 6, step 2: *claim* the backup (an
exclusive ``flock`` on a descriptor of it, which follows it through renames;
claimed elsewhere, it is skipped), *compress* from that descriptor into a
locked temporary file (:func:`mplog._claims.temp_name`), then *commit*,
holding the writers' lock only for two renames: the temporary file gets the
backup's current name (found by inode) plus the suffix, and the original is
renamed aside, to be removed once the lock is released, so that writers never
wait for a compression nor a removal.  A callable's output is only a name others
may have swapped: it is opened ``O_NOFOLLOW``, checked (a regular file of ours
with one link) and changed through that descriptor only, or refused
(:mod:`mplog._untrusted`).  With ``fsync=`` on, the directory is synced between
the two renames, so after a crash of the machine the archive's name is on disk
whenever the original's removal is.

A backup whose last record (its modification time) is younger than the delay
is left plain, and the caller is told when it is due.

A crash at any point leaves the complete original (the compressed file gets its
final name only when complete) or the complete archive under its final name.
The next sweep removes temporary files whose lock is free (an original set
aside included; :func:`mplog._claims.clean_leftovers`), compresses
originals still uncompressed, and, if a crash fell between the commit's two
renames, removes the original once its compressed copy is read back equal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Callable

from ._backups import Backup
from ._claims import open_to_lock, remove_all, temp_name
from ._compressors import Compressor, reader_for
from ._durability import sync_directory
from ._lock import InterProcessLock, lock_descriptor, try_lock_descriptor
from ._permissions import FilePermissions
from ._untrusted import UnexpectedFile, describe, open_checked, set_times

__all__ = ["BackupCompressor", "Locate"]

Locate = Callable[[tuple[int, int], str], "str | None"]

_CHUNK = 1 << 16


class BackupCompressor:
    """Compresses the backups of one log, one at a time; see the module docstring.

    :param base: the active log file's path.
    :param compressor: what to compress with.
    :param lock: the writers' lock, held only to commit.
    :param locate: ``locate(file_id, hint)`` returns the current name of the
        uncompressed backup with that ``(st_dev, st_ino)``, looking at *hint*
        first, or None (called with the writers' lock held).
    :param permissions: mode and owner of compressed files.
    :param debug: called with a message for each file compressed.
    :param durable: make each commit durable (``fsync=`` on): sync the directory
        after naming the archive, before the original goes.
    """

    def __init__(
        self,
        base: str,
        compressor: Compressor,
        lock: InterProcessLock,
        locate: Locate,
        permissions: FilePermissions,
        debug: Callable[[str], None],
        *,
        durable: bool = False,
    ) -> None:
        self.compressor = compressor
        self.durable = durable
        self._lock = lock
        self._locate = locate
        self._permissions = permissions
        self._debug = debug
        self._base = base
        self._fds: set[int] = set()  # claims and temporary files we hold open

    def after_fork_in_child(self) -> None:
        """In a forked child: let go of the parent's claims without releasing them.

        flock belongs to the open file description, which the child shares;
        closing the child's copies leaves the parent's locks in place, and a
        child that kept them would keep the files claimed after the parent is done.
        """
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = set()

    def compress(
        self, backup: Backup, compressed: list[Backup], delay: float, clock: Callable[[], float]
    ) -> float | None:
        """Compress the uncompressed *backup*, unless another process or thread is on it.

        If its last write is younger than *delay* seconds (by *clock*), leave it plain
        and return when it is due.  With *compressed* (its compressed forms: a crash
        fell between the commit's two renames), remove *backup* instead if the first
        of them reads back equal."""
        try:
            fd = open_to_lock(backup.path)  # UnexpectedFile: the caller reports it
        except (FileNotFoundError, PermissionError):
            # Renamed or pruned since the listing (the next sweep sees where), or
            # another user's that we may not read: left to its owner's sweeps.
            return None
        self._fds.add(fd)
        try:
            if not try_lock_descriptor(fd):
                return None  # another process or thread is on it
            source = os.fstat(fd)
            if source.st_nlink == 0 or not stat.S_ISREG(source.st_mode):
                return None  # removed (retention, or committed by someone) while we opened it
            file_id = (source.st_dev, source.st_ino)
            if compressed:
                self._finish_interrupted(fd, file_id, backup, compressed[0])
                return None
            due = source.st_mtime + delay
            if delay and due > clock():  # a shipper may still be reading it
                return due
            self._debug(f"compressing {backup.path} ({self.compressor.name})")
            if self.compressor.function is None:
                self._compress_builtin(fd, source, file_id, backup)
            else:
                self._compress_with_function(fd, source, file_id, backup)
            return None
        finally:
            self._fds.discard(fd)
            os.close(fd)

    def _compress_builtin(
        self, fd: int, source: os.stat_result, file_id: tuple[int, int], backup: Backup
    ) -> None:
        temp, temp_fd = self._temp(os.path.dirname(backup.path), source)
        try:
            self.compressor.compress_fd(fd, temp_fd, source.st_mtime)
            os.fsync(temp_fd)
            # after the last write: retention ages a compressed backup by its source's time
            set_times(temp_fd, temp, source)
            identity = _identity(os.fstat(temp_fd))
            self._commit(file_id, backup.path, temp, self.compressor.suffix, identity)
        finally:
            self._fds.discard(temp_fd)
            os.close(temp_fd)
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)  # gone if committed

    def _compress_with_function(
        self, fd: int, source: os.stat_result, file_id: tuple[int, int], backup: Backup
    ) -> None:
        """A user callable gets a stable name: a hard link (or copy) of the claimed file,
        named like our temporary files, so a crash leaves nothing behind for long.

        Its output is only a name in a directory others may write: it is opened without
        following a symbolic link nor waiting on a FIFO, must be a regular file of ours
        with one link, and is then changed through that descriptor only
        (:func:`~mplog._untrusted.open_checked`); anything else is refused, left alone."""
        function, suffix = self.compressor.function, self.compressor.suffix
        assert function is not None
        directory = os.path.dirname(backup.path)
        link = temp_name(self._base, directory)
        copy = None
        if not _link_descriptor(fd, file_id, link):  # no /proc, or no hard links here
            copy = self._copy(fd, source, link)  # locked, as our temporary files are
        try:
            output = function(link)
            if output != link + suffix:
                raise ValueError(
                    f"compress={function!r} returned {output!r}; expected the path of the "
                    f"compressed file it wrote, {link + suffix!r} (its input plus its suffix "
                    f"attribute {suffix!r})"
                )
            out = open_checked(output, single=True, own=True)
            try:
                # The requested mode, or else the source's, not the function's.
                mode = None if self._permissions.exact else stat.S_IMODE(source.st_mode)
                self._permissions.apply_fd(out, output, mode)
                os.fsync(out)  # complete on disk before the original goes
                set_times(out, output, source)  # retention ages it by these
                self._commit(file_id, backup.path, output, suffix, _identity(os.fstat(out)))
            finally:
                os.close(out)
        finally:
            if copy is not None:
                self._fds.discard(copy)
                os.close(copy)
            # Only names made from our temporary name are ours to remove: never what
            # the callable returned if it points elsewhere.
            ours = os.path.basename(link)[: -len(".tmp")]
            remove_all(directory, [e for e in os.listdir(directory or ".") if e.startswith(ours)])

    def _copy(self, fd: int, source: os.stat_result, path: str) -> int:
        """Copy the file open on *fd* to *path*; return its descriptor, locked."""
        out = self._permissions.create_like(path, source)
        self._fds.add(out)
        try:
            lock_descriptor(out)
            if not os.fstat(out).st_nlink:  # a sweep elsewhere took it for a leftover
                raise FileNotFoundError(errno.ENOENT, "temporary copy removed", path)
            os.lseek(fd, 0, os.SEEK_SET)
            while chunk := os.read(fd, _CHUNK):
                view = memoryview(chunk)
                while view:  # a short write is legal
                    view = view[os.write(out, view) :]
        except BaseException:
            self._fds.discard(out)
            os.close(out)
            raise
        return out

    def _commit(
        self,
        file_id: tuple[int, int],
        hint: str,
        temp: str,
        suffix: str,
        temp_id: tuple[int, int],
    ) -> None:
        """Give the compressed file *temp* (the file *temp_id*) its name and remove the
        original, holding the writers' lock only to rename (the caller's claim on the
        original keeps other sweeps off it while it is set aside).

        Should *temp* name another file by then (someone who can write the directory
        swapped it), that file is not committed: its new name is removed again and
        :class:`~mplog._untrusted.UnexpectedFile` raised, the original kept."""
        aside = temp_name(self._base)  # in the backup's directory; not made under the lock
        with self._lock:
            self.revalidate_lock()
            path = self._locate(file_id, hint)
            if path is None:
                return  # pruned meanwhile: the caller removes the temporary file
            if os.path.lexists(path + suffix):
                raise FileExistsError(
                    errno.EEXIST, "a compressed backup already has this name", path + suffix
                )
            os.rename(temp, path + suffix)
            committed = os.lstat(path + suffix)
            if _identity(committed) != temp_id:
                with contextlib.suppress(OSError):
                    os.remove(path + suffix)  # never follows a symbolic link
                raise UnexpectedFile(temp, describe(committed) or "another file")
            moved = None if self.durable else self._set_aside(path, aside)
        if self.durable:
            # Both names exist now, which a sweep resolves after any crash; the
            # original goes only once the archive's name is on disk.
            sync_directory(os.path.dirname(path))
            with self._lock:
                self.revalidate_lock()
                path = self._locate(file_id, path)  # a rotation may have shifted it
                moved = None if path is None else self._set_aside(path, aside)
        if moved is not None:
            # Outside the lock.  Should it fail (swapped for a directory), the next
            # sweep finds the name and reports it.
            with contextlib.suppress(OSError):
                os.remove(moved)

    def _set_aside(self, path: str, name: str) -> str:
        """Rename the committed original to the temporary *name* in its directory, which
        sweeps remove once nobody holds it (after a crash); return that path (writers'
        lock held)."""
        aside = os.path.join(os.path.dirname(path), name)
        os.rename(path, aside)
        return aside

    def revalidate_lock(self) -> None:
        """Never rename or remove under a lock file that was deleted or replaced: the
        writers that moved to the new one would not be excluded (see
        InterProcessLock.revalidate)."""
        problem = self._lock.revalidate()
        if problem is not None:
            self._debug(problem)

    def _finish_interrupted(
        self, fd: int, file_id: tuple[int, int], backup: Backup, compressed: Backup
    ) -> None:
        """A backup exists both plain and compressed: a crash fell between the commit's
        rename and remove.  Remove the plain one if the archive reads back equal.

        Only if both are still where they were once compared: a rotation since the
        listing may have paired files that never belonged together (the next sweep
        sees the new state)."""
        try:
            archive = open_checked(compressed.path)  # UnexpectedFile: the caller reports it
        except (FileNotFoundError, PermissionError):  # gone, or left to its owner
            return
        try:
            archive_st = os.fstat(archive)
            same = _same_content(fd, compressed.path, archive)
        finally:
            os.close(archive)
        with self._lock:
            self.revalidate_lock()
            path = self._locate(file_id, backup.path)
            if path is None:
                return
            try:
                st = os.lstat(path + compressed.suffix)
            except FileNotFoundError:
                return
            if (st.st_dev, st.st_ino) != (archive_st.st_dev, archive_st.st_ino):
                return
            if same:
                os.remove(path)
                return
        raise FileExistsError(
            errno.EEXIST,
            "both a backup and a different compressed file of the same name exist; left alone",
            path + compressed.suffix,
        )

    # -- temporary files -----------------------------------------------------------------

    def _temp(self, directory: str, source: os.stat_result) -> tuple[str, int]:
        """Create and lock a fresh temporary file."""
        while True:
            path = temp_name(self._base, directory)
            fd = self._permissions.create_like(path, source)
            self._fds.add(fd)
            try:
                lock_descriptor(fd)
                linked = os.fstat(fd).st_nlink
            except BaseException:  # unlocked, the next sweep removes it
                self._fds.discard(fd)
                os.close(fd)
                raise
            if linked:
                return path, fd
            # A sweep in another process removed it between our create and lock.
            self._fds.discard(fd)
            os.close(fd)


def _link_descriptor(fd: int, file_id: tuple[int, int], path: str) -> bool:
    """Hard-link the file open on *fd* at *path* (Linux); False if that is not possible.

    The /proc name must be followed, which only linkat() does: os.link calls it
    (with AT_SYMLINK_FOLLOW) when given a directory descriptor.
    """
    directory, name = os.path.split(path)
    try:
        dir_fd = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    try:
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd)
        linked = os.lstat(name, dir_fd=dir_fd)
    except (OSError, NotImplementedError):
        return False
    finally:
        os.close(dir_fd)
    if (linked.st_dev, linked.st_ino) != file_id:  # cannot happen, but never compress another file
        os.remove(path)
        return False
    return True


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _read_exactly(fd: int, size: int) -> bytes:
    parts = []
    while size > 0 and (part := os.read(fd, size)):
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _same_content(fd: int, name: str, archive: int) -> bool:
    """True if the file open on *archive* (named *name*) decompresses to exactly the
    file open on *fd*."""
    try:
        with open(archive, "rb", closefd=False) as raw:
            reader = reader_for(name, raw)
            if reader is None:  # a custom compressor's file: cannot tell
                return False
            with contextlib.closing(reader):
                os.lseek(fd, 0, os.SEEK_SET)
                while chunk := reader.read(_CHUNK):
                    if _read_exactly(fd, len(chunk)) != chunk:
                        return False
                return not os.read(fd, 1)
    except (OSError, EOFError, ValueError):  # damaged (ImportError: reported as such)
        return False
