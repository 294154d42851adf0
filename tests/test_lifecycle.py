"""Batched mode through the interpreter's lifecycle: garbage collection in any
thread, reconfiguration under logging's module lock, and the end of processes.

Each case runs in a fresh interpreter with a timeout as the watchdog: a deadlock
fails the test instead of hanging the suite.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import LOCK, assert_exactly_once, log_lines, read_log

DEL_IN_WRITER = """
import gc, logging, sys, threading
import mplog

handler = mplog.ConcurrentRotatingFileHandler(sys.argv[1], batched=True, queue_size=5)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("app")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.propagate = False


class Noisy:
    def __init__(self):
        self.me = self  # a cycle: only the garbage collector frees it, in any thread

    def __del__(self):
        log.info("del")


gc.set_threshold(1)  # collect at almost every allocation, the writer's included


def produce(t):
    for i in range(3000):
        Noisy()
        log.info("t%d r%d", t, i)


threads = [threading.Thread(target=produce, args=(t,)) for t in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
gc.collect()
if sys.argv[2] == "shutdown":
    logging.shutdown()  # flushes and closes each handler holding that handler's lock
else:
    handler.close()
"""


def run_script(tmp_path: Path, source: str, *args: str, timeout: float = 90) -> None:
    """Run *source* as a script in a fresh interpreter; it must end, and succeed."""
    script = tmp_path / "script.py"
    script.write_text(source)
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Logging error" not in result.stderr, result.stderr[-3000:]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("end", ["close", "shutdown"])
def test_del_that_logs_in_the_writer_while_the_queue_is_full(tmp_path: Path, end: str) -> None:
    """A __del__ that logs, run by the garbage collector in the writer thread while
    producers wait for room in a full queue (or while logging.shutdown() flushes
    holding the handler's lock), neither deadlocks nor loses a record."""
    path = tmp_path / "app.log"
    run_script(tmp_path, DEL_IN_WRITER, str(path), end)
    lines = path.read_text().splitlines()
    assert lines.count("del") == 6000  # every Noisy object was collected, each logged once
    for t in range(2):
        assert [line for line in lines if line.startswith(f"t{t} ")] == [
            f"t{t} r{i}" for i in range(3000)
        ]


LOG_WHILE_THREADS_START = """
import gc, logging, sys, threading
import mplog

OPTIONS = {
    "compress": {"compress": "gzip", "compress_delay": 0},
    "compress-delay": {"compress": "gzip", "compress_delay": 0.05},
    "batched": {"batched": True},
    "fsync": {"fsync": 1.0},
}
handler = mplog.ConcurrentRotatingFileHandler(
    sys.argv[1], maxBytes=2000, backupCount=100, **OPTIONS[sys.argv[2]]
)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("app")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.propagate = False
logging.raiseExceptions = False  # a record logged from inside the handler is not written
left = [200]


def collected(phase, info):
    # What a __del__ that logs does when the collector frees it: it runs in whatever
    # thread allocates, mplog's own threads included, even while they start.
    if phase == "start" and left[0] and threading.current_thread() is not threading.main_thread():
        left[0] -= 1
        log.info("collected")


gc.callbacks.append(collected)
gc.set_threshold(1)  # collect at almost every allocation
for i in range(300):
    log.info("r%d %s", i, "x" * 40)
handler.close()
gc.callbacks.remove(collected)
print(gc.isenabled())
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("options", ["compress", "compress-delay", "batched", "fsync"])
def test_a_collection_that_logs_while_mplog_starts_or_holds_a_thread(
    tmp_path: Path, options: str
) -> None:
    """A garbage collection that logs (a __del__, a gc callback) in a thread of mplog
    while it starts, or while the compressor holds its state, never waits for a lock
    the thread starting it or rotating holds: every record is written once, and the
    collector runs again afterwards.  (Thread.start waits for the new thread to run
    threading's bootstrap, which allocates: the compressor's, started by a rotation
    under the writers' lock, and the batched writer, started under the queue's lock,
    hung there; so did the compressor arming its timer while a rotation waited.)"""
    path = tmp_path / "app.log"
    script = tmp_path / "script.py"
    script.write_text(LOG_WHILE_THREADS_START)
    result = subprocess.run(
        [sys.executable, str(script), str(path), options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True"]  # the collector is not left paused
    lines = [
        line
        for file in sorted(tmp_path.glob("app.log*"))
        for line in read_log(file).decode().splitlines()
        if line != "collected"
    ]
    assert_exactly_once(lines, [f"r{i} {'x' * 40}" for i in range(300)])


INTERRUPTED_RELEASE = """
import dis, logging, os, sys, threading
import mplog
from mplog import _lifecycle as lifecycle

code = lifecycle.released.__wrapped__.__code__
first = code.co_firstlineno
lines = sorted({line for _, line in dis.findlinestarts(code) if line and line > first})
for n, target in enumerate(lines):
    path = os.path.join(sys.argv[1], f"{n}.log")
    handler = mplog.ConcurrentRotatingFileHandler(path, batched=True)
    handler.handle(logging.makeLogRecord({"msg": "queued"}))
    hit = []

    def local(frame, event, arg):
        if event == "line" and frame.f_code is code and frame.f_lineno == target and not hit:
            hit.append(target)
            raise KeyboardInterrupt
        return local

    sys.settrace(lambda frame, event, arg: local if frame.f_code is code else None)
    try:
        with logging._lock, handler.lock:  # as logging.shutdown() and dictConfig close
            handler.close()
    except (KeyboardInterrupt, RuntimeError):  # RuntimeError: released already
        pass
    finally:
        sys.settrace(None)
    assert hit, target
    free = []

    def probe():
        for lock in (logging._lock, handler.lock):
            if lock.acquire(True, 5):
                lock.release()
                free.append(lock)

    prober = threading.Thread(target=probe)
    prober.start()
    prober.join(20)
    assert len(free) == 2, f"a lock is held after an interruption at line {target}"
    assert not logging._lock._is_owned() and not handler.lock._is_owned(), target
print(len(lines))
"""


@pytest.mark.timeout(120)
def test_an_interruption_while_close_lets_go_of_loggings_locks_leaves_none_held(
    tmp_path: Path,
) -> None:
    """A KeyboardInterrupt at each line of lifecycle.released (a batched close() under
    logging's module lock and the handler's lock, as logging.shutdown() and dictConfig
    call it) leaves neither lock held by any thread.  (At worst it lets go of them
    before the caller does, whose own release then raises RuntimeError.)"""
    script = tmp_path / "script.py"
    script.write_text(INTERRUPTED_RELEASE)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout) > 5  # every line of released() was interrupted once


LATE_THREADS = """
import logging, multiprocessing, sys, threading, time
import mplog


def late(worker, t):
    time.sleep(0.2)  # still logging once the child's target has returned
    log = logging.getLogger("w")
    for i in range(500):
        log.info("w%d t%d r%d", worker, t, i)


def target(path, worker):
    mplog.setup_logging(path, format="%(message)s", batched=True)
    for t in range(2):
        threading.Thread(target=late, args=(worker, t)).start()  # not a daemon


if __name__ == "__main__":
    ctx = multiprocessing.get_context(sys.argv[2])
    children = [ctx.Process(target=target, args=(sys.argv[1], n)) for n in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    sys.exit(max(child.exitcode for child in children))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_children_keep_the_records_of_threads_running_at_exit(tmp_path: Path, method: str) -> None:
    """A batched multiprocessing child whose non-daemon threads still log when its
    target returns writes all of their records before it leaves with os._exit."""
    path = tmp_path / "app.log"
    run_script(tmp_path, LATE_THREADS, str(path), method)
    lines = path.read_text().splitlines()
    for worker in range(3):
        for t in range(2):
            prefix = f"w{worker} t{t} "
            assert [line for line in lines if line.startswith(prefix)] == [
                f"{prefix}r{i}" for i in range(500)
            ], prefix


ROTATOR_LOGS = """
import logging, os, sys, time
import mplog


def rotator(source, dest):
    time.sleep(0.2)  # by now the main thread closes this handler in basicConfig(force=True)
    logging.getLogger("rotation")  # takes logging's module lock, which basicConfig holds
    os.rename(source, dest)


for n in range(3):
    handler = mplog.setup_logging(
        sys.argv[1], format="%(message)s", batched=True, max_bytes=100, backup_count=1000
    )
    handler.rotator = rotator
    for i in range(20):
        logging.getLogger("app").info("call%d r%02d", n, i)
"""


@pytest.mark.timeout(120)
def test_reconfiguring_while_the_writer_needs_loggings_lock(tmp_path: Path) -> None:
    """setup_logging() again (basicConfig(force=True) closes the old handler holding
    logging's module lock) while the old writer needs that lock does not hang."""
    path = tmp_path / "app.log"
    run_script(tmp_path, ROTATOR_LOGS, str(path))
    assert log_lines(tmp_path, "app.log") == [
        f"call{n} r{i:02d}" for n in range(3) for i in range(20)
    ]


NOTEBOOK = """
import logging, sys
import mplog

for n in range(200):  # a notebook's cell, run again and again
    mplog.setup_logging(sys.argv[1], format="%(message)s", batched=True, compress="gzip",
                        max_bytes=100, backup_count=10_000, compress_delay=0)
    for i in range(20):
        logging.getLogger("nb").info("call%d r%d", n, i)
"""


@pytest.mark.timeout(120)
def test_repeated_setup_logging_with_compression_never_hangs(tmp_path: Path) -> None:
    """setup_logging(batched=True, compress="gzip") called again and again in one
    process ends (it hung on Python 3.9 and 3.10), and keeps every record once."""
    run_script(tmp_path, NOTEBOOK, str(tmp_path / "app.log"))
    lines = [
        line
        for name in sorted(p.name for p in tmp_path.iterdir())
        if name.startswith("app.log") and name != LOCK
        for line in read_log(tmp_path / name).decode().splitlines()
    ]
    assert_exactly_once(lines, [f"call{n} r{i}" for n in range(200) for i in range(20)])


MAIN_EXIT = """
import atexit, logging, sys, threading, time
import mplog

mplog.setup_logging(sys.argv[1], format="%(message)s", batched=True, queue_size=50)
log = logging.getLogger("app")


def late(t):
    time.sleep(0.2)  # still logging once the main thread has returned
    for i in range(2000):
        log.info("t%d r%d", t, i)


atexit.register(lambda: log.info("atexit"))  # runs after the threads are joined
for t in range(3):
    threading.Thread(target=late, args=(t,)).start()  # not daemons
"""


@pytest.mark.timeout(120)
def test_interpreter_exit_keeps_the_records_of_threads_still_running(tmp_path: Path) -> None:
    """Non-daemon threads that log after the main thread has returned, and an atexit
    function that logs after them, lose nothing at interpreter exit."""
    path = tmp_path / "app.log"
    run_script(tmp_path, MAIN_EXIT, str(path))
    lines = path.read_text().splitlines()
    for t in range(3):
        assert [line for line in lines if line.startswith(f"t{t} ")] == [
            f"t{t} r{i}" for i in range(2000)
        ]
    assert lines[-1] == "atexit"
    assert len(lines) == 6001


GROUP_COMMIT_AT_EXIT = """
import logging, multiprocessing, os, sys, threading, time
import mplog
import mplog._durability


def recording_sync(fd, sync=mplog._durability.sync_data):
    sync(fd)
    with open(sys.argv[2], "a") as synced:  # the size the file had on disk after each sync
        synced.write(f"{os.fstat(fd).st_size}\\n")


def late(t):
    time.sleep(0.2)  # still logging once the child's target has returned
    for i in range(200):
        logging.getLogger("w").info("t%d r%d", t, i)


def target():
    mplog._durability.sync_data = recording_sync
    mplog.setup_logging(sys.argv[1], format="%(message)s", fsync="1 h", batched=sys.argv[3] == "1")
    for t in range(2):
        threading.Thread(target=late, args=(t,)).start()


if __name__ == "__main__":
    child = multiprocessing.get_context("fork").Process(target=target)
    child.start()
    child.join()
    sys.exit(child.exitcode)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batched", [False, True])
def test_group_commit_syncs_what_threads_log_at_exit(tmp_path: Path, batched: bool) -> None:
    """With fsync=<seconds>, a fork child that ends (os._exit) while its threads still
    log has synced everything they wrote, not only what was written before its end."""
    path, synced = tmp_path / "app.log", tmp_path / "synced"
    run_script(tmp_path, GROUP_COMMIT_AT_EXIT, str(path), str(synced), "1" if batched else "0")
    assert len(path.read_text().splitlines()) == 400
    sizes = [int(size) for size in synced.read_text().split()] if synced.exists() else []
    assert sizes, "nothing was synced"
    assert max(sizes) == path.stat().st_size


def test_the_collector_resumes_only_when_the_last_thread_leaves_its_paused_block() -> None:
    """Two threads start mplog threads (or hold the compressor's state) at once: the first
    to finish must not resume collection while the other is still inside its block, and
    a collector the application paused itself stays paused."""
    from mplog._lifecycle import collection_paused

    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with collection_paused():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    try:
        with collection_paused():
            thread.start()
            assert inside.wait(10)
        assert not gc.isenabled(), "resumed while another thread is still in its block"
    finally:
        leave.set()
        thread.join(10)
    assert gc.isenabled()

    gc.disable()  # the application's own pause
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork: POSIX only")
def test_a_child_forked_while_another_thread_is_in_a_paused_block_collects() -> None:
    from mplog._lifecycle import collection_paused

    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with collection_paused():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert inside.wait(10)
        with collection_paused():  # the hook is installed by now
            pass
        pid = os.fork()
        if pid == 0:  # the child: nobody is inside a block here
            code = 0 if gc.isenabled() else 3
            with collection_paused():
                code = code or (0 if not gc.isenabled() else 4)
            code = code or (0 if gc.isenabled() else 5)
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        leave.set()
        thread.join(10)
    assert gc.isenabled()
