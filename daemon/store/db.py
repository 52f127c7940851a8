"""Opening the database: engines, SQLite pragmas, refusing network filesystems, migrating.

SQLite is the embedded default and needs care: WAL (readers never block the writer), a busy
timeout (writers wait instead of failing), `synchronous=NORMAL` (safe with WAL, much faster),
foreign keys, and write transactions that start with `BEGIN IMMEDIATE` so that a transaction
never has to upgrade from reader to writer — the one case busy_timeout cannot rescue. It must
live on local disk: WAL's shared memory does not work across a network filesystem.
PostgreSQL goes through the same code; only the URL differs.

Commands that only read (`lmd status`, `lmd jobs list/show`, `lmd doctor`) open with
`read_only=True`: nothing is created (no state directory, no database file, no tables) and
nothing is migrated; a missing or outdated database is reported in words instead.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url

from daemon import fsinfo
from daemon.store.errors import NoDatabase, StoreError

log = structlog.get_logger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
IMMEDIATE = "lmd_immediate"  # execution option: start this transaction with BEGIN IMMEDIATE
MIGRATION_LOCK = 0x6C6D64  # PostgreSQL advisory lock key ("lmd") held while migrating


def sqlite_path(url: URL) -> Path | None:
    """The file behind a sqlite URL, or None for an in-memory database."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    return Path(database).expanduser()


def _check_local_disk(path: Path) -> None:
    if fsinfo.is_network_fs(path):
        fstype = fsinfo.filesystem_type(path)
        raise StoreError(
            f"the SQLite database {path} is on a network filesystem ({fstype}); SQLite's WAL "
            "and locking only work on a local disk. Put it on local storage (the default is "
            "state_dir, e.g. /var/lib/lmd) or use a postgresql:// database_url."
        )


def no_database_message(where: str) -> str:
    return f"no database yet at {where}; `lmd scan` or `lmd run` creates it"


def create_store_engine(database_url: str, *, create: bool = True) -> Engine:
    """An engine with lmd's connection settings (pragmas and BEGIN IMMEDIATE on SQLite).

    With `create=False` a SQLite file that does not exist is `NoDatabase` (connecting would
    create it) and its directory is not made."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            _check_local_disk(path)
            if not create and not path.is_file():
                raise NoDatabase(no_database_message(str(path)))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {path.parent}: {exc.strerror}") from None
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        _setup_sqlite(engine, wal=path is not None)
        return engine
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return create_engine(url, pool_pre_ping=True)
    raise StoreError(f"unsupported database URL {url.render_as_string(hide_password=True)}")


def _retry_locked(action: Callable[[], T], attempts: int = 6) -> T:
    """Run `action`, retrying while SQLite says "database is locked".

    Two lmd processes starting on a new database at once (`lmd run` and `lmd status`, say)
    race for the locks that switching to WAL and the first migration take; SQLite reports some
    of those conflicts at once instead of waiting out busy_timeout. The loser waits and
    retries, then finds the schema current.
    """
    from sqlalchemy.exc import OperationalError as SAOperationalError

    for attempt in range(attempts):
        try:
            return action()
        except (sqlite3.OperationalError, SAOperationalError) as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


def _setup_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred only).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if wal:
            _retry_locked(lambda: cur.execute("PRAGMA journal_mode = WAL"))
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    from migrations import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def backup_sqlite(path: Path, revision: str | None) -> Path:
    """Copy a live SQLite database (WAL included) with SQLite's online backup API."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.bak-{revision or 'none'}-{stamp}")
    src = sqlite3.connect(str(path))
    try:
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            dst.close()
    finally:
        src.close()
    shutil.copymode(path, target)
    return target


def migrate_engine(engine: Engine, revision: str = "head") -> Path | None:
    """Upgrade to `revision`; back up an existing SQLite file first when there is work to do.
    Returns the backup path, if one was taken."""
    from alembic import command

    backup: Path | None = None
    current = current_revision(engine)
    target = head_revision() if revision == "head" else revision
    if current == target:
        return None
    path = sqlite_path(engine.url)
    if path is not None and current is not None and path.exists():
        backup = backup_sqlite(path, current)
        log.info("database backed up before migrating", path=str(backup), revision=current)
    with engine.connect() as conn:
        # One transaction holding the database's write lock (BEGIN IMMEDIATE on SQLite, an
        # advisory lock on PostgreSQL): a second process starting at the same moment waits,
        # then finds the schema current and does nothing. Alembic reads the revision inside.
        conn = conn.execution_options(**{IMMEDIATE: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            command.upgrade(alembic_config(conn), revision)
    log.info("database migrated", revision=target, previous=current)
    return backup


def migrate(database_url: str, revision: str = "head") -> Path | None:
    """Bring the database at `database_url` to `revision` (default: the newest)."""
    engine = create_store_engine(database_url)
    try:
        return migrate_engine(engine, revision)
    finally:
        engine.dispose()


def _check_readable(engine: Engine) -> None:
    """For a read-only open: the database has lmd's tables at the newest revision."""
    current, head = current_revision(engine), head_revision()
    shown = engine.url.render_as_string(hide_password=True)
    where = str(sqlite_path(engine.url) or shown)
    if current is None:
        raise NoDatabase(no_database_message(where))
    if current != head:
        raise StoreError(
            f"the database at {where} is at revision {current} and this lmd needs {head}; "
            "a read-only command does not migrate it: `lmd scan` or `lmd run` will (after "
            "taking a backup copy)"
        )


def open_engine(database_url: str, *, migrate: bool = True, read_only: bool = False) -> Engine:
    """An engine on a database that is ready for lmd: migrated to the newest revision (or, with
    `migrate=False`, checked to be there already). Raises `StoreError` with a clear message for
    a database that cannot be used (network filesystem, unreachable server, too old, a file
    that is not a database).

    `read_only=True` creates and migrates nothing: `NoDatabase` when there is no database yet,
    `StoreError` when it needs a migration."""
    from sqlalchemy.exc import DatabaseError as SADatabaseError

    engine = create_store_engine(database_url, create=not read_only)
    try:
        if read_only:
            _check_readable(engine)
        elif migrate:
            _retry_locked(lambda: migrate_engine(engine))
        else:
            current, head = current_revision(engine), head_revision()
            if current != head:
                raise StoreError(
                    f"the database is at revision {current or 'none'}, lmd needs {head}; "
                    "run lmd without --skip-migrations once to upgrade it"
                )
    except (SADatabaseError, sqlite3.DatabaseError) as exc:
        engine.dispose()
        shown = engine.url.render_as_string(hide_password=True)
        reason = exc.orig if isinstance(exc, SADatabaseError) else exc
        raise StoreError(f"cannot open the database {shown}: {reason}") from None
    except BaseException:
        engine.dispose()
        raise
    return engine
