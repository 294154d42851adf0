"""mplog: multi-process safe rotating file logging for the standard library.

Importing mplog changes nothing in :mod:`logging`.
"""

from __future__ import annotations

import importlib.metadata

from .config import DEFAULT_FORMAT, setup_logging, worker_initializer
from .exceptions import LockFileConflict, LockTimeout, MplogError, QueueFull, ReentrantLogging
from .handler import ConcurrentRotatingFileHandler, ConcurrentTimedRotatingFileHandler
from .units import parse_duration, parse_size

__all__ = [
    "DEFAULT_FORMAT",
    "ConcurrentRotatingFileHandler",
    "ConcurrentTimedRotatingFileHandler",
    "LockFileConflict",
    "LockTimeout",
    "MplogError",
    "QueueFull",
    "ReentrantLogging",
    "parse_duration",
    "parse_size",
    "setup_logging",
    "worker_initializer",
]

try:
    # One source of truth: the version in pyproject.toml, as installed.
    __version__ = importlib.metadata.version("mplog")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a bare source tree
    __version__ = "0+unknown"
