"""One copy of the LiveMoments models per worker: a worker that runs `livemoments` still jobs and
`livemoments-video` video jobs from the same checkpoint hands the clip restorer the still
restorer it holds (`RestorerHolder.for_clip`), so the models load once, and the idle unload
(or device trouble) frees them for both. Loads are counted on the loading function itself, on
the tiny random checkpoint on the CPU."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from daemon.restorer_config import clip_restorer_options, configured_weights_digest
from daemon.settings import load_settings
from daemon.store import open_store
from daemon.worker import Worker
from daemon.worker.restorers import RestorerHolder
from tests.video import test_video_jobs
from tests.video.test_video_jobs import _jobs, lmd

library = test_video_jobs.library  # the fixture: a library of two tiny Live Photos
TILES = "tile = 64, overlap = 16"  # the tiny model takes tiles up to 512 px


class Loads:
    """Every model set `core.livemoments.load.load_checkpoint` returned (where the restorer
    loads from, whatever instance asks), kept by weak reference to one of its networks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import core.livemoments.load as load

        self.networks: list[weakref.ref[Any]] = []
        real = load.load_checkpoint

        def counting(*args: Any, **kwargs: Any) -> Any:
            models = real(*args, **kwargs)
            self.networks.append(weakref.ref(models.transformer))
            return models

        monkeypatch.setattr(load, "load_checkpoint", counting)

    @property
    def count(self) -> int:
        return len(self.networks)

    def alive(self) -> int:
        gc.collect()
        return sum(ref() is not None for ref in self.networks)


def _config(tmp_path: Path, checkpoint: Path, video_checkpoint: Path | None = None) -> Path:
    """Still jobs on `livemoments` and video jobs on `livemoments-video`, both from
    `checkpoint` unless the video's is given."""
    video = video_checkpoint or checkpoint
    config = tmp_path / "lmd.toml"
    config.write_text(
        f'library = "{tmp_path / "library"}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[watcher]\nmode = "off"\n'
        f'[restorer]\nname = "livemoments"\ncheckpoint = "{checkpoint}"\n'
        f"params = {{ {TILES} }}\n"
        '[video]\nenabled = true\nrestorer = "livemoments-video"\n'
        f'params = {{ checkpoint = "{video}", {TILES} }}\n'
    )
    return config


def test_a_still_and_a_video_job_load_the_models_once_and_the_unload_frees_both(
    tmp_path: Path, library: Path, tiny_checkpoint: Path, one_torch_thread: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(tmp_path, tiny_checkpoint)
    assert lmd(config, "scan")[0] == 0
    loads = Loads(monkeypatch)
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        worker = Worker(settings, store, worker_id="w1")
        assert worker.run_until_empty() == 2  # IMG_0001's still and video
        assert _jobs(config) == [("IMG_0001", "still", "succeeded"),
                                 ("IMG_0001", "video", "succeeded")]
        assert loads.count == 1  # two separate restorers loaded twice
        assert loads.alive() == 1
        worker.restorers.drop()  # the idle unload (device trouble calls the same)
        assert not worker.model_loaded
        assert loads.alive() == 0  # neither the still restorer nor the clip kept them


def test_the_models_are_shared_only_from_the_same_checkpoint_and_options(
    tmp_path: Path, library: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.video.livemoments_video import LiveMomentsVideoRestorer

    given: list[Any] = []
    real = LiveMomentsVideoRestorer.__init__

    def recording(restorer: Any, still: Any = None, **options: Any) -> None:
        given.append(still)
        real(restorer, still, **options)

    monkeypatch.setattr(LiveMomentsVideoRestorer, "__init__", recording)
    link = tmp_path / "same-weights"  # another name for the same directory
    link.symlink_to(tiny_checkpoint, target_is_directory=True)
    copy_dir = tmp_path / "lm-copy"  # another directory (its weights would load apart)
    copy_dir.mkdir()
    settings = load_settings(_config(tmp_path, tiny_checkpoint))
    options = clip_restorer_options(settings, "livemoments-video")
    still_job = SimpleNamespace(id=1, restorer="livemoments",
                                weights_digest=configured_weights_digest(settings))
    cases = [
        (options, {"checkpoint": str(link)}, True),
        (options, {"checkpoint": str(copy_dir)}, False),
        ({**options, "device": "cpu"}, {"checkpoint": str(tiny_checkpoint)}, False),
        (options, {}, False),  # no checkpoint named: nothing to tell it is the same
    ]
    for clip_options, params, shared in cases:
        holder = RestorerHolder(settings)
        holder.for_clip("livemoments-video", clip_options, params)
        still = given[-1]
        assert (still is not None) == shared, (clip_options, params)
        if shared:  # the very instance the holder runs still jobs on
            assert holder.for_job(still_job) is still
    # a worker whose stills run on `guided` keeps no livemoments still restorer for a clip
    guided = load_settings(_config(tmp_path, tiny_checkpoint)).model_copy(deep=True)
    guided.restorer.name = "guided"
    RestorerHolder(guided).for_clip("livemoments-video", options,
                                    {"checkpoint": str(tiny_checkpoint)})
    assert given[-1] is None


def test_device_trouble_in_a_video_job_frees_the_shared_models(
    tmp_path: Path, library: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of device memory on a clip: the job is deferred and the one copy of the models, held
    for stills and lent to the clip, is let go (`RestorerHolder.drop`)."""
    from core import CancelToken, OutOfDeviceMemory
    from core.livemoments.restorer import LiveMomentsRestorer
    from daemon.worker import Outcome
    from daemon.worker.video_job import run_video_job
    from tests.video.test_video_jobs import _claimed_video, _context

    config = _config(tmp_path, tiny_checkpoint)
    settings = load_settings(config)
    loads = Loads(monkeypatch)
    holder = RestorerHolder(settings)
    still_job = SimpleNamespace(id=1, restorer="livemoments",
                                weights_digest=configured_weights_digest(settings))
    holder.for_job(still_job).load(tiny_checkpoint)  # a still job's models, in memory
    assert loads.alive() == 1

    def no_memory(*args: Any, **kwargs: Any) -> Any:
        raise OutOfDeviceMemory("the card is full")

    monkeypatch.setattr(LiveMomentsRestorer, "restore", no_memory)
    with open_store(settings.database_url) as store:
        job = _claimed_video(config, store)
        outcome = run_video_job(job, _context(store, config, restorers=holder), CancelToken(),
                                options=clip_restorer_options(settings, job.restorer))
    assert outcome is Outcome.DEFERRED
    assert not holder.loaded
    assert loads.alive() == 0
