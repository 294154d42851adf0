"""How to rotate: backup names, finding a log's backups, and pruning them.

Two naming schemes, both the stdlib's:

* size only (no ``when``): ``app.log.1`` is the newest backup; older ones
  shift up by one at each rotation, as ``RotatingFileHandler`` does.
* with a time schedule: ``app.log.<period>`` like ``TimedRotatingFileHandler``;
  when size also triggers within one period, later files get a counter,
  ``app.log.<period>.1``, ``.2`` ..., so nothing is ever overwritten and the
  names sort in rotation order.

A custom ``namer`` is applied to every default name; backups are recognized by
finding the period (or the number) in a directory entry and checking that the
namer maps the default name to exactly that entry, so listing backups costs
what is in the directory, never what ``backupCount`` allows.  A compressed
backup is its uncompressed name plus the compressor's suffix (``app.log.1.gz``);
both forms count as the same backup everywhere (shifting, counters, retention).
Every name mplog makes is listed in PROTOCOL.md, section 1.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Sequence
from typing import Callable, NamedTuple

from ._retention import Retention, Stored

__all__ = [
    "Backup",
    "Backups",
    "find_backups",
    "group_backups",
    "list_numbered",
    "shift_numbered",
    "unique_backup_name",
]

Namer = Callable[[str], str]
Rotate = Callable[[str, str], None]

_COUNTER = re.compile(r"\.(\d+)")


class Backup(NamedTuple):
    """A rotated file, sortable oldest first.

    Time naming: *period* and *counter* from the name.  Size naming: *period*
    is ``""`` and *counter* is minus the number (``.3`` is older than ``.1``).
    *name* is the uncompressed name, *path* the file on disk: *name* plus
    *suffix* (``""`` or a compressor's, such as ``".gz"``).
    """

    period: str
    counter: int
    path: str
    name: str = ""
    suffix: str = ""


def _name(base: str, period: str, counter: int) -> str:
    return f"{base}.{period}.{counter}" if counter else f"{base}.{period}"


def unique_backup_name(base: str, period: str, namer: Namer, suffixes: Sequence[str] = ()) -> str:
    """Return a free name for a backup of *base* for *period*, after every existing one.

    The counter continues after the highest one in use for *period* rather than
    filling a gap: retention deletes the oldest backups (``.<period>``,
    ``.<period>.1``), and reusing their names would make the newest backup sort
    as the oldest and be pruned next.  Never returns an existing path, so a
    rotation never overwrites a backup.
    """
    this_period = re.compile(rf"(?<!\d){re.escape(period)}(?!\d)")
    counters = [backup.counter for backup in find_backups(base, this_period, namer, suffixes)]
    counter = max(counters) + 1 if counters else 0
    while True:
        candidate = namer(_name(base, period, counter))
        if not any(os.path.lexists(candidate + suffix) for suffix in ("", *suffixes)):
            return candidate
        counter += 1


def find_backups(
    base: str, period_pattern: re.Pattern[str], namer: Namer, suffixes: Sequence[str] = ()
) -> list[Backup]:
    """Return the time-named backups of *base* in its directory, oldest first.

    Files of other logs in the same directory (``app.log.b.<period>``, or a
    name the namer would not produce) are never included.  Compressed forms
    (*suffixes*) are included, one :class:`Backup` per file.
    """
    directory, _base_name = os.path.split(base)
    try:
        entries = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        for suffix in ("", *suffixes):
            if suffix and not entry.endswith(suffix):
                continue
            stem = entry[: len(entry) - len(suffix)]
            backup = _match_backup(base, directory, stem, period_pattern, namer)
            if backup is not None:
                found.append(backup._replace(path=backup.path + suffix, suffix=suffix))
                break
    found.sort()
    return found


def _match_backup(
    base: str, directory: str, stem: str, period_pattern: re.Pattern[str], namer: Namer
) -> Backup | None:
    for match in period_pattern.finditer(stem):
        period = match.group(0)
        candidates = [0]
        counter = _COUNTER.match(stem, match.end())
        if counter is not None:
            candidates.append(int(counter.group(1)))
        for number in candidates:
            if os.path.basename(namer(_name(base, period, number))) == stem:
                path = os.path.join(directory, stem)
                return Backup(period, number, path, path)
    return None


def _lister(suffixes: Sequence[str]) -> Callable[[str], list[str]]:
    """Return a function giving, for a name, the suffixes ("" included) it exists with;
    one listdir per directory."""
    listings: dict[str, set[str]] = {}

    def present(name: str) -> list[str]:
        directory, entry = os.path.split(name)
        listing = listings.get(directory)
        if listing is None:
            try:
                listing = set(os.listdir(directory or "."))
            except FileNotFoundError:
                listing = set()
            listings[directory] = listing
        return [suffix for suffix in ("", *suffixes) if entry + suffix in listing]

    return present


_DIGITS = re.compile(r"\d+")


def _numbers_in(entry: str) -> set[int]:
    """The numbers written in *entry*: each run of digits, zero-padded or not."""
    return {int(digits) for digits in _DIGITS.findall(entry)}


def list_numbered(base: str, count: int, namer: Namer, suffixes: Sequence[str]) -> list[Backup]:
    """Return the size-named backups ``.1`` ... ``.count`` of *base*, oldest first.

    Costs what is on disk, not what *count* allows: one listing of the backups'
    directory, and for each entry a namer call per number written in it (at most
    one per number), to check that ``namer(f"{base}.{n}")`` is that entry, plain or
    with one of *suffixes*.  That finds every backup of a namer that keeps the
    number as digits in the file name and every backup in one directory (the
    default names, ``app.3.log``, ``app.log.003``), which three sample numbers
    check; for another namer each number up to *count* is named and looked up.
    """
    if count < 1:
        return []
    names: dict[int, str] = {}  # number -> namer's name: each number named once

    def name_of(number: int) -> str:
        name = names.get(number)
        if name is None:
            name = names[number] = namer(f"{base}.{number}")
        return name

    directory = os.path.dirname(name_of(1))
    for sample in {1, (count + 1) // 2, count}:
        sample_dir, sample_entry = os.path.split(name_of(sample))
        if sample_dir != directory or sample not in _numbers_in(sample_entry):
            return _list_every_number(count, name_of, suffixes)
    try:
        entries = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        for suffix in ("", *suffixes):
            if not entry.endswith(suffix):
                continue
            stem = entry[: len(entry) - len(suffix)]
            for number in _numbers_in(stem):
                if 1 <= number <= count and os.path.split(name_of(number)) == (directory, stem):
                    name = name_of(number)
                    found.append(Backup("", -number, name + suffix, name, suffix))
    found.sort()
    return found


def _list_every_number(
    count: int, name_of: Callable[[int], str], suffixes: Sequence[str]
) -> list[Backup]:
    """list_numbered for a namer whose names do not show the number: name each one."""
    present = _lister(suffixes)
    found = [
        Backup("", -number, name_of(number) + suffix, name_of(number), suffix)
        for number in range(1, count + 1)
        for suffix in present(name_of(number))
    ]
    found.sort()
    return found


def shift_numbered(
    base: str,
    count: int,
    namer: Namer,
    suffixes: Sequence[str],
    rotate: Rotate,
    remove: Callable[[str], None] = os.remove,
) -> str:
    """The stdlib's size naming: *base* becomes ``.1``, ``.1`` becomes ``.2`` ..., and
    the oldest (``.count``) goes (through *remove*); every compressed form moves
    with its number.

    Only the unbroken run from ``.1`` shifts, so a hole (a rotation killed between
    shifting and renaming, or retention) is filled instead of travelling up.
    Returns the new ``.1``.  Caller holds the writers' lock.
    """
    # Names are made up to the first missing one only: with backupCount=1000 and a
    # few backups, a rotation costs a few names, not a thousand (namer calls included).
    lister = _lister(suffixes)
    names = [namer(f"{base}.1")]
    present = [lister(names[0])]
    run = 0  # the unbroken run .1 ... .run exists
    while present[run]:
        run += 1
        if run == count:
            break
        names.append(namer(f"{base}.{run + 1}"))
        present.append(lister(names[run]))
    if run == count:  # all there: the oldest goes
        for suffix in present[-1]:
            remove(names[-1] + suffix)
        run -= 1
    for i in range(run - 1, -1, -1):
        for suffix in present[i]:
            os.replace(names[i] + suffix, names[i + 1] + suffix)
    rotate(base, names[0])
    return names[0]


def group_backups(backups: Iterable[Backup]) -> list[list[Backup]]:
    """Group sorted backups by uncompressed name (a backup and its compressed form)."""
    groups: list[list[Backup]] = []
    for backup in backups:
        if groups and groups[-1][0].name == backup.name:
            groups[-1].append(backup)
        else:
            groups.append([backup])
    return groups


class Backups:
    """The backups of one log: naming, listing, retention, and finding one by inode.

    :param base: the active log file's absolute path.
    :param namer: the handler's ``rotation_filename`` (it reads ``namer`` at each call).
    :param count: returns the handler's current ``backupCount``.
    :param period_pattern: the time schedule's suffix pattern; None for numbered backups.
    :param suffixes: compressed forms to recognize (``".gz"`` ...).
    :param retention: ``max_age`` and ``max_total_size`` (the count comes from *count*).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        base: str,
        namer: Namer,
        count: Callable[[], int],
        period_pattern: re.Pattern[str] | None,
        suffixes: Sequence[str],
        retention: Retention,
    ) -> None:
        self.base = base
        self._namer = namer
        self._count = count
        self._period_pattern = period_pattern
        self.suffixes = tuple(suffixes)
        self.retention = retention

    def files(self) -> list[Backup]:
        """Every file of every backup (compressed forms too), oldest first."""
        if self._period_pattern is not None:
            return find_backups(self.base, self._period_pattern, self._namer, self.suffixes)
        return list_numbered(self.base, self._count(), self._namer, self.suffixes)

    def time_name(self, period: str) -> str:
        """A new, unused name for a backup of *period* (time naming)."""
        return unique_backup_name(self.base, period, self._namer, self.suffixes)

    def shift(self, rotate: Rotate, remove: Callable[[str], None] = os.remove) -> str:
        """Rotate the active file into ``.1``, shifting the others (numbered naming);
        the one pushed past the count goes through *remove*."""
        return shift_numbered(self.base, self._count(), self._namer, self.suffixes, rotate, remove)

    def expired(self) -> list[Stored]:
        """The backups the retention rules delete now, oldest first."""
        rules = self.retention
        # Numbered backups: the shift enforces the count.
        count = self._count() if self._period_pattern is not None else 0
        if not count and not rules.by_age_or_size:
            return []
        stored = []
        for group in group_backups(self.files()):
            size, mtime = 0, 0.0
            if rules.by_age_or_size:
                try:
                    stats = [os.lstat(backup.path) for backup in group]
                except FileNotFoundError:  # removed meanwhile
                    continue
                size = sum(st.st_size for st in stats)
                mtime = max(st.st_mtime for st in stats)
            stored.append(Stored(tuple(backup.path for backup in group), size, mtime))
        if count:
            rules = Retention(count, rules.max_age, rules.max_total_size)
        return rules.expired(stored, time.time())

    def prune(self, busy: Callable[[str], bool]) -> list[str]:
        """Delete what retention expires, except backups with a *busy* file (being
        compressed: the compressor's sweep applies retention again once it let go);
        return the deleted paths.  Caller holds the writers' lock.

        A name that cannot be removed (a directory named like a backup, another user's
        file in a sticky directory) does not stop the others: once every other one is
        done, the first such error is raised, for the caller to report."""
        deleted = []
        failure: OSError | None = None
        for backup in self.expired():
            if any(busy(path) for path in backup.paths):
                continue
            for path in backup.paths:
                try:
                    os.remove(path)  # never follows a symbolic link
                except FileNotFoundError:
                    continue
                except OSError as error:
                    failure = failure or error
                    continue
                deleted.append(path)
        if failure is not None:
            raise failure
        return deleted

    def locate(self, file_id: tuple[int, int], hint: str) -> str | None:
        """The current name of the uncompressed backup *file_id*, looking at *hint* first
        (caller holds the writers' lock, so names cannot change meanwhile)."""
        if _is_file(hint, file_id):
            return hint
        if self._period_pattern is not None:  # time-named backups never move
            return None
        # Numbered backups shift: look at each uncompressed one there is (not at every
        # number backupCount allows).
        for backup in self.files():
            if not backup.suffix and backup.path != hint and _is_file(backup.path, file_id):
                return backup.path
        return None


def _is_file(path: str, file_id: tuple[int, int]) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == file_id
