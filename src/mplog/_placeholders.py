"""Placeholders in log file names: one configuration for every host.

The recommended multi-host layout is one log per host plus a log shipper, so
``filename="logs/{hostname}.log"`` (also in YAML and dictConfig) becomes
``logs/web-1.log`` on host ``web-1``.  Only the names below are replaced, once,
when the handler is built; any other brace (``logs/{a}.log``, ``{{x}}``) is
part of the name as written.
"""

from __future__ import annotations

import socket
from typing import Callable

__all__ = ["PLACEHOLDERS", "expand_placeholders"]

#: The placeholders and what replaces them.  No ``{pid}``: mplog exists so that
#: every process shares one file, and a file per process would be rotated alone.
PLACEHOLDERS: dict[str, Callable[[], str]] = {
    "{hostname}": socket.gethostname,
}


def expand_placeholders(path: str) -> str:
    """Return *path* with every known placeholder (``{hostname}``) replaced.

    :raises ValueError: a placeholder's value cannot be part of a file name
        (empty, or containing a path separator or NUL).

    .. versionadded:: 0.1
    """
    for placeholder, value_of in PLACEHOLDERS.items():
        if placeholder in path:
            value = value_of()
            if not value or "/" in value or "\\" in value or "\0" in value:
                raise ValueError(
                    f"filename={path!r}: {placeholder} is {value!r}, which cannot be "
                    "part of a file name"
                )
            path = path.replace(placeholder, value)
    return path
