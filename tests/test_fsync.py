"""The ``fsync=`` option: records, rotations and archives reach stable storage in order.

``os.fsync``, ``os.fdatasync``, ``os.rename`` and ``os.remove`` are replaced by recorders
that note, at the moment of each call, the file's name and contents (a directory: its
names) and whether the calling thread holds the writers' lock; the tests check the
order of those events. No test sleeps: group commit runs against a frozen clock.
"""

from __future__ import annotations

import datetime
import logging
import os
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import mplog
from helpers import RecordingHandler, log_to
from mplog._durability import GroupCommit, SyncEach

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads synced files through /proc/self/fd"
)

WAIT = 30  # seconds to wait for the background thread; never reached when it works


@dataclass
class Event:
    kind: str  # "sync" (a file), "dirsync", "rename", "remove"
    name: str  # file name; for a rename "source -> dest"
    contents: Any = None  # a synced file's bytes; a synced directory's sorted names
    locked: bool = False  # the calling thread held the writers' lock
    thread: str = ""


@dataclass
class Recorder:
    handlers: list[mplog.ConcurrentRotatingFileHandler] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    synced: threading.Event = field(default_factory=threading.Event)

    def locked(self) -> bool:
        return any(h._lock.owned() for h in self.handlers)

    def note(self, kind: str, name: str, contents: Any = None) -> None:
        thread = threading.current_thread().name
        self.events.append(Event(kind, name, contents, self.locked(), thread))

    def of(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def clear(self) -> None:
        self.events.clear()
        self.synced.clear()


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recorder = Recorder()
    real_rename, real_remove = os.rename, os.remove

    def sync(fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            recorder.note("dirsync", os.readlink(f"/proc/self/fd/{fd}"), sorted(os.listdir(fd)))
            return
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        with open(f"/proc/self/fd/{fd}", "rb") as f:
            recorder.note("sync", name, f.read())
        recorder.synced.set()

    def rename(source: str, dest: str) -> None:
        real_rename(source, dest)
        recorder.note("rename", f"{os.path.basename(source)} -> {os.path.basename(dest)}")

    def remove(path: str) -> None:
        real_remove(path)
        recorder.note("remove", os.path.basename(path))

    monkeypatch.setattr(os, "fsync", sync)
    monkeypatch.setattr(os, "fdatasync", sync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "remove", remove)
    yield recorder
    for handler in recorder.handlers:
        handler.close()


def _handler(recorder: Recorder, path: Path, **kwargs: Any) -> RecordingHandler:
    handler = RecordingHandler(path, **kwargs)
    handler.setFormatter(logging.Formatter("%(message)s"))
    recorder.handlers.append(handler)
    return handler


def _wake(handler: mplog.ConcurrentRotatingFileHandler) -> None:
    committer = handler._durability
    assert isinstance(committer, GroupCommit)
    with committer._cond:
        committer._cond.notify()


# -- the option ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (False, None),
        (None, None),
        (True, SyncEach),
        (2, GroupCommit),  # 1 and 0 are refused as ambiguous (see test_first_contact.py)
        (0.25, GroupCommit),
        ("2 s", GroupCommit),
        ("1 min", GroupCommit),
        (datetime.timedelta(seconds=5), GroupCommit),
    ],
)
def test_accepted_values(tmp_path: Path, value: Any, kind: type | None) -> None:
    """False/None turn syncing off, True syncs each record, a duration is a group-commit
    interval in seconds."""
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", fsync=value, delay=True)
    if kind is None:
        assert handler._durability is None
    else:
        assert type(handler._durability) is kind
    if kind is GroupCommit:
        assert isinstance(handler._durability, GroupCommit)
        if isinstance(value, str):
            expected = {"2 s": 2.0, "1 min": 60.0}[value]
        elif isinstance(value, datetime.timedelta):
            expected = value.total_seconds()
        else:
            expected = value
        assert handler._durability.interval == expected
    handler.close()


@pytest.mark.parametrize(
    "value", [-1, 0, 0.0, "0 s", "-1 s", "soon", "yes", "", float("nan"), float("inf"), [1], b"1"]
)
def test_bad_values_fail_at_construction_naming_the_value(tmp_path: Path, value: Any) -> None:
    """Negative, zero, infinite, unparsable and wrongly typed values raise ValueError
    naming the option and the value, before any file is created."""
    with pytest.raises(ValueError, match="fsync=") as error:
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", fsync=value)
    assert repr(value) in str(error.value)
    assert not (tmp_path / "app.log").exists()


def test_setup_logging_and_config_files_accept_it(tmp_path: Path) -> None:
    """setup_logging(fsync=...) and a dictConfig handler entry reach the handler; the
    config check knows the option, and a bad value names it."""
    handler = mplog.setup_logging(tmp_path / "a.log", fsync="1 s")
    assert handler is not None
    assert isinstance(handler._durability, GroupCommit)
    config: dict[str, Any] = {
        "version": 1,
        "handlers": {
            "file": {
                "class": "mplog.ConcurrentRotatingFileHandler",
                "filename": str(tmp_path / "b.log"),
                "fsync": True,
            }
        },
        "root": {"handlers": ["file"]},
    }
    handler = mplog.setup_logging(config=config)
    assert handler is not None
    assert isinstance(handler._durability, SyncEach)
    config["handlers"]["file"]["fsync"] = "sometimes"
    with pytest.raises(ValueError, match="fsync='sometimes'"):
        mplog.setup_logging(config=config)


def test_yaml_config(tmp_path: Path) -> None:
    """In YAML, ``fsync: true`` and ``fsync: 1 s`` configure the two modes."""
    pytest.importorskip("yaml")
    for text, kind in (("true", SyncEach), ("1 s", GroupCommit)):
        config = tmp_path / "logging.yaml"
        config.write_text(
            "version: 1\n"
            "handlers:\n"
            "  file:\n"
            "    class: mplog.ConcurrentRotatingFileHandler\n"
            "    filename: app.log\n"
            f"    fsync: {text}\n"
            "root:\n"
            "  handlers: [file]\n",
            encoding="utf-8",
        )
        handler = mplog.setup_logging(config=config)
        assert type(handler._durability) is kind  # type: ignore[union-attr]


# -- fsync=True ------------------------------------------------------------------------------


def test_each_record_is_synced_before_the_call_returns(tmp_path: Path, syncs: Recorder) -> None:
    """fsync=True: the log's directory is synced when the file is opened; then each
    logging call writes, syncs the file holding its record, and only then returns; the
    sync runs after the writers' lock is released."""
    handler = _handler(syncs, tmp_path / "app.log", fsync=True)
    assert [(e.kind, e.contents) for e in syncs.events] == [
        ("dirsync", [".__app.lock", ".__app.open", "app.log"])
    ]
    syncs.clear()
    expected = b""
    for i in range(3):
        log_to(handler, f"record {i}")
        expected += f"record {i}\n".encode()
        assert [(e.kind, e.name, e.contents) for e in syncs.events] == [
            ("sync", "app.log", expected)
        ]
        assert not syncs.events[0].locked
        syncs.clear()
    assert handler.errors_seen == []


def test_default_never_syncs(tmp_path: Path, syncs: Recorder) -> None:
    """Without fsync, nothing is synced (records are in the kernel when the call returns)."""
    handler = _handler(syncs, tmp_path / "app.log", maxBytes=20, backupCount=2)
    for i in range(5):
        log_to(handler, f"record {i:03}")
    handler.close()
    assert syncs.of("sync", "dirsync") == []


@pytest.mark.parametrize("fsync", [True, 1.0])
def test_rotation_syncs_the_file_then_renames_then_syncs_the_directory(
    tmp_path: Path, syncs: Recorder, clock: Any, fsync: Any
) -> None:
    """A rotation syncs the full file before renaming it, and syncs the directory after
    the rename and the creation of the new file, before the record that triggered it is
    written; all under the writers' lock."""
    handler = _handler(syncs, tmp_path / "app.log", maxBytes=30, backupCount=2, fsync=fsync)
    log_to(handler, "first record")
    log_to(handler, "second record")
    syncs.clear()
    log_to(handler, "third record")  # 13 + 14 + 13 > 30: rotates first
    events = [(e.kind, e.name, e.contents, e.locked) for e in syncs.events]
    rotation = [
        ("sync", "app.log", b"first record\nsecond record\n", True),
        ("rename", "app.log -> app.log.1", None, True),
        ("dirsync", str(tmp_path), [".__app.lock", ".__app.open", "app.log", "app.log.1"], True),
    ]
    assert events[:3] == rotation
    if fsync is True:
        assert events[3:] == [("sync", "app.log", b"third record\n", False)]
    else:
        assert events[3:] == []
    assert (tmp_path / "app.log.1").read_bytes() == b"first record\nsecond record\n"


# -- group commit ----------------------------------------------------------------------------


def test_group_commit_syncs_in_the_background_once_the_interval_passed(
    tmp_path: Path, syncs: Recorder, clock: Any
) -> None:
    """fsync=<seconds>: logging calls return without syncing; once the interval has passed
    since the first unsynced write, the background thread syncs the file with every
    record written until then; the next write starts a new interval."""
    handler = _handler(syncs, tmp_path / "app.log", fsync=2.0)
    syncs.clear()
    for i in range(3):
        log_to(handler, f"record {i}")
    clock.now += 1.9
    _wake(handler)
    log_to(handler, "record 3")
    assert syncs.of("sync") == []  # the clock is frozen before the deadline
    clock.now += 0.1
    _wake(handler)
    assert syncs.synced.wait(WAIT)
    [event] = syncs.of("sync")
    assert (event.name, event.contents) == ("app.log", b"record 0\nrecord 1\nrecord 2\nrecord 3\n")
    assert event.thread == "mplog-fsync"
    assert not event.locked

    syncs.clear()
    log_to(handler, "record 4")
    clock.now += 2.0
    _wake(handler)
    assert syncs.synced.wait(WAIT)
    assert [e.contents for e in syncs.of("sync")] == [
        b"record 0\nrecord 1\nrecord 2\nrecord 3\nrecord 4\n"
    ]
    assert handler.errors_seen == []


def test_group_commit_syncs_what_is_left_at_close(
    tmp_path: Path, syncs: Recorder, clock: Any
) -> None:
    """close() syncs every record written since the last sync before it returns, and
    stops the background thread; a record after close() starts it again."""
    handler = _handler(syncs, tmp_path / "app.log", fsync=60)
    syncs.clear()
    log_to(handler, "one")
    log_to(handler, "two")
    handler.close()
    assert [(e.kind, e.name, e.contents) for e in syncs.events] == [
        ("sync", "app.log", b"one\ntwo\n")
    ]
    committer = handler._durability
    assert isinstance(committer, GroupCommit)
    assert committer._thread is None
    log_to(handler, "three")
    assert committer._thread is not None
    handler.close()
    assert syncs.of("sync")[-1].contents == b"one\ntwo\nthree\n"


def test_group_commit_syncs_a_file_closed_since(
    tmp_path: Path, syncs: Recorder, clock: Any
) -> None:
    """With keep_file_open=False the handler closes the file after each record; the
    background sync still reaches that file (once, whatever the number of records)."""
    handler = _handler(syncs, tmp_path / "app.log", fsync=1.0, keep_file_open=False)
    syncs.clear()
    for i in range(3):
        log_to(handler, f"r{i}")
    assert handler.stream is None
    clock.now += 1.0
    _wake(handler)
    assert syncs.synced.wait(WAIT)
    assert [(e.name, e.contents) for e in syncs.of("sync")] == [("app.log", b"r0\nr1\nr2\n")]


def test_group_commit_syncs_a_file_another_process_rotated(
    tmp_path: Path, syncs: Recorder, clock: Any
) -> None:
    """A file this handler wrote and another process renamed away (without syncing it)
    is still synced by this handler's background thread, under its new name."""
    rotation = {"maxBytes": 10**6, "backupCount": 2}  # the same in both (or a warning)
    handler = _handler(syncs, tmp_path / "app.log", fsync=1.0, watch_interval=0, **rotation)
    other = _handler(syncs, tmp_path / "app.log", **rotation)
    log_to(handler, "mine")
    other.doRollover()
    log_to(handler, "after")  # notices the rotation, reopens app.log
    syncs.clear()
    clock.now += 1.0
    _wake(handler)
    assert syncs.synced.wait(WAIT)
    handler.close()  # waits for the thread, which may still be syncing the second file
    assert sorted((e.name, e.contents) for e in syncs.of("sync")) == [
        ("app.log", b"after\n"),
        ("app.log.1", b"mine\n"),
    ]


def test_group_commit_failures_are_reported_once(
    tmp_path: Path, syncs: Recorder, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing background sync goes to handleError, once until a sync succeeds."""
    handler = _handler(syncs, tmp_path / "app.log", fsync=1.0)
    failed = threading.Event()

    def failing(fd: int) -> None:
        failed.set()
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    for _ in range(2):
        failed.clear()
        log_to(handler, "record")
        clock.now += 1.0
        _wake(handler)
        assert failed.wait(WAIT)
    handler.close()  # waits for the thread: both failures are handled
    assert [getattr(e, "errno", None) for e in handler.errors_seen] == [5]


# -- batched mode ----------------------------------------------------------------------------


def test_batched_mode_syncs_each_batch_before_flush_returns(
    tmp_path: Path, syncs: Recorder
) -> None:
    """batched=True, fsync=True: the writer thread syncs after each batch it writes, so
    when flush() returns every record is on disk; fewer syncs than records."""
    handler = _handler(syncs, tmp_path / "app.log", fsync=True, batched=True)
    syncs.clear()
    for i in range(500):
        log_to(handler, f"r{i}")
    handler.flush()
    expected = b"".join(f"r{i}\n".encode() for i in range(500))
    synced = syncs.of("sync")
    assert synced[-1].contents == expected
    assert 1 <= len(synced) < 500
    assert all(e.thread == "mplog-writer" and not e.locked for e in synced)
    contents = [e.contents for e in synced]
    assert all(expected.startswith(c) for c in contents)
    assert contents == sorted(contents, key=len)


# -- compression -----------------------------------------------------------------------------


@pytest.mark.parametrize("fsync", [False, True])
def test_archive_commit_order(tmp_path: Path, syncs: Recorder, fsync: bool) -> None:
    """The compressed file gets its name first; with fsync the directory is synced next
    (outside the writers' lock); then the original is renamed to a temporary name under
    the lock and removed after the lock is released."""
    handler = _handler(
        syncs,
        tmp_path / "app.log",
        maxBytes=30,
        backupCount=2,
        compress="gzip",
        compress_delay=0,
        fsync=fsync,
    )
    log_to(handler, "first record")
    log_to(handler, "second record")
    log_to(handler, "third record")  # rotates
    handler.close()  # waits for the compression
    syncs.events[:] = [e for e in syncs.events if e.thread == "mplog-compress"]
    commit = [
        (e.kind, e.name, e.locked)
        for e in syncs.events
        if e.kind in ("rename", "remove") or (e.kind == "dirsync")
    ]
    temp = [c for c in commit if c[0] == "rename" and c[1].endswith("app.log.1.gz")]
    assert len(temp) == 1
    start = commit.index(temp[0])
    steps = commit[start:]
    synced = [
        e.name
        for e in syncs.events[
            : syncs.events.index(
                next(e for e in syncs.events if e.kind == "rename" and e.name.endswith(".gz"))
            )
        ]
        if e.kind == "sync"
    ]
    assert [name[:15] for name in synced] == [".app.log.mplog-"]  # complete before named
    assert steps[0][2]  # the archive is named under the lock
    if fsync:
        assert steps[1] == ("dirsync", str(tmp_path), False)
        steps = [steps[0], *steps[2:]]
        dirsync = next(e for e in syncs.events if e.kind == "dirsync")
        assert {"app.log.1", "app.log.1.gz"} <= set(dirsync.contents)
    aside, removal = steps[1], steps[2]
    source, dest = aside[1].split(" -> ")
    assert (aside[0], source, aside[2]) == ("rename", "app.log.1", True)
    assert dest.startswith(".app.log.mplog-")
    assert dest.endswith(".tmp")
    assert removal == ("remove", dest, False)
    assert len(steps) == 3
    names = sorted(os.listdir(tmp_path))
    assert names == [".__app.lock", ".__app.open", "app.log", "app.log.1.gz"]
    assert handler.errors_seen == []
