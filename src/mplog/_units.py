"""Parsing of human-friendly sizes ("10 MB", "512KiB") and durations ("1 day").

User input is normalized once, at configuration time; a value that does not
parse raises ``ValueError`` quoting the value and the accepted forms.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Union

__all__ = ["parse_duration", "parse_size"]

SizeLike = Union[int, float, str]
DurationLike = Union[int, float, str, datetime.timedelta]

# SI prefixes are powers of 1000, IEC prefixes ("KiB") powers of 1024, as in
# the units that `ls -h --si`, loguru and most storage vendors use.
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "tib": 2**40,
}

_DURATION_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
}

_NUMBER_UNIT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")

_SIZE_FORMS = "a whole number of bytes or a string such as '10 MB', '512KiB', '1.5 GB'"
_DURATION_FORMS = "seconds, a datetime.timedelta, or a string such as '30 s', '15 min', '1 day'"


def parse_size(value: SizeLike, name: str = "size") -> int:
    """Return *value* as a whole number of bytes.

    Accepts non-negative ints (and floats with a whole value, such as ``1e7``),
    and strings made of a number and an optional unit: ``B``,
    ``KB``/``MB``/``GB``/``TB`` (powers of 1000) or ``KiB``/``MiB``/``GiB``/``TiB``
    (powers of 1024), case-insensitive.  The result must be a whole number of
    bytes (``"1.5 KB"`` is; ``10.5`` is refused, never rounded).

    :param value: the size to parse.
    :param name: the option name quoted in the error message.
    :raises ValueError: negative, fractional or unparsable input, naming the value.

    .. versionadded:: 0.1
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"{name}={value!r}: expected {_SIZE_FORMS}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{name}={value!r}: expected {_SIZE_FORMS}")
        if value < 0:
            raise ValueError(f"{name}={value!r}: must not be negative; expected {_SIZE_FORMS}")
        whole = value == int(value)
        size = int(value)
    else:
        match = _NUMBER_UNIT.fullmatch(value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _SIZE_UNITS:
            raise ValueError(f"{name}={value!r}: expected {_SIZE_FORMS}")
        # In integers, so that "1.1 MB" is exactly 1,100,000 bytes.
        integer, _, fraction = match.group(1).partition(".")
        scale = 10 ** len(fraction)
        size, rest = divmod(int(integer + fraction or "0") * _SIZE_UNITS[unit], scale)
        whole = rest == 0
    if not whole:  # never rounded silently: 10.5 bytes is a mistake
        raise ValueError(f"{name}={value!r} is not a whole number of bytes; expected {_SIZE_FORMS}")
    return size


def parse_duration(value: DurationLike, name: str = "duration") -> float:
    """Return *value* as a number of seconds.

    Accepts non-negative numbers (seconds), :class:`datetime.timedelta`, and
    strings such as ``"30 s"``, ``"15 min"``, ``"2 hours"``, ``"1 day"``,
    ``"1 week"`` (units may be plural).

    :raises ValueError: negative or unparsable input, naming the value.

    .. versionadded:: 0.1
    """
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"{name}={value!r}: expected {_DURATION_FORMS}")
    elif isinstance(value, str):
        match = _NUMBER_UNIT.fullmatch(value)
        unit = match.group(2).lower() if match else ""
        if unit.endswith("s") and unit[:-1] in _DURATION_UNITS:
            unit = unit[:-1]
        if match is None or unit not in _DURATION_UNITS:
            raise ValueError(f"{name}={value!r}: expected {_DURATION_FORMS}")
        seconds = float(match.group(1)) * _DURATION_UNITS[unit]
    else:
        seconds = float(value)
    if not seconds >= 0:
        raise ValueError(f"{name}={value!r}: must not be negative; expected {_DURATION_FORMS}")
    return seconds
