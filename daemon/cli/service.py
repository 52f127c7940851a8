"""`lmd run`, `lmd work`, `lmd demo` and `lmd doctor`: the daemon and its companions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from daemon.cli.context import OperationalError, console, get_settings, state


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
        max_jobs: Annotated[int | None, typer.Option(help="Stop after this many jobs.")] = None,
    ) -> None:
        """Run queued jobs now, ignoring the worker windows, until the queue is empty."""
        from daemon.cli.jobs import opened_store
        from daemon.worker import Worker

        with opened_store(ctx) as store:
            done = Worker(get_settings(ctx), store).run_until_empty(max_jobs)
        console.print(f"ran {done} job(s)")

    @app.command("demo")
    def demo(
        directory: Annotated[Path, typer.Option("--dir", help="Where to build it.")] = Path(
            "lmd-demo"
        ),
        count: Annotated[int, typer.Option(help="How many Live Photos.")] = 3,
    ) -> None:
        """Build a sample library of reselected Live Photos and restore it with `guided`."""
        from daemon.cli.jobs import render_status
        from daemon.demo import run_demo
        from daemon.logging import configure_logging

        configure_logging("warning", "console")
        with console.status("building the sample library and restoring it (CPU, guided)..."):
            result = run_demo(directory, count=count)
        render_status(result.status)
        console.print(f"\nlibrary:     {result.library}")
        console.print(f"state:       {result.state_dir}")
        for path in result.outputs:
            console.print(f"restored:    {path}")
        for path in result.comparisons:
            console.print(f"comparison:  {path}  (frame | restored | reference)")
        if len(result.outputs) != count:
            raise OperationalError(f"only {len(result.outputs)} of {count} photos were restored")

    @app.command("doctor")
    def doctor(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
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
            console.print_json(json.dumps([f.as_dict() for f in findings]))
        else:
            table = Table("check", "status", "detail", "fix")
            colours = {"ok": "green", "warn": "yellow", "fail": "red"}
            for f in findings:
                table.add_row(f.check, f"[{colours[f.status]}]{f.status}[/]", escape(f.detail),
                              escape(f.fix))
            console.print(table)
        if any(f.status == "fail" for f in findings):
            raise typer.Exit(1)
