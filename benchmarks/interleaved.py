"""Throughput ratios to FileHandler, measured in short interleaved slices.

``mplog bench`` runs each contender in its own processes, one after the other;
on a shared machine whose speed drifts by tens of percent within seconds, its
per-repetition ratios move a lot.  Here the same worker processes hold one
handler per contender and take turns in short slices, so every slice of a
contender has a ``FileHandler`` slice next to it, a few tens of milliseconds
away::

    python benchmarks/interleaved.py --procs 1,4 --slice 2000 --rounds 30

In each round, each contender (in a rotated order) gets one slice: every
worker waits on a barrier, logs ``--slice`` records through :mod:`logging`
into that contender's file (one file per contender, shared by all workers),
flushes, and notes its monotonic start and end.  A slice lasts from the
earliest start to the latest end over the workers.  A contender's ratio in a
round is FileHandler's slice duration divided by its own, that is its
throughput relative to FileHandler's; the table gives the median and the
quartiles of those ratios over the rounds.  Each worker also notes the CPU time
(user and system, all its threads) of each slice: the CPU per record says where
a ratio comes from once every core is busy (``busy`` near 1), when throughput is
cores divided by CPU per record, as with more processes than cores.

Every file is read back afterwards: each record carries its worker id and
sequence number, so lost, duplicated and torn records are counted; the exit
status is 1 if any contender other than FileHandler lost, duplicated or tore
one.  Peak memory and latency percentiles are ``mplog bench``'s job; this
script only answers "how far from FileHandler".
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mplog._bench_contenders import (
    CONTENDERS,
    FORMAT,
    LOG_NAME,
    MESSAGE_SIZE,
    REFERENCE,
    contender_available,
    make_handler,
    parse_record,
    writer_logger,
)
from mplog._bench_runner import rotated, run_writers
from mplog._cli_args import positive, process_counts, size
from mplog._readback import read_back

# No listener process here.  format-only writes nothing: the floor of a logging call.
CHOICES = (
    "filehandler",
    "format-only",
    "mplog",
    "mplog-batched",
    "mplog-fsync-1s",
    "mplog-fsync",
    "filehandler-fsync",
    "mplog-batched-fsync",
    "clh",
)
DEFAULT_CONTENDERS = ("filehandler", "mplog", "mplog-batched")


# -- the worker processes --------------------------------------------------------------------


def worker_main(
    worker: int,
    directory: str,
    contenders: Sequence[str],
    slice_size: int,
    rounds: int,
    max_bytes: int,
    backup_count: int,
    barrier: Any,
    results: Any,
) -> None:  # pragma: no cover - runs in a child process
    """Log one slice per contender and round, in the order of :func:`order`; report
    ``(worker, {contender: [(start, end, cpu), ...]}, {contender: errors})``, where
    *cpu* is the CPU time (user and system, every thread of the process) the slice took."""
    loggers = []
    counters = {}
    for name in contenders:
        path = os.path.join(directory, name, LOG_NAME)
        handler = make_handler(name, path, max_bytes, backup_count)
        logger, counters[name] = writer_logger(f"interleaved.{name}.{worker}", handler, FORMAT)
        loggers.append((name, logger, handler))
    filler = "x" * max(1, MESSAGE_SIZE - len(f"w={worker} seq={rounds * slice_size} "))
    spans: dict[str, list[tuple[float, float, float]]] = {name: [] for name in contenders}
    clock = time.perf_counter  # CLOCK_MONOTONIC on Linux: comparable across processes
    cpu = time.process_time  # this process's CPU time: the batched writer's too
    seq = dict.fromkeys(contenders, 0)
    for round_ in range(rounds):
        for index in order(len(contenders), round_):
            name, logger, handler = loggers[index]
            info = logger.info
            first = seq[name]
            barrier.wait(timeout=120)
            start, start_cpu = clock(), cpu()
            for n in range(first, first + slice_size):
                info("w=%d seq=%d %s", worker, n, filler)
            handler.flush()
            spans[name].append((start, clock(), cpu() - start_cpu))
            seq[name] = first + slice_size
    for _, _, handler in loggers:
        handler.close()
    results.put((worker, spans, {name: c.count for name, c in counters.items()}))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system tells it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def order(count: int, round_: int) -> list[int]:
    """The contenders' order in *round_*: rotated each round, so that none always
    follows the same one."""
    return rotated(range(count), round_)


# -- one measurement -------------------------------------------------------------------------


@dataclass
class Row:
    """One contender at one process count."""

    contender: str
    procs: int
    ratio: float  # median over the rounds of FileHandler's slice duration / this one's
    q1: float
    q3: float
    rate: float  # median records/s of a slice
    cpu_us: float  # median over the rounds of the CPU time per record, all workers, in µs
    busy: float  # median over the rounds of the cores kept busy (CPU time / slice / cores)
    lost: int
    duplicated: int
    torn: int
    errors: int


def measure(
    procs: int,
    contenders: Sequence[str],
    slice_size: int,
    rounds: int,
    max_bytes: int,
    backup_count: int,
    start_method: str,
    parent_dir: str | None,
) -> list[Row]:
    """Run *procs* workers through *rounds* rounds; return one row per contender."""
    ctx: Any = multiprocessing.get_context(start_method)
    directory = tempfile.mkdtemp(prefix="mplog-interleaved-", dir=parent_dir)
    try:
        for name in contenders:
            os.mkdir(os.path.join(directory, name))
        barrier, results = ctx.Barrier(procs), ctx.Queue()
        args = (directory, contenders, slice_size, rounds, max_bytes, backup_count)
        workers = [
            ctx.Process(target=worker_main, args=(w, *args, barrier, results)) for w in range(procs)
        ]
        reports = run_writers(workers, results, f"{procs} processes")
        slices = {
            name: [
                (min(r[1][name][i][0] for r in reports), max(r[1][name][i][1] for r in reports))
                for i in range(rounds)
            ]
            for name in contenders
        }
        cpu_times = {
            name: [sum(r[1][name][i][2] for r in reports) for i in range(rounds)]
            for name in contenders
        }
        cores = min(procs, usable_cpus())
        rows = []
        reference = [end - start for start, end in slices[REFERENCE]]
        for name in contenders:
            durations = [end - start for start, end in slices[name]]
            records = procs * slice_size
            ratios = sorted(ref / own for ref, own in zip(reference, durations))
            files = os.path.join(directory, name)
            lost = duplicated = torn = 0  # format-only: nothing written, nothing to check
            if CONTENDERS[name].writes:
                check = read_back(files, LOG_NAME, parse_record, procs, rounds * slice_size)
                lost, duplicated, torn = check.lost, check.duplicated, check.torn
            rows.append(
                Row(
                    contender=name,
                    procs=procs,
                    ratio=statistics.median(ratios),
                    q1=ratios[len(ratios) // 4],
                    q3=ratios[(3 * len(ratios)) // 4],
                    rate=statistics.median(records / d for d in durations),
                    cpu_us=statistics.median(c * 1e6 / records for c in cpu_times[name]),
                    busy=statistics.median(
                        c / d / cores for c, d in zip(cpu_times[name], durations)
                    ),
                    lost=lost,
                    duplicated=duplicated,
                    torn=torn,
                    errors=sum(r[2][name] for r in reports),
                )
            )
        return rows
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- the command line ------------------------------------------------------------------------


def format_table(rows: Sequence[Row], rounds: int, slice_size: int) -> str:
    header = (
        f"{'contender':<19} {'vs FH':>6} {'q1':>6} {'q3':>6} {'records/s':>10} "
        f"{'cpu/rec':>8} {'busy':>5} {'lost':>6} {'dup':>5} {'torn':>5} {'err':>5}"
    )
    lines: list[str] = []
    for procs in sorted({r.procs for r in rows}):
        title = f"{procs} process{'es' if procs > 1 else ''}"
        lines += ["", f"{title}: {rounds} rounds of {slice_size:,} records per process"]
        lines += [header, "-" * len(header)]
        for r in (r for r in rows if r.procs == procs):
            lines.append(
                f"{r.contender:<19} {r.ratio:>6.2f} {r.q1:>6.2f} {r.q3:>6.2f} {r.rate:>10,.0f} "
                f"{r.cpu_us:>5.2f} us {r.busy:>5.2f} "
                f"{r.lost:>6} {r.duplicated:>5} {r.torn:>5} {r.errors:>5}"
            )
    lines += [
        "",
        "vs FH: median over the rounds of FileHandler's slice duration divided by the",
        "contender's (its throughput relative to FileHandler's); q1, q3: the quartiles.",
        "records/s: median over the slices. cpu/rec: CPU time (user and system, every",
        "thread) per record over all workers; busy: that CPU time over the slice's",
        "duration and min(processes, cores): near 1, the ratio is the ratio of CPU per record.",
        "lost, dup, torn: after reading every file back",
        "(format-only writes nothing: formatting and encoding alone, the ceiling of a handler).",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput ratios to FileHandler, in short interleaved slices."
    )
    parser.add_argument(
        "--procs",
        type=process_counts,
        default=[1, 4],
        help="process counts, e.g. 1,2,4 (default 1,4)",
    )
    parser.add_argument(
        "--slice", type=positive, default=2000, help="records per process per slice (2000)"
    )
    parser.add_argument(
        "--rounds", type=positive, default=30, help="slices per contender (default 30)"
    )
    parser.add_argument(
        "--contenders",
        default=",".join(DEFAULT_CONTENDERS),
        help=f"comma-separated, from {', '.join(CHOICES)}; filehandler is always included",
    )
    parser.add_argument(
        "--max-bytes", type=size, default=1_000_000, help="where mplog and clh rotate (1MB)"
    )
    parser.add_argument("--backup-count", type=positive, default=1000)
    parser.add_argument("--start-method", default="fork", choices=("fork", "spawn", "forkserver"))
    parser.add_argument("--dir", default=None, help="where the temporary directory goes")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    names = [REFERENCE] + [c for c in args.contenders.split(",") if c and c != REFERENCE]
    unknown = [c for c in names if c not in CHOICES]
    if unknown:
        parser.error(f"--contenders: unknown {unknown[0]!r} (choose from {', '.join(CHOICES)})")
    args.contenders, args.skipped = [], []
    for name in names:
        reason = contender_available(name)
        (args.skipped if reason else args.contenders).append(reason or name)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for note in args.skipped:
        print(f"skipped: {note}", file=sys.stderr)
    rows: list[Row] = []
    for procs in args.procs:
        if not args.quiet:
            print(f"{procs} processes: {args.rounds} rounds ...", file=sys.stderr, flush=True)
        rows += measure(
            procs,
            args.contenders,
            args.slice,
            args.rounds,
            args.max_bytes,
            args.backup_count,
            args.start_method,
            args.dir,
        )
    print(format_table(rows, args.rounds, args.slice))
    if args.json:
        environment = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "start_method": args.start_method,
            "slice": args.slice,
            "rounds": args.rounds,
            "max_bytes": args.max_bytes,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": environment, "rows": [asdict(r) for r in rows]}, f, indent=2)
    bad = [r for r in rows if r.contender != REFERENCE and (r.lost or r.duplicated or r.torn)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
