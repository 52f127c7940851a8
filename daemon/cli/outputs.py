"""`lmd revert ASSET|--all`: put back the stills that replace mode swapped out.

Works from the records replace mode keeps beside each backup in the state directory
(`<backup_dir>/<relative path>.<digest8>.lmd.json`), the one source of truth about backups, so
it needs neither the job queue nor the model: a person can undo lmd even when the database is
gone. Reverting removes the backup and its record. A file someone edited after lmd wrote it
is left alone unless `--force`. Where the database exists, each revert is also written into the
job's history (`lmd jobs show`); none is created for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from daemon.cli.context import OperationalError, console, console_err, get_settings


def _resolve_asset(asset: Path, library: Path | None) -> Path:
    """ASSET as given (relative to the working directory) or relative to the library."""
    if asset.exists() or asset.is_absolute() or library is None:
        return asset.absolute()
    candidate = library / asset
    return candidate if candidate.exists() else asset.absolute()


def _note_in_history(database_url: str, records: list[Any]) -> None:
    """Record each revert on the job that wrote the output (`output_reverted`), best effort:
    revert needs no database, and a read-only open creates none."""
    from daemon.store import JobStore, StoreError
    from daemon.store.db import open_engine
    from daemon.store.errors import NoDatabase

    try:
        store = JobStore(open_engine(database_url, read_only=True))
    except NoDatabase:
        return
    except StoreError as exc:
        console_err.print(f"[yellow]not written to the job history[/] — {escape(str(exc))}")
        return
    with store:
        for record in records:
            found = store.output_with_record(str(record.record_path))
            found = found or next(iter(store.outputs_at(str(record.target))), None)
            if found is not None:
                store.output_reverted(found.id)


def register(app: typer.Typer) -> None:
    """Add `revert` to the root app."""

    @app.command("revert")
    def revert_cmd(
        ctx: typer.Context,
        asset: Annotated[
            Path | None,
            typer.Argument(help="The replaced still (path, or relative to the library)."),
        ] = None,
        all_: Annotated[
            bool, typer.Option("--all", help="Revert every still that replace mode swapped.")
        ] = False,
        force: Annotated[
            bool,
            typer.Option(
                "--force", help="Revert even files that were edited after lmd wrote them."
            ),
        ] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Only list what would be put back.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    ) -> None:
        """Put back the original low-quality stills that replace mode replaced."""
        from daemon.output import OutputError, RevertConflict, iter_records, revert

        if (asset is None) == (not all_):
            raise typer.BadParameter("give either ASSET or --all")
        settings = get_settings(ctx)
        backup_dir = settings.output.backup_dir
        if backup_dir is None:
            raise OperationalError("output.backup_dir is not set")
        target = None if all_ else _resolve_asset(asset, settings.library)  # type: ignore[arg-type]
        damaged: list[OutputError] = []
        records = list(iter_records(Path(backup_dir), target, unreadable=damaged))
        for problem in damaged:
            console_err.print(f"[yellow]skipped[/] — {problem}")
        if damaged and not records:
            raise OperationalError(f"{len(damaged)} replace record(s) could not be read")
        if not records:
            what = "any asset" if all_ else str(target)
            raise OperationalError(f"no replace backup found for {what} in {backup_dir}")

        results: list[dict[str, str]] = []
        reverted: list[Any] = []
        failures = 0
        for record in records:
            entry = {"target": str(record.target), "backup": str(record.backup)}
            if dry_run:
                entry["result"] = "would revert"
            else:
                try:
                    outcome = revert(record, force=force)
                    # "unchanged": the original was already in place (a replace that never
                    # got to its rename); nothing was written, only the backup was dropped.
                    entry["result"] = "reverted" if outcome.changed else "unchanged"
                    if outcome.changed:
                        reverted.append(record)
                except RevertConflict as exc:
                    entry["result"], entry["error"] = "refused", str(exc)
                    failures += 1
                except OutputError as exc:
                    entry["result"], entry["error"] = "failed", str(exc)
                    failures += 1
            results.append(entry)
        if reverted:
            _note_in_history(settings.database_url, reverted)

        if as_json:
            console.print_json(json.dumps(results))
        else:
            for entry in results:
                line = f"{entry['result']}: {entry['target']}"
                if "error" in entry:
                    console_err.print(f"[yellow]{line}[/] — {entry['error']}")
                else:
                    console.print(line)
        failures += len(damaged)
        if failures:
            total = len(results) + len(damaged)
            raise OperationalError(f"{failures} of {total} could not be reverted")
