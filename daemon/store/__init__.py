"""The job store: SQLite/PostgreSQL job queue, events, workers, scans, asset cache, control.

`open_store(url)` gives a migrated `JobStore` (`facade.py`), composed from one module per
concern: `enqueue`, `queue` (claim, heartbeat, finish), `commands` (retry, cancel,
reprocess), `queries`, `workers`, `scans`, `asset_cache`, `control`. States live in
`states.py`, identities in `identity.py`, value types in `jobs.py`, the schema in `models.py`
(created by Alembic in `migrations/`), engines and migration in `db.py`.
"""

from daemon.store.db import migrate
from daemon.store.errors import JobNotFound, LeaseLost, StoreError
from daemon.store.facade import JobStore, open_store
from daemon.store.identity import job_identity
from daemon.store.jobs import EnqueueResult, Job, JobEvent, JobSpec, OutputSpec
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
    "OutputSpec",
    "StoreError",
    "check_transition",
    "job_identity",
    "migrate",
    "open_store",
]
