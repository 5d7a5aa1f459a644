"""Cancels and deletes the other side has not confirmed yet, a row per scope for the readiness write
check, and a painting's owner (a digest of the secret its browser holds).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("paintings") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
        batch.create_index("ix_paintings_scope_owner_status", ["scope", "owner", "status"])
    op.create_table(
        "remote_actions",
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("remote_id", sa.String(200), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "remote_id", name="pk_remote_actions"),
    )
    op.create_table(
        "health",
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_health"),
    )


def downgrade() -> None:
    with op.batch_alter_table("paintings") as batch:
        batch.drop_index("ix_paintings_scope_owner_status")
        batch.drop_column("owner")
    op.drop_table("health")
    op.drop_table("remote_actions")
