"""who imported each settlement file

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-14 08:00:00.000000

``settlement_files.imported_by`` and ``imported_by_name``: the API key (its id and name),
the console's person (``user:<id>``, their name) or the operator's CLI (``cli``) that
imported the file, shown on the console's settlements page (docs/design.md, "Console").
Files imported before are null (unknown). Adding two nullable columns without a default
takes an ACCESS EXCLUSIVE lock on ``settlement_files`` for an instant (no table rewrite).

(Chained after 0017; 0020, the discrepancies' provider, follows it.)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("imported_by", "imported_by_name")


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("settlement_files", sa.Column(column, sa.Text(), nullable=True))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("settlement_files", column)
