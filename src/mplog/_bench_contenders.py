"""The contenders of ``mplog bench`` and the code that runs in their child processes.

Each contender is a way for N processes to log into one file.  Every worker
process builds its own handler (:func:`make_handler`), logs its records and
reports a :class:`ProcessReport` on a results queue.  The ``queuelistener``
contender also runs one listener process (:func:`listener_main`) that owns
the only ``FileHandler``; it reports too, as worker ``LISTENER``.
:func:`mplog._readback.read_back` then reads the files back, finding each record
by the worker id and sequence number it carries (:func:`parse_record`); only the
``format-only`` floor writes nothing, so has nothing to read back.  The handlers
that exist only for the benchmark are :mod:`mplog._bench_handlers`'s.

These functions are module-level so that spawn and forkserver children can
import them by name.  The scripts in ``benchmarks/`` share this module (its
contenders, the writers' logger :func:`writer_logger`, the record tag
:func:`parse_record` and the percentiles) and :mod:`mplog._bench_runner`, which
starts and reaps the children.
"""

from __future__ import annotations

import importlib.util
import logging
import logging.handlers
import math
import re
import sys
import time
from array import array
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Callable

from ._bench_handlers import FormatOnlyHandler, StampedFileHandler, SyncedFileHandler

__all__ = [
    "CONTENDERS",
    "DEFAULT_CONTENDERS",
    "FORMAT",
    "LISTENER",
    "LOG_NAME",
    "MESSAGE_SIZE",
    "REFERENCE",
    "Contender",
    "ErrorCounter",
    "ProcessReport",
    "contender_available",
    "installed",
    "listener_main",
    "make_handler",
    "nearest_rank",
    "parse_record",
    "percentile",
    "worker_main",
    "writer_logger",
]

FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"
LOG_NAME = "bench.log"
LISTENER = -1  # the worker id of the queue listener's report
MESSAGE_SIZE = 100  # bytes of %(message)s; the whole line is ~150 bytes
_TAG = re.compile(rb" w=(\d+) seq=(\d+) ")  # in every message logged here and in benchmarks/


@dataclass(frozen=True)
class Contender:
    """One way of logging from many processes into one file."""

    name: str
    description: str
    listener: bool = False  # needs a queue and a listener process
    writes: bool = True  # False: nothing to read back (the format-only floor)
    opt_in: bool = False  # only run when named in --contenders (slow: waits for the disk)


_ALL = (
    Contender("filehandler", "stdlib FileHandler; never rotates; the unsafe reference"),
    Contender(
        "format-only",
        "formats and encodes each record, writes nothing: the floor of a logging call, "
        "the ceiling of any handler that writes",
        writes=False,
    ),
    Contender("mplog", "mplog.ConcurrentRotatingFileHandler, rotating at --max-bytes"),
    Contender("mplog-batched", "the same with batched=True (one lock per batch)"),
    Contender(
        "mplog-fsync",
        "mplog with fsync=True: each record on disk before the call returns",
        opt_in=True,
    ),
    Contender(
        "filehandler-fsync",
        "stdlib FileHandler syncing the file after each record: the peer of fsync=True",
        opt_in=True,
    ),
    Contender(
        "mplog-fsync-1s",
        "mplog with fsync=1.0: group commit, a background sync at most 1 s after a write",
        opt_in=True,
    ),
    Contender(
        "mplog-batched-fsync",
        "mplog with batched=True, fsync=True: each batch on disk before flush() returns",
        opt_in=True,
    ),
    Contender("rotating", "stdlib RotatingFileHandler, same rotation; not multi-process safe"),
    Contender(
        "queuelistener",
        "stdlib QueueHandler -> multiprocessing queue -> one listener process writing with "
        "a FileHandler; only for processes that share the queue; its p99 emit covers "
        "formatting and the put, not the write",
        listener=True,
    ),
    Contender("clh", "concurrent-log-handler's ConcurrentRotatingFileHandler, same rotation"),
)
CONTENDERS: dict[str, Contender] = {c.name: c for c in _ALL}
#: What runs when --contenders is not given: the fsync contenders are opt-in.
DEFAULT_CONTENDERS: tuple[str, ...] = tuple(c.name for c in _ALL if not c.opt_in)
REFERENCE = "filehandler"


def installed(module: str) -> bool:
    """Whether *module* can be imported, found without importing it.

    Importing in the parent would swell the memory that forked workers start
    with, and so every contender's peak RSS.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent package; a module without a spec
        return False


def contender_available(name: str, known: Collection[str] = CONTENDERS) -> str | None:
    """Return None if contender *name*, one of *known*, can run here, else the reason why not."""
    if name not in known:
        return f"unknown contender {name!r} (choose from {', '.join(known)})"
    if name == "clh" and not installed("concurrent_log_handler"):
        return "concurrent-log-handler is not installed (pip install 'mplog[bench]')"
    return None


#: The contenders whose handler needs only the path.
_PLAIN: dict[str, Callable[[str], logging.Handler]] = {
    "filehandler": lambda path: logging.FileHandler(path, encoding="utf-8"),
    "filehandler-fsync": lambda path: SyncedFileHandler(path, encoding="utf-8"),
    "format-only": lambda path: FormatOnlyHandler(),
}


def make_handler(
    name: str, path: str, max_bytes: int, backup_count: int, log_queue: Any = None
) -> logging.Handler:
    """Build, in a worker, the handler of contender *name* writing to *path*.

    ``queuelistener`` workers get a ``QueueHandler`` putting on *log_queue*.
    """
    if name.startswith("mplog"):
        from ._handler import ConcurrentRotatingFileHandler

        fsync = {"mplog-fsync": True, "mplog-fsync-1s": 1.0, "mplog-batched-fsync": True}
        return ConcurrentRotatingFileHandler(
            path,
            maxBytes=max_bytes,
            backupCount=backup_count,
            batched=name in ("mplog-batched", "mplog-batched-fsync"),
            fsync=fsync.get(name, False),
        )
    plain = _PLAIN.get(name)
    if plain is not None:
        return plain(path)
    if name == "rotating":
        return logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
    if name == "queuelistener":
        # The producers format (QueueHandler.prepare applies this handler's
        # formatter), as every other contender does: the listener only writes.
        return logging.handlers.QueueHandler(log_queue)
    if name == "clh":
        import concurrent_log_handler

        handler: logging.Handler = concurrent_log_handler.ConcurrentRotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
        return handler
    raise ValueError(f"unknown contender {name!r}")


@dataclass
class ProcessReport:
    """What one child process measured; crosses the results queue pickled."""

    worker: int  # LISTENER for the queue listener
    start: float  # perf_counter() when the first record was logged
    end: float  # perf_counter() when the last record was in the file (after flush)
    errors: int  # records that went to Handler.handleError
    p99_ns: int | None  # 99th percentile of one logger.info call; None for the listener
    p999_ns: int | None  # 99.9th percentile; None for the listener
    peak_rss: int | None  # bytes, ru_maxrss at the end; None where unavailable


class ErrorCounter:
    """Replaces ``Handler.handleError``: counts failures instead of printing them."""

    def __init__(self, handler: logging.Handler) -> None:
        self.count = 0
        handler.handleError = self  # type: ignore[method-assign]

    def __call__(self, record: logging.LogRecord) -> None:
        self.count += 1


def peak_rss() -> int | None:
    """This process's peak resident set size in bytes (None where unavailable)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; others: KiB


def nearest_rank(ranked: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of *ranked*, sorted in ascending order; 0 if it is empty."""
    return ranked[max(0, math.ceil(fraction * len(ranked)) - 1)] if ranked else 0


def percentile(values: Iterable[int], fraction: float) -> int:
    """Nearest-rank percentile of *values*; 0 if there are none."""
    return nearest_rank(sorted(values), fraction)


def writer_logger(
    name: str, handler: logging.Handler, fmt: str
) -> tuple[logging.Logger, ErrorCounter]:
    """A logger *name* writing only through *handler* with format *fmt*, at INFO, and
    the counter of the records *handler* failed to write."""
    handler.setFormatter(logging.Formatter(fmt))
    errors = ErrorCounter(handler)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, errors


def parse_record(line: bytes) -> tuple[int, int] | None:
    """The (worker, seq) a line holds, from its ``w=<worker> seq=<seq>`` tag; None for
    a line with no tag or with several (records written into one another)."""
    tags = _TAG.findall(line)
    if len(tags) != 1:
        return None
    worker, seq = tags[0]
    return int(worker), int(seq)


def worker_main(
    contender: str,
    path: str,
    worker: int,
    records: int,
    max_bytes: int,
    backup_count: int,
    log_queue: Any,
    barrier: Any,
    results: Any,
) -> None:  # pragma: no cover - runs in a child process
    """Child entry point: log *records* records once every worker is ready, then report."""
    handler = make_handler(contender, path, max_bytes, backup_count, log_queue)
    logger, errors = writer_logger(f"bench.worker{worker}", handler, FORMAT)
    filler = "x" * max(1, MESSAGE_SIZE - len(f"w={worker} seq={records} "))
    info = logger.info
    clock = time.perf_counter_ns
    latencies = array("q", [0]) * records  # preallocated: nothing allocated per record

    barrier.wait(timeout=120)
    start = time.perf_counter()  # CLOCK_MONOTONIC on Linux: comparable across processes
    for seq in range(records):
        before = clock()
        info("w=%d seq=%d %s", worker, seq, filler)
        latencies[seq] = clock() - before
    handler.flush()  # batched handlers: the records count once they are in the file
    end = time.perf_counter()
    handler.close()
    latencies = array("q", sorted(latencies))
    p99, p999 = nearest_rank(latencies, 0.99), nearest_rank(latencies, 0.999)
    results.put(ProcessReport(worker, start, end, errors.count, p99, p999, peak_rss()))


def listener_main(
    log_queue: Any, path: str, stop: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    """Child entry point of the queue listener: write until *stop* is set, then report.

    The parent sets *stop* once every producer has exited, so everything they
    put is already in the queue's pipe, ahead of the sentinel ``stop()`` puts.
    """
    handler = StampedFileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))  # formatted by the producers
    errors = ErrorCounter(handler)
    listener = logging.handlers.QueueListener(log_queue, handler)
    listener.start()
    stop.wait()
    listener.stop()
    handler.close()
    end = handler.last
    results.put(ProcessReport(LISTENER, end, end, errors.count, None, None, peak_rss()))
