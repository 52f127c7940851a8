"""The job store: SQLite/PostgreSQL job queue, events, workers, scans, asset cache, control.

`open_store(url)` gives a migrated `JobStore`; states live in `states.py`, identities in
`identity.py`, the schema in `models.py` (created by Alembic in `migrations/`).
"""

from daemon.store.db import StoreError, migrate, open_store
from daemon.store.identity import job_identity
from daemon.store.queue import (
    EnqueueResult,
    Job,
    JobEvent,
    JobNotFound,
    JobSpec,
    JobStore,
    LeaseLost,
)
from daemon.store.states import TRANSITIONS, InvalidTransition, JobState, check_transition

__all__ = [
    "TRANSITIONS",
    "EnqueueResult",
    "InvalidTransition",
    "Job",
    "JobEvent",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "JobStore",
    "LeaseLost",
    "StoreError",
    "check_transition",
    "job_identity",
    "migrate",
    "open_store",
]
