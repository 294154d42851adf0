"""Logs on a network filesystem written by several hosts (see mplog._netfs).

A real NFS server with two client mounts is the harness in the project's shared nfs-vm
folder (minutes under emulation, run by hand). Here: which mounts count as network
filesystems, and what the handler does differently on one, forced with network_fs=True
on a local disk: no O_APPEND, each record at the published offset and synced before the
lock is released, files known by inode alone, every record once from several processes.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import fleet_workers  # noqa: E402 - after the sys.path entry spawn children need
import mplog  # noqa: E402
import mplog._handler_parts  # noqa: E402
import mplog._lock  # noqa: E402
import mplog._netfs  # noqa: E402
from helpers import RecordingHandler, make_record  # noqa: E402
from mplog._netfs import is_network_filesystem, local_locks_only, mount_of  # noqa: E402

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
30 22 0:40 / /mnt/logs rw,relatime shared:2 - nfs4 nfs.example:/ rw,vers=4.2,local_lock=none
31 22 0:41 / /mnt/v3 rw,relatime shared:3 - nfs nfs.example:/srv rw,vers=3,nolock
32 22 0:42 / /mnt/local\\040lock rw shared:4 - nfs4 nfs.example:/ rw,vers=4.2,local_lock=all
33 22 0:43 / /var/lib/docker/overlay rw - fuse.fuse-overlayfs fuse-overlayfs rw
34 30 0:44 / /mnt/logs/tmp rw - tmpfs tmpfs rw
"""


# -- which filesystems are shared ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "network", "local_locks"),
    [
        ("/var/log/app.log", False, False),
        ("/mnt/logs/app.log", True, False),
        ("/mnt/logs/sub/dir/app.log", True, False),
        ("/mnt/logs/tmp/app.log", False, False),  # a local mount inside the NFS one
        ("/mnt/v3/app.log", True, True),  # NFSv3 nolock
        ("/mnt/local lock/app.log", True, True),  # local_lock=all, escaped space
        ("/var/lib/docker/overlay/app.log", False, False),  # FUSE, but local
    ],
)
def test_network_filesystems_are_told_from_the_mount_table(
    path: str, network: bool, local_locks: bool
) -> None:
    """NFS, SMB and the like are network filesystems (by the mount holding the log's
    directory, the deepest one); local filesystems and local FUSE ones are not; a mount
    whose locks only this host sees is recognized."""
    assert is_network_filesystem(path, MOUNTINFO) is network
    assert local_locks_only(path, MOUNTINFO) is local_locks


def test_the_deepest_mount_holds_the_path() -> None:
    """A mount inside another one wins for paths below it."""
    assert mount_of("/mnt/logs/tmp/app.log", MOUNTINFO) == ("/mnt/logs/tmp", "tmpfs", "rw")


def test_network_fs_must_be_a_bool_or_none(tmp_path: Path) -> None:
    """A bad network_fs value fails at construction, naming it."""
    with pytest.raises(ValueError, match="network_fs='yes'"):
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", network_fs="yes")  # type: ignore[arg-type]


# -- what the handler does on one ----------------------------------------------------------------


def test_records_go_at_the_published_offset_synchronously(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a network filesystem the log is opened without O_APPEND and with O_DSYNC (each
    write is on the server when it returns, and exactly its bytes are sent), and each
    record is written with pwrite at the size the shared state publishes, the lock held."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, network_fs=True)
    events: list[tuple[int, bool]] = []
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if fd == handler._fd:
            events.append((offset, handler._lock.owned()))
        return real_pwrite(fd, data, offset)

    try:
        handler.emit(make_record("one"))
        flags = fcntl.fcntl(handler._fd, fcntl.F_GETFL)  # type: ignore[arg-type]
        assert not flags & os.O_APPEND
        assert flags & os.O_DSYNC == os.O_DSYNC
        monkeypatch.setattr(os, "pwrite", pwrite)
        handler.emit(make_record("two"))
        handler.emit(make_record("three"))
    finally:
        monkeypatch.undo()
        handler.close()
    assert events == [(4, True), (8, True)]
    assert path.read_text() == "one\ntwo\nthree\n"


@pytest.mark.parametrize("network", [True, False], ids=["network", "local"])
def test_a_contended_lock_asks_the_server_few_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, network: bool
) -> None:
    """Held by another process, the lock is tried a few times, then waited for in flock:
    on a network filesystem, where each try is a round trip to the server, without
    the tries after sched_yield that a local lock makes."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, network_fs=network)
    yields: list[int] = []
    real_lock = mplog._lock._lock
    try:
        handler.emit(make_record("one"))
        holder = os.open(tmp_path / ".__app.lock", os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)

        def sleep_in_flock(fd: int) -> None:
            fcntl.flock(holder, fcntl.LOCK_UN)
            real_lock(fd)

        monkeypatch.setattr(mplog._lock, "_yield", lambda: yields.append(1))
        monkeypatch.setattr(mplog._lock, "_lock", sleep_in_flock)
        handler.emit(make_record("two"))
        os.close(holder)
    finally:
        monkeypatch.undo()
        handler.close()
    assert path.read_text() == "one\ntwo\n"
    assert len(yields) == (0 if network else mplog._lock._YIELDS)


@pytest.mark.parametrize(
    ("log_on", "lock_on", "network_lock"),
    [("shared", "local", False), ("local", "shared", True), ("shared", "shared", True)],
    ids=["log-shared-lock-local", "log-local-lock-shared", "both-shared"],
)
def test_where_the_lock_file_is_tells_whether_each_try_asks_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_on: str, lock_on: str, network_lock: bool
) -> None:
    """With lock_file_directory the lock file may be on another filesystem than the log:
    its own filesystem tells whether a try at the lock is a round trip to a server (no
    tries after sched_yield) or a local system call (they pay off), not the log's."""
    for name in ("local", "shared"):
        (tmp_path / name).mkdir()
    shared = os.path.realpath(tmp_path / "shared")
    table = f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n30 22 0:40 / {shared} rw - nfs4 srv:/ rw\n"
    real_mount_of = mplog._netfs.mount_of
    monkeypatch.setattr(
        mplog._netfs, "mount_of", lambda path, mountinfo=None: real_mount_of(path, table)
    )
    monkeypatch.setattr(mplog._handler_parts, "is_nfs", lambda path: False)  # no O_DIRECT here
    path = tmp_path / log_on / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, lock_file_directory=tmp_path / lock_on)
    yields: list[int] = []
    real_lock = mplog._lock._lock
    try:
        handler.emit(make_record("one"))
        holder = os.open(tmp_path / lock_on / ".__app.lock", os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)

        def sleep_in_flock(fd: int) -> None:
            fcntl.flock(holder, fcntl.LOCK_UN)
            real_lock(fd)

        monkeypatch.setattr(mplog._lock, "_yield", lambda: yields.append(1))
        monkeypatch.setattr(mplog._lock, "_lock", sleep_in_flock)
        handler.emit(make_record("two"))
        os.close(holder)
    finally:
        monkeypatch.undo()
        handler.close()
    assert path.read_text() == "one\ntwo\n"
    assert len(yields) == (0 if network_lock else mplog._lock._YIELDS)


def test_another_hosts_record_is_not_overwritten_by_a_stale_view(tmp_path: Path) -> None:
    """A host whose own view of the file is out of date (its size, here a descriptor
    that sits at an old offset) still writes after the other host's record: the offset
    comes from the shared state, not from this host's end of file."""
    path = tmp_path / "app.log"
    ours = mplog.ConcurrentRotatingFileHandler(path, network_fs=True)
    theirs = mplog.ConcurrentRotatingFileHandler(path, network_fs=True)
    try:
        ours.emit(make_record("ours 1"))
        theirs.emit(make_record("theirs 1"))
        os.lseek(ours._fd, 0, os.SEEK_SET)  # type: ignore[arg-type]  # a stale position
        ours.emit(make_record("ours 2"))
    finally:
        ours.close()
        theirs.close()
    assert path.read_text() == "ours 1\ntheirs 1\nours 2\n"


def test_network_mode_keeps_the_published_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local mode defers publishing (one header write per record, PROTOCOL.md 3.1); network
    mode keeps the published steps (section 7) whatever the shared code does: for each
    record, the in-flight mark at 24, the record at the published size, then size and
    write end at 16, both where the record ends; nothing else touches the header."""
    path = tmp_path / "app.log"
    ours = mplog.ConcurrentRotatingFileHandler(path, network_fs=True, watch_interval=3600)
    theirs = mplog.ConcurrentRotatingFileHandler(path, network_fs=True, watch_interval=3600)
    events: list[tuple[str, int, bytes]] = []
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: Any, offset: int) -> int:
        kind = "log" if fd in (ours._fd, theirs._fd) else "header"
        events.append((kind, offset, bytes(data)))
        return real_pwrite(fd, data, offset)

    try:
        ours.emit(make_record("one"))
        theirs.emit(make_record("two"))  # both files open, the file announced
        monkeypatch.setattr(os, "pwrite", pwrite)
        ours.emit(make_record("three"))
        theirs.emit(make_record("four"))
        ours.emit(make_record("five"))
    finally:
        monkeypatch.undo()
        ours.close()
        theirs.close()
    assert path.read_text() == "one\ntwo\nthree\nfour\nfive\n"
    steps = []
    for start, record in ((8, b"three\n"), (14, b"four\n"), (19, b"five\n")):
        end = start + len(record)
        steps += [
            ("header", 24, struct.pack("<Q", end)),  # SharedState.begin_write
            ("log", start, record),
            ("header", 16, struct.pack("<QQ", end, end)),  # SharedState.end_write
        ]
    assert events == steps


def test_a_stale_length_never_moves_or_cuts_another_hosts_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFS caches a file's attributes for seconds: this host may see the log shorter than
    the other host made it, through stat, fstat and lseek alike. Network mode takes the
    offset from the shared state only, so the other host's last record stays whole and
    this host's record goes after it (also with a path check at every record)."""
    path = tmp_path / "app.log"
    ours = mplog.ConcurrentRotatingFileHandler(path, network_fs=True, watch_interval=0)
    theirs = mplog.ConcurrentRotatingFileHandler(path, network_fs=True, watch_interval=0)
    real_stat, real_fstat, real_lseek = os.stat, os.fstat, os.lseek
    try:
        ours.emit(make_record("one"))
        theirs.emit(make_record("two, from the other host"))
        stale = len("one\n")  # what this host last saw of the log
        log_ino = real_stat(path).st_ino

        def shorter(st: os.stat_result) -> os.stat_result:
            if st.st_ino != log_ino:
                return st
            values = list(st)
            values[6] = stale  # st_size
            return os.stat_result(values)

        def stat(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            return shorter(real_stat(target, *args, **kwargs))

        def fstat(fd: int) -> os.stat_result:
            return shorter(real_fstat(fd))

        def lseek(fd: int, pos: int, how: int) -> int:
            if how == os.SEEK_END and real_fstat(fd).st_ino == log_ino:
                return stale + pos
            return real_lseek(fd, pos, how)

        monkeypatch.setattr(os, "stat", stat)
        monkeypatch.setattr(os, "fstat", fstat)
        monkeypatch.setattr(os, "lseek", lseek)
        ours.emit(make_record("three"))
        ours.emit(make_record("four"))
        monkeypatch.undo()
        theirs.emit(make_record("five"))
    finally:
        monkeypatch.undo()
        ours.close()
        theirs.close()
    assert path.read_text() == "one\ntwo, from the other host\nthree\nfour\nfive\n"


def test_files_are_known_by_inode_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Device numbers differ from mount to mount: a different st_dev for the same inode
    is the same file, not a new one to announce and reopen."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, network_fs=True, watch_interval=0)
    try:
        handler.emit(make_record("one"))
        fd = handler._fd
        with handler._lock as shared:
            generation = shared.load()[0]
        real_stat = os.stat

        def other_mount(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            st = real_stat(target, *args, **kwargs)
            if os.fspath(target) != str(path):
                return st
            values = list(st)
            values[2] += 1  # st_dev, as another mount shows it
            return os.stat_result(values)

        monkeypatch.setattr(os, "stat", other_mount)
        handler.emit(make_record("two"))
        monkeypatch.undo()
        assert handler._fd == fd, "reopened the same file"
        with handler._lock as shared:
            assert shared.load()[0] == generation, "announced the same file again"
    finally:
        handler.close()
    assert path.read_text() == "one\ntwo\n"


def test_a_mount_with_local_locks_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network filesystem mounted with local locks cannot keep hosts apart: the first
    open says so through handleError, once, and logging goes on."""
    monkeypatch.setattr(mplog._handler_parts, "is_network_filesystem", lambda path: True)
    monkeypatch.setattr(mplog._handler_parts, "local_locks_only", lambda path: True)
    handler = RecordingHandler(tmp_path / "app.log", delay=True)
    try:
        handler.emit(make_record("one"))
        handler.emit(make_record("two"))
    finally:
        handler.close()
    assert len(handler.errors_seen) == 1
    assert "local_lock" in str(handler.errors_seen[0])
    assert (tmp_path / "app.log").read_text() == "one\ntwo\n"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batched", [False, True], ids=["sync", "batched"])
def test_processes_on_a_network_filesystem_lose_nothing(tmp_path: Path, batched: bool) -> None:
    """Four processes in network mode, rotating every few dozen records: every record
    once, in per-process order."""
    path = str(tmp_path / "app.log")
    count = 800
    kwargs = {"maxBytes": 8192, "backupCount": 500, "network_fs": True, "batched": batched}
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(4)
    processes = [
        ctx.Process(target=fleet_workers.mplog_writer, args=(path, kwargs, w, count, start))
        for w in range(4)
    ]
    fleet_workers.run_fleet(processes, start)
    found = fleet_workers.read_fleet(tmp_path)
    fleet_workers.assert_each_once(found, dict.fromkeys(range(4), count))
    for worker in range(4):
        assert [seq for w, seq in found if w == worker] == list(range(count))
    assert len(list(tmp_path.glob("app.log.*"))) > 5


def test_the_announced_file_wins_over_a_stale_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another host rotated; this host's cache still maps the name to the old file (now
    the backup). The record goes to the file the shared state announces, the new one,
    and the old one is not announced again."""
    path = tmp_path / "app.log"
    ours = mplog.ConcurrentRotatingFileHandler(path, network_fs=True, backupCount=3)
    theirs = mplog.ConcurrentRotatingFileHandler(path, network_fs=True, backupCount=3)
    try:
        ours.emit(make_record("one"))
        old = os.stat(path)
        theirs.doRollover()  # app.log -> app.log.1, a new app.log announced
        real_stat = os.stat

        def stale(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            if os.fspath(target) == str(path):
                return old  # the name still leads to the old file here
            return real_stat(target, *args, **kwargs)

        monkeypatch.setattr(os, "stat", stale)
        ours.emit(make_record("two"))
        monkeypatch.undo()
        theirs.emit(make_record("three"))
    finally:
        ours.close()
        theirs.close()
    assert (tmp_path / "app.log.1").read_text() == "one\n"
    assert path.read_text() == "two\nthree\n"


def test_the_directory_is_refreshed_before_a_rotation_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before renaming anything, a network-mode rotation creates and removes a file of
    its own in the log's directory (the server's reply then tells this host's client that
    the directory changed); the probe leaves nothing behind."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, network_fs=True, backupCount=2)
    events: list[str] = []
    real_remove, real_rename = os.remove, os.rename

    def remove(target: Any, *args: Any, **kwargs: Any) -> None:
        if ".mplog-" in os.fspath(target):
            events.append("probe removed")
        real_remove(target, *args, **kwargs)

    def rename(source: Any, dest: Any, *args: Any, **kwargs: Any) -> None:
        events.append(f"rename {os.path.basename(source)} -> {os.path.basename(dest)}")
        real_rename(source, dest, *args, **kwargs)

    try:
        handler.emit(make_record("one"))
        monkeypatch.setattr(os, "remove", remove)
        monkeypatch.setattr(os, "rename", rename)
        handler.doRollover()
    finally:
        monkeypatch.undo()
        handler.close()
    assert events == ["probe removed", "rename app.log -> app.log.1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".__app.lock",
        ".__app.open",
        "app.log",
        "app.log.1",
    ]


def test_on_nfs_the_shared_state_is_read_past_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On NFS the lock file's state goes through a second descriptor opened O_DIRECT (the
    NFS client needs no alignment for it): every read asks the server, whatever this
    client caches or was delegated. The flock stays on the first descriptor."""
    monkeypatch.setattr(mplog._handler_parts, "is_nfs", lambda path: True)
    direct: list[str] = []
    real_open = os.open

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_DIRECT:
            direct.append(os.fspath(path))
            flags &= ~os.O_DIRECT  # this test's disk may want aligned O_DIRECT I/O
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", network_fs=True)
    try:
        handler.emit(make_record("one"))
        with handler._lock as shared:
            assert shared.fd != handler._lock._fd
            assert os.fstat(shared.fd).st_ino == os.fstat(handler._lock._fd).st_ino  # type: ignore[arg-type]
    finally:
        handler.close()
    assert direct, "the shared state was not opened O_DIRECT"
    assert all(path.startswith("/proc/self/fd/") for path in direct)
    assert (tmp_path / "app.log").read_text() == "one\n"


def test_a_network_mode_process_keeps_the_records_of_a_local_mode_one(tmp_path: Path) -> None:
    """A handler forced to network mode and one in local mode on the same log alternate:
    a local-mode record leaves the write end past the size (its deferred steps), which
    network mode would cut back to the size if the path named the announced file
    (PROTOCOL.md 7); it never does, since each mode announces the file by another
    identity ((0, inode) against (device, inode)): every record stays, once, in order."""
    path = tmp_path / "app.log"
    local = mplog.ConcurrentRotatingFileHandler(path, watch_interval=3600)
    network = mplog.ConcurrentRotatingFileHandler(path, network_fs=True, watch_interval=3600)
    try:
        for n in range(3):
            local.emit(make_record(f"local {n}"))
            local.emit(make_record(f"local {n}b"))
            network.emit(make_record(f"network {n}"))
    finally:
        local.close()
        network.close()
    expected = "".join(f"local {n}\nlocal {n}b\nnetwork {n}\n" for n in range(3))
    assert path.read_text() == expected


@pytest.mark.timeout(120)
def test_network_and_local_mode_processes_on_one_log_lose_nothing(tmp_path: Path) -> None:
    """Two processes forced to network mode and two in local mode write one log that
    rotates every few dozen records: every record is in the files exactly once, whole."""
    path = str(tmp_path / "app.log")
    count = 800
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    options = [{"maxBytes": 8192, "backupCount": 500, "network_fs": w < 2} for w in range(4)]
    processes = [
        ctx.Process(target=fleet_workers.mplog_writer, args=(path, options[w], w, count, barrier))
        for w in range(4)
    ]
    fleet_workers.run_fleet(processes, barrier)
    found = fleet_workers.read_fleet(tmp_path)
    fleet_workers.assert_each_once(found, dict.fromkeys(range(4), count))
