"""Per-process caches of what hot paths read again and again (accounts, settings).

Each entry is as old as the read that produced it, counted from when that read began, so a
change committed before a read began is never hidden by it. Readers that miss one key
together share one read (one connection at a time, not one each). Nothing found is never
kept: anyone can send unknown ids, and they must neither grow the cache nor be remembered.

A cache may name a *topic* (what its keys are: ``organization``, ``provider_account``):
:func:`forget_everywhere` drops one key from every cache of a topic in this process, so
a writer invalidates what it changed without knowing who caches it.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

# Striped, so that unknown keys sent by anyone cannot grow a table of locks.
LOCK_STRIPES = 64
ORGANIZATION = "organization"
PROVIDER_ACCOUNT = "provider_account"
_TOPICS: dict[str, weakref.WeakSet[TimedCache]] = {}


@dataclass(frozen=True, slots=True)
class _Entry(Generic[Value]):
    read_at: float  # when the read began
    value: Value


class TimedCache(Generic[Key, Value]):
    """Values at most ``seconds`` old, per key, in this process.

    ``clock`` (``time.monotonic``) is replaceable so that tests can move time forward;
    ``topic`` registers the cache with :func:`forget_everywhere`.
    """

    def __init__(
        self,
        seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        topic: str | None = None,
    ) -> None:
        self.seconds = seconds
        self.clock = clock
        self._entries: dict[Key, _Entry[Value]] = {}
        self._loads = [threading.Lock() for _ in range(LOCK_STRIPES)]
        if topic is not None:
            _TOPICS.setdefault(topic, weakref.WeakSet()).add(self)

    def get(
        self, key: Key, read: Callable[[], Value | None], *, fresh: bool = False
    ) -> Value | None:
        """The cached value of ``key``, else what ``read()`` returns (kept unless None).

        ``fresh`` asks for a read begun after this call began: an entry an earlier reader
        is producing meanwhile is shared, an older one is not used.
        """
        asked_at = self.clock()
        entry = self._entries.get(key)
        if not self._usable(entry, asked_at, fresh):
            with self._loads[hash(key) % LOCK_STRIPES]:
                entry = self._entries.get(key)
                if not self._usable(entry, asked_at, fresh):
                    entry = self._load(key, read)
        return None if entry is None else entry.value

    def _usable(self, entry: _Entry[Value] | None, asked_at: float, fresh: bool) -> bool:
        # A read begun since this call began is good for ``fresh`` too (callers that
        # waited for it share it); an older one only within the window.
        if entry is None:
            return False
        return entry.read_at >= asked_at or (not fresh and entry.read_at + self.seconds > asked_at)

    def _load(self, key: Key, read: Callable[[], Value | None]) -> _Entry[Value] | None:
        read_at = self.clock()
        value = read()
        if value is None:
            self._entries.pop(key, None)
            return None
        entry = _Entry(read_at, value)
        self._entries[key] = entry
        return entry

    def forget(self, key: Key) -> None:
        """Drop ``key``: its next :meth:`get` reads again."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Drop every entry (tests; a write that this process must see at once)."""
        self._entries.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._entries


def forget_everywhere(topic: str, key: Hashable) -> None:
    """Drop ``key`` from every cache of ``topic`` in this process (after a write of it)."""
    for cache in list(_TOPICS.get(topic, ())):
        cache.forget(key)
