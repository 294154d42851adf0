"""How mplog tells about its own trouble: through the handler's ``handleError``.

Logging must never raise into the application, and a failure that repeats (a
full disk, an unwritable directory, a lock held for ever) must not flood
standard error once per record.  One :class:`Reporter` per handler is shared by
every part that can fail: the write path, the batched writer, rotation and
retention, the compressor thread and the group-commit thread.  Its rules:

* **Lost records** (:meth:`Reporter.lost`): the first failure of an episode is
  reported with the record that failed; the records lost to the same error after
  it are counted, and the first write that succeeds again reports the count
  (:meth:`Reporter.write_succeeded`), or ``close()`` does if none succeeded
  (:meth:`Reporter.closing`).
* **Background failures** (:meth:`Reporter.once`): reported once per *topic*
  (and per kind of error within it) until that topic works again
  (:meth:`Reporter.recovered`).
* **Findings** (:meth:`Reporter.notify`): something mplog found and mended (a
  damaged lock file, a rotation that works again), reported as it happens.

Every report is a :class:`logging.LogRecord` named ``mplog`` passed to
``handleError`` while the error is being handled, so ``logging.raiseExceptions``
and an overridden ``handleError`` decide what becomes of it, as for any handler.
The handler's own ``handleError`` prints such a report as one line on standard
error (:func:`print_report`; the traceback too with ``debug=True``), where the
stdlib's prints ``--- Logging error ---`` and a traceback that buries the
explanation; a record of the application that could not be written is printed
as the stdlib does.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Hashable
from typing import Callable

from .exceptions import MplogError

__all__ = ["Reporter", "mplog_record", "print_report", "report_line"]


def mplog_record(msg: str, *args: object) -> logging.LogRecord:
    """A record describing mplog's own trouble, for :meth:`logging.Handler.handleError`
    (marked with the attribute ``mplog_report``)."""
    return logging.makeLogRecord(
        {
            "name": "mplog",
            "levelno": logging.ERROR,
            "levelname": "ERROR",
            "msg": msg,
            "args": args,
            "mplog_report": True,
        }
    )


def report_line(record: logging.LogRecord) -> str:
    """The one line that says what an mplog report (see :func:`mplog_record`) is about,
    with the error being handled when the message does not already say it.

    .. versionadded:: 0.1
    """
    text = record.getMessage()
    if text.startswith("mplog: "):  # Reporter.notify's, said once is enough
        text = text[len("mplog: ") :]
    error = sys.exc_info()[1]
    if error is not None and str(error) and str(error) not in text:
        text = f"{text}: {error}"
    return f"mplog warning: {text}"


def print_report(record: logging.LogRecord, debug: bool = False) -> bool:
    """Print *record* as one line on standard error if it is an mplog report, as
    :meth:`logging.Handler.handleError` would print it (only while
    ``logging.raiseExceptions`` is true, never raising); with *debug*, the
    traceback of the error being handled first.  Return whether it was one.

    .. versionadded:: 0.1
    """
    if not getattr(record, "mplog_report", False):
        return False
    stream = sys.stderr
    if logging.raiseExceptions and stream:
        try:
            if debug and sys.exc_info()[0] is not None:
                traceback.print_exc(file=stream)
            stream.write(report_line(record) + "\n")
            stream.flush()
        except Exception:  # as handleError: stderr closed, a broken message
            pass
    return True


class Reporter:
    """The failure reports of one handler (see the module docstring).

    :param handle_error: the handler's ``handleError`` (looked up at each call, so
        that an override set on the instance is honoured).
    :param path: the log file, named in the reports.

    .. versionadded:: 0.1
    """

    __slots__ = ("_failing", "_handle_error", "episode", "path")

    def __init__(self, handle_error: Callable[[logging.LogRecord], None], path: str) -> None:
        self._handle_error = handle_error
        self.path = path
        #: The write failure being counted, as ``[kind, records lost since reported]``,
        #: or None; the hot path tests it after each successful write.
        self.episode: list[object] | None = None
        self._failing: dict[Hashable, set[Hashable]] = {}

    def report(self, message: str, error: BaseException) -> None:
        """Report *error* now (called inside its ``except``)."""
        self._handle_error(mplog_record("%s: %s", message, error))

    def notify(self, message: str) -> None:
        """Report something mplog found and mended."""
        try:
            raise MplogError(message)
        except MplogError as error:
            self.report("mplog", error)

    # -- once per topic -----------------------------------------------------------------

    def first(self, topic: Hashable, key: Hashable = None) -> bool:
        """Mark *topic* failing (with an error of kind *key*); True if it was not yet."""
        keys = self._failing.setdefault(topic, set())
        if key in keys:
            return False
        keys.add(key)
        return True

    def once(
        self, topic: Hashable, message: str, error: BaseException, by_kind: bool = False
    ) -> None:
        """Report *error* unless *topic* already failed (with the same kind of error, if
        *by_kind*) since it last recovered; called inside the ``except``."""
        key = (type(error), getattr(error, "errno", None)) if by_kind else None
        if self.first(topic, key):
            self.report(message, error)

    def recovered(self, topic: Hashable) -> bool:
        """*topic* works again; return whether it was failing."""
        return self._failing.pop(topic, None) is not None

    # -- records lost to a failing write ------------------------------------------------

    def lost(self, error: BaseException, count: int) -> bool:
        """*count* records could not be written because of *error*.  Return True if
        that continues the episode already reported (they are counted), False if the
        caller must report it (a new episode starts; bad records are always
        reported, one by one)."""
        if not isinstance(error, OSError):
            return False
        kind = (type(error), error.errno)
        episode = self.episode
        if episode is not None and episode[0] == kind:
            episode[1] += count  # type: ignore[operator]
            return True
        self.episode = [kind, 0]
        return False

    def write_succeeded(self) -> None:
        """A write worked again: end the episode, reporting what it cost after the
        failure reported first."""
        self._end_episode("recovered", "recovered from a write failure")

    def closing(self) -> None:
        """The handler closes: end the episode, reporting what it cost so far (no
        write may ever succeed again to report it)."""
        self._end_episode("closed while failing", "closed during a write failure")

    def _end_episode(self, how: str, summary: str) -> None:
        episode, self.episode = self.episode, None
        if episode is not None and episode[1]:
            try:
                raise MplogError(
                    f"logging to {self.path} {how}; {episode[1]} more records could "
                    "not be written after the error reported before"
                )
            except MplogError:
                self._handle_error(mplog_record("%s", summary))

    def after_fork_in_child(self) -> None:
        """A forked child starts with nothing reported: its failures are its own."""
        self.episode = None
        self._failing = {}
