"""The period run: a whole organisation's period re-checked in the database, set-based.

Binding. The period's unmatched records are matched with SQL joins over the period (plus
a look-around window for records near its edges) in the matching order of
shared/matching/rules.py, and recorded on the records as the incremental path does.

Judging. One statement splits the period's payments in two. A payment with exactly one
record that agrees with it on currency, amount, refunded amount and status, and that has
no possible same-customer duplicate, cannot give any finding (docs/decisions.md, "Period
runs and reports", has the argument and tests/runs/test_period.py pins it to the rules): that
statement counts it as matched. Every other payment of the period — a candidate — is
streamed to Python with its records (a server-side cursor, Core rows, no ORM objects) and
judged by the same pure functions as the incremental path, as are the period's unmatched
records. Their findings are staged batch by batch (COPY) and opened at the end, one
INSERT … SELECT for the discrepancies and one for their ``opened`` entries; they are
also kept in a temporary table, where the report's totals and a verification run's
auto-resolution read them. Nothing holds the period in memory.

Recording. A run writes ``reconciliation_items`` for its exceptions only: every verdict
that is not a clean match (a pair type found, a finding on a matched group, a Missing
finding) and every clean match whose verdict changed since the incremental path judged
it. The other matches are counted, and the run keeps the fingerprint of the period's
matched set (shared/runs/fingerprint.py), taken by the statement that splits the period.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import column, exists, select, table, text
from sqlalchemy.orm import Session

from shared.discrepancies.disputes import follow_disputes
from shared.discrepancies.lifecycle import UNRESOLVED, auto_resolve
from shared.discrepancies.opening import (
    CREATE_STAGED_OPENINGS,
    STAGED_OPENING_COLUMNS,
    STAGED_OPENINGS,
    open_staged_discrepancies,
    staged_opening,
)
from shared.matching.rules import (
    DISPUTE_OPENED,
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
    MATCHING_DISCREPANCY_TYPES,
    Payment,
    ProviderRecord,
    ReconciliationDiscrepancy,
)
from shared.platform.bulk import copy_rows
from shared.platform.ids import SQL_NEW_ID, new_id
from shared.runs.binding import bind_period
from shared.runs.fingerprint import DIGEST_SQL, PAIRS_SQL, MatchedSet

PAGE = 1_000  # candidate groups (or unmatched records) judged and written per batch
# For the run's transaction: its hash joins over the whole period fit in memory instead
# of spilling to batches on disk (docs/decisions.md has the figures).
WORK_MEM = "64MB"
ITEM_COLUMNS = (
    "id", "org_id", "run_id", "payment_id", "provider_record_id", "outcome", "match_method",
    "amount_difference_minor",
)  # fmt: skip
FINDING_COLUMNS = (
    "type", "payment_id", "provider_record_id", "amount_minor", "currency", "difference_minor",
    "dispute_status",
)  # fmt: skip
PAYMENT_FIELDS = tuple(f.name for f in fields(PaymentFacts))
RECORD_FIELDS = tuple(f.name for f in fields(RecordFacts))


@dataclass(frozen=True)
class FoundTotal:
    """A run's findings of one type in one currency: how many, and the money at stake."""

    type: str
    currency: str
    count: int
    amount_minor: int  # the findings' amounts, summed
    difference_minor: int  # their absolute differences (AmountMismatch), summed
    dispute_status: str | None = None  # DisputeOpened: one total per dispute status


@dataclass
class PeriodResult:
    """What a period run checked and found (every finding, opened now or before)."""

    payments_checked: int = 0
    provider_records_checked: int = 0
    matched: int = 0
    items: int = 0  # verdicts: every pair judged, and every Missing finding
    items_written: int = 0  # the exceptions among them, and the verdicts that changed
    opened: int = 0
    auto_resolved: int = 0
    found: list[FoundTotal] = field(default_factory=list)
    matched_set: MatchedSet | None = None

    def add_written(self, items: int, opened: int) -> None:
        """Count what a batch wrote."""
        self.items_written += items
        self.opened += opened


# --- Splitting the period: pairs that cannot differ, and candidates ------------------------

# The run's working tables (dropped when it ends): the payments Python judges, and every
# finding of the run.
_CREATE_CANDIDATES = text(
    "CREATE TEMPORARY TABLE period_candidates (payment_id uuid PRIMARY KEY) ON COMMIT DROP"
)
_CREATE_FINDINGS = text(
    "CREATE TEMPORARY TABLE period_findings (type text NOT NULL, payment_id uuid, "
    "provider_record_id uuid, amount_minor bigint NOT NULL, currency text NOT NULL, "
    "difference_minor bigint, dispute_status text) ON COMMIT DROP"
)
_DROP_WORK_TABLES = text(
    "DROP TABLE pg_temp.period_candidates, pg_temp.period_pairs, pg_temp.period_findings, "
    f"{STAGED_OPENINGS}"
)
_FINDINGS = table("period_findings", *(column(name) for name in FINDING_COLUMNS), schema="pg_temp")

# The records ``{other}`` that could make record ``{record}`` a same-customer duplicate:
# same customer, currency and amount, at most the duplicate window before it. Status,
# order and binding are left to judge_customer_duplicate, which decides.
_MAY_REPEAT = (
    "{other}.org_id = {record}.org_id AND {other}.customer_ref = {record}.customer_ref "
    "AND {other}.currency = {record}.currency AND {other}.amount_minor = {record}.amount_minor "
    "AND {other}.id <> {record}.id "
    "AND {other}.occurred_at BETWEEN {record}.occurred_at - :duplicate_window "
    "AND {record}.occurred_at"
)

# Whether the incremental path's latest verdict on payment ``{payment}`` (or, when it had
# none, on record ``{record}``) was not ``matched``: a clean pair or a matched candidate
# then changed verdict, and the run records it. Reads the incremental path's exceptions
# only (two small partial indexes, migration 0013), never every item.
_CHANGED_SINCE_INCREMENTAL = (
    "(EXISTS (SELECT 1 FROM reconciliation_items AS x "
    "WHERE x.payment_id = {payment} AND x.run_id IS NULL AND x.outcome <> 'matched' "
    "AND NOT EXISTS (SELECT 1 FROM reconciliation_items AS y "
    "WHERE y.payment_id = x.payment_id AND y.run_id IS NULL AND y.outcome = 'matched' "
    "AND y.id > x.id)) "
    "OR EXISTS (SELECT 1 FROM reconciliation_items AS x "
    "WHERE x.provider_record_id = {record} AND x.run_id IS NULL AND x.payment_id IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM reconciliation_items AS y "
    "WHERE y.provider_record_id = x.provider_record_id AND y.run_id IS NULL "
    "AND y.payment_id IS NOT NULL AND y.id > x.id)))"
)
CHANGED_PAIRS = text(
    "SELECT k.payment_id FROM unnest(CAST(:payments AS uuid[]), CAST(:records AS uuid[])) "  # noqa: S608
    "AS k(payment_id, record_id) "
    f"WHERE {_CHANGED_SINCE_INCREMENTAL.format(payment='k.payment_id', record='k.record_id')}"
)

# The period's payments with the records bound to them (one row per pair; a payment with
# none has one row with no record). A read-only selection into a temporary table, so
# PostgreSQL may scan and join in parallel workers; only the organisation's records are
# hashed. The parallel plan's cost settings hold for this statement only.
PERIOD_PAIRS = text("""
CREATE TEMPORARY TABLE period_pairs ON COMMIT DROP AS
  SELECT p.id AS payment_id, r.id, r.match_method, r.org_id, r.customer_ref,
         r.currency, r.amount_minor, r.occurred_at,
         (r.currency = p.currency AND r.amount_minor = p.amount_minor
          AND r.amount_refunded_minor = p.amount_refunded_minor AND r.status = p.status
          AND r.dispute_status IS NULL) AS same
  FROM payments AS p
  LEFT JOIN provider_records AS r ON r.payment_id = p.id AND r.org_id = :org
  WHERE p.org_id = :org AND p.occurred_at >= :start AND p.occurred_at < :end
""")
ANALYZE_PAIRS = text("ANALYZE pg_temp.period_pairs")
# Measured (docs/decisions.md, "Parallel query"): with PostgreSQL's default costs the
# planner never ran this selection in parallel.
PARALLEL_COSTS = {"parallel_setup_cost": "10", "parallel_tuple_cost": "0.001"}

# The SQL pre-filter. A pair is clean when its record lies in the period, the payment has
# exactly this one record, the two agree on currency, amount, refunded amount and status
# (an unknown amount is not equal), the record was never disputed, and no other record
# could make the record a same-customer duplicate (those records lie in the period or
# the duplicate window before it: hashed once, not probed per pair). Clean pairs are
# counted, not written: only those whose verdict changed since the incremental path
# judged them get their ``matched`` item here. Every other payment of the period — one
# with no record among them — becomes a candidate. The same statement takes the
# fingerprint of the period's matched set (shared/runs/fingerprint.py) from the pairs it
# read. Why no clean pair can give a finding: docs/decisions.md.
SPLIT_PERIOD = text(f"""
WITH several AS MATERIALIZED (
  SELECT payment_id FROM pg_temp.period_pairs WHERE id IS NOT NULL
  GROUP BY payment_id HAVING count(*) > 1
), repeating AS MATERIALIZED (
  SELECT c.id FROM pg_temp.period_pairs AS c
  WHERE c.same AND c.occurred_at >= :start AND c.occurred_at < :end AND EXISTS (
    SELECT 1 FROM provider_records AS e
    WHERE e.org_id = :org AND e.occurred_at >= :start - :duplicate_window
      AND e.occurred_at < :end AND {_MAY_REPEAT.format(other="e", record="c")})
), flagged AS MATERIALIZED (
  SELECT c.payment_id, c.id, c.match_method,
         coalesce(c.same AND c.occurred_at >= :start AND c.occurred_at < :end, false)
         AND NOT EXISTS (SELECT 1 FROM several AS s WHERE s.payment_id = c.payment_id)
         AND NOT EXISTS (SELECT 1 FROM repeating AS d WHERE d.id = c.id) AS clean
  FROM pg_temp.period_pairs AS c
), changed AS (
  INSERT INTO reconciliation_items
    (id, org_id, run_id, payment_id, provider_record_id, outcome, match_method)
  SELECT {SQL_NEW_ID}, :org, :run, c.payment_id, c.id, 'matched', c.match_method
  FROM flagged AS c
  WHERE c.clean AND {_CHANGED_SINCE_INCREMENTAL.format(payment="c.payment_id", record="c.id")}
  RETURNING 1
), candidates AS (
  INSERT INTO pg_temp.period_candidates (payment_id)
  SELECT DISTINCT payment_id FROM flagged WHERE NOT clean
  RETURNING 1
)
SELECT (SELECT count(*) FROM flagged WHERE clean) AS clean,
       (SELECT count(*) FROM changed) AS changed,
       (SELECT count(*) FROM candidates) AS candidates,
       {PAIRS_SQL.format(record="id")} AS pairs,
       {DIGEST_SQL.format(record="id", payment="payment_id")} AS digest
FROM pg_temp.period_pairs
""")  # noqa: S608 - constant SQL fragments


@dataclass(frozen=True)
class Split:
    """How a period split: clean pairs (of which ``changed`` got an item), candidates for
    Python, and the fingerprint of the period's matched set."""

    clean: int
    changed: int
    candidates: int
    matched_set: MatchedSet


def split_period(
    *,
    session: Session,
    run_id: uuid.UUID,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    settings: MatchSettings,
) -> Split:
    """Read the period's pairs into the temporary table ``period_pairs``, count the clean
    ones, write the items of those whose verdict changed, and put every other payment in
    the temporary table ``period_candidates``."""
    session.execute(_CREATE_CANDIDATES)
    bounds = {"org": org_id, "start": start, "end": end}
    for name, value in PARALLEL_COSTS.items():
        session.execute(text(f"SET LOCAL {name} = {value}"))
    session.execute(PERIOD_PAIRS, bounds)
    for name in PARALLEL_COSTS:
        session.execute(text(f"SET LOCAL {name} TO DEFAULT"))
    # Statistics for the split's plan (nothing analyses a temporary table by itself):
    # without them the planner expects a handful of pairs and probes the customer index
    # once per pair (3.3 s at 1M) instead of hashing the records once (0.9 s).
    session.execute(ANALYZE_PAIRS)
    row = session.execute(
        SPLIT_PERIOD,
        {
            "org": org_id,
            "run": run_id,
            "start": start,
            "end": end,
            "duplicate_window": settings.duplicate_window,
        },
    ).one()
    return Split(row.clean, row.changed, row.candidates, MatchedSet.of(row.pairs, row.digest))


# --- Streaming what Python judges ----------------------------------------------------------

_PAYMENT_SELECT = ", ".join(f"p.{name}" for name in PAYMENT_FIELDS)
_RECORD_SELECT = ", ".join(f"r.{name} AS r_{name}" for name in RECORD_FIELDS)
CANDIDATE_GROUPS = text(
    f"SELECT {_PAYMENT_SELECT}, {_RECORD_SELECT} "  # noqa: S608 - constant column lists
    "FROM pg_temp.period_candidates AS c JOIN payments AS p ON p.id = c.payment_id "
    "LEFT JOIN provider_records AS r ON r.payment_id = p.id ORDER BY p.id"
)
# In no particular order: ordered by id, the planner walks the primary key over every
# record the run has just bound (11 s instead of 0.4 s at 1,000,000 records).
UNMATCHED_RECORDS = text(
    f"SELECT {_RECORD_SELECT} FROM provider_records AS r "  # noqa: S608
    "WHERE r.org_id = :org AND r.payment_id IS NULL "
    "AND r.occurred_at >= :start AND r.occurred_at < :end"
)
# For each of these records, the others that could make it a same-customer duplicate.
CUSTOMER_SIBLINGS = text(
    f"SELECT s.id AS subject_id, {_RECORD_SELECT} "  # noqa: S608
    "FROM provider_records AS s JOIN provider_records AS r "
    f"ON {_MAY_REPEAT.format(other='r', record='s')} WHERE s.id = ANY(CAST(:ids AS uuid[]))"
)


def _record(row: Any, offset: int) -> RecordFacts | None:
    values = tuple(row)[offset:]
    return None if values[0] is None else RecordFacts(*values)


def _stream(session: Session, statement: Any, params: dict[str, Any] | None = None) -> Any:
    """Rows of ``statement`` from a server-side cursor, PAGE at a time."""
    return session.execute(statement, params or {}, execution_options={"yield_per": PAGE})


def _candidate_groups(session: Session) -> Iterator[list[tuple[PaymentFacts, list[RecordFacts]]]]:
    """The candidates with their records, PAGE payments at a time."""
    width = len(PAYMENT_FIELDS)
    batch = []
    rows = _stream(session, CANDIDATE_GROUPS)
    for _, group in groupby(rows, key=lambda row: row[0]):
        group = list(group)
        payment = PaymentFacts(*tuple(group[0])[:width])
        records = [record for row in group if (record := _record(row, width)) is not None]
        batch.append((payment, records))
        if len(batch) == PAGE:
            yield batch
            batch = []
    if batch:
        yield batch


def _unmatched_records(
    session: Session, org_id: uuid.UUID, start: datetime, end: datetime
) -> Iterator[list[RecordFacts]]:
    """The period's records matched to no payment, PAGE at a time."""
    rows = _stream(session, UNMATCHED_RECORDS, {"org": org_id, "start": start, "end": end})
    for page in rows.partitions(PAGE):  # without a size, one partition holds every row
        yield [_record(row, 0) for row in page]


def _customer_siblings(
    session: Session, records: Iterable[RecordFacts], window: timedelta
) -> dict[uuid.UUID, list[RecordFacts]]:
    ids = [r.id for r in records if r.customer_ref is not None and r.amount_minor is not None]
    siblings: dict[uuid.UUID, list[RecordFacts]] = defaultdict(list)
    if ids:
        for row in session.execute(CUSTOMER_SIBLINGS, {"ids": ids, "duplicate_window": window}):
            siblings[row.subject_id].append(_record(row, 1))
    return siblings


# --- Writing ------------------------------------------------------------------------------


def _copy(session: Session, table_name: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    if not rows:
        return
    with copy_rows(session, table_name, columns) as copy:
        for row in rows:
            copy.write_row(row)


@dataclass
class _Batch:
    """One batch of judged groups: its exceptions and findings, written together."""

    org_id: uuid.UUID
    run_id: uuid.UUID
    items: list[tuple] = field(default_factory=list)
    matched: list[tuple] = field(default_factory=list)  # clean matches: written if changed
    findings: list[Finding] = field(default_factory=list)
    disputed: list[RecordFacts] = field(default_factory=list)

    def judged(self, records: Iterable[RecordFacts], findings: list[Finding]) -> None:
        """Keep what judging these records found, and those with a dispute."""
        self.findings += findings
        self.disputed += [record for record in records if record.dispute_status is not None]

    def item(self, payment_id, record_id, outcome, method=None, difference=None) -> None:
        """An exception: an item the run writes."""
        self.items.append(
            (new_id(), self.org_id, self.run_id, payment_id, record_id, outcome, method,
             difference)
        )  # fmt: skip

    def clean_match(self, payment_id: uuid.UUID, record_id: uuid.UUID, method: str) -> None:
        """A matched pair with no finding: an item only if its verdict changed."""
        self.matched.append((payment_id, record_id, method))

    def write(self, session: Session, now: datetime, evidence: dict[str, Any]) -> tuple[int, int]:
        """Write the exceptions, stage the findings to open (disputes follow theirs at
        once), keep them for the report; (items written, dispute discrepancies opened)."""
        if self.matched:
            changed = set(
                session.scalars(
                    CHANGED_PAIRS,
                    {
                        "payments": [payment for payment, _, _ in self.matched],
                        "records": [record for _, record, _ in self.matched],
                    },
                )
            )
            for payment_id, record_id, method in self.matched:
                if payment_id in changed:
                    self.item(payment_id, record_id, "matched", method)
        _copy(session, "reconciliation_items", ITEM_COLUMNS, self.items)
        _copy(
            session,
            "pg_temp.period_findings",
            FINDING_COLUMNS,
            [
                (f.type, f.payment_id, f.provider_record_id, f.amount_minor, f.currency,
                 f.difference_minor, f.dispute.status if f.dispute else None)
                for f in self.findings
            ],
        )  # fmt: skip
        _copy(
            session,
            STAGED_OPENINGS,
            STAGED_OPENING_COLUMNS,
            [staged_opening(f, evidence) for f in self.findings if f.type != DISPUTE_OPENED],
        )
        disputes = follow_disputes(
            session=session,
            org_id=self.org_id,
            records=self.disputed,
            now=now,
            evidence=evidence,
            run_id=self.run_id,
        )
        return len(self.items), disputes.opened


# --- The run --------------------------------------------------------------------------------


def reconcile_period(
    *,
    session: Session,
    run_id: uuid.UUID,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    settings: MatchSettings,
    now: datetime,
    verify_open: bool = False,
) -> PeriodResult:
    """Re-check one organisation's period [start, end); every finding is opened or kept.

    With ``verify_open`` (a verification run with auto-fix), unresolved discrepancies of
    the period that the run no longer finds are resolved as ``system``.
    """
    result = PeriodResult()
    evidence = {"run_id": str(run_id)}
    session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    # The run's big statements look costly enough for JIT compilation, which took longer
    # (0.56 s at 1M payments) than it saved.
    session.execute(text("SET LOCAL jit = off"))
    bind_period(session=session, org_id=org_id, start=start, end=end, settings=settings, now=now)
    split = split_period(
        session=session, run_id=run_id, org_id=org_id, start=start, end=end, settings=settings
    )
    result.payments_checked = result.provider_records_checked = split.clean
    result.matched = result.items = split.clean
    result.items_written = split.changed
    result.matched_set = split.matched_set
    session.execute(_CREATE_FINDINGS)
    session.execute(CREATE_STAGED_OPENINGS)
    for groups in _candidate_groups(session):
        batch = _Batch(org_id, run_id)
        siblings = _customer_siblings(
            session, (r for _, records in groups for r in records), settings.duplicate_window
        )
        for payment, records in groups:
            findings = judge_group(payment, records, settings, now)
            for record in records:
                findings += judge_customer_duplicate(record, siblings[record.id], settings)
            result.payments_checked += 1
            result.provider_records_checked += len(records)
            batch.judged(records, findings)
            if records:
                primary = primary_record(records)
                outcome = item_outcome(findings)
                result.items += 1
                result.matched += outcome == "matched"
                difference = next(
                    (f.difference_minor for f in findings if f.type == "AmountMismatch"), None
                )
                if findings:
                    batch.item(payment.id, primary.id, outcome, primary.match_method, difference)
                else:
                    batch.clean_match(payment.id, primary.id, primary.match_method)
            elif findings:
                result.items += 1
                batch.item(payment.id, None, "missing_provider")
        result.add_written(*batch.write(session, now, evidence))
    for records in _unmatched_records(session, org_id, start, end):
        batch = _Batch(org_id, run_id)
        siblings = _customer_siblings(session, records, settings.duplicate_window)
        for record in records:
            findings = judge_unmatched_record(record, settings, now)
            findings += judge_customer_duplicate(record, siblings[record.id], settings)
            result.provider_records_checked += 1
            batch.judged([record], findings)
            if any(f.type == "MissingInternalRecord" for f in findings):
                result.items += 1
                batch.item(None, record.id, "missing_internal")
        result.add_written(*batch.write(session, now, evidence))
    result.opened += open_staged_discrepancies(
        session=session, org_id=org_id, run_id=run_id, now=now
    )
    result.found = _found_totals(session)
    if verify_open:
        result.auto_resolved = _resolve_cleared(session, org_id, start, end, now, evidence)
    session.execute(_DROP_WORK_TABLES)
    return result


_FOUND_TOTALS = text(
    "SELECT type, currency, dispute_status, count(*) AS count, "
    "sum(amount_minor) AS amount_minor, "
    "coalesce(sum(abs(difference_minor)), 0) AS difference_minor "
    "FROM pg_temp.period_findings GROUP BY type, currency, dispute_status "
    "ORDER BY type, currency, dispute_status"
)


def _found_totals(session: Session) -> list[FoundTotal]:
    return [
        FoundTotal(
            row.type,
            row.currency,
            row.count,
            int(row.amount_minor),
            int(row.difference_minor),
            row.dispute_status,
        )
        for row in session.execute(_FOUND_TOTALS)
    ]


def _resolve_cleared(
    session: Session,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    now: datetime,
    evidence: dict[str, Any],
) -> int:
    """Resolve the period's unresolved discrepancies of the matching types that this run
    did not find."""
    discrepancy = ReconciliationDiscrepancy
    in_period = discrepancy.payment_id.in_(
        select(Payment.id).where(
            Payment.org_id == org_id, Payment.occurred_at >= start, Payment.occurred_at < end
        )
    ) | discrepancy.provider_record_id.in_(
        select(ProviderRecord.id).where(
            ProviderRecord.org_id == org_id,
            ProviderRecord.occurred_at >= start,
            ProviderRecord.occurred_at < end,
        )
    )
    found = exists().where(
        _FINDINGS.c.type == discrepancy.type,
        _FINDINGS.c.payment_id.is_not_distinct_from(discrepancy.payment_id),
        _FINDINGS.c.provider_record_id.is_not_distinct_from(discrepancy.provider_record_id),
    )
    cleared = session.scalars(
        select(discrepancy)
        .where(
            discrepancy.org_id == org_id,
            discrepancy.type.in_(MATCHING_DISCREPANCY_TYPES),  # the cash chain judges its own
            discrepancy.status.in_(UNRESOLVED),
            in_period,
            ~found,
        )
        .order_by(discrepancy.id)
        .with_for_update()
    ).all()
    for row in cleared:
        auto_resolve(session=session, discrepancy=row, now=now, evidence=evidence)
    return len(cleared)
