"""A small asyncio HTTP/1.1 client (no dependency) for closed- and open-loop phases.

Closed loop: C connections, each sending its next request when the last is answered.
Open loop: request i is sent at start + i/rate whatever the server does, and its latency
runs from that instant (so a stalled server cannot hide its queueing delay by slowing the
client down). At a few thousand requests/s the client needs most of a core.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cpu_meters import CpuMeter
from figures import percentile_ms


def healthz_requests(count: int, port: int) -> list[bytes]:
    """``count`` copies of a ``GET /healthz``: the baseline, the server doing nothing."""
    request = (
        f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "User-Agent: recon-bench\r\nAccept: application/json\r\n\r\n"
    ).encode()
    return [request] * count


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection; answers each request's future with the status code.

    Honours ``Connection: close`` (gunicorn's sync workers close after every response),
    so a slot reconnects when needed and reuses the connection otherwise.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length, close = 0, head.startswith(b"http/1.0")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip() == b"close"
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        if close:
            self.closed = True
            self.transport.close()
        waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed before the response ended"))


class Slot:
    """A client connection slot: one request at a time, reconnecting when closed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: HttpConnection | None = None

    async def send(self, raw: bytes) -> int:
        """The response status of ``raw``, or 0 on a connection error."""
        loop = asyncio.get_running_loop()
        try:
            if self.connection is None or self.connection.closed:
                _, self.connection = await loop.create_connection(
                    HttpConnection, "127.0.0.1", self.port
                )
            connection = self.connection
            connection.waiter = loop.create_future()
            connection.transport.write(raw)
            return await connection.waiter
        except OSError:
            self.close()
            return 0

    def close(self) -> None:
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.close()
        self.connection = None


@dataclass
class Outcome:
    """What one phase measured."""

    label: str
    sent: int
    elapsed: float
    latencies: list[float]
    statuses: Counter[int]
    cpu: str = ""
    # Percentiles (fraction → ms) a client reported itself, when it gives no latency list.
    percentiles: dict[float, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if fraction in self.percentiles:
            return self.percentiles[fraction]
        return percentile_ms(self.latencies, fraction)


async def closed_loop(port: int, requests: list[bytes], concurrency: int) -> Outcome:
    """Send every request through ``concurrency`` slots, each sending its next when answered."""
    latencies = [0.0] * len(requests)
    statuses: Counter[int] = Counter()
    pending = iter(range(len(requests)))

    async def run_slot() -> None:
        slot = Slot(port)
        for index in pending:
            started = time.perf_counter()
            status = await slot.send(requests[index])
            latencies[index] = time.perf_counter() - started
            statuses[status] += 1
        slot.close()

    started = time.perf_counter()
    await asyncio.gather(*(run_slot() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Outcome("", len(requests), elapsed, latencies, statuses)


@contextlib.contextmanager
def _no_collector_pauses() -> Iterator[None]:
    """No cyclic garbage collection in this process meanwhile: a full collection over the
    bench's objects held the paced client 45-50 ms behind its schedule, time the open
    loop counts against the server (worst lag 3-7 ms without)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def open_loop(port: int, requests: list[bytes], rate: float) -> tuple[Outcome, float]:
    """Send request i at start + i/rate whatever the server does; latency from that instant.

    Returns the outcome and the largest lag of a send behind its schedule (a client that
    cannot keep its schedule would show here).
    """
    loop = asyncio.get_running_loop()
    latencies = [0.0] * len(requests)
    statuses: Counter[int] = Counter()
    idle: list[Slot] = []

    async def send(index: int, scheduled: float) -> None:
        slot = idle.pop() if idle else Slot(port)
        status = await slot.send(requests[index])
        latencies[index] = loop.time() - scheduled
        statuses[status] += 1
        idle.append(slot)

    elapsed, worst_lag = await send_paced(range(len(requests)), rate, send)
    for slot in idle:
        slot.close()
    return Outcome("", len(requests), elapsed, latencies, statuses), worst_lag


async def send_paced(
    items: Iterable[Any], rate: float, send: Callable[[Any, float], Awaitable[None]]
) -> tuple[float, float]:
    """Start ``send(item, scheduled)`` for item i at start + i/rate, whatever the server
    does, and wait for all; (elapsed, largest lag of a start behind its schedule)."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task] = []
    worst_lag = 0.0
    start = loop.time() + 0.05
    with _no_collector_pauses():
        for index, item in enumerate(items):
            scheduled = start + index / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            worst_lag = max(worst_lag, loop.time() - scheduled)
            tasks.append(asyncio.create_task(send(item, scheduled)))
        await asyncio.gather(*tasks)
    return loop.time() - start, worst_lag


def print_outcome(outcome: Outcome, unit: str) -> None:
    """One line of a phase's rate, p50, p99 and errors, then its CPU lines."""
    errors = outcome.sent - outcome.ok
    codes = ", ".join(
        f"{status or 'connection error'}: {count}"
        for status, count in sorted(outcome.statuses.items())
    )
    print(
        f"{outcome.label:<34} {outcome.sent:>7} sent  {outcome.rate:>8,.0f} {unit}/s  "
        f"p50 {outcome.percentile_ms(0.50):6.1f} ms  p99 {outcome.percentile_ms(0.99):6.1f} ms  "
        f"non-2xx {errors}" + (f" ({codes})" if errors else "")
    )
    if outcome.cpu:
        print(outcome.cpu)


def measure(meter: CpuMeter, label: str, coroutine) -> Outcome:
    """Run a phase's ``coroutine`` between two CPU snapshots; its outcome, labelled."""
    before = meter.snapshot()
    result = asyncio.run(coroutine)
    outcome, extra = result if isinstance(result, tuple) else (result, None)
    after = meter.snapshot()
    outcome.label = label
    outcome.cpu = CpuMeter.describe(before, after, outcome.elapsed, outcome.sent)
    if extra is not None:
        outcome.cpu += f"\n  worst send lag behind schedule: {extra * 1000:.1f} ms"
    return outcome
