"""Post-job hooks: `[hooks] on_success` / `on_failure`, a person's own command after each job.

The command reads the job as a JSON document on stdin and as `LMD_*` environment variables
(`JobOutcome.to_document` / `to_environment`: LMD_EVENT, LMD_JOB_ID, LMD_ASSET, LMD_KIND,
LMD_ORIGINAL, LMD_OUTPUT, LMD_MODE, LMD_ERROR, LMD_RESTORER), on top of lmd's own
environment less lmd's own `LMD_*` settings: those may hold secrets (LMD_IMMICH__API_KEY) and
would be mistaken for the job's facts. A name's bytes that are not UTF-8 reach the variables
as those bytes, and the document (ASCII JSON) as `\\udcXX` escapes, which Python's
`os.fsencode` of the loaded string turns back into them. It runs in a session of its own
(its own process group), so at the timeout the whole group, children included, is sent
SIGTERM and, 2 s later, SIGKILL. (A child that starts a session of its own, e.g. with
`setsid`, leaves the group and is out of reach: a hook that wants to start a long task should
do exactly that.)

Why hooks never block the queue: `HookRunner.submit` only appends to a bounded in-memory
queue that one background thread works through, one hook at a time, each bounded by the
timeout, so the worker returns to its next job at once whatever the hook does. A failing
hook (exit status not 0, a command that cannot start) and a hanging one are logged with the
tail of their output; nothing is retried (a hook that must not miss a job can read lmd's
job list). The queue lives in memory: at `close`, the running hook is killed and hooks
still waiting are logged and not run. (With a job database, `Publishers` queues hooks in its
outbox instead: `daemon.publish.hook_outbox`, where they survive a restart.) `run_hook` is
the synchronous form (`lmd` commands and tests), blocking at most for the timeout plus the
kill grace.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from daemon.publish.outcome import JobOutcome
from daemon.publish.settings import HooksSettings

log = structlog.get_logger(__name__)

KILL_GRACE_SECONDS = 2.0
"""Between SIGTERM and SIGKILL of a hook that outlived its timeout."""
OUTPUT_TAIL_BYTES = 4096
"""How much of a hook's output (stdout and stderr together) is kept for the log."""


@dataclass(frozen=True, slots=True)
class HookResult:
    command: str | list[str]
    returncode: int | None
    """None when the hook was killed at the timeout or could not start."""
    timed_out: bool
    seconds: float
    output: str
    """The last `OUTPUT_TAIL_BYTES` of stdout and stderr, decoded leniently."""
    error: str | None = None
    """Why the hook could not start (a missing executable...)."""
    stopped: bool = False
    """Killed because lmd is stopping (`stop` was set), not because of the timeout."""

    @property
    def ok(self) -> bool:
        return (
            self.returncode == 0 and not self.timed_out and not self.stopped and self.error is None
        )


class _Tail:
    """Reads a pipe to its end keeping only the last bytes: a hook printing gigabytes costs
    lmd no memory, and a full pipe can never stall the hook."""

    def __init__(self, pipe, limit: int) -> None:  # type: ignore[no-untyped-def]
        self._buffer: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._limit = limit
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(OSError, ValueError):
            while chunk := pipe.read1(65536):
                self._buffer.append(chunk)
                self._size += len(chunk)
                while self._size - len(self._buffer[0]) >= self._limit:
                    self._size -= len(self._buffer.popleft())
        with contextlib.suppress(OSError):
            pipe.close()

    def text(self, wait: float) -> str:
        self._thread.join(wait)
        data = b"".join(list(self._buffer))[-self._limit :]
        return data.decode("utf-8", errors="replace")


def _feed(pipe, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """Write stdin from a thread: a hook that never reads it must not block lmd."""
    with contextlib.suppress(OSError, ValueError):
        pipe.write(data)
    with contextlib.suppress(OSError, ValueError):
        pipe.close()


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs. Zombies do not count: in a container
    whose init does not reap, a killed child stays a zombie and would hold up the kill."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the hook's whole process group, then SIGKILL whatever is left of it after
    `KILL_GRACE_SECONDS` (the hook itself may exit on TERM while a child ignores it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while time.monotonic() < deadline:
        proc.poll()  # reap the hook itself, so a dead hook does not keep the group alive
        if not _group_alive(proc.pid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)


def run_hook(
    command: str | list[str],
    outcome: JobOutcome,
    *,
    timeout: float,
    environment: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> HookResult:
    """Run one hook to its end or its timeout; never raises for anything the hook does.

    Setting `stop` (lmd is shutting down) kills the hook's group as the timeout would."""
    inherited = os.environ if environment is None else environment
    env = {k: v for k, v in inherited.items() if not k.startswith("LMD_")}
    env.update(outcome.to_environment())
    document = (json.dumps(outcome.to_document()) + "\n").encode("ascii")
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            command,
            shell=isinstance(command, str),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    except (OSError, ValueError) as exc:
        return HookResult(command, None, False, 0.0, "", error=str(exc))
    tail = _Tail(proc.stdout, OUTPUT_TAIL_BYTES)
    threading.Thread(target=_feed, args=(proc.stdin, document), daemon=True).start()
    timed_out = stopped = False
    deadline = started + timeout
    while True:
        step = deadline - time.monotonic()
        if stop is not None:
            step = min(step, 0.1)  # how soon a stop request is noticed
        try:
            proc.wait(timeout=max(step, 0.0))
            break
        except subprocess.TimeoutExpired:
            stopped = stop is not None and stop.is_set()
            timed_out = not stopped and time.monotonic() >= deadline
            if stopped or timed_out:
                _kill_group(proc)
                break
    # Output still open after the exit belongs to a child that left the group; stop waiting.
    output = tail.text(wait=1.0)
    return HookResult(
        command,
        None if timed_out or stopped else proc.returncode,
        timed_out,
        time.monotonic() - started,
        output,
        stopped=stopped,
    )


def _log_result(result: HookResult, outcome: JobOutcome) -> None:
    fields = {
        "job_id": outcome.job_id,
        "asset": outcome.asset,
        "hook": outcome.event,
        "duration_ms": round(result.seconds * 1000),
    }
    if result.ok:
        log.info("hook finished", **fields)
    elif result.error is not None:
        log.error("hook could not start", error=result.error, **fields)
    elif result.timed_out:
        log.error("hook timed out and was killed", output=result.output, **fields)
    elif result.stopped:
        log.warning("hook killed: lmd is stopping", output=result.output, **fields)
    else:
        log.error("hook failed", returncode=result.returncode, output=result.output, **fields)


def run_hooks(
    settings: HooksSettings, outcome: JobOutcome, stop: threading.Event | None = None
) -> HookResult | None:
    """Run the hook for `outcome.event` now (None when none is configured), and log it."""
    command = settings.on_success if outcome.event == "success" else settings.on_failure
    if command is None:
        return None
    result = run_hook(command, outcome, timeout=settings.timeout_seconds, stop=stop)
    _log_result(result, outcome)
    return result


class HookRunner:
    """Runs hooks on one background thread; `submit` never blocks (see the module doc)."""

    def __init__(self, settings: HooksSettings) -> None:
        self.settings = settings
        self._pending: collections.deque[JobOutcome] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.on_success is not None or self.settings.on_failure is not None

    def submit(self, outcome: JobOutcome) -> None:
        """Queue the hook for `outcome`; returns at once."""
        if not self.enabled:
            return
        with self._cond:
            if self._closed:
                log.warning("hook not run: lmd is stopping", job_id=outcome.job_id)
                return
            if len(self._pending) >= self.settings.max_pending:
                dropped = self._pending.popleft()
                log.error(
                    "hook dropped: too many waiting behind a slow hook",
                    job_id=dropped.job_id,
                    asset=dropped.asset,
                    max_pending=self.settings.max_pending,
                )
            self._pending.append(outcome)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="lmd-hooks", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait()
                if not self._pending:
                    self._busy = False
                    self._cond.notify_all()
                    return
                outcome = self._pending.popleft()
                self._busy = True
            try:
                run_hooks(self.settings, outcome, stop=self._stop)
            except Exception as exc:  # a bug here must not end the thread for later jobs
                log.exception("hook runner error", job_id=outcome.job_id, error=str(exc))

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or running (tests, and a polite stop)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 0.0) -> None:
        """Stop: give queued hooks up to `timeout` s, then kill the running one (its group,
        as at its timeout) and log the ones left unrun. Returns within `timeout` plus the
        kill grace."""
        if timeout > 0:
            self.wait_idle(timeout)
        with self._cond:
            self._closed = True
            left = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(KILL_GRACE_SECONDS + 6.0)
        for outcome in left:
            log.warning("hook not run: lmd is stopping", job_id=outcome.job_id, asset=outcome.asset)
