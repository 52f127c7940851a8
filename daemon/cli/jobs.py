"""`lmd status`, `lmd jobs ...`, `lmd reprocess`, `lmd pause` / `lmd resume`: the queue seen
and steered by a person.

Everything here reads or changes the store through `JobStore`; no SQL, no state rules: which
command may act on which job state is `COMMAND_STATES` in `daemon.store.states`. What "status"
contains is `daemon.status.status_payload`; its human form is `daemon.cli.status_view`.

`status` and `jobs list/show` only read: they open the store read-only (nothing created, nothing
migrated; "no database yet at ..." instead). Every command takes `--json`; the shapes are in
docs/json-output.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from daemon.cli.context import STORE_INTEGER_MAX, JobIdArg, OperationalError, get_settings
from daemon.cli.render import clip, echo_json, print_table, say
from daemon.cli.status_view import render_status
from daemon.status import status_payload
from daemon.store.states import (
    COMMAND_STATES,
    Command,
    JobState,
    command_allows,
    describe_states,
)

if TYPE_CHECKING:
    from daemon.store import Job, JobStore

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, option: str | None = None) -> datetime:
    """An ISO date or date-time (local time unless it names a zone), or an age like `7d`,
    `12h`, `30m` meaning that long ago. Returns an aware UTC datetime; anything else, including
    a date outside the calendar's range (`99999999d`), is a usage error naming `option`."""
    usage = (
        f"{text!r} is not a date: use YYYY-MM-DD, YYYY-MM-DDTHH:MM, or an age like 7d / 12h"
    )
    try:
        match = _RELATIVE.match(text)
        if match:
            amount, unit = float(match.group(1)), _UNITS[match.group(2)]
            return datetime.now(UTC) - timedelta(**{unit: amount})
        value = datetime.fromisoformat(text.strip())
        if value.tzinfo is None:
            value = value.astimezone()  # a person's "2026-05-01" means their local midnight
        return value.astimezone(UTC)
    except OverflowError:
        raise typer.BadParameter(f"{text!r} is out of range", param_hint=option) from None
    except ValueError:
        raise typer.BadParameter(usage, param_hint=option) from None


@contextmanager
def opened_store(ctx: typer.Context, *, read_only: bool = False) -> Iterator[JobStore]:
    """Open (and migrate) the configured store; database problems become exit code 1.

    `read_only`: for commands that only look. Nothing is created or migrated; no database yet,
    or one that needs a migration, is an error message saying so."""
    from sqlalchemy.exc import SQLAlchemyError

    from daemon.store import JobStore, StoreError, open_store
    from daemon.store.db import open_engine

    settings = get_settings(ctx)
    try:
        if read_only:
            store = JobStore(open_engine(settings.database_url, read_only=True))
        else:
            store = open_store(settings.database_url)
    except StoreError as exc:
        raise OperationalError(str(exc)) from None
    try:
        yield store
    except SQLAlchemyError as exc:
        raise OperationalError(f"database error: {exc}") from None
    finally:
        store.close()


def _job_rows(jobs: list[Job]) -> list[tuple[Any, ...]]:
    return [
        (job.id, job.state.value, f"{job.attempts}/{job.max_attempts}", job.path,
         job.updated_at.isoformat(timespec="seconds"), clip(job.last_error, 60))
        for job in jobs
    ]


def register(app: typer.Typer) -> None:
    jobs_app = typer.Typer(help="List, inspect, retry and cancel jobs.", no_args_is_help=True)

    @app.command("status")
    def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Counts per state, workers, last scan, recent failures and library problems."""
        with opened_store(ctx, read_only=True) as store:
            payload = status_payload(store, get_settings(ctx))
        if as_json:
            echo_json(payload)
        else:
            render_status(payload)

    @jobs_app.command("list")
    def list_jobs(
        ctx: typer.Context,
        state: Annotated[JobState | None, typer.Option("--state", help="Only this state.")] = None,
        limit: Annotated[
            int,
            typer.Option(min=1, max=STORE_INTEGER_MAX, help="At most this many (newest first)."),
        ] = 50,
        as_json: JsonOpt = False,
    ) -> None:
        """List jobs, newest first (piped: tab-separated, whole paths and errors)."""
        with opened_store(ctx, read_only=True) as store:
            jobs = store.list_jobs(state, limit=limit)
        if as_json:
            echo_json([j.to_dict() for j in jobs])
            return
        empty = f"no {state.value} jobs" if state is not None else "no jobs yet"
        print_table(("id", "state", "attempts", "path", "updated", "error"), _job_rows(jobs),
                    empty=empty)

    @jobs_app.command("show")
    def show(ctx: typer.Context, job_id: JobIdArg, as_json: JsonOpt = False) -> None:
        """One job with every field and its history: state changes, review decisions, reverts."""
        with opened_store(ctx, read_only=True) as store:
            job = store.get_job(job_id)
            if job is None:
                raise OperationalError(f"job {job_id} does not exist")
            events = store.events(job_id)
        if as_json:
            echo_json({"job": job.to_dict(), "events": [e.to_dict() for e in events]})
            return
        fields = []
        for key, value in job.to_dict().items():
            if value not in (None, {}, []):
                # names inside stay text here; print_table shows them escaped (album-\xff)
                shown = (
                    json.dumps(value, default=str, ensure_ascii=False)
                    if isinstance(value, dict | list)
                    else value
                )
                fields.append((key, shown))
        print_table(("field", "value"), fields, title=f"job {job.id}")
        print_table(
            ("at", "from", "to", "worker", "reason"),
            ((e.at.isoformat(timespec="seconds"), e.from_state.value if e.from_state else "",
              e.to_state.value, e.worker or "", e.reason or "") for e in events),
            title="history", empty="history: none recorded",
        )

    @jobs_app.command("retry")
    def retry(
        ctx: typer.Context,
        job_id: Annotated[
            int | None, typer.Argument(min=1, max=STORE_INTEGER_MAX, help="The job to retry.")
        ] = None,
        failed: Annotated[bool, typer.Option("--failed", help="Retry every failed job.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Re-queue a failed, cancelled or skipped job with fresh attempts, or every failed one."""
        if (job_id is None) == (not failed):
            raise typer.BadParameter("give either a job ID or --failed")
        with opened_store(ctx) as store:
            if failed:
                n = store.retry_failed()
                if as_json:
                    echo_json({"requeued": n, "job_id": None})
                else:
                    say(f"re-queued {n} failed job(s)")
                return
            assert job_id is not None
            job = store.get_job(job_id)
            if job is None:
                raise OperationalError(f"job {job_id} does not exist")
            if job.superseded_by is not None:
                raise OperationalError(
                    f"job {job_id} was superseded by job {job.superseded_by} when its inputs"
                    " changed; retry that one"
                )
            if not store.retry(job_id):
                allowed = describe_states(COMMAND_STATES[Command.RETRY])
                raise OperationalError(
                    f"job {job_id} is {job.state.value}; only {allowed} jobs can be retried"
                )
        if as_json:
            echo_json({"requeued": 1, "job_id": job_id})
        else:
            say(f"job {job_id} re-queued")

    @jobs_app.command("cancel")
    def cancel(ctx: typer.Context, job_id: JobIdArg, as_json: JsonOpt = False) -> None:
        """Cancel a waiting, running, failed or skipped job."""
        with opened_store(ctx) as store:
            job = store.get_job(job_id)
            if job is None:
                raise OperationalError(f"job {job_id} does not exist")
            if not store.cancel(job_id):
                allowed = describe_states(COMMAND_STATES[Command.CANCEL])
                raise OperationalError(
                    f"job {job_id} is {job.state.value}; only {allowed} jobs can be cancelled"
                )
        if as_json:
            echo_json({"job_id": job_id, "previous_state": job.state.value,
                       "state": JobState.CANCELLED.value})
        else:
            say(f"job {job_id} cancelled")

    @app.command("reprocess")
    def reprocess(
        ctx: typer.Context,
        since: Annotated[str, typer.Option("--since", help="Finished at or after (date or 7d).")],
        until: Annotated[str | None, typer.Option("--until", help="Finished before.")] = None,
        state: Annotated[
            list[JobState] | None,
            typer.Option("--state", help="Only jobs in this state (repeatable; default: all"
                         " finished states)."),
        ] = None,
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help="Redo even where the job's output is still in place and unchanged "
                "(without it, such a job is marked done again without restoring).",
            ),
        ] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Re-queue finished work in a time window. A re-queued job whose output is still in
        place and unchanged is done again without restoring unless --force; in replace mode
        the redo restores from the backed-up original, never from lmd's output."""
        start = parse_when(since, "--since")
        end = parse_when(until, "--until") if until else None
        if end is not None and end <= start:
            raise typer.BadParameter("--until must be later than --since")
        states = state or sorted(COMMAND_STATES[Command.REPROCESS])
        bad = [s.value for s in states if not command_allows(Command.REPROCESS, s)]
        if bad:
            allowed = describe_states(COMMAND_STATES[Command.REPROCESS])
            raise typer.BadParameter(f"only {allowed} jobs can be reprocessed, not {bad}")
        with opened_store(ctx) as store:
            n = store.reprocess(start, end, states=states, force=force, dry_run=dry_run)
        if as_json:
            echo_json({
                "dry_run": dry_run, "requeued": n, "since": start.isoformat(),
                "until": end.isoformat() if end else None,
                "states": [JobState(s).value for s in states], "force": force,
            })
            return
        verb = "would re-queue" if dry_run else "re-queued"
        say(f"{verb} {n} job(s)")

    @app.command("pause")
    def pause(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Tell every worker to stop claiming new jobs until `lmd resume`."""
        with opened_store(ctx) as store:
            store.set_paused(True)
        if as_json:
            echo_json({"paused": True})
        else:
            say("paused: workers finish the job in hand, then claim nothing new")

    @app.command("resume")
    def resume(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Let workers claim jobs again."""
        with opened_store(ctx) as store:
            store.set_paused(False)
        if as_json:
            echo_json({"paused": False})
        else:
            say("resumed: workers claim jobs again")

    app.add_typer(jobs_app, name="jobs")
