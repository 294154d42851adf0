"""The stdlib's surface of a handler: the attributes and methods that
:class:`logging.handlers.RotatingFileHandler` and
:class:`~logging.handlers.TimedRotatingFileHandler` users read and set.

``stream``, ``maxBytes``, ``backupCount``, ``rolloverAt``, ``suffix``,
``extMatch``, ``shouldRollover()``, ``getFilesToDelete()`` and ``handleError()``
keep their stdlib meaning on top of mplog's parts: the active file
(:mod:`mplog._active`) and the rotation policy (:mod:`mplog._rollover`), which owns
the size settings.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import time

from ._handler_parts import HandlerParts
from ._options import parse_backup_count
from ._reporting import print_report
from ._units import SizeLike, parse_size

__all__ = ["StdlibSurface"]


class StdlibSurface(HandlerParts):
    """The stdlib-compatible attributes of :class:`mplog.ConcurrentRotatingFileHandler`."""

    @property  # type: ignore[override]
    def stream(self) -> io.FileIO | None:
        """The active file, open for appending (bytes, unbuffered), or None."""
        return self._file.stream

    @stream.setter
    def stream(self, value: io.FileIO | None) -> None:
        # FileHandler sets None, servers that reopen their logs set what _open()
        # returned: the active file holds it, or holds a newer one already (a reopen
        # that interrupted that _open(), deferred, ran before it returned; another
        # thread noticed a rotation): setting it changes nothing, and never raises.
        if value is not None and value not in self._file.streams:
            raise ValueError(
                f"{type(self).__name__} writes through its own descriptor; to reopen "
                "the log, call close() and then _open()"
            )

    @property
    def _fd(self) -> int | None:
        return self._file.fd

    @property
    def keep_file_open(self) -> bool:
        """``False`` closes the log file after every record."""
        return self._file.keep_open

    @keep_file_open.setter
    def keep_file_open(self, value: bool) -> None:
        self._file.keep_open = value

    @property
    def watch_interval(self) -> float:
        """Seconds between two checks of the path by this process."""
        return self._file.watch_interval

    @watch_interval.setter
    def watch_interval(self, value: float) -> None:
        self._file.watch_interval = value

    @property
    def rolloverAt(self) -> float:
        """The next time-rotation instant this process knows of (stdlib name)."""
        trigger = self._rollover.trigger
        return trigger.rollover_at if trigger is not None else 0.0

    @rolloverAt.setter
    def rolloverAt(self, value: float) -> None:
        trigger = self._rollover.trigger
        if trigger is not None:
            trigger.rollover_at = value
            self._file.disarm()

    @property
    def suffix(self) -> str | None:
        """The ``strftime`` format of time-named backups' suffix (stdlib name); None
        without *when*."""
        return None if self._schedule is None else self._schedule.suffix

    @suffix.setter
    def suffix(self, value: str | None) -> None:
        if value != self.suffix:
            raise ValueError(_fixed_naming("suffix", value, self.suffix))

    @property
    def extMatch(self) -> re.Pattern[str] | None:
        """The pattern that finds the suffix in backup names (stdlib name)."""
        return None if self._schedule is None else self._schedule.suffix_pattern

    @extMatch.setter
    def extMatch(self, value: re.Pattern[str] | None) -> None:
        if value != self.extMatch:
            raise ValueError(_fixed_naming("extMatch", value, self.extMatch))

    # maxBytes and backupCount are the rollover's (mplog._rollover.SizeLimit); a
    # change sends the next record through it, past the active file's fast path.

    @property
    def maxBytes(self) -> int:
        """Rotate before a record would make the file larger than this; 0: never by size."""
        return self._rollover.limit.max_bytes

    @maxBytes.setter
    def maxBytes(self, value: SizeLike) -> None:
        self._rollover.limit.max_bytes = parse_size(value, "maxBytes")
        self._file.disarm()

    @property
    def backupCount(self) -> int:
        """How many rotated files to keep."""
        return self._rollover.limit.backup_count

    @backupCount.setter
    def backupCount(self, value: int) -> None:
        self._rollover.limit.backup_count = parse_backup_count(value)
        self._file.disarm()

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        """Return True if writing *record* now would trigger a rotation.

        Advisory (stdlib-compatible); :meth:`emit` decides again under the lock.
        """
        try:
            st = os.stat(self.baseFilename)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode):  # bpo-45401: never roll over a device or pipe
            return False
        if self.rolloverAt and time.time() >= self.rolloverAt and st.st_size:
            return True
        if not self.maxBytes or not st.st_size:  # gh-116263: never roll over an empty file
            return False
        # Like the stdlib, report a full file even when backupCount=0 makes the
        # rollover a no-op (emit then keeps appending, see SizeLimit.size).
        return st.st_size + len(self._encode(record)) > self.maxBytes

    def getFilesToDelete(self) -> list[str]:
        """Return the backups that retention deletes at the next rotation, oldest first:
        time-named ones beyond *backupCount*, and any beyond *max_age* or
        *max_total_size* (compressed forms included)."""
        return [path for backup in self._backups.expired() for path in backup.paths]

    def handleError(self, record: logging.LogRecord) -> None:
        """Report a failure: mplog's own reports (a rotation that cannot happen, a
        repaired lock file, failing retention or compression...) as one line on
        standard error, with the traceback only when *debug* is on; a record that
        could not be written as :meth:`logging.Handler.handleError` does.  Both only
        while ``logging.raiseExceptions`` is true (see :mod:`mplog._reporting`)."""
        if not print_report(record, self.debug):
            super().handleError(record)


def _fixed_naming(name: str, value: object, current: object) -> str:
    return (
        f"{name}={value!r}: mplog derives backup names from when= ({current!r} here), "
        "the same in every process, so that each one finds the others' backups; "
        "to name backups differently, set namer= (it gets the default name and "
        "returns yours)"
    )
