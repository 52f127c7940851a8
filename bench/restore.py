"""Benchmark: guided restoration vs single-image baselines on SynLive-style pairs.

Usage:  .venv/bin/python bench/restore.py [FOLDER_OR_IMAGE ...] [--variants N] [--limit N]
        [--methods bicubic,sharpen,guided] [--size 4032x3024]

Pairs are built from real high-quality photos (the HEIC stills in ../shared/fixtures/real/
when present, plus any folder or image given): the reference is the photo; the ground truth
is the photo moved by a small camera homography with a separately moving elliptical subject;
the reselected frame is that ground truth degraded by `core.degrade.LivePhotoDegradation`
(down to video resolution 1920 px long side, blur, sensor noise, H.264). Every method
restores the frame to the reference's size, and we print PSNR-Y / SSIM-Y against the ground
truth, the wall time and the process's peak RSS during the call (and its growth over the
call's starting RSS). Photos are resized to --size (default 12 MP) so timings are comparable.
Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import core  # noqa: E402
from core.api import RestoreRequest  # noqa: E402
from core.degrade import LivePhotoDegradation  # noqa: E402
from core.memory import PeakMemory, current_rss_bytes  # noqa: E402
from core.metrics import psnr_y, ssim_y  # noqa: E402

FIXTURES = ROOT / ".." / "shared" / "fixtures" / "real"
IMAGE_SUFFIXES = {".heic", ".heif", ".jpg", ".jpeg", ".png", ".tif", ".tiff"}
VIDEO_LONG_SIDE = 1920


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


def find_photos(extra: list[str]) -> list[Path]:
    paths: list[Path] = []
    if FIXTURES.is_dir():
        paths += sorted(p for p in FIXTURES.iterdir() if p.suffix.lower() in {".heic", ".heif"})
    for item in extra:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            paths.append(p)
    return paths


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


def synthesise(name: str, photo: np.ndarray, seed: int) -> Pair:
    """Camera homography + a separately moving subject, then the Live Photo degradation."""
    rng = np.random.default_rng(seed)
    h, w = photo.shape[:2]
    # Camera motion: rotation ±1°, scale ±1 %, translation ±1.2 % of the size, mild keystone.
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
    homography = affine @ keystone
    truth = cv2.warpPerspective(
        photo, homography, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )
    # Subject: an ellipse of the scene moved by ~3 % of the size and turned a few degrees.
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
    truth = np.clip(truth * (1 - alpha) + moved * alpha, 0, 1).astype(np.float32)
    del moved, alpha
    vh, vw = (
        (round(h * VIDEO_LONG_SIDE / w), VIDEO_LONG_SIDE)
        if w >= h
        else (VIDEO_LONG_SIDE, round(w * VIDEO_LONG_SIDE / h))
    )
    frame = LivePhotoDegradation(size=(vh, vw)).apply(truth, seed=seed)
    return Pair(name=name, reference=photo, frame=frame, truth=truth)


def run_method(method: str, pair: Pair) -> dict[str, float]:
    request = RestoreRequest(target=pair.frame, reference=pair.reference, restorer=method)
    start_rss = current_rss_bytes()
    started = time.perf_counter()
    with PeakMemory() as peak:
        result = core.restore(request)
    seconds = time.perf_counter() - started
    return {
        "psnr": psnr_y(result.image, pair.truth),
        "ssim": ssim_y(result.image, pair.truth),
        "seconds": seconds,
        "peak_gb": peak.peak_bytes / 1e9,
        "delta_gb": (peak.peak_bytes - start_rss) / 1e9,
        "transfer": float(result.diagnostics.extra.get("transfer_fraction", 0.0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", help="extra photos or folders")
    parser.add_argument("--variants", type=int, default=1, help="motions per photo")
    parser.add_argument("--limit", type=int, default=0, help="at most this many photos")
    parser.add_argument("--methods", default="bicubic,sharpen,guided")
    parser.add_argument("--size", default="4032x3024", help="reference size, long x short")
    args = parser.parse_args(argv)
    long_side, short_side = (int(v) for v in args.size.lower().split("x"))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    photos = find_photos(args.inputs)
    if args.limit:
        photos = photos[: args.limit]
    if not photos:
        print("no photos found (../shared/fixtures/real/ absent and none given)")
        return 1

    rows: list[tuple[str, str, dict[str, float]]] = []
    print(
        f"{'image':<44} {'method':<8} {'PSNR-Y':>7} {'SSIM-Y':>7} {'time s':>7} "
        f"{'peak GB':>8} {'+GB':>6}"
    )
    for path in photos:
        photo = fit_size(load_photo(path), long_side, short_side)
        for variant in range(args.variants):
            pair = synthesise(f"{path.stem}#{variant}", photo, seed=1000 + variant)
            for method in methods:
                stats = run_method(method, pair)
                rows.append((pair.name, method, stats))
                print(
                    f"{pair.name:<44} {method:<8} {stats['psnr']:7.2f} {stats['ssim']:7.4f} "
                    f"{stats['seconds']:7.2f} {stats['peak_gb']:8.2f} {stats['delta_gb']:6.2f}",
                    flush=True,
                )
            del pair
    print()
    print(f"{'average':<44} {'method':<8} {'PSNR-Y':>7} {'SSIM-Y':>7} {'time s':>7} {'peak GB':>8}")
    for method in methods:
        sel = [r[2] for r in rows if r[1] == method]
        print(
            f"{'':<44} {method:<8} {np.mean([s['psnr'] for s in sel]):7.2f} "
            f"{np.mean([s['ssim'] for s in sel]):7.4f} {np.mean([s['seconds'] for s in sel]):7.2f} "
            f"{max(s['peak_gb'] for s in sel):8.2f}"
        )
    if {"bicubic", "guided"} <= set(methods):
        gains = []
        for name in dict.fromkeys(r[0] for r in rows):
            by = {r[1]: r[2] for r in rows if r[0] == name}
            gains.append(by["guided"]["psnr"] - by["bicubic"]["psnr"])
        print(
            f"\nguided − bicubic PSNR-Y: mean {np.mean(gains):+.2f} dB, worst {min(gains):+.2f} dB"
        )
    if {"sharpen", "guided"} <= set(methods):
        gains = []
        for name in dict.fromkeys(r[0] for r in rows):
            by = {r[1]: r[2] for r in rows if r[0] == name}
            gains.append(by["guided"]["psnr"] - by["sharpen"]["psnr"])
        print(f"guided − single-image PSNR-Y: mean {np.mean(gains):+.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
