"""Training pairs from files: clips and a photo library, read only, handed to `core` as arrays.

`core.livemoments.training` builds pairs from arrays and never reads a video or walks a library
(core does not import the daemon); this module does the reading, with the daemon's own readers:
`daemon.library.media` decodes clips and stills (orientation applied, decompression bombs
refused) and `daemon.library.discover` finds Live Photos and their key times as a scan does.

The library is only read: the output folder may not lie inside it, and nothing here opens a
library file for writing. Reselected Live Photos give pairs too (their video frame at T0 still
shows the key photo's instant), but those pairs are kept apart (split "apart"): those are the
photos the model will be asked to restore, so they must not be what it learned on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.livemoments.training.dataset import PairSetWriter
from core.livemoments.training.pairs import (
    LibraryPairOptions,
    VideoPairOptions,
    library_pairs,
    video_pairs,
)
from daemon.files.errors import UnreadableFile
from daemon.library import media
from daemon.library.asset import LiveAsset
from daemon.library.discover import discover

Progress = Callable[[str], None]


@dataclass(slots=True)
class PairsSummary:
    """What a pairs run wrote and skipped."""

    directory: Path
    pairs: int = 0
    by_split: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def count(self, split: str) -> None:
        self.pairs += 1
        self.by_split[split] = self.by_split.get(split, 0) + 1


def clip_frames(path: Path) -> Iterator[np.ndarray]:
    """A clip's frames in order, upright RGB uint8 (as `media.decode_frame_at` turns them)."""
    for _time, frame in media.iter_frames(path):
        rgb = frame.to_ndarray(format="rgb24")  # type: ignore[attr-defined]
        yield media._upright(rgb, media._quarter_turns(frame))


def video_pair_set(
    clips: Sequence[Path],
    out: Path,
    options: VideoPairOptions,
    val_fraction: float = 0.1,
    progress: Progress | None = None,
) -> PairsSummary:
    """Pairs from every clip into the new pair set `out` (one group per clip)."""
    writer = PairSetWriter(
        out, kind="video", tile=options.tile, seed=options.seed,
        options={**options.to_json(), "val_fraction": val_fraction},
    )
    summary = PairsSummary(out)
    for index, clip in enumerate(clips):
        source = {"clip": str(clip)}
        before = summary.pairs
        try:
            for built in video_pairs(clip_frames(clip), options, clip_index=index):
                writer.add(built.images, split="train", group=str(clip),
                           source={**source, **built.source}, degradation=built.degradation)
                summary.count("train")
        except (UnreadableFile, ValueError) as exc:
            writer.skip(source, str(exc))
        else:
            if summary.pairs == before:
                writer.skip(source, f"fewer than {options.interval + 1} frames")
        if progress is not None:
            progress(f"{clip}: {summary.pairs - before} pairs")
    return _closed(writer, summary, val_fraction)


def _closed(writer: PairSetWriter, summary: PairsSummary, val_fraction: float) -> PairsSummary:
    """Close the pair set, then summarise it as closed: closing moves whole groups from train to
    val, so the counts by split are taken from the records, not from what was added."""
    writer.close(val_fraction)
    summary.skipped = writer.skipped
    counts: dict[str, int] = {}
    for record in writer.records:
        counts[record.split] = counts.get(record.split, 0) + 1
    summary.by_split = counts
    return summary


def check_outside(out: Path, library: Path) -> None:
    """The output folder may not be the library or lie inside it (the library is never written)."""
    real_out = Path(os.path.realpath(out))
    real_lib = Path(os.path.realpath(library))
    if real_out == real_lib or real_lib in real_out.parents:
        raise ValueError(f"{out} lies inside the library {library}; write the pairs elsewhere")


def library_pair_set(
    library: Path,
    out: Path,
    options: LibraryPairOptions,
    val_fraction: float = 0.1,
    progress: Progress | None = None,
) -> PairsSummary:
    """Real pairs from every Live Photo under `library` into the new pair set `out`."""
    check_outside(out, library)
    if not library.is_dir():
        raise ValueError(f"{library}: not a directory")
    writer = PairSetWriter(
        out, kind="library", tile=options.tile, seed=options.seed,
        options={**options.to_json(), "val_fraction": val_fraction, "library": str(library)},
    )
    summary = PairsSummary(out)
    for index, found in enumerate(discover(library)):
        if not isinstance(found, LiveAsset):
            writer.skip({"path": str(found.path)}, found.reason)
            continue
        source = _asset_source(found, library)
        try:
            built, reasons = _asset_pairs(found, options, index)
        except (UnreadableFile, ValueError) as exc:
            writer.skip(source, str(exc))
            continue
        split = "apart" if found.reselected else "train"
        for pair in built:
            writer.add(pair.images, split=split, group=found.key,
                       source={**source, **pair.source},
                       alignment_confidence=pair.alignment_confidence)
            summary.count(split)
        for reason in reasons:
            writer.skip(source, reason)
        if progress is not None:
            progress(f"{found.key}: {len(built)} pairs ({split})")
    return _closed(writer, summary, val_fraction)


def _asset_source(asset: LiveAsset, library: Path) -> dict[str, Any]:
    def rel(path: Path | None) -> str | None:
        if path is None:
            return None
        try:
            return path.relative_to(library).as_posix()
        except ValueError:
            return str(path)

    return {
        "library_key": asset.key,
        "platform": asset.platform.value,
        "reference": rel(asset.reference),
        "video": rel(asset.video),
        "t0": asset.t0,
        "reselected": asset.reselected,
    }


def _asset_pairs(asset: LiveAsset, options: LibraryPairOptions, index: int) -> tuple[list, list]:
    if asset.video is None or asset.t0 is None:
        raise ValueError("no video frame at the key time (T0)")
    key_photo = media.load_still(asset.reference, dtype=np.uint8)
    frame = media.decode_frame_at(
        asset.video, asset.t0, offset=asset.video_offset, length=asset.video_length
    )
    return library_pairs(key_photo, frame, options, photo_index=index)
