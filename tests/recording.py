"""A handler that keeps what goes to handleError, for tests of failure reporting."""

from __future__ import annotations

import logging
import sys
from typing import Any

import mplog


class RecordingHandler(mplog.ConcurrentRotatingFileHandler):
    """Collects the exceptions passed to handleError instead of printing them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors_seen: list[BaseException] = []

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        assert error is not None
        self.errors_seen.append(error)
