"""The publish outbox: deliveries to Immich, PhotoPrism and hooks that survive a restart.

Until now the deliveries waiting for a remote service lived in the daemon's memory, so a
restart (or a crash) lost them: a still restored and published never reached the viewer. Each
row is one delivery (`publisher` and its `kind`, the JSON `payload`, the job it is about), its
retry bookkeeping (`attempts`, `next_attempt_at`, `last_error`) and its `state`: `pending`
until delivered (`delivered`) or given up (`failed`). `claim_owner`/`claim_expires_at` is the
lease a worker takes before trying it, so two workers never deliver one entry twice, and an
entry whose worker died is tried again once the lease runs out. `coalesce_key` lets a burst of
jobs in one folder ask for one rescan.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "publish_outbox",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("publisher", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("coalesce_key", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claim_owner", sa.String(64), nullable=True),
        sa.Column("claim_expires_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_publish_outbox"),
    )
    op.create_index(
        "ix_publish_outbox_state_next_attempt_at", "publish_outbox", ["state", "next_attempt_at"]
    )
    op.create_index("ix_publish_outbox_job_id", "publish_outbox", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_publish_outbox_job_id", table_name="publish_outbox")
    op.drop_index("ix_publish_outbox_state_next_attempt_at", table_name="publish_outbox")
    op.drop_table("publish_outbox")
