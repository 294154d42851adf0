"""Where one record's time goes in sync mode: each step of the write path timed alone.

    python benchmarks/breakdown.py --records 10000 --repeat 11

One process, no contention: every step of PROTOCOL.md's section 3.1 (the fast
path of :meth:`mplog._active.ActiveFile.append`) and of the logging call around it
is run *records* times in a tight loop on real files in a temporary directory,
and its cost per call is the median over *repeat* such loops.  The cost is the
CPU time of the thread (user and system: ``time.thread_time_ns``), not the wall
time, so that other jobs on a shared machine do not count; a process alone with
a free lock never waits, so for it the two are the same.  The same loops
time a whole ``logger.info`` call through mplog (sync) and through the stdlib's
``FileHandler``, so the sum of the steps can be held against the measured
per-record time; the Python of ``emit`` and ``append`` themselves (attribute
lookups, calls, the re-entry guard, the fast-path test) is what remains, shown
as the last row.  The table also says which guarantee each step buys.

Alone, a step runs with warm caches and predicted branches: the sum of the steps
tends to be below the measured call, and the remainder absorbs that too.
Standard library only, plus mplog.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Callable

from mplog import ConcurrentRotatingFileHandler
from mplog._bench_contenders import FORMAT, MESSAGE_SIZE, writer_logger
from mplog._bench_runner import rotated
from mplog._header import MAGIC, SIZE_AT, pack_pair, unpack_state

MESSAGE = "w=%d seq=%d %s"


def per_call(
    bodies: dict[str, Callable[[int], None]], records: int, repeat: int
) -> dict[str, float]:
    """For each of *bodies*, the median over *repeat* runs of ``body(records)`` of its
    CPU time per record, in ns.

    Each repetition runs every body once, in a rotated order, so that a slow drift
    of the machine spreads over all of them.  Each body runs its own loop, so the
    loop's cost is part of every row alike.
    """
    names = list(bodies)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm up
        bodies[name](min(records, 1000))
    for rep in range(repeat):
        for name in rotated(names, rep):
            start = time.thread_time_ns()
            bodies[name](records)
            times[name].append((time.thread_time_ns() - start) / records)
    return {name: statistics.median(values) for name, values in times.items()}


class _Discard(logging.Handler):
    """Takes every record through ``Handler.handle`` (filters, its lock) and drops it."""

    def emit(self, record: logging.LogRecord) -> None:
        pass


def _record(logger: logging.Logger) -> logging.LogRecord:
    filler = "x" * (MESSAGE_SIZE - 20)
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, MESSAGE, (0, 0, filler), None)


#: (key, row, guarantee, paid by mplog sync, paid by FileHandler); "  " rows are part of
#: the row above and left out of the sums.
ROWS = (
    (
        "logging_call",
        "logger.info up to emit",
        "LogRecord (time, getpid, thread), level, filters, the handler's RLock",
        True,
        True,
    ),
    ("getpid", "  of which os.getpid", "%(process)d in every record (stdlib)", False, False),
    ("formatting", "formatting", "the line (Formatter.format)", True, True),
    ("encoding", "encoding", "bytes, so one write holds the whole record", True, False),
    (
        "thread_lock",
        "thread lock pair",
        "threads of one process take turns (InterProcessLock)",
        True,
        False,
    ),
    (
        "flock",
        "flock lock+unlock",
        "processes take turns: no record torn or interleaved",
        True,
        False,
    ),
    (
        "clock",
        "time.time",
        "the fast window: the path is checked every watch_interval",
        True,
        False,
    ),
    (
        "header",
        "pread header",
        "notices another process's rotation, a truncated lock file; "
        "where the last write ends, for maxBytes",
        True,
        False,
    ),
    (
        "lseek",
        "lseek SEEK_END",
        "the last write completed (else a writer died mid-record: cut off), "
        "nobody appended (else a foreign writer), before writing",
        True,
        False,
    ),
    (
        "publish",
        "pwrite size, write end",
        "publishes the last record, marks this one begun: the size every "
        "process rotates by, without a stat",
        True,
        False,
    ),
    ("write", "write", "the record, whole, in one O_APPEND write", True, False),
    ("stream", "FileHandler write+flush", "(FileHandler) encoding and one write", False, True),
    (
        "rest",
        "Python in emit and append",
        "re-entry guard, calls, the fast-path test "
        "(emit measured alone minus the rows it contains)",
        True,
        False,
    ),
)
_IN_EMIT = ("formatting", "encoding", "thread_lock", "flock", "clock", "header", "lseek",
            "publish", "write")  # fmt: skip


def _system_calls(lock_fd: int, log_fd: int, data: bytes) -> dict[str, Callable[[int], None]]:
    """The loops of the system calls of the fast path, on *lock_fd* and *log_fd*."""
    pair = pack_pair(0, len(data))
    thread_lock = threading.Lock()

    def flock(n: int) -> None:
        lock, ex, un = fcntl.flock, fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN
        for _ in range(n):
            lock(lock_fd, ex)
            lock(lock_fd, un)

    def thread_lock_pair(n: int) -> None:
        acquire, release = thread_lock.acquire, thread_lock.release
        for _ in range(n):
            acquire(False)
            release()

    def header(n: int) -> None:
        pread = os.pread
        for _ in range(n):
            unpack_state(pread(lock_fd, 32, 0))

    def publish(n: int) -> None:
        pwrite = os.pwrite
        for _ in range(n):
            pwrite(lock_fd, pair, SIZE_AT)

    def write(n: int) -> None:
        os_write = os.write
        for _ in range(n):
            os_write(log_fd, data)

    def lseek(n: int) -> None:
        seek, end = os.lseek, os.SEEK_END
        for _ in range(n):
            seek(log_fd, 0, end)

    def clock(n: int) -> None:
        now = time.time
        for _ in range(n):
            now()

    def getpid(n: int) -> None:
        pid = os.getpid
        for _ in range(n):
            pid()

    return {
        "flock": flock,
        "thread_lock": thread_lock_pair,
        "header": header,
        "publish": publish,
        "write": write,
        "lseek": lseek,
        "clock": clock,
        "getpid": getpid,
    }


def _logging(
    mplog_handler: logging.Handler, file_handler: logging.FileHandler
) -> dict[str, Callable[[int], None]]:
    """The loops of the Python steps and of whole logging calls through both handlers."""
    filler = "x" * (MESSAGE_SIZE - 20)
    mplog_logger, _ = writer_logger("breakdown.mplog", mplog_handler, FORMAT)
    file_logger, _ = writer_logger("breakdown.fh", file_handler, FORMAT)
    discard_logger, _ = writer_logger("breakdown.discard", _Discard(), FORMAT)
    record = _record(mplog_logger)
    formatter = mplog_handler.formatter
    assert formatter is not None
    line = formatter.format(record) + "\n"

    def logged(logger: logging.Logger) -> Callable[[int], None]:
        def body(n: int) -> None:
            info = logger.info
            for seq in range(n):
                info(MESSAGE, 0, seq, filler)

        return body

    def formatting(n: int) -> None:
        format_ = formatter.format
        for _ in range(n):
            format_(record)

    def encoding(n: int) -> None:
        for _ in range(n):
            (line + "").encode("utf-8", "strict")

    def emit(n: int) -> None:
        emit_ = mplog_handler.emit
        for _ in range(n):
            emit_(record)

    def stream(n: int) -> None:
        stream = file_handler.stream
        for _ in range(n):
            stream.write(line)
            stream.flush()

    return {
        "mplog": logged(mplog_logger),
        "filehandler": logged(file_logger),
        "logging_call": logged(discard_logger),
        "formatting": formatting,
        "encoding": encoding,
        "emit": emit,
        "stream": stream,
    }


def measure(directory: str, records: int, repeat: int) -> dict[str, float]:
    """ns per call of every key of :data:`ROWS` (``rest`` derived from ``emit``), and of
    a whole ``logger.info`` call through mplog (``mplog``) and FileHandler (``filehandler``)."""
    mplog_handler = ConcurrentRotatingFileHandler(
        os.path.join(directory, "mplog.log"), maxBytes=2**40
    )
    file_handler = logging.FileHandler(os.path.join(directory, "fh.log"), encoding="utf-8")
    lock_fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
    log_fd = os.open(os.path.join(directory, "raw.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.pwrite(lock_fd, MAGIC + bytes(24), 0)
        bodies = _logging(mplog_handler, file_handler)
        line = b"x" * (len(FORMAT) + MESSAGE_SIZE)  # about a record's length
        bodies.update(_system_calls(lock_fd, log_fd, line))
        ns = per_call(bodies, records, repeat)
    finally:
        mplog_handler.close()
        file_handler.close()
        os.close(lock_fd)
        os.close(log_fd)
    ns["rest"] = ns["emit"] - sum(ns[key] for key in _IN_EMIT)
    return ns


def format_table(ns: dict[str, float], records: int, repeat: int) -> str:
    """The rows of :data:`ROWS` as a plain-text table, their sums against the measured calls."""

    def us(value: float) -> str:
        return f"{value / 1e3:.2f} us"

    header = f"{'step':<26} {'per call':>9} {'mplog':>5} {'FH':>3}  what it buys"
    title = f"one process, {records:,} calls per loop, CPU time, median of {repeat} loops"
    lines = [title, "", header]
    lines.append("-" * len(header))
    for key, row, guarantee, mplog, filehandler in ROWS:
        marks = f"{'x' if mplog else '':>5} {'x' if filehandler else '':>3}"
        lines.append(f"{row:<26} {us(ns[key]):>9} {marks}  {guarantee}")
    mplog_sum = sum(ns[key] for key, _, _, mplog, _ in ROWS if mplog)
    file_sum = sum(ns[key] for key, _, _, _, filehandler in ROWS if filehandler)
    lines += [
        "-" * len(header),
        f"{'sum, mplog sync':<26} {us(mplog_sum):>9}   measured logger.info: {us(ns['mplog'])}",
        f"{'sum, FileHandler':<26} {us(file_sum):>9}   measured logger.info: "
        f"{us(ns['filehandler'])}",
        f"records/s of mplog sync / FileHandler, from the measured calls: "
        f"{ns['filehandler'] / ns['mplog']:.2f}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10000, help="calls per loop (10000)")
    parser.add_argument(
        "--repeat", type=int, default=11, help="loops per step; the median is shown (11)"
    )
    parser.add_argument("--dir", help="where the temporary directory goes")
    args = parser.parse_args(argv)
    if min(args.records, args.repeat) < 1:
        parser.error("--records and --repeat must be >= 1")
    with tempfile.TemporaryDirectory(prefix="mplog-breakdown-", dir=args.dir) as directory:
        ns = measure(directory, args.records, args.repeat)
    print(format_table(ns, args.records, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
