"""Signal handlers that log or reopen the log while the thread is inside mplog.

gunicorn's workers reopen their log files from their SIGUSR1 handler
(``acquire(); close(); stream = _open(); release()``), and a signal handler may
log.  Python runs the handler between two bytecodes of the main thread, wherever
it is: waiting for the lock, holding it, inside the batched queue, rotating.  Each
test delivers the signal at one such point and checks that the handler returns
(no hang: each test has a timeout), the record being written is whole, the
handler stays usable, and it keeps its mode.  (One test, in a subprocess, does in
the middle of every write what gunicorn's signal handler does, compression on.)
"""

from __future__ import annotations

import fcntl
import gzip
import logging
import os
import re
import signal
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

import mplog
from helpers import (
    BASE,
    EXAMPLES,
    RecordingHandler,
    assert_exactly_once,
    example_env,
    free_port,
    log_lines,
    make_record,
    names_in,
    read_log,
    running_server,
)

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals"),
]


def gunicorn_reopen(handler: logging.Handler) -> None:
    """What gunicorn's ``Logger.reopen_files`` does to every FileHandler."""
    handler.acquire()
    try:
        if handler.stream:  # type: ignore[attr-defined]
            handler.close()
            handler.stream = handler._open()  # type: ignore[attr-defined]
    finally:
        handler.release()


@pytest.fixture
def on_sigusr1() -> Iterator[Callable[[Callable[[], None]], list[str]]]:
    """Install a SIGUSR1 handler running the given action; returns the list it appends
    "done" to once the action returned.  The old handler is restored afterwards."""
    old = signal.getsignal(signal.SIGUSR1)
    done: list[str] = []

    def install(action: Callable[[], None]) -> list[str]:
        def handle(signum: int, frame: Any) -> None:
            action()
            done.append("done")

        signal.signal(signal.SIGUSR1, handle)
        return done

    yield install
    signal.signal(signal.SIGUSR1, old)


def _signal_in_next_write(handler: mplog.ConcurrentRotatingFileHandler) -> Callable[..., int]:
    """An ``os.write`` that raises SIGUSR1 in this thread at the handler's next write
    (the lock held, the record not yet written), once."""
    real_write = os.write
    armed = [True]

    def write_with_signal(fd: int, data: Any) -> int:
        if armed[0] and fd == handler._fd:
            armed[0] = False
            signal.raise_signal(signal.SIGUSR1)
        return real_write(fd, data)

    return write_with_signal


def _reopen_and_log(handler: logging.Handler) -> Callable[[], None]:
    def action() -> None:
        gunicorn_reopen(handler)
        handler.handle(make_record("from the signal handler"))

    return action


# -- while waiting for the lock ----------------------------------------------------------------


@pytest.mark.parametrize("lock_timeout", [None, 20.0], ids=["flock", "polling"])
def test_reopen_while_waiting_for_the_lock_returns_at_once(
    tmp_path: Path, on_sigusr1: Any, lock_timeout: float | None
) -> None:
    """Another process holds the lock; the main thread waits for it inside emit when
    SIGUSR1 arrives.  The signal handler's reopen and record return while the lock is
    still held elsewhere; once it is free, the waiting record is written, the file is
    reopened, and later records are written as usual."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, lock_timeout=lock_timeout)
    handler.emit(make_record("before"))
    done = on_sigusr1(_reopen_and_log(handler))
    # Another process's lock: its own open file description, released from any thread.
    holder = os.open(tmp_path / ".__app.lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    main = threading.get_ident()
    released = threading.Event()

    def signal_then_release() -> None:
        deadline = time.monotonic() + 10
        # The main thread holds the thread lock (and waits in flock) once this fails.
        thread_lock = handler._lock._core.thread_lock
        while thread_lock.acquire(False) and time.monotonic() < deadline:
            thread_lock.release()
            time.sleep(0.01)
        time.sleep(0.1)  # let the main thread reach the wait itself
        signal.pthread_kill(main, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
        released.set()
        fcntl.flock(holder, fcntl.LOCK_UN)

    thread = threading.Thread(target=signal_then_release)
    thread.start()
    try:
        handler.emit(make_record("waiting"))
        thread.join(15)
        assert done == ["done"], "the signal handler did not return while the lock was held"
        assert released.is_set()
        handler.emit(make_record("after"))
    finally:
        os.close(holder)
        handler.close()
    assert path.read_text() == "before\nwaiting\nafter\n"
    assert [type(e) for e in handler.errors_seen] == [mplog.ReentrantLogging]


# -- while holding the lock, in the middle of a write ------------------------------------------


def test_reopen_in_the_middle_of_a_write_keeps_the_record_whole(
    tmp_path: Path, on_sigusr1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGUSR1 lands while the record is being written (the lock held): the record is
    written whole into the file it started in, the reopen happens right after, and the
    handler goes on writing."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path)
    done = on_sigusr1(_reopen_and_log(handler))
    write_with_signal = _signal_in_next_write(handler)
    fd_before = None
    try:
        handler.emit(make_record("before"))
        fd_before = handler.stream
        monkeypatch.setattr(os, "write", write_with_signal)
        handler.emit(make_record("outer"))
        monkeypatch.undo()
        assert done == ["done"]
        assert handler.stream is not fd_before, "not reopened"
        handler.emit(make_record("after"))
    finally:
        handler.close()
    assert path.read_text() == "before\nouter\nafter\n"
    assert [type(e) for e in handler.errors_seen] == [mplog.ReentrantLogging]


_REOPEN_DURING_WRITE = """
import faulthandler, logging, sys
import mplog

faulthandler.dump_traceback_later(60, exit=True)  # a deadlock fails, loudly


handler = mplog.ConcurrentRotatingFileHandler(
    sys.argv[1], maxBytes=120, backupCount=50, compress="gzip", compress_delay=0
)
real_write = handler._file.write  # the active file's write, the writers' lock held
reopened = 0


def write_then_reopen(shared, data, size):
    global reopened
    real_write(shared, data, size)
    if reopened < 5:  # as if SIGUSR1 arrived here: gunicorn's reopen_files()
        reopened += 1
        handler.close()
        handler.stream = handler._open()


handler._file.write = write_then_reopen
for number in range(40):
    handler.emit(logging.makeLogRecord({"msg": f"record {number} " + "x" * 20}))
handler.close()
if reopened != 5:  # else this test would test nothing
    sys.exit(f"the writes were interrupted {reopened} times, not 5")
print("done")
"""


# the default timeout, not this module's 30 s: past the child's own 60 s watchdog, which
# dumps the tracebacks of a deadlock
@pytest.mark.timeout(120)
def test_close_from_a_signal_handler_that_interrupted_a_write(tmp_path: Path) -> None:
    """gunicorn's reopen_files() runs close() then _open() in a signal handler, which may
    interrupt emit() while it holds the writers' lock: close() must neither wait for the
    compressor (which needs that lock) nor release the lock under the write; every record
    ends up once in the files and every backup compressed."""
    import subprocess

    script = tmp_path / "reopen.py"
    script.write_text(_REOPEN_DURING_WRITE, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    result = subprocess.run(
        [sys.executable, str(script), str(logs / BASE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    names = names_in(logs)
    assert not [n for n in names if n != BASE and not n.endswith(".gz")], names
    records = [line for name in names for line in read_log(logs / name).decode().splitlines()]
    numbers = sorted(int(line.split()[1]) for line in records)
    assert numbers == list(range(40))


# -- batched: inside the queue ------------------------------------------------------------------


def test_reopen_inside_the_batched_queue_keeps_batched_mode(
    tmp_path: Path, on_sigusr1: Any
) -> None:
    """SIGUSR1 lands while a record is being queued (the queue's lock held): the signal
    handler's reopen returns at once, its own record is queued too, every record is
    written, and the handler is still batched afterwards (a writer thread, not sync)."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, batched=True)
    batch = handler._batch
    assert batch is not None
    done = on_sigusr1(_reopen_and_log(handler))

    class SignalsOnAppend(list):  # type: ignore[type-arg]
        armed = True

        def append(self, item: Any) -> None:
            if SignalsOnAppend.armed:
                SignalsOnAppend.armed = False
                signal.raise_signal(signal.SIGUSR1)
            super().append(item)

    try:
        handler.emit(make_record("before"))
        handler.flush()
        with batch._cond:
            batch._pending = SignalsOnAppend(batch._pending)
        handler.emit(make_record("outer"))
        assert done == ["done"]
        handler.emit(make_record("after"))
        assert not batch.stopped, "reopening left the handler in sync mode"
        assert batch._thread is not None
        assert batch._thread.is_alive()
        handler.flush()
    finally:
        handler.close()
    lines = path.read_text().splitlines()
    assert sorted(lines) == sorted(["before", "outer", "from the signal handler", "after"])
    assert lines[0] == "before"
    assert handler.errors_seen == []


def test_reopen_from_outside_keeps_batched_mode(tmp_path: Path) -> None:
    """gunicorn's reopen at a quiet moment (close, then _open) leaves a batched handler
    batched: records go through the writer thread again, not synchronously."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, batched=True)
    batch = handler._batch
    assert batch is not None
    try:
        handler.emit(make_record("one"))
        gunicorn_reopen(handler)
        assert not batch.stopped
        handler.emit(make_record("two"))
        assert batch._thread is not None, "written synchronously: batched mode lost"
        handler.flush()
    finally:
        handler.close()
    assert path.read_text() == "one\ntwo\n"


# -- rotating, and handing the backup to the compressor -----------------------------------------


def test_reopen_while_the_rotation_wakes_the_compressor(tmp_path: Path, on_sigusr1: Any) -> None:
    """SIGUSR1 lands while the rotation hands the new backup to the compressor (its
    state lock held): no deadlock; the backup is compressed, every record is kept."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, maxBytes=30, backupCount=5, compress="gzip", compress_delay=0)
    archiver = handler._archiver
    assert archiver is not None
    done = on_sigusr1(_reopen_and_log(handler))
    real_state = archiver._state

    class SignalsWhileHeld:
        armed = True

        def __enter__(self) -> None:
            real_state.acquire()
            if SignalsWhileHeld.armed:
                SignalsWhileHeld.armed = False
                signal.raise_signal(signal.SIGUSR1)

        def __exit__(self, *exc: object) -> None:
            real_state.release()

    archiver._state = SignalsWhileHeld()  # type: ignore[assignment]
    try:
        for i in range(4):
            handler.emit(make_record(f"record {i:02d} {'x' * 8}"))  # 19 bytes: rotates at 2
        assert done == ["done"]
    finally:
        handler.close()
    texts = [gzip.decompress(p.read_bytes()).decode() for p in sorted(tmp_path.glob("*.gz"))]
    assert sorted([*texts, path.read_text()]) == [
        "record 00 xxxxxxxx\n",
        "record 01 xxxxxxxx\n",
        "record 02 xxxxxxxx\n",
        "record 03 xxxxxxxx\n",
    ]


def test_rollover_and_flush_from_a_signal_handler_are_deferred(
    tmp_path: Path, on_sigusr1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """doRollover() and flush() called from a signal handler that interrupted a write
    never wait for the lock this thread holds: the rollover runs once the write is done."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, backupCount=3)
    done = on_sigusr1(lambda: (handler.flush(), handler.doRollover()))
    write_with_signal = _signal_in_next_write(handler)
    try:
        handler.emit(make_record("one"))
        monkeypatch.setattr(os, "write", write_with_signal)
        handler.emit(make_record("two"))
        monkeypatch.undo()
        assert done == ["done"]
        handler.emit(make_record("three"))
    finally:
        handler.close()
    assert (tmp_path / "app.log.1").read_text() == "one\ntwo\n"
    assert path.read_text() == "three\n"
    assert handler.errors_seen == []


# -- a real gunicorn under load, reopening its logs several times a second -------------------

_STORM_CONFIG = """
import sys
sys.path.insert(0, {examples!r})
from gunicorn_conf import *  # noqa: F403 - the example, rotating every few dozen requests
for handler in logconfig_dict["handlers"].values():  # noqa: F405
    handler["maxBytes"], handler["backupCount"] = 4000, 1000
    handler["batched"] = {batched!r}
timeout = 20  # a hung worker is killed (and reported) well within the test
"""


@pytest.mark.timeout(150)
@pytest.mark.parametrize("batched", [False, True], ids=["sync", "batched"])
def test_gunicorn_reopening_its_logs_under_load_never_hangs(tmp_path: Path, batched: bool) -> None:
    """3 sync workers serve 4 clients while the master gets SIGUSR1 (what logrotate's
    postrotate sends) ten times a second for three seconds; each worker reopens its logs
    in its signal handler, often while it waits for the log lock.  No worker hangs or is
    replaced, every request is answered, and every request's access and application
    records are in the logs exactly once."""
    log_dir = tmp_path / "example-logs"
    config = tmp_path / "gunicorn_storm.py"
    config.write_text(_STORM_CONFIG.format(examples=str(EXAMPLES), batched=batched))
    port = free_port()
    env = example_env(MPLOG_EXAMPLE_DIR=str(log_dir), XDG_RUNTIME_DIR=str(tmp_path))
    args = [sys.executable, "-m", "gunicorn", "-c", str(config), "--bind", f"127.0.0.1:{port}"]
    error_log = log_dir / "gunicorn.error.log"
    ids: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def client() -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for _ in range(400):
            if stop.is_set():
                return
            rid = uuid.uuid4().hex
            try:
                with opener.open(f"http://127.0.0.1:{port}/?rid={rid}", timeout=15) as response:
                    assert response.read() == b"ok\n"
            except BaseException as error:  # collected, asserted below
                failures.append(error)
                return
            ids.append(rid)

    with running_server(
        args, tmp_path, (error_log, "Booting worker with pid", 3), env=env
    ) as server:
        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        try:
            for _ in range(30):
                time.sleep(0.1)
                server.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in clients:
                thread.join(60)
    assert not failures, f"{len(failures)} requests failed, first: {failures[0]!r}"
    assert len(ids) > 100
    access = log_lines(log_dir, "gunicorn.access.log")
    assert_exactly_once(re.findall(r"rid=(\w+)", "\n".join(access)), ids)
    errors = "\n".join(log_lines(log_dir, "gunicorn.error.log"))
    handled = re.findall(r" app: handled /\?rid=(\w+)", errors)
    assert_exactly_once(handled, ids)
    assert "WORKER TIMEOUT" not in errors
    assert len(re.findall(r"Booting worker with pid", errors)) == 3, "a worker was replaced"
    assert errors.count("Handling signal: usr1") >= 5  # the master got the storm


# -- a __del__ that logs while mplog starts one of its threads ----------------------------------


def test_a_record_logged_while_the_writer_thread_starts_starts_no_second_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting the batched writer allocates, so the garbage collector may run a __del__
    that logs, re-entering the queue before the writer exists: still one writer, and every
    record written once, in order."""
    import mplog._batch

    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, batched=True)
    real_thread = threading.Thread
    started: list[threading.Thread] = []

    def thread_logging_first(*args: Any, **kwargs: Any) -> threading.Thread:
        if not started:
            started.append(real_thread())  # the re-entrant record comes first
            handler.handle(make_record("from __del__"))
        thread = real_thread(*args, **kwargs)
        started.append(thread)
        return thread

    monkeypatch.setattr(mplog._batch.threading, "Thread", thread_logging_first)
    try:
        for i in range(5):
            handler.emit(make_record(f"main {i}"))
        handler.flush()
    finally:
        monkeypatch.undo()
        handler.close()
    assert len(started) == 2, "a second writer thread was started"
    assert path.read_text().splitlines() == [
        "main 0",
        "from __del__",
        "main 1",
        "main 2",
        "main 3",
        "main 4",
    ]


def test_a_deferred_reopen_that_fails_is_reported_not_raised(
    tmp_path: Path, on_sigusr1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reopen a signal handler asked for runs when the interrupted logging call
    leaves; if it fails (the directory gone unwritable, say), that logging call still
    returns normally, the failure goes to handleError, and the next record reopens."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path)
    on_sigusr1(lambda: gunicorn_reopen(handler))
    write_with_signal = _signal_in_next_write(handler)
    real_open_file = handler._open_file
    failures = [OSError(13, "Permission denied", str(path))]

    def open_file_failing_once() -> Any:
        if failures:
            raise failures.pop()
        return real_open_file()

    try:
        handler.emit(make_record("one"))
        monkeypatch.setattr(os, "write", write_with_signal)
        monkeypatch.setattr(handler, "_open_file", open_file_failing_once)
        handler.emit(make_record("two"))  # the deferred reopen fails when this call leaves
        monkeypatch.undo()
        handler.emit(make_record("three"))
    finally:
        handler.close()
    assert path.read_text() == "one\ntwo\nthree\n"
    assert [getattr(e, "errno", None) for e in handler.errors_seen] == [13]
