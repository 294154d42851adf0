"""Handlers that only ``mplog bench`` uses, as floor, peer or listener of its contenders.

* :class:`FormatOnlyHandler`: formats and encodes each record like a file handler,
  then drops it: the cost of a logging call without any writing, the ceiling no
  handler that writes can reach.
* :class:`SyncedFileHandler`: the stdlib's ``FileHandler`` that syncs the file after
  every record, the honest peer of mplog's ``fsync=True``.
* :class:`StampedFileHandler`: a ``FileHandler`` that remembers when it wrote its
  last record (the queue listener's end of run).
"""

from __future__ import annotations

import logging
import os
import time

__all__ = ["FormatOnlyHandler", "StampedFileHandler", "SyncedFileHandler"]

_sync = getattr(os, "fdatasync", os.fsync)  # what mplog's fsync=True calls


class FormatOnlyHandler(logging.Handler):
    """Formats and encodes every record, as a file handler would, and writes nothing."""

    terminator = "\n"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            (self.format(record) + self.terminator).encode("utf-8")
        except Exception:
            self.handleError(record)


class SyncedFileHandler(logging.FileHandler):
    """A ``FileHandler`` that syncs the file to disk after each record, before returning
    (``fdatasync``, or ``fsync`` where there is none: what mplog's ``fsync=True`` does)."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)  # writes and flushes, or reports through handleError
        try:
            if self.stream is not None:
                _sync(self.stream.fileno())
        except Exception:
            self.handleError(record)


class StampedFileHandler(logging.FileHandler):
    """A FileHandler that remembers when it wrote its last record."""

    last = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.last = time.perf_counter()
