"""Which photos the image and clip benchmarks run on: the real phone HEICs in
`../shared/fixtures/real/` (read in place, never copied), then whatever photos or folders the
command line adds. One home, so `bench/restore.py` and `bench/video.py` measure the same set."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / ".." / "shared" / "fixtures" / "real"
IMAGE_SUFFIXES = frozenset({".heic", ".heif", ".jpg", ".jpeg", ".png", ".tif", ".tiff"})


def find_photos(extra: list[str], suffixes: frozenset[str] = IMAGE_SUFFIXES) -> list[Path]:
    """The fixtures' HEICs, then each of `extra`: a file as given, a folder's photos (those with
    one of `suffixes`) in name order."""
    paths: list[Path] = []
    if FIXTURES.is_dir():
        paths += sorted(p for p in FIXTURES.iterdir() if p.suffix.lower() in {".heic", ".heif"})
    for item in extra:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in suffixes)
        elif p.is_file():
            paths.append(p)
    return paths
