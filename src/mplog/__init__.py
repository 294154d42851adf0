"""mplog: multi-process safe rotating file logging for the standard library.

Importing mplog changes nothing in :mod:`logging`, and costs almost nothing: the
names below are imported at their first use (:pep:`562`), so an application that
imports mplog but configures logging later, or not at all, does not pay for the
handler's modules (nor :mod:`importlib.metadata`, for ``__version__``).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: importing typing would double the cost of importing mplog
if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from typing import Any

    from ._config import DEFAULT_FORMAT, setup_logging, worker_initializer
    from ._handler import ConcurrentRotatingFileHandler, ConcurrentTimedRotatingFileHandler
    from ._units import parse_duration, parse_size
    from .exceptions import (
        LockFileConflict,
        LockTimeout,
        MplogError,
        QueueFull,
        ReentrantLogging,
    )

    __version__: str

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

# Where each public name lives.
_MODULES = {
    "DEFAULT_FORMAT": "_config",
    "setup_logging": "_config",
    "worker_initializer": "_config",
    "LockFileConflict": "exceptions",
    "LockTimeout": "exceptions",
    "MplogError": "exceptions",
    "QueueFull": "exceptions",
    "ReentrantLogging": "exceptions",
    "ConcurrentRotatingFileHandler": "_handler",
    "ConcurrentTimedRotatingFileHandler": "_handler",
    "parse_duration": "_units",
    "parse_size": "_units",
}


def __getattr__(name: str) -> Any:
    """Import a public name at its first use, then keep it in the module."""
    if name == "__version__":
        value: Any = _version()
    elif name in _MODULES:
        value = getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})


def _version() -> str:
    import importlib.metadata

    try:
        # One source of truth: the version in pyproject.toml, as installed.
        return importlib.metadata.version("mplog")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a bare source tree
        return "0+unknown"
