"""A painting keeps the history of its loss weights changed while it painted, and its remote job can be
looked up by id (Gallery forwards such a change to the job until Studio confirms it).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("paintings") as batch:
        batch.add_column(sa.Column("weight_changes", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True))
        batch.create_index("ix_paintings_scope_remote_id", ["scope", "remote_id"])


def downgrade() -> None:
    # The older schema has no history of weights: it goes (each painting's params keep the latest), and
    # so does any "weights" intent the older code would not know what to do with.
    op.execute("DELETE FROM remote_actions WHERE action = 'weights'")
    with op.batch_alter_table("paintings") as batch:
        batch.drop_index("ix_paintings_scope_remote_id")
        batch.drop_column("weight_changes")
