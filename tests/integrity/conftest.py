"""Fixtures for the integrity tests: a small real library (built once per session, copied per
test), replace mode on SQLite, the cheap `bicubic` restorer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daemon.settings import Settings
from tests.integrity.helpers import PHOTOS, build_library, integrity_settings


@pytest.fixture(scope="session")
def library_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_library(tmp_path_factory.mktemp("template") / "library", PHOTOS)


@pytest.fixture
def library(tmp_path: Path, library_template: Path) -> Path:
    copy = tmp_path / "library"
    shutil.copytree(library_template, copy, symlinks=True)
    return copy


@pytest.fixture
def settings(tmp_path: Path, library: Path) -> Settings:
    return integrity_settings(tmp_path, library)
