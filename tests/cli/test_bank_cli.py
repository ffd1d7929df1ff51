"""``recon bank import``: a line per statement, a progress bar on a terminal, exit 1 and
nothing stored for an unreadable file (real processes, committed database)."""

from __future__ import annotations

from sqlalchemy import func, select

from shared.models import BankEntryRecord, BankStatementRecord
from shared.platform.db import unit_of_work
from tests.bank.support import FIXTURES, fixture_bytes
from tests.bank.test_csv import MAPPING
from tests.cli.test_progress import run_cli_on_terminal
from tests.conftest import run_cli

CAMT_LINE = (
    "NL91…4300 EUR · RECON-2026-03-02 (camt053, 2026-03-02 → 2026-03-02): 2 entries "
    "({added}), opening 1,000.00, closing 1,249.75, balances add up"
)


def stored() -> tuple[int, int]:
    with unit_of_work() as session:
        return (
            session.scalar(select(func.count()).select_from(BankStatementRecord)),
            session.scalar(select(func.count()).select_from(BankEntryRecord)),
        )


def test_import_prints_each_statement_and_the_same_file_again_adds_nothing(org_id):
    path = str(FIXTURES / "camt053_v02.xml")
    first = run_cli("bank", "import", path, "--org", org_id)
    assert first.returncode == 0, first.stderr
    assert first.stdout == CAMT_LINE.format(added="2 added") + "\n"
    again = run_cli("bank", "import", path, "--org", org_id)
    assert again.returncode == 0, again.stderr
    assert again.stdout == CAMT_LINE.format(added="already imported") + "\n"
    assert stored() == (1, 2)


def test_a_csv_import_draws_a_progress_bar_and_the_mapping_is_kept(org_id, tmp_path):
    header, row = fixture_bytes("statement.csv").splitlines(keepends=True)[:2]
    path = tmp_path / "march.csv"
    path.write_bytes(header + b"".join(row.replace(b"0005", b"%05d" % n) for n in range(20_000)))
    mapping = tmp_path / "mapping.json"
    mapping.write_text(MAPPING.model_dump_json())
    arguments = ("bank", "import", str(path), "--org", org_id, "--mapping", str(mapping))
    code, stdout, terminal = run_cli_on_terminal(*arguments)
    assert code == 0, terminal
    assert "20000 entries (20000 added), no balances" in stdout
    assert "importing" in terminal
    assert "100%" in terminal
    with unit_of_work() as session:
        account_id = session.scalar(select(BankStatementRecord.account_id))
    april = tmp_path / "april.csv"
    april.write_bytes(fixture_bytes("statement.csv").replace(b".03.2026", b".04.2026"))
    result = run_cli("bank", "import", str(april), "--account", str(account_id))
    assert result.returncode == 0, result.stderr
    assert "(csv, 2026-04-02 → 2026-04-02): 2 entries (2 added)" in result.stdout


def test_an_unreadable_file_exits_1_naming_the_place_and_stores_nothing(org_id, tmp_path):
    path = tmp_path / "broken.sta"
    path.write_bytes(fixture_bytes("statement.sta").replace(b":86:Account charges", b":99:x"))
    result = run_cli("bank", "import", str(path), "--org", org_id)
    assert result.returncode == 1
    assert "mt940 line 10: unknown tag :99:" in result.stderr
    assert stored() == (0, 0)


def test_a_bad_mapping_file_or_no_organisation_is_refused(org_id, tmp_path):
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"account": "x"}')
    path = str(FIXTURES / "statement.csv")
    result = run_cli("bank", "import", path, "--org", org_id, "--mapping", str(mapping))
    assert result.returncode == 1
    assert "mapping file is invalid" in result.stderr
    mapping.write_text("{not json")
    result = run_cli("bank", "import", path, "--org", org_id, "--mapping", str(mapping))
    assert (result.returncode, "not JSON" in result.stderr) == (2, True)
    result = run_cli("bank", "import", path)
    assert (result.returncode, "give --account or --org" in result.stderr) == (2, True)
    assert stored() == (0, 0)
