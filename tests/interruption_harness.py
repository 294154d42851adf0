"""Interruption at every line: the sweep behind tests/test_interruption.py.

Run as a script: ``python interruption_harness.py CONFIG STRIDE DIRECTORY [PATHS [KINDS]]``
(PATHS and KINDS: comma-separated subsets), or, to inject at the first execution of
every line of one function of mplog (wherever the line comes in the count: a
background thread's count varies from run to run), ``python interruption_harness.py
CONFIG lines:FILE:FUNCTION DIRECTORY PATH KINDS`` (``lines:_batch.py:_run``).  For
each path (a record logged, a size rotation, ``doRollover()``, ``flush()``,
``close()``, gunicorn's reopen ``close(); _open()``, and in batched mode the
writer thread's drain; ``first``, the first record of a new handler, which starts
its background threads, only on request), a first run counts the lines executed inside mplog by the
thread that runs the path (``sys.settrace``); then one trial per injection point
(every STRIDE-th line, starting at a fixed offset) and per injection kind runs the
path again and, at that line, from the trace function (as Python runs a signal
handler between two bytecodes), does one of:

* ``raise``: raise KeyboardInterrupt (Ctrl-C; a timeout decorator's SIGALRM);
* ``same``: log a record through the same handler;
* ``second``: log a record through a second handler on the same file;
* ``reopen``: ``close(); _open()`` the handler (gunicorn's SIGUSR1).

One injection per trial.  In the batched writer thread only ``same`` and ``second``
(a ``__del__`` that logs): Python runs signal handlers in the main thread only.
After each trial: the inter-process lock is free (a new open file description, as
another process, takes it at once; within seconds when a background thread of the
handler may hold it for a moment), another thread can take the handler lock, the
next record from the same thread is written, no line in the files is torn, and every
record whose logging call returned, and that was not reported to ``handleError``, is
in the files exactly once (none more than once).
A trial that does not finish within :data:`WATCHDOG` seconds kills the process
with every thread's traceback (``faulthandler``).

Prints one JSON object: the number of points covered per path and any failures.
"""

from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import gzip
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import mplog

MPLOG_DIR = os.path.dirname(mplog.__file__) + os.sep
WATCHDOG = 20.0  # seconds per trial; only reached on a hang
KINDS = ("raise", "same", "second", "reopen")
RECORD = re.compile(r"^(\w+)-(\d+) x+$")
PAD = "x" * 30

CONFIGS: dict[str, dict[str, Any]] = {
    "sync": {},
    "sync-timeout": {"lock_timeout": 5.0},
    "sync-fsync": {"fsync": True},
    "sync-fsync-group": {"fsync": 1.0},
    "sync-gzip": {"compress": "gzip", "compress_delay": 0},
    "batched": {"batched": True},
    "batched-timeout": {"batched": True, "lock_timeout": 5.0},
    "batched-fsync": {"batched": True, "fsync": True},
    "batched-gzip": {"batched": True, "compress": "gzip", "compress_delay": 0},
}


class Handler(mplog.ConcurrentRotatingFileHandler):
    """Records what went to handleError instead of printing it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reported: list[str] = []

    def handleError(self, record: logging.LogRecord) -> None:
        self.reported.append(str(record.msg))


class Trial:
    """One run of one path, with at most one injection."""

    def __init__(self, config: str, path: str, base: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(dir=base))
        self.log = self.dir / "app.log"
        options = dict(CONFIGS[config])
        self.batched = bool(options.get("batched"))
        self.kwargs = {"maxBytes": 400, "backupCount": 20, **options}
        self.handler = Handler(str(self.log), **self.kwargs)
        self.second: Handler | None = None
        self.path = path
        self.serial = 0
        self.returned: list[str] = []  # records whose logging call returned
        self.attempted: list[str] = []
        self.count = 0
        self.target = -1
        self.at: tuple[str, int] | None = None  # (file, line): inject there, not by count
        self.seen: list[tuple[str, str, int]] = []  # (file, function, line) of each point
        self.kind = ""
        self.injected = False
        self.where = ""
        self.thread = threading.main_thread() if path != "drain" else None

    # -- logging, counted --------------------------------------------------------------

    def log_through(self, handler: logging.Handler, tag: str) -> None:
        self.serial += 1
        message = f"{tag}-{self.serial} {PAD}"
        self.attempted.append(message)
        handler.handle(logging.makeLogRecord({"msg": message, "levelno": 20}))
        self.returned.append(message)

    # -- the trace function ------------------------------------------------------------

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(MPLOG_DIR):
            return None
        return self.local

    def local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event != "line":
            return self.local
        thread = threading.current_thread()
        if self.thread is None and thread.name.startswith("mplog-writer"):
            self.thread = thread
        if thread is not self.thread:
            return self.local
        self.count += 1
        file = os.path.basename(frame.f_code.co_filename)
        if self.at is None:
            self.seen.append((file, frame.f_code.co_name, frame.f_lineno))
            due = self.count == self.target
        else:
            due = self.at == (file, frame.f_lineno)
        if due and not self.injected:
            self.injected = True
            self.where = f"{file}:{frame.f_lineno}"
            self.inject()
        return self.local

    def inject(self) -> None:
        kind = self.kind
        if kind == "raise":
            raise KeyboardInterrupt
        if kind == "same":
            self.log_through(self.handler, "same")
        elif kind == "second":
            assert self.second is not None
            self.log_through(self.second, "second")
        elif kind == "reopen":
            self.handler.close()
            self.handler._open()

    # -- the paths ---------------------------------------------------------------------

    def prepare(self) -> None:
        """Bring the handler to the state the path starts from (untraced)."""
        self.second = Handler(str(self.log), **self.kwargs)
        if self.path in ("drain", "first"):  # threads must start traced, in run_path
            return
        for _ in range(3):
            self.log_through(self.handler, "setup")
        if self.path == "size":  # the next record rotates (maxBytes=400)
            while self.log.stat().st_size + 40 <= 400:
                self.log_through(self.handler, "setup")
                self.handler.flush()
        self.handler.flush()

    def run_path(self) -> None:
        handler, path = self.handler, self.path
        if path in ("emit", "size", "first"):
            self.log_through(handler, "call")
        elif path == "rollover":
            handler.doRollover()
        elif path == "flush":
            self.log_through(handler, "call")
            handler.flush()
        elif path == "close":
            handler.close()
        elif path == "reopen":
            handler.close()
            handler._open()
        elif path == "drain":  # enough records for the writer to rotate while it drains
            for _ in range(12):
                self.log_through(handler, "call")
            handler.flush()

    def run(self, target: int, kind: str) -> int:
        """Run the path, injecting *kind* at line *target* (0: none); return the lines counted."""
        self.prepare()
        self.target, self.kind = target, kind
        sys.settrace(self.trace)
        threading.settrace(self.trace)
        try:
            self.run_path()
        except KeyboardInterrupt:
            if kind != "raise":
                raise
        finally:
            sys.settrace(None)
            threading.settrace(None)  # type: ignore[arg-type]
        return self.count

    # -- the invariants ----------------------------------------------------------------

    def check(self) -> list[str]:
        problems = []
        if not self.lock_is_free():
            problems.append("the inter-process lock is held after the call")
        taken: list[bool] = []

        def take_handler_lock() -> None:
            lock = self.handler.lock
            assert lock is not None
            if lock.acquire(True, 5):
                lock.release()
                taken.append(True)

        probe = threading.Thread(target=take_handler_lock)
        probe.start()
        probe.join(10)
        if not taken:
            problems.append("another thread cannot take the handler lock")
        handlers = [self.handler, self.second]
        try:
            self.log_through(self.handler, "next")
        except BaseException as error:
            problems.append(f"the next record raised {error!r}")
        next_record = self.attempted[-1]
        for handler in handlers:
            assert handler is not None
            handler.close()
        lines = Counter(self.lines())
        reported = {m for h in handlers if h is not None for m in h.reported}
        for line in lines:
            if not RECORD.match(line):
                problems.append(f"torn or foreign line {line!r}")
        for message, times in lines.items():
            if times > 1:
                problems.append(f"{message!r} written {times} times")
        for message in self.returned:
            if lines[message] != 1 and message not in reported:
                problems.append(f"{message!r} returned but is in the files {lines[message]} times")
        if lines[next_record] != 1:
            problems.append(f"the next record is in the files {lines[next_record]} times")
        return problems

    def lock_is_free(self) -> bool:
        """Whether a new open file description (as another process would) takes the
        lock at once; with background threads (the batched writer, the compressor),
        which hold it for a moment now and then, at once within a few seconds."""
        fd = os.open(self.dir / ".__app.lock", os.O_RDWR)
        background = self.batched or "compress" in self.kwargs
        try:
            for _ in range(500 if background else 1):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    time.sleep(0.01)
                else:
                    return True
            return False
        finally:
            os.close(fd)

    def lines(self) -> list[str]:
        found = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("."):
                continue
            file = self.dir / name
            if name.endswith(".gz"):
                data = gzip.decompress(file.read_bytes())
            elif name.endswith(".tmp"):
                continue
            else:
                data = file.read_bytes()
            found.extend(data.decode("utf-8", "replace").splitlines())
        return found

    def cleanup(self) -> None:
        for handler in (self.handler, self.second):
            if handler is not None:
                with contextlib.suppress(Exception):
                    handler.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def hung(name: str) -> None:
    """The watchdog: a trial did not finish; say which, with every thread's stack."""
    print(json.dumps({"hung": name}), flush=True)
    faulthandler.dump_traceback(all_threads=True)
    os._exit(3)


def paths_of(config: str) -> list[str]:
    paths = ["emit", "size", "rollover", "close", "reopen"]
    if CONFIGS[config].get("batched"):
        paths += ["flush", "drain"]
    return paths


def sweep(
    config: str,
    stride: int,
    base: Path,
    only: list[str] | None = None,
    kinds: list[str] | None = None,
) -> dict[str, Any]:
    """Count the points of every path, then run one trial per sampled point and kind."""
    covered: dict[str, int] = {}
    points: dict[str, int] = {}
    failures: list[str] = []
    for path in only or paths_of(config):
        trial = Trial(config, path, base)
        try:
            total = trial.run(0, "")
        finally:
            trial.cleanup()
        points[path] = total
        sampled = range(1 + (stride // 2 if stride > 1 else 0), total + 1, stride)
        covered[path] = len(sampled)
        for target in sampled:
            for kind in kinds or KINDS:
                if kind in ("raise", "reopen") and path == "drain":
                    continue  # signal handlers run in the main thread only
                name = f"{config}/{path} point {target} {kind}"
                watchdog = threading.Timer(WATCHDOG, hung, (name,))
                watchdog.daemon = True
                watchdog.start()
                faulthandler.dump_traceback_later(2 * WATCHDOG, exit=True)  # if the GIL is stuck
                trial = Trial(config, path, base)
                try:
                    trial.run(target, kind)
                    problems = trial.check()
                except BaseException:
                    problems = [traceback.format_exc()]
                finally:
                    watchdog.cancel()
                    faulthandler.cancel_dump_traceback_later()
                    trial.cleanup()
                for problem in problems:
                    where = f"{config}/{path} point {target} ({trial.where}) {kind}"
                    failures.append(f"{where}: {problem}")
    return {"config": config, "points": points, "covered": covered, "failures": failures}


def sweep_lines(config: str, where: str, base: Path, path: str, kinds: list[str]) -> dict[str, Any]:
    """Inject at the first execution of every line of one function (*where*:
    ``FILE:FUNCTION``) that the path runs: one trial per line and kind."""
    file, function = where.split(":")
    trial = Trial(config, path, base)
    try:
        trial.run(0, "")
    finally:
        trial.cleanup()
    lines = sorted({line for f, name, line in trial.seen if (f, name) == (file, function)})
    failures: list[str] = []
    for line in lines:
        for kind in kinds:
            name = f"{config}/{path} {file}:{line} {kind}"
            watchdog = threading.Timer(WATCHDOG, hung, (name,))
            watchdog.daemon = True
            watchdog.start()
            faulthandler.dump_traceback_later(2 * WATCHDOG, exit=True)
            trial = Trial(config, path, base)
            trial.at = (file, line)
            try:
                trial.run(-1, kind)
                problems = trial.check()
                if not trial.injected:
                    problems.append("not injected: the line did not run in this trial")
            except BaseException:
                problems = [traceback.format_exc()]
            finally:
                watchdog.cancel()
                faulthandler.cancel_dump_traceback_later()
                trial.cleanup()
            failures.extend(f"{name}: {problem}" for problem in problems)
    return {"config": config, "lines": lines, "failures": failures}


def main() -> None:
    if sys.argv[2].startswith("lines:"):
        where, base = sys.argv[2][len("lines:") :], Path(sys.argv[3])
        result = sweep_lines(sys.argv[1], where, base, sys.argv[4], sys.argv[5].split(","))
        print(json.dumps(result))
        return
    config, stride, base = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    only = sys.argv[4].split(",") if len(sys.argv) > 4 and sys.argv[4] else None
    kinds = sys.argv[5].split(",") if len(sys.argv) > 5 else list(KINDS)
    print(json.dumps(sweep(config, stride, base, only, kinds)))


if __name__ == "__main__":
    main()
