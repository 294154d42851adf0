"""The ``header=`` option: a line that starts every new file of the log.

Log shippers (Vector, the OpenTelemetry Collector's filelog receiver, Fluent Bit)
recognize a file by a fingerprint of its first bytes, so files that start alike
(the same first record format, the same timestamp second) are taken for one
another and skipped or read twice.  A first line that differs from file to file
(``{id}``) gives each one its own fingerprint.  It is written by the process that
writes the file's first record, under the lock, before that record (see
PROTOCOL.md, *The writer's steps*).
"""

from __future__ import annotations

import datetime
import os
import secrets
import socket
from typing import Callable, Union

__all__ = ["HeaderLike", "parse_header"]

#: What ``header=`` accepts: a format string, or a function returning the line.
HeaderLike = Union[str, Callable[[], str], None]

_FIELDS = "{id}, {host}, {pid}, {time}"


def _fields() -> dict[str, object]:
    return {
        "id": secrets.token_hex(8),  # 64 random bits: unique per file
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }


def parse_header(value: HeaderLike) -> Callable[[], str] | None:
    """Return the function that makes a new file's first line (without its line end),
    or None for no header line.

    A string is a :meth:`str.format` template with the fields ``{id}`` (16 random hex
    digits, new for every file), ``{host}``, ``{pid}`` (of the process that starts
    the file) and ``{time}`` (when it did, ISO 8601 in UTC); a callable is called with
    no arguments for every new file and returns the line.

    :raises ValueError: a template naming another field, or badly formed, naming it.
    :raises TypeError: neither a string, a callable nor None.

    .. versionadded:: 0.1
    """
    if value is None:
        return None
    if callable(value):
        return value
    if not isinstance(value, str):
        raise TypeError(f"header={value!r}: expected a format string, a function or None")
    template = value
    try:
        template.format(**_fields())
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"header={value!r}: {error!s} is not a field it may use; the fields are "
            f"{_FIELDS} (double a brace to write one: '{{{{')"
        ) from None
    return lambda: template.format(**_fields())
