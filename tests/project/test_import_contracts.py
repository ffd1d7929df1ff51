"""The dependency direction of docs/design.md, enforced by import-linter (pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
PACKAGES = ("api", "worker", "cli", "shared")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the packages under ``root``, with ``root`` first on the path."""
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_code(destination: Path) -> Path:
    """The packages and pyproject.toml copied under ``destination`` (to break on purpose)."""
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def test_the_code_keeps_every_import_contract():
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "broken_contract"),
    [
        ("shared/ingest/events.py", "import worker.tasks", "never imports an edge"),
        ("shared/platform/db.py", "import shared.models", "over the platform"),
        ("shared/values/money.py", "import shared.matching.rules", "over the platform"),
        ("shared/models/core.py", "import shared.discrepancies.lifecycle", "over the platform"),
    ],
)
def test_an_import_against_the_direction_breaks_a_contract(
    tmp_path, module, forbidden_import, broken_contract
):
    root = copy_of_the_code(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{forbidden_import}  # noqa\n")

    result = lint_imports(root)

    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(broken_contract in line for line in broken), result.stdout
