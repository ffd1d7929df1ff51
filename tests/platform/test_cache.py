"""The timed cache: kept for its window from when the read began, shared reads, no misses kept."""

from __future__ import annotations

import threading
import time

from shared.platform.cache import TimedCache


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting(value):
    reads: list[object] = []

    def read():
        reads.append(value)
        return value

    return read, reads


def test_a_value_is_read_once_within_the_window_and_again_after_it():
    clock = Clock()
    cache: TimedCache[str, str] = TimedCache(5.0, clock=clock)
    read, reads = counting("v")
    assert cache.get("k", read) == "v"
    clock.now += 4.9
    assert cache.get("k", read) == "v"
    assert len(reads) == 1
    clock.now += 0.1  # five seconds after the read began
    assert cache.get("k", read) == "v"
    assert len(reads) == 2


def test_the_window_counts_from_when_the_read_began():
    clock = Clock()
    cache: TimedCache[str, str] = TimedCache(5.0, clock=clock)

    def slow_read() -> str:
        clock.now += 3.0  # the read itself takes three seconds
        return "v"

    cache.get("k", slow_read)
    clock.now += 2.0
    read, reads = counting("w")
    assert cache.get("k", read) == "w"
    assert reads == ["w"]


def test_fresh_never_takes_an_entry_older_than_the_call():
    clock = Clock()
    cache: TimedCache[str, str] = TimedCache(5.0, clock=clock)
    cache.get("k", lambda: "old")
    clock.now += 1.0
    assert cache.get("k", lambda: "new", fresh=True) == "new"
    assert cache.get("k", lambda: "newer") == "new"  # the fresh read is kept


def test_nothing_found_is_never_kept():
    cache: TimedCache[str, str] = TimedCache(5.0)
    read, reads = counting(None)
    assert cache.get("k", read) is None
    assert cache.get("k", read) is None
    assert len(reads) == 2
    assert "k" not in cache


def test_a_key_no_longer_found_is_dropped():
    clock = Clock()
    cache: TimedCache[str, str] = TimedCache(5.0, clock=clock)
    cache.get("k", lambda: "v")
    clock.now += 5.0
    assert cache.get("k", lambda: None) is None
    assert "k" not in cache


def test_forget_and_clear_make_the_next_get_read_again():
    cache: TimedCache[str, str] = TimedCache(5.0)
    cache.get("a", lambda: "1")
    cache.get("b", lambda: "2")
    cache.forget("a")
    assert "a" not in cache
    assert "b" in cache
    assert cache.get("a", lambda: "1 again") == "1 again"
    cache.clear()
    assert cache.get("b", lambda: "2 again") == "2 again"


def test_callers_that_miss_together_share_one_read():
    cache: TimedCache[str, str] = TimedCache(5.0)
    reads: list[str] = []

    def slow_read() -> str:
        reads.append("k")
        time.sleep(0.2)  # the other callers arrive while this read is under way
        return "v"

    found: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: found.append(cache.get("k", slow_read))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert found == ["v"] * 8
    assert reads == ["k"]
