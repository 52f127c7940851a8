"""How a beside output is named, pinned on the job: lmd's suffix or PhotoPrism's stacking name.

`[output] naming = "photoprism"` names a beside output so that PhotoPrism stacks it with its
original (`daemon.output.plan.photoprism_stack_name`). Like the rest of the output it is pinned
on the job at enqueue, so a config change makes new jobs instead of renaming a queued one.
NULL means lmd's own suffix naming: every row written before this migration, and every job
that does not ask for another.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("output_naming", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("output_naming")
