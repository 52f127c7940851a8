"""Training pairs on disk: one folder per pair set, a JSON manifest saying where each came from.

Layout of a pair set (written by `lmd train pairs`, read by `lmd train fit` and `lmd train eval`):

    DIR/manifest.json              format, kind ("video" | "library"), tile, seed, options, pairs
    DIR/pairs/<id>/hq.png          ground truth of the target frame, tile × tile
    DIR/pairs/<id>/lq.png          the target as the video shows it (video resolution)
    DIR/pairs/<id>/ref.png         the high-quality reference (the key photo's crop), tile × tile
    DIR/pairs/<id>/ref_lq.png      the reference as the video shows it (same size as lq.png)

The four images are exactly a restorer's inputs and expected output: `target = lq`,
`reference = ref`, `reference_lq = ref_lq`, and the result is compared with `hq`. Each pair's
manifest entry holds its provenance (source file, frames or times, crop positions, the
degradation's parameters, the alignment confidence for library pairs), its `group` (the clip or
Live Photo it was cut from) and its `split`: "train" for pairs fit learns from, "val" for pairs
it holds out to validate on (whole groups, so no crop of a validation clip or photo is trained
on), "apart" for pairs kept out of both (reselected Live Photos: the photos the model will be
asked to restore).

Images are 8-bit PNG (every source is 8-bit: decoded video and phone stills). The manifest is
written last, under a temporary name renamed into place, so a folder without one is an
interrupted write and is refused, never half read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core import hashing
from core.livemoments.atomic_file import replace_file

FORMAT = "lmd-training-pairs"
VERSION = 1
MANIFEST = "manifest.json"
PAIRS_DIR = "pairs"
ROLES = ("hq", "lq", "ref", "ref_lq")
SPLITS = ("train", "val", "apart")
MAX_PAIR_SIDE = 8192
"""Largest image side a pair may have: a damaged or hand-written manifest must not make fit
decode a gigapixel file."""


class PairSetError(ValueError):
    """A pair set that cannot be read or written; the message names the file and the reason."""


@dataclass(slots=True)
class PairImages:
    """One training pair as float32 H×W×3 RGB in [0, 1] (see the module docstring)."""

    hq: np.ndarray
    lq: np.ndarray
    ref: np.ndarray
    ref_lq: np.ndarray

    def check(self, tile: int) -> None:
        """Shapes a pair must have: hq and ref tile × tile, lq and ref_lq of one smaller size."""
        for role in ("hq", "ref"):
            shape = getattr(self, role).shape
            if shape != (tile, tile, 3):
                raise PairSetError(f"{role} is {shape}, expected ({tile}, {tile}, 3)")
        if self.lq.shape != self.ref_lq.shape or self.lq.ndim != 3 or self.lq.shape[2] != 3:
            raise PairSetError(f"lq {self.lq.shape} and ref_lq {self.ref_lq.shape} differ")
        if self.lq.shape[0] > tile or self.lq.shape[1] > tile:
            raise PairSetError(f"lq {self.lq.shape} is larger than the tile {tile}")


@dataclass(slots=True)
class PairRecord:
    """A pair's manifest entry."""

    id: str
    split: str
    source: dict[str, Any]
    degradation: dict[str, Any] | None = None
    alignment_confidence: float | None = None
    group: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "split": self.split,
            "group": self.group,
            "files": {role: f"{PAIRS_DIR}/{self.id}/{role}.png" for role in ROLES},
            "source": self.source,
            "degradation": self.degradation,
            "alignment_confidence": self.alignment_confidence,
        }


@dataclass(slots=True)
class PairSet:
    """A pair set read from disk: its manifest and where its files are."""

    root: Path
    kind: str
    tile: int
    seed: int | None
    options: dict[str, Any]
    records: list[PairRecord]
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def split(self, name: str) -> list[PairRecord]:
        return [r for r in self.records if r.split == name]

    def path(self, record: PairRecord, role: str) -> Path:
        return self.root / PAIRS_DIR / record.id / f"{role}.png"

    def load(self, record: PairRecord) -> PairImages:
        pair = PairImages(*(read_png(self.path(record, role)) for role in ROLES))
        try:
            pair.check(self.tile)
        except PairSetError as exc:
            raise PairSetError(f"{self.root / PAIRS_DIR / record.id}: {exc}") from None
        return pair


def _u8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def quantise(pair: PairImages) -> PairImages:
    """The pair as it will read back from its 8-bit PNG files (what fit and eval see)."""
    return PairImages(*(_u8(getattr(pair, r)).astype(np.float32) / 255.0 for r in ROLES))


def write_png(path: Path, image: np.ndarray) -> None:
    """An RGB image as 8-bit PNG, under a temporary name renamed into place."""
    bgr = cv2.cvtColor(np.ascontiguousarray(_u8(image)), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", bgr)
    if not ok:
        raise PairSetError(f"{path}: PNG encoding failed")
    replace_file(path, lambda tmp: tmp.write_bytes(data.tobytes()))


def read_png(path: Path) -> np.ndarray:
    """An 8-bit RGB PNG as float32 [0, 1]; anything else is a PairSetError naming the file."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise PairSetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.size < 8 or bytes(data[:8]) != b"\x89PNG\r\n\x1a\n":
        raise PairSetError(f"{path}: not a PNG file")
    # The header's size is checked before decoding, so a hostile file cannot claim gigapixels.
    width = int.from_bytes(bytes(data[16:20]), "big") if data.size >= 24 else 0
    height = int.from_bytes(bytes(data[20:24]), "big") if data.size >= 24 else 0
    if not (0 < width <= MAX_PAIR_SIDE and 0 < height <= MAX_PAIR_SIDE):
        raise PairSetError(
            f"{path}: PNG declares {width}×{height} pixels (at most {MAX_PAIR_SIDE} a side)"
        )
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise PairSetError(f"{path}: damaged PNG file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


class PairSetWriter:
    """Writes a pair set: `add` pair by pair, then `close` writes the manifest.

    Refuses a non-empty folder (a second run must not mix its pairs with an earlier set's).
    """

    def __init__(
        self,
        root: Path | str,
        *,
        kind: str,
        tile: int,
        seed: int | None,
        options: Mapping[str, Any],
    ) -> None:
        self.root = Path(root)
        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise PairSetError(f"{self.root}: exists and is not an empty folder")
        (self.root / PAIRS_DIR).mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.tile = tile
        self.seed = seed
        self.options = dict(options)
        self.records: list[PairRecord] = []
        self.skipped: list[dict[str, Any]] = []

    def add(
        self,
        pair: PairImages,
        *,
        split: str,
        source: dict[str, Any],
        group: str,
        degradation: dict[str, Any] | None = None,
        alignment_confidence: float | None = None,
    ) -> PairRecord:
        if split not in ("train", "apart"):
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        pair.check(self.tile)
        record = PairRecord(
            id=f"{len(self.records):06d}",
            split=split,
            source=source,
            degradation=degradation,
            alignment_confidence=alignment_confidence,
            group=group,
        )
        folder = self.root / PAIRS_DIR / record.id
        folder.mkdir()
        for role in ROLES:
            write_png(folder / f"{role}.png", getattr(pair, role))
        self.records.append(record)
        return record

    def skip(self, source: dict[str, Any], reason: str) -> None:
        """Record a source that gave no pair, and why (the manifest lists them)."""
        self.skipped.append({**source, "reason": reason})

    def close(self, val_fraction: float = 0.0) -> Path:
        """Hold out about `val_fraction` of the training pairs for validation (whole groups,
        chosen by the seed), then write the manifest."""
        train = [r for r in self.records if r.split == "train"]
        for index in pick_validation([r.group for r in train], val_fraction, self.seed or 0):
            train[index].split = "val"
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "tile": self.tile,
            "seed": self.seed,
            "options": self.options,
            "pairs": [r.to_json() for r in self.records],
            "skipped": self.skipped,
        }
        path = self.root / MANIFEST
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        replace_file(path, lambda tmp: tmp.write_text(text))
        return path


def open_pair_set(root: Path | str) -> PairSet:
    """Read and check a pair set's manifest (the images are read by `PairSet.load`)."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise PairSetError(
            f"{root}: no {MANIFEST} (not a pair set, or `lmd train pairs` was interrupted)"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PairSetError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PairSetError(f"{path}: not an lmd training-pair manifest")
    if data.get("version") != VERSION:
        raise PairSetError(f"{path}: manifest version {data.get('version')!r}, expected {VERSION}")
    tile = data.get("tile")
    if not isinstance(tile, int) or isinstance(tile, bool) or not 16 <= tile <= MAX_PAIR_SIDE:
        raise PairSetError(f"{path}: bad tile {tile!r}")
    entries = data.get("pairs")
    if not isinstance(entries, list):
        raise PairSetError(f"{path}: 'pairs' must be a list")
    return PairSet(
        root=root,
        kind=str(data.get("kind", "")),
        tile=tile,
        seed=data.get("seed"),
        options=dict(data.get("options") or {}),
        records=[_record(path, i, e) for i, e in enumerate(entries)],
        skipped=list(data.get("skipped") or []),
    )


def _record(path: Path, index: int, entry: Any) -> PairRecord:
    if not isinstance(entry, dict):
        raise PairSetError(f"{path}: pair {index} is not an object")
    pid, split = entry.get("id"), entry.get("split")
    # The id names a folder under pairs/: only plain names, never a path out of the set.
    if not isinstance(pid, str) or not pid or not pid.replace("-", "").replace("_", "").isalnum():
        raise PairSetError(f"{path}: pair {index} has a bad id {pid!r}")
    if split not in SPLITS:
        raise PairSetError(f"{path}: pair {pid} has split {split!r}, expected one of {SPLITS}")
    confidence = entry.get("alignment_confidence")
    return PairRecord(
        group=str(entry.get("group") or pid),
        id=pid,
        split=split,
        source=dict(entry.get("source") or {}),
        degradation=entry.get("degradation"),
        alignment_confidence=float(confidence) if confidence is not None else None,
    )


def pick_validation(groups: Sequence[str], fraction: float, seed: int) -> list[int]:
    """Indices of the items to hold out: whole groups, in an order fixed by the seed and the
    group names, until about `fraction` of the items are held out (at least one when the
    fraction is positive and there are two items or more; never all of them). With a single
    group, single items are held out instead (a lone clip still gets a validation split)."""
    n = len(groups)
    if fraction <= 0.0 or n < 2:
        return []
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must lie in [0, 1), got {fraction}")
    names = list(groups) if len(set(groups)) > 1 else [f"item-{i}" for i in range(n)]
    want = min(n - 1, max(1, round(fraction * n)))
    order = sorted(set(names), key=lambda g: hashing.digest_bytes(f"{seed}\0{g}".encode()))
    chosen: set[str] = set()
    count = 0
    for name in order:
        if count >= want:
            break
        size = names.count(name)
        if count + size > n - 1:
            continue
        chosen.add(name)
        count += size
    return [i for i, g in enumerate(names) if g in chosen]


def iter_pairs(sets: list[PairSet], split: str = "train") -> Iterator[tuple[PairSet, PairRecord]]:
    """Every (set, record) of `split` across several sets, in order."""
    for pair_set in sets:
        for record in pair_set.split(split):
            yield pair_set, record
