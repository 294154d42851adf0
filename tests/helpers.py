"""Helpers shared by the test modules (the fixtures are in conftest.py).

Test modules import what they need from here by name; no test module imports another.
"""

from __future__ import annotations

import calendar
import logging
import sys
from typing import Any

import mplog

# -- time ------------------------------------------------------------------------------------

T0 = calendar.timegm((2024, 1, 10, 13, 37, 11))  # a Wednesday, in UTC: the clock's start
DAY, HOUR = 24 * 60 * 60, 60 * 60


class Clock:
    """A frozen ``time.time`` that tests move by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


# -- records and handlers --------------------------------------------------------------------


def make_record(msg: str) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": msg})


def info_record(msg: str) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": msg, "levelno": logging.INFO, "levelname": "INFO"})


def log_to(handler: logging.Handler, message: str) -> None:
    handler.handle(logging.makeLogRecord({"msg": message, "levelno": logging.INFO}))


class RecordingHandler(mplog.ConcurrentRotatingFileHandler):
    """Collects the exceptions passed to handleError instead of printing them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors_seen: list[BaseException] = []

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        assert error is not None
        self.errors_seen.append(error)
