"""Encodings with a byte-order mark (``utf-8-sig``, ``utf-16``, ``utf-32``) mark each
file once, at its start, as the stdlib's FileHandler does: whichever process writes a
file's first record writes the mark, and every other record goes without one."""

from __future__ import annotations

import codecs
import errno
import logging
import multiprocessing
import os
import sys
from pathlib import Path

import pytest

import mplog

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork")

_MARKS = {"utf-8-sig": codecs.BOM_UTF8, "utf-16": codecs.BOM_UTF16, "utf-32": codecs.BOM_UTF32}


def _message(worker: int, seq: int) -> str:
    return f"{worker} {seq} h\u00e9llo \u2713 \U0001f642"


def _writer(path: str, encoding: str, batched: bool, worker: int, count: int) -> None:
    handler = mplog.ConcurrentRotatingFileHandler(
        path, maxBytes=3000, backupCount=1000, encoding=encoding, batched=batched
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    for seq in range(count):
        handler.handle(logging.makeLogRecord({"msg": _message(worker, seq)}))
    handler.close()


def _read_lines(path: Path, encoding: str) -> list[str]:
    """The lines of *path*, which must start with the encoding's mark and hold no other."""
    data = path.read_bytes()
    assert data.startswith(_MARKS[encoding]), f"{path.name} does not start with the mark"
    text = data.decode(encoding)  # the codec takes the mark off
    assert "\ufeff" not in text, f"a mark inside {path.name}"
    return text.splitlines()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batched", [False, True], ids=["sync", "batched"])
@pytest.mark.parametrize("encoding", sorted(_MARKS))
def test_every_file_gets_one_mark_whoever_writes_it(
    tmp_path: Path, encoding: str, batched: bool
) -> None:
    """Three processes log 300 records each, rotating every 3000 bytes: every file, the
    active one and each backup, starts with exactly one byte-order mark and holds no
    other, decodes with the encoding given, and every record is there once."""
    path = tmp_path / "app.log"
    ctx = multiprocessing.get_context("fork")
    processes = [
        ctx.Process(target=_writer, args=(str(path), encoding, batched, worker, 300))
        for worker in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    files = [p for p in tmp_path.iterdir() if p.name.startswith("app.log")]
    assert len(files) > 5, "the test means to rotate"
    lines = []
    for file in files:
        lines += _read_lines(file, encoding)
    expected = [_message(worker, seq) for worker in range(3) for seq in range(300)]
    assert sorted(lines) == sorted(expected)


@pytest.mark.parametrize("encoding", sorted(_MARKS))
def test_a_file_appended_to_or_rotated_by_hand_is_marked_once(
    tmp_path: Path, encoding: str
) -> None:
    """A second handler appending to a marked file adds no mark; after ``doRollover()``
    the new file's first record is marked, and the backup keeps its one mark."""
    path = tmp_path / "app.log"
    for message in ("one", "two"):  # two handlers, one after the other
        handler = mplog.ConcurrentRotatingFileHandler(path, encoding=encoding, backupCount=1)
        handler.emit(logging.makeLogRecord({"msg": message}))
        handler.close()
    handler = mplog.ConcurrentRotatingFileHandler(path, encoding=encoding, backupCount=1)
    try:
        handler.emit(logging.makeLogRecord({"msg": "three"}))
        handler.doRollover()
        handler.emit(logging.makeLogRecord({"msg": "four"}))
        handler.emit(logging.makeLogRecord({"msg": "five"}))
    finally:
        handler.close()
    assert _read_lines(tmp_path / "app.log.1", encoding) == ["one", "two", "three"]
    assert _read_lines(path, encoding) == ["four", "five"]
    assert handler.encoding == encoding


def _prefixing_codec(name: str) -> codecs.CodecInfo | None:
    """A codec that, like utf-16, starts everything it encodes with a mark, but one
    mplog does not know the twin of."""
    if name != "test_prefixed":
        return None

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return b"##" + text.encode("utf-8", errors), len(text)

    def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
        return bytes(data).decode("utf-8", errors), len(data)

    return codecs.CodecInfo(encode, decode, name="test-prefixed")


def test_an_encoding_that_marks_every_text_is_refused(tmp_path: Path) -> None:
    """An encoding that prefixes every text it encodes, and has no known twin without
    the prefix, is refused at construction with an error naming it and an alternative;
    so is a codec that is not a text encoding."""
    codecs.register(_prefixing_codec)
    try:
        with pytest.raises(ValueError, match=r"encoding='test_prefixed'.*'utf-16-le'"):
            mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", encoding="test_prefixed")
    finally:
        if hasattr(codecs, "unregister"):  # Python 3.10+
            codecs.unregister(_prefixing_codec)
    with pytest.raises(LookupError, match=r"encoding='rot13'"):
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", encoding="rot13")


class _Noting(mplog.ConcurrentRotatingFileHandler):
    errors_seen: list[BaseException]

    def handleError(self, record: logging.LogRecord) -> None:
        self.errors_seen.append(sys.exc_info()[1])  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding", sorted(_MARKS))
def test_when_the_first_write_fails_the_next_record_marks_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    """The first write into a file fails (a full disk): that record is reported, and the
    next one, now the file's first, carries the mark."""
    path = tmp_path / "app.log"
    handler = _Noting(path, encoding=encoding)
    handler.errors_seen = []
    real_write = os.write
    failures = [OSError(errno.ENOSPC, "No space left on device")]

    def full_once(fd: int, data: bytes) -> int:
        if fd == handler._fd and failures:
            raise failures.pop()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_once)
    try:
        handler.emit(logging.makeLogRecord({"msg": "lost"}))
        handler.emit(logging.makeLogRecord({"msg": "one"}))
        handler.emit(logging.makeLogRecord({"msg": "two"}))
    finally:
        handler.close()
    assert [type(error) for error in handler.errors_seen] == [OSError]
    assert _read_lines(path, encoding) == ["one", "two"]
