"""`lmd scan PATH`: find Live Photos / Motion Photos; `--dry-run` only prints them.

With `--dry-run` the command runs discovery (`daemon.library.discover`) and prints every Live
Photo found and every unreadable media file with its reason (a table, or JSON with `--json`).
Without it, the scan is handed to `daemon.scanner.run_scan`, which enqueues into the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from daemon.cli.context import OperationalError, console, console_err, get_settings


def _row(item: Any) -> dict[str, Any]:
    data = item.to_dict()
    data.pop("signatures", None)
    return data


def _dry_run(path: Path, as_json: bool, ignore: list[str] | None) -> None:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    from daemon.library.discover import DEFAULT_IGNORE, discover

    if not path.is_dir():
        raise OperationalError(f"{path} is not a directory")
    found: list[dict[str, Any]] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("scanning {task.completed} files"),
        BarColumn(),
        console=console_err,
        transient=True,
        disable=not console_err.is_terminal,
    ) as bar:
        task = bar.add_task("scan", total=None)
        patterns = tuple(DEFAULT_IGNORE) + tuple(ignore or ())
        for item in discover(
            path, ignore=patterns, progress=lambda n: bar.update(task, completed=n)
        ):
            found.append(_row(item))
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    from rich.table import Table

    table = Table("kind", "key", "t0", "t1", "reselected", "target", "reason")
    for row in found:

        def fmt(v: Any) -> str:
            return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

        table.add_row(
            row["kind"],
            row["key"],
            fmt(row.get("t0")),
            fmt(row.get("t1")),
            fmt(row.get("reselected")),
            fmt(row.get("target")),
            fmt(row.get("reason")),
        )
    console.print(table)
    n_live = sum(1 for r in found if r["kind"] != "unreadable")
    n_sel = sum(1 for r in found if r.get("reselected"))
    console.print(
        f"{n_live} live photos, {n_sel} reselected, {len(found) - n_live} unreadable files"
    )


def register(app: typer.Typer) -> None:
    """Add `scan` to the root app."""

    @app.command("scan")
    def scan(
        ctx: typer.Context,
        path: Annotated[
            Path | None, typer.Argument(help="Folder to scan (default: library).")
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Only discover and print; enqueue nothing.")
        ] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON.")
        ] = False,
    ) -> None:
        """Find Live Photos whose key photo was reselected (and enqueue them)."""
        if dry_run:
            ignore = None
            if path is None:
                settings = get_settings(ctx)
                path, ignore = settings.library, list(settings.scan.ignore)
            if path is None:
                raise OperationalError("no PATH given and no `library` configured")
            _dry_run(path, as_json, ignore)
            return
        settings = get_settings(ctx)
        root = path or settings.library
        if root is None:
            raise OperationalError("no PATH given and no `library` configured")
        from daemon.scanner import ScanError, run_scan
        from daemon.store.db import StoreError

        with console.status("scanning...") as spinner:

            def progress(n: int) -> None:
                spinner.update(f"scanning... {n} files")

            try:
                summary = run_scan(settings, Path(root), progress, trigger="cli")
            except (StoreError, ScanError) as exc:
                raise OperationalError(str(exc)) from None
        if as_json:
            console.print_json(json.dumps(summary.as_dict()))
            return
        console.print(
            f"{summary.files_seen} files, {summary.assets_found} Live Photos, "
            f"{summary.restorable} restorable: {summary.enqueued} enqueued, "
            f"{summary.moved} moved, {summary.unreadable} unreadable"
        )
        for key, reason in summary.problems[:20]:
            console.print(f"  [yellow]{key}[/]: {reason}")
