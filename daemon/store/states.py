"""Every state a job (and a worker) can be in, the only transitions allowed between job
states, and which of people's commands may act on which job state.

One enum and one table each, so that "can a failed job be retried?" has exactly one answer.
`JobStore` routes every state change through `check_transition`, and records it as an event;
the store and the CLI both ask `COMMAND_STATES` which jobs a command may touch.
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


class Command(StrEnum):
    """People's commands on single jobs (`lmd jobs retry|cancel`, `lmd reprocess`)."""

    RETRY = "retry"
    CANCEL = "cancel"
    REPROCESS = "reprocess"


#: Which job states each command may act on, and the state it moves them to. Every pair
#: (state -> target) is also listed in TRANSITIONS (a test checks it).
COMMAND_STATES: dict[Command, frozenset[JobState]] = {
    # a finished job that did not succeed; reprocess is the way to redo a succeeded one
    Command.RETRY: frozenset({JobState.FAILED, JobState.CANCELLED, JobState.SKIPPED}),
    # anything not yet done; a failed or skipped job is cancelled so that it stops showing
    Command.CANCEL: frozenset({*ACTIVE_STATES, JobState.FAILED, JobState.SKIPPED}),
    Command.REPROCESS: FINISHED_STATES,
}
COMMAND_TARGETS: dict[Command, JobState] = {
    Command.RETRY: JobState.PENDING,
    Command.CANCEL: JobState.CANCELLED,
    Command.REPROCESS: JobState.PENDING,
}


def command_allows(command: Command, state: JobState | str) -> bool:
    """Whether `command` may act on a job in `state`."""
    return JobState(state) in COMMAND_STATES[command]


def describe_states(states: frozenset[JobState]) -> str:
    """`failed, cancelled or skipped`: a command's states, in the enum's order, for messages."""
    names = [s.value for s in JobState if s in states]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


class WorkerState(StrEnum):
    """What a worker process is doing, as its `workers` row (and `lmd status`) shows it."""

    STARTING = "starting"
    IDLE = "idle"  # nothing claimable
    RUNNING = "running"  # a job is claimed and running
    PAUSED = "paused"  # `lmd pause`: claims nothing until `lmd resume`
    OUTSIDE_WINDOW = "outside-window"  # outside worker.windows
    STOPPED = "stopped"  # the process ended cleanly


class InvalidTransition(ValueError):
    """A state change that `TRANSITIONS` does not allow."""


def check_transition(current: JobState | str, new: JobState | str) -> None:
    """Raise `InvalidTransition` unless `current -> new` is listed in `TRANSITIONS`."""
    a, b = JobState(current), JobState(new)
    if b not in TRANSITIONS[a]:
        raise InvalidTransition(f"a {a.value} job cannot become {b.value}")


def can_transition(current: JobState | str, new: JobState | str) -> bool:
    return JobState(new) in TRANSITIONS[JobState(current)]
