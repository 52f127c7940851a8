"""Review decisions: one row per finished restoration (`daemon.store.review`).

A restoration either waits in staging for a person (`awaiting`) or was published (`accepted`),
or was turned down (`rejected`); the row also keeps why it needs a look (flags, the face check,
the flow confidence) and the claim that makes one decision at a time. Jobs finished before this
migration have no row and do not appear on the review page.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("staged", sa.Boolean(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("face_check", sa.JSON(), nullable=True),
        sa.Column("flow_confidence", sa.Float(), nullable=True),
        sa.Column("like_role", sa.String(16), nullable=False),
        sa.Column("staged_signature", sa.JSON(), nullable=True),
        sa.Column("restored_at", TS, nullable=False),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("claim", sa.String(64), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("redo_job_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name="pk_reviews"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_reviews_job_id_jobs"),
    )
    op.create_index("ix_reviews_state", "reviews", ["state"])


def downgrade() -> None:
    op.drop_index("ix_reviews_state", table_name="reviews")
    op.drop_table("reviews")
