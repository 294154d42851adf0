"""One lock per lock file per process: every handler of one log shares it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import mplog
import mplog._active
from helpers import RecordingHandler, lock_is_held, make_record


def test_handlers_of_one_log_share_one_lock_descriptor(tmp_path: Path) -> None:
    """Two handlers of one log use one lock descriptor; closing one leaves it open for
    the other, which keeps writing; closing both closes it."""
    path = tmp_path / "app.log"
    first, second = RecordingHandler(path), RecordingHandler(path)
    other = RecordingHandler(tmp_path / "other.log")
    try:
        first.emit(make_record("one"))
        second.emit(make_record("two"))
        assert first._lock._fd is not None
        assert first._lock._fd == second._lock._fd
        assert other._lock._fd != first._lock._fd  # another log, another lock
        fd = first._lock._fd
        first.close()
        assert second._lock._fd == fd
        os.fstat(fd)  # still open
        second.emit(make_record("three"))
        second.close()
        assert second._lock._fd is None
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fd)
        first.emit(make_record("four"))  # a closed handler reopens, as before
    finally:
        first.close()
        second.close()
        other.close()
    assert path.read_text() == "one\ntwo\nthree\nfour\n"
    assert first.errors_seen == second.errors_seen == []


@pytest.mark.timeout(30)
def test_a_second_handler_inside_the_first_reports_instead_of_waiting(tmp_path: Path) -> None:
    """While this thread writes through one handler, a record for another handler of
    the same log (a signal handler, a __del__) goes to handleError: waiting could wait
    for this very thread."""
    path = tmp_path / "app.log"
    first, second = RecordingHandler(path), RecordingHandler(path)
    real_write = first._file.write

    def write_and_log(shared: mplog._lock.SharedState, data: bytes, size: int) -> None:
        second.handle(make_record("nested"))
        real_write(shared, data, size)

    first._file.write = write_and_log  # type: ignore[method-assign]
    first._file.fast_until = 0.0
    try:
        first.emit(make_record("outer"))
        first._file.write = real_write  # type: ignore[method-assign]
        second.emit(make_record("after"))
    finally:
        first.close()
        second.close()
    assert path.read_text() == "outer\nafter\n"
    assert [type(e) for e in second.errors_seen] == [mplog.ReentrantLogging]


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_gets_its_own_shared_lock(tmp_path: Path) -> None:
    """A child forked while its parent holds the shared lock gets a lock of its own,
    shared by its handlers of the log: it writes through both, and only once the
    parent has let go (an inherited description would not have excluded it)."""
    path = tmp_path / "app.log"
    first, second = RecordingHandler(path), RecordingHandler(path)
    try:
        first.emit(make_record("parent"))
        released_read, released_write = os.pipe()
        first._lock.acquire()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                first.emit(make_record("child one"))
                second.emit(make_record("child two"))
                shared = first._lock._fd is not None and first._lock._fd == second._lock._fd
                os.set_blocking(released_read, False)
                after_release = os.read(released_read, 1) == b"x"
                errors = first.errors_seen + second.errors_seen
                code = 0 if shared and after_release and not errors else 2
            finally:
                os._exit(code)
        time.sleep(0.3)  # time enough for a child that is not excluded to write
        os.write(released_write, b"x")
        first._lock.release()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        second.emit(make_record("parent again"))
        os.close(released_read)
        os.close(released_write)
    finally:
        first.close()
        second.close()
    assert path.read_text() == "parent\nchild one\nchild two\nparent again\n"
    assert not lock_is_held(tmp_path / ".__app.lock")


def test_a_failed_construction_leaves_the_shared_descriptor_to_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second handler of a log whose construction fails lets go of its share of the
    lock, not of the descriptor the first handler uses."""
    path = tmp_path / "app.log"
    first = RecordingHandler(path)
    try:
        first.emit(make_record("one"))
        fd = first._lock._fd
        assert fd is not None

        def fail(self: object) -> None:
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(mplog._active.ActiveFile, "open", fail)
        with pytest.raises(PermissionError):
            RecordingHandler(path)
        monkeypatch.undo()
        assert first._lock._fd == fd
        os.fstat(fd)  # still open
        first.emit(make_record("two"))
    finally:
        first.close()
    assert path.read_text() == "one\ntwo\n"
    assert first.errors_seen == []
