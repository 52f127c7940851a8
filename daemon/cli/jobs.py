"""`lmd status`, `lmd jobs ...`, `lmd reprocess`, `lmd pause` / `lmd resume`: the queue seen
and steered by a person.

Everything here reads or changes the store through `JobStore`; no SQL, no state rules: which
command may act on which job state is `COMMAND_STATES` in `daemon.store.states`. What "status"
contains is `daemon.status.status_payload`; `render_status` is its human form, used by
`lmd status` and `lmd demo`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from daemon.cli.context import STORE_INTEGER_MAX, JobIdArg, OperationalError, console, get_settings
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
def opened_store(ctx: typer.Context) -> Iterator[JobStore]:
    """Open (and migrate) the configured store; database problems become exit code 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from daemon.store import StoreError, open_store

    settings = get_settings(ctx)
    try:
        store = open_store(settings.database_url)
    except StoreError as exc:
        raise OperationalError(str(exc)) from None
    try:
        yield store
    except SQLAlchemyError as exc:
        raise OperationalError(f"database error: {exc}") from None
    finally:
        store.close()


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _short(text: Any, width: int = 80) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_status(payload: dict[str, Any]) -> None:
    """The human form of `status_payload`: rich tables on stdout."""
    counts = payload["jobs"]
    table = Table(title="jobs" + ("  (paused)" if payload.get("paused") else ""))
    for state in counts:
        table.add_column(state, justify="right")
    table.add_row(*(str(n) for n in counts.values()))
    console.print(table)

    workers = payload.get("worker") or []
    if workers:
        wt = Table(
            "worker", "state", "job", "progress", "stage", "window", "heartbeat", title="workers"
        )
        for w in workers:
            progress = f"{w['progress'] * 100:.0f}%" if w.get("progress") is not None else ""
            state = f"{w['state']} (gone?)" if w.get("stale") else str(w["state"])
            wt.add_row(
                str(w["id"]), state, str(w.get("job_id") or ""), progress,
                w.get("stage") or "", w.get("window") or "", str(w.get("heartbeat_at") or ""),
            )
        console.print(wt)
    else:
        console.print("workers: none registered")

    restorer = payload.get("restorer")
    if restorer:
        console.print(
            f"restorer: {restorer['name']} on {restorer['device']}"
            + (f" ({restorer['checkpoint']})" if restorer.get("checkpoint") else "")
        )
    if payload.get("watcher_mode"):
        console.print(f"watcher: {payload['watcher_mode']}")
    scan = payload.get("last_scan")
    if scan:
        when = scan.get("finished_at") or f"{scan['started_at']} (running)"
        console.print(
            f"last scan: {when} of {scan['root']} ({scan['trigger']}): {scan['files_seen']} files,"
            f" {scan['assets_found']} Live Photos, {scan['enqueued']} enqueued,"
            f" {scan['unreadable']} unreadable"
        )
    else:
        console.print("last scan: never")

    failures = payload.get("failures") or []
    if failures:
        ft = Table("job", "path", "attempts", "error", title="recent failures")
        for f in failures:
            ft.add_row(str(f["job_id"]), str(f["path"]), str(f["attempts"]), _short(f["error"]))
        console.print(ft)
    problems = payload.get("library_problems") or []
    if problems:
        pt = Table("asset", "reason", title="library problems")
        for p in problems:
            pt.add_row(str(p["key"]), _short(p["reason"]))
        console.print(pt)


def _job_table(jobs: list[Job]) -> Table:
    table = Table("id", "state", "attempts", "path", "updated", "error")
    for job in jobs:
        table.add_row(
            str(job.id), job.state.value, f"{job.attempts}/{job.max_attempts}", str(job.path),
            job.updated_at.isoformat(timespec="seconds"), _short(job.last_error, 60),
        )
    return table


def register(app: typer.Typer) -> None:
    jobs_app = typer.Typer(help="List, inspect, retry and cancel jobs.", no_args_is_help=True)

    @app.command("status")
    def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Counts per state, workers, last scan, recent failures and library problems."""
        with opened_store(ctx) as store:
            payload = status_payload(store, get_settings(ctx))
        if as_json:
            _echo_json(payload)
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
        """List jobs, newest first."""
        with opened_store(ctx) as store:
            jobs = store.list_jobs(state, limit=limit)
        if as_json:
            _echo_json([j.to_dict() for j in jobs])
        else:
            console.print(_job_table(jobs))

    @jobs_app.command("show")
    def show(ctx: typer.Context, job_id: JobIdArg, as_json: JsonOpt = False) -> None:
        """One job with every field and its event history."""
        with opened_store(ctx) as store:
            job = store.get_job(job_id)
            if job is None:
                raise OperationalError(f"job {job_id} does not exist")
            events = store.events(job_id)
        if as_json:
            _echo_json({"job": job.to_dict(), "events": [e.to_dict() for e in events]})
            return
        table = Table("field", "value", title=f"job {job.id}")
        for key, value in job.to_dict().items():
            if value not in (None, {}, []):
                shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
                table.add_row(key, str(shown))
        console.print(table)
        et = Table("at", "from", "to", "worker", "reason", title="events")
        for e in events:
            et.add_row(
                e.at.isoformat(timespec="seconds"), e.from_state.value if e.from_state else "",
                e.to_state.value, e.worker or "", e.reason or "",
            )
        console.print(et)

    @jobs_app.command("retry")
    def retry(
        ctx: typer.Context,
        job_id: Annotated[
            int | None, typer.Argument(min=1, max=STORE_INTEGER_MAX, help="The job to retry.")
        ] = None,
        failed: Annotated[bool, typer.Option("--failed", help="Retry every failed job.")] = False,
    ) -> None:
        """Re-queue a failed, cancelled or skipped job with fresh attempts, or every failed one."""
        if (job_id is None) == (not failed):
            raise typer.BadParameter("give either a job ID or --failed")
        with opened_store(ctx) as store:
            if failed:
                console.print(f"re-queued {store.retry_failed()} failed job(s)")
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
        console.print(f"job {job_id} re-queued")

    @jobs_app.command("cancel")
    def cancel(ctx: typer.Context, job_id: JobIdArg) -> None:
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
        console.print(f"job {job_id} cancelled")

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
            bool, typer.Option("--force", help="Redo even where a matching output exists.")
        ] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count.")] = False,
    ) -> None:
        """Re-queue finished work in a time window."""
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
        verb = "would re-queue" if dry_run else "re-queued"
        console.print(f"{verb} {n} job(s)")

    @app.command("pause")
    def pause(ctx: typer.Context) -> None:
        """Tell every worker to stop claiming new jobs until `lmd resume`."""
        with opened_store(ctx) as store:
            store.set_paused(True)
        console.print("paused: workers stop claiming new jobs")

    @app.command("resume")
    def resume(ctx: typer.Context) -> None:
        """Let workers claim jobs again."""
        with opened_store(ctx) as store:
            store.set_paused(False)
        console.print("resumed")

    app.add_typer(jobs_app, name="jobs")
