"""A painting may have no photo: a latent generator model (engine `model`) paints from a seed alone.
And a painting remembers the iteration of its preview, which previews by time no longer make a
multiple of `preview_every`: a resume starts from exactly there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("paintings") as batch:
        batch.alter_column("content_image", existing_type=sa.String(64), nullable=True)
        batch.add_column(sa.Column("preview_iteration", sa.Integer(), nullable=True))


def downgrade() -> None:
    # A painting without a photo cannot be kept by the older schema: such paintings go with it.
    photoless = "SELECT id FROM paintings WHERE content_image IS NULL"
    op.execute(f"DELETE FROM painting_progress WHERE painting_id IN ({photoless})")
    op.execute(f"DELETE FROM painting_styles WHERE painting_id IN ({photoless})")
    op.execute("DELETE FROM paintings WHERE content_image IS NULL")
    with op.batch_alter_table("paintings") as batch:
        batch.drop_column("preview_iteration")
        batch.alter_column("content_image", existing_type=sa.String(64), nullable=False)
