"""`lmd demo`: the whole pipeline on a sample library it makes itself, on the CPU.

The sample Live Photos are built like an iPhone library after "Make Key Photo": a sharp,
high-resolution original still (IMG_1234.HEIC), its short video at video resolution with the
original key time in its still-image-time track (IMG_1234.MOV), the low-quality still Photos
renders from the newly chosen frame (IMG_E1234.HEIC), and the AAE with the LivePhotoKeyFrame
adjustment. Between the two key times the camera pans and a subject moves on its own, so the
restorer has to align the reference, and must not ghost the subject.

`run_demo` leaves a working set-up behind: `lmd.toml` (naming the library and the state
directory) beside them, so `cd lmd-demo && lmd status` (or `lmd jobs list`, `lmd review serve`)
works on the demo's queue, since the config search looks in `./lmd.toml`. It says what it does
as it goes (`report`, one line per step), and the worker's progress goes to `watch`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from daemon.comparison import comparison_image
from daemon.library.synth import write_reselected_live_photo

if TYPE_CHECKING:
    from daemon.store import JobStore

VIDEO_SIZE = (480, 360)
SCALE = 4
FPS = 10.0
FRAMES = 12
T0_INDEX = 3
T1_INDEX = 8


def make_scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured, high-detail RGB scene (uint8): gradients, shapes, lines, text and grain."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            128 + 60 * np.sin(x / (width / rng.uniform(2, 5)) + rng.uniform(0, 6)),
            128 + 60 * np.sin(y / (height / rng.uniform(2, 5)) + rng.uniform(0, 6)),
            128 + 60 * np.cos((x + y) / (width / rng.uniform(2, 4))),
        ],
        axis=-1,
    )
    img = np.clip(base, 0, 255).astype(np.uint8)
    for _ in range(60):
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            radius = int(rng.integers(2, max(3, width // 10)))
            cv2.circle(img, center, radius, color, -1, cv2.LINE_AA)
        else:
            size = (
                int(rng.integers(2, max(3, width // 8))),
                int(rng.integers(2, max(3, height // 8))),
            )
            end = (center[0] + size[0], center[1] + size[1])
            cv2.rectangle(img, center, end, color, -1, cv2.LINE_AA)
    for _ in range(120):
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (p1[0] + int(rng.integers(-80, 80)), p1[1] + int(rng.integers(-80, 80)))
        cv2.line(img, p1, p2, color, int(rng.integers(1, 3)), cv2.LINE_AA)
    for i in range(8):
        org = (int(rng.integers(0, max(1, width - 200))), int(rng.integers(1, height)))
        cv2.putText(img, f"LIVE {i}{rng.integers(100, 999)}", org, cv2.FONT_HERSHEY_SIMPLEX,
                    float(rng.uniform(0.6, 1.6)), (255, 255, 255), 2, cv2.LINE_AA)
    grain = rng.normal(0, 6, img.shape)
    return np.clip(img.astype(np.float32) + grain, 0, 255).astype(np.uint8)


def _pose(
    scene: np.ndarray, shift: tuple[float, float], subject: tuple[float, float]
) -> np.ndarray:
    """The scene seen after a camera pan of `shift` pixels, with a subject at `subject`."""
    h, w = scene.shape[:2]
    matrix = np.float32([[1, 0, -shift[0]], [0, 1, -shift[1]]])
    view = cv2.warpAffine(scene, matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
    cx, cy = int(subject[0] * w), int(subject[1] * h)
    radius = w // 12
    cv2.circle(view, (cx, cy), radius, (230, 60, 40), -1, cv2.LINE_AA)
    cv2.circle(view, (cx - radius // 3, cy - radius // 3), radius // 4, (250, 240, 230), -1,
               cv2.LINE_AA)
    return view


def _video_frame(
    view: np.ndarray, rng: np.random.Generator, size: tuple[int, int] = VIDEO_SIZE
) -> np.ndarray:
    """What the video stream keeps of a view: smaller, softer, noisier."""
    small = cv2.resize(view, size, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 0.8)
    noisy = small.astype(np.float32) + rng.normal(0, 3.0, small.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def build_sample_library(
    library: Path,
    count: int = 3,
    seed: int = 7,
    video_size: tuple[int, int] = VIDEO_SIZE,
    scale: int = SCALE,
    first_number: int = 1201,
    report: Callable[[str], None] = lambda line: None,
) -> list[dict[str, Path]]:
    """Write `count` reselected Live Photos under `library/2026/` and return their paths."""
    rng = np.random.default_rng(seed)
    width, height = video_size[0] * scale, video_size[1] * scale
    written = []
    for index in range(count):
        scene = make_scene(rng, width, height)
        pan = rng.uniform(-4, 4, 2) * scale
        poses = []
        for f in range(FRAMES):
            shift = (pan[0] * f, pan[1] * f)
            subject = (0.3 + 0.03 * f, 0.55 - 0.01 * f)
            poses.append(_pose(scene, shift, subject))
        frames = [_video_frame(view, rng, video_size) for view in poses]
        name = f"IMG_{first_number + index}"
        written.append(
            write_reselected_live_photo(
                library / "2026", name, frames, FPS, T0_INDEX,
                T1_INDEX, reference=poses[T0_INDEX], scale=scale,
            )
        )
        report(f"  2026/{name}: key photo {width}×{height}, video {video_size[0]}×"
               f"{video_size[1]}, reselected from {T0_INDEX / FPS:.1f} s to {T1_INDEX / FPS:.1f} s")
    return written


@dataclass
class DemoResult:
    library: Path
    state_dir: Path
    config: Path
    outputs: list[Path]
    comparisons: list[Path]
    status: dict


def _toml_string(value: object) -> str:
    """A TOML basic string: JSON's escapes are TOML's (non-ASCII written as is)."""
    return json.dumps(str(value), ensure_ascii=False)


def write_config(directory: Path, library: Path, state_dir: Path) -> Path:
    """`directory/lmd.toml`: the demo's settings, for every lmd command run in `directory`."""
    from daemon.output import atomic_write_bytes

    config = directory / "lmd.toml"
    text = (
        "# Written by `lmd demo`: lmd commands run in this directory use it (./lmd.toml).\n"
        f"library = {_toml_string(library)}\n"
        f"state_dir = {_toml_string(state_dir)}\n\n"
        "[restorer]\nname = \"guided\"  # CPU; \"livemoments\" needs a GPU and its weights\n\n"
        "[watcher]\nmode = \"off\"\n"
    )
    atomic_write_bytes(config, text.encode("utf-8"), create_dirs=True)
    return config


def run_demo(
    directory: Path,
    count: int = 3,
    seed: int = 7,
    video_size: tuple[int, int] = VIDEO_SIZE,
    scale: int = SCALE,
    *,
    report: Callable[[str], None] = lambda line: None,
    watch: Callable[[JobStore, int], AbstractContextManager[Any]] | None = None,
) -> DemoResult:
    """Write the config, build the sample library, scan it, restore every job with `guided`,
    write comparisons. `report` hears one line per step as it happens; `watch(store, jobs)`
    gives the worker's `watcher` (progress of the restorations), entered around them."""
    from daemon.library.media import load_still
    from daemon.output import write_image
    from daemon.scanner import run_scan
    from daemon.settings import load_settings
    from daemon.status import status_payload
    from daemon.store import open_store
    from daemon.worker import Worker

    directory = directory.resolve()
    library, state_dir = directory / "library", directory / "state"
    config = write_config(directory, library, state_dir)
    report(f"wrote {config}")
    report(f"building {count} sample Live Photo(s) in {library}")
    build_sample_library(library, count=count, seed=seed, video_size=video_size, scale=scale,
                         report=report)
    # the file just written, with its values also as overrides: LMD_ variables of the
    # caller's environment do not move the demo elsewhere
    settings = load_settings(config, library=library, state_dir=state_dir,
                             restorer={"name": "guided"}, watcher={"mode": "off"})
    store = open_store(settings.database_url)
    try:
        summary = run_scan(settings, library, store=store, trigger="demo")
        report(f"scanned: {summary.assets_found} Live Photos, {summary.enqueued} enqueued")
        waiting = sum(store.counts().get(s, 0) for s in ("pending", "deferred"))
        report(f"restoring {waiting} photo(s) with guided on the CPU")
        with (watch(store, waiting) if watch else nullcontext()) as watcher:
            Worker(settings, store, worker_id="demo", watcher=watcher).run_until_empty()
        outputs, comparisons = [], []
        compare_dir = directory / "compare"
        for job in sorted(store.list_jobs(state="succeeded", limit=1000), key=lambda j: j.id):
            asset = job.payload
            if not job.output_path:  # held for review: no published output
                continue
            out = Path(job.output_path)
            outputs.append(out)
            frame = load_still(Path(asset["target"])) if asset.get("target") else None
            if frame is None:
                continue
            panel = comparison_image(frame, load_still(out), load_still(Path(asset["reference"])))
            path = compare_dir / f"{Path(asset['key']).name}_compare.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_image(path, panel)
            comparisons.append(path)
            report(f"comparison: {path}")
        status = status_payload(store, settings)
    finally:
        store.close()
    return DemoResult(library, state_dir, config, outputs, comparisons, status)
