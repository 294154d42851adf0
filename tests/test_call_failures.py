"""Failure at every call: each OS call mplog makes while it logs, rotates, compresses,
applies retention and closes, made to fail in turn.

For each scenario below, a counting pass records the sequence of calls mplog makes
(``os.*``, ``fcntl.flock``, the ``write`` and ``close`` of its ``io.FileIO``
objects; per thread), then one trial per (call, fitting errno), once and as an
episode, checks the invariants listed in ``call_faults.py``: the caller never sees
an exception, nothing written is lost, torn or duplicated, a failure is reported
once per episode, and logging, rotation, compression and retention resume by
themselves once the fault clears.

The normal run tries a fixed sample (every :data:`STRIDE`-th trial, the same each
run) and each fault the full sweep found (:data:`FOUND`); the full sweep tries
every trial:

    MPLOG_FULL_SWEEP=1 python -m pytest tests/test_call_failures.py

and ``-s`` prints how many call points each scenario covers, by step and by module.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from call_faults import (
    CallFaults,
    Run,
    Scenario,
    Trial,
    check,
    files_of,
    points_of,
    run_scenario,
)
from helpers import BASE, RECORD, Clock, read_log, record_numbers
from mplog._handler import ROTATION_RETRY

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Linux errno semantics (close, flock)"
)

FULL = os.environ.get("MPLOG_FULL_SWEEP") == "1"
#: In the normal run, every STRIDE-th trial of each scenario (a fixed sample).
STRIDE = 7
LIMIT = 3 * RECORD + 10  # maxBytes: three records per file
RETRY = ROTATION_RETRY + 1


def _log(*numbers: int) -> list[tuple[Any, ...]]:
    return [("log", n) for n in numbers]


def _tail(first: int) -> list[tuple[Any, ...]]:
    """Close, log once more (the handler reopens), close again."""
    return [("close",), ("log", first), ("close",)]


def _active_within_limit(directory: Path, run: Run) -> list[str]:
    size = (directory / BASE).stat().st_size
    return [] if size <= LIMIT else [f"rotation did not resume: {BASE} is {size} bytes"]


def _all_compressed(directory: Path, run: Run) -> list[str]:
    plain = [p.name for p in files_of(directory)[0] if p.name != BASE and p.suffix != ".gz"]
    return [f"backups left uncompressed: {plain}"] if plain else []


def _no_backups(directory: Path, run: Run) -> list[str]:
    backups = [p.name for p in files_of(directory)[0] if p.name != BASE]
    return [f"backups older than max_age kept: {backups}"] if backups else []


def _last_period_only(directory: Path, run: Run) -> list[str]:
    broken = []
    active = record_numbers(read_log(directory / BASE))
    if active != [7, 8, 9]:
        broken.append(f"time rotation did not resume: {BASE} holds {active}")
    backups = [p.name for p in files_of(directory)[0] if p.name != BASE]
    if len(backups) > 2:
        broken.append(f"more backups than backupCount=2: {backups}")
    return broken


def _rollover_resumed(directory: Path, run: Run) -> list[str]:
    backup, active = directory / f"{BASE}.1", directory / BASE
    newest = record_numbers(read_log(backup))[-1:] if backup.exists() else []
    found = record_numbers(read_log(active))
    if newest != [4] or found != [5, 6]:
        return [f"doRollover did not resume: {BASE}.1 ends with {newest}, {BASE} holds {found}"]
    return []


SCENARIOS = [
    Scenario(
        "sync records", False, {}, [*_log(0, 1, 2, 3, 4), ("recover",), *_log(5, 6, 7), *_tail(8)]
    ),
    Scenario(
        "keep_file_open=False",
        False,
        {"keep_file_open": False},
        [*_log(0, 1, 2, 3), ("recover",), *_log(4, 5), *_tail(6)],
    ),
    Scenario(
        "batched records",
        False,
        {"batched": True},
        [
            ("log", 0),
            ("burst", [1, 2, 3]),
            ("log", 4),
            ("recover",),
            ("burst", [5, 6]),
            ("log", 7),
            *_tail(8),
        ],
    ),
    Scenario(
        "size rotation",
        False,
        {"maxBytes": LIMIT, "backupCount": 3},
        [*_log(*range(10)), ("recover",), ("tick", RETRY), *_log(*range(10, 16)), *_tail(16)],
        _active_within_limit,
    ),
    Scenario(
        "batched size rotation",
        False,
        {"maxBytes": LIMIT, "backupCount": 3, "batched": True},
        [
            ("burst", list(range(5))),
            ("burst", list(range(5, 10))),
            ("recover",),
            ("tick", RETRY),
            ("burst", list(range(10, 16))),
            *_tail(16),
        ],
        _active_within_limit,
    ),
    Scenario(
        "doRollover",
        False,
        {"backupCount": 2},
        [
            *_log(0, 1),
            ("rollover",),
            ("log", 2),
            ("rollover",),
            ("log", 3),
            ("rollover",),
            ("recover",),
            ("log", 4),
            ("rollover",),
            ("log", 5),
            *_tail(6),
        ],
        _rollover_resumed,
    ),
    Scenario(
        "time rotation",
        True,
        {"when": "M", "backupCount": 2},
        [
            *_log(0, 1),
            ("tick", 60),
            *_log(2, 3),
            ("tick", 60),
            ("log", 4),
            ("tick", 60),
            *_log(5, 6),
            ("recover",),
            ("tick", 60 + RETRY),
            *_log(7, 8),
            *_tail(9),
        ],
        _last_period_only,
    ),
    Scenario(
        "compression",
        False,
        {"maxBytes": LIMIT, "backupCount": 3, "compress": "gzip", "compress_delay": 0},
        [*_log(*range(9)), ("recover",), ("tick", RETRY), *_log(*range(9, 15)), *_tail(15)],
        _all_compressed,
    ),
    Scenario(
        "retention max_age",
        False,
        {"maxBytes": LIMIT, "backupCount": 5, "max_age": 100},
        [
            *_log(*range(6)),
            ("tick", 200),
            *_log(6, 7, 8),
            ("recover",),
            ("tick", 200),
            *_log(*range(9, 15)),
            *_tail(15),
        ],
        _no_backups,
    ),
    Scenario(
        "fsync size rotation",
        False,
        {"maxBytes": LIMIT, "backupCount": 2, "fsync": True},
        [*_log(*range(7)), ("recover",), ("tick", RETRY), *_log(*range(7, 11)), *_tail(11)],
        _active_within_limit,
    ),
]

#: Trials (``str(trial)``) that find a fault not fixed yet, each with the finding it
#: shows: kept out of the normal run's sample; the full sweep still runs and fails on
#: them.  Empty: the sweep finds nothing today.
KNOWN: dict[str, str] = {}


def _one_run(
    scenario: Scenario, directory: Path, faults: CallFaults, monkeypatch: pytest.MonkeyPatch
) -> Run:
    directory.mkdir()
    clock = Clock(float(int(time.time())))
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", clock.time)
        return run_scenario(scenario, directory, faults, clock)


def coverage(scenario: Scenario, trials: list[Trial]) -> str:
    """How many call points (and trials) a scenario covers: by the kind of step that
    made the call (thread by thread), and by the mplog module that made it."""
    points = {t.point for t in trials}
    by_step: Counter[str] = Counter()
    by_module: Counter[str] = Counter()
    for point in points:
        kind = {"burst": "log"}.get(scenario.steps[point.step][0], scenario.steps[point.step][0])
        by_step[kind if point.role == "MainThread" else f"{kind} in {point.role}"] += 1
        by_module[point.caller.split(".")[1]] += 1
    steps = ", ".join(f"{key} {count}" for key, count in sorted(by_step.items()))
    modules = ", ".join(f"{key} {count}" for key, count in sorted(by_module.items()))
    return f"{len(points)} call points ({steps}; {modules}), {len(trials)} trials"


def count_calls(
    scenario: Scenario, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> list[Trial]:
    """The counting pass: the run without a fault must itself be clean."""
    faults = CallFaults()
    run = _one_run(scenario, directory, faults, monkeypatch)
    assert check(scenario, directory, run, faults) == []
    assert run.reports == []
    return points_of(faults.calls)


#: What the sweep found, each pinned by its scenario, the step, thread, function and
#: mplog caller of the failing call (the last such call in the step: stable when
#: unrelated code changes), the errno, and whether it lasts an episode; every one of
#: them failed before its fix.
FOUND = [
    # An episode that lasts until close(): the records lost after the first report were
    # counted, but only a write that works again reported the count, so close() lost it.
    ("sync records", 7, "MainThread", "write", "mplog._active.append", "ENOSPC", True),
    ("batched size rotation", 4, "mplog-writer", "flock", "mplog._lock.acquire", "ENOLCK", True),
    # doRollover() raised into the caller when checking the path failed.
    ("doRollover", 2, "MainThread", "stat", "mplog._active.check", "EIO", False),
    # Sharing the next rotation time failed after the rename: the rotation counted as
    # failed, the handler kept writing into the backup and retention was skipped.
    ("time rotation", 8, "MainThread", "pwrite", "mplog._header.boundary", "EIO", False),
    # Opening the new file failed after the rename: retention (and compression) skipped.
    ("time rotation", 8, "MainThread", "open", "mplog._permissions._open", "ENOSPC", True),
    # close() raised when closing the log file failed (EIO, as NFS reports a late error).
    ("sync records", 9, "MainThread", "FileIO.close", "mplog._active.close", "EIO", False),
    # A compression's temporary file stayed open and locked when fstat failed after
    # creating it: no sweep could remove it.
    ("compression", 3, "mplog-compress", "fstat", "mplog._compress_backup._temp", "EIO", False),
    # A sweep whose compressions worked said "recovered" before retention, which then
    # failed again under the same topic: one report per sweep, not per episode.
    ("compression", 14, "mplog-compress", "flock", "mplog._lock.acquire", "ENOLCK", True),
    # makedirs turned a failing stat of the log's directory into FileExistsError: a
    # second kind of error, so a second report in one episode.
    ("sync records", 0, "MainThread", "stat", "mplog._lock_file._key_of_log", "EIO", True),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("name", "step", "role", "function", "caller", "error", "persistent"),
    FOUND,
    ids=[f"{f[0]}-{f[3]}-{f[4].rsplit('.', 1)[1]}" for f in FOUND],
)
def test_what_the_sweep_found_stays_fixed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    step: int,
    role: str,
    function: str,
    caller: str,
    error: str,
    persistent: bool,
) -> None:
    """Each fault the full sweep found, run on its own: every invariant holds."""
    scenario = next(s for s in SCENARIOS if s.name == name)
    trials = count_calls(scenario, tmp_path / "count", monkeypatch)
    matching = [
        t.point
        for t in trials
        if (t.point.step, t.point.role, t.point.function, t.point.caller)
        == (step, role, function, caller)
    ]
    assert matching, f"{name}: no {function} call from {caller} in step {step} any more"
    trial = Trial(matching[-1], error, persistent)
    faults = CallFaults(trial)
    run = _one_run(scenario, tmp_path / "trial", faults, monkeypatch)
    assert faults.fired_at == step
    assert check(scenario, tmp_path / "trial", run, faults) == [], trial


@pytest.mark.timeout(600 if FULL else 120)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_every_call_failing_in_turn_keeps_the_invariants(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For each call (or a fixed sample of them), a failure of that call, once or as an
    episode, leaves every invariant holding (see the module docstring)."""
    trials = count_calls(scenario, tmp_path / "count", monkeypatch)
    print(f"\n{scenario.name}: {coverage(scenario, trials)}")
    chosen = trials if FULL else trials[::STRIDE]
    broken: list[str] = []
    for i, trial in enumerate(chosen):
        if not FULL and str(trial) in KNOWN:
            continue
        directory = tmp_path / f"t{i}"
        faults = CallFaults(trial)
        run = _one_run(scenario, directory, faults, monkeypatch)
        found = check(scenario, directory, run, faults)
        if found:
            where = f"fired in step {faults.fired_at}, cleared at {faults.cleared_at}"
            broken.append(f"{trial} ({where}): {'; '.join(found)}")
        shutil.rmtree(directory)
    assert not broken, f"{len(broken)} of {len(chosen)} trials broke:\n" + "\n".join(broken)


FULL_SWEEP_COMMAND = "MPLOG_FULL_SWEEP=1 python -m pytest tests/test_call_failures.py"


def test_the_full_sweep_command_is_documented() -> None:
    """README's Development section and this module's docstring give the one command
    that runs the full sweep."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    development = readme.split("\n## Development\n", 1)[1].split("\n## ", 1)[0]
    assert FULL_SWEEP_COMMAND in " ".join(development.split())
    assert __doc__ is not None
    assert FULL_SWEEP_COMMAND in __doc__
