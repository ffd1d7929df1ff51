"""Group commit: callers that arrive during a write share the next one, each gets its own."""

from __future__ import annotations

import threading
import time

import pytest

from shared.platform.group_commit import GroupCommit, WriteInterrupted


class GatedWrite:
    """A write that records each batch, and holds its first call until ``release``."""

    def __init__(self, outcome=lambda item: item * 10) -> None:
        self.batches: list[list[int]] = []
        self.threads: list[str] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.outcome = outcome
        self.returned: list[int] = []

    def __call__(self, items: list[int]) -> list:
        self.batches.append(list(items))
        self.threads.append(threading.current_thread().name)
        if len(self.batches) == 1:
            self.entered.set()
            assert self.gate.wait(10)
        outcomes = [self.outcome(item) for item in items]
        self.returned.extend(items)
        return outcomes


def submit_in_threads(group: GroupCommit, items: list[int]) -> tuple[list, dict]:
    """Start one thread per item; return them and the dict their results land in."""
    results: dict[int, object] = {}

    def run(item: int) -> None:
        try:
            results[item] = group.submit(item)
        except Exception as error:  # noqa: BLE001 - the test inspects what each caller got
            results[item] = error

    threads = [threading.Thread(target=run, args=(item,), name=f"caller-{item}") for item in items]
    for thread in threads:
        thread.start()
    return threads, results


def wait_for_waiters(group: GroupCommit, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(group._waiting) < count:
        assert time.monotonic() < deadline, "callers never queued"
        time.sleep(0.005)


def test_an_uncontended_caller_writes_alone_on_its_own_thread():
    write = GatedWrite()
    write.gate.set()
    group = GroupCommit(write, max_weight=100)

    assert group.submit(7) == 70
    assert write.batches == [[7]]
    assert write.threads == [threading.current_thread().name]


def test_callers_arriving_during_a_write_share_the_next_one_and_each_get_their_own_result():
    write = GatedWrite()
    group = GroupCommit(write, max_weight=100)
    first, results = submit_in_threads(group, [1])
    assert write.entered.wait(10)
    others, more = submit_in_threads(group, [2, 3, 4, 5])
    wait_for_waiters(group, 4)
    # Nobody is answered before the write holding its item returns.
    assert results == {}
    assert more == {}

    write.gate.set()
    for thread in first + others:
        thread.join(10)

    assert write.batches == [[1], [2, 3, 4, 5]]
    assert {**results, **more} == {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}
    # The next batch was led by one of its own callers (no helper thread).
    assert write.threads[1] == "caller-2"


def test_a_caller_returns_only_after_the_write_holding_its_item_returned():
    write = GatedWrite()
    group = GroupCommit(write, max_weight=100)
    seen_when_answered: dict[int, list[int]] = {}

    def run(item: int) -> None:
        group.submit(item)
        seen_when_answered[item] = list(write.returned)

    threads = [threading.Thread(target=run, args=(item,)) for item in (1, 2, 3)]
    threads[0].start()
    assert write.entered.wait(10)
    for thread in threads[1:]:
        thread.start()
    wait_for_waiters(group, 2)
    write.gate.set()
    for thread in threads:
        thread.join(10)

    for item, returned in seen_when_answered.items():
        assert item in returned


def test_a_failed_write_fails_every_caller_of_its_batch_and_the_next_batch_still_runs():
    calls: list[list[int]] = []
    gate, entered = threading.Event(), threading.Event()

    def write(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            entered.set()
            assert gate.wait(10)
            return items
        if len(calls) == 2:
            raise ConnectionError("database went away")
        return items

    group = GroupCommit(write, max_weight=100)
    first, results = submit_in_threads(group, [1])
    assert entered.wait(10)
    failing, failed = submit_in_threads(group, [2, 3, 4])
    wait_for_waiters(group, 3)
    gate.set()
    for thread in first + failing:
        thread.join(10)

    assert results == {1: 1}
    assert set(failed) == {2, 3, 4}
    assert all(isinstance(error, ConnectionError) for error in failed.values())
    assert group.submit(5) == 5  # nothing is left stuck


def test_an_exception_returned_for_one_item_fails_only_its_caller():
    write = GatedWrite(outcome=lambda item: ValueError(item) if item == 3 else item)
    group = GroupCommit(write, max_weight=100)
    first, results = submit_in_threads(group, [1])
    assert write.entered.wait(10)
    others, more = submit_in_threads(group, [2, 3, 4])
    wait_for_waiters(group, 3)
    write.gate.set()
    for thread in first + others:
        thread.join(10)

    assert write.batches == [[1], [2, 3, 4]]
    assert (results[1], more[2], more[4]) == (1, 2, 4)
    assert isinstance(more[3], ValueError)


def test_a_batch_stops_at_the_weight_limit_and_always_takes_the_head():
    write = GatedWrite()
    group = GroupCommit(write, max_weight=5, weight=lambda item: item)
    first, _ = submit_in_threads(group, [1])
    assert write.entered.wait(10)
    # Queued in this order: 2, 3 fit in 5; then 9 alone (over the limit, but the head).
    queued = []
    for item in (2, 3, 9, 1):
        threads, _ = submit_in_threads(group, [item])
        queued += threads
        wait_for_waiters(group, len(queued))
    write.gate.set()
    for thread in first + queued:
        thread.join(10)

    assert write.batches == [[1], [2, 3], [9], [1]]


def test_an_interrupted_leader_releases_its_followers_with_an_error():
    class Stop(BaseException):
        """Like gevent's GreenletExit: meant for the leader alone."""

    calls: list[list[int]] = []
    entered, gate = threading.Event(), threading.Event()

    def write(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            entered.set()
            assert gate.wait(10)
        if len(calls) == 2:
            raise Stop
        return items

    group = GroupCommit(write, max_weight=100)
    first, _ = submit_in_threads(group, [1])
    assert entered.wait(10)
    outcomes: dict[int, BaseException] = {}

    def run(item: int) -> None:
        try:
            group.submit(item)
        except BaseException as error:  # noqa: BLE001 - recorded for the assertions
            outcomes[item] = error

    batch = [threading.Thread(target=run, args=(item,)) for item in (2, 3)]
    for index, thread in enumerate(batch):
        thread.start()
        wait_for_waiters(group, index + 1)
    gate.set()
    for thread in first + batch:
        thread.join(10)

    assert calls == [[1], [2, 3]]
    assert isinstance(outcomes[2], Stop)  # the leader of the batch gets its own exception
    assert isinstance(outcomes[3], WriteInterrupted)
    assert group.submit(4) == 4  # nothing is left stuck


@pytest.mark.parametrize("callers", [1, 8, 64])
def test_every_caller_gets_exactly_its_own_result_under_contention(callers):
    def write(items: list[int]) -> list[int]:
        time.sleep(0.002)
        return [-item for item in items]

    group = GroupCommit(write, max_weight=16)
    threads, results = submit_in_threads(group, list(range(callers)))
    for thread in threads:
        thread.join(30)

    assert results == {item: -item for item in range(callers)}


def test_a_caller_stopped_when_woken_to_lead_hands_the_lead_to_the_next_one(monkeypatch):
    from shared.platform import group_commit

    class Stop(BaseException):
        """A kill that lands as the caller is woken."""

    class StoppedOnWake(threading.Event):
        def wait(self, timeout=None):
            super().wait(timeout)
            raise Stop

    class Entry(group_commit._Entry):
        def __init__(self, item):
            super().__init__(item)
            if item == 2:
                self.wake = StoppedOnWake()

    monkeypatch.setattr(group_commit, "_Entry", Entry)
    write = GatedWrite()
    group = GroupCommit(write, max_weight=1)  # one item per batch: 2 would lead alone
    outcomes: dict[int, object] = {}

    def run(item: int) -> None:
        try:
            outcomes[item] = group.submit(item)
        except BaseException as error:  # noqa: BLE001 - recorded for the assertions
            outcomes[item] = error

    threads = [threading.Thread(target=run, args=(item,)) for item in (1, 2, 3)]
    threads[0].start()
    assert write.entered.wait(10)
    for count, thread in enumerate(threads[1:], start=1):
        thread.start()
        wait_for_waiters(group, count)
    write.gate.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()

    assert write.batches == [[1], [3]]
    assert outcomes[1] == 10
    assert isinstance(outcomes[2], Stop)
    assert outcomes[3] == 30
    assert group.submit(4) == 40
