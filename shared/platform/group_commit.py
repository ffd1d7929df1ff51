"""Group commit: callers that arrive together share one write, and so one commit.

A caller hands its item to :meth:`GroupCommit.submit` and blocks until it is written.
The first caller to find no write in progress leads: it writes every item waiting at
that moment, its own first, with one call of ``write``, and hands each caller its own
outcome. Callers that arrive during that write wait for the next one, which the first of
them leads. The number of writes — of commits, of fsyncs — therefore follows the
database's latency, not the request rate, and a caller that finds no write in progress
writes at once, on its own thread, with no hand-over.

It works with threads and with gevent, whose monkey patching makes ``threading``
cooperative (docs/decisions.md, "Webhook ingestion").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Entry(Generic[Item, Result]):
    """One caller's item, then its outcome; ``wake`` is set when there is news for it."""

    __slots__ = ("error", "finished", "item", "result", "wake")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.wake = threading.Event()
        self.finished = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class WriteInterrupted(RuntimeError):
    """The leading caller was stopped (a worker timeout) before its write ended."""


class GroupCommit(Generic[Item, Result]):
    """Batches concurrent :meth:`submit` calls into single calls of ``write``.

    ``write`` receives the waiting items in arrival order and returns one outcome per
    item, in the same order: its result, or an exception to raise in that item's caller.
    If ``write`` raises, every caller of the batch raises that exception. A batch holds
    items until their ``weight`` reaches ``max_weight``, and always at least one.
    """

    def __init__(
        self,
        write: Callable[[list[Item]], Sequence[Result | Exception]],
        *,
        max_weight: int,
        weight: Callable[[Item], int] = lambda _: 1,
    ) -> None:
        self._write = write
        self._max_weight = max_weight
        self._weight = weight
        self._lock = threading.Lock()
        self._waiting: list[_Entry[Item, Result]] = []
        self._writing = False
        # The entry due to lead the next batch, until it takes it.
        self._successor: _Entry[Item, Result] | None = None

    def submit(self, item: Item) -> Result:
        """Write ``item`` with whatever else is waiting; return its result once committed."""
        entry: _Entry[Item, Result] = _Entry(item)
        with self._lock:
            self._waiting.append(entry)
            follows = self._writing
            if not follows:
                self._writing, self._successor = True, entry
        try:
            if follows:
                entry.wake.wait()
            if not entry.finished:
                # Woken (or arrived) at the head of the queue: lead the next batch.
                self._lead()
        except BaseException:
            # Stopped while waiting (gevent's kill, a signal): never leave the queue stuck.
            if not entry.finished:
                self._abandon(entry)
            raise
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._lock:
            self._successor = None
            batch = self._take()
        try:
            outcomes = self._write([entry.item for entry in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"write returned {len(outcomes)} outcomes for {len(batch)}")
            for entry, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    entry.error = outcome
                else:
                    entry.result = outcome
        except Exception as error:  # noqa: BLE001 - raised again in every caller of the batch
            for entry in batch:
                entry.error = error
        except BaseException:
            # A follower must not inherit GreenletExit or SystemExit: it fails on its own.
            for entry in batch:
                entry.error = WriteInterrupted("the write of this batch was interrupted")
            raise
        finally:
            with self._lock:
                successor = self._hand_over()
            for entry in batch:
                entry.finished = True
                entry.wake.set()
            if successor is not None:
                successor.wake.set()

    def _hand_over(self) -> _Entry[Item, Result] | None:
        """The entry to wake to lead next (the head of the queue), or None: no write then."""
        self._successor = self._waiting[0] if self._waiting else None
        self._writing = self._successor is not None
        return self._successor

    def _abandon(self, entry: _Entry[Item, Result]) -> None:
        """Take out a caller stopped while waiting, passing on the lead if it was its."""
        with self._lock:
            if entry not in self._waiting:
                return  # in a batch being written: its leader finishes it
            self._waiting.remove(entry)
            successor = self._hand_over() if entry is self._successor else None
        if successor is not None:
            successor.wake.set()

    def _take(self) -> list[_Entry[Item, Result]]:
        """The longest prefix of the waiting entries within ``max_weight`` (at least one)."""
        total, count = 0, 0
        for entry in self._waiting:
            total += self._weight(entry.item)
            if count and total > self._max_weight:
                break
            count += 1
        batch, self._waiting = self._waiting[:count], self._waiting[count:]
        return batch
