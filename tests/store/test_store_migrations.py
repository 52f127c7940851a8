"""Alembic owns the schema: the migrations must build exactly the models, keep rows across
upgrades, and back up a SQLite file before touching it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from daemon.store import StoreError, migrate, open_store
from daemon.store.db import create_store_engine, current_revision, head_revision
from daemon.store.models import metadata


def _drift(url: str) -> list[object]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


def test_migrations_match_models_exactly(store_url: str) -> None:
    migrate(store_url)
    assert _drift(store_url) == []


def test_drift_check_sees_a_difference(sqlite_url: str) -> None:
    """The no-drift check above can fail: stop at the first migration and it reports tables."""
    migrate(sqlite_url, "0001")
    diffs = _drift(sqlite_url)
    added = {d[1].name for d in diffs if isinstance(d, tuple) and d[0] == "add_table"}
    assert added == {"assets", "control", "reviews", "outputs", "publish_outbox"}


def test_the_backups_table_is_dropped_and_comes_back_on_downgrade(sqlite_url: str) -> None:
    """0004 drops the shadow `backups` table (the records beside the backups are the truth);
    the downgrade recreates it as 0002 made it."""
    migrate(sqlite_url, "0003")
    assert {d[1].name for d in _drift(sqlite_url) if d[0] == "remove_table"} == {"backups"}
    migrate(sqlite_url)
    assert _drift(sqlite_url) == []
    from alembic import command

    from daemon.store.db import alembic_config

    engine = create_store_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
        with engine.connect() as conn:
            tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
        assert "backups" in tables and current_revision(engine) == "0003"
    finally:
        engine.dispose()


def _insert_old_job(
    store_url: str, identity: str, asset_key: str, state: str, *, attempts: int, params: str
) -> None:
    """A jobs row as the code of 0001/0002 wrote it: raw SQL with only the columns it had."""
    engine = create_store_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (identity, asset_key, state, priority, attempts, max_attempts,"
                " created_at, updated_at, payload, restorer, weights_digest, params, force)"
                " VALUES (:identity, :asset_key, :state, 0, :attempts, 3, :t, :t, '{}', 'guided',"
                " 'none', :params, false)"
            ),
            {"identity": identity, "asset_key": asset_key, "state": state,
             "attempts": attempts, "params": params, "t": "2026-01-01 00:00:00"},
        )
    engine.dispose()


def test_upgrade_from_first_migration_keeps_rows(store_url: str) -> None:
    migrate(store_url, "0001")
    _insert_old_job(store_url, "abc", "lib/IMG_1", "succeeded", attempts=1, params="{}")
    with open_store(store_url) as store:
        [job] = store.list_jobs()
        assert job.identity == "abc" and job.asset_key == "lib/IMG_1"
        assert job.created_at.tzinfo is not None
        store.set_paused(True)  # a 0002 table works after the upgrade
        assert store.is_paused()


def test_upgrade_to_pinned_outputs_keeps_jobs_without_inventing_an_output(store_url: str):
    """0003 adds the pinned output; a job from before keeps every field and reads back with
    no output (the worker refuses it with a reason instead of guessing from the settings)."""
    migrate(store_url, "0002")
    assert {d[3].name for d in _drift(store_url) if isinstance(d, tuple) and d[0] == "add_column"
            } >= {"output_mode", "output_root", "jpeg_quality", "heic_quality"}
    _insert_old_job(
        store_url, "old", "lib/IMG_2", "pending", attempts=0, params='{"restorer": {}}'
    )
    with open_store(store_url) as store:
        [job] = store.list_jobs()
        assert (job.identity, job.state, job.params) == ("old", "pending", {"restorer": {}})
        assert job.output is None


def test_sqlite_backup_before_migrating(tmp_path: Path) -> None:
    db = tmp_path / "lmd.sqlite3"
    url = f"sqlite:///{db}"
    assert migrate(url, "0001") is None  # a new database has nothing to back up
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO scans (root, \"trigger\", started_at, files_seen, assets_found,"
                     " enqueued, unreadable) VALUES ('/p', 'manual', '2026-01-01', 1, 2, 3, 4)")
    backup = migrate(url)
    assert backup is not None and backup.exists() and backup.name.startswith("lmd.sqlite3.bak-0001")
    with sqlite3.connect(backup) as conn:
        assert conn.execute("SELECT root FROM scans").fetchall() == [("/p",)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "control" not in tables  # the copy is of the database before the upgrade
    assert migrate(url) is None  # already at head: no second copy
    assert len(list(tmp_path.glob("lmd.sqlite3.bak-*"))) == 1


def test_sqlite_pragmas(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_open_without_migrating_refuses_old_schema(sqlite_url: str) -> None:
    migrate(sqlite_url, "0001")
    with pytest.raises(StoreError, match="revision 0001"):
        open_store(sqlite_url, migrate=False)
    engine = create_store_engine(sqlite_url)
    assert current_revision(engine) == "0001" != head_revision()
    engine.dispose()


def test_refuses_database_on_network_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel's mount table as it reads with the state directory on an NFS mount.
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        f"40 22 0:50 / {tmp_path}/nas rw,relatime shared:20 - nfs4 nas:/export rw,vers=4.2\n"
    )
    monkeypatch.setattr("daemon.fsinfo.MOUNTINFO_PATH", mountinfo)
    with pytest.raises(StoreError, match=r"network filesystem \(nfs4\)"):
        open_store(f"sqlite:///{tmp_path}/nas/lmd/lmd.sqlite3")
    assert not (tmp_path / "nas").exists()  # refused before creating anything
    with open_store(f"sqlite:///{tmp_path}/local/lmd.sqlite3") as store:
        assert store.counts()["pending"] == 0


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open the database"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "lmd.sqlite3"
    path.write_bytes(b"not a database, just some text that someone saved here\n" * 4)
    with pytest.raises(StoreError, match=r"cannot open the database .*file is not a database"):
        open_store(f"sqlite:///{path}")
