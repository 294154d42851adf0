"""Interruption at every line: a KeyboardInterrupt, or a signal handler that logs through
the same handler, through a second handler of the same log, or reopens the handler
(gunicorn's SIGUSR1), at each line mplog executes while it logs, rotates, flushes,
closes, reopens and drains the batched queue; see tests/interruption_harness.py for the
paths, the injections and the invariants checked after each trial.

The normal run samples every :data:`STRIDE`-th line (a fixed offset, so the same lines
every time).  The full sweep, every line of every path::

    MPLOG_FULL_SWEEP=1 python -m pytest tests/test_interruption.py

Each configuration runs in its own process, under a watchdog: a trial that hangs ends
it with every thread's traceback and the trial's name.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mplog
from mplog._active import ActiveFile

HARNESS = Path(__file__).with_name("interruption_harness.py")
FULL = os.environ.get("MPLOG_FULL_SWEEP") == "1"
STRIDE = 1 if FULL else 9
CONFIGS = [
    "sync",
    "sync-timeout",
    "sync-fsync",
    "sync-gzip",
    "batched",
    "batched-timeout",
    "batched-fsync",
    "batched-gzip",
]


@pytest.mark.timeout(1800 if FULL else 110)
@pytest.mark.parametrize("config", CONFIGS)
def test_an_interruption_at_any_line_leaves_the_log_usable(tmp_path: Path, config: str) -> None:
    """At every sampled line of every path, each injection leaves no thread waiting for
    ever, the lock free, the next record written, nothing torn, nothing written twice,
    and every record whose call returned in the file (or reported to handleError)."""
    result = subprocess.run(
        [sys.executable, str(HARNESS), config, str(STRIDE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1700 if FULL else 100,
        check=False,
        cwd=HARNESS.parent,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-5000:]
    outcome = json.loads(result.stdout)
    print(f"{config}: lines per path {outcome['points']}, injected at {outcome['covered']}")
    assert outcome["failures"] == []
    # Every path was traced: a harness that reaches no line of mplog tests nothing.
    assert all(outcome["covered"].values()), outcome["covered"]


def run_lines(tmp_path: Path, config: str, where: str, path: str, kinds: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(HARNESS), config, f"lines:{where}", str(tmp_path), path, kinds],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        cwd=HARNESS.parent,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-5000:]
    outcome: dict[str, object] = json.loads(result.stdout)
    return outcome


@pytest.mark.timeout(110)
@pytest.mark.parametrize(
    ("where", "path", "kinds"),
    [
        # Interrupted between marking the queue closing and waking the writer, close()
        # left the writer asleep while the next record waited for it to stop: a hang.
        ("_batch.py:close", "close", "raise"),
        # A record the writer thread itself logged (a __del__) between its test for an
        # empty queue and stopping stayed in the queue for ever.
        ("_batch.py:_run", "drain", "same,second"),
    ],
)
def test_an_interruption_at_every_line_of_the_batched_queue_loses_and_hangs_nothing(
    tmp_path: Path, where: str, path: str, kinds: str
) -> None:
    """Injected at the first run of each line of the function (the writer thread's
    lines come at a count that varies from run to run, so the sampled sweep may miss
    them): every check of the sweep holds."""
    outcome = run_lines(tmp_path, "batched", where, path, kinds)
    assert outcome["lines"], outcome
    assert outcome["failures"] == []


@pytest.mark.timeout(110)
@pytest.mark.parametrize(
    ("config", "path"),
    [
        # Interrupted between naming the writer thread and starting it, the handler kept
        # a thread that never ran: the records queued for it were dropped at close().
        ("batched", "first"),
        # ... and the group commit's close() raised "cannot join thread before it is
        # started" into the application.
        ("sync-fsync-group", "first"),
        ("sync-gzip", "rollover"),  # the compressor's thread
    ],
)
def test_an_interruption_while_a_background_thread_starts_loses_and_hangs_nothing(
    tmp_path: Path, config: str, path: str
) -> None:
    """Injected at each line of lifecycle.start_thread (the batched writer's, the group
    commit's and the compressor's threads start there): every check of the sweep holds,
    and the next record starts the thread that an interruption kept from starting."""
    outcome = run_lines(tmp_path, config, "_lifecycle.py:start_thread", path, "raise,same,second")
    assert outcome["lines"], outcome
    assert outcome["failures"] == []


@pytest.mark.timeout(30)
def test_a_rotation_interrupted_after_the_rename_leaves_no_record_in_the_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt after the active file was renamed, before the new one was
    opened: the next record goes to the new active file, not into the backup (which a
    compressor may have read and deleted already)."""
    log = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(
        str(log), maxBytes=10_000, backupCount=3, watch_interval=3600
    )
    try:
        handler.handle(logging.makeLogRecord({"msg": "before"}))

        def interrupted(self: ActiveFile, shared: object) -> int:
            raise KeyboardInterrupt

        monkeypatch.setattr(ActiveFile, "reopen_after_rename", interrupted)
        with pytest.raises(KeyboardInterrupt):
            handler.doRollover()
        monkeypatch.undo()
        handler.handle(logging.makeLogRecord({"msg": "after"}))
    finally:
        handler.close()
    assert (tmp_path / "app.log.1").read_text() == "before\n"
    assert log.read_text() == "after\n"
