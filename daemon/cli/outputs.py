"""`lmd revert ASSET|--all`: put back the stills that replace mode swapped out.

Works from the records replace mode keeps beside each backup in the state directory
(`<backup_dir>/<relative path>.<digest8>.lmd.json`), the one source of truth about backups, so
a person can undo lmd even when the database is gone. With the job store at hand it also works
by content and job, not by the path a still had when lmd replaced it: a replaced still that
moved since (a renamed folder) is found by its content in the index of lmd's outputs (or by the
job named in its XMP provenance), its record is made to follow it, and the original goes back
where the still is now. Reverting removes the backup and its record, and the job no longer
claims an output that is gone. A file someone edited after lmd wrote it is left alone unless
`--force`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from daemon.cli.context import OperationalError, get_settings
from daemon.cli.render import echo_json, literal, say

if TYPE_CHECKING:
    from daemon.output import ReplaceRecord
    from daemon.store import JobStore


def _resolve_asset(asset: Path, library: Path | None) -> Path:
    """ASSET as given (relative to the working directory) or relative to the library; where no
    file has that name, the name as lmd shows it read back (`caf\\xe9.HEIC`, copied from a
    listing, names the file whose name holds the byte 0xe9: `daemon.files.names`)."""
    from daemon.files.names import unescape

    for name in dict.fromkeys((asset, Path(unescape(str(asset))))):
        if name.exists():
            return name.absolute()
        if library is not None and not name.is_absolute() and (library / name).exists():
            return library / name
    return asset.absolute()


@contextmanager
def _index(settings: Any) -> Iterator[JobStore | None]:
    """The job store (its index of outputs), or None when there is none to ask: revert then
    works from the records alone."""
    from sqlalchemy.engine import make_url

    from daemon.store import StoreError, open_store
    from daemon.store.db import sqlite_path

    path = sqlite_path(make_url(settings.database_url))
    if path is not None and not path.exists():
        yield None
        return
    try:
        store = open_store(settings.database_url)
    except StoreError as exc:
        say(f"[yellow]the job store cannot be opened[/] ({literal(exc)}); "
            "reverting from the backup records alone", err=True, markup=True)
        yield None
        return
    try:
        yield store
    finally:
        store.close()


def _records_of(target: Path, store: JobStore | None) -> list[ReplaceRecord]:
    """The record of the replaced still now at `target`, found by its content in the index of
    outputs, else by the job its XMP provenance names; it is made to follow `target`."""
    from core import hashing
    from daemon.output import OutputError, load_record, read_metadata, read_provenance
    from daemon.worker.records import follow

    if store is None or not target.is_file():
        return []
    rows: list[Any] = []
    found = store.find_outputs([hashing.digest_file(target)])
    rows.extend(found.values())
    if not rows:
        try:
            provenance = read_provenance(read_metadata(target).xmp) or {}
            job_id = int(provenance.get("job_id", ""))
        except (OutputError, ValueError):
            job_id = None
        if job_id is not None:
            rows.extend(reversed(store.outputs_of_job(job_id)))
    for row in rows:
        if not row.record:
            continue
        try:
            record = load_record(Path(row.record))
        except OutputError:
            continue
        return [record if record.target == target else follow(record, target)]
    return []


def _reconciled(record: ReplaceRecord, store: JobStore | None) -> ReplaceRecord:
    """`record`, naming the output now at its target when the index knows that content as
    lmd's (a record can lag behind: a worker that lost its lease saved it after its
    successor), so the revert is not refused as if a person had edited the still."""
    from core import hashing
    from daemon.files.signature import written_signature
    from daemon.worker.records import note_output

    record = _located(record, store)
    if store is None or not record.target.is_file() or record.target.is_symlink():
        return record
    try:
        current = written_signature(record.target)
    except OSError:
        return record
    if record.output is not None and hashing.same_content(
        record.output.content_hash, current.content_hash, record.target
    ):
        return record
    if current.content_hash == record.original.content_hash:
        return record
    if not store.find_outputs([current.content_hash]):
        return record
    return note_output(record, current)


def _latest_first(
    records: list[ReplaceRecord], store: JobStore | None
) -> list[tuple[ReplaceRecord, Path]]:
    """Records with where their still is now (`_where`), grouped by that still, the one to put
    back first: the record whose output the still holds now, else the one over which lmd last
    wrote (the index's order), else the newest by creation (seconds) and by when the record was
    last written. Grouped by where the still is now, not by the path each record names: of two
    records of one still that moved, one may not have followed it yet (its follower was killed),
    and it must not be put back after the newer one as if it stood for another still."""
    from core import hashing

    def current(target: Path) -> str | None:
        try:
            return hashing.digest_file(target) if target.is_file() else None
        except OSError:
            return None

    placed = [(record, _where(record, store)) for record in records]
    now = {where: current(where) for where in {where for _, where in placed}}

    def rank(record: ReplaceRecord, where: Path) -> tuple[int, int, str, int]:
        holds = record.output is not None and record.output.content_hash == now[where]
        rows = store.outputs_with_record(str(record.record_path)) if store is not None else []
        try:
            written = record.record_path.stat().st_mtime_ns
        except OSError:
            written = 0
        last = max((row.id for row in rows), default=0)
        return (0 if holds else 1, -last, _descending(record.created), -written)

    return sorted(placed, key=lambda pair: (str(pair[1]), *rank(*pair)))


def _descending(text: str) -> str:
    """A key that sorts ISO timestamps newest first."""
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def _holds(path: Path, digest: str) -> bool:
    from core import hashing

    try:
        return path.is_file() and not path.is_symlink() and hashing.matches(path, digest)
    except (OSError, hashing.UnknownDigest):
        return False


def _newer_original(record: ReplaceRecord, where: Path, store: JobStore | None) -> bool:
    """Whether the still at `where` is a newer original of the person's than `record` keeps:
    not lmd's output, nor the record's original, but the target input of a job lmd ran since
    (a version exported over lmd's output after the mode changed, so no newer record keeps
    it). No job takes lmd's output, or a person's edit of it, as input, so such a file is the
    person's own; even `--force` (which reverts edits of lmd's output) must not overwrite it."""
    from core import hashing

    if store is None or not where.is_file() or where.is_symlink():
        return False
    try:
        now = hashing.digest_file(where)
    except OSError:
        return False
    if hashing.same_content(record.original.content_hash, now, where) or store.find_outputs([now]):
        return False
    if record.output is not None and hashing.same_content(
        record.output.content_hash, now, where
    ):
        return False
    return bool(store.targets_holding(now))


def _where(record: ReplaceRecord, store: JobStore | None) -> Path:
    """Where the still `record` stands for is now: the path it names, or, when nothing is
    there any more, where the index last saw an output written over it, or where the jobs that
    restore its original see the still now (a still that holds its original again, after a
    write was undone, is known to no index row). Looks only; `_located` rewrites the record."""
    import os

    if store is None or os.path.lexists(record.target):
        return record.target
    rows = reversed(store.outputs_with_record(str(record.record_path)))
    places = [row.path for row in rows] + store.targets_holding(record.original.content_hash)
    for place in places:
        if place != str(record.target) and Path(place).is_file():
            return Path(place)
    return record.target


def _located(
    record: ReplaceRecord, store: JobStore | None, where: Path | None = None
) -> ReplaceRecord:
    """`record`, made to follow its still to `_where` it is now (`where`, when the caller
    already asked)."""
    from daemon.worker.records import follow

    where = _where(record, store) if where is None else where
    return record if where == record.target else follow(record, where)


def _gone(record: ReplaceRecord) -> bool:
    import os

    return not os.path.lexists(record.target) and not record.target.parent.is_dir()


def _forget_outputs(record: ReplaceRecord, store: JobStore | None) -> None:
    """The index keeps the reverted outputs as lmd's, and their jobs stop claiming them; a
    published restoration's review becomes "rejected" by revert (the page and `lmd review
    list` then say what is in place)."""
    import secrets

    from daemon.store.review import ReviewState

    if store is None:
        return
    for row in store.outputs_with_record(str(record.record_path)):
        token = secrets.token_hex(8)
        if store.claim_review(row.job_id, [ReviewState.ACCEPTED], token) is not None:
            store.finish_review(row.job_id, token, ReviewState.REJECTED, decided_by="revert",
                                note="the original was put back with lmd revert")
        store.output_reverted(row.id)  # its event ("reverted: ...") closes the history


def register(app: typer.Typer) -> None:
    """Add `revert` to the root app."""

    @app.command("revert")
    def revert_cmd(
        ctx: typer.Context,
        asset: Annotated[
            Path | None,
            typer.Argument(
                help="The replaced still (path, or relative to the library), where it is now: "
                "a still moved since lmd replaced it is found by its content."
            ),
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
        from daemon.worker.records import follow_moved_records

        if (asset is None) == (not all_):
            raise typer.BadParameter("give either ASSET or --all")
        settings = get_settings(ctx)
        backup_dir = settings.output.backup_dir
        if backup_dir is None:
            raise OperationalError("output.backup_dir is not set")
        target = None if all_ else _resolve_asset(asset, settings.library)  # type: ignore[arg-type]
        with _index(settings) as store:
            if store is not None and not dry_run:
                follow_moved_records(store)  # stills a scan found under new paths
            damaged: list[OutputError] = []
            records = list(iter_records(Path(backup_dir), target, unreadable=damaged))
            if target is not None and not records:
                records = _records_of(target, store)
            for problem in damaged:
                say(f"[yellow]skipped[/] — {literal(str(problem))}", err=True, markup=True)
            if damaged and not records:
                raise OperationalError(f"{len(damaged)} replace record(s) could not be read")
            if not records:
                what = "any asset" if all_ else str(target)
                raise OperationalError(f"no replace backup found for {what} in {backup_dir}")

            results: list[dict[str, str]] = []
            failures = 0
            # of two replacements of one still, the later one's original (the person's newer
            # version of it) is the one to put back; an older original of that still stays in
            # its backup (`kept`) instead of overwriting the newer one
            seen: set[Path] = set()
            for record, where in _latest_first(records, store):
                entry = {"target": str(where), "backup": str(record.backup)}
                newer = where in seen
                seen.add(where)
                if newer and not _holds(where, record.original.content_hash):
                    entry["result"] = "kept"
                    entry["note"] = "a newer original of this still was put back"
                elif _newer_original(record, where, store):
                    entry["result"] = "kept"
                    entry["note"] = ("the still holds a newer original (restored by lmd since); "
                                     f"this older one stays in {record.backup}")
                elif not dry_run and _gone(record := _located(record, store, where)):
                    # deleted (or moved where neither the index nor a job can see it), with
                    # its folder: nowhere to put it back; the backup keeps the original
                    entry["target"], entry["result"] = str(record.target), "gone"
                    entry["note"] = f"its folder is gone; the original stays in {record.backup}"
                elif dry_run:
                    entry["result"] = "would revert"
                else:
                    try:
                        outcome = revert(_reconciled(record, store), force=force)
                        # "unchanged": the original was already in place (a replace that never
                        # got to its rename); nothing was written, only the backup was dropped.
                        entry["result"] = "reverted" if outcome.changed else "unchanged"
                        _forget_outputs(record, store)
                    except RevertConflict as exc:
                        entry["result"], entry["error"] = "refused", str(exc)
                        failures += 1
                    except OutputError as exc:
                        entry["result"], entry["error"] = "failed", str(exc)
                        failures += 1
                results.append(entry)

        if as_json:
            echo_json(results)
        else:
            for entry in results:  # names escaped, never read as markup (`say`, `literal`)
                line = f"{entry['result']}: {entry['target']}"
                if "error" in entry:
                    say(f"[yellow]{literal(line)}[/] — {literal(entry['error'])}", err=True,
                        markup=True)
                else:
                    say(line + (f" ({entry['note']})" if "note" in entry else ""))
        failures += len(damaged)
        if failures:
            total = len(results) + len(damaged)
            raise OperationalError(f"{failures} of {total} could not be reverted")
