"""Replace-mode backups have one source of truth: the record beside each backup.

`daemon.output.replace` writes `<backup>.lmd.json` atomically beside the backup, before the
target is swapped, and its crash recovery, `lmd revert` and the worker's undo all read and
rewrite it; it also carries what the target was besides its bytes (symlink, mode, owner, mtime,
extended attributes). The `backups` table was a copy written only after the swap, and read by
nothing but a "mark reverted" on the way out, so the two could disagree after a crash. Its rows
hold nothing the records do not, so dropping it loses nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_index("ix_backups_target_path", table_name="backups")
    op.drop_index("ix_backups_job_id", table_name="backups")
    op.drop_table("backups")


def downgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("target_path", sa.Text(), nullable=False),
        sa.Column("backup_path", sa.Text(), nullable=False),
        sa.Column("original_signature", sa.JSON(), nullable=True),
        sa.Column("restored_signature", sa.JSON(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("reverted_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backups"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_backups_job_id_jobs"),
    )
    op.create_index("ix_backups_job_id", "backups", ["job_id"])
    op.create_index("ix_backups_target_path", "backups", ["target_path"])
