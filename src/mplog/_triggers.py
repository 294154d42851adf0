"""When to rotate: the time schedule and its pure arithmetic.

Everything here is a pure function of its arguments (and of the local time
zone, for local-time schedules), so tests use fixed epochs instead of sleeping.
The semantics are those of the stdlib's ``TimedRotatingFileHandler`` as of
CPython 3.13, including its DST handling, on every supported Python version.
How processes share the time boundary is PROTOCOL.md's section 3.3.
"""

from __future__ import annotations

import datetime
import difflib
import re
import time
from dataclasses import dataclass
from typing import Callable

from ._units import DurationLike, parse_duration

__all__ = ["TimeSchedule", "TimeTrigger"]

_DAY = 24 * 60 * 60

# when -> (seconds per unit, strftime suffix, regex matching that suffix)
_UNITS = {
    "S": (1, "%Y-%m-%d_%H-%M-%S", r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"),
    "M": (60, "%Y-%m-%d_%H-%M", r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}"),
    "H": (3600, "%Y-%m-%d_%H", r"\d{4}-\d{2}-\d{2}_\d{2}"),
    "D": (_DAY, "%Y-%m-%d", r"\d{4}-\d{2}-\d{2}"),
    "MIDNIGHT": (_DAY, "%Y-%m-%d", r"\d{4}-\d{2}-\d{2}"),
    "W": (7 * _DAY, "%Y-%m-%d", r"\d{4}-\d{2}-\d{2}"),
}

_STDLIB_WHENS = ["S", "M", "H", "D", "midnight"] + [f"W{day}" for day in range(7)]
_WHEN_FORMS = (
    "a stdlib name ('S', 'M', 'H', 'D', 'midnight' or 'W0'-'W6', 0 is Monday) or a "
    "duration ('30 s', '15 min', '6 hours', '1 day', seconds, a datetime.timedelta)"
)


def normalize_when(when: str | DurationLike, interval: int = 1) -> tuple[str, int]:
    """Return the stdlib *when* and *interval* for a stdlib name or a duration.

    The one parser of *when*, for the handlers, ``setup_logging()`` and the CLI.
    A stdlib name (``"midnight"``, ``"H"``, ``"W0"``...) keeps *interval*; a
    duration (``"6 hours"``, ``"1 day"``, seconds, a timedelta) becomes the
    largest unit that divides it (whole days rotate at midnight), and then
    *interval* must be 1: the duration is the whole period.

    :raises ValueError: neither form, naming the value and both forms.
    :raises TypeError: not a string, number or timedelta.

    .. versionadded:: 0.1
    """
    if isinstance(when, str) and when.strip().upper() in {w.upper() for w in _STDLIB_WHENS}:
        return when.strip().upper(), interval
    try:
        seconds = int(parse_duration(when, "when"))
    except ValueError:
        raise ValueError(f"when={when!r}: expected {_WHEN_FORMS}{_did_you_mean(when)}") from None
    except TypeError:
        raise TypeError(f"when={when!r}: expected {_WHEN_FORMS}") from None
    if seconds <= 0:
        raise ValueError(f"when={when!r}: the rotation period must be at least one second")
    if interval != 1:
        raise ValueError(
            f"when={when!r}, interval={interval!r}: interval multiplies a stdlib name such as "
            f"'H'; with a duration, give the whole period in when= and leave interval at 1"
        )
    for unit, size in (("MIDNIGHT", _DAY), ("H", 3600), ("M", 60), ("S", 1)):
        if seconds % size == 0:
            return unit, seconds // size
    raise AssertionError("unreachable: every whole number of seconds divides by 1")


def _did_you_mean(when: object) -> str:
    if not isinstance(when, str) or len(when.strip()) < 3:
        return ""
    names = {name.lower(): name for name in _STDLIB_WHENS}
    match = difflib.get_close_matches(when.strip().lower(), names, 1)
    return f"; did you mean {names[match[0]]!r}?" if match else ""


@dataclass(frozen=True)
class TimeSchedule:
    """A normalized time-rotation schedule.

    Build it with :meth:`parse`; ``interval`` is the period in seconds.

    .. versionadded:: 0.1
    """

    when: str
    interval: int
    utc: bool
    at_time: datetime.time | None
    day_of_week: int | None
    suffix: str
    suffix_pattern: re.Pattern[str]

    @classmethod
    def parse(
        cls,
        when: str | DurationLike,
        interval: int = 1,
        utc: bool = False,
        at_time: datetime.time | str | None = None,
    ) -> TimeSchedule:
        """Validate the stdlib-style arguments and return a schedule.

        :param when: a stdlib name or a duration: see :func:`normalize_when`.
        :raises ValueError: unknown *when* or *interval* < 1, naming the value
            and the accepted forms.
        """
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval={interval!r}: expected a whole number >= 1")
        key, interval = normalize_when(when, interval)
        day_of_week = int(key[1]) if key.startswith("W") else None  # "W0"-"W6"
        unit_key = "W" if day_of_week is not None else key
        at_time = _parse_at_time(at_time)
        seconds, suffix, pattern = _UNITS[unit_key]
        return cls(
            when=key,
            interval=seconds * interval,
            utc=bool(utc),
            at_time=at_time,
            day_of_week=day_of_week,
            suffix=suffix,
            # Look-arounds let the suffix be found inside names made by a custom namer.
            suffix_pattern=re.compile(rf"(?<!\d){pattern}(?!\d)", re.ASCII),
        )

    @property
    def _aligned(self) -> bool:
        """True for schedules tied to the clock (midnight, weekday), not to a start time."""
        return self.when == "MIDNIGHT" or self.day_of_week is not None

    def _tm(self, t: float) -> time.struct_time:
        return time.gmtime(t) if self.utc else time.localtime(t)

    def next_rollover(self, current_time: float) -> float:
        """Return the instant of the first rollover after *current_time*.

        ``S``/``M``/``H``/``D`` count *interval* from *current_time*, as the stdlib
        does; ``midnight`` and ``W0``-``W6`` roll over at midnight (or at
        ``atTime``) of the right day, keeping local wall-clock time across DST.
        """
        if not self._aligned:
            return current_time + self.interval
        tm = self._tm(current_time)
        rotate_at = (
            _DAY
            if self.at_time is None
            else ((self.at_time.hour * 60 + self.at_time.minute) * 60 + self.at_time.second)
        )
        seconds_into_day = (tm.tm_hour * 60 + tm.tm_min) * 60 + tm.tm_sec
        wait = rotate_at - seconds_into_day
        weekday = tm.tm_wday
        if wait <= 0:  # today's rotation time has passed: the next one is tomorrow
            wait += _DAY
            weekday = (weekday + 1) % 7
        result = current_time + wait
        if self.day_of_week is None:
            result += self.interval - _DAY
        else:
            result += ((self.day_of_week - weekday) % 7) * _DAY + self.interval - 7 * _DAY
        if not self.utc:
            result += self._dst_correction(tm.tm_isdst, result)
        return result

    @staticmethod
    def _dst_correction(dst_now: int, result: float) -> int:
        """Seconds to add so that *result* keeps the wall-clock time across a DST change."""
        dst_then = time.localtime(result).tm_isdst
        if dst_now == dst_then:
            return 0
        if dst_now:  # DST ends before the rollover: the wall clock goes back an hour
            return 3600
        # DST starts before the rollover; unless the hour was skipped (02:00-03:00).
        return -3600 if time.localtime(result - 3600).tm_isdst else 0

    def period_label(self, rollover_at: float) -> str:
        """Return the file-name suffix of the period that ends at *rollover_at*.

        Files are named for the start of their period, like the stdlib's.
        """
        start = rollover_at - self.interval
        if not self.utc and self.interval >= _DAY:
            # A day-or-longer period that spans a DST change is an hour longer or
            # shorter than `interval`; name it for its local start date.
            dst_end = time.localtime(rollover_at).tm_isdst
            dst_start = time.localtime(start).tm_isdst
            if dst_end != dst_start:
                start += 3600 if dst_end else -3600
        return time.strftime(self.suffix, self._tm(start))


def _parse_at_time(value: datetime.time | str | None) -> datetime.time | None:
    """Accept a ``datetime.time`` or, for config files, ``"HH:MM[:SS]"``."""
    if value is None or isinstance(value, datetime.time):
        return value
    if isinstance(value, str):
        try:
            return datetime.time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"atTime={value!r}: expected a datetime.time or a string such as '23:30'")


class TimeTrigger:
    """Decides time rotations for one handler, agreeing with every other process.

    The shared state is the *boundary*: the instant at which the active file's
    period ends, kept in the lock file.  It is the authority both for "rotate
    now?" and for naming the rotated file, so a process that was idle, or that
    started mid-period, names backups exactly like the others.  The local
    :attr:`rollover_at` is a cache that says when to look at the shared state
    again; every method is called with the lock held.

    :param schedule: the parsed schedule.
    :param start: the log file's mtime (or now): a file last written in an
        earlier period rolls over at the first record, as in the stdlib.
    :param read: returns the shared boundary (None if never set).
    :param write: stores the shared boundary.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        schedule: TimeSchedule,
        start: float,
        read: Callable[[], float | None],
        write: Callable[[float], None],
    ) -> None:
        self.schedule = schedule
        self.rollover_at = schedule.next_rollover(int(start))
        self.synced = False
        self._read = read
        self._write = write

    def needs_check(self, now: float) -> bool:
        """Cheap local test: must :meth:`due` look at the shared state?"""
        return now >= self.rollover_at or not self.synced

    def due(self, now: float, empty: bool) -> bool:
        """Return True if the active file must be rotated now (by time)."""
        self.adopt_shared_boundary(now)
        if now < self.rollover_at:
            return False
        if empty:  # nothing to rotate: only move everyone on to the next period
            self.advance(now)
            return False
        return True

    def adopt_shared_boundary(self, now: float) -> None:
        """Adopt the shared boundary: the period another process already started,
        or a passed boundary newer than ours (we were idle)."""
        shared = self._read()
        if shared is not None:
            if now < shared <= self.schedule.next_rollover(int(now)):
                self.rollover_at = shared
            elif shared <= now:
                self.rollover_at = max(self.rollover_at, shared)
        self.synced = True

    def label(self) -> str:
        """The file-name suffix for the active file: the start of its period."""
        return self.schedule.period_label(self.rollover_at)

    def advance(self, now: float) -> None:
        """The active file's period is over: share the next boundary."""
        self.rollover_at = self.schedule.next_rollover(int(now))
        self._write(self.rollover_at)

    def share(self, now: float) -> None:
        """After a size rotation: make sure the others use our (current) boundary."""
        if self.rollover_at > now:
            self._write(self.rollover_at)
