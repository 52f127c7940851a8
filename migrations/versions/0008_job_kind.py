"""A job's kind: what of the asset it restores, the still (as every job before) or its video.

A Live Photo can now have two jobs at once, one restoring the reselected still and one its
video (`[video] enabled`); they run, supersede and are counted apart, so the kind is a column
of its own that the queue, the supersede rule and `lmd status` read. Every row written before
this migration restored a still: the column's server default fills them with 'still'.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="still")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("kind")
