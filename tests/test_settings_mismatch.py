"""Processes on one log with different rotation settings are told so, once, naming
both: the fleet's settings are recorded in the presence file by the first process
that opens the log (mplog._presence)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mplog

_OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    import mplog
    handler = mplog.ConcurrentRotatingFileHandler(
        sys.argv[1], maxBytes=int(sys.argv[2]), backupCount=3
    )
    handler.close()
    """
)


def _other_process(path: Path, max_bytes: int) -> str:
    """Open the log in another process with *max_bytes*; return its standard error."""
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, str(path), str(max_bytes)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr


def test_a_process_with_other_settings_is_warned_naming_both(tmp_path: Path) -> None:
    """While one process has the log open with maxBytes=1000, another that opens it with
    maxBytes=2000 prints one warning naming both settings; one with the same settings
    prints nothing."""
    path = tmp_path / "app.log"
    running = mplog.ConcurrentRotatingFileHandler(str(path), maxBytes=1000, backupCount=3)
    try:
        same = _other_process(path, 1000)
        other = _other_process(path, 2000)
    finally:
        running.close()
    assert same == ""
    assert other.count("mplog warning:") == 1, other
    assert "maxBytes=1000 backupCount=3" in other
    assert "maxBytes=2000 backupCount=3" in other


def test_a_new_fleet_records_its_own_settings(tmp_path: Path) -> None:
    """Once every process has closed the log, the next one is alone: it records its own
    settings and is not compared with the fleet that is gone."""
    path = tmp_path / "app.log"
    mplog.ConcurrentRotatingFileHandler(str(path), maxBytes=1000, backupCount=3).close()
    assert _other_process(path, 2000) == ""
    first = mplog.ConcurrentRotatingFileHandler(str(path), maxBytes=2000, backupCount=3)
    try:
        assert _other_process(path, 2000) == ""
    finally:
        first.close()


def test_two_handlers_of_one_process_are_compared_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second handler on the same log with another schedule is reported through
    handleError, like any of mplog's findings, once."""
    path = str(tmp_path / "app.log")
    first = mplog.ConcurrentTimedRotatingFileHandler(path, when="midnight", backupCount=7)
    second = mplog.ConcurrentTimedRotatingFileHandler(path, when="H", backupCount=7)
    try:
        second.emit(logging.makeLogRecord({"msg": "x"}))
    finally:
        second.close()
        first.close()
    err = capsys.readouterr().err
    assert err.count("mplog warning:") == 1, err
    assert "when=MIDNIGHT" in err
    assert "when=H" in err
