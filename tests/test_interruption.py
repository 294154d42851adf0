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
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
