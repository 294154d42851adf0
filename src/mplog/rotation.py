"""How to rotate: backup names, finding a log's backups, and pruning them.

Two naming schemes, both the stdlib's:

* size only (no ``when``): ``app.log.1`` is the newest backup; older ones
  shift up by one at each rotation, as ``RotatingFileHandler`` does.
* with a time schedule: ``app.log.<period>`` like ``TimedRotatingFileHandler``;
  when size also triggers within one period, later files get a counter,
  ``app.log.<period>.1``, ``.2`` ..., so nothing is ever overwritten and the
  names sort in rotation order.

A custom ``namer`` is applied to every default name; backups are recognized by
finding the period in a directory entry and checking that the namer maps the
default name to exactly that entry.
"""

from __future__ import annotations

import os
import re
from typing import Callable, NamedTuple

__all__ = ["Backup", "find_backups", "unique_backup_name"]

Namer = Callable[[str], str]

_COUNTER = re.compile(r"\.(\d+)")


class Backup(NamedTuple):
    """A rotated file of a time-scheduled log, sortable oldest first."""

    period: str
    counter: int
    path: str


def _name(base: str, period: str, counter: int) -> str:
    return f"{base}.{period}.{counter}" if counter else f"{base}.{period}"


def unique_backup_name(base: str, period: str, namer: Namer) -> str:
    """Return a free name for a backup of *base* for *period*, after every existing one.

    The counter continues after the highest one in use for *period* rather than
    filling a gap: retention deletes the oldest backups (``.<period>``,
    ``.<period>.1``), and reusing their names would make the newest backup sort
    as the oldest and be pruned next.  Never returns an existing path, so a
    rotation never overwrites a backup.
    """
    this_period = re.compile(rf"(?<!\d){re.escape(period)}(?!\d)")
    counters = [backup.counter for backup in find_backups(base, this_period, namer)]
    counter = max(counters) + 1 if counters else 0
    while True:
        candidate = namer(_name(base, period, counter))
        if not os.path.lexists(candidate):
            return candidate
        counter += 1


def find_backups(base: str, period_pattern: re.Pattern[str], namer: Namer) -> list[Backup]:
    """Return the backups of *base* in its directory, oldest first.

    Files of other logs in the same directory (``app.log.b.<period>``, or a
    name the namer would not produce) are never included.
    """
    directory, _base_name = os.path.split(base)
    try:
        entries = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        for match in period_pattern.finditer(entry):
            backup = _match_backup(base, directory, entry, match, namer)
            if backup is not None:
                found.append(backup)
                break
    found.sort()
    return found


def _match_backup(
    base: str, directory: str, entry: str, match: re.Match[str], namer: Namer
) -> Backup | None:
    period = match.group(0)
    candidates = [0]
    counter = _COUNTER.match(entry, match.end())
    if counter is not None:
        candidates.append(int(counter.group(1)))
    for number in candidates:
        if os.path.basename(namer(_name(base, period, number))) == entry:
            return Backup(period, number, os.path.join(directory, entry))
    return None
