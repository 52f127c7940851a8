"""A `livemoments-video` video job through the daemon (`lmd scan`, `lmd work`) on the tiny random
checkpoint, on the CPU: the job pins the checkpoint's digest, the worker restores the clip with
it into a MOV that keeps its frames and timing and still pairs with its key photo."""

from __future__ import annotations

from pathlib import Path

from daemon.library.quicktime import read_mov_info
from daemon.output.video import SourceMovie, source_timing
from daemon.settings import load_settings
from daemon.store import open_store
from tests.video import test_video_jobs
from tests.video.test_video_jobs import CID, FRAMES, _config, _jobs, lmd

library = test_video_jobs.library  # the fixture: a library of two tiny Live Photos


def test_a_livemoments_video_job_restores_the_clip_with_its_pinned_checkpoint(
    tmp_path: Path, library: Path, tiny_checkpoint: Path, one_torch_thread: None
) -> None:
    from core.video import clip_weights_digest

    params = f'{{ checkpoint = "{tiny_checkpoint}", tile = 64, overlap = 16 }}'
    config = _config(tmp_path, f'enabled = true\nrestorer = "livemoments-video"\nparams = {params}')
    assert lmd(config, "scan")[0] == 0
    settings = load_settings(config)
    digest = clip_weights_digest("livemoments-video", {"checkpoint": str(tiny_checkpoint)})
    with open_store(settings.database_url) as store:
        (video,) = [j for j in store.list_jobs() if j.kind == "video"]
        assert (video.restorer, video.weights_digest) == ("livemoments-video", digest)
        assert digest != "none"  # the checkpoint's digest (guided-video's would be "none")
    code, out = lmd(config, "work")
    assert code == 0, out
    assert ("IMG_0001", "video", "succeeded") in _jobs(config)
    out_mov = tmp_path / "state" / "restored" / "IMG_0001.MOV"
    source = library / "IMG_0001.MOV"
    original, restored = (source_timing(SourceMovie(path=p)) for p in (source, out_mov))
    assert len(restored.pts) == FRAMES
    assert (restored.pts, restored.time_base) == (original.pts, original.time_base)
    assert read_mov_info(out_mov).content_identifier == CID
    with open_store(settings.database_url) as store:
        job = store.get_job(video.id)
        assert job.provenance["restorer"] == "livemoments-video"
        assert job.provenance["weights_digest"] == digest
