"""What the database holds about a phase's events, checked against what its data must give."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from environment import connect
from sales import Sale


@dataclass
class Stored:
    """What the database holds about a phase's events."""

    states: Counter[str]
    items: Counter[str]
    methods: Counter[str]
    discrepancies: Counter[str]
    opened_actions: int


def stored(phase: str) -> Stored:
    """Counts of the phase's events by state and of what processing them wrote."""
    with connect(autocommit=True) as connection:
        # The phase's events, their records (by PaymentIntent id) and what was written.
        scope = (
            "WITH r AS (SELECT pr.id FROM provider_events e JOIN provider_records pr "
            "ON pr.org_id = e.org_id AND pr.provider_reference = "
            "e.payload -> 'data' -> 'object' ->> 'id' "
            "WHERE e.provider_event_id LIKE %(pattern)s) "
        )
        pattern = {"pattern": f"evt_{phase}%"}

        def counted(sql: str) -> Counter[str]:
            return Counter(dict(connection.execute(sql, pattern).fetchall()))

        return Stored(
            states=counted(
                "SELECT state, count(*) FROM provider_events "
                "WHERE provider_event_id LIKE %(pattern)s GROUP BY 1"
            ),
            items=counted(
                scope + "SELECT outcome, count(*) FROM reconciliation_items "
                "WHERE provider_record_id IN (SELECT id FROM r) GROUP BY 1"
            ),
            methods=counted(
                scope + "SELECT coalesce(match_method, 'unmatched'), count(*) "
                "FROM provider_records WHERE id IN (SELECT id FROM r) GROUP BY 1"
            ),
            discrepancies=counted(
                scope + "SELECT type, count(*) FROM reconciliation_discrepancies "
                "WHERE provider_record_id IN (SELECT id FROM r) GROUP BY 1"
            ),
            opened_actions=connection.execute(
                scope + "SELECT count(*) FROM reconciliation_action_logs l "
                "JOIN reconciliation_discrepancies d ON d.id = l.discrepancy_id "
                "WHERE l.action = 'opened' AND d.provider_record_id IN (SELECT id FROM r)",
                pattern,
            ).fetchone()[0],
        )


def check_phase(label: str, sales: list[Sale], result: Stored) -> bool:
    """Print what the phase wrote against what its data must produce; True if it all holds."""
    count = len(sales)
    mismatched = sum(sale.mismatched for sale in sales)
    by_reference = sum(sale.intent_known for sale in sales)
    expected = {
        "processed events": (result.states["processed"], count),
        "failed events": (result.states["failed"], 0),
        "items": (sum(result.items.values()), count),
        "items mismatched": (result.items["mismatched"], mismatched),
        "matched by provider_reference": (result.methods["provider_reference"], by_reference),
        "matched by merchant_reference": (
            result.methods["merchant_reference"],
            count - by_reference,
        ),
        "AmountMismatch discrepancies": (result.discrepancies["AmountMismatch"], mismatched),
        "other discrepancies": (
            sum(result.discrepancies.values()) - result.discrepancies["AmountMismatch"],
            0,
        ),
        "'opened' action-log entries": (result.opened_actions, mismatched),
    }
    good = all(found == wanted for found, wanted in expected.values())
    print(f"  check ({label}): " + ("all as expected" if good else "DIFFERENCES"))
    for name, (found, wanted) in expected.items():
        mark = "ok" if found == wanted else f"expected {wanted}"
        print(f"    {name:<32} {found:>7}  {mark}")
    return good


def stored_times(phase: str) -> dict[str, tuple[float, float]]:
    """provider_event_id -> (processed_at, item created_at) as Unix times, for the phase."""
    with connect(autocommit=True) as connection:
        rows = connection.execute(
            "SELECT e.provider_event_id, extract(epoch FROM e.processed_at)::float8, "
            "extract(epoch FROM i.created_at)::float8 "
            "FROM provider_events e "
            "JOIN provider_records r ON r.org_id = e.org_id "
            "AND r.provider_reference = e.payload -> 'data' -> 'object' ->> 'id' "
            "JOIN reconciliation_items i ON i.provider_record_id = r.id "
            "WHERE e.provider_event_id LIKE %s",
            (f"evt_{phase}%",),
        ).fetchall()
    return {event_id: (processed, created) for event_id, processed, created in rows}
