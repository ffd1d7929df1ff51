"""The period run's SQL pre-filter, pinned to the pure rules on a table of generated groups.

Every combination of what can differ between a payment and its record (currency, amount,
refunded amount, status, how long both have been quiet), payments with no record or with
two, same-customer siblings before, after and outside the duplicate window, and unmatched
records. The pure rules judge each group; the pre-filter may send a clean group to Python
but must never keep back one the rules find something in.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, select, text

from shared.matching.engine import match_settings
from shared.matching.rules import (
    Finding,
    MatchSettings,
    PaymentFacts,
    RecordFacts,
    item_outcome,
    judge_customer_duplicate,
    judge_group,
    judge_unmatched_record,
    primary_record,
)
from shared.models import (
    DISPUTE_STATUSES,
    PAYMENT_STATUSES,
    Payment,
    ProviderRecord,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    ReconciliationItem,
)
from shared.platform.ids import new_id
from shared.runs import period
from shared.runs.lifecycle import period_bounds, trigger_run
from shared.runs.period import reconcile_period, split_period
from tests.support.factories import make_org

DAY = datetime.now(UTC).date() - timedelta(days=1)
START = datetime.combine(DAY, datetime.min.time(), UTC)
END = START + timedelta(days=1)
NOW = START + timedelta(days=1, hours=3)
QUIET = START + timedelta(hours=1)  # grace period (1 h) long over at NOW
BUSY = NOW - timedelta(minutes=5)  # changed within the grace period
WINDOW = timedelta(minutes=10)  # the organisations' duplicate window


@dataclass
class Day:
    """Payments and records of one organisation's day, written in two statements."""

    org_id: uuid.UUID
    payments: list[dict] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    plainly_clean: set[uuid.UUID] = field(default_factory=set)  # equal pair, no sibling

    def at(self) -> datetime:
        # Each case has its own minute, its own amounts and its own customer: cases never
        # meet (no heuristic pair, no sibling) unless a case makes them.
        return START + timedelta(hours=1, seconds=7 * (len(self.payments) + len(self.records)))

    def amount(self) -> int:
        return 10_000 * (1 + len(self.payments) + len(self.records))

    def payment(self, *, status="succeeded", amount=None, refunded=0, updated=QUIET, **extra):
        values = {
            "id": uuid.uuid4(), "org_id": self.org_id, "external_id": f"inv_{uuid.uuid4().hex}",
            "provider": "stripe", "provider_reference": None, "currency": "EUR",
            "status": status, "amount_minor": amount or self.amount(),
            "amount_refunded_minor": refunded, "customer_ref": f"cus_{uuid.uuid4().hex[:10]}",
            "occurred_at": self.at(), "created_at": START, "updated_at": updated,
        } | extra  # fmt: skip
        self.payments.append(values)
        return values

    def record(self, payment: dict | None, *, updated=QUIET, **extra) -> dict:
        base = payment or {"currency": "EUR", "status": "succeeded", "amount_minor": None,
                           "amount_refunded_minor": 0, "customer_ref": None,
                           "occurred_at": self.at()}  # fmt: skip
        values = {
            "id": uuid.uuid4(), "org_id": self.org_id, "provider": "stripe",
            "provider_reference": f"pi_{uuid.uuid4().hex}", "merchant_reference": None,
            "currency": base["currency"], "status": base["status"],
            "amount_minor": base["amount_minor"] or self.amount(),
            "amount_refunded_minor": base["amount_refunded_minor"],
            "customer_ref": base["customer_ref"], "occurred_at": base["occurred_at"],
            "last_event_at": base["occurred_at"], "refunds": {},
            "payment_id": payment and payment["id"],
            "match_method": payment and "provider_reference",
            "matched_at": payment and START, "created_at": START, "updated_at": updated,
        } | extra  # fmt: skip
        self.records.append(values)
        return values

    def payments_of_period(self) -> set[uuid.UUID]:
        return {p["id"] for p in self.payments if START <= p["occurred_at"] < END}

    def write(self, session) -> None:
        session.execute(insert(Payment), self.payments)
        session.execute(insert(ProviderRecord), self.records)


def generated_day(session, org_id: uuid.UUID) -> Day:
    """Every case the rules tell apart, one group (or unmatched record) each."""
    day = Day(org_id)
    # One record: each field equal or not, both sides quiet or one still changing.
    for currency, amount, refunded, (payment_status, record_status), updated in itertools.product(
        ("EUR", "USD"),
        (0, 1, 50, None),  # record amount minus payment amount; None: not known yet
        (0, 1, 50),  # record refunded minus payment refunded
        itertools.product(PAYMENT_STATUSES, PAYMENT_STATUSES),
        (QUIET, BUSY),
    ):
        payment = day.payment(status=payment_status, refunded=100, updated=updated)
        day.record(
            payment,
            currency=currency,
            status=record_status,
            amount_minor=None if amount is None else payment["amount_minor"] + amount,
            amount_refunded_minor=100 + refunded,
        )
        if (currency, amount, refunded, payment_status == record_status) == ("EUR", 0, 0, True):
            day.plainly_clean.add(payment["id"])
    # Two records on one payment, every pair of statuses.
    for first, second in itertools.product(PAYMENT_STATUSES, PAYMENT_STATUSES):
        payment = day.payment()
        day.record(payment, status=first)
        day.record(
            payment, status=second, occurred_at=payment["occurred_at"] + timedelta(seconds=30)
        )
    # No record at all; and records with no payment.
    for status, created in itertools.product(PAYMENT_STATUSES, (START, BUSY)):
        day.payment(status=status, created_at=created)
        day.record(None, status=status, created_at=created, customer_ref="cus_lonely")
    # A same-customer sibling: before, at the edge of, outside and after the window; of
    # the same or another amount; charged or not; unmatched or bound to another payment.
    for subject_status, offset, same_amount, sibling_status, bound in itertools.product(
        ("succeeded", "partially_refunded", "failed"),
        (-WINDOW / 2, -WINDOW, -WINDOW - timedelta(seconds=1), timedelta(0), WINDOW / 2),
        (True, False),
        ("succeeded", "failed"),
        (False, True),
    ):
        payment = day.payment(status=subject_status)
        subject = day.record(payment)
        amount = payment["amount_minor"] if same_amount else payment["amount_minor"] + 1
        other = (
            day.payment(status=sibling_status, amount=amount, customer_ref=None) if bound else None
        )
        day.record(
            other,
            status=sibling_status,
            amount_minor=amount,
            customer_ref=subject["customer_ref"],
            occurred_at=subject["occurred_at"] + offset,
        )
        if bound and offset < timedelta(0):  # the subject comes later: no earlier sibling
            day.plainly_clean.add(other["id"])
    # At the period's start: a sibling from the evening before, inside the window (bound
    # to a payment of that evening); and an equal record of the day before bound to a
    # payment of the period (judged in Python, found clean).
    first = day.payment(occurred_at=START + WINDOW / 5)
    subject = day.record(first)
    evening = START - WINDOW / 2
    day.record(
        day.payment(amount=first["amount_minor"], customer_ref=None, occurred_at=evening),
        customer_ref=subject["customer_ref"],
    )
    day.record(day.payment(occurred_at=START + WINDOW / 4), occurred_at=START - timedelta(hours=2))
    # A dispute in every status: on an otherwise equal pair, and on a pending record with
    # no payment (only the dispute can be found there).
    for status in DISPUTE_STATUSES:
        dispute = {
            "dispute_status": status,
            "dispute_provider_status": f"provider_{status}",
            "dispute_amount_minor": 500,
            "dispute_reason": "fraudulent",
        }
        day.record(day.payment(customer_ref=None), **dispute)
        day.record(None, status="pending", **dispute)
    # No customer at all: nothing can repeat it.
    for status in PAYMENT_STATUSES:
        day.plainly_clean.add(
            day.record(day.payment(status=status, customer_ref=None))["payment_id"]
        )
    day.write(session)
    return day


def _facts(facts_type, rows) -> list:
    names = [f.name for f in fields(facts_type)]
    return [facts_type(**{name: getattr(row, name) for name in names}) for row in rows]


@dataclass
class Verdicts:
    """What the pure rules say about each payment's group and each unmatched record."""

    by_payment: dict[uuid.UUID, list[Finding]]
    groups: dict[uuid.UUID, list[RecordFacts]]
    unmatched: dict[uuid.UUID, list[Finding]]

    def keys(self) -> set:
        found = [*self.by_payment.values(), *self.unmatched.values()]
        return {finding.key for findings in found for finding in findings}


def pure_verdicts(session, org_id: uuid.UUID, settings: MatchSettings) -> Verdicts:
    """The rules applied to the rows as stored (after any binding the run did): to the
    period's payments and unmatched records, with every record as a possible sibling."""
    in_period = (Payment.occurred_at >= START, Payment.occurred_at < END)
    payments = _facts(PaymentFacts, session.scalars(
        select(Payment).where(Payment.org_id == org_id, *in_period)))  # fmt: skip
    records = _facts(RecordFacts, session.scalars(
        select(ProviderRecord).where(ProviderRecord.org_id == org_id)))  # fmt: skip
    groups, by_customer = defaultdict(list), defaultdict(list)
    for record in records:
        by_customer[record.customer_ref].append(record)
        if record.payment_id is not None:
            groups[record.payment_id].append(record)

    def repeats(record: RecordFacts) -> list[Finding]:
        # Both paths look for siblings only once a record's amount is known.
        if record.amount_minor is None:
            return []
        return judge_customer_duplicate(record, by_customer[record.customer_ref], settings)

    by_payment = {
        payment.id: judge_group(payment, groups[payment.id], settings, NOW)
        + [finding for record in groups[payment.id] for finding in repeats(record)]
        for payment in payments
    }
    unmatched = {
        record.id: judge_unmatched_record(record, settings, NOW) + repeats(record)
        for record in records
        if record.payment_id is None and START <= record.occurred_at < END
    }
    return Verdicts(by_payment, dict(groups), unmatched)


@pytest.fixture(params=[0, 5], ids=["exact", "tolerance 5"])
def org(request, session):
    return make_org(
        session,
        timezone="UTC",
        grace_period_seconds=3600,
        amount_tolerance_minor=request.param,
        duplicate_window_seconds=int(WINDOW.total_seconds()),
    )


def new_run(session, org):
    return trigger_run(session=session, org_id=org.id, period_start=DAY, period_end=DAY,
                       triggered_by="api").run  # fmt: skip


def test_the_pre_filter_never_keeps_back_a_group_the_rules_find_something_in(session, org):
    day = generated_day(session, org.id)
    settings = match_settings(session=session, org_id=org.id)
    run = new_run(session, org)
    start, end = period_bounds(org, DAY, DAY)
    split = split_period(
        session=session, run_id=run.id, org_id=org.id, start=start, end=end, settings=settings
    )
    candidates = set(session.scalars(text("SELECT payment_id FROM pg_temp.period_candidates")))
    clean = day.payments_of_period() - candidates
    verdicts = pure_verdicts(session, org.id, settings)
    kept_back = {pid for pid, findings in verdicts.by_payment.items() if findings} & clean
    assert kept_back == set()
    # Not a filter that sends everything to Python: the plainly clean pairs stay in SQL.
    assert day.plainly_clean <= clean
    assert (split.clean, split.candidates) == (len(clean), len(candidates))
    # Counted, not written: the incremental path never judged these pairs otherwise.
    assert split.changed == 0
    assert (
        session.scalars(select(ReconciliationItem).where(ReconciliationItem.run_id == run.id)).all()
        == []
    )
    assert {f.type for findings in verdicts.by_payment.values() for f in findings} == {
        "MissingProviderRecord", "AmountMismatch", "CurrencyMismatch", "StatusMismatch",
        "DuplicateChargeSuspected", "DisputeOpened",
    }  # fmt: skip


def test_the_period_run_finds_what_the_pure_rules_find(session, org):
    day = generated_day(session, org.id)
    settings = match_settings(session=session, org_id=org.id)
    run = new_run(session, org)
    start, end = period_bounds(org, DAY, DAY)
    result = reconcile_period(
        session=session, run_id=run.id, org_id=org.id, start=start, end=end,
        settings=settings, now=NOW,
    )  # fmt: skip
    session.flush()
    verdicts = pure_verdicts(session, org.id, settings)
    opened = {
        (d.type, d.payment_id, d.provider_record_id)
        for d in session.scalars(
            select(ReconciliationDiscrepancy).where(ReconciliationDiscrepancy.org_id == org.id)
        )
    }
    assert opened == verdicts.keys()
    assert result.opened == len(opened)
    assert sum(total.count for total in result.found) == sum(
        len(findings) for findings in [*verdicts.by_payment.values(), *verdicts.unmatched.values()]
    )
    assert "MissingInternalRecord" in {key[0] for key in opened}
    outcomes = {
        (item.payment_id, item.provider_record_id): item.outcome
        for item in session.scalars(
            select(ReconciliationItem).where(ReconciliationItem.run_id == run.id)
        )
    }
    verdicts_of_run, exceptions = {}, {}
    for payment_id, findings in verdicts.by_payment.items():
        records = verdicts.groups.get(payment_id, [])
        if records:
            verdicts_of_run[payment_id, primary_record(records).id] = item_outcome(findings)
            if findings:
                exceptions[payment_id, primary_record(records).id] = item_outcome(findings)
        elif findings:
            verdicts_of_run[payment_id, None] = exceptions[payment_id, None] = "missing_provider"
    for record_id, findings in verdicts.unmatched.items():
        if any(f.type == "MissingInternalRecord" for f in findings):
            verdicts_of_run[None, record_id] = exceptions[None, record_id] = "missing_internal"
    # Items for the exceptions only; every verdict still counts in the run's figures.
    assert outcomes == exceptions
    assert result.items_written == len(exceptions) < len(verdicts_of_run)
    assert (result.payments_checked, result.items) == (
        len(day.payments_of_period()),
        len(verdicts_of_run),
    )
    assert result.matched == list(verdicts_of_run.values()).count("matched")


def test_python_gets_candidates_and_unmatched_records_a_page_at_a_time(session, monkeypatch):
    """Memory does not grow with the period: nothing Python judges comes in one piece."""
    org = make_org(session, timezone="UTC")
    day = Day(org.id)
    for _ in range(7):
        day.payment()  # no record: a candidate
        day.record(None)  # no payment: unmatched
    day.write(session)
    monkeypatch.setattr(period, "PAGE", 3)
    start, end = period_bounds(org, DAY, DAY)
    settings = match_settings(session=session, org_id=org.id)
    split_period(session=session, run_id=new_run(session, org).id, org_id=org.id, start=start,
                 end=end, settings=settings)  # fmt: skip
    assert [len(page) for page in period._candidate_groups(session)] == [3, 3, 1]
    pages = list(period._unmatched_records(session, org.id, start, end))
    assert [len(page) for page in pages] == [3, 3, 1]


def test_a_period_run_locks_no_payment_it_finds_nothing_in(committed):
    """Billing may lock and change those payments while the run is still writing its items,
    the one it binds a record to included (a discrepancy's own foreign key still holds its
    payment)."""
    from shared.platform.db import SessionFactory

    with SessionFactory(bind=committed) as setup, setup.begin():
        org = make_org(setup, timezone="UTC")
        day = Day(org.id)
        clean = [day.payment() for _ in range(3)]  # items written by the split statement
        for payment in clean:
            day.record(payment)
        bound_by_run = day.payment()  # its record arrived first: the run binds it
        day.record(bound_by_run, payment_id=None, match_method=None, matched_at=None,
                   merchant_reference=bound_by_run["external_id"])  # fmt: skip
        day.record(day.payment(), amount_minor=1)  # AmountMismatch: judged in Python
        day.payment()  # no record: MissingProviderRecord
        day.write(setup)
        org_id = org.id
    with SessionFactory(bind=committed) as run_session, run_session.begin():
        org = run_session.get(type(org), org_id)
        run = new_run(run_session, org)
        start, end = period_bounds(org, DAY, DAY)
        result = reconcile_period(
            session=run_session, run_id=run.id, org_id=org_id, start=start, end=end,
            settings=match_settings(session=run_session, org_id=org_id), now=NOW,
        )  # fmt: skip
        assert (result.items, result.opened) == (6, 2)
        bound = run_session.scalars(
            select(ProviderRecord.payment_id).where(ProviderRecord.merchant_reference.is_not(None))
        ).all()
        assert bound == [bound_by_run["id"]]
        with committed.connect() as billing:  # before the run commits
            free = billing.scalars(
                select(Payment.id).where(Payment.org_id == org_id).with_for_update(skip_locked=True)
            ).all()
        assert set(free) == {payment["id"] for payment in [*clean, bound_by_run]}


def test_a_clean_pair_gets_an_item_only_when_its_verdict_changed_since_the_incremental_path(
    session, org
):
    """The incremental path's latest verdict decides: an exception it recorded and nothing
    since (the pair, or the record alone), and not one it recorded then superseded."""
    day = Day(org.id)
    pairs = [day.record(day.payment()) for _ in range(5)]
    # A clean match in Python's hands (a second, uncharged record on the payment).
    judged = day.payment()
    day.record(judged, occurred_at=judged["occurred_at"] - timedelta(seconds=30))
    day.record(judged, status="failed", amount_minor=1)
    day.write(session)
    primary = next(r for r in day.records if r["payment_id"] == judged["id"])

    def incremental(record, outcome, payment=True):
        payment_id = record["payment_id"] if payment else None
        session.execute(insert(ReconciliationItem).values(
            id=new_id(), org_id=org.id, payment_id=payment_id, provider_record_id=record["id"],
            outcome=outcome))  # fmt: skip

    incremental(pairs[0], "mismatched")  # changed
    incremental(pairs[1], "mismatched")
    incremental(pairs[1], "matched")  # superseded: unchanged
    incremental(pairs[2], "missing_internal", payment=False)  # the record alone: changed
    incremental(pairs[3], "matched")  # unchanged
    incremental(primary, "missing_internal", payment=False)  # changed, judged in Python
    run = new_run(session, org)
    start, end = period_bounds(org, DAY, DAY)
    result = reconcile_period(
        session=session, run_id=run.id, org_id=org.id, start=start, end=end,
        settings=match_settings(session=session, org_id=org.id), now=NOW,
    )  # fmt: skip
    written = session.execute(
        select(ReconciliationItem.provider_record_id, ReconciliationItem.outcome).where(
            ReconciliationItem.run_id == run.id
        )
    ).all()
    assert sorted(written) == sorted(
        (record["id"], "matched") for record in (pairs[0], pairs[2], primary)
    )
    assert (result.items, result.matched, result.items_written) == (6, 6, 3)


def test_findings_are_opened_set_based_once_at_the_end_of_the_run(session, monkeypatch):
    """Staged batch by batch, then one INSERT … SELECT for the discrepancies and their log
    entries, whatever the number of batches."""
    org = make_org(session, timezone="UTC")
    day = Day(org.id)
    for _ in range(7):
        day.payment()  # no record: MissingProviderRecord
        day.record(day.payment(), amount_minor=1)  # AmountMismatch
    day.write(session)
    monkeypatch.setattr(period, "PAGE", 3)
    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", seen)
    run = new_run(session, org)
    start, end = period_bounds(org, DAY, DAY)
    result = reconcile_period(
        session=session, run_id=run.id, org_id=org.id, start=start, end=end,
        settings=match_settings(session=session, org_id=org.id), now=NOW,
    )  # fmt: skip
    event.remove(connection, "before_cursor_execute", seen)
    openings = [s for s in statements if "INSERT INTO reconciliation_discrepancies" in s]
    assert len(openings) == 1
    assert "INSERT INTO reconciliation_action_logs" in openings[0]
    assert not [s for s in statements if s.startswith("INSERT INTO reconciliation_action_logs")]
    assert result.opened == 14
    logged = session.scalars(
        select(ReconciliationActionLog.action).where(ReconciliationActionLog.org_id == org.id)
    ).all()
    assert logged == ["opened"] * 14
    opened_by_run = session.scalars(
        select(ReconciliationDiscrepancy.run_id).where(ReconciliationDiscrepancy.org_id == org.id)
    ).all()
    assert set(opened_by_run) == {run.id}


def test_the_runs_openings_name_the_provider_of_their_subjects(session):
    org = make_org(session, timezone="UTC")
    day = Day(org.id)
    day.payment(provider="adyen")  # no record: MissingProviderRecord
    day.record(None, provider="standard")  # no payment: MissingInternalRecord
    day.record(day.payment(), amount_minor=1)  # Stripe both sides: AmountMismatch
    day.write(session)
    run = new_run(session, org)
    start, end = period_bounds(org, DAY, DAY)
    reconcile_period(
        session=session, run_id=run.id, org_id=org.id, start=start, end=end,
        settings=match_settings(session=session, org_id=org.id), now=NOW,
    )  # fmt: skip
    mine = select(ReconciliationDiscrepancy).where(ReconciliationDiscrepancy.org_id == org.id)
    assert {(d.type, d.provider) for d in session.scalars(mine)} == {
        ("MissingProviderRecord", "adyen"),
        ("MissingInternalRecord", "standard"),
        ("AmountMismatch", "stripe"),
    }
