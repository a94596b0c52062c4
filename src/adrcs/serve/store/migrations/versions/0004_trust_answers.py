"""The trust layer's answer on inspections: decision, unknown_score and pred_set (nullable; older rows keep None),
and an index on (decision, confidence) for the review queue.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # nullable columns: a plain ALTER TABLE ADD COLUMN on SQLite and PostgreSQL, no table rebuild
    op.add_column("inspections", sa.Column("decision", sa.String(length=255), nullable=True))
    op.add_column("inspections", sa.Column("unknown_score", sa.Float(), nullable=True))
    op.add_column("inspections", sa.Column("pred_set", sa.Text(), nullable=True))
    op.create_index(op.f("ix_inspections_decision_confidence"), "inspections", ["decision", "confidence"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_inspections_decision_confidence"), table_name="inspections")
    with op.batch_alter_table("inspections") as batch:  # SQLite drops columns by rebuilding the table
        batch.drop_column("pred_set")
        batch.drop_column("unknown_score")
        batch.drop_column("decision")
