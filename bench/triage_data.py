"""Discrepancies over the last 180 days, with everything they reference, for the triage bench.

All six types, the type's severity (10 % ``low``), statuses mostly open (resolved more
often the older the row), six currencies, log-uniform amounts, assignees on a quarter,
70 % found by a daily run (one per organisation and day) and the rest by the incremental
path; 70 % Stripe and 30 % Adyen (the discrepancy's ``provider``, its payment's and
record's); with the payments and provider records they concern, the match result (item)
that found each, and the action log. Loaded with COPY, one chunk per transaction.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from environment import connect

CHUNK = 20_000
DAYS = 180
ORG_SKEW = 0.6  # organisation k holds a share proportional to 1 / (k + 1) ** ORG_SKEW
# (type, weight): missing rows and amount or status differences are the common findings.
TYPES = (
    ("MissingInternalRecord", 22),
    ("MissingProviderRecord", 26),
    ("AmountMismatch", 20),
    ("CurrencyMismatch", 4),
    ("StatusMismatch", 18),
    ("DuplicateChargeSuspected", 10),
)
CURRENCIES = (("EUR", 40), ("USD", 30), ("GBP", 14), ("CHF", 5), ("JPY", 8), ("KWD", 3))
LOW_SEVERITY_SHARE = 0.10  # the rest keep their type's severity (shared.matching.rules.SEVERITY)
RUN_SHARE = 0.70  # found by a daily period run; the rest by the incremental path
ACKNOWLEDGED_SHARE = 0.12
OLDEST_RESOLVED_SHARE = 0.36  # resolved share grows with age, from 0 to this (18 % overall)
AUTO_RESOLVED_SHARE = 0.30  # of the resolved: the system's ``auto_resolved``
ASSIGNED_SHARE = {"open": 0.10, "acknowledged": 0.70, "resolved": 0.60}
NOTE_SHARE = 0.10
ASSIGNEES = ("ana.silva", "ben.okafor", "chloe.martin", "dev.patel", "eva.novak",
             "farid.haddad", "grace.liu", "hugo.berg")  # fmt: skip
HUMAN_RESOLUTIONS = ("provider_error", "internal_error_adjusted", "timing_difference",
                     "duplicate_refunded", "false_positive", "written_off", "other")  # fmt: skip
OUTCOMES = {
    "MissingInternalRecord": "missing_internal",
    "MissingProviderRecord": "missing_provider",
}

RUN_COLUMNS = (
    "id, org_id, period_start, period_end, status, triggered_by, created_at, started_at, "
    "finished_at"
)
PAYMENT_COLUMNS = (
    "id, org_id, external_id, provider, provider_reference, amount_minor, currency, status, "
    "customer_ref, occurred_at, created_at, updated_at"
)
RECORD_COLUMNS = (
    "id, org_id, provider, provider_reference, merchant_reference, amount_minor, currency, "
    "status, customer_ref, occurred_at, last_event_at, payment_status, status_at, payment_id, "
    "match_method, matched_at, created_at, updated_at"
)
ITEM_COLUMNS = (
    "id, org_id, run_id, payment_id, provider_record_id, outcome, match_method, "
    "amount_difference_minor, created_at"
)
DISCREPANCY_COLUMNS = (
    "id, org_id, type, severity, status, payment_id, provider_record_id, run_id, item_id, "
    "amount_minor, currency, difference_minor, assignee, resolution, resolution_reason, "
    "opened_at, acknowledged_at, resolved_at, version, provider"
)
ACTION_COLUMNS = "id, org_id, discrepancy_id, action, actor, actor_name, payload, created_at"
TABLES = (
    ("payments", PAYMENT_COLUMNS),
    ("provider_records", RECORD_COLUMNS),
    ("reconciliation_items", ITEM_COLUMNS),
    ("reconciliation_discrepancies", DISCREPANCY_COLUMNS),
    ("reconciliation_action_logs", ACTION_COLUMNS),
)


@dataclass
class BenchOrg:
    """One organisation of the bench: its owner key and what its listings filter on."""

    id: uuid.UUID
    slug: str
    key: str
    actor: str  # the owner key's id, the actor of the generated human actions
    share: int = 0  # discrepancies generated for it
    runs: dict[int, tuple[str, datetime]] = field(default_factory=dict)  # day → (id, start)

    @property
    def assignees(self) -> list[str]:
        return [f"{name}@{self.slug}.example" for name in ASSIGNEES]


def prepare_organizations(count: int) -> list[BenchOrg]:
    """Migrate the bench database; add ``count`` organisations, each with an owner key."""
    from shared.access.api_keys import create_api_key
    from shared.access.organizations import create_organization
    from shared.platform import migrations
    from shared.platform.db import dispose_engine, unit_of_work

    migrations.upgrade(database_url=os.environ["DATABASE_URL"])
    orgs = []
    with unit_of_work() as session:
        for number in range(count):
            organization = create_organization(session=session, name=f"Bench Triage {number}")
            issued = create_api_key(
                session=session, org_id=organization.id, role="owner", name="bench owner"
            )
            orgs.append(
                BenchOrg(
                    id=organization.id,
                    slug=f"org{number}",
                    key=issued.secret,
                    actor=str(issued.api_key.id),
                )
            )
    dispose_engine()
    return orgs


def _text(value: object) -> str:
    """One COPY text-format field: NULL as ``\\N``; backslashes, tabs and newlines escaped."""
    if value is None:
        return "\\N"
    return (
        str(value)
        .replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def _line(*values: object) -> str:
    return "\t".join(_text(value) for value in values)


def split_by_skew(total: int, count: int) -> list[int]:
    """``total`` split over ``count`` organisations by ORG_SKEW (largest remainder)."""
    weights = [1 / (k + 1) ** ORG_SKEW for k in range(count)]
    exact = [total * weight / sum(weights) for weight in weights]
    shares = [int(value) for value in exact]
    by_remainder = sorted(range(count), key=lambda k: exact[k] - shares[k], reverse=True)
    for k in by_remainder[: total - sum(shares)]:
        shares[k] += 1
    return shares


class Generator:
    """Discrepancies with everything they reference, as COPY lines, ``CHUNK`` at a time.

    Deterministic for a seed and a start time, apart from the organisations and their keys.
    """

    def __init__(self, orgs: list[BenchOrg], total: int, seed: int, now: datetime) -> None:
        from shared.matching.rules import SEVERITY

        self.orgs = orgs
        self.severities = SEVERITY
        self.random = random.Random(seed)
        self.now = now
        self.today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        for org, share in zip(orgs, split_by_skew(total, len(orgs)), strict=True):
            org.share = share
        self.types = [name for name, _ in TYPES]
        self.type_weights = [weight for _, weight in TYPES]
        self.currencies = [code for code, _ in CURRENCIES]
        self.currency_weights = [weight for _, weight in CURRENCIES]
        self.counts: dict[str, int] = defaultdict(int)

    def _id(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    def runs(self) -> list[str]:
        """One completed daily run per organisation and day (``day`` days ago at 02:00)."""
        lines = []
        for org in self.orgs:
            for day in range(1, DAYS + 1):
                started = self.today - timedelta(days=day) + timedelta(hours=2)
                run_id = self._id()
                org.runs[day] = (run_id, started)
                period = (started - timedelta(days=1)).date().isoformat()
                lines.append(_line(run_id, org.id, period, period, "completed", "schedule",
                                   started, started, started + timedelta(minutes=10)))  # fmt: skip
        return lines

    def _amount(self) -> int:
        return int(math.exp(self.random.uniform(math.log(100), math.log(2_000_000))))

    def _found(self, org: BenchOrg) -> tuple[str | None, datetime, str]:
        """(the run that found it or None, when it was opened, its status now)."""
        rnd = self.random
        run_id = None
        if rnd.random() < RUN_SHARE:
            day = rnd.randint(1, DAYS)
            run_id, started = org.runs[day]
            opened = started + timedelta(seconds=rnd.uniform(1, 600))
        else:
            opened = self.now - timedelta(seconds=rnd.uniform(60, DAYS * 86_400))
        age = (self.now - opened) / timedelta(days=DAYS)
        roll = rnd.random()
        if roll < OLDEST_RESOLVED_SHARE * age:
            status = "resolved"
        elif roll < OLDEST_RESOLVED_SHARE * age + ACKNOWLEDGED_SHARE:
            status = "acknowledged"
        else:
            status = "open"
        return run_id, opened, status

    def _rows(
        self, org: BenchOrg, number: int, kind: str, money: tuple[int, str], opened: datetime,
        lines: dict[str, list[str]],
    ) -> tuple[str, str | None, str | None, int | None]:  # fmt: skip
        """Append the payment and provider record the finding concerns (the one its type
        says is missing left out); (provider, payment id, record id, amount difference)."""
        rnd = self.random
        amount, currency = money
        provider = "stripe" if rnd.random() < 0.7 else "adyen"
        external_id = f"inv_{org.slug}_{number:09d}"
        reference = (
            f"pi_3B{number:012d}{rnd.getrandbits(40):010x}"
            if provider == "stripe"
            else f"{88:02d}{number:014d}"
        )
        customer = f"cus_{rnd.randrange(50_000):08d}"
        occurred = opened - timedelta(hours=rnd.uniform(2, 30))
        payment_id = record_id = difference = None
        # StatusMismatch: our side failed and the provider charged, or the reverse.
        failed_charge = kind == "StatusMismatch" and rnd.random() < 0.3
        if kind != "MissingInternalRecord":
            payment_id = self._id()
            lines["payments"].append(_line(
                payment_id, org.id, external_id, provider,
                reference if rnd.random() < 0.7 else None, amount, currency,
                "failed" if failed_charge else "succeeded", customer, occurred, occurred,
                occurred,
            ))  # fmt: skip
        if kind != "MissingProviderRecord":
            record_id = self._id()
            record_amount, record_currency, record_status = amount, currency, "succeeded"
            if kind == "AmountMismatch":
                difference = rnd.choice((-1, 1)) * rnd.randint(1, max(1, amount // 10))
                record_amount = amount + difference
            elif kind == "CurrencyMismatch":
                record_currency = rnd.choice([c for c in self.currencies if c != currency])
            elif kind == "StatusMismatch" and not failed_charge:
                record_status = "failed"
            # A suspected duplicate is a further charge, left unbound beside the matched one.
            bound = payment_id if kind != "DuplicateChargeSuspected" else None
            seen = occurred + timedelta(seconds=rnd.uniform(1, 90))
            lines["provider_records"].append(_line(
                record_id, org.id, provider, reference, external_id, record_amount,
                record_currency, record_status, customer, seen, seen, record_status, seen,
                bound, "provider_reference" if bound else None, seen if bound else None,
                seen, seen,
            ))  # fmt: skip
        return provider, payment_id, record_id, difference

    def _triage(
        self, org: BenchOrg, status: str, opened: datetime, provider: str, run_id: str | None,
        actions: list[tuple],
    ) -> tuple[str | None, datetime | None, datetime | None, str | None, str | None]:  # fmt: skip
        """Append the human and system actions its status implies, after ``opened``;
        (assignee, acknowledged at, resolved at, resolution, reason)."""
        rnd = self.random
        assignee = acknowledged = resolved = resolution = reason = None
        if status != "open":
            acknowledged = min(opened + timedelta(hours=rnd.uniform(1, 72)), self.now)
        if status == "resolved":
            resolved = min(acknowledged + timedelta(hours=rnd.uniform(1, 240)), self.now)
            if rnd.random() < AUTO_RESOLVED_SHARE:
                acknowledged = None
                resolution, reason = "auto_resolved", "the condition no longer holds"
            else:
                resolution = rnd.choice(HUMAN_RESOLUTIONS)
                reason = f"checked against the {provider} dashboard"
        human = (org.actor, "bench owner")
        if rnd.random() < ASSIGNED_SHARE[status]:
            assignee = rnd.choice(org.assignees)
            until = acknowledged or resolved or self.now
            at = opened + (until - opened) * rnd.uniform(0.1, 0.5)
            actions.append((at, "assigned", *human, {"assignee": assignee, "previous": None}))
        if acknowledged is not None:
            actions.append((acknowledged, "acknowledged", *human, {}))
        if rnd.random() < NOTE_SHARE:
            until = resolved or self.now
            at = opened + (until - opened) * rnd.uniform(0.5, 0.9)
            actions.append((at, "note_added", *human, {"note": "asked the provider for details"}))
        if resolution == "auto_resolved":
            actions.append((resolved, "auto_resolved", "system", None, {
                "reason": "condition no longer holds", "evidence": {"run_id": run_id},
            }))  # fmt: skip
        elif resolved is not None:
            actions.append((resolved, "resolved", *human, {
                "resolution": resolution, "reason": reason, "adjustment_reference": None,
            }))  # fmt: skip
        return assignee, acknowledged, resolved, resolution, reason

    def discrepancy(self, org: BenchOrg, number: int, lines: dict[str, list[str]]) -> None:
        """Append the lines of one discrepancy and of everything it references."""
        rnd = self.random
        kind = rnd.choices(self.types, self.type_weights)[0]
        currency = rnd.choices(self.currencies, self.currency_weights)[0]
        amount = self._amount()
        severity = "low" if rnd.random() < LOW_SEVERITY_SHARE else self.severities[kind]
        run_id, opened, status = self._found(org)
        self.counts[kind] += 1
        self.counts[status] += 1
        provider, payment_id, record_id, difference = self._rows(
            org, number, kind, (amount, currency), opened, lines
        )
        item_id = self._id()
        outcome = OUTCOMES.get(kind, "mismatched")
        lines["reconciliation_items"].append(_line(
            item_id, org.id, run_id, payment_id, record_id, outcome,
            "provider_reference" if outcome == "mismatched" else None, difference, opened,
        ))  # fmt: skip

        discrepancy_id = self._id()
        actions = [(opened, "opened", "system", None, {
            "finding": {"type": kind, "amount_minor": amount, "currency": currency},
            "source": {"run_id": run_id} if run_id else {"path": "incremental"},
        })]  # fmt: skip
        assignee, acknowledged, resolved, resolution, reason = self._triage(
            org, status, opened, provider, run_id, actions
        )
        lines["reconciliation_discrepancies"].append(_line(
            discrepancy_id, org.id, kind, severity, status, payment_id, record_id, run_id,
            item_id, amount, currency, difference, assignee, resolution, reason, opened,
            acknowledged, resolved, len(actions), provider,
        ))  # fmt: skip
        for at, action, actor, actor_name, payload in sorted(actions, key=lambda a: a[0]):
            lines["reconciliation_action_logs"].append(_line(
                self._id(), org.id, discrepancy_id, action, actor, actor_name,
                json.dumps(payload), at,
            ))  # fmt: skip

    def chunks(self) -> Iterator[dict[str, list[str]]]:
        """The COPY lines of each table, ``CHUNK`` discrepancies at a time."""
        numbered = ((org, n) for org in self.orgs for n in range(org.share))
        while batch := list(itertools.islice(numbered, CHUNK)):
            lines: dict[str, list[str]] = {table: [] for table, _ in TABLES}
            for org, number in batch:
                self.discrepancy(org, number, lines)
            yield lines


def load(orgs: list[BenchOrg], total: int, seed: int, now: datetime) -> dict[str, int]:
    """Generate and COPY everything, one chunk per transaction, then VACUUM ANALYZE.

    Needs a superuser (the bench's admin URL): foreign-key triggers are off while loading.
    The next chunk is generated in a thread while PostgreSQL takes the current one. Returns
    the rows written per table and the discrepancies per type and status.
    """
    generator = Generator(orgs, total, seed, now)
    rows: dict[str, int] = defaultdict(int)
    with connect() as connection:
        # Foreign-key checks (triggers) are skipped for this session, as pg_restore's
        # --disable-triggers does: the generator makes every reference, and the checks
        # made the load five times slower (48 s instead of 11 s for 100,000).
        connection.execute("SET session_replication_role = replica")
        with connection.cursor().copy(
            f"COPY reconciliation_runs ({RUN_COLUMNS}) FROM STDIN"
        ) as copy:
            runs = generator.runs()
            copy.write("\n".join(runs) + "\n")
            rows["reconciliation_runs"] = len(runs)
        connection.commit()
        with ThreadPoolExecutor(max_workers=1) as pool:
            chunks = generator.chunks()
            upcoming = pool.submit(next, chunks, None)
            while (lines := upcoming.result()) is not None:
                upcoming = pool.submit(next, chunks, None)
                for table, columns in TABLES:
                    if lines[table]:
                        with connection.cursor().copy(
                            f"COPY {table} ({columns}) FROM STDIN"
                        ) as copy:
                            copy.write("\n".join(lines[table]) + "\n")
                        rows[table] += len(lines[table])
                connection.commit()
    with connect(autocommit=True) as connection:
        for table in ("reconciliation_runs", *(table for table, _ in TABLES)):
            connection.execute(f"VACUUM ANALYZE {table}")
    return {**rows, **generator.counts}


def table_sizes() -> list[tuple[str, int]]:
    """The discrepancy table's heap and each of its indexes, in bytes."""
    with connect() as connection:
        return connection.execute(
            "SELECT 'heap', pg_relation_size('reconciliation_discrepancies') UNION ALL "
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = 'reconciliation_discrepancies'::regclass ORDER BY 2 DESC"
        ).fetchall()
