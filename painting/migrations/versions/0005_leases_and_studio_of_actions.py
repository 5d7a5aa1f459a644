"""A painting's dispatch can be held by one Gallery process at a time (a lease: who, and until when),
and what a Studio must still do names that Studio (Gallery may send paintings to several).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("paintings") as batch:
        batch.add_column(sa.Column("holder", sa.String(200), nullable=True))
        batch.add_column(sa.Column("held_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("remote_actions") as batch:
        batch.add_column(sa.Column("remote_url", sa.String(2000), nullable=True))


def downgrade() -> None:
    # An older Gallery knows one Studio: what is still due at another one is told to that one alone.
    with op.batch_alter_table("remote_actions") as batch:
        batch.drop_column("remote_url")
    with op.batch_alter_table("paintings") as batch:
        batch.drop_column("held_until")
        batch.drop_column("holder")
