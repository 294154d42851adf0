"""Fixtures shared by every test module."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import T0, Clock

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/<script>`` with *args* in a fresh interpreter; capture its output."""
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=100,
    )


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """Give every test the root logger's handlers and level back as they were."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in saved_handlers:
            root.removeHandler(handler)
            if not type(handler).__module__.startswith("_pytest"):
                handler.close()  # a handler left behind would keep its files open
    for handler in saved_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved_level)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """``time.time`` frozen at :data:`T0`; move it with ``clock.now += ...``."""
    frozen = Clock(T0)
    monkeypatch.setattr(time, "time", frozen.time)
    return frozen
