"""The handler classes' home in earlier versions, kept for configurations that name it.

``class: mplog.handler.ConcurrentRotatingFileHandler`` in a dictConfig, YAML or
fileConfig file still works.  New code imports the classes from :mod:`mplog`; every
other name that lived here is internal (README, *Public API*).
"""

from __future__ import annotations

from ._handler import ConcurrentRotatingFileHandler, ConcurrentTimedRotatingFileHandler

__all__ = ["ConcurrentRotatingFileHandler", "ConcurrentTimedRotatingFileHandler"]
