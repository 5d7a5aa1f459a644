"""Training runs (a CycleGAN or DCGAN trained on uploaded collections) and their loss curves, and
what a Studio must still do to a training run (a remote action's `target`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("remote_actions") as batch:
        batch.add_column(sa.Column("target", sa.String(16), nullable=True))
    op.create_table(
        "trainings",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("losses", JSON, nullable=True),
        sa.Column("seconds_per_step", sa.Float(), nullable=True),
        sa.Column("checkpoint_step", sa.Integer(), nullable=True),
        sa.Column("sample_image", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("remote_id", sa.String(200), nullable=True),
        sa.Column("remote_url", sa.String(2000), nullable=True),
        sa.Column("remote_cursor", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_trainings"),
        sa.UniqueConstraint("scope", "idempotency_key", name="uq_trainings_scope_idempotency_key"),
    )
    op.create_index("ix_trainings_scope_created_at_id", "trainings", ["scope", "created_at", "id"])
    op.create_index("ix_trainings_scope_status", "trainings", ["scope", "status"])
    op.create_table(
        "training_progress",
        sa.Column("training_id", sa.String(32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("losses", JSON, nullable=False),
        sa.Column("seconds_per_step", sa.Float(), nullable=False),
        sa.Column("elapsed_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["training_id"], ["trainings.id"], name="fk_training_progress_training_id_trainings", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("training_id", "step", name="pk_training_progress"),
    )


def downgrade() -> None:
    op.drop_table("training_progress")
    op.drop_index("ix_trainings_scope_status", table_name="trainings")
    op.drop_index("ix_trainings_scope_created_at_id", table_name="trainings")
    op.drop_table("trainings")
    op.execute("DELETE FROM remote_actions WHERE target IS NOT NULL")  # the older code knows no trainings
    with op.batch_alter_table("remote_actions") as batch:
        batch.drop_column("target")
