"""Fixtures shared by every test area. Keep it small and generic.

`postgres_server` starts one throwaway PostgreSQL server for the whole run (only when a test
asks for it); tests take a fresh database from it with `postgres_url`. Without PostgreSQL
binaries those tests skip, unless LMD_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.postgres_server import REQUIRE_ENV, PostgresServer, PostgresUnavailable


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but no PostgreSQL server could be started: {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database on the throwaway server."""
    return postgres_server.create_database()
