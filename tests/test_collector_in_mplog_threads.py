"""A garbage collection that logs, run in one of mplog's threads while it holds a lock
that a thread holding the writers' lock waits for.

The collector runs ``__del__`` methods and ``gc.callbacks`` in whatever thread
allocates.  Each case forces the interleaving with events, in a fresh interpreter
with a timeout as the watchdog: a deadlock fails the test instead of hanging the
suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import read_log

GROUP_COMMIT_HOLDS_ITS_LOCK = """
import gc, logging, os, sys, threading
import mplog
from mplog import _durability as durability

handler = mplog.ConcurrentRotatingFileHandler(sys.argv[1], backupCount=5, fsync=0.01)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("app")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.propagate = False
holding = threading.Event()  # the fsync thread is in a collection, holding its condition
rotating = threading.Event()  # the main thread holds the writers' lock, in before_rename


class Collecting(threading.Condition):
    # Any allocation may run a collection; this one runs where the fsync thread has
    # just taken its condition, the first time.
    def __enter__(self):
        entered = super().__enter__()
        if threading.current_thread().name == "mplog-fsync" and not holding.is_set():
            gc.collect()
        return entered


def collected(phase, info):
    # What a __del__ that logs does when the collector frees it: log, here once a
    # rotation waits for the condition this thread holds.
    if phase != "start" or threading.current_thread().name != "mplog-fsync":
        return
    if holding.is_set() or not handler._durability._cond._is_owned():
        return
    holding.set()
    if not rotating.wait(30):
        os._exit(3)
    log.info("from the collector")


sync_data = durability.sync_data


def syncing(fd):
    # before_rename syncs the file, then takes the group commit's condition.
    if threading.current_thread() is threading.main_thread() and holding.is_set():
        rotating.set()
    sync_data(fd)


handler._durability._cond = Collecting()  # before the first record starts the thread
durability.sync_data = syncing
gc.callbacks.append(collected)
log.info("first")  # starts the fsync thread
if not holding.wait(30):
    sys.exit("the fsync thread did not collect holding its condition")
handler.doRollover()  # holds the writers' lock, waits in before_rename for the fsync thread
log.info("after the rotation")
handler.close()
gc.callbacks.remove(collected)
"""


@pytest.mark.timeout(60)
def test_a_collection_in_the_fsync_thread_never_waits_for_a_rotation_waiting_for_it(
    tmp_path: Path,
) -> None:
    """The fsync thread holds its condition when a collection runs a callback that logs,
    while a rotation holds the writers' lock and waits for that condition
    (``before_rename``): the callback's record goes to ``handleError`` as
    ReentrantLogging instead of waiting for the writers' lock, the rotation goes on,
    and every other record is written once.  (It hung: each waited for the other.)"""
    path = tmp_path / "app.log"
    script = tmp_path / "script.py"
    script.write_text(GROUP_COMMIT_HOLDS_ITS_LOCK)
    try:
        result = subprocess.run(
            [sys.executable, str(script), str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("deadlock: the rotation and the fsync thread wait for each other")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ReentrantLogging" in result.stderr, result.stderr[-3000:]
    assert "from the collector" in result.stderr, result.stderr[-3000:]
    assert [read_log(file).decode() for file in sorted(tmp_path.glob("app.log*"))] == [
        "after the rotation\n",
        "first\n",  # the backup: the rotation went on
    ]


WRITER_HOLDS_THE_QUEUE = """
import gc, logging, os, sys, threading
import mplog
from mplog import _durability as durability


def make(name, path, **options):
    handler = mplog.ConcurrentRotatingFileHandler(path, backupCount=5, **options)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger(name)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler, log


batched, queued = make("queued", sys.argv[1], batched=True, queue_size=1)
direct, synced = make("synced", sys.argv[2], fsync=True)
holding = threading.Event()  # the writer is in a collection, holding the queue's condition
rotating = threading.Event()  # the main thread holds the synced log's writers' lock


class Collecting(threading.Condition):
    # Any allocation may run a collection; this one runs where the writer has just
    # taken the queue's condition, the first time.
    def __enter__(self):
        entered = super().__enter__()
        if threading.current_thread().name == "mplog-writer" and not holding.is_set():
            gc.collect()
        return entered


def collected(phase, info):
    # A __del__ that logs to the synced log, freed in the writer thread.
    if phase != "start" or threading.current_thread().name != "mplog-writer":
        return
    if holding.is_set() or not batched._batch._cond._is_owned():
        return
    holding.set()
    if not rotating.wait(30):
        os._exit(3)
    synced.info("from the collector")


sync_data = durability.sync_data


def syncing(fd):
    # A rotation of the synced log, holding its writers' lock, logs to the batched one
    # (as a signal handler or a rotator may): the queue is full, so it waits for the
    # queue's condition.
    if threading.current_thread() is threading.main_thread() and holding.is_set():
        if not rotating.is_set():
            rotating.set()
            queued.info("from the rotation")
    sync_data(fd)


writer = batched._batch  # before the first record starts it: the same lock, collecting
writer._cond = Collecting(writer._cond._lock)
synced.info("first")
durability.sync_data = syncing
gc.callbacks.append(collected)
queued.info("first")  # starts the writer
if not holding.wait(30):
    sys.exit("the writer did not collect holding the queue's condition")
direct.doRollover()
synced.info("after the rotation")
batched.close()
direct.close()
gc.callbacks.remove(collected)
"""


@pytest.mark.timeout(60)
def test_a_collection_in_the_batched_writer_never_waits_for_a_writer_waiting_for_it(
    tmp_path: Path,
) -> None:
    """The batched writer holds its queue's condition when a collection runs a callback
    that logs to another, sync, log, while a rotation of that log holds its writers'
    lock and logs to the batched one (waiting for the condition): the callback's record
    goes to ``handleError`` as ReentrantLogging, and both go on.  (It hung.)"""
    queued, synced = tmp_path / "queued.log", tmp_path / "synced.log"
    script = tmp_path / "script.py"
    script.write_text(WRITER_HOLDS_THE_QUEUE)
    try:
        result = subprocess.run(
            [sys.executable, str(script), str(queued), str(synced)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("deadlock: the rotation and the batched writer wait for each other")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ReentrantLogging" in result.stderr, result.stderr[-3000:]
    assert "from the collector" in result.stderr, result.stderr[-3000:]
    assert queued.read_text().splitlines() == ["first", "from the rotation"]
    assert [read_log(file).decode() for file in sorted(tmp_path.glob("synced.log*"))] == [
        "after the rotation\n",
        "first\n",
    ]
