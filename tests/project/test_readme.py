"""The README documents every setting an operator can set."""

from __future__ import annotations

from shared.platform.settings import Settings
from tests.conftest import REPO_ROOT


def test_every_setting_is_in_the_readme_configuration_table():
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [
        name.upper() for name in Settings.model_fields if f"| `{name.upper()}` |" not in readme
    ]
    assert missing == []
