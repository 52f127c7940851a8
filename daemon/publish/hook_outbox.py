"""Post-job hooks queued in the publish outbox: a hook still to run survives a restart.

`HookRunner` (`daemon.publish.hooks`) keeps its queue in memory, which is right where there is
no job database. Where there is one (the daemon, `lmd review`), the hooks of finished jobs wait
as `publish_outbox` rows like the word to Immich and PhotoPrism, so a hook owed for a job that
finished just before a restart or a crash still runs after it, and `lmd status` counts the
hooks that failed. One background thread runs them one at a time, each bounded by
`[hooks] timeout_seconds`, so the worker never waits for a hook.

What is not changed: a hook that ran and failed (exit status not 0, could not start, killed at
its timeout) is logged and not run again (`failed` in the outbox: it may have done half its
work, and only its author knows whether a second run is safe). A hook killed because lmd is
stopping did not get to finish through no fault of its own: it runs again at the next start.
The outbox is the bound on waiting hooks, so `max_pending` does not apply here.
"""

from __future__ import annotations

import threading
from typing import Any

from daemon.publish.hooks import KILL_GRACE_SECONDS, run_hooks
from daemon.publish.outbox import DeliveryError, Outbox, OutboxStore
from daemon.publish.outcome import JobOutcome
from daemon.publish.settings import HooksSettings

#: A run stopped by lmd's shutdown is given back and tried again after this (the next start)
RESTART_DELAY_SECONDS = 1.0
#: The claim outlives the hook's timeout and its kill by this much
LEASE_MARGIN_SECONDS = 60.0


class StoredHookRunner:
    """Hooks through the outbox; the interface of `HookRunner` (enabled, submit, start,
    wait_idle, close)."""

    def __init__(self, settings: HooksSettings, store: OutboxStore) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self.outbox = Outbox(
            "hooks",
            {"hook.success": self._run, "hook.failure": self._run},
            max_attempts=100,  # only stopped runs are retried (see the module doc)
            backoff=RESTART_DELAY_SECONDS,
            max_backoff=RESTART_DELAY_SECONDS,
            store=store,
            lease_seconds=settings.timeout_seconds + KILL_GRACE_SECONDS + LEASE_MARGIN_SECONDS,
        )

    @property
    def enabled(self) -> bool:
        return self.settings.on_success is not None or self.settings.on_failure is not None

    def start(self) -> None:
        """Run the hooks an earlier run left waiting."""
        if self.enabled:
            self.outbox.start()

    def submit(self, outcome: JobOutcome) -> None:
        """Queue the hook for `outcome` (when one is configured for its event); returns at
        once."""
        command = self.settings.on_success if outcome.event == "success" else (
            self.settings.on_failure
        )
        if command is None:
            return
        job_id = outcome.job_id if isinstance(outcome.job_id, int) else None
        self.outbox.submit(f"hook.{outcome.event}", outcome.to_document(), job_id=job_id)

    def _run(self, payload: dict[str, Any]) -> None:
        outcome = JobOutcome.from_document(payload)
        result = run_hooks(self.settings, outcome, stop=self._stop)
        if result is None or result.ok:
            return  # none configured for this event any more, or it ran and succeeded
        if result.stopped:
            raise DeliveryError("hook killed: lmd is stopping; it runs again at the next start")
        if result.error is not None:
            why = f"could not start: {result.error}"
        elif result.timed_out:
            why = f"timed out after {self.settings.timeout_seconds:g} s and was killed"
        else:
            why = f"exited with status {result.returncode}"
        tail = result.output.strip().splitlines()[-1:] if result.output else []
        raise DeliveryError(f"hook {why}" + (f": {tail[0]}" if tail else ""), retry=False)

    def wait_idle(self, timeout: float) -> bool:
        return self.outbox.wait_idle(timeout)

    def close(self, timeout: float = 0.0) -> None:
        """Give waiting hooks up to `timeout` s, then kill the running one (it runs again at
        the next start) and stop; what still waits stays in the outbox."""
        if timeout > 0:
            self.outbox.wait_idle(timeout)
        self._stop.set()
        self.outbox.close(KILL_GRACE_SECONDS + 6.0)
