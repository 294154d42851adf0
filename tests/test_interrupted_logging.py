"""Signals from outside while logging, as users meet them: Ctrl-C and timeouts inside the
lock, and signal handlers that use a second handler of the same log.

Each scenario runs in a real process under a timeout (a hang fails), and checks from
outside: the inter-process lock is free for another process within a bound, the
process exits, and every record whose logging call returned is in the file once.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROUNDS = 25  # interrupts per process: each lands at another point of the logging path
LOCK_BOUND = 10.0  # seconds another process may wait for the lock; only reached if broken
LINE = re.compile(r"^(record \d+ \d+|interrupted \d+) x+$")

_INTERRUPTED_CLI = """
import faulthandler, logging, random, signal, sys
import mplog

faulthandler.dump_traceback_later(100, exit=True)  # a hang fails, with the tracebacks
kind, path = sys.argv[1], sys.argv[2]


class Timeout(Exception):
    "What a timeout decorator raises from its SIGALRM handler."


fired = False


def on_alarm(signum, frame):
    global fired
    fired = True
    raise Timeout


signal.signal(signal.SIGALRM, on_alarm)
# Rotating, with room for every record: retention must not delete what the test counts.
handler = mplog.ConcurrentRotatingFileHandler(path, maxBytes=200_000, backupCount=500)
log = logging.getLogger("cli")
log.addHandler(handler)
log.setLevel(logging.INFO)
pad = "x" * 40


def spin(round_):
    number = 0
    while not fired:  # a Timeout that emit reported (as logging does) ends it too
        number += 1
        log.info("record %d %d %s", round_, number, pad)


for round_ in range(int(sys.argv[3])):
    fired = False
    if kind == "alarm":
        signal.setitimer(signal.ITIMER_REAL, random.uniform(0.0005, 0.005))
    else:
        print("ready", flush=True)  # the parent sends SIGINT now
    try:
        # A function, not the loop itself in the try: CPython 3.13.0 can let an exception
        # that a signal handler raises at a loop's own jump escape a try around the loop.
        spin(round_)
    except (KeyboardInterrupt, Timeout):
        pass
    log.info("interrupted %d %s", round_, pad)  # hung for ever before the fix
    print("interrupted", flush=True)
    sys.stdin.readline()  # the parent took the lock meanwhile, or gave up
print("done", flush=True)
"""


def _lock_free_within(lock_path: Path, bound: float) -> bool:
    """Whether another open file description (another process's) gets the lock in time."""
    fd = os.open(lock_path, os.O_RDWR)
    try:
        deadline = time.monotonic() + bound
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                return True
    finally:
        os.close(fd)


def _readline(process: subprocess.Popen[str], expected: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line == expected, f"the process said {line!r}, not {expected!r} (hung or died)"


@pytest.mark.timeout(150)
@pytest.mark.parametrize("kind", ["sigint", "alarm"])
def test_an_interrupted_cli_logs_again_and_lets_others_take_the_lock(
    tmp_path: Path, kind: str
) -> None:
    """A CLI logs in a loop until Ctrl-C (or a timeout decorator's SIGALRM exception)
    interrupts it, catches it and logs "interrupted", then idles: the record is
    written (no hang), and another process gets the lock within a bound, every time."""
    script = tmp_path / "_cli.py"
    script.write_text(_INTERRUPTED_CLI, encoding="utf-8")
    log = tmp_path / "app.log"
    process = subprocess.Popen(
        [sys.executable, str(script), kind, str(log), str(ROUNDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(ROUNDS):
            if kind == "sigint":
                _readline(process, "ready")
                time.sleep(0.02)  # let it log a while: the signal lands mid-record
                process.send_signal(signal.SIGINT)
            _readline(process, "interrupted")
            assert _lock_free_within(tmp_path / ".__app.lock", LOCK_BOUND), (
                "the idle process still holds the lock"
            )
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        _readline(process, "done")
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    lines = [
        line
        for file in sorted(tmp_path.glob("app.log*"))
        for line in file.read_text(encoding="utf-8").splitlines()
    ]
    assert [line for line in lines if not LINE.match(line)] == []  # nothing torn
    interrupted = [line.split()[1] for line in lines if line.startswith("interrupted")]
    assert sorted(interrupted, key=int) == [str(n) for n in range(ROUNDS)]
    records = [line for line in lines if line.startswith("record")]
    assert len(records) == len(set(records))


_TWO_HANDLERS = """
import faulthandler, json, logging, os, signal, sys, threading, time
import mplog

faulthandler.dump_traceback_later(100, exit=True)  # a hang fails, with the tracebacks
action, path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
reported = []


class Handler(mplog.ConcurrentRotatingFileHandler):
    def handleError(self, record):
        reported.append(record.getMessage())


# Rotating, with room for every record: retention must not delete what the test counts.
options = {"maxBytes": 200_000, "backupCount": 500, "batched": mode == "batched"}
first = Handler(path, **options)  # say, gunicorn's error log
second = Handler(path, **options)  # and its access log, on the same file
main_log, other_log = logging.getLogger("error"), logging.getLogger("access")
main_log.addHandler(first)
other_log.addHandler(second)
main_log.setLevel(logging.INFO)
other_log.setLevel(logging.INFO)
returned = []
signalled = 0
pad = "x" * 40


def on_usr1(signum, frame):
    global signalled
    signalled += 1
    if action == "log":
        message = f"from-signal {signalled} {pad}"
        other_log.info(message)
        returned.append(message)
    else:  # gunicorn's reopen_files(), on the second handler
        second.close()
        second._open()


signal.signal(signal.SIGUSR1, on_usr1)
stop = threading.Event()


def kill_often():
    while not stop.is_set():
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.0005)


killer = threading.Thread(target=kill_often, daemon=True)
killer.start()
number = 0
while number < 3000 or signalled < 200:  # enough signals, however fast the loop is
    number += 1
    message = f"main {number} {pad}"
    main_log.info(message)
    returned.append(message)
stop.set()
killer.join()
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
first.close()
second.close()
print(json.dumps({"returned": returned, "reported": reported, "signalled": signalled}))
"""


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", ["sync", "batched"])
@pytest.mark.parametrize("action", ["log", "reopen"])
def test_a_signal_handler_using_a_second_handler_of_the_same_log(
    tmp_path: Path, action: str, mode: str
) -> None:
    """Two handlers on one file in one process (gunicorn's error and access logs); the
    main thread logs through the first while SIGUSR1 handlers log through the second,
    or reopen it (close(); _open()): the process exits, and every record whose call
    returned (and was not reported to handleError) is in the file exactly once."""
    script = tmp_path / "two.py"
    script.write_text(_TWO_HANDLERS, encoding="utf-8")
    log = tmp_path / "app.log"
    result = subprocess.run(
        [sys.executable, str(script), action, str(log), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["signalled"] >= 200
    lines = [
        line
        for file in sorted(tmp_path.glob("app.log*"))
        for line in file.read_text(encoding="utf-8").splitlines()
    ]
    counts: dict[str, int] = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    assert [line for line, n in counts.items() if n > 1] == []
    reported = set(outcome["reported"])
    missing = [m for m in outcome["returned"] if m not in counts and m not in reported]
    assert missing == []
    # Only records logged from inside the other handler may be reported, never the main ones.
    assert [m for m in reported if m.startswith("main")] == []
