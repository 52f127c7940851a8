"""Soak: a library's life under lmd with worker processes killed and stopped (issue 10).

Two parts, figures printed at the end:

1. SQLite. A library in replace mode lives at random (`tests.integrity.life.Life`): photos added,
   folders renamed (also between scan and work), videos touched, stills exported again, lmd's
   outputs edited, photos deleted, the restorer setting and the output mode changed, reprocess
   (with and without --force), revert. After each step two worker processes (forked, running
   the cheap `bicubic` restorer) drain the queue while this process SIGKILLs them and SIGSTOPs
   them past their lease (then SIGCONT once another worker took the job over). Workers also
   kill or stop themselves at the points that matter: before the write, right after the rename
   (before the success is recorded) and just before the backup record names the output. After
   every step every invariant of `tests.integrity.invariants` is checked; at the end
   `lmd revert --all --force` must give the person's library back byte for byte.
2. PostgreSQL (`tests.postgres_server`, a throwaway server). Two worker processes share one
   database over rounds of new work until 1,000 jobs are done; each must be done exactly once
   (one success, one output, its file matching).

Usage: .venv/bin/python bench/soak.py [--seed N] [--jobs 200] [--kills 100] [--stops 20]
       [--pg-jobs 1000] [--no-postgres] [--minutes 7]
SOAK_STOP_AT_VIOLATION=1 stops at the first broken invariant and prints what the store and the
backup records say about the stills it names; SOAK_LOG_LEVEL=info shows lmd's logs (stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

ROOT = Path(__file__).resolve().parents[1]
# the repository instead of bench/ (whose queue.py would shadow the standard library's queue)
sys.path[0] = str(ROOT)

from core.baselines import BicubicRestorer  # noqa: E402
from daemon.review.gate import PublishDirectly  # noqa: E402
from daemon.settings import Settings  # noqa: E402
from daemon.store import JobState, JobStore, open_store  # noqa: E402
from daemon.store.models import jobs  # noqa: E402
from daemon.worker import Worker  # noqa: E402
from daemon.worker.files import LibraryFiles  # noqa: E402
from tests.integrity.invariants import revert_all_gives_back  # noqa: E402
from tests.integrity.life import Life  # noqa: E402

#: a lease short enough that a stopped worker loses it quickly; beats well inside it
LEASE = {"lease_seconds": 1.5, "heartbeat_seconds": 0.3, "max_attempts": 1000,
         "poll_seconds": 0.05, "defer_seconds": 0.1}
FORK = mp.get_context("fork")
ACTIVE = (JobState.PENDING.value, JobState.RUNNING.value, JobState.DEFERRED.value)


def quiet_logs() -> None:
    from daemon.logging import configure_logging

    configure_logging(os.environ.get("SOAK_LOG_LEVEL", "error"), "json")


# --------------------------------------------------------------------- inside a worker
class ChaosFiles(LibraryFiles):
    """Real files, and a worker that kills (SIGKILL) or stops (SIGSTOP) itself at the points
    where a crash or a stall matters most."""

    def __init__(self, index: Any, rng: random.Random, kill: float, stop: float) -> None:
        super().__init__(index=index)
        self.rng, self.kill, self.stop = rng, kill, stop

    def maybe(self) -> None:
        roll = self.rng.random()
        if roll < self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        elif roll < self.kill + self.stop:
            os.kill(os.getpid(), signal.SIGSTOP)

    def write(self, *args: Any, **kwargs: Any) -> Any:
        self.maybe()  # restored, about to write
        signature = super().write(*args, **kwargs)
        self.maybe()  # renamed into place, success not recorded yet
        return signature


def worker_main(settings: Settings, name: str, seed: int, chaos: bool, forever: bool) -> None:
    """A worker process: drains the queue (or, `forever`, until the control flag says stop)."""
    quiet_logs()
    rng = random.Random(seed)
    store = open_store(settings.database_url, migrate=False)
    files = ChaosFiles(store, rng, 0.07, 0.025) if chaos else LibraryFiles(index=store)
    if chaos:
        import daemon.output.replace as replace

        save = replace.save_record

        def dying_save(record: Any) -> None:
            if record.output is not None and rng.random() < 0.07:
                os.kill(os.getpid(), signal.SIGKILL)  # renamed, the record not updated yet
            save(record)

        replace.save_record = dying_save  # type: ignore[assignment]
    worker = Worker(settings, store, worker_id=name, files=files, review=PublishDirectly(),
                    restorer=BicubicRestorer())
    if not forever:
        worker.run_until_empty()
        os._exit(0)
    while store.get_control("soak") != "stop":
        if worker.run_until_empty() == 0:
            time.sleep(settings.worker.poll_seconds)
    os._exit(0)


# ------------------------------------------------------------------------ the conductor
@dataclass
class Figures:
    kills: int = 0
    kills_by_itself: int = 0
    stops: int = 0
    stops_by_itself: int = 0
    spawned: int = 0
    crashed: int = 0
    steps: int = 0
    violations: list[tuple[str, str]] = field(default_factory=list)


def retried(call: Any, *args: Any, **kwargs: Any) -> Any:
    """A store call from the conductor, retried while a stopped worker holds SQLite's lock."""
    for attempt in range(20):
        try:
            return call(*args, **kwargs)
        except Exception:
            if attempt == 19:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def state_of(pid: int) -> str:
    """The process state letter from /proc (R, S, T for stopped, Z...), '' when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


class Crew:
    """The worker processes of one work phase: started, killed, stopped and continued."""

    def __init__(self, life: Life, figures: Figures, rng: random.Random) -> None:
        self.life, self.figures, self.rng = life, figures, rng
        self.procs: dict[str, Any] = {}

    def spawn(self, name: str) -> None:
        assert self.life.store is not None
        self.life.store.engine.dispose()  # no connection crosses the fork
        proc = FORK.Process(
            target=worker_main,
            args=(self.life.settings, name, self.rng.randrange(2**31), True, False),
        )
        proc.start()
        self.procs[name] = proc
        self.figures.spawned += 1

    def reap(self) -> None:
        for name, proc in list(self.procs.items()):
            if proc.exitcode is None:
                continue
            if proc.exitcode == -signal.SIGKILL:
                self.figures.kills += 1
                self.figures.kills_by_itself += 1
            elif proc.exitcode != 0:
                self.figures.crashed += 1
            proc.join()
            del self.procs[name]

    def job_of(self, name: str) -> Any:
        store = self.life.store
        assert store is not None
        running = retried(store.list_jobs, state=JobState.RUNNING, limit=100)
        return next((job for job in running if job.lease_owner == name), None)

    def stop_past_lease(self, name: str, by_itself: bool) -> None:
        """A stopped worker: wait until its lease ran out and another worker took its job,
        then let it go on (SIGCONT) into a world where its job is someone else's."""
        proc = self.procs[name]
        self.figures.stops += 1
        self.figures.stops_by_itself += by_itself
        job = self.job_of(name)
        if job is not None:
            deadline = time.monotonic() + 8
            store = self.life.store
            assert store is not None
            while time.monotonic() < deadline:
                now = retried(store.get_job, job.id)
                if now.state != JobState.RUNNING or now.lease_generation != job.lease_generation:
                    break
                if now.lease_expires_at < datetime.now(UTC):
                    retried(store.requeue_expired)
                    other = "B" if name.endswith("A") else "A"
                    stand_in = f"{name}-stand-in"
                    if other not in self.procs and stand_in not in self.procs:
                        self.spawn(stand_in)
                time.sleep(0.02)
        os.kill(proc.pid, signal.SIGCONT)

    def queue(self) -> tuple[bool, bool]:
        """(anything left to do, anything claimable now). A job a killed worker held waits for
        its lease to run out; a failed attempt's backoff (60 s) is cut short here, since this
        soak is about what work leaves behind, not about when it is retried."""
        store = self.life.store
        assert store is not None
        retried(store.requeue_expired)
        with store.engine.begin() as conn:
            conn.execute(
                update(jobs).where(jobs.c.state == JobState.PENDING.value,
                                   jobs.c.not_before.is_not(None)).values(not_before=None)
            )
        counts = retried(store.counts)
        return any(counts[s] for s in ACTIVE), counts[JobState.PENDING.value] > 0

    def run(self) -> None:
        """Drain the queue with two workers (A and B), killing and stopping them at random."""
        deadline = time.monotonic() + 300
        self.spawn("A")  # at least one pass: it also makes moved stills' records follow them
        while time.monotonic() < deadline:
            self.reap()
            busy, claimable = retried(self.queue)
            if not busy and not self.procs:
                return
            for name in ("A", "B"):
                if claimable and name not in self.procs:
                    self.spawn(name)
            for name, proc in list(self.procs.items()):
                if state_of(proc.pid) == "T":
                    self.stop_past_lease(name, by_itself=True)
            self.outside_chaos()
            time.sleep(0.02)
        raise RuntimeError("the queue did not drain in 300 s")

    def outside_chaos(self) -> None:
        """Now and then SIGKILL or SIGSTOP a worker that is running a job."""
        roll = self.rng.random()
        if roll > 0.06 or not self.procs:
            return
        name = self.rng.choice(sorted(self.procs))
        proc = self.procs[name]
        if state_of(proc.pid) not in ("R", "S") or self.job_of(name) is None:
            return
        if roll < 0.045:
            time.sleep(self.rng.uniform(0, 0.05))  # somewhere in the job
            if proc.exitcode is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.join()
                del self.procs[name]
                self.figures.kills += 1
        else:
            os.kill(proc.pid, signal.SIGSTOP)
            if self.holds_the_database():
                # stopped inside a write transaction: with SQLite every other process would
                # wait for it (busy timeout, then "database is locked"); not a stop this soak
                # is about, so let it go on and try another moment
                os.kill(proc.pid, signal.SIGCONT)
                return
            self.stop_past_lease(name, by_itself=False)

    def holds_the_database(self) -> bool:
        """Whether a (stopped) process holds SQLite's write lock right now."""
        import sqlite3

        from sqlalchemy.engine import make_url

        from daemon.store.db import sqlite_path

        path = sqlite_path(make_url(self.life.settings.database_url))
        if path is None:
            return False
        conn = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            conn.close()


#: what the person does, and how often (a restorer or mode change is new work for every photo)
STEPS = (
    ("add photos", 3), ("rename a folder", 3), ("rename a folder between scan and work", 2),
    ("touch a video", 2), ("export a still again", 2), ("edit lmd's output", 2),
    ("delete a photo", 1), ("change the restorer", 3), ("change the output mode", 2),
    ("reprocess", 1), ("reprocess --force", 2), ("revert one", 1), ("revert all", 1),
)


def sqlite_life(base: Path, seed: int, jobs: int, kills: int, stops: int, minutes: float,
                photos: int) -> tuple[Figures, Life, float]:
    rng = random.Random(seed)
    life = Life(base, seed=seed, worker=dict(LEASE))
    life.store = open_store(life.settings.database_url)
    figures = Figures()
    started = time.monotonic()
    life.add_photos(photos)
    phase(life, figures, rng, "photos added")
    names, weights = zip(*STEPS, strict=True)
    while time.monotonic() - started < minutes * 60:
        done = len(life.store.list_jobs(limit=1_000_000))
        if done >= jobs and figures.kills >= kills and figures.stops >= stops:
            break
        step = rng.choices(names, weights)[0]
        act(life, step, figures, rng)
        print(f"  step {figures.steps:3d} {step:40s} jobs {done:4d} kills {figures.kills:3d} "
              f"stops {figures.stops:3d} violations {len(figures.violations)}", flush=True)
    return figures, life, time.monotonic() - started


def act(life: Life, step: str, figures: Figures, rng: random.Random) -> None:
    if step == "add photos":
        life.add_photos(rng.randint(2, 5))
    elif step == "rename a folder":
        life.rename_folder()
    elif step == "rename a folder between scan and work":
        life.scan()
        life.rename_folder()
    elif step == "touch a video":
        life.touch()
    elif step == "export a still again":
        life.edit_target()
    elif step == "edit lmd's output":
        life.edit_output()
    elif step == "delete a photo":
        life.delete()
    elif step == "change the restorer":
        life.change_restorer()
    elif step == "change the output mode":
        life.change_mode()
    elif step == "reprocess":
        life.reprocess(force=False)
    elif step == "reprocess --force":
        life.reprocess(force=True)
    elif step == "revert one":
        replaced = life.stills(replaced=True)
        if replaced:
            life.revert(rng.choice(replaced))
    elif step == "revert all":
        life.revert(None)
    quiet_logs()  # lmd revert ran in this process and configured logging for itself
    phase(life, figures, rng, step)


def phase(life: Life, figures: Figures, rng: random.Random, step: str) -> None:
    """Scan, let the crew drain the queue under fire, scan again (what moved or was skipped
    comes back), drain again, then check every invariant."""
    for _ in range(2):
        retried(life.scan)
        Crew(life, figures, rng).run()
    figures.steps += 1
    problems = life.verify(step, drained=True)
    figures.violations += [(step, p) for p in problems]
    if problems and os.environ.get("SOAK_STOP_AT_VIOLATION"):
        dump(life, problems)
        raise SystemExit(2)


def dump(life: Life, problems: list[str]) -> None:
    """What the store and the records say about the stills a violation names (debugging)."""
    from daemon.output import iter_records

    store = life.store
    assert store is not None
    print("\n".join(problems))
    print("steps:", " | ".join(life.log))
    from core import hashing

    for problem in problems:
        for word in problem.split():
            here = Path(word)
            if word.startswith("/") and here.is_file():
                now = hashing.digest_file(here)
                print("file", here, now, "written by", store.find_outputs([now]).get(now))
    for job in store.list_jobs(limit=1_000_000):
        if Path(str(job.payload.get("target"))).name in {
            Path(w).name for p in problems for w in p.split() if "IMG_E" in w
        }:
            print("job", job.id, job.state, job.output_path, job.output_signature,
                  job.payload["signatures"].get("target"))
            for e in store.events(job.id):
                print("   ", e.at.time(), e.from_state, e.to_state, e.worker, e.reason)
            for row in store.outputs_of_job(job.id):
                print("    output", row)
    names = {Path(w).name for p in problems for w in p.split() if "IMG_E" in w}
    for record in iter_records(life.settings.output.backup_dir, unreadable=[]):
        if record.target.name in names:
            print("record", record.record_path, record.target, record.original, record.output,
                  record.created)


# ------------------------------------------------------------------------ PostgreSQL
def postgres_rounds(base: Path, jobs: int, photos: int) -> dict[str, Any]:
    from tests.postgres_server import PostgresServer

    server = PostgresServer().start()
    try:
        url = server.create_database()
        life = Life(base, seed=99, worker=dict(LEASE), database_url=url)
        life.store = open_store(url)
        life.add_photos(photos)
        started = time.monotonic()
        procs = []
        life.store.engine.dispose()
        for name in ("pg-A", "pg-B"):
            proc = FORK.Process(target=worker_main,
                                args=(life.settings, name, 0, False, True))
            proc.start()
            procs.append(proc)
        rounds = 0
        while len(life.store.list_jobs(limit=1_000_000)) < jobs:
            # a new output tree each round: new work for every photo, every output kept
            life.overrides["output"] = {"mode": "sidecar", "tree": str(base / f"tree-{rounds}")}
            life.settings = life._settings()
            life.scan()
            rounds += 1
            while any(life.store.counts()[s] for s in ACTIVE):
                time.sleep(0.05)
        life.store.set_control("soak", "stop")
        for proc in procs:
            proc.join(60)
        seconds = time.monotonic() - started
        return {"seconds": seconds, "rounds": rounds, **exactly_once(life.store)}
    finally:
        server.stop()


def exactly_once(store: JobStore) -> dict[str, Any]:
    from core import hashing

    jobs = store.list_jobs(limit=1_000_000)
    once = 0
    by: dict[str, int] = {}
    for job in jobs:
        events = store.events(job.id)
        successes = [e for e in events if e.to_state == JobState.SUCCEEDED]
        outputs = store.outputs_of_job(job.id)
        claims = [e for e in events if e.to_state == JobState.RUNNING]
        for event in claims:
            by[event.worker or "?"] = by.get(event.worker or "?", 0) + 1
        matches = bool(job.output_path) and hashing.matches(
            Path(job.output_path), job.output_signature["content_hash"])
        if len(successes) == 1 and len(outputs) == 1 and len(claims) == 1 and matches:
            once += 1
    return {"jobs": len(jobs), "exactly_once": once, "claims_by_worker": by}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--stops", type=int, default=20)
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=7.0)
    parser.add_argument("--pg-jobs", type=int, default=1000)
    parser.add_argument("--pg-photos", type=int, default=250)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    quiet_logs()
    os.environ.pop("LMD_CONFIG", None)
    with tempfile.TemporaryDirectory(prefix="lmd-soak-") as tmp:
        base = Path(tmp)
        print("SQLite: a library's life with worker processes killed and stopped", flush=True)
        figures, life, seconds = sqlite_life(
            base / "sqlite", args.seed, args.jobs, args.kills, args.stops, args.minutes,
            args.photos,
        )
        assert life.store is not None
        store = life.store
        jobs = store.list_jobs(limit=1_000_000)
        runs = sum(
            1 for job in jobs for e in store.events(job.id) if e.to_state == JobState.RUNNING
        )
        forced = life.revert_all_forced()
        quiet_logs()
        given_back = revert_all_gives_back(life.people, life.settings.output.backup_dir)
        store.close()
        ok = (
            not figures.violations and not given_back and forced.exit_code == 0
            and len(jobs) >= args.jobs and figures.kills >= args.kills
            and figures.stops >= args.stops
        )
        print(f"SQLite: {len(jobs)} jobs ({runs} claims) over {figures.steps} steps of a "
              f"library's life in {seconds:.0f} s")
        print(f"  SIGKILLs: {figures.kills} ({figures.kills_by_itself} at a chosen point in "
              f"the job, the rest from outside)")
        print(f"  SIGSTOPs past the lease: {figures.stops} ({figures.stops_by_itself} at a "
              f"chosen point), workers started: {figures.spawned}, other exits: "
              f"{figures.crashed}")
        print(f"  invariant violations: {len(figures.violations)}; after revert --all "
              f"--force: {len(given_back)} files differ from the person's")
        for step, problem in figures.violations[:20]:
            print(f"    after '{step}': {problem}")
        for problem in given_back[:10]:
            print(f"    {problem}")
        if given_back and os.environ.get("SOAK_STOP_AT_VIOLATION"):
            dump(life, given_back)
            print(forced.output)
        if forced.exit_code != 0:
            print(f"  lmd revert --all --force exited {forced.exit_code}:")
            text = " ".join(forced.output.split())  # rich wraps long paths
            for word in ("failed:", "refused:", "skipped"):
                for part in text.split(word)[1:]:
                    print(f"    {word}{part[:400]}")
        if not args.no_postgres:
            print("PostgreSQL: two worker processes sharing one database", flush=True)
            pg = postgres_rounds(base / "postgres", args.pg_jobs, args.pg_photos)
            print(f"PostgreSQL: {pg['jobs']} jobs in {pg['rounds']} rounds, "
                  f"{pg['seconds']:.0f} s ({pg['jobs'] / pg['seconds']:.1f} jobs/s); done "
                  f"exactly once: {pg['exactly_once']}; claims by worker: "
                  f"{pg['claims_by_worker']}")
            ok = ok and pg["exactly_once"] == pg["jobs"] >= args.pg_jobs
        print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
