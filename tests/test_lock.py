"""InterProcessLock and the shared state in its header."""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

import mplog
import mplog._lock
from helpers import RecordingHandler
from mplog._lock import InterProcessLock

WAIT = 10.0  # seconds; only reached if the behaviour under test is broken


@pytest.mark.timeout(30)
def test_a_contended_acquire_waits_for_the_holder(tmp_path: Path) -> None:
    """With the lock held through another descriptor, acquire() retries, then blocks,
    and returns only once the holder lets go."""
    path = str(tmp_path / ".__app.lock")
    holder, waiter = InterProcessLock(path), InterProcessLock(path)
    holder.acquire()
    acquired = threading.Event()

    def wait_for_lock() -> None:
        waiter.acquire()
        acquired.set()
        waiter.release()

    thread = threading.Thread(target=wait_for_lock)
    try:
        thread.start()
        assert not acquired.wait(0.3), "acquired while another descriptor held the lock"
        holder.release()
        assert acquired.wait(WAIT)
    finally:
        thread.join(WAIT)
        holder.close()
        waiter.close()


@pytest.mark.timeout(30)
def test_a_failed_contended_acquire_releases_the_thread_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the blocking wait itself fails (a signal handler raising, say), the error
    propagates and the lock is usable again afterwards."""
    path = str(tmp_path / ".__app.lock")
    holder, waiter = InterProcessLock(path), InterProcessLock(path)
    waiter.acquire()  # opens the descriptor and the mapping: the fast path from now on
    waiter.release()
    holder.acquire()
    try:

        def interrupted(fd: int) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(mplog._lock, "_lock", interrupted)
        with pytest.raises(KeyboardInterrupt):
            waiter.acquire()
        assert not waiter.owned()
        monkeypatch.undo()
    finally:
        holder.release()
        holder.close()
    waiter.acquire()  # would deadlock on a thread lock left held
    assert waiter.owned()
    waiter.release()
    waiter.close()


class _RawHolder:
    """The lock held through a descriptor of its own, as another process would hold it."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def let_go(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


def _contended_waiter(tmp_path: Path, network: bool = False) -> tuple[InterProcessLock, _RawHolder]:
    path = str(tmp_path / ".__app.lock")
    waiter = InterProcessLock(path, network=network)
    waiter.acquire()  # opens the descriptor: the fast path from now on
    waiter.release()
    return waiter, _RawHolder(path)


@pytest.mark.timeout(30)
def test_a_contended_acquire_gives_the_core_away_before_it_sleeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held by another process, the lock is tried again after each sched_yield (the
    holder may be waiting for this core), and taken there once the holder lets go,
    without sleeping in flock."""
    waiter, holder = _contended_waiter(tmp_path)
    yields: list[int] = []
    blocking: list[int] = []

    def yield_core() -> None:
        yields.append(1)
        if len(yields) == 10:
            holder.let_go()

    monkeypatch.setattr(mplog._lock, "_yield", yield_core)
    monkeypatch.setattr(mplog._lock, "_lock", blocking.append)
    try:
        waiter.acquire()
        assert waiter.owned()
        waiter.release()
    finally:
        holder.close()
        waiter.close()
    assert (len(yields), blocking) == (10, [])


@pytest.mark.parametrize(
    ("sched_yield", "network"),
    [(True, False), (False, False), (True, True)],
    ids=["posix", "without-sched_yield", "network-filesystem"],
)
@pytest.mark.timeout(30)
def test_a_holder_that_does_not_let_go_costs_a_bounded_number_of_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sched_yield: bool, network: bool
) -> None:
    """A holder that keeps the lock (stopped, or writing for long): after a bounded
    number of tries the waiter sleeps in flock until the holder lets go.  On a network
    filesystem, where each try asks the server, it does not yield and try again."""
    waiter, holder = _contended_waiter(tmp_path, network)
    yields: list[int] = []
    tries: list[int] = []
    real_try_lock, real_lock = mplog._lock._try_lock, mplog._lock._lock

    def try_lock(fd: int) -> bool:
        tries.append(1)
        return real_try_lock(fd)

    def sleep_in_flock(fd: int) -> None:
        holder.let_go()  # what the holder does, eventually
        real_lock(fd)

    monkeypatch.setattr(mplog._lock, "_yield", (lambda: yields.append(1)) if sched_yield else None)
    monkeypatch.setattr(mplog._lock, "_try_lock", try_lock)
    monkeypatch.setattr(mplog._lock, "_lock", sleep_in_flock)
    try:
        waiter.acquire()
        assert waiter.owned()
        waiter.release()
    finally:
        holder.close()
        waiter.close()
    expected_yields = mplog._lock._YIELDS if sched_yield and not network else 0
    assert len(yields) == expected_yields
    assert len(tries) == mplog._lock._RETRIES + expected_yields


@pytest.mark.timeout(30)
def test_an_interrupted_yield_releases_the_thread_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the waiter yields: it propagates, and the lock is usable after."""
    waiter, holder = _contended_waiter(tmp_path)

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mplog._lock, "_yield", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            waiter.acquire()
        assert not waiter.owned()
    finally:
        holder.let_go()
        holder.close()
    monkeypatch.undo()
    waiter.acquire()  # would deadlock on a thread lock left held
    assert waiter.owned()
    waiter.release()
    waiter.close()


@pytest.mark.timeout(30)
def test_with_a_timeout_a_contended_acquire_yields_before_it_sleeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lock_timeout set: the waiter tries again after each sched_yield before it polls
    with sleeps; a holder that lets go meanwhile is followed at once."""
    path = str(tmp_path / ".__app.lock")
    waiter = InterProcessLock(path, timeout=5.0)
    waiter.acquire()  # creates the lock file
    waiter.release()
    holder = _RawHolder(path)
    yields: list[int] = []

    def yield_core() -> None:
        yields.append(1)
        if len(yields) == 5:
            holder.let_go()

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s")

    monkeypatch.setattr(mplog._lock, "_yield", yield_core)
    monkeypatch.setattr(mplog._lock.time, "sleep", no_sleep)
    try:
        waiter.acquire()
        assert waiter.owned()
        waiter.release()
    finally:
        monkeypatch.undo()
        holder.close()
        waiter.close()
    assert len(yields) == 5


@pytest.mark.timeout(30)
def test_a_zero_timeout_gives_up_after_one_try_past_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lock_timeout=0 against a held lock: LockTimeout at once, not after every yield."""
    path = str(tmp_path / ".__app.lock")
    waiter = InterProcessLock(path, timeout=0)
    waiter.acquire()
    waiter.release()
    holder = _RawHolder(path)
    yields: list[int] = []
    monkeypatch.setattr(mplog._lock, "_yield", lambda: yields.append(1))
    try:
        with pytest.raises(mplog.LockTimeout):
            waiter.acquire()
        assert not waiter.owned()
    finally:
        holder.close()
        waiter.close()
    assert len(yields) == 1


def test_the_in_flight_mark_is_the_end_of_the_write(tmp_path: Path) -> None:
    """begin_write marks [size, end) in flight; end_write publishes the size and clears it."""
    lock = InterProcessLock(str(tmp_path / ".__app.lock"))
    with lock as shared:
        shared.end_write(100)
        assert shared.load()[1:] == (100, False)
        shared.begin_write(150)
        assert shared.load()[1:] == (100, True)
        assert shared.in_flight() == (100, 150)
        shared.end_write(150)
        assert shared.load()[1:] == (150, False)
        generation = shared.new_file(0, (1, 2))
        assert shared.load() == (generation, 0, False)
        assert shared.file_id() == (1, 2)
    lock.close()


def test_the_header_on_disk_is_little_endian_and_names_its_log(tmp_path: Path) -> None:
    """The shared state is read and written as little-endian words whatever the host's
    byte order (hosts of both orders may share a log over NFS), and the header records
    which log the lock file serves."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, maxBytes=60, backupCount=3)
    try:
        for i in range(4):
            handler.emit(logging.makeLogRecord({"msg": f"record {i:02d} " + "x" * 8}))
    finally:
        handler.close()
    raw = (tmp_path / ".__app.lock").read_bytes()
    assert raw[:8] == b"mplog\x00\x00\x03"
    generation, size, end = struct.unpack_from("<QQQ", raw, 8)
    # The fourth record, after a rotation, begun at 0 and complete: the file's length
    # says so (PROTOCOL.md 3.1; its size is published by the next writer).
    assert (size, end) == (0, path.stat().st_size) == (0, 19)
    assert generation >= 2
    dev, ino = struct.unpack_from("<QQ", raw, 48)
    assert (dev, ino) == (path.stat().st_dev, path.stat().st_ino)
    (length,) = struct.unpack_from("<Q", raw, 72)
    assert raw[80 : 80 + length].decode() == str(path)


@pytest.mark.timeout(30)
def test_a_record_logged_while_this_thread_writes_is_reported_not_a_deadlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A __del__ run by the garbage collector, or a signal handler, can log while this
    thread holds the lock: that record goes to handleError (waiting would deadlock),
    and the record being written is written whole."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path)
    real_write = os.write
    nested = [True]

    def write_logging_first(fd: int, data: Any) -> int:
        if nested[0] and fd == handler._fd:
            nested[0] = False
            handler.handle(logging.makeLogRecord({"msg": "from __del__"}))
        return real_write(fd, data)

    try:
        handler.emit(logging.makeLogRecord({"msg": "before"}))
        monkeypatch.setattr(os, "write", write_logging_first)
        handler.emit(logging.makeLogRecord({"msg": "outer"}))
        monkeypatch.setattr(os, "write", real_write)
        handler.emit(logging.makeLogRecord({"msg": "after"}))
    finally:
        handler.close()
    assert path.read_text(encoding="utf-8") == "before\nouter\nafter\n"
    assert [type(e) for e in handler.errors_seen] == [mplog.ReentrantLogging]
    assert ".__app.lock" in str(handler.errors_seen[0])


@pytest.mark.timeout(30)
def test_a_record_logged_from_inside_the_batched_queue_is_queued_too(tmp_path: Path) -> None:
    """In batched mode the same reentry (here: while a record is being queued) queues the
    second record as well, instead of deadlocking on the queue's lock."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, batched=True)
    batch = handler._batch
    assert batch is not None

    class LogsOnAppend(list):  # type: ignore[type-arg]
        armed = True

        def append(self, item: Any) -> None:
            if LogsOnAppend.armed:
                LogsOnAppend.armed = False
                handler.handle(logging.makeLogRecord({"msg": "from __del__"}))
            super().append(item)

    try:
        with batch._cond:
            batch._pending = LogsOnAppend(batch._pending)
        handler.emit(logging.makeLogRecord({"msg": "outer"}))
        handler.flush()
    finally:
        handler.close()
    assert sorted(path.read_text(encoding="utf-8").splitlines()) == ["from __del__", "outer"]
    assert handler.errors_seen == []
