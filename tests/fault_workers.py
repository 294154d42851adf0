"""Child-process entry points for test_faults.py: workers that can be made to stall
at a chosen point of the write path, so the test can kill or stop them exactly there.

Records use mp_workers' framing (length and crc32 per record), so the reader can
prove every record whole.  A worker publishes, before logging record ``seq``,
``progress[worker] = seq``: when it is killed with ``progress == p``, records
``0 .. p-1`` were written (their ``emit`` returned) and record ``p`` may or may not
be.  ``progress`` is a lock-free shared array: a lock inside it could be held by
the process the test kills.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import mp_workers
import mplog._active
import mplog._handler

# Where a worker can be made to stall, holding the inter-process lock in every case:
FAULTS = (
    "in_lock",  # inside emit, before anything is written
    "torn_write",  # half of a record written (as when SIGKILL interrupts a big write)
    "after_write",  # the record written, its new size not yet published to the others
    "rotate_before",  # inside the rotator, before the file is renamed
    "rotate_after",  # inside the rotator, right after the file was renamed
)

STALL_LIMIT = 90.0  # seconds a stalled worker waits for the test before giving up


class _OsProxy:
    """Stands in for the ``os`` module inside mplog._active, with a replaced ``write``."""

    def __init__(self, write: Any) -> None:
        self.write = write

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def _stall(reached: Any, resume: Any) -> None:
    """Tell the test we are at the fault point, then wait to be killed, or until something
    arrives on *resume* (the receiving end of a pipe: the test can send while this process
    is stopped, which setting a multiprocessing Event cannot do without deadlocking)."""
    reached.set()
    if resume is None:  # wait to be killed; bounded, so an orphan never lingers
        threading.Event().wait(STALL_LIMIT)
        os._exit(3)
    if not resume.poll(STALL_LIMIT):
        raise TimeoutError("nobody resumed the stalled worker")


def install_fault(
    handler: mplog.ConcurrentRotatingFileHandler,
    fault: str,
    armed: list[bool],
    reached: Any,
    resume: Any = None,
) -> None:
    """Make *handler* stall at *fault* the first time it gets there while ``armed[0]``."""
    fired = [False]

    def due() -> bool:
        if armed[0] and not fired[0]:
            fired[0] = True
            return True
        return False

    if fault in ("in_lock", "torn_write", "after_write"):

        def stalling_write(fd: int, data: Any) -> int:
            if fd != handler._fd or not due():
                return os.write(fd, data)
            if fault == "in_lock":  # the record is about to be written
                _stall(reached, resume)
                return os.write(fd, data)
            if fault == "torn_write":
                os.write(fd, bytes(data[: len(data) // 2]))
            else:
                os.write(fd, data)
            _stall(reached, resume)
            raise AssertionError("unreachable: the test kills this process")

        mplog._active.os = _OsProxy(stalling_write)  # type: ignore[assignment]  # this child only
    elif fault in ("rotate_before", "rotate_after"):

        def stalling_rotator(source: str, dest: str) -> None:
            stall = due()
            if stall and fault == "rotate_before":
                _stall(reached, resume)
            os.rename(source, dest)
            if stall and fault == "rotate_after":
                _stall(reached, resume)

        handler.rotator = stalling_rotator
    else:
        raise ValueError(f"fault={fault!r}: expected one of {FAULTS}")


def faulty_worker(
    path: str,
    handler_kwargs: dict[str, Any],
    worker: int,
    count: int,
    payload_size: int,
    progress: Any,
    fault: tuple[str, int, Any, Any] | None,
    barrier: Any,
) -> None:
    """Log *count* same-size framed records, publishing progress.

    *fault* is ``(name, seq, reached, resume)``: stall at fault point *name* the first
    time it is reached at or after record *seq* (see :func:`install_fault`); or
    ``("after", 0, reached, None)``: start logging only once *reached* is set (a survivor
    that must log after the victim stalled, whatever the scheduler does).
    """
    logger = mp_workers.make_logger(path, handler_kwargs, f"mplog.tests.w{worker}")
    armed = [False]
    gate = None
    if fault is not None and fault[0] == "after":  # a survivor: start once the victim stalls
        gate, fault = fault[2], None
    if fault is not None:
        name, at_seq, reached, resume = fault
        install_fault(logger.handlers[0], name, armed, reached, resume)  # type: ignore[arg-type]
    barrier.wait(60)
    if gate is not None:
        gate.wait(60)
    for seq in range(count):
        progress[worker] = seq
        armed[0] = fault is not None and seq >= at_seq
        mp_workers.emit(logger, worker, seq, "small", payload_size)
    progress[worker] = count
    mp_workers.close_logger(logger)


def rotate_watching_worker(
    path: str,
    handler_kwargs: dict[str, Any],
    worker: int,
    stop: Any,
    counts: Any,
    last_created: Any,
    barrier: Any,
) -> None:
    """Log framed records until *stop* is set; publish how many and the last one's time.

    Used while an outside program (logrotate) moves the file: ``last_created[worker]``
    is the ``created`` stamp of the last record whose ``emit`` returned.
    """
    logger = mp_workers.make_logger(path, handler_kwargs, f"mplog.tests.w{worker}")
    created = [0.0]

    class Stamp(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            created[0] = record.created
            return True

    logger.addFilter(Stamp())
    barrier.wait(60)
    seq = 0
    while not stop.is_set():
        mp_workers.emit(logger, worker, seq, "small", 40)
        seq += 1
        counts[worker] = seq
        last_created[worker] = created[0]
    mp_workers.close_logger(logger)


def threaded_forker(
    path: str,
    handler_kwargs: dict[str, Any],
    rounds: int,
    children: int,
    count: int,
    thread_count: Any,
) -> None:
    """A process whose thread logs continuously while its main thread forks children
    that log *count* records each through the inherited handler; exits 0 if every
    child did.

    Worker 0 is the thread (how many records it logged ends up in ``thread_count``);
    children are workers 1, 2, ...
    """
    import multiprocessing

    os.setpgrp()  # the test can kill this process and its children as one group
    logger = mp_workers.make_logger(path, handler_kwargs, "mplog.tests.threaded")
    stop = threading.Event()
    logged = [0]

    def chatter() -> None:
        while not stop.is_set():
            mp_workers.emit(logger, 0, logged[0], "small", 40)
            logged[0] += 1

    thread = threading.Thread(target=chatter, name="chatter")
    ctx = multiprocessing.get_context("fork")
    processes = []
    try:
        thread.start()
        worker = 1
        for _ in range(rounds):
            batch = []
            for _ in range(children):
                process = ctx.Process(
                    target=mp_workers.emit_many,
                    args=(logger, worker, range(count), "small", 40),
                )
                process.start()  # forks while the chatter thread is mid-record
                batch.append(process)
                worker += 1
            processes.extend(batch)
            for process in batch:
                process.join(60)
    finally:
        stop.set()
        thread.join(60)
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(5)
    thread_count.value = logged[0]
    mp_workers.close_logger(logger)
    codes = [p.exitcode for p in processes]
    if codes != [0] * len(processes):
        raise SystemExit(f"children exit codes {codes}")


def fork_a_writer_that_dies_mid_record(path: Any, **handler_kwargs: Any) -> None:
    """Fork a process that logs ``two`` through its own handler on *path*, then dies
    half-way through its next record, holding the lock with the record marked in flight.
    Returns once it is dead."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: writes one record, dies in the next
        try:
            theirs = mplog._handler.ConcurrentRotatingFileHandler(path, **handler_kwargs)
            theirs.emit(logging.makeLogRecord({"msg": "two"}))
            real_write = os.write

            def torn(fd: int, data: Any) -> int:
                real_write(fd, bytes(data[: len(data) // 2]))
                os._exit(0)  # dies with the lock held and the record half written

            os.write = torn  # type: ignore[assignment]  # this child only
            theirs.emit(logging.makeLogRecord({"msg": "three " * 20}))
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child did not die mid-write"
