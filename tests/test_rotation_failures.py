"""A rotation that cannot happen never drops the log; an explicit rollover repairs first.

When the rename fails (the directory is not writable although the log is, a backup
name is taken by a directory, a rotator that raises), the file the handler holds is
still the active one: it keeps appending, reports the episode once, tries again
every ROTATION_RETRY seconds, and says when rotating works again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import fault_workers
import mplog
import mplog._handler
from helpers import Clock, RecordingHandler, make_record


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_a_failing_rename_keeps_appending_and_reports_once(tmp_path: Path, clock: Clock) -> None:
    """A backup name taken by a directory: every record still lands in the active file,
    past maxBytes; one report says so; rotation is retried after ROTATION_RETRY and,
    once possible, happens and is reported with the count of rotations skipped."""
    path = tmp_path / "app.log"
    (tmp_path / "app.log.1").mkdir()  # backupCount=1: the shift must remove it, and cannot
    handler = RecordingHandler(path, maxBytes=20, backupCount=1)
    try:
        for i in range(10):
            handler.emit(make_record(f"record {i}"))  # 9 bytes each: rotation due every 2
        assert _lines(path) == [f"record {i}" for i in range(10)]
        assert len(handler.errors_seen) == 1
        report = str(handler.errors_seen[0])
        assert "app.log.1" in report
        clock.now += mplog._handler.ROTATION_RETRY
        handler.emit(make_record("record 10"))  # retried: still a directory
        assert len(handler.errors_seen) == 1, "the episode is reported once"
        (tmp_path / "app.log.1").rmdir()
        handler.emit(make_record("record 11"))  # not yet: the retry is ROTATION_RETRY away
        assert not (tmp_path / "app.log.1").exists()
        clock.now += mplog._handler.ROTATION_RETRY
        handler.emit(make_record("record 12"))
    finally:
        handler.close()
    assert _lines(tmp_path / "app.log.1") == [f"record {i}" for i in range(12)]
    assert _lines(path) == ["record 12"]
    assert len(handler.errors_seen) == 2
    assert "works again" in str(handler.errors_seen[1])
    assert "2 rotations were skipped" in str(handler.errors_seen[1])


def test_a_batch_across_several_limits_tries_a_failing_rotation_once(
    tmp_path: Path, clock: Clock
) -> None:
    """Batched mode: a batch that crosses maxBytes several times while the rename fails
    tries once, then appends the rest (not once per crossing: the count of rotations
    skipped, reported on recovery, counts attempts, one per ROTATION_RETRY)."""
    path = tmp_path / "app.log"
    (tmp_path / "app.log.1").mkdir()  # backupCount=1: the shift must remove it, and cannot
    handler = RecordingHandler(path, maxBytes=20, backupCount=1)
    records = [f"record {i:02}\n".encode() for i in range(15)]  # 10 bytes: due every 2
    try:
        handler._write_batch(records[:10])  # as the batched writer thread hands them over
        assert _lines(path) == [f"record {i:02}" for i in range(10)]
        assert len(handler.errors_seen) == 1
        clock.now += mplog._handler.ROTATION_RETRY
        handler._write_batch(records[10:13])  # retried once: still a directory
        assert len(handler.errors_seen) == 1, "the episode is reported once"
        (tmp_path / "app.log.1").rmdir()
        handler._write_batch(records[13:14])  # not yet: the retry is ROTATION_RETRY away
        assert not (tmp_path / "app.log.1").exists()
        clock.now += mplog._handler.ROTATION_RETRY
        handler._write_batch(records[14:])
    finally:
        handler.close()
    assert _lines(tmp_path / "app.log.1") == [f"record {i:02}" for i in range(14)]
    assert _lines(path) == ["record 14"]
    assert len(handler.errors_seen) == 2
    assert "(2 rotations were skipped" in str(handler.errors_seen[1])


def test_a_raising_rotator_keeps_the_file_and_every_record(tmp_path: Path) -> None:
    """A rotator that raises (EXDEV, say) costs no record: the handler keeps writing the
    file it holds, and other processes' records go there too."""
    path = tmp_path / "app.log"

    def cross_device(source: str, dest: str) -> None:
        raise OSError(18, "Invalid cross-device link", dest)

    ours = RecordingHandler(path, maxBytes=30, backupCount=3)
    theirs = RecordingHandler(path, maxBytes=30, backupCount=3)
    ours.rotator = theirs.rotator = cross_device
    try:
        for i in range(20):
            (ours if i % 2 else theirs).emit(make_record(f"r{i:02d}"))
    finally:
        ours.close()
        theirs.close()
    assert _lines(path) == [f"r{i:02d}" for i in range(20)]
    for handler in (ours, theirs):  # each process reports its episode once, with the cause
        assert [getattr(e, "errno", None) for e in handler.errors_seen] == [18]


_UNWRITABLE_DIRECTORY = """
import logging, os, pwd, sys
import mplog
import mplog._handler  # mplog imports it lazily; the interpreter's files may be root's only
log_dir, lock_dir = sys.argv[1], sys.argv[2]
uid, gid = pwd.getpwnam("nobody")[2:4]
os.setgid(gid)
os.setuid(uid)
assert os.geteuid() != 0
assert not os.access(log_dir, os.W_OK) and os.access(os.path.join(log_dir, "app.log"), os.W_OK)
handler = mplog.ConcurrentRotatingFileHandler(
    os.path.join(log_dir, "app.log"), maxBytes=200, backupCount=3, lock_file_directory=lock_dir
)
errors = []
handler.handleError = lambda record: errors.append(sys.exc_info()[1])
for i in range(1000):
    handler.emit(logging.makeLogRecord({"msg": "record %04d" % i}))
handler.close()
print(len(errors), repr(errors[0]))
"""


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to become nobody"
)
def test_a_directory_this_user_cannot_write_loses_no_record() -> None:
    """The log is writable, its directory is not (rename impossible): all 1,000 records
    are in the log, and the failure is reported once, not per record."""
    base = Path(tempfile.mkdtemp(prefix="mplog-nobody-"))  # pytest's tmp dirs are 0700
    try:
        base.chmod(0o755)
        log_dir, lock_dir = base / "logs", base / "locks"
        log_dir.mkdir(mode=0o755)
        lock_dir.mkdir()
        (log_dir / "app.log").touch()
        os.chown(log_dir / "app.log", *_nobody())
        os.chown(lock_dir, *_nobody())
        script = base / "unwritable.py"
        script.write_text(textwrap.dedent(_UNWRITABLE_DIRECTORY))
        result = subprocess.run(
            [sys.executable, str(script), str(log_dir), str(lock_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        count, first = result.stdout.split(" ", 1)
        assert count == "1", result.stdout
        assert "Permission" in first
        assert _lines(log_dir / "app.log") == [f"record {i:04d}" for i in range(1000)]
    finally:
        shutil.rmtree(base)


def _nobody() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


# -- doRollover after a writer died mid-record ---------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_do_rollover_cuts_off_a_record_torn_by_a_writer_that_died(tmp_path: Path) -> None:
    """A writer killed half-way through a record leaves it marked in flight; an explicit
    doRollover() cuts it off before renaming, as the next record would."""
    path = tmp_path / "app.log"
    ours = mplog.ConcurrentRotatingFileHandler(path, backupCount=2)
    try:
        ours.emit(make_record("one"))
        fault_workers.fork_a_writer_that_dies_mid_record(path, backupCount=2)
        ours.doRollover()
        ours.emit(make_record("four"))
    finally:
        ours.close()
    assert (tmp_path / "app.log.1").read_text() == "one\ntwo\n"
    assert path.read_text() == "four\n"
