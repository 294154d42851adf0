"""Emit latency while rotated files are gzipped: mplog (background) vs concurrent-log-handler.

concurrent-log-handler gzips a rotated file inside ``emit``, holding the
inter-process lock, so every other writer waits for the whole compression.
mplog compresses in a background thread and takes the writers' lock only to
rename the result.  This script measures what the writers feel::

    python benchmarks/compression_latency.py --size 10MB --rotations 5 --procs 2 --repeat 3

For each contender and repetition, in a fresh temporary directory, N writer
processes log through :mod:`logging` into one file rotating every ``--size``
bytes, until about ``--rotations`` rotations have happened.  Writers log at a
steady, moderate pace, not flat out: ``--burst`` records, then
``time.sleep(--pause)``, so that a slow call reflects a stall (a lock held
during a compression, a compressing thread) rather than a saturated CPU.  Every
``logger.info`` call is timed with ``time.perf_counter_ns`` into a preallocated
array; the parent merges the samples of all writers into one distribution.

Each writer also notes when its own process compresses (the methods
``mplog._compression_scheduler.CompressionScheduler.sweep`` and concurrent-log-handler's
``do_gzip`` are timed; ``during`` is null in the JSON where neither exists), so the
calls that overlapped a compression are shown apart: those made while *another* process
compressed are what the issue is about.  A stall is one slow call per writer, whatever
its length, so among the ~300,000 calls of a 10 MB x 5 run a few rotations barely move
the overall p99.9; the max, the count of calls over 5 ms and the calls during
compressions show them.

After each run every file is read back (``.gz`` backups decompressed): each
record carries its writer id and sequence number, so lost, duplicated and torn
records are counted, as are the backups and how many of them are compressed.
The exit status is 1 if a contender lost, duplicated or tore a record or left a
stray file.

The table shows medians over the repetitions; ``--json`` writes every run.
Standard library only, plus mplog and (optionally) concurrent-log-handler.
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import math
import multiprocessing
import os
import platform
import statistics
import sys
import textwrap
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Any, TextIO

from mplog._bench_contenders import (
    LOG_NAME,
    contender_available,
    nearest_rank,
    parse_record,
    writer_logger,
)
from mplog._bench_runner import fresh_runs, rotated, run_writers
from mplog._readback import Verification, read_back
from mplog._units import parse_size

FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s [%(module)s:%(lineno)d] %(message)s"
MESSAGE = "GET /api/v1/orders/%d?expand=items 200 w=%d seq=%d user=%s bytes=%d took=%.2fms"
TARGET_NS = 5_000_000  # the goal for p99.9 during rotations; calls above it are counted
CONTENDERS = {
    "mplog-nocompress": "mplog.ConcurrentRotatingFileHandler without compression (the floor)",
    "mplog": "mplog.ConcurrentRotatingFileHandler(compress='gzip'): a background thread gzips",
    "clh": "concurrent_log_handler.ConcurrentRotatingFileHandler(use_gzip=True): gzips in emit,"
    " holding the lock (gzip level 9; mplog uses 6)",
}


# -- the writer processes ------------------------------------------------------------------


@dataclass
class WriterReport:
    """What one writer measured; crosses the results queue pickled."""

    writer: int
    pid: int
    start: float  # perf_counter() before the first record (CLOCK_MONOTONIC: system-wide)
    end: float  # perf_counter() after the last record, before close()
    close_seconds: float  # handler.close(): mplog waits for its compressing thread there
    errors: int  # records that went to Handler.handleError
    starts: bytes  # array("q"): perf_counter_ns() when each logger.info call began
    latencies: bytes  # array("q"): how long each call took, in ns
    compressions: list[tuple[int, int]]  # (start, end) ns of each compression in this process


def make_handler(contender: str, path: str, size: int, backup_count: int) -> logging.Handler:
    """Build contender *contender*'s handler (in the writer process)."""
    if contender in ("mplog", "mplog-nocompress"):
        from mplog import ConcurrentRotatingFileHandler

        compress = "gzip" if contender == "mplog" else None
        return ConcurrentRotatingFileHandler(
            # compress at once: what is measured is writing while another process compresses
            path,
            maxBytes=size,
            backupCount=backup_count,
            compress=compress,
            compress_delay=0,
        )
    if contender == "clh":
        import concurrent_log_handler

        handler: logging.Handler = concurrent_log_handler.ConcurrentRotatingFileHandler(
            path, maxBytes=size, backupCount=backup_count, use_gzip=True, encoding="utf-8"
        )
        return handler
    raise ValueError(f"unknown contender {contender!r}")


def trace_compressions(contender: str, windows: list[tuple[int, int]]) -> None:
    """Record in *windows* when this process compresses: mplog's ``CompressionScheduler.sweep``
    (its background thread's pass) or concurrent-log-handler's ``do_gzip`` (in emit).

    Wrapped on the class; tracing costs two clock reads per compression, nothing
    per record.  A version without the method is simply not traced.
    """
    if contender == "mplog":
        from mplog._compression_scheduler import CompressionScheduler

        _time_calls(CompressionScheduler, "sweep", windows)
    elif contender == "clh":
        from concurrent_log_handler import ConcurrentRotatingFileHandler

        _time_calls(ConcurrentRotatingFileHandler, "do_gzip", windows)


def _time_calls(owner: type, name: str, windows: list[tuple[int, int]]) -> None:
    """Replace method *name* of class *owner* by one that appends (start, end) to *windows*."""
    method = getattr(owner, name, None)
    if method is None:
        return
    clock = time.perf_counter_ns

    def traced(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return method(*args, **kwargs)
        finally:
            windows.append((start, clock()))

    setattr(owner, name, traced)


def writer_main(
    contender: str,
    path: str,
    writer: int,
    records: int,
    size: int,
    backup_count: int,
    burst: int,
    pause: float,
    barrier: Any,
    results: Any,
) -> None:  # pragma: no cover - runs in a child process
    """Child entry point: log *records* records, pausing every *burst*, then report."""
    compressions: list[tuple[int, int]] = []
    trace_compressions(contender, compressions)
    handler = make_handler(contender, path, size, backup_count)
    logger, errors = writer_logger(f"shop.api.worker{writer}", handler, FORMAT)
    info, clock, sleep = logger.info, time.perf_counter_ns, time.sleep
    starts = array("q", [0]) * records  # preallocated: nothing allocated per record
    latencies = array("q", [0]) * records

    barrier.wait(timeout=120)
    start = time.perf_counter()
    for seq in range(records):
        starts[seq] = before = clock()
        info(MESSAGE, seq % 9973, writer, seq, "alice@example.com", 1024 + seq % 4096, 3.25)
        latencies[seq] = clock() - before
        if seq % burst == burst - 1:
            sleep(pause)
    end = time.perf_counter()
    handler.close()
    closed = time.perf_counter() - end
    results.put(
        WriterReport(
            writer,
            os.getpid(),
            start,
            end,
            closed,
            errors.count,
            starts.tobytes(),
            latencies.tobytes(),
            compressions,
        )
    )


def record_length() -> int:
    """Bytes of one typical line (the writers' format, a 6-digit sequence number)."""
    logger = logging.getLogger("shop.api.worker0")
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, MESSAGE,
        (1234, 0, 123_456, "alice@example.com", 4096, 3.25), None,
    )  # fmt: skip
    return len(logging.Formatter(FORMAT).format(record).encode()) + 1


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Latency:
    """Percentiles of logger.info durations, in ns (nearest rank)."""

    samples: int
    p50: int
    p99: int
    p999: int
    max: int
    over_target: int  # calls slower than TARGET_NS

    @classmethod
    def of(cls, values: Iterable[int]) -> Latency:
        ranked = sorted(values)
        if not ranked:
            return cls(0, 0, 0, 0, 0, 0)
        p50, p99, p999 = (nearest_rank(ranked, f) for f in (0.5, 0.99, 0.999))
        over = len(ranked) - bisect.bisect_right(ranked, TARGET_NS)
        return cls(len(ranked), p50, p99, p999, ranked[-1], over)


@dataclass
class DuringCompression:
    """The calls that overlapped a compression, every writer's merged, split by where it ran."""

    own: Latency  # a compression in the calling process (for CLH: the call doing it)
    other: Latency  # a compression in another process only: what the issue is about


_OTHER, _OWN = 1, 2


def _mark(
    starts: array[int],
    latencies: array[int],
    windows: Iterable[tuple[int, int]],
    flags: bytearray,
    value: int,
) -> None:
    """Set ``flags[i] = value`` for each call *i* that overlapped one of *windows*.

    A writer's calls are sequential, so *starts* is sorted.
    """
    for begin, end in windows:
        first = max(0, bisect.bisect_left(starts, begin) - 1)  # the call running at *begin*
        for i in range(first, bisect.bisect_left(starts, end)):
            if starts[i] + latencies[i] > begin:
                flags[i] = value


def split_by_compression(reports: Sequence[WriterReport]) -> DuringCompression | None:
    """Percentiles of the calls made while some process was compressing."""
    if not any(r.compressions for r in reports):
        return None
    own: list[int] = []
    other: list[int] = []
    for r in reports:
        starts, latencies = array("q", r.starts), array("q", r.latencies)
        flags = bytearray(len(starts))
        elsewhere = (w for o in reports if o.pid != r.pid for w in o.compressions)
        _mark(starts, latencies, elsewhere, flags, _OTHER)
        _mark(starts, latencies, r.compressions, flags, _OWN)  # wins over _OTHER
        own += (d for d, f in zip(latencies, flags) if f == _OWN)
        other += (d for d, f in zip(latencies, flags) if f == _OTHER)
    return DuringCompression(Latency.of(own), Latency.of(other))


@dataclass
class Run:
    """One contender, one repetition."""

    contender: str
    repetition: int
    procs: int
    records: int  # per writer
    elapsed: float  # seconds, first writer's start to last writer's end (close excluded)
    rate: float  # records/s over elapsed, every writer together
    close_seconds: float  # the longest handler.close()
    errors: int
    latency: Latency  # every writer's samples merged
    writers: list[Latency]  # each writer's own
    during: DuringCompression | None  # None: nothing was compressed
    check: Verification


@dataclass
class Settings:
    """What every run of one invocation shares."""

    size: int
    rotations: int
    procs: int
    records: int  # per writer
    backup_count: int
    burst: int
    pause: float
    start_method: str


def _start_writers(contender: str, path: str, s: Settings) -> list[WriterReport]:
    ctx: Any = multiprocessing.get_context(s.start_method)
    barrier, results = ctx.Barrier(s.procs), ctx.Queue()
    options = (s.records, s.size, s.backup_count, s.burst, s.pause, barrier, results)
    writers = [
        ctx.Process(target=writer_main, args=(contender, path, w, *options)) for w in range(s.procs)
    ]
    return run_writers(writers, results, contender)


def measure(contender: str, repetition: int, directory: str, s: Settings) -> Run:
    """Run the writers of *contender* in *directory*, then read the files back."""
    reports = _start_writers(contender, os.path.join(directory, LOG_NAME), s)
    samples = [array("q", r.latencies) for r in reports]
    elapsed = max(r.end for r in reports) - min(r.start for r in reports)
    return Run(
        contender=contender,
        repetition=repetition,
        procs=s.procs,
        records=s.records,
        elapsed=elapsed,
        rate=s.procs * s.records / elapsed,
        close_seconds=max(r.close_seconds for r in reports),
        errors=sum(r.errors for r in reports),
        latency=Latency.of(v for values in samples for v in values),
        writers=[Latency.of(values) for values in samples],
        during=split_by_compression(reports),
        check=read_back(directory, LOG_NAME, parse_record, s.procs, s.records),
    )


# -- summaries and output ---------------------------------------------------------------------


@dataclass
class Summary:
    """Medians over the repetitions of one contender (worst repetition for the checks)."""

    contender: str
    runs: int
    rate: float
    p50_ns: int
    p99_ns: int
    p999_ns: int
    max_ns: int
    over_target: int  # calls slower than TARGET_NS
    close_seconds: float
    lost: int
    duplicated: int
    torn: int
    errors: int
    backups: int  # fewest in one repetition
    compressed: int  # fewest in one repetition
    stray: int  # most in one repetition
    # calls that overlapped a compression in another process / in their own; None: none ran
    other: Latency | None = None  # each field the median over the repetitions
    own: Latency | None = None


def _median_int(values: Iterable[int]) -> int:
    return round(statistics.median(values))


def _median_latency(latencies: Sequence[Latency]) -> Latency | None:
    if not latencies:
        return None
    return Latency(*(_median_int(getattr(x, f.name) for x in latencies) for f in fields(Latency)))


def summarize(runs: Sequence[Run], contenders: Sequence[str]) -> list[Summary]:
    summaries = []
    for name in contenders:
        group = [r for r in runs if r.contender == name]
        if not group:
            continue
        during = [r.during for r in group if r.during is not None]
        summaries.append(
            Summary(
                contender=name,
                runs=len(group),
                rate=statistics.median(r.rate for r in group),
                p50_ns=_median_int(r.latency.p50 for r in group),
                p99_ns=_median_int(r.latency.p99 for r in group),
                p999_ns=_median_int(r.latency.p999 for r in group),
                max_ns=_median_int(r.latency.max for r in group),
                over_target=_median_int(r.latency.over_target for r in group),
                close_seconds=statistics.median(r.close_seconds for r in group),
                lost=max(r.check.lost for r in group),
                duplicated=max(r.check.duplicated for r in group),
                torn=max(r.check.torn for r in group),
                errors=max(r.errors for r in group),
                backups=min(r.check.backups for r in group),
                compressed=min(r.check.compressed for r in group),
                stray=max(len(r.check.stray) for r in group),
                other=_median_latency([d.other for d in during]),
                own=_median_latency([d.own for d in during]),
            )
        )
    return summaries


def _duration(ns: float) -> str:
    return f"{ns / 1e3:.0f} us" if ns < 1_000_000 else f"{ns / 1e6:.1f} ms"


_HEADER = (
    f"{'contender':<17} {'records/s':>9} {'p50':>7} {'p99':>7} {'p99.9':>8} {'max':>8} "
    f"{'>5ms':>5} {'lost':>5} {'dup':>4} {'torn':>4} {'err':>4} {'gz/backups':>10}"
)
_DURING_HEADER = (
    f"{'contender':<17} {'calls':>7} {'p99':>7} {'p99.9':>8} {'max':>8} {'>5ms':>5}   "
    f"{'calls':>7} {'p99.9':>8} {'max':>8}"
)


def _row(m: Summary) -> str:
    return (
        f"{m.contender:<17} {m.rate:>9,.0f} {_duration(m.p50_ns):>7} {_duration(m.p99_ns):>7} "
        f"{_duration(m.p999_ns):>8} {_duration(m.max_ns):>8} {m.over_target:>5} "
        f"{m.lost:>5} {m.duplicated:>4} {m.torn:>4} {m.errors:>4} "
        f"{f'{m.compressed}/{m.backups}':>10}"
    )


def _during_row(m: Summary) -> str:
    if m.other is None or m.own is None:
        return f"{m.contender:<17} {'(nothing compressed)':>28}"
    other, own = m.other, m.own
    return (
        f"{m.contender:<17} {other.samples:>7,} {_duration(other.p99):>7} "
        f"{_duration(other.p999):>8} {_duration(other.max):>8} {other.over_target:>5}   "
        f"{own.samples:>7,} {_duration(own.p999):>8} {_duration(own.max):>8}"
    )


def format_table(summaries: Sequence[Summary], s: Settings, repeat: int, notes: list[str]) -> str:
    """The summaries as two plain-text tables, with a short legend."""
    lines = [
        f"{s.procs} writers x {s.records:,} records, rotating every {s.size:,} bytes "
        f"(~{s.rotations} rotations); medians of {repeat} runs",
        "",
        "Every logger.info call",
        _HEADER,
        "-" * len(_HEADER),
        *(_row(m) for m in summaries),
        "",
        "Calls made while a compression ran: in another process only | in the caller's own",
        _DURING_HEADER,
        "-" * len(_DURING_HEADER),
        *(_during_row(m) for m in summaries),
        "",
        "p50..max: one logger.info call, every writer's samples merged; >5ms: calls slower",
        "than 5 ms (the target is p99.9 <= 5 ms); lost, dup, torn, err: worst run;",
        "gz/backups: fewest in one run.  Own process: for clh that is the call doing the gzip.",
    ]
    for name in dict.fromkeys(m.contender for m in summaries):
        lines += textwrap.wrap(
            CONTENDERS[name], 92, initial_indent=f"{name}: ", subsequent_indent="  "
        )
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


def write_json(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")


# -- driving it ---------------------------------------------------------------------------------


def run_all(
    contenders: Sequence[str], repeat: int, s: Settings, root: str | None, progress: TextIO | None
) -> list[Run]:
    """Every contender *repeat* times, in a rotated order each repetition."""
    runs: list[Run] = []
    total = repeat * len(contenders)
    order = partial(rotated, contenders)
    for rep, name, directory in fresh_runs(repeat, order, "mplog-compression-", root):
        if progress is not None:
            progress.write(f"  [{len(runs) + 1}/{total}] rep {rep + 1} {name:<17}")
            progress.flush()
        run = measure(name, rep, directory, s)
        runs.append(run)
        if progress is not None:
            progress.write(_progress(run))
            progress.flush()
    return runs


def _progress(run: Run) -> str:
    line = (
        f" {run.elapsed:5.1f} s {run.rate:>8,.0f} rec/s p99.9 {_duration(run.latency.p999):>7}"
        f" max {_duration(run.latency.max):>8}"
    )
    if run.during is not None:
        line += f" (other proc compressing: max {_duration(run.during.other.max)})"
    return f"{line} lost {run.check.lost} gz {run.check.compressed}/{run.check.backups}\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="10MB", help="maxBytes of every contender (10MB)")
    parser.add_argument("--rotations", type=int, default=5, help="rotations per run (5)")
    parser.add_argument("--procs", type=int, default=2, help="writer processes (2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender (3)")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"comma-separated subset of {','.join(CONTENDERS)}",
    )
    parser.add_argument("--burst", type=int, default=50, help="records between pauses (50)")
    parser.add_argument(
        "--pause", type=float, default=0.001, help="seconds each writer sleeps per burst (0.001)"
    )
    parser.add_argument("--start-method", default="fork", choices=("fork", "spawn", "forkserver"))
    parser.add_argument("--dir", help="where the temporary log directory goes")
    parser.add_argument("--json", help="write every run and the summaries to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if min(args.rotations, args.procs, args.repeat, args.burst) < 1 or args.pause < 0:
        parser.error("--rotations, --procs, --repeat and --burst must be >= 1, --pause >= 0")
    try:
        parse_size(args.size, "--size")
    except ValueError as error:
        parser.error(str(error))
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    """Enough records for *rotations* rotations and half a file more (so that a few
    bytes more or less per line do not change the number of rotations)."""
    size = parse_size(args.size, "--size")
    total = (args.rotations + 0.5) * size
    records = math.ceil(total / (args.procs * record_length()))
    return Settings(
        size=size,
        rotations=args.rotations,
        procs=args.procs,
        records=records,
        backup_count=args.rotations + 10,  # never delete a backup: every record is counted
        burst=args.burst,
        pause=args.pause,
        start_method=args.start_method,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    s = settings_from(args)
    notes, contenders = [], []
    for name in dict.fromkeys(n.strip() for n in args.contenders.split(",") if n.strip()):
        reason = contender_available(name, CONTENDERS)
        if reason is None:
            contenders.append(name)
        else:
            notes.append(f"{name} skipped: {reason}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not contenders:
        return 2
    progress = None if args.quiet else sys.stderr
    if progress is not None:
        progress.write(
            f"{s.procs} writers x {s.records:,} records (~{record_length()} bytes each), "
            f"{s.burst} records then a {s.pause * 1e3:g} ms sleep; maxBytes {s.size:,}\n"
        )
    runs = run_all(contenders, args.repeat, s, args.dir, progress)
    summaries = summarize(runs, contenders)
    print(format_table(summaries, s, args.repeat, notes))
    if args.json:
        environment = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "repeat": args.repeat,
            "contenders": contenders,
            "target_ns": TARGET_NS,
            **asdict(s),
        }
        write_json(
            args.json,
            {
                "environment": environment,
                "notes": notes,
                "summaries": [asdict(m) for m in summaries],
                "runs": [asdict(r) for r in runs],
            },
        )
    damaged = [m.contender for m in summaries if m.lost or m.duplicated or m.torn or m.stray]
    for name in damaged:
        print(f"error: {name} lost, duplicated or tore records, or left files", file=sys.stderr)
    return 1 if damaged else 0


if __name__ == "__main__":
    sys.exit(main())
