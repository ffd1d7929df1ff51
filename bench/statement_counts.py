"""SQL statements and commits per processed event, counted in this process."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter

from processed_events import check_phase, stored
from sales import SaleMaker, load_payments, store_events


def count_statements(account_id: str, org_id: uuid.UUID, count: int, seed: int) -> bool:
    """Print the SQL statements and commits per event, counted in this process with
    SQLAlchemy's ``before_cursor_execute`` and ``commit`` events: ``count`` events processed
    one per transaction, then ``count`` others through the task's function, called once per
    event as the tasks are (each call claims up to a batch of pending events). True if both
    wrote what their data must produce."""
    from sqlalchemy import event

    from shared.ingest.processing import process_pending_events, process_provider_event
    from shared.platform.db import get_engine, unit_of_work

    maker = SaleMaker(random.Random(seed))
    alone, together = maker.sales(count, "S"), maker.sales(count, "T")
    load_payments(org_id, alone + together)
    counted: Counter[str] = Counter()
    engine = get_engine()
    event.listen(engine, "before_cursor_execute", lambda *_: counted.update(["statements"]))
    event.listen(engine, "commit", lambda *_: counted.update(["commits"]))
    good = True
    for label, sales, phase, process in (
        ("one event per transaction", alone, "S", process_provider_event),
        ("the task's batch claims", together, "T", process_pending_events),
    ):
        ids = store_events(org_id, uuid.UUID(account_id), sales, phase)
        counted.clear()
        started = time.perf_counter()
        for event_id in ids:
            with unit_of_work() as session:
                process(session=session, event_id=uuid.UUID(event_id))
        elapsed = time.perf_counter() - started
        print(
            f"  {label:<26} {counted['statements'] / count:6.2f} statements and "
            f"{counted['commits'] / count:.2f} commits per event (each commit after a BEGIN); "
            f"{elapsed * 1000 / count:.2f} ms per event in this one process"
        )
        good = check_phase(label, sales, stored(phase)) and good
    return good
