"""The worker: the one place where the library, the store, `core` and the output writer meet.

A worker claims one job at a time under a lease (`loop.Worker`), keeps the lease alive from a
heartbeat thread (`heartbeat`), and runs the job as its row says (`job.run_job`, whose table
lists every way a job can end): the restorer it names on the weights it pinned (`restorers`),
the output planned from the row before restoring and written as planned (`files`). What it
needs from the store, the files and the restorer is spelled out in `interfaces`.
`restorer_options` is re-exported from `daemon.restorer_config`, its home.
"""

from daemon.restorer_config import configured_weights_digest, restorer_options
from daemon.worker.job import LMD_VERSION, JobContext, Outcome, run_job
from daemon.worker.loop import Worker, default_worker_id

__all__ = [
    "LMD_VERSION",
    "JobContext",
    "Outcome",
    "Worker",
    "configured_weights_digest",
    "default_worker_id",
    "restorer_options",
    "run_job",
]
