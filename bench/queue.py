"""Queue throughput with an empty job body: enqueue, claim and finish (jobs/s).

    .venv/bin/python bench/queue.py [--jobs 2000] [--postgres-url URL | --no-postgres]

SQLite runs in a temporary directory. PostgreSQL uses --postgres-url, or else a throwaway
server started from Debian's binaries (as the tests do). Target: >= 500 claim+finish cycles/s
on SQLite on a 2-core machine. Each operation is its own transaction, as in the daemon.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this file's directory comes first on sys.path, and this file (queue.py)
# would then shadow the standard library's `queue` for everything imported after it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from daemon.store import JobSpec, job_identity, open_store  # noqa: E402


def _spec(i: int) -> JobSpec:
    sigs = {"reference": {"size": i, "content_hash": f"h{i}"}}
    return JobSpec(
        identity=job_identity(sigs, 1.0, "guided", "none", {}),
        asset_key=f"lib/IMG_{i:06d}",
        payload={"key": f"lib/IMG_{i:06d}", "reference": f"/photos/IMG_{i:06d}.HEIC"},
        restorer="guided",
        weights_digest="none",
        params={},
    )


def run(url: str, n: int) -> dict[str, float]:
    store = open_store(url)
    try:
        specs = [_spec(i) for i in range(n)]
        t0 = time.perf_counter()
        for spec in specs:
            store.enqueue(spec)
        t_enqueue = time.perf_counter() - t0

        half = n // 2
        t0 = time.perf_counter()  # claim alone (the claimed jobs are finished below)
        claimed = [store.claim("bench", 600) for _ in range(half)]
        t_claim = time.perf_counter() - t0
        t0 = time.perf_counter()
        for job in claimed:
            assert job is not None
            store.succeed(job.id, "bench", None, None, None)
        t_finish = time.perf_counter() - t0

        t0 = time.perf_counter()  # the worker's loop: claim then finish
        c0 = time.process_time()
        cycles = 0
        while (job := store.claim("bench", 600)) is not None:
            store.succeed(job.id, "bench", None, None, None)
            cycles += 1
        t_cycle = time.perf_counter() - t0
        c_cycle = time.process_time() - c0
        assert store.counts()["succeeded"] == n
    finally:
        store.close()
    return {
        "enqueue": n / t_enqueue,
        "claim": half / t_claim,
        "finish": half / t_finish,
        "claim+finish": cycles / t_cycle,
        # the same loop per second of this process's CPU time: what the store costs when the
        # machine is not shared (the wall-clock figures move with other processes' load)
        "claim+finish per CPU-s": cycles / c_cycle,
    }


def _print(name: str, n: int, rates: dict[str, float]) -> None:
    parts = "  ".join(f"{k} {v:.0f}/s" for k, v in rates.items())
    load = os.getloadavg()[0]
    print(f"{name:<8} n={n}  {parts}  (load average {load:.2f})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--postgres-url")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory(prefix="lmd-bench-") as tmp:
        rates = run(f"sqlite:///{tmp}/lmd.sqlite3", args.jobs)
        _print("sqlite", args.jobs, rates)
        target = 500
        verdict = "meets" if rates["claim+finish"] >= target else "MISSES"
        print(f"sqlite claim+finish {rates['claim+finish']:.0f}/s {verdict} the {target}/s target")

    if args.no_postgres:
        return 0
    if args.postgres_url:
        _print("postgres", args.jobs, run(args.postgres_url, args.jobs))
        return 0
    from tests.postgres_server import PostgresServer, PostgresUnavailable

    try:
        with PostgresServer() as server:
            _print("postgres", args.jobs, run(server.create_database("bench"), args.jobs))
    except PostgresUnavailable as exc:
        print(f"postgres   skipped: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
