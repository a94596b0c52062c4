"""Wafer counts on inspections: die_count, fail_count and wafer_yield (nullable; older rows keep None).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # nullable columns: a plain ALTER TABLE ADD COLUMN on SQLite and PostgreSQL, no table rebuild
    op.add_column("inspections", sa.Column("die_count", sa.Integer(), nullable=True))
    op.add_column("inspections", sa.Column("fail_count", sa.Integer(), nullable=True))
    op.add_column("inspections", sa.Column("wafer_yield", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:  # SQLite drops columns by rebuilding the table
        batch.drop_column("wafer_yield")
        batch.drop_column("fail_count")
        batch.drop_column("die_count")
