"""Single-process behaviour of the handler: the write path, failures, the lock."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import inspect
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import mplog
from helpers import RecordingHandler, info_record
from mplog._lock import InterProcessLock
from mplog._options import Arguments
from mplog._schema import handler_options


def test_record_is_in_the_file_when_emit_returns(tmp_path: Path) -> None:
    """Sync mode writes to the kernel before emit returns: another reader sees it at once."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path)
    try:
        handler.emit(info_record("first"))
        assert path.read_text(encoding="utf-8") == "first\n"
        handler.emit(info_record("second é"))
        assert path.read_bytes() == "first\nsecond é\n".encode()
    finally:
        handler.close()


def test_lock_file_is_a_sidecar_named_like_concurrent_log_handler(tmp_path: Path) -> None:
    """The lock lives in .__<name>.lock next to the log, or in lock_file_directory."""
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log")
    handler.close()
    assert (tmp_path / ".__app.lock").exists()
    locks = tmp_path / "locks" / "nested"
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "b.txt", lock_file_directory=locks)
    handler.close()
    assert (locks / ".__b.txt.lock").exists()


def test_lock_timeout_sends_record_to_handle_error_and_recovers(tmp_path: Path) -> None:
    """A record that cannot get the lock in time goes to handleError; logging resumes after."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, lock_timeout=0.05)
    holder = InterProcessLock(str(tmp_path / ".__app.lock"))
    try:
        holder.acquire()
        handler.emit(info_record("blocked"))
        assert len(handler.errors_seen) == 1
        error = handler.errors_seen[0]
        assert isinstance(error, mplog.LockTimeout)
        assert ".__app.lock" in str(error)
        assert path.read_text(encoding="utf-8") == ""
        holder.release()
        handler.emit(info_record("after"))
        assert path.read_text(encoding="utf-8") == "after\n"
        assert len(handler.errors_seen) == 1
    finally:
        holder.close()
        handler.close()


def test_short_write_failure_leaves_no_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the disk fills mid-record, the partial bytes are cut off and the error is reported."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path)
    try:
        handler.emit(info_record("kept"))
        real_write = os.write
        calls = {"n": 0}

        def half_then_enospc(fd: int, data: Any) -> int:
            calls["n"] += 1
            if calls["n"] == 1:
                return real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", half_then_enospc)
        handler.emit(info_record("x" * 1000))
        monkeypatch.setattr(os, "write", real_write)
        assert [type(e) for e in handler.errors_seen] == [OSError]
        assert path.read_text(encoding="utf-8") == "kept\n"
        handler.emit(info_record("resumed"))
        assert path.read_text(encoding="utf-8") == "kept\nresumed\n"
    finally:
        handler.close()


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that the kernel accepts only in part is continued until the record is whole."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    try:
        handler.emit(info_record("a fairly long record " * 10))
    finally:
        monkeypatch.setattr(os, "write", real_write)
        handler.close()
    assert path.read_text(encoding="utf-8") == "a fairly long record " * 10 + "\n"


def test_deleted_or_renamed_file_is_recreated_at_the_configured_path(tmp_path: Path) -> None:
    """With watch_interval=0, the record after an outside rename or delete goes to the path."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, watch_interval=0)
    try:
        handler.emit(info_record("one"))
        path.rename(tmp_path / "app.log.old")
        handler.emit(info_record("two"))
        assert path.read_text(encoding="utf-8") == "two\n"
        path.unlink()
        handler.emit(info_record("three"))
        assert path.read_text(encoding="utf-8") == "three\n"
        assert (tmp_path / "app.log.old").read_text(encoding="utf-8") == "one\n"
    finally:
        handler.close()


def test_outside_rename_is_noticed_within_the_watch_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between path checks records follow the renamed file (not lost); after watch_interval
    they go to the configured path, and the other processes are told to reopen too."""
    path = tmp_path / "app.log"
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    handler = mplog.ConcurrentRotatingFileHandler(path, watch_interval=5)
    other = mplog.ConcurrentRotatingFileHandler(path, watch_interval=5)
    try:
        handler.emit(info_record("one"))
        other.emit(info_record("other one"))
        path.rename(tmp_path / "app.log.old")
        now[0] += 1
        handler.emit(info_record("two"))
        now[0] += 5
        handler.emit(info_record("three"))
        other.emit(info_record("other two"))  # told through the shared generation, no stat needed
    finally:
        handler.close()
        other.close()
    assert (tmp_path / "app.log.old").read_text() == "one\nother one\ntwo\n"
    assert path.read_text() == "three\nother two\n"


def test_a_clock_set_back_does_not_postpone_the_path_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the wall clock goes back by more than watch_interval, the path is checked at once."""
    path = tmp_path / "app.log"
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    handler = mplog.ConcurrentRotatingFileHandler(path, watch_interval=5)
    try:
        handler.emit(info_record("one"))
        path.rename(tmp_path / "app.log.old")
        now[0] -= 3600
        handler.emit(info_record("two"))
    finally:
        handler.close()
    assert path.read_text() == "two\n"


def test_truncated_file_is_appended_at_its_new_end(tmp_path: Path) -> None:
    """copytruncate-style truncation leaves no hole: O_APPEND writes at the new end."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path)
    try:
        handler.emit(info_record("before"))
        os.truncate(path, 0)
        handler.emit(info_record("after"))
        assert path.read_bytes() == b"after\n"
    finally:
        handler.close()


def test_unencodable_text_follows_the_errors_policy(tmp_path: Path) -> None:
    """errors/unicode_error_policy decide what happens to characters the encoding lacks."""
    strict = RecordingHandler(tmp_path / "strict.log", encoding="ascii")
    replaced = mplog.ConcurrentRotatingFileHandler(
        tmp_path / "replace.log", encoding="ascii", unicode_error_policy="replace"
    )
    try:
        strict.emit(info_record("café"))
        replaced.emit(info_record("café"))
        strict.emit(info_record("plain"))
    finally:
        strict.close()
        replaced.close()
    assert [type(e) for e in strict.errors_seen] == [UnicodeEncodeError]
    assert (tmp_path / "strict.log").read_text() == "plain\n"
    assert (tmp_path / "replace.log").read_text() == "caf?\n"


def test_newline_and_terminator(tmp_path: Path) -> None:
    """newline='\\r\\n' translates line ends; terminator replaces the record separator."""
    crlf = mplog.ConcurrentRotatingFileHandler(tmp_path / "a.log", newline="\r\n")
    custom = mplog.ConcurrentRotatingFileHandler(tmp_path / "b.log", newline="", terminator="|")
    try:
        crlf.emit(info_record("two\nlines"))
        custom.emit(info_record("x"))
        custom.emit(info_record("y"))
    finally:
        crlf.close()
        custom.close()
    assert (tmp_path / "a.log").read_bytes() == b"two\r\nlines\r\n"
    assert (tmp_path / "b.log").read_bytes() == b"x|y|"


def test_keep_file_open_false_closes_after_each_record(tmp_path: Path) -> None:
    """With keep_file_open=False no log descriptor stays open between records."""
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", keep_file_open=False)
    try:
        handler.emit(info_record("one"))
        assert handler.stream is None
        handler.emit(info_record("two"))
        assert handler.stream is None
    finally:
        handler.close()
    assert (tmp_path / "app.log").read_text() == "one\ntwo\n"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"maxBytes": -1}, "maxBytes=-1"),
        ({"maxBytes": "ten MB"}, "maxBytes='ten MB'"),
        ({"backupCount": -2}, "backupCount=-2"),
        ({"when": "fortnightly"}, "when='fortnightly'"),
        ({"when": "W7"}, "when='W7'"),
        ({"when": "D", "interval": 0}, "interval=0"),
        ({"mode": "r"}, "mode='r'"),
        ({"lock_timeout": -1}, "lock_timeout=-1"),
        ({"chmod": 0o640, "umask": 0o022}, "chmod=0o640"),
        ({"owner": ("no-such-user-xyz", "root")}, "no-such-user-xyz"),
        ({"newline": "x"}, "newline='x'"),
        ({"errors": "strict", "unicode_error_policy": "ignore"}, "disagree"),
    ],
)
def test_bad_configuration_fails_at_construction_naming_the_value(
    tmp_path: Path, kwargs: dict[str, Any], fragment: str
) -> None:
    """Bad arguments raise ValueError at construction, and the message names the value."""
    with pytest.raises(ValueError, match=r"expected|disagree|give only one|no such") as info:
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", **kwargs)
    assert fragment in str(info.value)
    assert not (tmp_path / "app.log").exists()


def test_unknown_encoding_fails_at_construction(tmp_path: Path) -> None:
    """An unknown encoding is reported when the handler is built, not at the first record."""
    with pytest.raises(LookupError, match="no-such-codec"):
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", encoding="no-such-codec")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"compress": "zip"}, "compress='zip'"),
        ({"compress": 3}, "compress=3"),
        ({"use_gzip": True, "compress": "xz"}, "use_gzip=True and compress='xz'"),
        ({"max_age": "soon", "maxBytes": 10, "backupCount": 1}, "max_age='soon'"),
        ({"max_age": 0, "maxBytes": 10, "backupCount": 1}, "max_age=0"),
        ({"max_total_size": "-1 MB", "maxBytes": 10, "backupCount": 1}, "max_total_size="),
        ({"max_age": "1 day", "maxBytes": 10}, "backupCount > 0"),
    ],
)
def test_bad_compression_and_retention_options_fail_at_construction(
    tmp_path: Path, options: dict[str, object], fragment: str
) -> None:
    """Compression and retention options are checked when the handler is built."""
    with pytest.raises(ValueError, match=re.escape(fragment)):
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", **options)  # type: ignore[arg-type]
    assert not (tmp_path / "app.log").exists()


def test_lock_timeout_pickles() -> None:
    """LockTimeout crosses process boundaries intact."""
    import pickle

    error = pickle.loads(pickle.dumps(mplog.LockTimeout("/x/.__a.lock", 2.5)))
    assert isinstance(error, mplog.LockTimeout)
    assert (error.path, error.timeout) == ("/x/.__a.lock", 2.5)
    assert "2.5" in str(error)


def test_handler_reopened_after_close_still_gets_its_own_lock_after_fork(tmp_path: Path) -> None:
    """gunicorn's reopen_files() (close(), then _open()) must not leave forked workers
    sharing the parent's lock descriptor, which would exclude nothing."""
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", lock_timeout=0.2)
    handler.close()
    handler.stream = handler._open()
    handler.emit(info_record("parent"))  # reopens the lock file in the parent
    with handler._lock:  # the parent holds the inter-process lock during the fork
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            errors: list[BaseException] = []
            handler.handleError = lambda record: errors.append(sys.exc_info()[1])  # type: ignore[method-assign,assignment,arg-type]
            handler.emit(info_record("child"))
            os._exit(0 if errors and isinstance(errors[0], mplog.LockTimeout) else 1)
        _, status = os.waitpid(pid, 0)
    handler.close()
    assert os.waitstatus_to_exitcode(status) == 0, "the child got the lock the parent held"
    assert (tmp_path / "app.log").read_text() == "parent\n"


def test_a_failure_episode_is_reported_once_not_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk is reported at its first record and summed up when writing works again."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path)
    real_write = os.write

    def disk_full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    try:
        handler.emit(info_record("before"))
        monkeypatch.setattr(os, "write", disk_full)
        for i in range(5):
            handler.emit(info_record(f"lost {i}"))
        assert [type(e) for e in handler.errors_seen] == [OSError]
        monkeypatch.setattr(os, "write", real_write)
        handler.emit(info_record("after"))
        handler.emit(info_record("again"))
    finally:
        monkeypatch.setattr(os, "write", real_write)
        handler.close()
    assert [type(e) for e in handler.errors_seen] == [OSError, mplog.MplogError]
    assert "4 more records" in str(handler.errors_seen[1])
    assert path.read_text() == "before\nafter\nagain\n"


def test_different_failures_are_each_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new kind of failure starts a new episode; bad records are always reported."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, encoding="ascii")
    calls = iter([errno.ENOSPC, errno.EIO])

    def failing(fd: int, data: Any) -> int:
        raise OSError(next(calls), "failure")

    try:
        monkeypatch.setattr(os, "write", failing)
        handler.emit(info_record("one"))
        handler.emit(info_record("two"))
        monkeypatch.undo()
        handler.emit(info_record("caf\u00e9"))
        handler.emit(info_record("caf\u00e9"))
    finally:
        monkeypatch.undo()
        handler.close()
    kinds = [(type(e), getattr(e, "errno", None)) for e in handler.errors_seen]
    assert kinds == [
        (OSError, errno.ENOSPC),
        (OSError, errno.EIO),
        (UnicodeEncodeError, None),
        (UnicodeEncodeError, None),
    ]


def test_a_symlink_planted_as_the_lock_file_is_refused(tmp_path: Path) -> None:
    """The lock file is opened with O_NOFOLLOW: a planted symlink fails loudly, and the
    file it points to is left alone."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / ".__app.lock").symlink_to(victim)
    with pytest.raises(OSError, match=r"\.__app\.lock"):
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log")
    assert victim.read_bytes() == b"precious"


def test_a_symlink_planted_as_a_rotation_target_is_replaced_not_followed(
    tmp_path: Path,
) -> None:
    """Rotation renames onto the backup name, replacing a planted symlink instead of
    writing through it."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "app.log.1").symlink_to(victim)
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", maxBytes=10, backupCount=1)
    try:
        handler.emit(info_record("0123456789"))
        handler.emit(info_record("0123456789"))
    finally:
        handler.close()
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "app.log.1").is_symlink()
    assert (tmp_path / "app.log.1").read_text() == "0123456789\n"


def test_the_handler_signature_and_the_arguments_list_name_the_same_options() -> None:
    """Every parameter of the handler is a field of options.Arguments, in the same order,
    and back, and the did-you-mean list of keywords is the same names: a new option
    cannot be half-wired (accepted but never parsed or pickled, or the reverse)."""
    parameters = list(inspect.signature(mplog.ConcurrentRotatingFileHandler).parameters)
    assert parameters == [field.name for field in dataclasses.fields(Arguments)]
    assert handler_options() == parameters
    timed = inspect.signature(mplog.ConcurrentTimedRotatingFileHandler).parameters
    assert set(timed) - {"options"} <= set(parameters)


@pytest.mark.parametrize("setting", ["maxBytes", "backupCount"])
def test_size_settings_changed_on_a_running_handler_apply_at_the_next_record(
    tmp_path: Path, setting: str
) -> None:
    """maxBytes or backupCount set while records flow (the stdlib's attributes) rules the
    very next record, however long the active file could otherwise skip its checks."""
    path = tmp_path / "app.log"
    # Size rotation off at first: maxBytes=0, or backupCount=0 (the stdlib's rule).
    first = {"maxBytes": 0, "backupCount": 1} if setting == "maxBytes" else {"maxBytes": 30}
    never = pytest.warns(UserWarning, match="never rotates")
    with never if setting == "backupCount" else contextlib.nullcontext():
        handler = mplog.ConcurrentRotatingFileHandler(path, watch_interval=3600, **first)
    try:
        for number in range(3):
            handler.emit(info_record(f"record {number} " + "x" * 10))  # 20 bytes each
        assert path.stat().st_size == 60
        setattr(handler, setting, 30 if setting == "maxBytes" else 1)
        handler.emit(info_record("record 3 " + "x" * 10))
    finally:
        handler.close()
    assert path.read_text() == "record 3 xxxxxxxxxx\n"
    assert (tmp_path / "app.log.1").stat().st_size == 60
