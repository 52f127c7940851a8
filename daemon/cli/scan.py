"""`lmd scan PATH`: find Live Photos / Motion Photos; `--dry-run` only prints them.

With `--dry-run` the command runs discovery (`daemon.library.discover`) and prints every Live
Photo found and every unreadable media file with its reason. Without it, the scan is handed to
`daemon.scanner.run_scan`, which enqueues into the store. Both print the same JSON document with
`--json`: `{"dry_run": ..., "assets": [...], "summary": {...}}`, where each asset carries the
`action` the scan took (null in a dry run); docs/json-output.md has the fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from daemon.cli.context import OperationalError, console_err, get_settings
from daemon.cli.render import echo_json, print_table, say


def _row(item: Any, action: str | None = None) -> dict[str, Any]:
    data = item.to_dict()
    data.pop("signatures", None)
    data["action"] = action
    return data


def _check_path(path: Path) -> None:
    if not path.exists():
        raise OperationalError(f"{path} does not exist")
    if not path.is_dir():
        raise OperationalError(f"{path} is not a directory")


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _dry_run(path: Path, as_json: bool, ignore: list[str] | None) -> None:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    from daemon.library.discover import DEFAULT_IGNORE, discover

    _check_path(path)
    found: list[dict[str, Any]] = []
    seen = 0
    with Progress(
        SpinnerColumn(),
        TextColumn("scanning {task.completed} files"),
        BarColumn(),
        console=console_err,
        transient=True,
        disable=not console_err.is_terminal,
    ) as bar:
        task = bar.add_task("scan", total=None)

        def progress(n: int) -> None:
            nonlocal seen
            seen = n
            bar.update(task, completed=n)

        patterns = tuple(DEFAULT_IGNORE) + tuple(ignore or ())
        for item in discover(path, ignore=patterns, progress=progress):
            found.append(_row(item))
    n_live = sum(1 for r in found if r["kind"] != "unreadable")
    summary = {
        "root": str(path), "files_seen": seen, "assets_found": n_live,
        "reselected": sum(1 for r in found if r.get("reselected")),
        "unreadable": len(found) - n_live,
    }
    if as_json:
        echo_json({"dry_run": True, "assets": found, "summary": summary})
        return
    columns = ("kind", "key", "t0", "t1", "reselected", "target", "reason")
    print_table(columns, ([_fmt(row.get(c)) for c in columns] for row in found),
                empty=f"no Live Photos or media files found under {path}")
    say(f"{summary['assets_found']} live photos, {summary['reselected']} reselected,"
        f" {summary['unreadable']} unreadable files")


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
            bool, typer.Option("--json", help="Print JSON: {dry_run, assets, summary}.")
        ] = False,
    ) -> None:
        """Find Live Photos whose key photo was reselected (and enqueue them)."""
        if path is not None:
            _check_path(path)
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

        assets: list[dict[str, Any]] = []
        with console_err.status("scanning...") as spinner:

            def progress(n: int) -> None:
                spinner.update(f"scanning... {n} files")

            try:
                summary = run_scan(
                    settings, Path(root), progress, trigger="cli",
                    on_asset=(lambda item, action: assets.append(_row(item, action)))
                    if as_json else None,
                )
            except (StoreError, ScanError) as exc:
                raise OperationalError(str(exc)) from None
        if as_json:
            echo_json({"dry_run": False, "assets": assets, "summary": summary.as_dict()})
            return
        say(
            f"{summary.files_seen} files, {summary.assets_found} Live Photos, "
            f"{summary.restorable} restorable: {summary.enqueued} enqueued, "
            f"{summary.moved} moved, {summary.unreadable} unreadable"
            # lmd's replaced stills under a new path (a renamed folder): not new work
            + (f"; {summary.outputs_moved} restored stills moved" if summary.outputs_moved
               else "")
            + (f"; {summary.videos_enqueued} video jobs enqueued" if summary.videos_enqueued
               else "")
        )
        for key, reason in summary.problems[:20]:
            say(f"  {key}: {reason}")
