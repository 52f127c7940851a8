"""Alembic environment and revisions for lmd's database (a package so it ships with lmd).

`daemon.store.db.migrate` points Alembic's `script_location` at this directory in code.
"""

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent
