"""The worker around video jobs: one clip restorer per process (a heavy model loads once, not
per clip), built again only when the restorer or its options change, and dropped with the
still restorer when the worker goes idle."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.video.guided_video import GuidedVideoRestorer
from daemon.settings import load_settings
from daemon.store import open_store
from daemon.worker import Worker
from daemon.worker.restorers import RestorerHolder
from tests.video import test_video_jobs
from tests.video.test_video_jobs import ENABLED, _config, _jobs, lmd

library = test_video_jobs.library  # the fixture: a library of two tiny Live Photos


class Built:
    """Counts the clip restorers built (whatever module asks the registry for one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = GuidedVideoRestorer.__init__

        def counting(restorer: GuidedVideoRestorer, **options: object) -> None:
            self.count += 1
            real(restorer, **options)

        monkeypatch.setattr(GuidedVideoRestorer, "__init__", counting)


def test_two_video_jobs_build_their_clip_restorer_once(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, ENABLED + '\nwhich = "all"')
    assert lmd(config, "scan")[0] == 0
    built = Built(monkeypatch)
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        worker = Worker(settings, store, worker_id="w1")
        assert worker.run_until_empty() == 3  # a still job and two video jobs
        assert worker.model_loaded
    assert [s for _, kind, s in _jobs(config) if kind == "video"] == ["succeeded"] * 2
    assert built.count == 1
    worker.restorers.drop()  # the idle unload lets go of the clip restorer too
    assert not worker.model_loaded


def test_the_clip_restorer_is_built_again_for_other_options(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(_config(tmp_path, ENABLED))
    built = Built(monkeypatch)
    holder = RestorerHolder(settings)
    first = holder.for_clip("guided-video", {})
    assert holder.for_clip("guided-video", {}) is first
    assert built.count == 1
    other = holder.for_clip("guided-video", {"tone_sigma": 3.0})
    assert other is not first and built.count == 2
    assert holder.for_clip("guided-video", {"tone_sigma": 3.0}) is other
    assert built.count == 2
