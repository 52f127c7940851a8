"""What must hold after every step of a library's life (issue 10 finding 6), checked from the
files, the backup records and the job store, against what the person did (`People`).

Shared by the lifecycle test (tests/integrity/test_lifecycle.py) and the soak (bench/soak.py):

1. every original can be recovered byte-identical: each file the person put in the library is
   either there, or lmd's output stands in its place and a record keeps that exact original in
   an intact backup;
2. every recorded output matches its file: the newest output lmd recorded at a path is the
   file there (unless the person changed it since), and every succeeded job's recorded output
   is in the index;
3. no job ever takes lmd's own output as input: no job's input digest is an output lmd wrote,
   or a person's edit of one;
4. no job is lost or done twice: a job succeeds at most once per time it was queued, an output
   row is only ever written with a success, and (`drained=True`) nothing is left waiting;
5. nothing half-written is left (`quiet=True`: no worker is running): no temporary file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core import hashing
from daemon.output import TEMP_PREFIX, OutputError, iter_records
from daemon.store import JobState, JobStore


def digest(path: Path) -> str:
    return hashing.digest_file(path)


@dataclass
class People:
    """What the person did to the library: `files` maps every file they put there (absolute
    path) to its digest; `derived` holds digests of their edits of lmd's outputs (never an
    input); `changed_outputs` are paths of lmd's outputs they changed or deleted since."""

    root: Path
    files: dict[str, str] = field(default_factory=dict)
    derived: set[str] = field(default_factory=set)
    changed_outputs: set[str] = field(default_factory=set)

    def scan_in(self) -> None:
        """Take every file now in the library as the person's (after building it)."""
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(TEMP_PREFIX):
                self.files[str(path)] = digest(path)

    def put(self, path: Path) -> None:
        """The person wrote `path` (a new file, or a new version of one)."""
        self.files[str(path)] = digest(path)
        self.changed_outputs.add(str(path))

    def edit_output(self, path: Path) -> None:
        """The person edited lmd's output at `path` (its original stays what it was)."""
        self.derived.add(digest(path))
        self.changed_outputs.add(str(path))

    def delete(self, path: Path) -> None:
        self.files.pop(str(path), None)
        self.changed_outputs.add(str(path))

    def move(self, old: Path, new: Path) -> None:
        """A file or folder moved (`mv old new`, done already)."""
        prefix, to = str(old), str(new)
        for table in (self.files,):
            for key in [k for k in table if k == prefix or k.startswith(prefix + os.sep)]:
                table[to + key[len(prefix):]] = table.pop(key)
        moved = {k for k in self.changed_outputs if k == prefix or k.startswith(prefix + os.sep)}
        self.changed_outputs |= {to + k[len(prefix):] for k in moved}


def _records(backup_dir: Path | None) -> Iterator[object]:
    if backup_dir is None:
        return iter(())
    return iter_records(backup_dir, unreadable=[])


def check(
    store: JobStore, backup_dir: Path | None, people: People, *, drained: bool = False,
    quiet: bool = True, state_dir: Path | None = None,
) -> list[str]:
    """Every invariant broken, one line each (empty when all hold)."""
    problems: list[str] = []
    jobs = store.list_jobs(limit=1_000_000)
    rows = [row for job in jobs for row in store.outputs_of_job(job.id)]
    index_hashes = {row.content_hash for row in rows}
    records = list(_records(backup_dir))
    problems += _originals(people, records, index_hashes)
    problems += _outputs_match(rows, jobs, people)
    problems += _inputs_are_not_outputs(jobs, index_hashes, people)
    problems += _once(store, jobs, drained)
    if quiet:
        for place in (people.root, state_dir):
            if place is not None:
                problems += [f"temporary file left: {p}" for p in Path(place).rglob(
                    f"{TEMP_PREFIX}*")]
    return problems


def _originals(people: People, records: list, index_hashes: set[str]) -> list[str]:
    ours = index_hashes | people.derived  # lmd's outputs, and the person's edits of them
    kept: dict[tuple[str, str], object] = {}
    for record in records:
        kept[(str(record.target), record.original.content_hash)] = record
    problems = []
    for path, wanted in people.files.items():
        here = Path(path)
        if here.is_file() and digest(here) == wanted:
            continue
        record = kept.get((path, wanted))
        if record is None:
            state = "missing" if not here.exists() else "not the person's version"
            problems.append(f"original lost: {path} is {state} and no record keeps it")
            continue
        try:
            intact = record.backup.is_file() and hashing.matches(record.backup, wanted)
        except OSError:
            intact = False
        if not intact:
            problems.append(f"original lost: the backup {record.backup} of {path} is damaged")
        elif here.is_file() and digest(here) not in ours:
            problems.append(f"{path} holds neither the original nor an output lmd recorded")
    return problems


def _outputs_match(rows: list, jobs: list, people: People) -> list[str]:
    """The newest output lmd recorded at each path is the file there (unless the person changed
    it since), and every succeeded job's recorded output is one the index holds for it."""
    latest: dict[str, object] = {}
    for row in rows:
        if row.reverted_at is None and (row.path not in latest or row.id > latest[row.path].id):
            latest[row.path] = row
    problems = []
    for path, row in latest.items():
        if path in people.changed_outputs:
            continue
        here = Path(path)
        if not here.is_file():
            problems.append(f"job {row.job_id}: its output {path} is missing")
        elif not hashing.matches(here, row.content_hash):
            problems.append(f"job {row.job_id}: {path} is not the output it recorded")
    written = {(row.job_id, row.content_hash) for row in rows}
    for job in jobs:
        recorded = (job.output_signature or {}).get("content_hash")
        if job.state == JobState.SUCCEEDED and recorded and (job.id, recorded) not in written:
            problems.append(f"job {job.id} records an output the index does not hold for it")
    return problems


def _inputs_are_not_outputs(jobs: list, index_hashes: set[str], people: People) -> list[str]:
    problems = []
    for job in jobs:
        for role, sig in (job.payload.get("signatures") or {}).items():
            value = sig.get("content_hash")
            if value in index_hashes:
                problems.append(f"job {job.id} takes lmd's output as its {role}")
            elif value in people.derived:
                problems.append(f"job {job.id} takes an edit of lmd's output as its {role}")
    return problems


def _once(store: JobStore, jobs: list, drained: bool) -> list[str]:
    problems = []
    for job in jobs:
        done = False
        successes = 0
        for event in store.events(job.id):
            if event.to_state == JobState.SUCCEEDED and event.from_state == JobState.RUNNING:
                if done:
                    problems.append(f"job {job.id} succeeded twice without being queued again")
                done, successes = True, successes + 1
            elif event.to_state == JobState.PENDING and event.from_state != JobState.RUNNING:
                done = False  # queued again: reprocess, retry, inputs current again
        written = len(store.outputs_of_job(job.id))
        if written > successes:
            problems.append(f"job {job.id}: {written} outputs indexed for {successes} successes")
        if drained and job.state in (JobState.PENDING, JobState.RUNNING, JobState.DEFERRED):
            problems.append(f"job {job.id} is still {job.state.value} after the queue drained")
    return problems


def revert_all_gives_back(people: People, backup_dir: Path) -> list[str]:
    """After `lmd revert --all`: the library holds exactly the person's files again, and no
    backup record is left for a still that holds its record's original or output (only the
    older originals of stills the person exported again stay kept)."""
    problems = []
    for path, wanted in people.files.items():
        here = Path(path)
        if not here.is_file() or digest(here) != wanted:
            problems.append(f"after revert --all {path} is not the person's file")
    try:
        left = list(iter_records(backup_dir))
    except OutputError as exc:
        return [*problems, str(exc)]
    for record in left:
        here = record.target
        current = digest(here) if here.is_file() else None
        if current == record.original.content_hash or (
            record.output is not None and current == record.output.content_hash
        ):
            problems.append(f"record left after revert --all: {record.record_path}")
    return problems
