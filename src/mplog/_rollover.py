"""The rotation policy: when the active file is rotated, and what a rotation does.

:class:`Rollover` decides, before a write that the fast path does not take,
whether the active file must rotate (by size, by time, or both), and rotates it
holding the writers' lock: rename the file to its backup name (shifting numbered
backups, or naming it after its period), open a fresh one and announce it to the
other processes, apply retention, and wake the compressor (never compressing in
the writer's thread): the rotator's steps of PROTOCOL.md, section 4.

The size settings, ``maxBytes`` and ``backupCount``, are kept in one place,
:class:`SizeLimit`, which the handler's attributes of those names read and set;
the active file only holds what :meth:`Rollover.prepare` last granted it (skip
the checks until a time, for records within the limit: :meth:`ActiveFile.arm
<mplog._active.ActiveFile.arm>`), and is sent back through it when they change.

A rotation that fails (a directory we may not write, a backup name taken by a
directory) costs no record: the file we hold is still the active one, so writers
keep appending to it; the failure is reported once, and rotation is tried again
after :data:`ROTATION_RETRY` seconds.  Once the rename is done the rotation has
happened, whatever fails after it: the handler moves to the new file (or opens it at
the next record), and retention and compression run.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from ._active import ActiveFile
from ._backups import Backups
from ._compression_scheduler import CompressionScheduler, discard, is_claimed
from ._header import SharedState
from ._netfs import refresh_directory
from ._reporting import Reporter
from ._triggers import TimeTrigger

__all__ = ["ROTATION_RETRY", "Pruner", "Rollover", "SizeLimit"]

#: Seconds between attempts to rotate after a rotation failed (the file keeps growing).
ROTATION_RETRY = 10.0

Rename = Callable[[str, str], None]


class SizeLimit:
    """The size rotation settings of one handler, the one place they are kept: its
    ``maxBytes`` and ``backupCount`` (settable while it runs, as in the stdlib) and
    the limit they make together.

    :param max_bytes: ``maxBytes``, in bytes (0: never by size).
    :param backup_count: ``backupCount``.
    :param time_named: backups are named after their period (*when* is given).

    .. versionadded:: 0.1
    """

    __slots__ = ("backup_count", "max_bytes", "time_named")

    def __init__(self, max_bytes: int, backup_count: int, time_named: bool) -> None:
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.time_named = time_named

    @property
    def size(self) -> int:
        """Rotate before a write would make the file larger than this; 0: never by size.

        As in the stdlib, size rotation without a backup to rotate into is off,
        unless time naming is on (time-named backups are kept by default)."""
        return self.max_bytes if self.backup_count > 0 or self.time_named else 0

    def count(self) -> int:
        """``backupCount`` now (what :class:`~mplog._backups.Backups` asks at each use)."""
        return self.backup_count


class Rollover:
    """Rotates one handler's active file (every method runs with the lock held).

    The active file is given this policy when it is built (see
    :meth:`ActiveFile.prepare <mplog._active.ActiveFile.prepare>`), and passes
    itself at each call.

    :param backups: the log's backups: naming, shifting, retention.
    :param limit: ``maxBytes`` and ``backupCount``.
    :param trigger: the time trigger, or None for size-only rotation.
    :param rename: the handler's :meth:`~logging.handlers.BaseRotatingHandler.rotate`
        (``rotator`` and ``namer`` hooks honoured).
    :param archiver: the compressor, or None.
    :param reporter: where failures go.
    :param debug: called with a message for each rename and deletion.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        backups: Backups,
        limit: SizeLimit,
        trigger: TimeTrigger | None,
        rename: Rename,
        archiver: CompressionScheduler | None,
        pruner: Pruner,
        reporter: Reporter,
        debug: Callable[[str], None],
    ) -> None:
        self.backups = backups
        self.limit = limit
        self.trigger = trigger
        self._rename = rename
        self.archiver = archiver
        self.pruner = pruner
        self.reporter = reporter
        self._debug = debug
        # Rotation failures: when to try again, and how many rotations were skipped
        # in the current episode (None: not failing).
        self._retry_at = 0.0
        self._skipped: int | None = None

    def prepare(self, file: ActiveFile, shared: SharedState, nbytes: int) -> int:
        """Make sure we append to the active *file*, rotate if due; return its size,
        or -1 for a device or pipe (lock held).

        Another process's rotation bumps the shared generation, so the common case
        needs no system call; the path itself is stat'ed every *watch_interval*
        seconds, and before any rotation, to notice other programs (logrotate).
        """
        now = time.time()
        size, checked = file.settle(shared, now)
        if not file.regular:  # bpo-45401: a device or pipe is never rotated
            return -1
        trigger = self.trigger
        time_due = trigger is not None and trigger.needs_check(now) and trigger.due(now, not size)
        limit = self.limit.size
        size_due = limit and size > 0 and size + nbytes > limit
        if (time_due or size_due) and now < self._retry_at:  # rotating fails: later
            time_due = size_due = False
        if (time_due or size_due) and not checked:
            # confirm: another program may have moved or truncated the file, or the lock file
            size = file.check(shared, now)
            size_due = limit and size > 0 and size + nbytes > limit
        if time_due or size_due:
            size = self.rotate(file, shared, time_due)
        # synced with the others above: the fast path stops at the next time boundary,
        # or at a record that reaches the size limit
        file.arm(math.inf if trigger is None else trigger.rollover_at, limit)
        return size

    def write_batch(self, file: ActiveFile, shared: SharedState, batch: list[bytes]) -> None:
        """Write queued records to *file* under one lock acquisition, rotating between
        them as due."""
        size = self.prepare(file, shared, len(batch[0]))
        limit = self.limit.size
        joined = b"".join(batch)
        fits = size + len(joined) <= limit and (size or file.file_start is None)
        if size < 0 or not limit or fits:
            # No limit, or the whole batch fits (a new file's header line aside, which is
            # written alone): one write, no Python per record (the writer shares the
            # interpreter with the threads that log).
            file.write(shared, joined, size)
            return
        start = 0  # batch[start:i] goes at *size*; the file then ends at *end*
        end = size
        for i, data in enumerate(batch):
            # (prepare decided for the first; after a failed rotation, appends until the
            # retry is due, as prepare does)
            if i > 0 and end + len(data) > limit and time.time() >= self._retry_at:
                if i > start:  # (nothing pending after a file's first record)
                    file.write(shared, b"".join(batch[start:i]), size)
                size = end = self.rotate(file, shared, time_due=False)
                start = i
            if not size and file.file_start is not None:
                # A new file's first record carries the file's start (a header line),
                # which counts towards the limit: written alone, it says how long.
                size = end = file.write(shared, data, 0)
                start = i + 1
            else:
                end += len(data)
        if start < len(batch):
            file.write(shared, b"".join(batch[start:]), size)

    def rotate(self, file: ActiveFile, shared: SharedState, time_due: bool) -> int:
        """Rename the active *file* away, open a fresh one, tell the others; return the
        new file's size (see the module docstring for failures)."""
        now = time.time()
        # Until reopen_after_rename announces the new file, append must not take the
        # fast path on the descriptor of the file being renamed: an exception arriving
        # between the rename and the reopen would leave records going into the backup
        # (compressed and deleted meanwhile).  The next record checks the path instead.
        file.generation = -1
        try:
            if file.network:  # the names below must be the server's, not a stale view
                refresh_directory(file.path)
            if file.durability is not None:  # whole on disk before its new name is
                file.durability.before_rename(file.fd, file.file_id)  # type: ignore[arg-type]
            self._rename_active(now, time_due)
        except Exception as error:
            return self._failed(shared, now, error)
        if self._skipped is not None:
            skipped, self._skipped = self._skipped, None
            self.reporter.recovered("rotation")
            self.reporter.notify(
                f"rotating {file.path} works again ({skipped} rotations were skipped "
                "meanwhile, so the backup just made may be larger than maxBytes)"
            )
        try:
            return file.reopen_after_rename(shared)
        finally:
            # Renamed: the backup exists even if the new file cannot be opened yet (the
            # next record opens it), so retention and compression are due all the same.
            self.pruner.prune()  # a failure here costs no record
            if self.archiver is not None:
                # After retention, so it never finds the new backup already claimed. Only
                # starts (or wakes) the background thread: never compresses in this
                # thread, which holds the writers' lock (see CompressionScheduler.request).
                self.archiver.request()

    def _rename_active(self, now: float, time_due: bool) -> None:
        """Rename the active file to its backup name (shifting numbered backups)."""
        path = self.backups.base
        trigger = self.trigger
        if trigger is not None:
            trigger.adopt_shared_boundary(now)  # name the file like every other process would
            dest = self.backups.time_name(trigger.label())
            self._debug(f"rotating {path} -> {dest}")
            self._rename(path, dest)
            try:
                if time_due or now >= trigger.rollover_at:
                    trigger.advance(now)
                else:
                    trigger.share(now)
            except Exception as error:
                # Renamed: the rotation happened, and we must move to the new file. Our
                # own next boundary is set; the others' is shared at the next rotation.
                message = f"rotated {path}, but could not share the next rotation time"
                self.reporter.once("rotation time", message, error)
            else:
                self.reporter.recovered("rotation time")
        elif self.limit.backup_count > 0:
            dest = self.backups.shift(self._rename, self._discard)
            self._debug(f"rotating {path} -> {dest}")

    def _failed(self, shared: SharedState, now: float, error: Exception) -> int:
        """Keep the file we hold (called inside the rename's ``except``); return its size."""
        self._retry_at = now + ROTATION_RETRY
        size = shared.state()[2]  # the file's length: the last write begun ended (see sync)
        if self._skipped is None:
            self._skipped = 0
            self.reporter.once(
                "rotation",
                f"cannot rotate {self.backups.base} (now {size} bytes, maxBytes="
                f"{self.limit.size}); appending to it and trying again every "
                f"{ROTATION_RETRY:g} s",
                error,
            )
        self._skipped += 1
        return size

    def _discard(self, path: str) -> None:
        """Drop a numbered backup pushed past backupCount, never under a compressor."""
        self._debug(f"deleting {path}")
        discard(path, self.backups.base)


class Pruner:
    """Applies retention to a log's backups, with the writers' lock held: after each
    rotation (:meth:`Rollover.rotate`) and at the end of each compression sweep
    (:class:`~mplog._compression_scheduler.CompressionScheduler`'s ``retain``)."""

    def __init__(self, backups: Backups, reporter: Reporter, debug: Callable[[str], None]) -> None:
        self.backups = backups
        self.reporter = reporter
        self._debug = debug

    def prune(self) -> None:
        """Apply retention, sparing files being compressed (writers' lock held).

        A failure is reported, once until retention succeeds again, and never
        fails the write that triggered the rotation."""
        try:
            for path in self.backups.prune(is_claimed):
                self._debug(f"deleted {path}")
        except Exception as error:
            message = f"applying retention to the backups of {self.backups.base}"
            self.reporter.once("retention", message, error)
        else:
            self.reporter.recovered("retention")
