"""Signed webhooks delivered at a steady rate, and when each one's processing committed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import queue
import threading
import time
from dataclasses import dataclass

from environment import connect
from figures import percentile_ms
from http_load import Slot, send_paced
from queue_progress import STALL_SECONDS
from sales import Sale, succeeded_event
from stripe_webhooks import event_id, signed_request

COMMIT_POLL_SECONDS = 0.005
COMMIT_POLL_WINDOW = 100


class CommitWatcher(threading.Thread):
    """Sees when each accepted event's processing becomes visible, by polling PostgreSQL.

    An event seen ``processed`` by the query started at t was committed before t and after
    the previous query started: ``seen`` keeps t, an upper bound by one poll interval. Each
    poll asks about the COMMIT_POLL_WINDOW oldest outstanding events (the queue is FIFO,
    so they are the next to finish), which keeps a poll cheap when a backlog builds up.
    """

    def __init__(self, account_id: str) -> None:
        super().__init__(name="commit-watcher", daemon=True)
        self.account_id = account_id
        self.inbox: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.seen: dict[str, float] = {}
        self.outstanding: dict[str, None] = {}  # in order of acceptance
        self.finish = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with connect(autocommit=True) as connection:
                while True:
                    # Every put precedes ``finish``: once it is set, this drain is complete.
                    finishing = self.finish.is_set()
                    with contextlib.suppress(queue.Empty):
                        while True:
                            self.outstanding[self.inbox.get_nowait()] = None
                    if finishing and not self.outstanding:
                        return
                    if self.outstanding:
                        window = list(itertools.islice(self.outstanding, COMMIT_POLL_WINDOW))
                        started = time.time()
                        rows = connection.execute(
                            "SELECT provider_event_id FROM provider_events "
                            "WHERE provider_account_id = %s AND provider_event_id = ANY(%s) "
                            "AND state <> 'pending'",
                            (self.account_id, window),
                        ).fetchall()
                        for (event_id,) in rows:
                            self.seen[event_id] = started
                            del self.outstanding[event_id]
                    time.sleep(COMMIT_POLL_SECONDS)
        except Exception as error:  # noqa: BLE001 - raised again in the main thread (wait_all)
            self.error = error

    def wait_all(self) -> None:
        """Return once every accepted event was seen; raise if progress stalls."""
        self.finish.set()
        last_change, last_count = time.monotonic(), -1
        while self.is_alive():
            self.join(0.5)
            count = len(self.outstanding)
            if count != last_count:
                last_change, last_count = time.monotonic(), count
            elif time.monotonic() - last_change > STALL_SECONDS:
                raise RuntimeError(f"{count} accepted events not processed after {STALL_SECONDS} s")
        if self.error is not None:
            raise self.error


@dataclass
class Delivery:
    event_id: str
    raw: bytes
    accepted_at: float = math.nan  # wall time the 200 arrived
    latency: float = math.nan  # from its scheduled send instant to the answer
    status: int = 0


def deliveries(sales: list[Sale], phase: str, account_id: str, port: int) -> list[Delivery]:
    """Signed HTTP requests for ``sales`` (as the ingest bench's), signed now."""
    signed_at = int(time.time())
    made = []
    for number, sale in enumerate(sales):
        identifier = event_id(phase, number)
        raw = signed_request(account_id, port, succeeded_event(sale, identifier), signed_at)
        made.append(Delivery(identifier, raw))
    return made


async def deliver_paced(
    port: int, batch: list[Delivery], rate: float, watcher: CommitWatcher
) -> tuple[float, float]:
    """Send delivery i at start + i/rate whatever the server does (the ingest bench's open
    loop), noting when each 200 arrived; (elapsed, worst lag of a send behind schedule)."""
    loop = asyncio.get_running_loop()
    idle: list[Slot] = []

    async def send(delivery: Delivery, scheduled: float) -> None:
        slot = idle.pop() if idle else Slot(port)
        delivery.status = await slot.send(delivery.raw)
        delivery.accepted_at = time.time()
        delivery.latency = loop.time() - scheduled
        if delivery.status == 200:
            watcher.inbox.put(delivery.event_id)
        idle.append(slot)

    elapsed, worst_lag = await send_paced(batch, rate, send)
    for slot in idle:
        slot.close()
    return elapsed, worst_lag


def run_paced(
    port: int, batch: list[Delivery], rate: float, account_id: str
) -> tuple[float, float, CommitWatcher]:
    watcher = CommitWatcher(account_id)
    watcher.start()
    elapsed, lag = asyncio.run(deliver_paced(port, batch, rate, watcher))
    watcher.wait_all()
    return elapsed, lag, watcher


def describe_latencies(label: str, values: list[float]) -> str:
    return (
        f"  {label:<46} p50 {percentile_ms(values, 0.50):7.1f} ms  "
        f"p99 {percentile_ms(values, 0.99):7.1f} ms  max {percentile_ms(values, 1.0):7.1f} ms"
        f"  (n={len(values)})"
    )


def describe_timeline(accepted: list[Delivery], seen: dict[str, float], slices: int = 10) -> str:
    """The p50 of "200 -> committed" per slice of the run: flat when the worker keeps up,
    growing when the queue does."""
    if not accepted:
        return ""
    start = accepted[0].accepted_at
    width = max((accepted[-1].accepted_at - start) / slices, 1e-9)
    buckets: list[list[float]] = [[] for _ in range(slices)]
    for delivery in accepted:
        index = min(int((delivery.accepted_at - start) / width), slices - 1)
        buckets[index].append(seen[delivery.event_id] - delivery.accepted_at)
    medians = " ".join(f"{percentile_ms(bucket, 0.5):.0f}" for bucket in buckets if bucket)
    return f"  200 -> committed, p50 per {width:.1f} s of the run (ms): {medians}"
