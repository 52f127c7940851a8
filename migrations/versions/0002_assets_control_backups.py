"""Scan cache and library problems (assets), control flags (pause), replace-mode backups.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("restorable", sa.Boolean(), nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_assets"),
    )
    op.create_table(
        "control",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_control"),
    )
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


def downgrade() -> None:
    op.drop_table("backups")
    op.drop_table("control")
    op.drop_table("assets")
