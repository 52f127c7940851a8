"""`lmd restore-video --restorer livemoments-video` reaches the diffusion path for clips (tiny
random checkpoint, a four-frame Live Photo written in the test)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from daemon.cli import main
from daemon.library import synth
from daemon.library.quicktime import read_mov_info
from tests.video.conftest import movie_with_audio

CID = "0B7A1C3E-3333-4D44-8888-ABCDEFABCDEF"
FPS = 15.0


def _frame(shift: int) -> np.ndarray:
    yy, xx = np.mgrid[0:64, 0:80].astype(np.float32)
    base = 0.5 + 0.3 * np.sin((xx - shift) / 5.0) * np.cos(yy / 4.0)
    return np.clip(np.rint(np.repeat(base[..., None], 3, axis=2) * 255), 0, 255).astype(np.uint8)


def _frame_count(path: Path) -> tuple[int, tuple[int, int]]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return len(frames), frames[0].shape[:2]


def test_restore_video_with_the_diffusion_path(tiny_checkpoint: Path, tmp_path: Path) -> None:
    frames = [_frame(2 * i) for i in range(4)]
    key = synth.write_apple_still(tmp_path / "IMG_0002.JPG", np.kron(frames[1], np.ones((2, 2, 1),
                                  np.uint8)), CID, "jpeg", quality=95)
    video = tmp_path / "IMG_0002.MOV"
    video.write_bytes(synth.add_live_metadata(movie_with_audio(frames, FPS), CID, 1 / FPS))
    out = tmp_path / "restored.MOV"
    code = main(["restore-video", "--reference", str(key), "--video", str(video), "-o", str(out),
                 "--restorer", "livemoments-video", "-p", f"checkpoint={tiny_checkpoint}",
                 "-p", "tile=64", "-p", "overlap=16", "-p", "guidance_strength=0.3"])
    assert code == 0
    assert _frame_count(out) == (4, (64, 80))
    assert read_mov_info(out).content_identifier == CID

    # Without weights, or with a restorer that does not exist, it says why and writes nothing.
    missing = tmp_path / "missing.MOV"
    assert main(["restore-video", "--reference", str(key), "--video", str(video), "-o",
                 str(missing), "--restorer", "livemoments-video"]) != 0
    assert main(["restore-video", "--reference", str(key), "--video", str(video), "-o",
                 str(missing), "--restorer", "nonesuch-video"]) != 0
    assert not missing.exists()
