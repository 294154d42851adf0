"""Multi-process invariants: every record exactly once, whole, in per-worker order, and
rotation exactly once per trigger, checked on the files after the processes are done.

Nothing here asserts a duration: the time-rotation tests let workers log across a few
second boundaries and then check what the files must satisfy by design, and the tests
of specific interleavings drive real processes step by step on a shared fake clock.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    BASE,
    LOCK,
    PAYLOAD,
    PRESENCE,
    WORKERS,
    LogFile,
    Rec,
    all_records,
    assert_each_once_in_order,
    log_files,
    parent_logger,
    parse_records,
    read_records,
    reap,
    started,
)

# Child processes import their entry points by module name (spawn, forkserver):
# put this directory on sys.path, which multiprocessing hands on to them.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
mp_workers = importlib.import_module("mp_workers")

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork"), reason="these scenarios use fork, spawn and forkserver (POSIX)"
)

JOIN_TIMEOUT = 90


# -- checking the files (helpers.py reads them back) ----------------------------------------


def assert_exact_size_rotation(
    files: Sequence[LogFile], records: Sequence[Rec], record_size: int, max_bytes: int
) -> None:
    """With same-size records, every backup holds exactly as many as fit in max_bytes."""
    assert {r.nbytes for r in records} == {record_size}
    per_file = max_bytes // record_size
    *backups, active = files
    wrong = [(f.path.name, f.size) for f in backups if f.size != per_file * record_size]
    assert not wrong, f"backups should be {per_file * record_size} bytes: {wrong[:5]}"
    assert len(backups) == (len(records) - 1) // per_file
    assert active.size == (len(records) - len(backups) * per_file) * record_size


# -- running processes ------------------------------------------------------------------


def run_workers(ctx: Any, target: Any, arglists: Sequence[tuple[Any, ...]]) -> None:
    """Start one process per argument tuple, release them together, wait for all."""
    with started(ctx, target, arglists) as processes:
        for process in processes:
            process.join(JOIN_TIMEOUT)
    assert [p.exitcode for p in processes] == [0] * len(processes)


# -- N processes x M records ------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("start", "batched"),
    [
        ("fork-inherited", False),
        ("fork", False),
        ("spawn", False),
        ("forkserver", False),
        # batched: inherited children never close their handler; their queue is
        # written when the multiprocessing child exits (it skips atexit)
        ("fork-inherited", True),
        ("spawn", True),
    ],
)
def test_workers_share_one_rotating_file_without_loss(
    tmp_path: Path, start: str, batched: bool
) -> None:
    """Records of 4 processes (any start method, sync or batched) all arrive once, whole and
    in per-worker order."""
    path, count, max_bytes = tmp_path / BASE, 2500, 64 * 1024
    kwargs = {"maxBytes": max_bytes, "backupCount": 1000, "batched": batched}
    method, _, mode = start.partition("-")
    ctx = multiprocessing.get_context(method)
    with contextlib.ExitStack() as stack:
        if mode == "inherited":  # configured before the fork, as setup_logging() would be
            stack.enter_context(parent_logger(path, kwargs, "mplog.tests.inherited"))
        worker_kwargs = None if mode == "inherited" else kwargs
        run_workers(
            ctx,
            mp_workers.fixed_worker,
            [(str(path), worker_kwargs, w, count, PAYLOAD) for w in range(WORKERS)],
        )
    files = log_files(tmp_path)
    records = all_records(files)
    assert_each_once_in_order(records, dict.fromkeys(range(WORKERS), count))
    assert_exact_size_rotation(files, records, mp_workers.fixed_record_size(PAYLOAD), max_bytes)


# -- size rotation ----------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_size_rotation_fills_every_backup_exactly(tmp_path: Path) -> None:
    """Same-size records: each backup holds floor(maxBytes/size) records, no more, no fewer."""
    path, count = tmp_path / BASE, 3000
    record_size = mp_workers.fixed_record_size(PAYLOAD)
    max_bytes = 60 * record_size + record_size // 2  # not a multiple of the record size
    kwargs = {"maxBytes": max_bytes, "backupCount": 1000}
    ctx = multiprocessing.get_context("fork")
    run_workers(
        ctx,
        mp_workers.fixed_worker,
        [(str(path), kwargs, w, count, PAYLOAD) for w in range(WORKERS)],
    )
    files = log_files(tmp_path)
    records = all_records(files)
    assert_each_once_in_order(records, dict.fromkeys(range(WORKERS), count))
    assert_exact_size_rotation(files, records, record_size, max_bytes)
    assert len(files) - 1 == (WORKERS * count - 1) // 60 > 100  # no backup was pruned


@pytest.mark.timeout(120)
def test_size_rotation_keeps_backup_count_newest_files(tmp_path: Path) -> None:
    """backupCount=3 leaves exactly 3 full backups, and they hold the newest records."""
    path, count, backups = tmp_path / BASE, 2000, 3
    record_size = mp_workers.fixed_record_size(PAYLOAD)
    per_file = 50
    kwargs = {"maxBytes": per_file * record_size + 7, "backupCount": backups}
    ctx = multiprocessing.get_context("fork")
    run_workers(
        ctx,
        mp_workers.fixed_worker,
        [(str(path), kwargs, w, count, PAYLOAD) for w in range(WORKERS)],
    )
    files = log_files(tmp_path)
    assert [f.path.name for f in files] == [f"{BASE}.3", f"{BASE}.2", f"{BASE}.1", BASE]
    assert all(f.size == per_file * record_size for f in files[:-1])
    records = all_records(files)
    total = WORKERS * count
    assert len(records) == backups * per_file + (total - 1) % per_file + 1
    # The newest records survive: each worker's survivors are the tail of its sequence,
    # in order, and what was pruned is everything older.
    survivors: dict[int, list[int]] = defaultdict(list)
    for record in records:
        survivors[record.worker].append(record.seq)
    for seqs in survivors.values():
        assert seqs == list(range(count - len(seqs), count))


# -- record shapes ----------------------------------------------------------------------


def _shapes(worker: int) -> list[str]:
    kinds = ["small", "uni", "exc", "small", "big", "uni", "small", "exc"] * 8
    kinds[20 + worker] = "huge"  # one record of a few MB per worker
    return kinds


@pytest.mark.timeout(120)
def test_multiline_unicode_and_huge_records_stay_whole(tmp_path: Path) -> None:
    """Tracebacks, non-ASCII, 70 KiB and 3 MiB records mixed with small ones: none torn."""
    path, max_bytes = tmp_path / BASE, 1024 * 1024
    kwargs = {"maxBytes": max_bytes, "backupCount": 1000}
    ctx = multiprocessing.get_context("fork")
    run_workers(
        ctx, mp_workers.shapes_worker, [(str(path), kwargs, w, _shapes(w)) for w in range(WORKERS)]
    )
    files = log_files(tmp_path)
    per_file = [read_records(f.path) for f in files]
    records = [record for chunk in per_file for record in chunk]
    assert_each_once_in_order(records, {w: len(_shapes(w)) for w in range(WORKERS)})
    assert Counter(r.kind for r in records) == Counter(k for w in range(4) for k in _shapes(w))
    for file, chunk, following in zip(files, per_file, per_file[1:]):
        # A backup is within maxBytes unless it is one oversized record on its own, and it
        # was rotated only because the next record (the first of the next file) did not fit.
        assert file.size <= max_bytes or len(chunk) == 1, file.path.name
        assert file.size + following[0].nbytes > max_bytes, file.path.name


# -- time rotation ----------------------------------------------------------------------


def _run_timed(tmp_path: Path, kwargs: dict[str, Any]) -> dict[int, int]:
    """Four processes log for three second boundaries; return how many records each wrote."""
    ctx = multiprocessing.get_context("fork")
    counts = ctx.Array("q", WORKERS)
    run_workers(
        ctx,
        mp_workers.timed_worker,
        [(str(tmp_path / BASE), kwargs, w, 3, 500_000, counts) for w in range(WORKERS)],
    )
    return dict(enumerate(counts))


def _assert_created_within_period(files: Sequence[LogFile], interval: float) -> None:
    """Every record in a backup named for period P was created before P's start + 2 intervals.

    Why not "before the end of P" (+ lock waits)?  mplog counts a period from the
    instant the rotation happened (time.time() as a float), as the stdlib does for
    S/M/H/D, but without the stdlib's truncation to whole seconds; the backup is
    named for the second in which its period began.  A period that begins at
    12:00:00.700 ends at 12:00:01.700, so the file named 12-00-00 legitimately
    holds records created up to 12:00:01.7.  What does hold by design: a writer
    checks the clock (under the lock) after the record was created, and rotates
    first once the boundary has passed, so created < boundary < named second + 2
    intervals, with no allowance needed.  There is no useful lower bound: a record
    created just before a boundary may wait for the lock and land after it.
    """
    late = [
        (file.path.name, record.created)
        for file in files[:-1]
        for record in read_records(file.path)
        if record.created >= file.period_start + 2 * interval
    ]
    assert not late, f"records created after their file's period: {late[:5]}"


@pytest.mark.timeout(120)
def test_time_rotation_every_second_rotates_once_per_period(tmp_path: Path) -> None:
    """when='S': one backup per period, named for it, no counters, every record once."""
    counts = _run_timed(tmp_path, {"when": "S", "utc": True})
    files = log_files(tmp_path, when="S")
    assert len(files) >= 2, "the workers logged across second boundaries: expected a rotation"
    # A second rotation in the same period would have needed a ".1" counter.
    assert all(f.counter == 0 for f in files[:-1]), [f.path.name for f in files]
    assert all(f.size > 0 for f in files[:-1]), "an empty backup: rotated twice"
    assert_each_once_in_order(all_records(files), counts)
    _assert_created_within_period(files, 1.0)


@pytest.mark.timeout(120)
def test_size_and_time_rotation_combined(tmp_path: Path) -> None:
    """when='S' with maxBytes: counters only for size rotations within a period, nothing lost."""
    max_bytes = 32 * 1024
    counts = _run_timed(tmp_path, {"when": "S", "utc": True, "maxBytes": max_bytes})
    files = log_files(tmp_path, when="S")
    per_file = [read_records(f.path) for f in files]
    assert_each_once_in_order([r for chunk in per_file for r in chunk], counts)
    assert len({f.period for f in files[:-1]}) >= 2, "expected time rotations"
    assert any(f.counter for f in files), "expected size rotations within a period"
    for file, following_file, following in zip(files, files[1:], per_file[1:]):
        assert 0 < file.size <= max_bytes, file.path.name
        if following_file.period == file.period:  # rotated by size, within its period
            assert file.size + following[0].nbytes > max_bytes, file.path.name
    _assert_created_within_period(files, 1.0)


# -- gunicorn style: the handler is built before os.fork() ----------------------------------


@pytest.mark.timeout(120)
def test_forked_children_log_through_the_inherited_handler(tmp_path: Path) -> None:
    """Parent and os.fork() children share a pre-fork handler: they still exclude each other."""
    path, children, count = tmp_path / BASE, 3, 150
    payload = 16 * 1024  # big records, rotation every 6: many chances to collide
    record_size = mp_workers.fixed_record_size(payload)
    max_bytes = 6 * record_size + 100
    kwargs = {"maxBytes": max_bytes, "backupCount": 1000}
    pids: list[int] = []
    finished = False
    with parent_logger(path, kwargs, "mplog.tests.gunicorn") as logger:
        try:
            mp_workers.emit(logger, 0, 0, "small", payload)  # logged once, before the fork
            for worker in range(1, children + 1):
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child
                    status = 1
                    try:
                        mp_workers.emit_many(logger, worker, range(count), "small", payload)
                        status = 0
                    except BaseException:
                        traceback.print_exc()
                    finally:
                        os._exit(status)
                pids.append(pid)
            mp_workers.emit_many(logger, 0, range(1, count), "small", payload)
            statuses = [os.waitpid(pid, 0)[1] for pid in pids]
            finished = True
        finally:
            if not finished:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, ChildProcessError):
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
    assert [os.waitstatus_to_exitcode(s) for s in statuses] == [0] * children
    files = log_files(tmp_path)
    records = all_records(files)
    assert_each_once_in_order(records, dict.fromkeys(range(children + 1), count))
    assert_exact_size_rotation(files, records, record_size, max_bytes)


# -- logrotate-style interference -------------------------------------------------------------


@pytest.mark.timeout(120)
def test_log_renamed_then_deleted_by_another_program(tmp_path: Path) -> None:
    """After an outside rename and an unlink, records go to a new file at the path; none lost.

    watch_interval=0 makes every record check the path, so each record's file is known;
    with the default interval the same happens up to a second later.
    """
    path, count = tmp_path / BASE, 3000
    renamed = f"{BASE}-20240101"  # logrotate's dateext
    ctx = multiprocessing.get_context("fork")
    first, second = count // 3, 2 * count // 3
    events = [ctx.Event() for _ in range(4)]
    pauses = {first: (events[0], events[1]), second: (events[2], events[3])}
    barrier = ctx.Barrier(WORKERS + 1)
    processes = [
        ctx.Process(
            target=mp_workers.paced_worker,
            args=(str(path), {"watch_interval": 0}, w, count, pauses if w == 0 else {}, barrier),
            daemon=True,
        )
        for w in range(WORKERS)
    ]
    deleted_fd = -1
    try:
        for process in processes:
            process.start()
        barrier.wait(60)
        # Worker 0 waits at `first` while the others keep logging through the rename.
        assert events[0].wait(60)
        os.rename(path, tmp_path / renamed)
        events[1].set()
        assert events[2].wait(60)
        deleted_fd = os.open(path, os.O_RDONLY)  # keep the deleted file readable
        assert os.fstat(deleted_fd).st_ino == os.stat(path).st_ino
        os.unlink(path)
        events[3].set()
        for process in processes:
            process.join(JOIN_TIMEOUT)
        assert [p.exitcode for p in processes] == [0] * WORKERS
        size = os.fstat(deleted_fd).st_size
        deleted = os.pread(deleted_fd, size, 0)
    finally:
        reap(processes)
        if deleted_fd >= 0:
            os.close(deleted_fd)
    assert sorted(os.listdir(tmp_path)) == sorted([LOCK, PRESENCE, BASE, renamed])
    in_renamed = read_records(tmp_path / renamed)
    in_deleted = parse_records(deleted, "deleted file")
    in_current = read_records(path)
    assert_each_once_in_order(
        in_renamed + in_deleted + in_current, dict.fromkeys(range(WORKERS), count)
    )
    # Worker 0 paused around each outside change, so its records show where each went.
    assert [r.seq for r in in_renamed if r.worker == 0] == list(range(first))
    assert [r.seq for r in in_deleted if r.worker == 0] == list(range(first, second))
    assert [r.seq for r in in_current if r.worker == 0] == list(range(second, count))


# -- processes that start later ---------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("when", [None, "H"])
def test_second_wave_of_processes_joins_the_rotated_set(tmp_path: Path, when: str | None) -> None:
    """Processes started after others exited continue the same backups, in order, none lost."""
    path, count = tmp_path / BASE, 1500
    record_size = mp_workers.fixed_record_size(PAYLOAD)
    max_bytes = 40 * record_size + 3
    kwargs: dict[str, Any] = {"maxBytes": max_bytes, "backupCount": 1000}
    if when:
        kwargs.update(when=when, utc=True, backupCount=0)
    ctx = multiprocessing.get_context("fork")
    for wave in range(2):
        arglists = [(str(path), kwargs, wave * WORKERS + w, count, PAYLOAD) for w in range(WORKERS)]
        run_workers(ctx, mp_workers.fixed_worker, arglists)
    files = log_files(tmp_path, when=when)
    records = all_records(files)
    assert_each_once_in_order(records, dict.fromkeys(range(2 * WORKERS), count))
    last_of_first_wave = max(i for i, r in enumerate(records) if r.worker < WORKERS)
    assert last_of_first_wave == WORKERS * count - 1, "a second-wave record came first"
    if when is None:
        assert_exact_size_rotation(files, records, record_size, max_bytes)
    else:  # a backup followed by one of the same period was rotated by size
        for file, following in zip(files[:-1], files[1:-1]):
            assert file.size <= max_bytes, file.path.name
            if following.period == file.period:
                assert file.size == 40 * record_size, file.path.name


# -- specific interleavings, replayed on a fake clock -------------------------------------------


class Remote:
    """A child process with its own handler on a shared fake clock, driven one step at a time."""

    def __init__(
        self,
        ctx: Any,
        path: Path,
        kwargs: dict[str, Any],
        worker: int,
        clock: Any,
        journal: list[tuple[int, int]],
    ) -> None:
        self.worker, self.journal = worker, journal
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(
            target=mp_workers.remote_worker,
            args=(str(path), kwargs, worker, child_conn, clock),
            daemon=True,
        )
        self.process.start()

    def __call__(self, *command: Any) -> None:
        self.conn.send(command)
        assert self.conn.poll(30), f"no answer to {command}"
        reply = self.conn.recv()
        assert reply == "ok", reply
        if command[0] == "log":
            self.journal.append((self.worker, command[1]))


@contextlib.contextmanager
def remotes(
    tmp_path: Path, kwargs: dict[str, Any], start: float, workers: int = 2
) -> Iterator[tuple[Any, list[Remote], list[tuple[int, int]]]]:
    """Yield the fake clock, the processes, and the journal of records in the order logged."""
    ctx = multiprocessing.get_context("fork")
    clock = ctx.Value("d", start)
    journal: list[tuple[int, int]] = []
    procs: list[Remote] = []
    try:
        procs.extend(
            Remote(ctx, tmp_path / BASE, kwargs, w, clock, journal) for w in range(workers)
        )
        yield clock, procs, journal
        for proc in procs:
            proc("close")
            proc.process.join(JOIN_TIMEOUT)
        assert [p.process.exitcode for p in procs] == [0] * workers
    finally:
        reap([p.process for p in procs])


def assert_written_in_logging_order(directory: Path, journal: list[tuple[int, int]]) -> None:
    """The records, read oldest file first, are exactly the records logged, in that order."""
    files = log_files(directory, when="S")
    found = [(r.worker, r.seq) for r in all_records(files)]
    names = [f"{f.path.name}: {[(r.worker, r.seq) for r in read_records(f.path)]}" for f in files]
    assert found == journal, "files, oldest first:\n" + "\n".join(names)


@pytest.mark.timeout(60)
def test_idle_process_first_past_a_boundary_names_the_backup_in_order(tmp_path: Path) -> None:
    """A process idle for periods that is first past a boundary names the backup in order."""
    start = int(time.time()) + 0.25
    with remotes(tmp_path, {"when": "S", "utc": True}, start) as (clock, procs, journal):
        busy, idle = procs
        busy("open")
        idle("open")
        idle("log", 0)
        for seq in range(5):  # busy rotates once a second; idle says nothing
            busy("log", seq)
            clock.value += 1.0
        idle("log", 1)  # the first to log after the boundary: it rotates
        busy("log", 5)
    assert_written_in_logging_order(tmp_path, journal)


@pytest.mark.timeout(60)
def test_process_started_mid_period_names_size_backups_in_order(tmp_path: Path) -> None:
    """A process started mid-period labels its size rotations with the shared period, in order."""
    record_size = mp_workers.fixed_record_size(mp_workers.KIND_SIZES["small"])
    kwargs = {"when": "S", "utc": True, "maxBytes": 2 * record_size + record_size // 2}
    t0 = int(time.time()) + 0.9
    with remotes(tmp_path, kwargs, t0) as (clock, procs, journal):
        early, late = procs
        early("open")
        early("log", 0)
        clock.value = t0 + 1.0  # early rotates by time; the shared boundary is now t0 + 2
        early("log", 1)
        clock.value = t0 + 1.2  # ... and writes again, in the next wall-clock second
        early("log", 2)
        late("open")  # starts now, reading the file's modification time
        clock.value = t0 + 1.3
        late("log", 0)  # the file is full: late rotates by size
        clock.value = t0 + 2.05
        early("log", 3)  # early rotates by time
        early("log", 4)
    assert_written_in_logging_order(tmp_path, journal)
