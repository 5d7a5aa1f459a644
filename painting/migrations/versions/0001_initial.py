"""Paintings, their style images and their progress history.

Revision ID: 0001
Revises:
Create Date: 2024-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Written out here rather than imported from painting.db: a migration is a fixed record of one
# step and must not change when the models do.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "paintings",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("content_image", sa.String(64), nullable=False),
        sa.Column("preview_image", sa.String(64), nullable=True),
        sa.Column("result_image", sa.String(64), nullable=True),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("remote_id", sa.String(200), nullable=True),
        sa.Column("remote_url", sa.String(2000), nullable=True),
        sa.Column("remote_cursor", sa.String(200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_paintings"),
        sa.UniqueConstraint("scope", "idempotency_key", name="uq_paintings_scope_idempotency_key"),
    )
    op.create_index("ix_paintings_scope_created_at_id", "paintings", ["scope", "created_at", "id"])
    op.create_index("ix_paintings_scope_status", "paintings", ["scope", "status"])

    op.create_table(
        "painting_styles",
        sa.Column("painting_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String(64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["painting_id"],
            ["paintings.id"],
            ondelete="CASCADE",
            name="fk_painting_styles_painting_id_paintings",
        ),
        sa.PrimaryKeyConstraint("painting_id", "position", name="pk_painting_styles"),
    )

    op.create_table(
        "painting_progress",
        sa.Column("painting_id", sa.String(32), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("evaluations", sa.Integer(), nullable=False),
        sa.Column("total_loss", sa.Float(), nullable=True),
        sa.Column("content_loss", sa.Float(), nullable=True),
        sa.Column("style_loss", sa.Float(), nullable=True),
        sa.Column("tv_loss", sa.Float(), nullable=True),
        sa.Column("elapsed_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["painting_id"],
            ["paintings.id"],
            ondelete="CASCADE",
            name="fk_painting_progress_painting_id_paintings",
        ),
        sa.PrimaryKeyConstraint("painting_id", "iteration", name="pk_painting_progress"),
    )


def downgrade() -> None:
    op.drop_table("painting_progress")
    op.drop_table("painting_styles")
    op.drop_index("ix_paintings_scope_status", table_name="paintings")
    op.drop_index("ix_paintings_scope_created_at_id", table_name="paintings")
    op.drop_table("paintings")
