"""Logs on network filesystems, written by several hosts.

On one kernel, an ``O_APPEND`` write under the lock is enough.  Over NFS it is not:

* a lock is a cache-coherency point only for the locked file (the lock file), so
  the log's cached size and pages are not refreshed when another host wrote it;
* ``O_APPEND`` appends at the client's cached end of file (open(2): "O_APPEND may
  lead to corrupted files on NFS filesystems if more than one process appends data
  to a file at once");
* device numbers differ from mount to mount, so ``(st_dev, st_ino)`` does not
  identify a file across hosts, while the inode number (the server's file id) does.

So on a network filesystem the handler writes at the offset the shared state
publishes (``pwrite``, coherent because the lock file's state is re-read after
each lock), syncs the data to the server before it unlocks, identifies files by
inode alone, and re-reads the directory before it trusts a name.  This module
tells which filesystems need that (:func:`is_network_filesystem`) and whether
their locks exclude other hosts at all (:func:`local_locks_only`), whether each try
at a lock file asks a server (:func:`lock_is_remote`), and holds
what :class:`~mplog._active.ActiveFile` does differently there (:func:`write_at`,
:func:`check_shared`, :func:`refresh_directory`); PROTOCOL.md, section 7, lists
every difference network mode makes.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import TYPE_CHECKING

from ._claims import temp_name

if TYPE_CHECKING:
    from ._active import ActiveFile
    from ._header import SharedState

__all__ = [
    "check_shared",
    "is_network_filesystem",
    "is_nfs",
    "local_locks_only",
    "local_locks_warning",
    "lock_is_remote",
    "mount_of",
    "refresh_directory",
    "write_at",
]

# Filesystem types (as /proc/self/mountinfo names them) shared by several hosts.
NETWORK_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "fuse.cephfs",
        "9p",
        "afs",
        "lustre",
        "gpfs",
        "beegfs",
        "ocfs2",
        "gfs2",
    }
)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_of(path: str, mountinfo: str | None = None) -> tuple[str, str, str] | None:
    """The ``(mount point, filesystem type, super options)`` of the mount holding
    *path* (Linux; None elsewhere or if it cannot be told).  *mountinfo* is the text
    of ``/proc/self/mountinfo`` (read when None)."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                mountinfo = f.read()
        except OSError:
            return None
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    best: tuple[str, str, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-")
            point = _unescape(fields[4])
            fstype, options = fields[separator + 1], fields[separator + 3]
        except (ValueError, IndexError):
            continue
        inside = folder == point or folder.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fstype, options)  # the later of equal points is mounted on top
    return best


def is_network_filesystem(path: str, mountinfo: str | None = None) -> bool:
    """True if the log at *path* is on a filesystem that several hosts may share."""
    mount = mount_of(path, mountinfo)
    return mount is not None and mount[1] in NETWORK_TYPES


def lock_is_remote(lock_path: str, log_path: str, log_network: bool) -> bool:
    """True if each try at the lock file at *lock_path* asks a server: it is on a network
    filesystem by the mount table, or on the log's own mount and *log_network* (the
    log's setting, ``network_fs=`` or detected).  ``lock_file_directory`` may put the
    lock file on another filesystem than the log at *log_path*."""
    if is_network_filesystem(lock_path):
        return True
    return log_network and mount_of(lock_path) == mount_of(log_path)


def local_locks_only(path: str, mountinfo: str | None = None) -> bool:
    """True if *path* is on a network filesystem mounted so that locks are only seen
    by this host (NFS ``local_lock=all`` or ``=flock``, or NFSv3 ``nolock``)."""
    mount = mount_of(path, mountinfo)
    if mount is None or mount[1] not in NETWORK_TYPES:
        return False
    options = set(mount[2].split(","))
    return bool({"local_lock=all", "local_lock=flock", "nolock"} & options)


def local_locks_warning(path: str) -> str:
    """What is said once about a log at *path* for which :func:`local_locks_only`."""
    return (
        f"{path} is on a network filesystem mounted with local locks "
        "(local_lock= or nolock): the lock does not exclude other hosts, so "
        "processes on several hosts can overwrite each other's records; mount it "
        "with local_lock=none, or give each host its own log"
    )


def is_nfs(path: str, mountinfo: str | None = None) -> bool:
    """True if *path* is on NFS, whose client takes ``O_DIRECT`` at any alignment."""
    mount = mount_of(path, mountinfo)
    return mount is not None and mount[1] in ("nfs", "nfs4")


def write_at(file: ActiveFile, shared: SharedState, data: bytes, size: int) -> None:
    """Write *data* at offset *size* of *file* (the published size, not this host's
    idea of the end of file), synchronously (the file is open ``O_DSYNC``), so that
    it is on the server before the lock is released and the next host's write lands
    after it; on failure, cut the file back to *size* (lock held)."""
    fd = file.fd
    assert fd is not None
    written = 0
    try:
        while written < len(data):  # O_DSYNC: on the server when pwrite returns
            written += os.pwrite(fd, memoryview(data)[written:], size + written)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        shared.end_write(size)
        raise


def check_shared(file: ActiveFile, shared: SharedState, now: float) -> int:
    """:meth:`ActiveFile.check <mplog._active.ActiveFile.check>` on a network
    filesystem, where this host's view of the log may be stale: a name may still
    lead to the file another host renamed, and a cached size may be old.  The file
    the shared state announces is the truth: it is (re)opened until the name leads
    to it, rereading the directory if needed; only a file nobody announced (a new
    log, another program's) is announced."""
    try:
        current = file.identity(os.stat(file.path))
    except FileNotFoundError:
        current = None
    announced = shared.file_id()
    if file.fd is None or current != file.file_id or announced != file.file_id:
        file.close()
        file.open()
        if announced not in (file.file_id, (0, 0)):  # perhaps a stale name
            with contextlib.suppress(OSError):  # best effort: a read-only directory
                refresh_directory(file.path)
            file.close()
            file.open()
    st = os.fstat(file.fd)  # type: ignore[arg-type]
    file.regular = stat.S_ISREG(st.st_mode)
    size = shared.load()[1]
    if announced != file.file_id:  # a new file, or another program's: announce it
        shared.new_file(st.st_size, file.file_id)
        size = st.st_size
    file.generation = shared.load()[0]
    file.watched_at, file.next_watch = now, now + file.watch_interval
    return size if file.regular else st.st_size


def refresh_directory(path: str) -> None:
    """Make this host's view of the directory of the log at *path* current.

    Another host's renames may not show here for a while (cached directory
    attributes), so a listing could miss a backup and a rename overwrite it.
    Creating and removing a file of our own makes the server's reply tell this
    client whether the directory changed since it last looked, and the client
    then drops what it cached (the name is one a compression sweep removes if a
    crash leaves it behind)."""
    probe = temp_name(path, os.path.dirname(path))
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    os.remove(probe)
