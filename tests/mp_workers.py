"""Child-process entry points for test_multiprocess.py.

spawn and forkserver children import their target by module name, so these
functions live in a plain module next to the tests: the test module puts this
directory on ``sys.path``, and ``multiprocessing`` hands the parent's
``sys.path`` to spawn and forkserver children.

Every record is framed so that a reader can prove it whole::

    <LLLLLLLL:CCCCCCCC>BODY\\n

where ``LLLLLLLL`` is the byte length of BODY and ``CCCCCCCC`` its crc32, and
BODY is ``<created> <worker> <seq> <kind> <payload>`` followed, for
``logger.exception``, by the traceback.  The payload is a pure function of
(worker, seq, kind), so the reader regenerates it and compares.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import traceback
import zlib
from collections.abc import Iterable
from typing import Any

import mplog
import mplog._active
import mplog._handler
import mplog._handler_entry
import mplog._handler_parts
import mplog._handler_surface
import mplog._rollover

HEADER_SIZE = len("<00000000:00000000>")

# kind -> payload size in characters (the unicode kind repeats a 4-character unit)
KIND_SIZES = {
    "small": 40,
    "uni": 8 * 4,
    "exc": 24,
    "big": 70 * 1024,
    "huge": 3 * 1024 * 1024,
}
UNICODE_UNIT = "é中文🙂"


class FramedFormatter(logging.Formatter):
    """Frame each record with its length and crc32 (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        body = f"{record.created:.6f} " + super().format(record)
        return f"<{len(body.encode('utf-8')):08d}:{zlib.crc32(body.encode('utf-8')):08x}>{body}"


_FRAME = re.compile(rb"<(\d{8}):([0-9a-f]{8})>")


def framed(data: bytes, where: str) -> list[tuple[int, int]]:
    """(worker, seq) of each record written by FramedFormatter in *data*; fails on a
    torn, cut or stray byte (*where* names the file in the message)."""
    found = []
    pos = 0
    while pos < len(data):
        match = _FRAME.match(data, pos)
        assert match, f"{where}: stray bytes at {pos}: {data[pos : pos + 60]!r}"
        end = match.end() + int(match.group(1))
        body = data[match.end() : end]
        assert data[end : end + 1] == b"\n", f"{where}: record at {pos} cut short"
        assert zlib.crc32(body) == int(match.group(2), 16), f"{where}: record at {pos} torn"
        _created, worker, seq, _kind, _payload = body.decode("utf-8").split(" ", 4)
        found.append((int(worker), int(seq)))
        pos = end + 1
    return found


def payload(worker: int, seq: int, kind: str, size: int | None = None) -> str:
    """Return the payload of record (worker, seq): unique enough to spot a foreign byte."""
    size = KIND_SIZES[kind] if size is None else size
    if kind == "uni":
        return (UNICODE_UNIT * (size // len(UNICODE_UNIT) + 1))[:size]
    stamp = f"[{worker:03d}.{seq:07d}]"
    return (stamp * (size // len(stamp) + 1))[:size]


def message(worker: int, seq: int, kind: str, size: int | None = None) -> str:
    """The logged message (BODY without the created stamp and the traceback)."""
    return f"{worker:03d} {seq:07d} {kind} {payload(worker, seq, kind, size)}"


def fixed_record_size(payload_size: int) -> int:
    """Bytes on disk of a "small" record with *payload_size* characters of payload."""
    created = f"{time.time():.6f} "
    body = created + message(0, 0, "small", payload_size)
    return HEADER_SIZE + len(body.encode("utf-8")) + 1  # + the terminator


def make_logger(path: str, handler_kwargs: dict[str, Any], name: str) -> logging.Logger:
    """Configure logger *name* to write framed records through an mplog handler into *path*."""
    handler = mplog.ConcurrentRotatingFileHandler(path, **handler_kwargs)
    handler.setFormatter(FramedFormatter())
    logger = logging.getLogger(name)
    for old in list(logger.handlers):  # a fork child may inherit the parent's configuration
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def close_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def emit(logger: logging.Logger, worker: int, seq: int, kind: str, size: int | None = None) -> None:
    """Log record (worker, seq) of *kind* through the logging API."""
    text = message(worker, seq, kind, size)
    if kind == "exc":
        try:
            raise ValueError(f"boom {worker} {seq}")
        except ValueError:
            logger.exception(text)
    else:
        logger.info(text)


def emit_many(
    logger: logging.Logger, worker: int, seqs: Iterable[int], kind: str, size: int | None = None
) -> None:
    for seq in seqs:
        emit(logger, worker, seq, kind, size)


# -- process entry points ---------------------------------------------------------------


def fixed_worker(
    path: str,
    handler_kwargs: dict[str, Any] | None,
    worker: int,
    count: int,
    payload_size: int,
    barrier: Any,
) -> None:
    """Log *count* same-size records; *handler_kwargs* None uses the inherited logger."""
    if handler_kwargs is None:  # configured by the parent before the fork
        logger = logging.getLogger("mplog.tests.inherited")
    else:
        logger = make_logger(path, handler_kwargs, f"mplog.tests.w{worker}")
    barrier.wait(60)
    emit_many(logger, worker, range(count), "small", payload_size)
    if handler_kwargs is not None:
        close_logger(logger)


def shapes_worker(
    path: str, handler_kwargs: dict[str, Any], worker: int, kinds: list[str], barrier: Any
) -> None:
    """Log one record per entry of *kinds* (seq = index), mixing shapes and sizes."""
    logger = make_logger(path, handler_kwargs, f"mplog.tests.w{worker}")
    barrier.wait(60)
    for seq, kind in enumerate(kinds):
        emit(logger, worker, seq, kind)
    close_logger(logger)


def timed_worker(
    path: str,
    handler_kwargs: dict[str, Any],
    worker: int,
    boundaries: int,
    max_records: int,
    counts: Any,
    barrier: Any,
) -> None:
    """Log continuously until the clock has crossed *boundaries* whole seconds (or the cap)."""
    logger = make_logger(path, handler_kwargs, f"mplog.tests.w{worker}")
    barrier.wait(60)
    start = int(time.time())
    seq = 0
    # The loop bound is a duration, but no assertion depends on it: the test checks
    # invariants on whatever was written, and counts[worker] says how much that was.
    while seq < max_records and int(time.time()) - start < boundaries:
        emit(logger, worker, seq, "small")
        seq += 1
    counts[worker] = seq
    close_logger(logger)


def paced_worker(
    path: str,
    handler_kwargs: dict[str, Any],
    worker: int,
    count: int,
    pauses: dict[int, tuple[Any, Any]],
    barrier: Any,
) -> None:
    """Log *count* records; at seq k in *pauses*, set its first event, await the second."""
    logger = make_logger(path, handler_kwargs, f"mplog.tests.w{worker}")
    barrier.wait(60)
    for seq in range(count):
        if seq in pauses:
            reached, resume = pauses[seq]
            reached.set()
            if not resume.wait(60):
                raise TimeoutError(f"worker {worker}: nobody resumed it at seq {seq}")
        emit(logger, worker, seq, "small")
    close_logger(logger)


class _FakeTime:
    """Stands in for the ``time`` module inside mplog's write path (the handler, the
    active file, the rotation policy): only ``time()`` is faked."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock

    def time(self) -> float:
        return float(self._clock.value)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def remote_worker(
    path: str, handler_kwargs: dict[str, Any], worker: int, conn: Any, clock: Any
) -> None:
    """A process whose handler runs on a shared fake clock, driven step by step over *conn*.

    Commands: ("open",), ("log", seq) and ("close",); each is acknowledged.  File
    modification times follow the fake clock, since mplog reads the log's mtime
    when a handler starts.
    """
    modules = (mplog._handler_parts, mplog._handler_entry, mplog._handler_surface)
    for module in (*modules, mplog._active, mplog._rollover):  # this child only
        module.time = _FakeTime(clock)  # type: ignore[attr-defined]
    logger: logging.Logger | None = None

    def touch() -> None:
        if os.path.exists(path):
            os.utime(path, (clock.value, clock.value))

    try:
        while True:
            command, *args = conn.recv()
            if command == "open":
                logger = make_logger(path, handler_kwargs, f"mplog.tests.w{worker}")
                touch()
            elif command == "log":
                assert logger is not None
                emit(logger, worker, args[0], "small")
                touch()
            elif command == "close":
                if logger is not None:
                    close_logger(logger)
                conn.send("ok")
                return
            conn.send("ok")
    except BaseException:
        conn.send("".join(traceback.format_exception(*sys.exc_info())))
        raise


def log_through_handler(handler: logging.Handler, worker: int, count: int) -> dict[str, Any]:
    """Log *count* framed records through *handler*, handed over by pickling (a spawn
    child, a process pool task); return what the handler looked like here."""
    logger = logging.getLogger(f"pickled.{worker}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.debug("below the handler's level: never written")
    emit_many(logger, worker, range(count), "small")
    seen = {
        "level": handler.level,
        "formatter": type(handler.formatter).__name__,
        "maxBytes": handler.maxBytes,  # type: ignore[attr-defined]
        "backupCount": handler.backupCount,  # type: ignore[attr-defined]
        "pid": os.getpid(),
    }
    close_logger(logger)
    return seen


def log_with_mode_w(path: str, worker: int, count: int) -> int:
    """A task that opens the log with mode="w" (as if each run should start a new
    file), logs *count* records and closes it; return this process's id."""
    logger = make_logger(path, {"mode": "w", "maxBytes": 8192, "backupCount": 100}, f"w.{worker}")
    emit_many(logger, worker, range(count), "small")
    close_logger(logger)
    return os.getpid()
