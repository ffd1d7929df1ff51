"""``recon payments import``: CSV and JSON lines files, streamed in batches, line-numbered."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import select, text

import cli.payments as payments_command
from cli.main import cli
from shared.access.organizations import create_organization
from shared.models import Organization, Payment
from shared.payments.imports import MAX_BATCH
from shared.platform.tasks import MATCH_PAYMENTS
from tests.conftest import WORKER_NUMBER, redis_url_numbered, run_cli

HEADER = "external_id,provider,provider_reference,amount_minor,currency,status,occurred_at"


@pytest.fixture(autouse=True)
def _restore_logging(redis_client):
    # The command points the log handler at its own stderr; put the test's back. Its
    # payments roll back, so their match messages must not linger either.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    redis_client.delete("matching")


@pytest.fixture
def org(session):
    return create_organization(session=session, name="Acme")


def invoke(*args: str):
    return CliRunner().invoke(cli, ["payments", "import", *args])


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def csv_row(external_id: str, amount: str = "1000", currency: str = "USD", **cells: str) -> str:
    values = {
        "external_id": external_id,
        "provider": "stripe",
        "provider_reference": f"pi_{external_id}",
        "amount_minor": amount,
        "currency": currency,
        "status": "succeeded",
        "occurred_at": "2026-03-01T12:00:00Z",
        **cells,
    }
    return ",".join(values.values())


def jsonl_item(external_id: str, **fields) -> str:
    return json.dumps(
        {
            "external_id": external_id,
            "provider": "adyen",
            "provider_reference": f"PSP{external_id}",
            "amount_minor": 2500,
            "currency": "eur",
            "status": "succeeded",
            "occurred_at": "2026-03-01T12:00:00+01:00",
            **fields,
        }
    )


def stored(session, org_id) -> dict[str, Payment]:
    session.expire_all()
    rows = session.scalars(select(Payment).where(Payment.org_id == org_id)).all()
    return {row.external_id: row for row in rows}


def test_a_csv_file_is_imported_and_summarised(session, org, tmp_path, published_tasks):
    path = write(tmp_path / "payments.csv", [HEADER, csv_row("inv_1"), csv_row("inv_2", "5")])
    result = invoke(str(path), "--org", str(org.id))
    assert result.exit_code == 0, result.output
    assert result.stdout == "created 2, updated 0, unchanged 0, rejected 0\n"
    rows = stored(session, org.id)
    assert {key: row.amount_minor for key, row in rows.items()} == {"inv_1": 1000, "inv_2": 5}
    queued = session.scalars(text("SELECT payment_id FROM pending_payment_matches")).all()
    assert sorted(queued) == sorted(row.id for row in rows.values())
    assert published_tasks == [(MATCH_PAYMENTS, [])]


def test_a_jsonl_file_is_imported(session, org, tmp_path):
    path = write(tmp_path / "payments.jsonl", [jsonl_item("a1"), "", jsonl_item("a2")])
    result = invoke(str(path), "--org", str(org.id))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "created 2, updated 0, unchanged 0, rejected 0"
    assert stored(session, org.id)["a1"].currency == "EUR"


def test_importing_the_same_file_again_counts_unchanged(session, org, tmp_path, published_tasks):
    path = write(tmp_path / "payments.csv", [HEADER, csv_row("inv_1"), csv_row("inv_2")])
    invoke(str(path), "--org", str(org.id))
    published_tasks.clear()
    again = invoke(str(path), "--org", str(org.id))
    assert again.exit_code == 0
    assert again.stdout == "created 0, updated 0, unchanged 2, rejected 0\n"
    assert published_tasks == []
    changed = write(tmp_path / "changed.csv", [HEADER, csv_row("inv_1", "999"), csv_row("inv_2")])
    third = invoke(str(changed), "--org", str(org.id))
    assert third.stdout == "created 0, updated 1, unchanged 1, rejected 0\n"
    assert len(published_tasks) == 1


def test_rejected_csv_rows_are_reported_by_line_and_the_exit_status_is_1(session, org, tmp_path):
    path = write(
        tmp_path / "payments.csv",
        [
            HEADER,
            csv_row("inv_1"),
            csv_row("inv_2", "-5"),
            # A quoted cell spanning two lines (refused: references are one line); the
            # next record starts on line 6.
            csv_row("inv_3", provider_reference='"pi_multi\nline"'),
            csv_row("inv_4", currency="ZZZ"),
            "",
            csv_row("inv_5", status="paid"),
        ],
    )
    result = invoke(str(path), "--org", str(org.id))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "line 3: amount_minor: Input should be greater than or equal to 0",
        "line 4: provider_reference: must not contain control characters or line breaks",
        "line 6: currency: not an ISO 4217 currency code",
        "line 8: status: Input should be 'pending', 'succeeded', 'failed', 'refunded', "
        "'partially_refunded' or 'canceled'",
        "created 1, updated 0, unchanged 0, rejected 4",
    ]
    assert set(stored(session, org.id)) == {"inv_1"}


def test_rejected_jsonl_lines_are_reported_by_line(session, org, tmp_path):
    path = tmp_path / "payments.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                jsonl_item("a1").encode(),
                b"",
                b'{"external_id": ',
                jsonl_item("a4", amount_minor=10.5).encode(),
                b"[1, 2]",
                jsonl_item("a6", occurred_at="2026-03-01T12:00:00").encode(),
                b'{"external_id": "caf\xe9"}',
                jsonl_item("a8", customer_ref="cus\u0000").encode(),
                jsonl_item("a9", customer_ref="\ud800").encode(),
                jsonl_item("a10").encode(),
            ]
        )
        + b"\n"
    )
    result = invoke(str(path), "--org", str(org.id))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "line 3: not valid JSON: Expecting value (column 17)",
        "line 4: amount_minor: Input should be a valid integer",
        "line 5: each payment must be a JSON object",
        "line 6: occurred_at: Input should have timezone info",
        "line 7: line is not valid UTF-8",
        "line 8: customer_ref: must not contain the NUL character",
        "line 9: customer_ref: Input should be a valid string, unable to parse raw data as a "
        "unicode string",
        "created 2, updated 0, unchanged 0, rejected 7",
    ]
    assert set(stored(session, org.id)) == {"a1", "a10"}


@pytest.mark.parametrize("amount", ["1.5", "1e3", "1_000", " 12", "١٢", "0x10", "10.0"])
def test_csv_amounts_must_be_plain_integers(session, org, tmp_path, amount):
    path = write(tmp_path / "payments.csv", [HEADER, csv_row("inv_1", f'"{amount}"')])
    result = invoke(str(path), "--org", str(org.id))
    assert result.exit_code == 1
    assert result.stdout.startswith("line 2: amount_minor: Input should be a valid integer")
    assert stored(session, org.id) == {}


def test_csv_empty_cells_mean_absent(session, org, tmp_path):
    header = HEADER + ",amount_refunded_minor,customer_ref"
    path = write(
        tmp_path / "payments.csv",
        [
            header,
            csv_row("inv_1", provider_reference="") + ",,",
            csv_row("inv_2", amount="") + ",,",
        ],
    )
    result = invoke(str(path), "--org", str(org.id))
    assert result.stdout.splitlines() == [
        "line 3: amount_minor: Field required",
        "created 1, updated 0, unchanged 0, rejected 1",
    ]
    row = stored(session, org.id)["inv_1"]
    assert (row.provider_reference, row.customer_ref, row.amount_refunded_minor) == (None, None, 0)


def test_csv_rows_with_the_wrong_number_of_cells_are_rejected(session, org, tmp_path):
    path = write(tmp_path / "payments.csv", [HEADER, csv_row("inv_1") + ",extra", "inv_2,stripe"])
    result = invoke(str(path), "--org", str(org.id))
    assert result.stdout.splitlines() == [
        "line 2: has 8 cells, the header has 7",
        "line 3: has 2 cells, the header has 7",
        "created 0, updated 0, unchanged 0, rejected 2",
    ]


def test_a_csv_with_a_byte_order_mark_and_crlf_lines_is_read(session, org, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\r\n{csv_row('inv_1')}\r\n".encode())
    result = invoke(str(path), "--org", str(org.id))
    assert result.exit_code == 0, result.output
    assert set(stored(session, org.id)) == {"inv_1"}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (HEADER + ",note", "unknown column(s) 'note'"),
        (HEADER + ",currency", "repeated column(s) 'currency'"),
        (HEADER.replace(",currency", ""), "missing column(s) 'currency'"),
    ],
)
def test_a_bad_csv_header_stops_the_import_before_any_row(session, org, tmp_path, header, message):
    path = write(tmp_path / "payments.csv", [header, csv_row("inv_1")])
    result = invoke(str(path), "--org", str(org.id))
    assert result.exit_code == 1
    assert message in result.output
    assert stored(session, org.id) == {}


def test_the_same_external_id_twice_in_a_file_rejects_the_later_line_across_batches(
    session, org, tmp_path
):
    lines = [HEADER, csv_row("dup", "1")]
    lines += [csv_row(f"inv_{number}") for number in range(MAX_BATCH)]
    lines += [csv_row("dup", "2")]
    path = write(tmp_path / "payments.csv", lines)
    result = invoke(str(path), "--org", str(org.id))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"line {MAX_BATCH + 3}: external_id: the same external_id is on line 2",
        f"created {MAX_BATCH + 1}, updated 0, unchanged 0, rejected 1",
    ]
    assert stored(session, org.id)["dup"].amount_minor == 1


def test_a_large_file_is_sent_in_batches_of_1000(session, org, tmp_path, monkeypatch):
    sizes: list[int] = []
    real_upsert = payments_command.upsert_payments

    def spy(*, session, org_id, items):
        sizes.append(len(items))
        return real_upsert(session=session, org_id=org_id, items=items)

    monkeypatch.setattr(payments_command, "upsert_payments", spy)
    lines = [HEADER] + [csv_row(f"inv_{number}") for number in range(2 * MAX_BATCH + 500)]
    path = write(tmp_path / "payments.csv", lines)
    result = invoke(str(path), "--org", str(org.id))
    assert result.exit_code == 0, result.output
    assert sizes == [MAX_BATCH, MAX_BATCH, 500]
    assert result.stdout == "created 2500, updated 0, unchanged 0, rejected 0\n"
    assert len(stored(session, org.id)) == 2500


def test_rejections_in_a_later_batch_keep_their_line_numbers(session, org, tmp_path):
    lines = [HEADER] + [csv_row(f"inv_{number}") for number in range(MAX_BATCH + 10)]
    lines[MAX_BATCH + 5] = csv_row("bad", "oops")
    path = write(tmp_path / "payments.csv", lines)
    result = invoke(str(path), "--org", str(org.id))
    assert result.stdout.splitlines()[0] == (
        f"line {MAX_BATCH + 6}: amount_minor: Input should be a valid integer"
    )


def test_an_unreadable_record_stops_the_import_keeping_the_committed_batches(
    session, org, tmp_path
):
    lines = [HEADER] + [csv_row(f"inv_{number}") for number in range(MAX_BATCH + 2)]
    # A cell over the csv module's field size limit cannot be parsed past.
    lines.insert(MAX_BATCH + 2, csv_row("huge", provider_reference="x" * 200_000))
    path = write(tmp_path / "payments.csv", lines)
    result = invoke(str(path), "--org", str(org.id))
    assert result.exit_code == 1
    assert result.stdout == f"created {MAX_BATCH}, updated 0, unchanged 0, rejected 0\n"
    assert f"import stopped: line {MAX_BATCH + 3}: unreadable CSV" in result.stderr
    assert len(stored(session, org.id)) == MAX_BATCH


def test_the_format_comes_from_the_extension_unless_given(session, org, tmp_path):
    jsonl = write(tmp_path / "payments.ndjson", [jsonl_item("a1")])
    assert invoke(str(jsonl), "--org", str(org.id)).exit_code == 0
    unknown = write(tmp_path / "payments.txt", [jsonl_item("a2")])
    refused = invoke(str(unknown), "--org", str(org.id))
    assert refused.exit_code == 2
    assert "--format" in refused.output
    forced = invoke(str(unknown), "--org", str(org.id), "--format", "jsonl")
    assert forced.exit_code == 0, forced.output
    assert set(stored(session, org.id)) == {"a1", "a2"}


def test_an_unknown_organisation_is_a_clear_error(session, tmp_path):
    path = write(tmp_path / "payments.csv", [HEADER, csv_row("inv_1")])
    result = invoke(str(path), "--org", str(uuid.uuid4()))
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert "Traceback" not in result.output
    assert session.scalars(select(Organization)).all() == []


def test_no_progress_bar_or_logs_on_stdout_when_not_on_a_terminal(session, org, tmp_path):
    path = write(tmp_path / "payments.csv", [HEADER, csv_row("inv_1")])
    result = invoke(str(path), "--org", str(org.id))
    assert result.stdout == "created 1, updated 0, unchanged 0, rejected 0\n"
    assert "importing" not in result.stderr


@pytest.fixture
def idle_broker():
    """A Redis database no test worker consumes, so queued messages stay countable."""
    number = 1 + (WORKER_NUMBER + 7) % 15
    client = redis.Redis.from_url(redis_url_numbered(number))
    client.delete("matching")
    yield redis_url_numbered(number), client
    client.delete("matching")
    client.close()


def test_a_real_process_commits_the_import_and_queues_matching(committed, idle_broker, tmp_path):
    broker_url, broker = idle_broker
    created = run_cli("org", "create", "Acme", "--json")
    assert created.returncode == 0, created.stderr
    org_id = json.loads(created.stdout)["id"]
    path = write(
        tmp_path / "payments.csv", [HEADER, csv_row("inv_1"), csv_row("inv_2", "x"), csv_row("i3")]
    )
    command = ("payments", "import", str(path), "--org", org_id)
    result = run_cli(*command, env={"REDIS_URL": broker_url})
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "line 3: amount_minor: Input should be a valid integer",
        "created 2, updated 0, unchanged 0, rejected 1",
    ]
    with committed.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM payments WHERE org_id = :org"), {"org": org_id}
        ).scalar_one()
        queued = connection.execute(
            text("SELECT count(*) FROM pending_payment_matches WHERE org_id = :org"),
            {"org": org_id},
        ).scalar_one()
    assert count == 2
    assert queued == 2
    assert broker.llen("matching") == 1  # one wake-up per committed batch
    again = run_cli(*command, env={"REDIS_URL": broker_url})
    assert again.stdout.splitlines()[-1] == "created 0, updated 0, unchanged 2, rejected 1"
    assert broker.llen("matching") == 1
