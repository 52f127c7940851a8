"""`lmd run`, `lmd work`, `lmd demo` and `lmd doctor`: the daemon and its companions."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from daemon.cli.context import OperationalError, get_settings, state
from daemon.cli.render import echo_json, print_table, say

if TYPE_CHECKING:
    from daemon.store import JobStore

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _video_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height)) if sep else None
    except ValueError:
        size = None
    if size is None or not all(32 <= n <= 1920 for n in size):
        raise typer.BadParameter(f"{text!r}: give WIDTHxHEIGHT, each 32..1920 (e.g. 480x360)",
                                 param_hint="--size")
    return size


def next_steps(directory: Path) -> list[tuple[str, str]]:
    """What to try after the demo, as (command, what it shows)."""
    where = shlex.quote(str(directory))
    return [
        (f"cd {where} && lmd status", "the demo's queue, workers and last scan (./lmd.toml)"),
        ("lmd jobs list", "every job; `lmd jobs show 1` for one job's history"),
        ("lmd review serve", "look at each restoration in the browser"),
    ]


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(ctx: typer.Context) -> None:
        """Run the daemon: migrate, scan, watch, and restore within the worker's windows."""
        from daemon.service import Service
        from daemon.store.db import StoreError

        settings = get_settings(ctx)
        try:
            service = Service(settings)
        except (ValueError, StoreError) as exc:
            raise OperationalError(str(exc)) from None
        raise typer.Exit(service.run())

    @app.command("work")
    def work(
        ctx: typer.Context,
        max_jobs: Annotated[
            int | None, typer.Option(min=1, help="Stop after this many jobs.")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Run queued jobs now, ignoring the worker windows, until the queue is empty.

        On a terminal: a bar for the batch ("job 3 of 12") and one for the job (stage,
        fraction, time left). Piped: one line per job as it finishes."""
        from daemon.cli.jobs import opened_store
        from daemon.cli.progress import WorkProgress
        from daemon.worker import Worker

        settings = get_settings(ctx)
        with opened_store(ctx) as store:
            waiting = sum(store.counts().get(s, 0) for s in ("pending", "deferred"))
            total = min(waiting, max_jobs) if max_jobs is not None else waiting
            low_flow = settings.review.min_flow_confidence
            with WorkProgress(store, total, low_flow=low_flow, quiet=as_json) as watcher:
                done = Worker(settings, store, watcher=watcher).run_until_empty(max_jobs)
        if as_json:
            echo_json({"ran": done, "jobs": watcher.results})
        else:
            say(f"ran {done} job(s)")

    @app.command("demo")
    def demo(
        directory: Annotated[Path, typer.Option("--dir", help="Where to build it.")] = Path(
            "lmd-demo"
        ),
        count: Annotated[int, typer.Option(min=1, max=50, help="How many Live Photos.")] = 3,
        size: Annotated[
            str, typer.Option("--size", help="Video size of the samples, WxH (the key photos are"
                              " 4× larger); smaller is faster.")
        ] = "480x360",
        as_json: JsonOpt = False,
    ) -> None:
        """Build a sample library of reselected Live Photos in DIR, restore it with `guided`,
        and leave DIR/lmd.toml so that lmd commands run in DIR look at the demo."""
        from daemon.cli.progress import WorkProgress
        from daemon.cli.status_view import render_status
        from daemon.demo import run_demo
        from daemon.logging import configure_logging
        from daemon.settings import ReviewSettings

        video_size = _video_size(size)
        configure_logging("warning", "console")
        report = (lambda line: None) if as_json else say

        def watch(store: JobStore, total: int) -> WorkProgress:
            low_flow = ReviewSettings().min_flow_confidence  # the demo's settings: defaults
            return WorkProgress(store, total, low_flow=low_flow, quiet=as_json)

        result = run_demo(directory, count=count, video_size=video_size, report=report,
                          watch=watch)
        steps = next_steps(directory)
        if as_json:
            echo_json({
                "config": str(result.config), "library": str(result.library),
                "state_dir": str(result.state_dir), "outputs": [str(p) for p in result.outputs],
                "comparisons": [str(p) for p in result.comparisons], "status": result.status,
                "next": [command for command, _ in steps],
            })
        else:
            say("")
            render_status(result.status)
            say("")
            say(f"library:     {result.library}")
            say(f"state:       {result.state_dir}")
            say(f"config:      {result.config}")
            for path in result.outputs:
                say(f"restored:    {path}")
            if result.comparisons:
                say(f"comparisons: {result.comparisons[0].parent}/ (frame | restored |"
                    " reference, whole and at 1:1)")
            say("")
            say("next:")
            width = max(len(command) for command, _ in steps)
            for command, what in steps:
                say(f"  {command:<{width}}   # {what}")
        if len(result.outputs) != count:
            raise OperationalError(f"only {len(result.outputs)} of {count} photos were restored")

    @app.command("doctor")
    def doctor(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Check config, database, library, watcher, inotify, exiftool, GPU and checkpoint."""
        from daemon.doctor import config_finding, run_checks

        config_path = state(ctx).config_path
        try:
            settings = get_settings(ctx)
        except OperationalError as exc:
            findings = [config_finding(config_path, str(exc))]
        else:
            findings = [config_finding(config_path, None), *run_checks(settings)]
        if as_json:
            echo_json([f.as_dict() for f in findings])
        else:
            colours = {"ok": "green", "warn": "yellow", "fail": "red"}
            rows: list[tuple[Any, ...]] = [
                (f.check, Text(f.status, style=colours[f.status]), f.detail, f.fix)
                for f in findings
            ]
            print_table(("check", "status", "detail", "fix"), rows)
        if any(f.status == "fail" for f in findings):
            raise typer.Exit(1)
