"""Batched mode's side of a handler: queue in the caller, write from the writer thread.

In batched mode ``emit`` hands a record's bytes to :meth:`mplog._batch.BatchWriter.put`
itself (one call less per record) and leaves an unusual result to
:meth:`BatchedWrites._after_put`; :meth:`BatchedWrites._enqueue` does both, for a
record logged from inside the handler (:mod:`mplog._batch` holds the queue and the thread);
:meth:`BatchedWrites._write_batch` is what the writer thread calls with what it
drained, under one lock acquisition (:meth:`mplog._rollover.Rollover.write_batch`).
"""

from __future__ import annotations

from ._batch import BatchWriter
from ._handler_parts import HandlerParts
from ._lifecycle import entry_point
from ._reporting import mplog_record
from .exceptions import QueueFull

__all__ = ["BatchedWrites"]


class BatchedWrites(HandlerParts):
    """The batched-mode methods of :class:`mplog.ConcurrentRotatingFileHandler`."""

    def _enqueue(self, data: bytes, block: bool = True) -> None:
        batch = self._batch
        assert batch is not None
        self._after_put(batch, data, batch.put(data, block))

    def _after_put(self, batch: BatchWriter, data: bytes, queued: bool | None) -> None:
        """Act on what :meth:`BatchWriter.put` returned for *data*: end a "queue full"
        episode, write *data* here if the writer closed meanwhile, or report the first
        drop of an episode.  ``emit`` calls ``put`` itself, and this only when the
        result is not a plain True with nothing ever dropped."""
        if queued:
            if batch.dropped:  # only a drop starts a "queue full" episode
                self._reporter.recovered("queue full")
        elif queued is None:  # closed meanwhile: after everything it queued, in order
            self._file.append(data)
        elif self._reporter.first("queue full"):  # the first drop of an episode only
            raise QueueFull(
                f"mplog batched queue for {self.baseFilename} is full "
                f"(queue_size={batch.max_records}): dropping records "
                f"({batch.dropped} so far; see handler.dropped)"
            )

    @entry_point
    def _write_batch(self, batch: list[bytes]) -> None:
        """Write queued records under one lock acquisition, rotating between them as due
        (in the writer thread, marked inside the handler like any entry point)."""
        entered = self._guard.enter()
        try:
            with self._lock as shared:
                self._rollover.write_batch(self._file, shared, batch)
            self._file.written()  # synced per batch (see ActiveFile.written)
            if self._reporter.episode is not None:
                self._reporter.write_succeeded()
        except BaseException as error:
            if entered:
                self._let_go(error)
            raise
        finally:
            if entered:
                self._guard.leave()

    def _report_batch_error(self, error: BaseException, count: int) -> None:
        """Called by the writer thread inside its ``except``: once per failure episode."""
        if not self._reporter.lost(error, count):
            self.handleError(
                mplog_record(
                    "%d queued records could not be written to %s: %s",
                    count,
                    self.baseFilename,
                    error,
                )
            )

    @property
    def dropped(self) -> int:
        """Records dropped because the batched queue was full (``overflow="drop"``)."""
        return self._batch.dropped if self._batch is not None else 0
