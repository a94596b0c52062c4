"""One champion per product: ``model_versions.part_type`` (None: the default champion of its kind) and
``inspections.part_type`` (the part type a map was routed by; drift is judged per product). Both nullable, so
existing rows keep meaning what they meant: default models, inspections without a product.

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-10
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # nullable columns: a plain ALTER TABLE ADD COLUMN on SQLite and PostgreSQL, no table rebuild
    for table in ("model_versions", "inspections"):
        op.add_column(table, sa.Column("part_type", sa.String(length=128), nullable=True))
        op.create_index(op.f(f"ix_{table}_part_type"), table, ["part_type"], unique=False)


def downgrade() -> None:
    for table in ("inspections", "model_versions"):
        op.drop_index(op.f(f"ix_{table}_part_type"), table_name=table)
        with op.batch_alter_table(table) as batch:  # SQLite drops columns by rebuilding the table
            batch.drop_column("part_type")
