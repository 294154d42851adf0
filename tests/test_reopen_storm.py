"""gunicorn's SIGUSR1 log reopening never raises, whatever it interrupts.

A storm of SIGUSR1 (logrotate's ``postrotate`` sends one per log) makes a worker run
``handler.close(); handler.stream = handler._open()`` in its signal handler while the
previous signal's reopen is still running.  A reopen deferred inside ``_open()`` ran
before that ``_open()`` returned, so the stream it returned was no longer the current
one, and the ``stream`` setter raised ``ValueError`` into the request in flight.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGUSR1")

_STORM = """
import json, logging, os, signal, sys
import mplog

path, mode, interrupted = sys.argv[1:]
handler = mplog.ConcurrentRotatingFileHandler(path, batched=mode == "batched")
handler.setFormatter(logging.Formatter("%(message)s"))
errors, depth, target, seen = [], 0, 0, 0
level = 1 if interrupted == "reopen" else 0  # where the lines counted run


def reopen_files():  # gunicorn's Logger.reopen_files, for this handler
    handler.acquire()
    try:
        if handler.stream:
            handler.close()
            handler.stream = handler._open()
    finally:
        handler.release()


def on_usr1(signum, frame):
    global depth
    depth += 1
    try:
        reopen_files()
    except BaseException as error:  # gunicorn would answer the request in flight 500
        errors.append(f"line {target}: {error!r}")
    finally:
        depth -= 1


def tracer(frame, event, arg):
    global seen
    if event == "call":
        return tracer if "mplog" in frame.f_code.co_filename else None
    if event == "line" and depth == level:  # a line of mplog run by the interrupted call
        seen += 1
        if seen == target:
            signal.raise_signal(signal.SIGUSR1)  # the storm's next signal lands here
    return tracer


signal.signal(signal.SIGUSR1, on_usr1)
while True:
    target += 1
    handler.handle(logging.makeLogRecord({"msg": f"before {target}"}))
    handler.flush()
    os.rename(path, f"{path}.{target}")  # logrotate
    seen = 0
    sys.settrace(tracer)
    if interrupted == "reopen":
        signal.raise_signal(signal.SIGUSR1)
    else:
        handler.handle(logging.makeLogRecord({"msg": f"during {target}"}))
    sys.settrace(None)
    handler.handle(logging.makeLogRecord({"msg": f"after {target}"}))
    if seen < target:  # the reopen ran fewer lines: every one of them was interrupted
        break
handler.close()
print(json.dumps({"errors": errors, "points": target - 1}))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("interrupted", ["reopen", "emit"])
@pytest.mark.parametrize("mode", ["sync", "batched"])
def test_a_reopen_interrupting_the_handler_at_any_line_never_raises(
    tmp_path: Path, mode: str, interrupted: str
) -> None:
    """A log renamed (logrotate), then gunicorn's reopen from a SIGUSR1 handler, or a
    record; a SIGUSR1 lands at each line mplog runs for that call in turn, and reopens.
    No reopen raises, nothing hangs, the record logged next is in the new file, and
    every record is there once."""
    path = tmp_path / "app.log"
    done = subprocess.run(
        [sys.executable, "-c", _STORM, str(path), mode, interrupted],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["errors"] == []
    points = result["points"]
    assert points > 20, "the call runs more lines of mplog than that"
    lines = [line for file in tmp_path.glob("app.log*") for line in file.read_text().splitlines()]
    during = [f"during {k}" for k in range(1, points + 2)] if interrupted == "emit" else []
    expected = [f"{when} {k}" for k in range(1, points + 2) for when in ("before", "after")]
    assert sorted(lines) == sorted(expected + during)
    for k in range(1, points + 1):  # the reopen took effect before the next record
        assert f"after {k}" in (tmp_path / f"app.log.{k + 1}").read_text().splitlines()
