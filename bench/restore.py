"""Benchmark: guided restoration vs single-image baselines on SynLive-style pairs, and memory.

Usage:  .venv/bin/python bench/restore.py [FOLDER_OR_IMAGE ...] [--variants N] [--limit N]
        [--methods bicubic,sharpen,guided] [--size 4032x3024] [--memory 12,108|none]

Pairs are built from real high-quality photos (the HEIC stills in ../shared/fixtures/real/
when present, plus any folder or image given): the reference is the photo; the ground truth
is the photo moved by a small camera homography plus a subject that moved on its own, and the
reselected frame is that ground truth degraded by `core.degrade.LivePhotoDegradation` (down to
video resolution 1920 px long side, blur, sensor noise, H.264). Two kinds of subject motion:

- `subject`: an ellipse of the scene moved by 3 % of the size and turned a few degrees (soft
  edge); the figures of earlier runs ("+4.41 dB over bicubic") are on these pairs;
- `pasted`: a hard-edged patch of the photo pasted 6 % away, and the place it left filled with
  another part of the photo, so the frame shows both a subject where the reference has
  background and background the reference never saw (where ghosts come from).

Every method restores the frame to the reference's size; we print PSNR-Y / SSIM-Y against the
ground truth, the wall time, the process's peak RSS during the call (and its growth over the
call's starting RSS), and for `guided` the PSNR-Y gain over bicubic of its worst 64-px block
(target: no block under −0.3 dB) and where that block is. Photos are resized to --size
(default 12 MP) so timings are comparable.

`--memory` then measures what a user sees: `lmd restore`'s work (decode the reference and the
frame, restore with guided, encode the result) in a fresh process per size, from a JPEG
reference of 12 MP (4032×3024) and of 108 MP (12000×9000, the photo upscaled) with a
1920×1440 frame, and prints each process's peak RSS against the targets (≤ 1.2 GB, ≤ 2.5 GB).
Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import inspect
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import core  # noqa: E402
from bench.photos import find_photos  # noqa: E402
from core.api import RestoreRequest  # noqa: E402
from core.degrade import LivePhotoDegradation  # noqa: E402
from core.memory import PeakMemory, current_rss_bytes, peak_rss_bytes  # noqa: E402
from core.metrics import block_psnr_gain, psnr_y, ssim_y  # noqa: E402

VIDEO_LONG_SIDE = 1920
KINDS = ("subject", "pasted")
MEMORY_SIZES = {12: (3024, 4032), 108: (9000, 12000)}
MEMORY_TARGET_GB = {12: 1.2, 108: 2.5}
BLOCK = 64


@dataclass
class Pair:
    name: str
    reference: np.ndarray
    frame: np.ndarray
    truth: np.ndarray


def load_photo(path: Path) -> np.ndarray:
    """RGB float32, EXIF orientation applied (HEIC through pillow-heif)."""
    try:
        from daemon.library.media import load_still

        return load_still(path)
    except ImportError:  # pragma: no cover - only when the daemon package is absent
        import pillow_heif
        from PIL import Image, ImageOps

        pillow_heif.register_heif_opener()
        with Image.open(path) as img:
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"), np.float32) / 255.0


def fit_size(photo: np.ndarray, long_side: int, short_side: int) -> np.ndarray:
    """Resize/crop to long_side×short_side in the photo's own orientation."""
    h, w = photo.shape[:2]
    th, tw = (short_side, long_side) if w >= h else (long_side, short_side)
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(photo, (nw, nh), interpolation=interp)
    y, x = (nh - th) // 2, (nw - tw) // 2
    return np.ascontiguousarray(resized[y : y + th, x : x + tw])


def camera_motion(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo seen by a camera turned ±1°, scaled ±1 %, moved ±1.2 %, mildly keystoned."""
    h, w = photo.shape[:2]
    angle = math.radians(rng.uniform(-1.0, 1.0))
    scale = 1.0 + rng.uniform(-0.01, 0.01)
    tx, ty = rng.uniform(-0.012, 0.012) * w, rng.uniform(-0.012, 0.012) * h
    cx, cy = w / 2.0, h / 2.0
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    affine = np.array(
        [[c, -s, cx - c * cx + s * cy + tx], [s, c, cy - s * cx - c * cy + ty], [0, 0, 1]]
    )
    keystone = np.eye(3)
    keystone[2, 0], keystone[2, 1] = rng.uniform(-2e-6, 2e-6), rng.uniform(-2e-6, 2e-6)
    return cv2.warpPerspective(
        photo, affine @ keystone, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )


def move_ellipse(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An ellipse of the scene moved by ~3 % of the size and turned a few degrees (soft edge)."""
    h, w = truth.shape[:2]
    ry, rx = rng.uniform(0.08, 0.14) * min(h, w), rng.uniform(0.08, 0.14) * min(h, w)
    sy, sx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    dy, dx = rng.choice([-1, 1]) * 0.03 * h, rng.choice([-1, 1]) * 0.03 * w
    turn = rng.uniform(-5, 5)
    move = cv2.getRotationMatrix2D((sx, sy), turn, 1.0)
    move[:, 2] += (dx, dy)
    moved = cv2.warpAffine(
        truth, move, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )
    alpha = np.zeros((h, w), np.float32)
    cv2.ellipse(
        alpha, (round(sx + dx), round(sy + dy)), (round(rx), round(ry)), turn, 0, 360, 1.0, -1
    )
    alpha = cv2.GaussianBlur(alpha, (0, 0), 3.0)[:, :, None]
    return np.clip(truth * (1 - alpha) + moved * alpha, 0, 1).astype(np.float32)


def paste_moved_patch(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hard-edged patch pasted 6 % of the size away; the place it left shows other content."""
    h, w = truth.shape[:2]
    side = round(0.16 * min(h, w))
    dy, dx = (round(v) for v in rng.choice([-1, 1], 2) * 0.06 * np.array([h, w]))
    y0 = int(rng.integers(abs(dy), h - side - abs(dy)))
    x0 = int(rng.integers(abs(dx), w - side - abs(dx)))
    # Filler for the place the subject left: a patch from the opposite half of the photo.
    fy, fx = (y0 + h // 2) % (h - side), (x0 + w // 2) % (w - side)
    shape = np.zeros((side, side), np.float32)
    cv2.ellipse(shape, (side // 2, side // 2), (side // 2 - 2, side // 3), 30, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(shape, (0, 0), 1.0)[:, :, None]
    subject = truth[y0 : y0 + side, x0 : x0 + side].copy()
    filler = truth[fy : fy + side, fx : fx + side].copy()
    out = truth.copy()
    at = out[y0 : y0 + side, x0 : x0 + side]
    at[:] = at * (1 - alpha) + filler * alpha
    to = out[y0 + dy : y0 + dy + side, x0 + dx : x0 + dx + side]
    to[:] = to * (1 - alpha) + subject * alpha
    return out


def synthesise(name: str, photo: np.ndarray, seed: int, kind: str = "subject") -> Pair:
    """Camera motion + a subject that moved on its own (`kind`), then the Live Photo path."""
    rng = np.random.default_rng(seed)
    truth = camera_motion(photo, rng)
    truth = move_ellipse(truth, rng) if kind == "subject" else paste_moved_patch(truth, rng)
    h, w = photo.shape[:2]
    vh, vw = (
        (round(h * VIDEO_LONG_SIDE / w), VIDEO_LONG_SIDE)
        if w >= h
        else (VIDEO_LONG_SIDE, round(w * VIDEO_LONG_SIDE / h))
    )
    frame = LivePhotoDegradation(size=(vh, vw)).apply(truth, seed=seed)
    return Pair(name=f"{name}/{kind}", reference=photo, frame=frame, truth=truth)


def run_method(method: str, pair: Pair) -> tuple[dict[str, float], np.ndarray]:
    request = RestoreRequest(target=pair.frame, reference=pair.reference, restorer=method)
    start_rss = current_rss_bytes()
    started = time.perf_counter()
    with PeakMemory() as peak:
        result = core.restore(request)
    seconds = time.perf_counter() - started
    image = result.image
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    stats = {
        "psnr": psnr_y(image, pair.truth),
        "ssim": ssim_y(image, pair.truth),
        "seconds": seconds,
        "peak_gb": peak.peak_bytes / 1e9,
        "delta_gb": (peak.peak_bytes - start_rss) / 1e9,
        "transfer": float(result.diagnostics.extra.get("transfer_fraction", 0.0)),
    }
    return stats, image


def quality_table(photos: list[Path], args: argparse.Namespace, methods: list[str]) -> Pair:
    long_side, short_side = (int(v) for v in args.size.lower().split("x"))
    rows: list[tuple[str, str, dict[str, float]]] = []
    print(
        f"{'image':<46} {'method':<8} {'PSNR-Y':>7} {'SSIM-Y':>7} {'time s':>7} "
        f"{'peak GB':>8} {'+GB':>6} {'worst blk dB':>12} {'at (y, x)':>12}"
    )
    first: Pair | None = None
    for path in photos:
        photo = fit_size(load_photo(path), long_side, short_side)
        for variant in range(args.variants):
            for kind in KINDS:
                pair = synthesise(f"{path.stem}#{variant}", photo, seed=1000 + variant, kind=kind)
                first = first or pair
                images: dict[str, np.ndarray] = {}
                for method in methods:
                    stats, images[method] = run_method(method, pair)
                    worst = ""
                    if method == "guided" and "bicubic" in images:
                        gains = block_psnr_gain(images[method], images["bicubic"], pair.truth)
                        at = [int(v) for v in np.unravel_index(int(np.argmin(gains)), gains.shape)]
                        stats["worst_block"] = float(gains.min())
                        worst = f"{gains.min():+12.2f} {(at[0] * BLOCK, at[1] * BLOCK)!s:>12}"
                    rows.append((pair.name, method, stats))
                    print(
                        f"{pair.name:<46} {method:<8} {stats['psnr']:7.2f} {stats['ssim']:7.4f} "
                        f"{stats['seconds']:7.2f} {stats['peak_gb']:8.2f} "
                        f"{stats['delta_gb']:6.2f} {worst}",
                        flush=True,
                    )
                del images
    print()
    print(f"{'average':<46} {'method':<8} {'PSNR-Y':>7} {'SSIM-Y':>7} {'time s':>7} {'peak GB':>8}")
    for method in methods:
        sel = [r[2] for r in rows if r[1] == method]
        print(
            f"{'':<46} {method:<8} {np.mean([s['psnr'] for s in sel]):7.2f} "
            f"{np.mean([s['ssim'] for s in sel]):7.4f} {np.mean([s['seconds'] for s in sel]):7.2f} "
            f"{max(s['peak_gb'] for s in sel):8.2f}"
        )
    for other in ("bicubic", "sharpen"):
        if {other, "guided"} <= set(methods):
            print()
            for kind in (*KINDS, "all"):
                gains, worst = [], []
                for name in dict.fromkeys(r[0] for r in rows):
                    if kind != "all" and not name.endswith("/" + kind):
                        continue
                    by = {r[1]: r[2] for r in rows if r[0] == name}
                    gains.append(by["guided"]["psnr"] - by[other]["psnr"])
                    worst.append(by["guided"].get("worst_block", math.nan))
                line = (
                    f"guided − {other} PSNR-Y ({kind}, {len(gains)} pairs): "
                    f"mean {np.mean(gains):+.2f} dB, worst image {min(gains):+.2f} dB"
                )
                if other == "bicubic":
                    line += f", worst 64-px block {np.nanmin(worst):+.2f} dB (target ≥ −0.30)"
                print(line)
    assert first is not None
    return first


def _save_jpeg(path: Path, rgb_u8: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(rgb_u8).save(path, quality=92)


def memory_table(pair: Pair, sizes: list[int]) -> None:
    """Peak RSS of a fresh process doing `lmd restore`'s work, per reference size."""
    print()
    print(f"{'lmd restore, fresh process':<40} {'time s':>7} {'peak RSS GB':>12} {'target':>8}")
    with tempfile.TemporaryDirectory(prefix="lmd-bench-") as tmp:
        frame_path = Path(tmp) / "frame.png"
        small = cv2.resize(pair.frame, (1920, 1440), interpolation=cv2.INTER_AREA)
        _save_jpeg(frame_path, (np.clip(small, 0, 1) * 255 + 0.5).astype(np.uint8))
        base = (np.clip(fit_size(pair.reference, 4032, 3024), 0, 1) * 255 + 0.5).astype(np.uint8)
        for mp in sizes:
            h, w = MEMORY_SIZES[mp]
            ref_path = Path(tmp) / f"reference-{mp}mp.jpg"
            big = base if (h, w) == base.shape[:2] else cv2.resize(base, (w, h), cv2.INTER_CUBIC)
            _save_jpeg(ref_path, big)
            del big
            out = Path(tmp) / f"out-{mp}mp.jpg"
            cmd = [sys.executable, __file__, "--child", str(ref_path), str(frame_path), str(out)]
            started = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            # The child reports its own high-water mark: the rusage of a child also counts the
            # parent's pages it shared between fork and exec.
            peaks = [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("PEAK ")]
            peak = int(peaks[-1]) / 1e9 if peaks else math.nan
            verdict = "ok" if peak <= MEMORY_TARGET_GB[mp] else "OVER"
            label = f"{mp} MP ({w}×{h}) with a 1920×1440 frame"
            if proc.returncode != 0:
                label += f" [exit {proc.returncode}]"
                print(proc.stderr[-2000:])
            print(
                f"{label:<40} {seconds:7.1f} {peak:12.2f} "
                f"{'≤ ' + str(MEMORY_TARGET_GB[mp]):>8} {verdict}",
                flush=True,
            )


def child_restore(reference: str, frame: str, output: str) -> int:
    """`lmd restore`'s work without the CLI: decode, restore with guided, encode."""
    from daemon.library.media import load_still
    from daemon.output import write_image

    # 8-bit pixels where load_still offers them (`dtype`), float32 as before where not.
    kw = {"dtype": np.uint8} if "dtype" in inspect.signature(load_still).parameters else {}
    ref, target = load_still(Path(reference), **kw), load_still(Path(frame), **kw)
    result = core.restore(RestoreRequest(target=target, reference=ref, restorer="guided"))
    write_image(Path(output), result.image, keep_live_identity=False)
    print(f"PEAK {peak_rss_bytes()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", help="extra photos or folders")
    parser.add_argument("--variants", type=int, default=1, help="motions per photo")
    parser.add_argument("--limit", type=int, default=0, help="at most this many photos")
    parser.add_argument("--methods", default="bicubic,sharpen,guided")
    parser.add_argument("--size", default="4032x3024", help="reference size, long x short")
    parser.add_argument("--memory", default="12,108", help="reference sizes in MP, or none")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_restore(*args.child)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    photos = find_photos(args.inputs)
    if args.limit:
        photos = photos[: args.limit]
    if not photos:
        print("no photos found (../shared/fixtures/real/ absent and none given)")
        return 1
    first = quality_table(photos, args, methods)
    sizes = [] if args.memory == "none" else [int(v) for v in args.memory.split(",")]
    if sizes:
        memory_table(first, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
