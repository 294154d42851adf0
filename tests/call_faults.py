"""Failure at every call: the machinery of test_call_failures.py, reusable by other tests.

A *scenario* is a short list of steps (log a record, move the clock, rotate, close)
run against a fresh log directory.  :class:`CallFaults` wraps, for the duration of
a run, every operating-system function mplog calls (the ``os`` module's attributes,
``fcntl.flock``, the module globals of ``mplog.*`` bound to them at import, such
as ``mplog._active._pwrite``, and the ``write`` and ``close`` of the ``io.FileIO``
objects mplog makes for the active file and a compressor's output), counting the
calls made from inside mplog, per thread (the main thread, the batched writer, the
compressor), in order:

1. the counting pass runs the scenario with no fault and records the sequence;
2. a trial runs it again and makes the k-th call of one thread fail with an errno
   that fits the call (:data:`ERRNOS`), once (``persistent=False``: the fault
   clears at once) or for that call and every later call of the same function
   during the next :data:`WINDOW` steps (``persistent=True``: an episode);
3. :func:`check` then states what broke, if anything (an empty list: nothing).

The invariants checked: no exception reaches the caller; every line in every file
is a whole record, none twice; every record whose logging call returned without a
report is in the files exactly once (or was deleted by retention, which the
harness watches), except during an episode, whose silently lost records a later
report counts (the recovery's, or ``close()``'s); a single failing call is reported
at most once, an episode once per kind of failure between two ``close()`` calls,
never once per record; once the fault has cleared the next records are written
without a report, and when it cleared before the scenario's ``("recover",)`` step
(which ends any episode), a rotation that failed happens later and compression and
retention catch up (the scenario's own final check).

Calls whose stack holds no ``mplog`` frame (the test reading files, pytest), and
calls from threads that are not the scenario's (another test's handler left a
compressor or a timer running), are never counted nor failed.  Background threads
are joined after each step, so each thread's sequence of calls is the same from run
to run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import io
import logging
import os
import re
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import mplog
import mplog._active
import mplog._compressors
from helpers import BASE, LOCK, PRESENCE, Clock, info_record, read_log, record_numbers, record_text

#: What each wrapped function may fail with ("short": ``write`` writes half the
#: bytes and returns, as on a nearly full disk; as an episode, the writes after
#: it fail with ENOSPC).
ERRNOS: dict[str, tuple[str, ...]] = {
    "open": ("EACCES", "ENOENT", "ENOSPC"),
    "close": ("EIO", "EINTR"),  # the descriptor is closed all the same (Linux)
    "write": ("ENOSPC", "EIO", "short"),
    "pwrite": ("EIO", "ENOSPC"),
    "read": ("EIO",),
    "pread": ("EIO",),
    "fstat": ("EIO",),
    "stat": ("ENOENT", "EACCES", "EIO"),
    "lstat": ("ENOENT", "EACCES", "EIO"),
    "lseek": ("EIO",),
    "ftruncate": ("EIO",),
    "truncate": ("EIO", "EACCES"),
    "rename": ("EACCES", "ENOENT", "ENOSPC"),
    "replace": ("EACCES", "ENOENT", "ENOSPC"),
    "remove": ("EACCES", "ENOENT", "EIO"),
    "unlink": ("EACCES", "ENOENT", "EIO"),
    # ENOENT from a listing says the directory is gone: then nothing in it can be
    # renamed either, and a failure that said so while it exists tests nothing real.
    "listdir": ("EACCES", "EIO"),
    "scandir": ("EACCES", "EIO"),
    "mkdir": ("EACCES", "ENOSPC"),
    "fsync": ("EIO", "ENOSPC"),
    "fdatasync": ("EIO", "ENOSPC"),
    "dup": ("EMFILE",),
    "utime": ("EACCES", "EIO"),
    "chmod": ("EACCES",),
    "fchmod": ("EACCES",),
    "chown": ("EPERM",),
    "fchown": ("EPERM",),
    "link": ("EACCES", "ENOSPC"),
    "readlink": ("ENOENT", "EACCES"),
    "kill": ("EPERM",),
    "flock": ("ENOLCK",),  # EINTR never reaches Python: flock retries it (PEP 475)
    # io: the active file's stream, and the file a built-in compressor writes into
    "FileIO.write": ("ENOSPC", "EIO"),
    "FileIO.close": ("EIO", "EINTR"),
}

#: Steps an episode (a persistent fault) lasts once it started.
WINDOW = 3

_ORIGINALS: dict[str, Any] = {name: getattr(os, name) for name in ERRNOS if hasattr(os, name)}
_ORIGINALS["flock"] = fcntl.flock
TEMP_PREFIX = f".{BASE}.mplog-"
_MISSING = object()


@dataclass(frozen=True)
class Point:
    """One call of a scenario: the *k*-th call (from 0) that thread *role* made; the
    step it came in and the mplog function that made it (to name it in a report)."""

    role: str
    k: int
    function: str
    step: int = field(default=-1, compare=False)
    caller: str = field(default="", compare=False)


@dataclass(frozen=True)
class Trial:
    point: Point
    error: str
    persistent: bool

    def __str__(self) -> str:
        kind = "episode" if self.persistent else "once"
        return f"{self.point.role}#{self.point.k} {self.point.function} {self.error} {kind}"


def _by_retention(frame: Any) -> bool:
    """True if the call comes from retention (prune, or the shift's discard)."""
    while frame is not None:
        if frame.f_code.co_name in ("prune", "_discard") and frame.f_globals.get(
            "__name__", ""
        ).startswith("mplog."):
            return True
        frame = frame.f_back
    return False


def _caller_in_mplog(frame: Any) -> str | None:
    """The innermost mplog function on the stack (``module.function``), or None."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name == "mplog" or name.startswith("mplog."):
            return f"{name}.{frame.f_code.co_name}"
        frame = frame.f_back
    return None


class CallFaults:
    """Counts mplog's calls to the wrapped functions and fails the planned one."""

    def __init__(self, trial: Trial | None = None) -> None:
        self.trial = trial
        self.calls: list[Point] = []  # in the order made (the counting pass's result)
        self.counts: dict[str, int] = {}
        self.fired_at: int | None = None  # the step during which the fault fired
        self.cleared_at: int | None = None  # the first step run without the fault
        self.diverged: str | None = None
        self.retired: list[list[int]] = []  # the records of each backup removed
        self._episode = False
        self._left = 0
        self._step = 0
        self._lock = threading.RLock()
        self.stopped = False  # after the last step: nothing counted nor failed
        self.home = threading.current_thread()  # the thread that runs the scenario
        self.owners: set[int] = set()  # ids of the objects whose threads are counted too

    # -- installing ------------------------------------------------------------------

    @contextlib.contextmanager
    def installed(self) -> Iterator[CallFaults]:
        wrappers = {id(real): self._wrap(name, real) for name, real in _ORIGINALS.items()}
        undo: list[tuple[Any, str, Any]] = []

        def patch(owner: Any, attr: str, value: Any) -> None:
            undo.append((owner, attr, vars(owner).get(attr, _MISSING)))
            setattr(owner, attr, value)

        try:
            for name, real in _ORIGINALS.items():
                patch(fcntl if name == "flock" else os, name, wrappers[id(real)])
            for module in [m for n, m in sys.modules.items() if n.startswith("mplog")]:
                for attr, value in list(vars(module).items()):
                    if callable(value) and id(value) in wrappers and value is not os:
                        patch(module, attr, wrappers[id(value)])
            file_io = self._counted_file_io()
            patch(mplog._active, "io", types.SimpleNamespace(FileIO=file_io))
            patch(mplog._compressors, "open", functools.partial(_open_for_writing, file_io))
            yield self
        finally:
            for owner, attr, value in reversed(undo):
                if value is _MISSING:
                    delattr(owner, attr)
                else:
                    setattr(owner, attr, value)

    def _counted_file_io(self) -> type[io.FileIO]:
        """io.FileIO whose ``write`` and ``close`` are counted (and fail) like os calls."""
        write = self._wrap("FileIO.write", io.FileIO.write)
        close = self._wrap("FileIO.close", io.FileIO.close)

        class CountedFileIO(io.FileIO):
            def write(self, data: Any) -> int:
                return write(self, data)  # type: ignore[no-any-return]

            def close(self) -> None:
                close(self)

        return CountedFileIO

    def _wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = _caller_in_mplog(sys._getframe(1))
            thread = threading.current_thread()
            if caller is None or self.stopped or not self._ours(thread):
                return real(*args, **kwargs)
            role = thread.name
            with self._lock:
                k = self.counts.get(role, 0)
                self.counts[role] = k + 1
                if self.trial is None:
                    self.calls.append(Point(role, k, name, self._step, caller))
                    fail = None
                else:
                    fail = self._due(role, k, name)
            if fail is not None:
                return self._fail(name, fail, real, args, kwargs)
            if name in ("remove", "unlink") and _by_retention(sys._getframe(1)):
                self._retire(args[0])
            return real(*args, **kwargs)

        return wrapper

    def _ours(self, thread: threading.Thread) -> bool:
        """True for the thread running the scenario and the background threads of its
        handler (not those another test's handler left running)."""
        if thread is self.home:
            return True
        target = getattr(thread, "_target", None)
        return id(getattr(target, "__self__", None)) in self.owners

    # -- the plan --------------------------------------------------------------------

    def _due(self, role: str, k: int, name: str) -> str | None:
        trial = self.trial
        assert trial is not None
        point = trial.point
        if self.fired_at is None and role == point.role and k == point.k:
            if name != point.function:
                self.diverged = f"call {role}#{k} is {name}, not {point.function} as counted"
                return None
            self.fired_at = self._step
            if trial.persistent:
                self._episode, self._left = True, WINDOW
            else:
                self.cleared_at = self._step + 1
            return trial.error
        if self._episode and name == point.function:
            return "ENOSPC" if trial.error == "short" else trial.error
        return None

    def step(self, index: int) -> None:
        """The runner starts step *index*: an episode ends after WINDOW steps."""
        with self._lock:
            self._step = index
            if self._episode:
                self._left -= 1
                if self._left < 0:
                    self.end_episode()

    def end_episode(self) -> None:
        with self._lock:
            if self._episode:
                self._episode = False
                self.cleared_at = self._step

    @property
    def active(self) -> bool:
        return self._episode

    def _fail(self, name: str, error: str, real: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        if error == "short" and len(args[1]) >= 2:
            return real(args[0], memoryview(args[1])[: len(args[1]) // 2])
        code = getattr(errno, "ENOSPC" if error == "short" else error)
        if name == "close":
            real(*args, **kwargs)  # Linux: the descriptor is gone whatever close says
        filename = args[0] if args and isinstance(args[0], (str, bytes, os.PathLike)) else None
        raise OSError(code, os.strerror(code), filename)

    def _retire(self, path: Any) -> None:
        """A backup about to be removed (retention): keep its records, which may go."""
        name = os.path.basename(os.fspath(path))
        if isinstance(name, str) and _BACKUP.fullmatch(name):
            with contextlib.suppress(OSError):
                self.retired.append(record_numbers(read_log(Path(os.fspath(path)))))  # type: ignore[arg-type]


def _open_for_writing(file_io: type[io.FileIO], fd: int, mode: str, closefd: bool) -> Any:
    """``open(fd, "wb", closefd=False)`` as mplog._compressors calls it, over *file_io*."""
    assert mode == "wb", mode
    return io.BufferedWriter(file_io(fd, "wb", closefd=closefd))


_BACKUP = re.compile(re.escape(BASE) + r"\.[0-9_-]+(\.\d+)?(\.gz)?")


# -- scenarios -------------------------------------------------------------------------------

# ("log", n), ("burst", [n, ...]), ("tick", seconds), ("rollover",), ("close",), ("recover",)
Step = tuple[Any, ...]


@dataclass
class Scenario:
    """A scenario: handler class and options, steps, and its own final check (called
    with the directory and the run when the fault cleared before ``("recover",)``)."""

    name: str
    timed: bool
    kwargs: dict[str, Any]
    steps: list[Step]
    final: Callable[[Path, Run], list[str]] = lambda directory, run: []


@dataclass
class Run:
    """What happened during one run of a scenario."""

    clean: set[int] = field(default_factory=set)  # records logged without a report
    logged: dict[int, int] = field(default_factory=dict)  # record -> step
    reports: list[tuple[int, str, BaseException | None]] = field(default_factory=list)
    escaped: list[str] = field(default_factory=list)
    recover_at: int = 0  # the index of the ("recover",) step


class _Reports:
    """Keeps what goes to handleError with the step it came in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.reports: list[tuple[int, str, BaseException | None]] = []
        self.step_index = -1
        super().__init__(*args, **kwargs)

    def handleError(self, record: logging.LogRecord) -> None:
        self.reports.append((self.step_index, record.getMessage(), sys.exc_info()[1]))


class Handler(_Reports, mplog.ConcurrentRotatingFileHandler):
    """A size-rotating handler whose reports are kept, with their step."""


class TimedHandler(_Reports, mplog.ConcurrentTimedRotatingFileHandler):
    """A time-rotating handler whose reports are kept, with their step."""


def _settle(handler: Any) -> None:
    """Wait for the background threads, so each thread's calls come in a fixed order."""
    if handler._batch is not None:
        handler.flush()
    archiver = handler._archiver
    thread = archiver._thread if archiver is not None else None
    if thread is not None:
        thread.join(30)


def run_scenario(scenario: Scenario, directory: Path, faults: CallFaults, clock: Clock) -> Run:
    """Run *scenario* in *directory* with *faults* installed (time.time is *clock*'s)."""
    cls = TimedHandler if scenario.timed else Handler
    handler = cls(directory / BASE, delay=True, **scenario.kwargs)
    run = Run()
    faults.home = threading.current_thread()
    faults.owners = {id(handler._batch), id(handler._archiver)} - {id(None)}
    with faults.installed():
        for index, step in enumerate(scenario.steps):
            faults.step(index)
            handler.step_index = index
            before = len(handler.reports)
            kind = step[0]
            try:
                if kind == "log":
                    handler.handle(info_record(record_text(step[1])))
                    run.logged[step[1]] = index
                elif kind == "burst":  # queued together: one batch
                    with handler._batch._cond:
                        for number in step[1]:
                            handler.handle(info_record(record_text(number)))
                            run.logged[number] = index
                elif kind == "tick":
                    clock.now += step[1]
                elif kind == "rollover":
                    handler.doRollover()
                elif kind == "close":
                    handler.close()
                elif kind == "recover":
                    run.recover_at = index
                    faults.end_episode()
                _settle(handler)
            except BaseException as error:  # the application would have seen it
                run.escaped.append(f"step {index} {step}: {error!r}")
                with contextlib.suppress(BaseException):
                    _settle(handler)
            if kind in ("log", "burst") and not any(
                is_failure(e) for _, _, e in handler.reports[before:]
            ):
                run.clean.update(step[1] if kind == "burst" else [step[1]])
        faults.stopped = True
        with contextlib.suppress(BaseException):
            handler.close()  # in case a step failed to close: no fault, not counted
    run.reports = handler.reports
    return run


# -- the invariants --------------------------------------------------------------------------


def files_of(directory: Path) -> tuple[list[Path], list[str], list[str]]:
    """The log's files (backups, then the active file), temporary files, strangers."""
    backups, temps, strangers = [], [], []
    for name in sorted(os.listdir(directory)):
        if name in (LOCK, PRESENCE, BASE):
            continue
        if name.startswith(TEMP_PREFIX):
            temps.append(name)
        elif _BACKUP.fullmatch(name):
            backups.append(directory / name)
        else:
            strangers.append(name)
    active = [directory / BASE] if (directory / BASE).exists() else []
    return backups + active, temps, strangers


def check(scenario: Scenario, directory: Path, run: Run, faults: CallFaults) -> list[str]:
    """What broke in this run (nothing: an empty list)."""
    broken = [f"exception reached the caller: {e}" for e in run.escaped]
    if faults.diverged:
        return [*broken, f"not reproducible: {faults.diverged}"]
    found = _read_files(directory, broken)
    broken += _check_records(scenario, run, faults, found)
    broken += _check_reports(scenario, run, faults)
    fired = faults.fired_at is not None
    cleared = faults.cleared_at if fired else 0
    if cleared is not None:
        late = [n for n, s in run.logged.items() if s >= cleared and n not in run.clean]
        if late:
            broken.append(f"records logged after the fault cleared were reported: {late}")
    if faults.fired_at is None or faults.fired_at < run.recover_at:  # then it must catch up
        temps = files_of(directory)[1]
        if temps:
            broken.append(f"temporary files left after the last close: {temps}")
        twins = _twins(directory)
        if twins:
            broken.append(f"backups left both plain and compressed: {twins}")
        broken += scenario.final(directory, run)
    return broken


def _twins(directory: Path) -> list[str]:
    """Backups there both plain and compressed."""
    names = {path.name for path in files_of(directory)[0]}
    return sorted(name for name in names if name + ".gz" in names)


def _read_files(directory: Path, broken: list[str]) -> list[int]:
    """The records in the log's files, in file order; what is wrong goes to *broken*."""
    files, _, strangers = files_of(directory)
    if strangers:
        broken.append(f"unexpected files {strangers}")
    found: list[int] = []
    contents: dict[str, list[int]] = {}
    for path in files:
        try:
            numbers = record_numbers(read_log(path))
        except Exception as error:  # torn, foreign bytes, a damaged archive
            broken.append(f"{path.name}: {error}")
            continue
        if numbers != sorted(numbers):
            broken.append(f"{path.name}: records out of order")
        plain = path.name.removesuffix(".gz")
        if plain != path.name and contents.get(plain) == numbers:
            # Both forms, the same records: a commit interrupted between its two
            # renames, which the next sweep finishes (see _twins).
            continue
        contents[path.name] = numbers
        found += numbers
    twice = sorted({n for n in found if found.count(n) > 1})
    if twice:
        broken.append(f"records written twice: {twice}")
    return found


def _check_records(scenario: Scenario, run: Run, faults: CallFaults, found: list[int]) -> list[str]:
    """Every record whose call returned without a report is there (or retention
    deleted it); records an episode lost silently are counted in a report."""
    broken = []
    kept = set(found).union(*faults.retired)  # retention deletes backups by design
    missing = sorted(run.clean - kept)
    lost = sorted(set(run.logged) - kept)
    if missing:
        in_episode = faults.trial is not None and faults.trial.persistent
        window = range(faults.fired_at or 0, faults.cleared_at or len(scenario.steps) + 1)
        outside = [n for n in missing if not in_episode or run.logged[n] not in window]
        if outside:
            broken.append(f"records whose call returned without a report are missing: {outside}")
        elif len(lost) > reported_lost(run.reports):
            reported = reported_lost(run.reports)
            broken.append(f"records missing {lost}, only {reported} reported lost")
    unknown = sorted(kept - set(run.logged))
    if unknown:
        broken.append(f"records never logged: {unknown}")
    return broken


def _check_reports(scenario: Scenario, run: Run, faults: CallFaults) -> list[str]:
    """Failures are the fault's, reported once per failing call, once per episode."""
    broken = []
    failures = [(s, m, e) for s, m, e in run.reports if is_failure(e)]
    odd = [f"{m}: {e!r}" for _, m, e in failures if not isinstance(e, OSError)]
    if odd:
        broken.append(f"reported a bug, not the fault: {odd}")
    if faults.fired_at is None:
        return broken
    if faults.trial is not None and not faults.trial.persistent and len(failures) > 1:
        broken.append(f"one failing call reported {len(failures)} times: {_show(failures)}")
    repeated = _repeated(scenario, failures)
    if repeated:
        broken.append(f"reported more than once per episode: {_show(repeated)}")
    return broken


def reported_lost(reports: Sequence[tuple[int, str, BaseException | None]]) -> int:
    """How many records the reports say were not written."""
    lost = 0
    for _, message, error in reports:
        more = re.search(r"; (\d+) more records could not be written", str(error))
        queued = re.match(r"(\d+) queued records could not be written", message)
        if more:
            lost += int(more.group(1))
        elif queued:
            lost += int(queued.group(1))
        elif message.startswith("record ") and is_failure(error):
            lost += 1
    return lost


def is_failure(error: BaseException | None) -> bool:
    """A report of a failure (a note that mplog mended something, or recovered, is not)."""
    return type(error) is not mplog.MplogError


def _repeated(
    scenario: Scenario, failures: Sequence[tuple[int, str, BaseException | None]]
) -> list[tuple[int, str, BaseException | None]]:
    """The failure reports beyond the first of their kind in each stretch of the run
    between two ``close()`` (an explicit ``doRollover()`` is reported each time it
    fails, as the stdlib's raises each time)."""
    closes = [i for i, step in enumerate(scenario.steps) if step[0] == "close"]
    seen: set[tuple[int, str]] = set()
    repeated = []
    for step, message, _ in failures:
        if scenario.steps[step][0] == "rollover":
            continue
        stretch = sum(1 for i in closes if i < step)
        kind = (
            "record"
            if message.startswith("record ") or "queued records" in message
            else (message.split(" ", 1)[0])
        )
        if (stretch, kind) in seen:
            repeated.append((step, message, None))
        seen.add((stretch, kind))
    return repeated


def _show(reports: Sequence[tuple[int, str, BaseException | None]]) -> list[str]:
    return [f"step {s}: {m[:120]}" for s, m, _ in reports]


def points_of(calls: Sequence[Point]) -> list[Trial]:
    """Every trial of a counted sequence: each call, each fitting error, once and as an episode."""
    return [
        Trial(point, error, persistent)
        for point in calls
        for error in ERRNOS[point.function]
        for persistent in (False, True)
    ]
