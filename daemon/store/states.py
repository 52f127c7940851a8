"""Every state a job can be in, and the only transitions allowed between them.

One enum and one table, so that "can a failed job be retried?" has exactly one answer.
`JobStore` routes every state change through `check_transition`, and records it as an event.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "pending"  # waiting to be claimed (possibly not before `not_before`)
    RUNNING = "running"  # claimed by a worker under a lease
    DEFERRED = "deferred"  # postponed without burning an attempt (no GPU, out of memory...)
    SUCCEEDED = "succeeded"  # output written and recorded
    FAILED = "failed"  # gave up: attempts exhausted or a non-retryable error
    CANCELLED = "cancelled"  # by a person, or superseded by a job with newer inputs
    SKIPPED = "skipped"  # nothing to do (e.g. not restorable after all)


#: Jobs still waiting or working: at most one of these should exist per asset.
ACTIVE_STATES = frozenset({JobState.PENDING, JobState.RUNNING, JobState.DEFERRED})
#: Jobs that a worker will never touch again unless a person (or reprocess) re-queues them.
FINISHED_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.SKIPPED}
)
#: States a claim picks from (deferred jobs become claimable once `not_before` passes).
CLAIMABLE_STATES = frozenset({JobState.PENDING, JobState.DEFERRED})

S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # claim; cancel/supersede; skip; postponed by a scheduler
    S.PENDING: frozenset({S.RUNNING, S.CANCELLED, S.SKIPPED, S.DEFERRED}),
    # success; give up; retry/release/lease expired; defer; cancel while running; skip
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.PENDING, S.DEFERRED, S.CANCELLED, S.SKIPPED}),
    S.DEFERRED: frozenset({S.RUNNING, S.PENDING, S.CANCELLED, S.SKIPPED}),
    # retry / reprocess re-queue; a person may cancel a failed job so it stops showing
    S.FAILED: frozenset({S.PENDING, S.CANCELLED}),
    S.SUCCEEDED: frozenset({S.PENDING}),  # reprocess
    S.CANCELLED: frozenset({S.PENDING}),  # retry, reprocess, or inputs reverted
    S.SKIPPED: frozenset({S.PENDING, S.CANCELLED}),
}
del S


class InvalidTransition(ValueError):
    """A state change that `TRANSITIONS` does not allow."""


def check_transition(current: JobState | str, new: JobState | str) -> None:
    """Raise `InvalidTransition` unless `current -> new` is listed in `TRANSITIONS`."""
    a, b = JobState(current), JobState(new)
    if b not in TRANSITIONS[a]:
        raise InvalidTransition(f"a {a.value} job cannot become {b.value}")


def can_transition(current: JobState | str, new: JobState | str) -> bool:
    return JobState(new) in TRANSITIONS[JobState(current)]
