"""The lock file is shared state: deleted, truncated, inherited over fork, or claimed by
two logs, it never splits the writers, kills a process, or mixes two logs' state."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import fleet_workers  # noqa: E402 - after the sys.path entry spawn children need
import mplog  # noqa: E402
import mplog._lock  # noqa: E402
from helpers import RecordingHandler, make_record  # noqa: E402
from mplog._lock import InterProcessLock  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX processes")


# -- deleted -----------------------------------------------------------------------------------


@pytest.mark.timeout(180)
@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_a_deleted_lock_file_does_not_split_the_writers(tmp_path: Path, gzip: bool) -> None:
    """Three processes log; half-way the lock file is deleted and two new processes start
    (they create a fresh one) while the first three go on.  Every process ends up on the
    new lock file: the log rotates once per trigger and every record is there once."""
    path = str(tmp_path / "app.log")
    count = 3000
    kwargs = {
        "maxBytes": 8192,
        "backupCount": 2000,
        "compress": "gzip" if gzip else None,
        "compress_delay": 0,
    }
    ctx = multiprocessing.get_context("fork")
    start, pause = ctx.Barrier(3), ctx.Barrier(4)
    old = [
        ctx.Process(target=fleet_workers.mplog_writer, args=(path, kwargs, w, count, start, pause))
        for w in range(3)
    ]
    late = ctx.Barrier(2)
    new = [
        ctx.Process(target=fleet_workers.mplog_writer, args=(path, kwargs, w, count, late))
        for w in (3, 4)
    ]
    try:
        for process in old:
            process.start()
        pause.wait(60)  # the three are half-way, holding nothing
        os.remove(tmp_path / ".__app.lock")
        for process in new:
            process.start()
        time.sleep(0.2)  # the new ones create a lock file and start writing
        pause.wait(60)  # the old ones go on, on the deleted lock file until they notice
    finally:
        fleet_workers.run_fleet(old + new, start, pause, late)
    found = fleet_workers.read_fleet(tmp_path)
    fleet_workers.assert_each_once(found, dict.fromkeys(range(5), count))
    if gzip:
        assert fleet_workers.leftovers(tmp_path) == []
    sizes = [p.stat().st_size for p in tmp_path.glob("app.log.*") if p.suffix != ".gz"]
    assert all(size <= 8192 for size in sizes), "a backup grew past maxBytes: split rotation"


@pytest.fixture
def handlers_as_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each handler of this test stands for a process: give it its own lock (in one
    process, handlers of one log share theirs)."""
    monkeypatch.setattr(mplog._lock, "_core_for", lambda path, log_path: mplog._lock._Core())


@pytest.mark.usefixtures("handlers_as_processes")
def test_a_process_moves_to_a_recreated_lock_file_with_the_shared_state(tmp_path: Path) -> None:
    """The lock file is deleted; a process that starts afterwards creates a new one and,
    finding the old one still in use, carries its shared state (active file, time
    boundary) over and tells its users, who move to the new file at their next record
    and say so once."""
    path = tmp_path / "app.log"
    lock_path = tmp_path / ".__app.lock"
    old = RecordingHandler(path, when="midnight", backupCount=3)
    new = None
    try:
        old.emit(make_record("one"))
        with old._lock as shared:
            boundary = shared.boundary
        lock_path.unlink()
        new = RecordingHandler(path, when="midnight", backupCount=3)  # creates a new one
        with new._lock as shared:
            assert shared.boundary == boundary
            assert shared.file_id() == (path.stat().st_dev, path.stat().st_ino)
            assert shared.state()[1:] == (0, path.stat().st_size)  # "one" began at 0
        old.emit(make_record("two"))  # moves to the new lock file first
        assert os.fstat(old._lock._fd).st_ino == lock_path.stat().st_ino  # type: ignore[arg-type]
        new.emit(make_record("three"))
    finally:
        old.close()
        if new is not None:
            new.close()
    assert path.read_text() == "one\ntwo\nthree\n"
    assert len(old.errors_seen) == 1
    assert "deleted or replaced" in str(old.errors_seen[0])
    assert new.errors_seen == []


# -- truncated ---------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 10, 40], ids=["empty", "inside-magic", "inside-state"])
def test_a_truncated_lock_file_is_repaired_and_costs_no_record(tmp_path: Path, length: int) -> None:
    """A lock file cut short under a running handler (a careless truncate) never touches
    memory past its end: the next record repairs the header, is written, and the
    repair is reported once."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, maxBytes=1000, backupCount=2, watch_interval=0)
    try:
        handler.emit(make_record("one"))
        os.truncate(tmp_path / ".__app.lock", length)
        handler.emit(make_record("two"))
        handler.emit(make_record("three"))
    finally:
        handler.close()
    assert path.read_text() == "one\ntwo\nthree\n"
    assert len(handler.errors_seen) == 1
    assert "repaired" in str(handler.errors_seen[0])


@pytest.mark.timeout(120)
def test_processes_survive_their_lock_file_being_truncated_again_and_again(
    tmp_path: Path,
) -> None:
    """Four processes log while the lock file is truncated to 0 bytes twenty times: none
    dies (SIGBUS), and every record is there exactly once."""
    path = str(tmp_path / "app.log")
    count = 4000
    kwargs = {"maxBytes": 20000, "backupCount": 1000}
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(4)
    processes = [
        ctx.Process(target=fleet_workers.mplog_writer, args=(path, kwargs, w, count, start))
        for w in range(4)
    ]
    try:
        for process in processes:
            process.start()
        lock_file = tmp_path / ".__app.lock"
        deadline = time.monotonic() + 60  # the workers create it (slowly under coverage)
        while not lock_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(20):
            time.sleep(0.02)
            os.truncate(lock_file, 0)
    finally:
        fleet_workers.run_fleet(processes, start)
    fleet_workers.assert_each_once(
        fleet_workers.read_fleet(tmp_path), dict.fromkeys(range(4), count)
    )


# -- fork while another thread writes ------------------------------------------------------------

_FORK_DURING_WRITE = """
import os, sys, threading, time, logging
import mplog

handler = mplog.ConcurrentRotatingFileHandler(sys.argv[1])
inside = threading.Event()
real_write = os.write

def stalled_write(fd, data):
    if fd == handler._fd:
        inside.set()
        time.sleep(60)  # holds the lock until this process is killed
    return real_write(fd, data)

os.write = stalled_write
threading.Thread(target=handler.emit, args=(logging.makeLogRecord({"msg": "x"}),),
                 daemon=True).start()
inside.wait(10)
pid = os.fork()
if pid == 0:
    time.sleep(60)  # a child that lives on, doing nothing
    os._exit(0)
print(pid, flush=True)
time.sleep(60)
"""


@pytest.mark.timeout(60)
def test_a_child_forked_during_a_write_does_not_keep_the_lock(tmp_path: Path) -> None:
    """A process forks while another of its threads holds the lock mid-write, and is then
    killed: the lock is free at once, although the forked child lives on (the child
    holds no descriptor of the parent's lock)."""
    script = tmp_path / "fork_during_write.py"
    script.write_text(textwrap.dedent(_FORK_DURING_WRITE))
    lock_path = tmp_path / ".__app.lock"
    with subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "app.log")],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as parent:
        child = 0
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            probe = InterProcessLock(str(lock_path), timeout=0)
            with pytest.raises(mplog.LockTimeout):  # the parent's thread holds it
                probe.acquire()
            parent.kill()
            parent.wait(10)
            probe.timeout = 5.0
            probe.acquire()  # free although the child still runs
            assert _alive(child), "the forked child should still be running"
            probe.release()
            probe.close()
        finally:
            if parent.returncode is None:
                parent.kill()
            if child:
                os.killpg(parent.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- two logs, one lock file -----------------------------------------------------------------------


def test_two_logs_that_would_share_a_lock_file_are_refused(tmp_path: Path) -> None:
    """logs/app and logs/app.log both map to .__app.lock: the second handler fails at
    construction, naming both logs and the fix."""
    first = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", when="midnight")
    try:
        with pytest.raises(mplog.LockFileConflict) as caught:
            mplog.ConcurrentRotatingFileHandler(tmp_path / "app", when="H")
    finally:
        first.close()
    message = str(caught.value)
    assert str(tmp_path / "app") in message
    assert str(tmp_path / "app.log") in message
    assert "lock_file_directory" in message
    assert isinstance(caught.value, ValueError)


def test_one_lock_file_directory_for_two_logs_of_one_name_is_refused(tmp_path: Path) -> None:
    """a/app.log and b/app.log with one lock_file_directory would share .__app.lock."""
    locks = tmp_path / "locks"
    first = mplog.ConcurrentRotatingFileHandler(
        tmp_path / "a" / "app.log", lock_file_directory=locks
    )
    try:
        with pytest.raises(mplog.LockFileConflict, match="lock_file_directory"):
            mplog.ConcurrentRotatingFileHandler(
                tmp_path / "b" / "app.log", lock_file_directory=locks
            )
    finally:
        first.close()


def test_with_delay_the_conflict_is_reported_at_the_first_record(tmp_path: Path) -> None:
    """delay=True opens nothing at construction: the first record reports the conflict
    through handleError, and nothing is written to the other log."""
    first = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log")
    second = RecordingHandler(tmp_path / "app", delay=True)
    try:
        first.emit(make_record("first"))
        second.emit(make_record("second"))
    finally:
        first.close()
        second.close()
    assert [type(e) for e in second.errors_seen] == [mplog.LockFileConflict]
    assert (tmp_path / "app.log").read_text() == "first\n"


def test_a_lock_file_of_a_log_that_no_longer_exists_is_taken_over(tmp_path: Path) -> None:
    """Renaming a log in the configuration (app -> app.log) works once the old log file
    is gone: its lock file is taken over."""
    old = mplog.ConcurrentRotatingFileHandler(tmp_path / "app")
    old.emit(make_record("old"))
    old.close()
    (tmp_path / "app").unlink()
    new = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log")
    try:
        new.emit(make_record("new"))
    finally:
        new.close()
    assert (tmp_path / "app.log").read_text() == "new\n"


def test_a_bare_lock_claims_nothing(tmp_path: Path) -> None:
    """InterProcessLock without a log path (a test holder, a tool) never conflicts with a log."""
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log")
    try:
        with InterProcessLock(str(tmp_path / ".__app.lock")):
            pass
        handler.emit(make_record("still ours"))
    finally:
        handler.close()
    assert (tmp_path / "app.log").read_text() == "still ours\n"
