"""File modes and ownership of what mplog makes, and the errors when it may not: chmod=,
umask= and owner= for the active log, the lock file and every compressed backup (a
callable compressor's output too), the mode a compressed backup gets without them, and
what a directory this user cannot write makes mplog say.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mplog
from helpers import (
    BASE,
    LOCK,
    PRESENCE,
    RECORD,
    ReportingHandler,
    gzip2,
    info_record,
    record_numbers_in,
    record_text,
    size_named,
    write_records,
)
from mplog._compressors import Compressor


@pytest.fixture
def no_umask() -> Iterator[None]:
    """Run with umask 0, so that a file created wider than requested would show it."""
    saved = os.umask(0)
    try:
        yield
    finally:
        os.umask(saved)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _wide_gzip2(path: str) -> str:
    """A callable compressor that gives its output a wide mode (0o666): gzip2, then chmod."""
    out = gzip2(path)
    os.chmod(out, 0o666)
    return out


_wide_gzip2.suffix = ".gz2"  # type: ignore[attr-defined]


# -- modes -----------------------------------------------------------------------------------


def test_chmod_and_umask_set_exact_modes(tmp_path: Path) -> None:
    """chmod gives created files exactly that mode; umask gives 0o666 & ~umask."""
    old = os.umask(0o077)
    try:
        handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "a.log", chmod=0o640)
        handler.close()
        other = mplog.ConcurrentRotatingFileHandler(tmp_path / "b.log", umask=0o022)
        other.close()
    finally:
        os.umask(old)
    assert (tmp_path / "a.log").stat().st_mode & 0o7777 == 0o640
    assert (tmp_path / ".__a.lock").stat().st_mode & 0o7777 == 0o640
    assert (tmp_path / "b.log").stat().st_mode & 0o7777 == 0o644


@pytest.mark.usefixtures("no_umask")
@pytest.mark.parametrize(
    ("option", "mode"),
    [
        ({"chmod": 0o640}, 0o640),
        ({"umask": 0o027}, 0o640),
        ({"chmod": "0640"}, 0o640),
        ({"chmod": 0o400}, 0o400),
    ],
    ids=["chmod", "umask", "str", "read-only"],
)
def test_every_file_made_gets_the_requested_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: dict[str, Any], mode: int
) -> None:
    """chmod=0o640 (or umask=0o027): the active log, the lock file and every compressed
    backup are 0o640.  The temporary archive is created exclusively with a mode no wider
    than the requested one nor than 0o600, and has the requested mode while written."""
    created: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy_open(path: Any, flags: int, open_mode: int = 0o777, **kwargs: Any) -> int:
        if ".mplog-" in os.fspath(path):
            created.append((os.fspath(path), flags, open_mode))
        return real_open(path, flags, open_mode, **kwargs)

    modes_while_writing: list[int] = []
    real_compress_fd = Compressor.compress_fd

    def spy_compress_fd(self: Compressor, source: int, target: int, mtime: float) -> None:
        modes_while_writing.append(stat.S_IMODE(os.fstat(target).st_mode))
        real_compress_fd(self, source, target, mtime)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(Compressor, "compress_fd", spy_compress_fd)
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0, **option
    )
    try:
        write_records(handler, range(4))
    finally:
        handler.close()
    monkeypatch.undo()
    assert handler.reports == []
    files = size_named(tmp_path, ".gz")
    made = [*files, tmp_path / LOCK, tmp_path / PRESENCE]
    assert {path.name: _mode(path) for path in made} == {path.name: mode for path in made}
    temp_creations = [c for c in created if c[1] & os.O_CREAT]
    assert len(temp_creations) == 3
    for path, flags, created_mode in temp_creations:
        assert created_mode & ~mode == 0, f"{path}: created {created_mode:#o}, asked {mode:#o}"
        assert created_mode & ~0o600 == 0, f"{path}: created {created_mode:#o}"
        assert flags & os.O_EXCL, path
    assert modes_while_writing == [mode] * 3


@pytest.mark.usefixtures("no_umask")
def test_without_a_mode_option_a_compressed_backup_keeps_its_sources_mode(tmp_path: Path) -> None:
    """No chmod/umask: the .gz gets the mode of the file it compresses (0o604 here)."""
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
    )
    try:
        handler.emit(info_record(record_text(0)))
        os.chmod(tmp_path / BASE, 0o604)
        handler.emit(info_record(record_text(1)))  # rotates the 0o604 file to .1
        handler.emit(info_record(record_text(2)))  # rotates the new file (process default mode)
    finally:
        handler.close()
    assert _mode(tmp_path / f"{BASE}.2.gz") == 0o604
    assert _mode(tmp_path / f"{BASE}.1.gz") == 0o666  # the default, with umask 0
    assert record_numbers_in(size_named(tmp_path, ".gz")) == [[0], [1], [2]]


@pytest.mark.usefixtures("no_umask")
def test_a_callable_compressors_output_gets_the_requested_mode(tmp_path: Path) -> None:
    """chmod=0o640 applies to a callable's output too, whatever mode the callable gave it."""
    handler = ReportingHandler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=5,
        compress=_wide_gzip2,
        compress_delay=0,
        chmod=0o640,
    )
    try:
        write_records(handler, range(3))
    finally:
        handler.close()
    files = size_named(tmp_path, ".gz2")
    assert [_mode(path) for path in files] == [0o640] * 3
    assert record_numbers_in(files) == [[0], [1], [2]]


# -- owner -----------------------------------------------------------------------------------


def test_a_failed_chown_is_reported_once_and_logging_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """owner= that this process may not give: one report naming the owner and a path; every
    file is still made (lock, log, compressed backups) and every record written."""

    def refuse(fd: int, uid: int, gid: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refuse)
    monkeypatch.setattr(os, "chown", lambda *args, **kwargs: refuse(-1, 0, 0))
    owner = (os.getuid(), os.getgid())
    handler = ReportingHandler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=5,
        compress="gzip",
        compress_delay=0,
        owner=owner,
    )
    try:
        write_records(handler, range(5))
    finally:
        handler.close()
    assert len(handler.reports) == 1, handler.reports
    message, error = handler.reports[0]
    assert isinstance(error, PermissionError)
    assert "owner" in message
    assert str(owner) in message
    assert str(tmp_path) in message
    assert (tmp_path / LOCK).exists()
    assert record_numbers_in(size_named(tmp_path, ".gz")) == [[0], [1], [2], [3], [4]]


def test_with_owner_only_a_callables_output_gets_the_source_mode(
    tmp_path: Path, no_umask: None
) -> None:
    """owner= without chmod=: the compressed file still gets its source's mode, not the
    (wider) mode the function created it with."""
    handler = ReportingHandler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=3,
        compress=_wide_gzip2,
        compress_delay=0,
        owner=(os.getuid(), os.getgid()),
    )
    try:
        write_records(handler, [0])
        os.chmod(tmp_path / BASE, 0o640)
        write_records(handler, [1])
    finally:
        handler.close()
    assert handler.reports == []
    assert stat.S_IMODE((tmp_path / f"{BASE}.1.gz2").stat().st_mode) == 0o640


# -- a directory this user cannot write ------------------------------------------------------


def test_permission_errors_name_the_log_the_need_and_the_fix() -> None:
    """A log in a directory this user cannot write (the log itself is writable): the error
    names the log, says mplog creates its lock file there, and names both fixes; a
    missing parent that cannot be created is named as such; lock_file_directory= works.

    Runs in a subprocess without root privileges, which bypass permission bits."""
    directory = tempfile.mkdtemp(prefix="mplog-perm-")
    writable = tempfile.mkdtemp(prefix="mplog-perm-lock-")
    try:
        log = os.path.join(directory, "app.log")
        with open(log, "w", encoding="utf-8"):
            pass
        os.chmod(log, 0o666)
        os.chmod(directory, 0o555)  # readable and searchable, not writable
        os.chmod(writable, 0o777)
        result = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("permission_check.py")),
                directory,
                writable,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["uid"] != 0
        assert report["log_writable"]
        assert not report["dir_writable"]
        in_dir = report["in_dir"]
        assert in_dir["type"] == "PermissionError"
        assert in_dir["message"].startswith(f"[Errno 13] cannot log to {log}: Permission denied")
        assert (
            f"mplog needs to create its lock file (and rename files for rotation) in {directory}"
            in in_dir["message"]
        )
        assert f"write permission on {directory}" in in_dir["message"]
        assert "lock_file_directory=" in in_dir["message"]
        missing = report["missing_parent"]
        assert missing["type"] == "PermissionError"
        assert f"creating the directory {os.path.join(directory, 'sub')}:" in missing["message"]
        assert report["with_lock_dir"] == {"type": None, "message": ""}
    finally:
        os.chmod(directory, 0o755)
        shutil.rmtree(directory)
        shutil.rmtree(writable)
