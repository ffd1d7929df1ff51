"""A steady webhook load from a child process, for benches that measure something else under it.

The sender runs in its own process (its own interpreter and event loop), so the measuring
client's latencies are not its scheduling delays. Webhooks are signed just before they are
sent, so the load may last longer than the signature tolerance.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass


def add_stripe_account(org_id) -> str:
    """A Stripe account of ``org_id`` signed with the bench secret; its id."""
    from stripe_webhooks import STRIPE_SECRET

    from shared.platform.db import dispose_engine, unit_of_work
    from shared.providers.accounts import add_provider_account

    with unit_of_work() as session:
        account = add_provider_account(
            session=session, org_id=org_id, provider="stripe", secret=STRIPE_SECRET, name="load"
        )
    dispose_engine()
    return str(account.id)


async def _send_until(port: int, account_id: str, rate: float, stop, statuses: Counter) -> None:
    from http_load import Slot
    from stripe_webhooks import event_id, signed_request, stripe_event

    loop = asyncio.get_running_loop()
    idle: list[Slot] = []
    tasks: set[asyncio.Task] = set()

    async def send(number: int) -> None:
        slot = idle.pop() if idle else Slot(port)
        created = int(time.time())
        request = signed_request(
            account_id, port, stripe_event(event_id("L", number), created), created
        )
        statuses[await slot.send(request)] += 1
        idle.append(slot)

    start = loop.time()
    for number in itertools.count():
        if stop.is_set():
            break
        delay = start + number / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(number))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    for slot in idle:
        slot.close()


def _sender(port: int, account_id: str, rate: float, stop, results) -> None:
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    asyncio.run(_send_until(port, account_id, rate, stop, statuses))
    results.put((dict(statuses), time.monotonic() - started))


@dataclass
class LoadOutcome:
    statuses: dict[int, int]
    elapsed: float

    @property
    def accepted_rate(self) -> float:
        return self.statuses.get(200, 0) / self.elapsed if self.elapsed else 0.0


class WebhookLoad:
    """Signed Stripe webhooks at ``rate``/s (open loop) to the server on ``port`` until
    :meth:`stop`."""

    def __init__(self, port: int, account_id: str, rate: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results = context.Queue()
        self.process = context.Process(
            target=_sender, args=(port, account_id, rate, self._stop, self._results), daemon=True
        )
        self.process.start()

    def stop(self) -> LoadOutcome | None:
        """Stop sending; what was answered (None if the sender died)."""
        self._stop.set()
        try:
            statuses, elapsed = self._results.get(timeout=60)
        except Exception:  # noqa: BLE001 - the sender died: no figures, the bench goes on
            statuses, elapsed = None, 0.0
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
        return None if statuses is None else LoadOutcome(statuses, elapsed)
