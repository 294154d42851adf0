"""Which backups to delete: by count, by age and by total size, oldest first.

The rules are pure (:meth:`Retention.expired` takes the backups with their
sizes and times), so they are tested without files; the handler applies them
at each rotation and at the end of each compression sweep, holding the writers'
lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ._units import DurationLike, SizeLike, parse_duration, parse_size

__all__ = ["Retention", "Stored"]


class Stored(NamedTuple):
    """One backup (all its files: a backup and its compressed form) as retention sees it."""

    paths: tuple[str, ...]
    size: int  # bytes on disk, all its files together
    mtime: float  # when it was last written


@dataclass(frozen=True)
class Retention:
    """Retention rules; build with :meth:`parse`.  The rules combine: a backup goes
    as soon as any rule says so.

    .. versionadded:: 0.1
    """

    count: int = 0  # keep at most this many; 0: no limit
    max_age: float | None = None  # seconds
    max_total_size: int | None = None  # bytes

    @classmethod
    def parse(
        cls,
        count: int = 0,
        max_age: DurationLike | None = None,
        max_total_size: SizeLike | None = None,
    ) -> Retention:
        """Validate the options (errors name the bad value)."""
        age = None if max_age is None else parse_duration(max_age, "max_age")
        if age is not None and age <= 0:
            raise ValueError(f"max_age={max_age!r}: must be more than zero")
        total = None if max_total_size is None else parse_size(max_total_size, "max_total_size")
        if total is not None and total <= 0:
            raise ValueError(f"max_total_size={max_total_size!r}: must be more than zero")
        return cls(count, age, total)

    @property
    def by_age_or_size(self) -> bool:
        """True if a rule other than the count is set."""
        return self.max_age is not None or self.max_total_size is not None

    def expired(self, backups: Sequence[Stored], now: float) -> list[Stored]:
        """Return the *backups* (oldest first) that the rules delete, oldest first."""
        keep = len(backups)
        if self.count:
            keep = min(keep, self.count)
        total = 0
        for kept, backup in enumerate(reversed(backups[len(backups) - keep :])):
            total += backup.size
            too_old = self.max_age is not None and now - backup.mtime > self.max_age
            too_big = self.max_total_size is not None and total > self.max_total_size
            if too_old or too_big:  # this one and every older one go
                keep = kept
                break
        return list(backups[: len(backups) - keep])
