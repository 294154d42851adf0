"""Directories that others write: every name mplog meets may be a symbolic link, a
directory, a FIFO or another user's file.

Odd names named like mplog's temporary files are left alone and reported once, and
never stop a sweep; a callable compressor's output swapped for a link or a FIFO is
refused, never chmod'ed, chown'ed or waited on; a device's lock is private to its
user; another user's compression is skipped, not a failure; and a backup retention
spared while it was being compressed goes once the compression let go of it.

Several users are real ones: the children run under uids of their own (no account
needed), so these tests need root and are skipped without it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    BASE,
    RECORD,
    ReportingHandler,
    claimed,
    info_record,
    names_in,
    record_numbers_in,
    size_named,
    write_records,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="FIFOs, flock and O_NOFOLLOW: Linux scenarios"
)

WORKERS = Path(__file__).resolve().parent / "shared_dir_workers.py"
needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to run as other users"
)


def _free_uids(count: int) -> list[int]:
    """Uids no account uses: users of their own for the children."""
    free = []
    uid = 47011
    while len(free) < count:
        with contextlib.suppress(KeyError):
            pwd.getpwuid(uid)
            uid += 1
            continue
        free.append(uid)
        uid += 1
    return free


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may write (not sticky), outside pytest's 0700 tree."""
    base = Path(tempfile.mkdtemp(prefix="mplog-shared-"))
    try:
        base.chmod(0o777)
        yield base
    finally:
        shutil.rmtree(base)


def _run(uid: int, command: str, timeout: float = 60, **arguments: Any) -> dict[str, Any]:
    """Run a worker command as *uid* (-1: as we are) and return its JSON result."""
    result = subprocess.run(
        [sys.executable, str(WORKERS), str(uid), command, json.dumps(arguments)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _gzip_handler(path: Path) -> ReportingHandler:
    return ReportingHandler(
        path, maxBytes=RECORD, backupCount=10, compress="gzip", compress_delay=0
    )


# -- 6. a name like a temporary file that is none ----------------------------------------------


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid += 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("kind", "suffix"),
    [
        ("directory", ".tmp"),
        ("symlink", ".tmp"),
        ("fifo", ".tmp"),
        ("directory", ".tmp.gz"),  # like a callable's output whose process is gone
    ],
    ids=["directory", "symlink", "fifo", "directory-output"],
)
def test_an_odd_name_like_a_temporary_file_is_left_and_reported_once(
    tmp_path: Path, kind: str, suffix: str
) -> None:
    """A directory, symbolic link or FIFO named like a compressor's temporary file stops no
    sweep: every backup is compressed at each one, the name is left as it was (a link's
    target untouched) and reported once, however many sweeps meet it."""
    logs = tmp_path / "logs"
    logs.mkdir()
    odd = logs / f".{BASE}.mplog-{_dead_pid()}-0badf11e{suffix}"
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not a log")
    if kind == "directory":
        odd.mkdir()
    elif kind == "symlink":
        odd.symlink_to(target)
    else:
        os.mkfifo(odd)
    handler = _gzip_handler(logs / BASE)
    try:
        write_records(handler, range(5))  # four rotations, each followed by a sweep
    finally:
        handler.close()  # one more sweep
    assert (
        stat.S_IFMT(odd.lstat().st_mode)
        == {
            "directory": stat.S_IFDIR,
            "symlink": stat.S_IFLNK,
            "fifo": stat.S_IFIFO,
        }[kind]
    )
    assert target.read_bytes() == b"not a log"
    odd.rename(tmp_path / "odd")  # out of the way of the listing below
    backups = size_named(logs, ".gz")  # fails on anything left uncompressed
    assert record_numbers_in(backups) == [[0], [1], [2], [3], [4]]
    messages = [message for message, _error in handler.reports]
    assert len(messages) == 1, messages
    assert str(odd) in messages[0]
    assert {"directory": "a directory", "symlink": "a symbolic link", "fifo": "a FIFO"}[
        kind
    ] in messages[0]


@pytest.mark.timeout(60)
def test_a_link_or_fifo_at_a_backup_name_is_left_and_reported_once(tmp_path: Path) -> None:
    """A symbolic link and a FIFO at backup names (app.log.8, app.log.9) are neither
    compressed nor opened: the link's target is untouched, both names stay, each is
    reported once over several sweeps, and the real backups are compressed."""
    logs, target = tmp_path / "logs", tmp_path / "elsewhere"
    logs.mkdir()
    target.write_bytes(b"not a log\n")
    (logs / f"{BASE}.8").symlink_to(target)
    os.mkfifo(logs / f"{BASE}.9")
    handler = _gzip_handler(logs / BASE)
    try:
        write_records(handler, range(3))  # two rotations, each followed by a sweep
    finally:
        handler.close()
    assert target.read_bytes() == b"not a log\n"
    assert (logs / f"{BASE}.8").is_symlink()
    assert stat.S_ISFIFO((logs / f"{BASE}.9").lstat().st_mode)
    assert sorted(names_in(logs)) == [
        BASE,
        f"{BASE}.1.gz",
        f"{BASE}.2.gz",
        f"{BASE}.8",
        f"{BASE}.9",
    ]
    messages = sorted(message for message, _error in handler.reports)
    assert len(messages) == 2, messages
    assert f"{BASE}.8" in messages[0]
    assert "a symbolic link" in messages[0]
    assert f"{BASE}.9" in messages[1]
    assert "a FIFO" in messages[1]


# -- 7. a callable's output swapped for something else -----------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "kind",
    ["symlink", "hardlink", "fifo", pytest.param("foreign", marks=needs_root)],
)
def test_a_callables_output_swapped_by_someone_is_refused(tmp_path: Path, kind: str) -> None:
    """The output of ``compress=<callable>`` is replaced, before mplog commits it, by a
    symbolic link or a hard link to a file elsewhere (owned by root, 0600), a FIFO, or a
    file of another user.  mplog never chmods, chowns (``owner=``), times or waits on what
    it did not make: the file elsewhere is untouched, the close does not hang, the backup
    stays plain with its records, and the refusal is reported once."""
    uid = _free_uids(1)[0]
    logs, victim = tmp_path / "logs", tmp_path / "secret"
    logs.mkdir()
    victim.write_bytes(b"secret")
    victim.chmod(0o600)
    victim_before = victim.stat()
    result = _run(
        -1, "swapped_output", log=str(logs / BASE), kind=kind, victim=str(victim), other_uid=uid
    )
    after = victim.stat()
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid) == (
        stat.S_IMODE(victim_before.st_mode),
        victim_before.st_uid,
        victim_before.st_gid,
    )
    assert after.st_mtime_ns == victim_before.st_mtime_ns
    assert victim.read_bytes() == b"secret"
    assert [name for name in result["names"] if not name.startswith(".")] == [
        BASE,
        f"{BASE}.1",
        f"{BASE}.2",
        f"{BASE}.3",
    ], "a backup was committed from a file mplog did not make"
    expected = {
        "symlink": "a symbolic link",
        "hardlink": "a file with 2 links",
        "fifo": "a FIFO",
        "foreign": f"a file of user {uid}",
    }[kind]
    assert len(result["reports"]) == 1, result["reports"]
    assert expected in result["reports"][0]


# -- 8. the lock of a device ---------------------------------------------------------------------


@needs_root
@pytest.mark.timeout(120)
def test_users_logging_to_a_device_neither_block_nor_lock_each_other_out(shared: Path) -> None:
    """User A logs to /dev/null (its lock file goes somewhere under the temp directory).
    User B then logs to /dev/null too, and takes every lock file under the temp directory
    it can open, and holds them.  A still constructs its handler and logs at once: a
    device's lock is private to its user."""
    temp = shared / "tmp"
    temp.mkdir()
    temp.chmod(0o1777)  # like /tmp
    user_a, user_b = _free_uids(2)
    env = {**os.environ, "TMPDIR": str(temp)}
    first = subprocess.run(
        [sys.executable, str(WORKERS), str(user_a), "log_to_device", '{"path": "/dev/null", '
         '"records": 3}'],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    holder = subprocess.Popen(
        [sys.executable, str(WORKERS), str(user_b), "hold_every_lock",
         json.dumps({"path": "/dev/null", "top": str(temp)})],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        held = json.loads(holder.stdout.readline())
        assert held["constructed"] == "ok", held
        again = subprocess.run(
            [sys.executable, str(WORKERS), str(user_a), "log_to_device",
             '{"path": "/dev/null", "records": 3}'],
            capture_output=True, text=True, timeout=30, check=False, env=env,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == {"reports": []}
    finally:
        holder.kill()
        holder.wait(timeout=30)
    for user in (user_a, user_b):
        private = temp / f"mplog-{user}"
        st = private.lstat()
        assert stat.S_ISDIR(st.st_mode)
        assert st.st_uid == user
        assert stat.S_IMODE(st.st_mode) == 0o700
        assert (private / ".__null.lock").exists()
    assert sorted(os.listdir(temp)) == [f"mplog-{user_a}", f"mplog-{user_b}"]


def test_a_private_lock_directory_removed_by_a_tmp_cleaner_comes_back_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The private lock directory is removed while a handler on /dev/null runs (a tmp
    cleaner): it is made again mode 0700 (not the umask's 0755), the move to the new lock
    file is reported, and logging goes on."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    old_umask = os.umask(0o022)
    handler = ReportingHandler(os.devnull, watch_interval=0)
    try:
        handler.emit(info_record("before"))
        private = tmp_path / f"mplog-{os.geteuid()}"
        shutil.rmtree(private)
        handler.emit(info_record("after"))
        handler.emit(info_record("and after"))
    finally:
        handler.close()
        os.umask(old_umask)
    assert stat.S_IMODE(private.lstat().st_mode) == 0o700
    assert (private / ".__null.lock").exists()
    assert [message for message, _error in handler.reports] == [
        f"mplog: lock file {private / '.__null.lock'} was deleted or replaced; moved to the new one"
    ]


@pytest.mark.timeout(120)
def test_one_users_processes_never_interleave_records_on_a_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four processes of one user log 100 KB records (far above PIPE_BUF) to one FIFO:
    they share the user's private lock, so the reader gets every record whole, once."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    chunks: list[bytes] = []
    # Both ends, held until every writer is done: no writer waits for a reader to open,
    # and the reader's end of file comes only after the last writer.
    keep_open = os.open(fifo, os.O_RDWR)

    def drain() -> None:
        with open(fifo, "rb") as reader:
            while chunk := reader.read(1 << 16):
                chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    writers, size, records = 4, 100_000, 10
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKERS),
                "-1",
                "write_pipe",
                json.dumps({"path": str(fifo), "worker": w, "records": records, "size": size}),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    try:
        outputs = [process.communicate(timeout=60)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=30)
        os.close(keep_open)
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert [json.loads(output) for output in outputs] == [{"reports": []}] * writers
    lines = b"".join(chunks).decode().split("\n")
    assert lines.pop() == ""
    expected = set()
    for w in range(writers):
        for number in range(records):
            head = f"w{w} r{number:04d} "
            expected.add(
                head + "abcdefghijklmnopqrstuvwxyz"[(w + number) % 26] * (size - len(head) - 1)
            )
    assert len(lines) == writers * records
    assert set(lines) == expected, "a record was torn by another process's"


@pytest.mark.parametrize("made", ["symlink", pytest.param("directory", marks=needs_root)])
def test_a_private_lock_directory_someone_else_made_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made: str
) -> None:
    """A symbolic link, or another user's directory, where this user's private lock
    directory goes: the handler on /dev/null is refused, with the directory and the fix
    named; nothing is created there."""
    temp, elsewhere = tmp_path / "tmp", tmp_path / "elsewhere"
    temp.mkdir()
    elsewhere.mkdir()
    if made == "symlink":
        (temp / f"mplog-{os.geteuid()}").symlink_to(elsewhere)
    else:
        elsewhere = temp / f"mplog-{os.geteuid()}"
        elsewhere.mkdir(mode=0o777)
        os.chown(elsewhere, *[_free_uids(1)[0]] * 2)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    import mplog

    with pytest.raises(PermissionError) as raised:
        mplog.ConcurrentRotatingFileHandler(os.devnull)
    assert f"mplog-{os.geteuid()}" in str(raised.value)
    assert "lock_file_directory=" in str(raised.value)
    assert list(elsewhere.iterdir()) == []


# -- 12. another user's compression --------------------------------------------------------------


@needs_root
@pytest.mark.timeout(120)
def test_another_users_temporary_file_is_skipped_not_a_failure(shared: Path) -> None:
    """In a directory both write, user B's compression temporary file and a backup of B's
    (mode 0600: A may not open them) are skipped by A's sweeps: A compresses all its other
    backups and reports nothing; B's files are left for B."""
    user_a, user_b = _free_uids(2)
    others = shared / f".{BASE}.mplog-{os.getpid()}-5eed0b0b.tmp"
    backup = shared / f"{BASE}.9"
    for path in (others, backup):
        path.write_bytes(b"B's\n")
        path.chmod(0o600)
        os.chown(path, user_b, user_b)
    result = _run(user_a, "sweep", log=str(shared / BASE), rotations=3)
    assert result["reports"] == []
    assert result["names"] == sorted(
        [others.name, backup.name, ".__app.lock", ".__app.open", BASE]
        + [f"{BASE}.{n}.gz" for n in (1, 2, 3)]
    )


@needs_root
@pytest.mark.timeout(300)
def test_four_users_compressing_one_log_report_nothing_and_lose_nothing(shared: Path) -> None:
    """Four users log to one log at once (group-writable files, a rotation every four
    records, gzip at once): each meets the others' compressions mid-way, and skips what it
    may not open yet.  No process reports anything; at the end every backup is compressed,
    no temporary file is left, and every record is there once."""
    users, records = _free_uids(4), 400
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKERS),
                str(uid),
                "crowd",
                json.dumps({"log": str(shared / BASE), "worker": worker, "records": records}),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker, uid in enumerate(users)
    ]
    try:
        results = [process.communicate(timeout=240) for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=30)
    for (out, err), process in zip(results, processes):
        assert process.returncode == 0, err
        assert json.loads(out) == {"reports": []}
    names = [n for n in os.listdir(shared) if n not in (BASE, ".__app.lock", ".__app.open")]
    assert names, "nothing rotated"
    assert [name for name in names if not name.endswith(".gz")] == []
    lines = (shared / BASE).read_text().splitlines()
    for name in names:
        lines += gzip.decompress((shared / name).read_bytes()).decode().splitlines()
    tags = sorted(line.split(" ", 2)[0] + " " + line.split(" ", 2)[1] for line in lines)
    assert tags == sorted(f"w{w} {n:06d}" for w in range(4) for n in range(records))


@pytest.mark.timeout(60)
def test_a_file_another_process_is_still_giving_its_mode_is_waited_for(shared: Path) -> None:
    """A log that exists but refuses this user (another user's process created it an
    instant ago and has not set chmod= yet): the handler waits for the mode rather than
    fail, and logs.  A file that has refused this user for long is refused at once."""
    uid = _free_uids(1)[0] if os.geteuid() == 0 else -1
    result = _run(uid, "settle", log=str(shared / BASE))
    assert result == {"reports": [], "waits": 1, "old": "refused", "old_waits": 0}
    assert (shared / BASE).read_text().startswith("record 000000 ")


# -- 13. retention after a compression let go --------------------------------------------------


@pytest.mark.timeout(60)
def test_a_backup_retention_spared_while_compressed_goes_when_it_is_let_go(
    tmp_path: Path, clock: Any
) -> None:
    """backupCount=2, time naming: a rotation finds the oldest backup claimed by a
    compression (another process's), so retention spares it.  Once that claim is gone,
    the next sweep (here at close, with no rotation after) applies retention again: two
    backups are left, compressed."""
    kwargs: dict[str, Any] = {"when": "S", "utc": True, "compress_delay": 0}
    keep_all = ReportingHandler(tmp_path / BASE, backupCount=0, **kwargs)
    try:
        for number in range(4):  # three rotations, one per second
            keep_all.emit(info_record(f"record {number}"))
            clock.now += 1
    finally:
        keep_all.close()
    oldest, *_newer = sorted(name for name in names_in(tmp_path) if name != BASE)
    assert len(names_in(tmp_path)) == 4
    handler = ReportingHandler(tmp_path / BASE, backupCount=2, compress="gzip", **kwargs)
    try:
        with claimed(tmp_path / oldest):
            handler.emit(info_record("record 4"))  # rotates: four backups, two expire
            assert oldest in names_in(tmp_path), "retention deleted a claimed backup"
    finally:
        handler.close()
    assert handler.reports == []
    backups = [name for name in names_in(tmp_path) if name != BASE]
    assert len(backups) == 2, backups
    assert all(name.endswith(".gz") for name in backups), backups
    assert oldest not in {name.removesuffix(".gz") for name in backups}
