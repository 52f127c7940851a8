"""What a person sees while `lmd work` (and `lmd demo`) run jobs.

On a terminal: two progress bars on stdout, the batch ("job 3 of 12", with the time left for
the batch) and the job in hand (its asset, stage, fraction and time left), and one line per
finished job printed above them. In a pipe or a file: one plain line per finished job as it
finishes, flushed at once, and nothing else (no bars, no cursor movement). With `quiet` (for
`--json`) no lines at all; the results are in `results` for the caller to print.

The worker drives it as its `watcher` (`daemon.worker.loop.JobWatcher`): `started` and
`finished` on the worker's thread, `progress` from the job's heartbeat thread about once a
second while the restorer reports progress.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from daemon.cli.context import console
from daemon.cli.render import say
from daemon.cli.restore import flow_warning

if TYPE_CHECKING:
    from daemon.store import Job, JobStore


def finished_line(index: int, total: int, result: dict[str, Any], low_flow: float) -> str:
    """`job 3 of 12: succeeded 2026/IMG_1203 in 4.2 s -> /path/IMG_E1203.HEIC` (plain text),
    with a warning when the flow confidence is under `low_flow`."""
    head = f"job {index} of {total}: {result['outcome']} {result['asset']}"
    if result["outcome"] == "succeeded":
        line = head + (f" in {result['seconds']:.1f} s" if result.get("seconds") else "")
        line += f" -> {result['output']}" if result.get("output") else " (held for review)"
        warning = flow_warning(result.get("flow_confidence"), low_flow)
        return line + (f"; warning: {warning}" if warning else "")
    return head + (f": {result['error']}" if result.get("error") else "")


class WorkProgress:
    """The `JobWatcher` of `lmd work` and `lmd demo`; use as a context manager."""

    def __init__(self, store: JobStore, total: int, *, low_flow: float, quiet: bool = False,
                 out: Console | None = None) -> None:
        self._store = store
        self._low_flow = low_flow
        self.total = total
        self.results: list[dict[str, Any]] = []
        self._out = out or console
        self._quiet = quiet
        self._bars: Progress | None = None
        self._batch: TaskID | None = None
        self._job: TaskID | None = None

    def __enter__(self) -> WorkProgress:
        if self._out.is_terminal and not self._quiet and self.total > 0:
            self._bars = Progress(
                TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                TimeRemainingColumn(), console=self._out, transient=True,
            )
            self._bars.start()
            self._batch = self._bars.add_task(self._batch_text(1), total=self.total)
            self._job = self._bars.add_task("", total=1.0)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bars is not None:
            self._bars.stop()

    def _batch_text(self, index: int) -> str:
        return f"job {index} of {max(self.total, index)}"

    # ---- JobWatcher ------------------------------------------------------------------
    def started(self, job: Job) -> None:
        if self._bars is not None:
            index = len(self.results) + 1
            self._bars.update(self._batch, description=self._batch_text(index))  # type: ignore[arg-type]
            self._bars.reset(self._job, total=1.0,  # type: ignore[arg-type]
                             description=f"{escape(job.asset_key)}: starting")
            self._bars.refresh()  # shown even when the job is over before the next refresh

    def progress(self, job: Job, fraction: float, stage: str) -> None:
        if self._bars is not None:
            done = len(self.results)
            self._bars.update(self._job, completed=fraction,  # type: ignore[arg-type]
                              description=f"{escape(job.asset_key)}: {escape(stage)}")
            self._bars.update(self._batch, completed=done + fraction)  # type: ignore[arg-type]

    def finished(self, job: Job, outcome: str) -> None:
        row = self._store.get_job(job.id)
        provenance = (row.provenance if row is not None else None) or {}
        result = {
            "job_id": job.id,
            "asset": job.asset_key,
            "outcome": outcome,
            "state": row.state.value if row is not None else None,
            "seconds": provenance.get("seconds"),
            "output": row.output_path if row is not None else None,
            "flow_confidence": provenance.get("flow_confidence"),
            "error": row.last_error if row is not None and outcome != "succeeded" else None,
        }
        self.results.append(result)
        line = finished_line(len(self.results), max(self.total, len(self.results)), result,
                             self._low_flow)
        if self._bars is not None:
            self._bars.update(self._batch, completed=len(self.results))  # type: ignore[arg-type]
            self._bars.console.print(line, markup=False, highlight=False, soft_wrap=True)
        elif not self._quiet:
            say(line)
