"""How and where each job's output is written, pinned on the job at enqueue.

The worker used to read the output mode, location and quality from the settings current when
it ran, so a config change between scan and work made an output one way and recorded it
another. Existing rows keep NULL here: the worker refuses such a job with a clear reason, and
the next scan, whose identities include the pinned output, enqueues its replacement.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (
    ("output_mode", sa.String(16)),
    ("output_location", sa.String(16)),
    ("output_root", sa.Text()),
    ("output_tree", sa.Text()),
    ("output_suffix", sa.String(64)),
    ("backup_dir", sa.Text()),
    ("jpeg_quality", sa.Integer()),
    ("heic_quality", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
