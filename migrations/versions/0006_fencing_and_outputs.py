"""Fenced leases and the index of lmd's own outputs.

`jobs.lease_generation` is the fencing token: every claim adds one, and every write a worker
makes into the library or the output tree, and the transaction that records its result, check
that the generation they were given still holds the lease. A worker that stalled past its lease
(SIGSTOP, a swapped-out box) cannot commit over the worker that took the job since, even when
both carry the same configured worker id.

`outputs` lists every output lmd wrote (content hash -> job), written in the transaction that
records the job's success, so lmd knows its own files wherever they move: the scanner never takes
one for an input, and revert finds the backup of a replaced still by its content and job. Jobs
that succeeded before this migration get their row here from the job's output signature.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("lease_generation", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "outputs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(160), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("record_target", sa.Text(), nullable=True),
        sa.Column("written_at", TS, nullable=False),
        sa.Column("reverted_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outputs"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_outputs_job_id_jobs"),
    )
    op.create_index("ix_outputs_content_hash", "outputs", ["content_hash"])
    op.create_index("ix_outputs_job_id", "outputs", ["job_id"])
    _index_earlier_outputs()


def _index_earlier_outputs() -> None:
    """One `outputs` row per job that succeeded before this migration, from its output
    signature (the record of a replaced still is found by its target when needed)."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT id, output_path, output_signature, output_mode, output_location, finished_at"
            " FROM jobs WHERE state = 'succeeded' AND output_path IS NOT NULL"
        )
    ).all()
    outputs = sa.table(
        "outputs",
        sa.column("job_id", sa.Integer()), sa.column("content_hash", sa.String()),
        sa.column("size", sa.BigInteger()), sa.column("kind", sa.String()),
        sa.column("path", sa.Text()), sa.column("written_at", TS),
    )
    for row in rows:
        signature = row.output_signature
        if isinstance(signature, str):  # SQLite hands JSON back as text here
            signature = json.loads(signature)
        if not signature or not signature.get("content_hash"):
            continue
        if row.output_mode == "replace":
            kind = "replace"
        else:
            kind = "sidecar-beside" if row.output_location == "beside" else "sidecar-tree"
        written = row.finished_at
        if isinstance(written, str):  # SQLite: naive UTC text
            written = datetime.fromisoformat(written)
        if not isinstance(written, datetime):
            written = datetime.now(UTC)
        if written.tzinfo is None:
            written = written.replace(tzinfo=UTC)
        conn.execute(
            sa.insert(outputs).values(
                job_id=row.id, content_hash=signature["content_hash"],
                size=int(signature.get("size") or 0), kind=kind, path=row.output_path,
                written_at=written,
            )
        )


def downgrade() -> None:
    op.drop_index("ix_outputs_job_id", table_name="outputs")
    op.drop_index("ix_outputs_content_hash", table_name="outputs")
    op.drop_table("outputs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("lease_generation")
