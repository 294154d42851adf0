"""Crashes and races around the compression of rotated files (``compress=``).

Compression runs in a background thread of the process that rotated, never holding the
writers' lock (claim the backup with flock, compress into a hidden temporary file,
commit under the writers' lock).  These tests SIGKILL processes at chosen points of
that path (mid-stream, inside a user's callable, between the commit's two renames, after
the original is set aside), keep a compressor stalled while others log and rotate, and
fake the leftovers of crashes, then check the invariants:

* every record stays readable: the complete original or the complete compressed file;
* no temporary file survives the next sweep (after a rotation, or at ``close()``),
  unless a live compression still holds its lock;
* once every process has closed its handler, no rotated file is left uncompressed;
* writers never wait for a compression.

Stalled children wait on files in a control directory (see compression_fault_workers);
every wait is bounded.  Assertions are about files, never durations.
"""

from __future__ import annotations

import bz2
import contextlib
import fcntl
import gzip
import logging
import lzma
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import compression_fault_workers as workers
import fault_workers
import mp_workers
import mplog._claims
import mplog._compress_backup
import mplog._untrusted
from helpers import (
    BASE,
    LOCK,
    PRESENCE,
    RecordingHandler,
    assert_each_once_in_order,
    kill_and_reap,
    lock_is_held,
    parent_logger,
    parse_records,
    read_records,
    started,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SIGKILL, fork, flock, /proc: Linux scenarios"
)

PAYLOAD = 60
RECORD_SIZE = mp_workers.fixed_record_size(PAYLOAD)
TEMP_PREFIX = f".{BASE}.mplog-"
JOIN_TIMEOUT = 60
SUFFIXES = {"gzip": ".gz", "bz2": ".bz2", "xz": ".xz"}
_DECOMPRESS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}
_NAME = re.compile(re.escape(BASE) + r"\.([1-9]\d*)(\.gz|\.bz2|\.xz)?")


# -- the files of a log ---------------------------------------------------------------------


@dataclass
class Listing:
    """The directory of a log, classified; fails on any file that is none of these."""

    plain: dict[int, Path] = field(default_factory=dict)  # backup number -> uncompressed
    compressed: dict[int, Path] = field(default_factory=dict)  # backup number -> compressed
    temps: list[str] = field(default_factory=list)  # temporary files of compressions


def listing(directory: Path, also: Sequence[str] = ()) -> Listing:
    found = Listing()
    for name in sorted(os.listdir(directory)):
        if name in (BASE, LOCK, PRESENCE, *also):
            continue
        if name.startswith(TEMP_PREFIX):
            found.temps.append(name)
            continue
        match = _NAME.fullmatch(name)
        assert match, f"unexpected file {name!r}"
        number = int(match.group(1))
        group = found.compressed if match.group(2) else found.plain
        assert number not in group, f"two compressed forms of backup {number}"
        group[number] = directory / name
    return found


def content(path: Path) -> bytes:
    """The (decompressed) bytes of a file of the log."""
    data = path.read_bytes()
    decompress = _DECOMPRESS.get(path.suffix)
    return data if decompress is None else decompress(data)


def records_of(path: Path) -> list[Any]:
    records: list[Any] = parse_records(content(path), path.name)  # fails if torn, stray
    return records


def all_records(directory: Path) -> list[Any]:
    """Every record of the log in rotation order (oldest backup first, then the active
    file), reading each backup in whichever single form it exists."""
    files = listing(directory)
    both = set(files.plain) & set(files.compressed)
    assert not both, f"backups both plain and compressed: {sorted(both)}"
    numbers = sorted({**files.plain, **files.compressed}.items(), reverse=True)
    records = [record for _, path in numbers for record in records_of(path)]
    active: list[Any] = read_records(directory / BASE)
    return records + active


def ids(records: Sequence[Any]) -> list[tuple[int, int]]:
    return [(record.worker, record.seq) for record in records]


def size_kwargs(per_file: int, backup_count: int, compress: Any, **extra: Any) -> dict[str, Any]:
    """Size rotation after *per_file* fixed-size records (the limit is not a multiple)."""
    return {
        "maxBytes": per_file * RECORD_SIZE + RECORD_SIZE // 2,
        "backupCount": backup_count,
        "compress": compress,
        "compress_delay": 0,
        **extra,
    }


def temps_of(directory: Path, pid: int) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(f"{TEMP_PREFIX}{pid}-")]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait(JOIN_TIMEOUT)
    return child.pid


def emit(handler: Any, worker: int, seq: int) -> None:
    """Log framed record (worker, seq) straight through *handler*."""
    handler.setFormatter(mp_workers.FramedFormatter())
    message = mp_workers.message(worker, seq, "small", PAYLOAD)
    handler.handle(logging.makeLogRecord({"msg": message, "levelno": logging.INFO}))


def errors_at_close(handler: Any) -> list[BaseException]:
    """Close a RecordingHandler; return what it passed to handleError."""
    handler.close()
    errors: list[BaseException] = handler.errors_seen
    return errors


# -- controlled children ----------------------------------------------------------------------


class Control:
    """The control directory of stalling children (see compression_fault_workers)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir()

    def hold(self) -> None:
        (self.directory / "hold").touch()

    def release(self) -> None:
        (self.directory / "hold").unlink()

    def _marks(self, kind: str, pid: int) -> list[Path]:
        return sorted(self.directory.glob(f"{kind}.{pid}.*[0-9]"))

    def wait_started(self, pid: int, what: str) -> tuple[str, int]:
        """Wait until child *pid* stalls; return the path and inode it is compressing."""
        wait_until(lambda: self._marks("started", pid), JOIN_TIMEOUT, what)
        path, inode = self._marks("started", pid)[0].read_text().split()
        return path, int(inode)

    def finished(self, pid: int) -> list[Path]:
        return self._marks("finished", pid)


class Remote:
    """Drives a compression_fault_workers.controlled_worker child over a pipe."""

    def __init__(self, conn: Any, process: Any) -> None:
        self.conn, self.process = conn, process

    def call(self, *command: Any) -> Any:
        self.conn.send(command)
        assert self.conn.poll(JOIN_TIMEOUT), f"child {self.process.pid}: no answer to {command}"
        status, value = self.conn.recv()
        assert status == "ok", f"child {self.process.pid} failed {command}:\n{value}"
        return value

    def log(self, first: int, count: int) -> None:
        """Log records ``first .. first+count-1`` of the child's worker."""
        self.call("log", first, count)

    def close(self) -> list[str]:
        """Close the child's handler; return what it passed to handleError."""
        errors: list[str] = self.call("close")
        self.process.join(JOIN_TIMEOUT)
        assert self.process.exitcode == 0
        return errors


@contextlib.contextmanager
def controlled(
    logs: Path, control: Control, children: Sequence[tuple[dict[str, Any], int, str | None]]
) -> Iterator[list[Remote]]:
    """Start one controlled child per ``(handler kwargs, worker, stall)``; reap them all."""
    ctx = multiprocessing.get_context("fork")
    pipes = [ctx.Pipe() for _ in children]
    arglists = [
        (str(logs / BASE), kwargs, worker, str(control.directory), stall, child_end)
        for (kwargs, worker, stall), (_, child_end) in zip(children, pipes)
    ]
    with started(ctx, workers.controlled_worker, arglists) as processes:
        yield [Remote(parent_end, process) for (parent_end, _), process in zip(pipes, processes)]


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    directory.mkdir()
    return directory


@pytest.fixture
def control(tmp_path: Path) -> Control:
    return Control(tmp_path / "control")


# -- 1. SIGKILL in the middle of a built-in codec's stream -----------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("codec", "stall", "per_file"),
    [
        # a real, slow codec on a ~3 MB backup: killed as soon as its temporary file exists
        pytest.param("xz", None, 26_000, marks=pytest.mark.slow, id="xz-natural"),
        # stalled after the first 64 KiB read: the temporary file holds a partial stream
        pytest.param("gzip", "read", 1_500, id="gzip-stalled"),
        pytest.param("bz2", "read", 1_500, id="bz2-stalled"),
    ],
)
def test_sigkill_mid_compression_keeps_the_original_and_the_next_sweep_finishes(
    logs: Path, control: Control, codec: str, stall: str | None, per_file: int
) -> None:
    """A process SIGKILLed while compressing a backup leaves the backup complete (and at
    most a temporary file); the next rotation elsewhere removes the temporary file, and
    close() compresses the backup: every record once, from the compressed files."""
    kwargs = size_kwargs(per_file, 3, codec)
    if stall:
        control.hold()
    with controlled(logs, control, [(kwargs, 0, stall)]) as (child,):
        child.log(0, per_file + 1)  # the last record rotates: app.log.1 holds per_file
        if stall:
            control.wait_started(child.process.pid, "the compression to stall")
        else:
            wait_until(lambda: temps_of(logs, child.process.pid), JOIN_TIMEOUT, "a temporary file")
        kill_and_reap(child.process)

    after_kill = listing(logs)
    assert after_kill.compressed == {}, "the kill should fall before the commit"
    assert list(after_kill.plain) == [1]
    assert ids(read_records(logs / f"{BASE}.1")) == [(0, seq) for seq in range(per_file)]
    assert ids(read_records(logs / BASE)) == [(0, per_file)]
    assert len(after_kill.temps) == 1, after_kill.temps
    temp = logs / after_kill.temps[0]
    assert not lock_is_held(temp), "a dead process's lock must be free"
    if temp.stat().st_size:  # part of a stream (or nothing yet): never passes for an archive
        with pytest.raises((EOFError, OSError, ValueError)):
            _DECOMPRESS[SUFFIXES[codec]](temp.read_bytes())

    handler = RecordingHandler(logs / BASE, **kwargs)
    for seq in range(3):
        emit(handler, 1, seq)
    handler.doRollover()  # the sweep after this rotation cleans up the leftover
    wait_until(lambda: not listing(logs).temps, JOIN_TIMEOUT, "the cleanup")
    assert errors_at_close(handler) == []

    final = listing(logs)
    assert final.temps == []
    assert final.plain == {}, "close() must leave no backup uncompressed"
    assert sorted(final.compressed) == [1, 2]
    assert all(path.suffix == SUFFIXES[codec] for path in final.compressed.values())
    assert_each_once_in_order(all_records(logs), {0: per_file + 1, 1: 3})


# -- 2. SIGKILL at random moments of a compressing, rotating run -----------------------------


@pytest.mark.timeout(120)
def test_random_sigkills_during_a_compressing_run_lose_nothing_acknowledged(
    logs: Path,
) -> None:
    """Rounds of three gzip-compressing workers, two of each round SIGKILLed at random
    moments (some as soon as one of their compressions has begun), then a last process
    logs and closes: no temporary file, no uncompressed backup, and each worker's
    records are exactly the ones it logged before the kill (the one being logged at the
    kill at most once), whole, in order."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    rounds, per_round, count, per_file = 4, 3, 900, 60
    kwargs = size_kwargs(per_file, 1000, "gzip")
    ctx = multiprocessing.get_context("fork")
    progress = ctx.RawArray("q", rounds * per_round)
    expected: dict[int, tuple[int, int]] = {}  # worker -> fewest, most records in the files
    kills: list[str] = []
    for round_ in range(rounds):
        ids_ = list(range(round_ * per_round, (round_ + 1) * per_round))
        plan = {
            w: (rng.choice(["seq", "compressing"]), rng.randrange(30, count * 3 // 4))
            for w in rng.sample(ids_, 2)
        }
        arglists = [(str(logs / BASE), kwargs, w, count, PAYLOAD, progress, None) for w in ids_]
        with started(ctx, fault_workers.faulty_worker, arglists) as processes:
            by_worker = dict(zip(ids_, processes))
            pending = dict(plan)

            def kill_due(
                pending: dict[int, tuple[str, int]] = pending,
                by_worker: dict[int, Any] = by_worker,
            ) -> bool:
                for w, (how, at) in list(pending.items()):
                    process = by_worker[w]
                    if not process.is_alive():  # finished before its moment came
                        del pending[w]
                    elif progress[w] >= at and (how == "seq" or temps_of(logs, process.pid)):
                        kill_and_reap(process)
                        left = temps_of(logs, process.pid)
                        kills.append(f"{w}@{progress[w]}:{how}:{'temp' if left else '-'}")
                        del pending[w]
                return not pending

            wait_until(kill_due, JOIN_TIMEOUT, f"the kills of round {round_}")
            for w, process in by_worker.items():
                process.join(JOIN_TIMEOUT)
                if process.exitcode == -signal.SIGKILL:
                    expected[w] = (progress[w], progress[w] + 1)
                else:
                    assert process.exitcode == 0, f"worker {w}: exit code {process.exitcode}"
                    expected[w] = (count, count)
    note = f"seed={seed} kills={kills}"

    with parent_logger(logs / BASE, kwargs, "mplog.tests.last") as logger:
        for seq in range(5):
            mp_workers.emit(logger, 99, seq, "small", PAYLOAD)
    expected[99] = (5, 5)

    final = listing(logs)
    assert final.temps == [], note
    assert final.plain == {}, f"backups left uncompressed: {sorted(final.plain)} {note}"
    records = all_records(logs)  # every record whole; each backup in one form
    seqs: dict[int, list[int]] = defaultdict(list)
    for record in records:
        seqs[record.worker].append(record.seq)
    assert set(seqs) <= set(expected), note
    for w, (fewest, most) in expected.items():
        got = seqs.get(w, [])
        assert got == list(range(len(got))), f"worker {w}: not 0..n-1 once in order {note}"
        assert fewest <= len(got) <= most, f"worker {w}: {len(got)} records {note}"


# -- 3. SIGKILL inside a user's compressor ----------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("recover_with", ["gzip", "callable"])
def test_sigkill_inside_a_callable_compressor_leaves_leftovers_the_next_sweep_removes(
    logs: Path, control: Control, recover_with: str
) -> None:
    """A process SIGKILLed while its callable compressor runs leaves the backup complete,
    plus the callable's input (a hard link or a copy of the backup) and its partial output;
    the next sweep removes both and compresses the backup."""
    per_file = 200
    kwargs = size_kwargs(per_file, 3, workers.blocking_gzip)
    control.hold()
    with controlled(logs, control, [(kwargs, 0, "callable")]) as (child,):
        child.log(0, per_file + 1)
        pid = child.process.pid
        path, inode = control.wait_started(pid, "the callable to stall")
        kill_and_reap(child.process)

    backup = logs / f"{BASE}.1"
    original = backup.read_bytes()
    assert ids(parse_records(original, backup.name)) == [(0, s) for s in range(per_file)]
    after_kill = listing(logs)
    assert after_kill.compressed == {}
    link = Path(path)  # what the callable was given: a hard link (or a copy) of the backup
    assert link.name.startswith(f"{TEMP_PREFIX}{pid}-")
    assert link.name.endswith(".tmp")
    assert sorted(after_kill.temps) == [link.name, f"{link.name}.gz"]
    assert link.stat().st_ino == inode
    assert link.read_bytes() == original
    with pytest.raises(EOFError):  # half a gzip stream
        gzip.decompress((logs / f"{link.name}.gz").read_bytes())

    recover = "gzip" if recover_with == "gzip" else workers.blocking_gzip  # never stalls here
    handler = RecordingHandler(logs / BASE, **{**kwargs, "compress": recover, "compress_delay": 0})
    assert errors_at_close(handler) == []
    final = listing(logs)
    assert final.temps == []
    assert final.plain == {}
    assert list(final.compressed) == [1]
    assert content(final.compressed[1]) == original


@pytest.mark.timeout(60)
@pytest.mark.parametrize("input_file", ["hard link", "copy"])
def test_a_running_callables_files_survive_a_sweep_in_another_process(
    logs: Path, control: Control, monkeypatch: pytest.MonkeyPatch, input_file: str
) -> None:
    """While a callable compressor runs in one process, a rotation and close() in another
    process (two sweeps) leave its input and output alone; its archive then commits
    without any error, on the backup's new name.  Also where hard links are not
    possible and the callable gets a copy (the forked child inherits the patch)."""
    if input_file == "copy":
        monkeypatch.setattr(mplog._compress_backup, "_link_descriptor", lambda *args: False)
    per_file = 200
    kwargs = size_kwargs(per_file, 3, workers.blocking_gzip)
    control.hold()
    with controlled(logs, control, [(kwargs, 0, "callable")]) as (child,):
        child.log(0, per_file + 1)
        path, _ = control.wait_started(child.process.pid, "the callable to stall")
        files = [Path(path), Path(f"{path}.gz")]
        original = (logs / f"{BASE}.1").read_bytes()
        claimed = lock_is_held(files[0])

        handler = RecordingHandler(
            logs / BASE, **{**kwargs, "compress": "gzip", "compress_delay": 0}
        )
        handler.doRollover()  # app.log.1 (being compressed) -> .2; sweeps here, twice
        assert errors_at_close(handler) == []
        survived = [file.name for file in files if file.exists()]
        control.release()
        errors = child.close()
    assert survived == [file.name for file in files], "a sweep removed a running callable's files"
    assert claimed, "the callable's input should be locked while it runs"
    assert errors == []
    final = listing(logs)
    assert (final.plain, sorted(final.compressed), final.temps) == ({}, [1, 2], [])
    assert content(final.compressed[2]) == original
    assert_each_once_in_order(all_records(logs), {0: per_file + 1})


# -- 4. a crash between the commit's rename and remove ---------------------------------------


def _backup_bytes(worker: int, count: int) -> bytes:
    return b"".join(workers.framed_record(worker, seq, PAYLOAD) for seq in range(count))


@pytest.mark.timeout(60)
def test_sigkill_between_the_commits_rename_and_remove(logs: Path, control: Control) -> None:
    """A process SIGKILLed right after renaming the finished archive into place (holding the
    writers' lock, the original not yet removed) leaves both forms, the archive complete;
    the lock is free for the next writer, and the next sweep removes the original."""
    per_file = 100
    kwargs = size_kwargs(per_file, 3, "gzip")
    control.hold()
    with controlled(logs, control, [(kwargs, 0, "commit")]) as (child,):
        child.log(0, per_file + 1)
        control.wait_started(child.process.pid, "the commit to stall")
        assert lock_is_held(logs / LOCK), "the commit runs under the writers' lock"
        kill_and_reap(child.process)

    both = listing(logs)
    assert (list(both.plain), list(both.compressed), both.temps) == ([1], [1], [])
    original = both.plain[1].read_bytes()
    assert content(both.compressed[1]) == original
    assert ids(parse_records(original, "app.log.1")) == [(0, s) for s in range(per_file)]

    handler = RecordingHandler(logs / BASE, **kwargs)
    emit(handler, 1, 0)
    assert errors_at_close(handler) == []  # the record was written: the lock was free
    final = listing(logs)
    assert (final.plain, list(final.compressed), final.temps) == ({}, [1], [])
    assert content(final.compressed[1]) == original


@pytest.mark.timeout(60)
def test_sigkill_after_the_original_is_set_aside(logs: Path, control: Control) -> None:
    """A process SIGKILLed after the commit renamed the original to a temporary name (to
    remove it once the writers' lock is released) leaves the complete archive under its
    name; the next sweep removes the original's temporary name, nothing else."""
    per_file = 100
    kwargs = size_kwargs(per_file, 3, "gzip")
    control.hold()
    with controlled(logs, control, [(kwargs, 0, "aside")]) as (child,):
        child.log(0, per_file + 1)
        control.wait_started(child.process.pid, "the commit to stall")
        kill_and_reap(child.process)

    left = listing(logs)
    assert (left.plain, list(left.compressed), len(left.temps)) == ({}, [1], 1)
    expected = content(left.compressed[1])
    assert ids(parse_records(expected, "app.log.1.gz")) == [(0, s) for s in range(per_file)]

    handler = RecordingHandler(logs / BASE, **kwargs)
    emit(handler, 1, 0)
    assert errors_at_close(handler) == []
    final = listing(logs)
    assert (final.plain, list(final.compressed), final.temps) == ({}, [1], [])
    assert content(final.compressed[1]) == expected


_ARCHIVES: dict[str, Callable[[bytes], bytes]] = {
    "same": gzip.compress,
    "different": lambda data: gzip.compress(data.replace(b"000 0000007", b"000 0000008")),
    "truncated": lambda data: gzip.compress(data)[:-20],
    "of-a-prefix": lambda data: gzip.compress(data[: len(data) // 2]),
    "longer": lambda data: gzip.compress(data + data[:200]),
    "not-gzip": lambda data: data,
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("archive", list(_ARCHIVES))
def test_a_backup_left_both_plain_and_compressed(logs: Path, archive: str) -> None:
    """app.log.1 beside app.log.1.gz (as a crash between the commit's rename and remove
    leaves them): the sweep removes the original only if the archive reads back exactly
    equal; otherwise it keeps both and reports it once (not at every sweep)."""
    original = _backup_bytes(0, 100)
    (logs / f"{BASE}.1").write_bytes(original)
    packed = _ARCHIVES[archive](original)
    (logs / f"{BASE}.1.gz").write_bytes(packed)
    handler = RecordingHandler(logs / BASE, **size_kwargs(50, 3, "gzip"))
    if archive == "same":
        assert errors_at_close(handler) == []
        final = listing(logs)
        assert (final.plain, list(final.compressed), final.temps) == ({}, [1], [])
        assert final.compressed[1].read_bytes() == packed
        return
    handler.doRollover()  # one sweep after the rotation (app.log.1 -> .2), one at close
    errors = errors_at_close(handler)
    final = listing(logs)
    assert (list(final.plain), sorted(final.compressed), final.temps) == ([2], [1, 2], [])
    assert final.plain[2].read_bytes() == original, "the original must be kept"
    assert final.compressed[2].read_bytes() == packed, "the archive must be kept"
    assert len(errors) == 1, errors
    assert isinstance(errors[0], FileExistsError)
    assert f"{BASE}.1.gz" in str(errors[0]) or f"{BASE}.2.gz" in str(errors[0])


@pytest.mark.timeout(30)
def test_a_conflicting_backup_does_not_stop_the_others_from_being_compressed(
    logs: Path,
) -> None:
    """One backup left with a different archive beside it is reported and kept; the older
    backups are still compressed (close() leaves nothing else uncompressed)."""
    (logs / f"{BASE}.1").write_bytes(_backup_bytes(0, 50))
    (logs / f"{BASE}.1.gz").write_bytes(gzip.compress(_backup_bytes(9, 50)))
    (logs / f"{BASE}.2").write_bytes(_backup_bytes(1, 50))
    (logs / f"{BASE}.3").write_bytes(_backup_bytes(2, 50))
    handler = RecordingHandler(logs / BASE, **size_kwargs(50, 5, "gzip"))
    errors = errors_at_close(handler)
    assert len(errors) == 1, errors
    final = listing(logs)
    assert list(final.plain) == [1], f"left uncompressed: {sorted(final.plain)}"
    assert sorted(final.compressed) == [1, 2, 3]


class _OsProxy:
    """Stands in for ``os`` inside mplog._untrusted (which opens backups), ``open`` replaced."""

    def __init__(self, open_: Any) -> None:
        self.open = open_

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@pytest.mark.timeout(30)
def test_a_rotation_during_a_sweep_raises_no_false_alarm(
    logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep finds app.log.1 beside its (equal) archive, the leftover of a crash; another
    handler rotates before the sweep opens app.log.1 (now a new file): nothing is reported,
    and the next sweep finishes the leftover and compresses the new backup."""
    original = _backup_bytes(0, 100)
    (logs / f"{BASE}.1").write_bytes(original)
    (logs / f"{BASE}.1.gz").write_bytes(gzip.compress(original))
    sweeper = RecordingHandler(logs / BASE, **size_kwargs(50, 5, "gzip"))
    rotator = RecordingHandler(logs / BASE, **size_kwargs(50, 5, None))
    emit(rotator, 1, 0)
    rotated: list[Any] = []
    real_open = os.open

    def open_after_a_rotation(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == str(logs / f"{BASE}.1") and not rotated:
            rotated.append(path)
            rotator.doRollover()  # app.log.1 -> .2 with its archive; app.log -> .1
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(mplog._untrusted, "os", _OsProxy(open_after_a_rotation))
    sweeper_errors = errors_at_close(sweeper)
    monkeypatch.undo()
    assert rotated, "the sweep never opened app.log.1"
    assert errors_at_close(rotator) == []
    last = RecordingHandler(logs / BASE, **size_kwargs(50, 5, "gzip"))
    assert errors_at_close(last) == []
    final = listing(logs)
    assert (final.plain, sorted(final.compressed), final.temps) == ({}, [1, 2], [])
    assert content(final.compressed[2]) == original
    assert sweeper_errors == []


# -- 5. temporary files whose lock is held, and a callable's orphans ------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("leftovers", [(".tmp",), (".tmp", ".tmp.gz")], ids=["codec", "callable"])
def test_a_temporary_file_is_removed_only_once_its_lock_is_free(
    logs: Path, leftovers: tuple[str, ...]
) -> None:
    """A temporary file whose flock is held (a compression in progress, whatever the pid in
    its name says) survives sweeps, with its companions; once released, the next sweep
    removes them.  Other logs' temporary files in the directory are never touched."""
    token = f"{TEMP_PREFIX}{dead_pid()}-0123abcd"
    names = [token + suffix for suffix in leftovers]
    for name in names:
        (logs / name).write_bytes(b"partial")
    foreign = logs / f".other.log.mplog-{dead_pid()}-0123abcd.tmp"
    foreign.write_bytes(b"partial")
    kwargs = size_kwargs(10, 3, "gzip")
    holder = os.open(logs / names[0], os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        handler = RecordingHandler(logs / BASE, **kwargs)
        handler.doRollover()  # sweeps after the rotation, and at close
        assert errors_at_close(handler) == []
        assert sorted(listing(logs, [foreign.name]).temps) == sorted(names)
    finally:
        os.close(holder)
    handler = RecordingHandler(logs / BASE, **kwargs)
    assert errors_at_close(handler) == []
    assert listing(logs, [foreign.name]).temps == []
    assert foreign.exists()


@pytest.mark.timeout(30)
def test_a_callables_output_without_its_input_goes_once_its_process_is_dead(
    logs: Path,
) -> None:
    """A callable compressor's output left without its input link (a compressor that
    removed its input, like the gzip program, then a crash) is kept while the process
    named in it lives, and removed by the first sweep after it died."""
    alive = subprocess.Popen(["sleep", "60"])
    try:
        orphan = logs / f"{TEMP_PREFIX}{alive.pid}-0123abcd.tmp.gz"
        dead = logs / f"{TEMP_PREFIX}{dead_pid()}-4567cdef.tmp.gz"
        orphan.write_bytes(b"partial")
        dead.write_bytes(b"partial")
        handler = RecordingHandler(logs / BASE, **size_kwargs(10, 3, "gzip"))
        assert errors_at_close(handler) == []
        assert listing(logs).temps == [orphan.name]
    finally:
        alive.kill()
        alive.wait(JOIN_TIMEOUT)
    handler = RecordingHandler(logs / BASE, **size_kwargs(10, 3, "gzip"))
    assert errors_at_close(handler) == []
    assert listing(logs).temps == []


# -- 6. backups shifting while one of them is compressed ------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("outcome", ["shifted", "pruned"])
@pytest.mark.parametrize("stall", ["callable", "read"])
def test_a_backup_renamed_or_deleted_while_compressed(
    logs: Path, control: Control, stall: str, outcome: str
) -> None:
    """While one process compresses app.log.1, another rotates twice: the archive lands
    on the backup's new name (app.log.3.gz holds what was app.log.1), or, when the shift
    pushed it past backupCount, it is set aside (never deleted under a compressor) and
    goes once the compression ends; the archive is dropped without a trace.
    Nothing else is lost or doubled, and close() leaves nothing uncompressed."""
    per_file = 600  # > 64 KiB per backup: the "read" stall comes after the first chunk
    backup_count = 5 if outcome == "shifted" else 2
    compress = workers.blocking_gzip if stall == "callable" else "gzip"
    kwargs = size_kwargs(per_file, backup_count, compress)
    control.hold()
    with controlled(logs, control, [(kwargs, 0, stall)]) as (child,):
        child.log(0, per_file + 1)
        pid = child.process.pid
        _, stalled_on = control.wait_started(pid, "the compression to stall")
        first = logs / f"{BASE}.1"
        inode = first.stat().st_ino  # nothing rotated since: the claimed backup
        if stall == "read":
            assert stalled_on == inode
        original = first.read_bytes()

        plain = {**kwargs, "compress": None}  # this process rotates, never compresses
        with parent_logger(logs / BASE, plain, "mplog.tests.shifter") as logger:
            for seq in range(2 * per_file):  # two rotations
                mp_workers.emit(logger, 1, seq, "small", PAYLOAD)
        # (a callable's input is a hidden hard link to the same file: not a name of it)
        moved = {p.stat().st_ino: p.name for p in logs.iterdir() if not p.name.startswith(".")}
        if outcome == "shifted":
            assert moved.get(inode) == f"{BASE}.3", "the claimed backup should be .3 by now"
        else:
            assert inode not in moved, "the claimed backup should have been deleted"
            # ... but not while being compressed: set aside under a hidden name until then
            # (besides the hard link a callable reads, which has a hidden name too)
            hidden = [p for p in logs.iterdir() if p.name.startswith(".")]
            set_aside = [p for p in hidden if p.stat().st_ino == inode]
            assert len(set_aside) == (2 if stall == "callable" else 1), set_aside
        assert control.finished(pid) == [], "the compression should still be stalled"

        control.release()
        wait_until(lambda: control.finished(pid), JOIN_TIMEOUT, "the compression")
        assert child.close() == []

    final = listing(logs)
    assert final.temps == []
    assert final.plain == {}
    archives = {number: content(path) for number, path in final.compressed.items()}
    if outcome == "shifted":
        assert sorted(archives) == [1, 2, 3]
        assert archives[3] == original
        counts = {0: per_file + 1, 1: 2 * per_file}
        assert_each_once_in_order(all_records(logs), counts)
    else:
        assert sorted(archives) == [1, 2]
        assert original not in archives.values()
        records = all_records(logs)
        assert [seq for w, seq in ids(records) if w == 0] == [per_file]  # the rest pruned
        assert_each_once_in_order([r for r in records if r.worker == 1], {1: 2 * per_file})


_TIME_NAME = re.compile(re.escape(BASE) + r"\.\d{4}-\d\d-\d\d_\d\d(?:\.\d+)?(\.gz)?")


def time_backups(directory: Path) -> dict[str, Path]:
    """Time-named backups by uncompressed name -> the file (temporary files skipped);
    fails on stray files."""
    found: dict[str, Path] = {}
    for name in os.listdir(directory):
        if name in (BASE, LOCK, PRESENCE) or name.startswith(TEMP_PREFIX):
            continue
        match = _TIME_NAME.fullmatch(name)
        assert match, f"unexpected file {name!r}"
        stem = name[: len(name) - len(match.group(1) or "")]
        assert stem not in found, f"{stem} both plain and compressed"
        found[stem] = directory / name
    return found


@pytest.mark.timeout(60)
def test_retention_spares_a_backup_while_it_is_compressed(logs: Path, control: Control) -> None:
    """Time-named backups, backupCount=1: while one process compresses the oldest backup,
    another rotates twice; retention deletes the backup in between but spares the one being
    compressed.  Once its compression let go of it, the sweep's own retention deletes it:
    no rotation is needed for that."""
    per_file = 50
    kwargs = size_kwargs(per_file, 1, workers.blocking_gzip, when="H")
    control.hold()
    with controlled(logs, control, [(kwargs, 0, "callable")]) as (child,):
        child.log(0, per_file + 1)
        control.wait_started(child.process.pid, "the callable to stall")
        (claimed,) = time_backups(logs)

        plain = {**kwargs, "compress": None}
        with parent_logger(logs / BASE, plain, "mplog.tests.pruner") as logger:
            for seq in range(2 * per_file):  # two rotations, each pruning to one backup
                mp_workers.emit(logger, 1, seq, "small", PAYLOAD)
        kept = time_backups(logs)
        assert claimed in kept, "retention deleted the backup being compressed"
        assert len(kept) == 2, f"the other old backup should be gone: {sorted(kept)}"
        control.release()
        assert child.close() == []

    kept = time_backups(logs)
    assert claimed not in kept, "no longer claimed: pruned by the sweep that compressed it"
    assert len(kept) == 1
    assert all(path.suffix == ".gz" for path in kept.values()), "left uncompressed"
    assert not [name for name in os.listdir(logs) if name.startswith(TEMP_PREFIX)]


# -- 7. writers never wait for a compression -----------------------------------------------


@pytest.mark.timeout(60)
def test_writers_never_wait_for_a_stalled_compression(logs: Path, control: Control) -> None:
    """While a callable compressor is stalled, the writers' lock is free: another
    process (whose own compressions stall too) and the stalled process's own main thread
    log and rotate many times, and finish, before the stalled compression is released."""
    per_file = 50
    kwargs = size_kwargs(per_file, 100, workers.blocking_gzip)
    control.hold()
    with controlled(logs, control, [(kwargs, 0, "callable"), (kwargs, 1, "callable")]) as (
        stalled,
        other,
    ):
        stalled.log(0, per_file + 1)
        control.wait_started(stalled.process.pid, "the compression to stall")
        assert not lock_is_held(logs / LOCK), "a stalled compressor must not hold the lock"

        other.log(0, 10 * per_file)  # ten rotations; its own compressor stalls as well
        stalled.log(per_file + 1, 3 * per_file)  # three more, in the stalled process
        control.wait_started(other.process.pid, "the other process's compression")

        assert control.finished(stalled.process.pid) == [], "released too early"
        assert not lock_is_held(logs / LOCK)
        rotated = listing(logs)
        assert len(rotated.plain) + len(rotated.compressed) >= 13
        control.release()
        other.close()
        stalled.close()

    final = listing(logs)
    assert final.temps == []
    assert final.plain == {}
    assert_each_once_in_order(all_records(logs), {0: 4 * per_file + 1, 1: 10 * per_file})
