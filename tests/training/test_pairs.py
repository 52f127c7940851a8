"""Pairs: the temporal gap, the randomised documented degradation, determinism, the manifest,
flow alignment of library pairs, and pair sets that cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.degrade import LivePhotoDegradation
from core.degrade_random import DegradationRanges, sample_degradation
from core.images import resize
from core.livemoments.training.dataset import (
    PairSetError,
    open_pair_set,
    pick_validation,
    quantise,
    read_png,
)
from core.livemoments.training.pairs import LibraryPairOptions, library_pairs
from tests.training.conftest import lmd, panning_frames, texture


def test_video_pair_set_manifest_and_gap(video_pairs: Path) -> None:
    pair_set = open_pair_set(video_pairs)
    manifest = json.loads((video_pairs / "manifest.json").read_text())
    assert pair_set.kind == "video" and pair_set.tile == 64 and manifest["seed"] == 7
    assert manifest["options"]["interval"] == 5 and manifest["options"]["ranges"]["codecs"]
    assert len(pair_set.records) == 5  # frames 0..19, starts every 3rd frame up to 14
    assert {r.split for r in pair_set.records} == {"train", "val"}
    ranges = DegradationRanges()
    for record in pair_set.records:
        source = record.source
        assert source["clip"].endswith("pan.mp4")
        assert abs(source["frame_target"] - source["frame_reference"]) == 5
        d = record.degradation
        assert ranges.scale[0] <= d["scale"] <= ranges.scale[1]
        assert ranges.crf[0] <= d["crf"] <= ranges.crf[1] and d["codec"] in ranges.codecs
        pair = pair_set.load(record)
        assert pair.hq.shape == pair.ref.shape == (64, 64, 3)
        assert pair.lq.shape == pair.ref_lq.shape
        assert pair.lq.shape[0] == round(64 * d["scale"])
    # The reference crop follows the motion (PCR): the view pans 1 px a frame down and right,
    # so what the target shows at p, a reference 5 frames earlier shows at p + 5 (later: −5).
    checked = 0
    for record in pair_set.records:
        (y, x), (ry, rx) = record.source["crop"], record.source["reference_crop"]
        ahead = int(np.sign(record.source["frame_target"] - record.source["frame_reference"]))
        if all(0 <= v + 5 * ahead <= 96 - 64 for v in (y, x)):  # not clamped at the edge
            assert abs((ry - y) - 5 * ahead) <= 1 and abs((rx - x) - 5 * ahead) <= 1, record
            checked += 1
    assert checked >= 2


def test_the_manifest_reproduces_each_lq_frame(video_pairs: Path) -> None:
    """Provenance is complete: the recorded degradation and noise seed give back lq."""
    pair_set = open_pair_set(video_pairs)
    for record in pair_set.records[:2]:
        pair = pair_set.load(record)
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in record.degradation.items()}
        again = LivePhotoDegradation(**params).apply(pair.hq, seed=record.source["noise_seeds"][0])
        # hq was stored as 8-bit PNG before being degraded from its float original, so the
        # codec sees inputs within half an 8-bit step: most pixels land on the same 8-bit
        # value, a few on a neighbour.
        diff = np.abs(quantise_one(again) - pair.lq) * 255
        assert np.median(diff) == 0 and diff.max() <= 24, diff.max()


def quantise_one(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8).astype(np.float32) / 255


def test_pairs_are_deterministic_under_a_seed(clip: Path, video_pairs: Path,
                                              tmp_path: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes()
                for p in sorted(root.rglob("*")) if p.is_file()}

    args = ["train", "pairs", "--from-video", str(clip), "--tile", "64", "--stride", "3",
            "--val-fraction", "0.25"]
    assert lmd(*args, "-o", str(tmp_path / "same"), "--seed", "7")[0] == 0
    assert files(tmp_path / "same") == files(video_pairs)
    assert lmd(*args, "-o", str(tmp_path / "other"), "--seed", "8")[0] == 0
    assert files(tmp_path / "other") != files(video_pairs)
    # A second run into a folder that is not empty is refused, and writes nothing.
    before = files(tmp_path / "same")
    assert lmd(*args, "-o", str(tmp_path / "same"), "--seed", "9")[0] == 1
    assert files(tmp_path / "same") == before


def test_sample_degradation_stays_in_its_documented_ranges() -> None:
    ranges = DegradationRanges()
    rng = np.random.default_rng(0)
    drawn = [sample_degradation(rng, ranges) for _ in range(200)]
    for name in ("scale", "blur_sigma", "shot_noise", "read_noise", "crf"):
        values = [getattr(d, name) for d in drawn]
        low, high = getattr(ranges, name)
        assert low <= min(values) and max(values) <= high, name
        assert max(values) - min(values) > 0.8 * (high - low), name  # really randomised
    assert {d.codec for d in drawn} == set(ranges.codecs)
    again = [sample_degradation(np.random.default_rng(0), ranges) for _ in range(1)]
    assert again[0] == drawn[0]
    with pytest.raises(ValueError):
        DegradationRanges(scale=(0.6, 0.4))


def test_library_pairs_are_aligned_by_flow() -> None:
    """A key photo and a video frame that is the photo at half size moved by (3, −2) frame px:
    the aligned LQ matches the photo crop's own downscale, and misalignment would not."""
    photo = texture(160, 200, seed=3).astype(np.float32) / 255
    big = texture(200, 240, seed=3).astype(np.float32) / 255
    big[:160, :200] = photo
    shifted = np.roll(big, (6, -4), axis=(0, 1))  # 6, -4 photo px = 3, -2 frame px
    frame = resize(shifted[:160, :200], 80, 100, interpolation="area")
    options = LibraryPairOptions(tile=64, crops=3, max_shift=8, min_confidence=0.5, seed=1)
    pairs, reasons = library_pairs(photo, frame, options)
    assert len(pairs) + len(reasons) == 3 and pairs
    for built in pairs:
        images = built.images
        assert images.lq.shape == (32, 32, 3) and built.alignment_confidence > 0.5
        expected = resize(images.hq, 32, 32, interpolation="area")
        aligned = np.abs(images.lq - expected)[2:-2, 2:-2].mean()
        unaligned = np.abs(resize(frame, 80, 100)[:32, :32] - expected).mean()
        y, x = built.source["crop"]
        naive = frame[y // 2 : y // 2 + 32, x // 2 : x // 2 + 32]
        assert aligned < 0.02 and aligned < 0.5 * np.abs(naive - expected)[2:-2, 2:-2].mean()
        assert unaligned > aligned
        ry, rx = built.source["reference_crop"]
        assert abs(ry - y) <= 8 and abs(rx - x) <= 8
        np.testing.assert_array_equal(images.ref, photo[ry : ry + 64, rx : rx + 64])


def test_library_pairs_skip_what_does_not_align() -> None:
    photo = texture(128, 128, seed=4).astype(np.float32) / 255
    unrelated = texture(64, 64, seed=99).astype(np.float32) / 255
    options = LibraryPairOptions(tile=64, crops=2, min_confidence=0.9)
    pairs, reasons = library_pairs(photo, unrelated, options)
    assert not pairs and len(reasons) == 2 and "confidence" in reasons[0]
    with pytest.raises(ValueError, match="aspect"):
        library_pairs(photo, unrelated[:, :40], options)
    with pytest.raises(ValueError, match="smaller"):
        library_pairs(photo[:60], unrelated, options)


def test_pick_validation_holds_out_whole_groups() -> None:
    groups = ["a"] * 4 + ["b"] * 3 + ["c"] * 3
    chosen = pick_validation(groups, 0.3, seed=0)
    held = {groups[i] for i in chosen}
    assert len(held) == 1 and len(chosen) == groups.count(held.pop())
    assert pick_validation(groups, 0.3, seed=0) == chosen
    assert pick_validation(["x"] * 5, 0.4, seed=0) and len(pick_validation(["x"] * 5, 0.4, 0)) == 2
    assert pick_validation(["x"], 0.5, seed=0) == []
    assert len(pick_validation(["a", "b"], 0.99, seed=0)) == 1  # never all of them


def test_bad_pair_sets_are_named_errors(video_pairs: Path, tmp_path: Path) -> None:
    import shutil

    with pytest.raises(PairSetError, match=r"no manifest\.json"):
        open_pair_set(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(video_pairs, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["pairs"][0]["id"] = "../../etc"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PairSetError, match="bad id"):
        open_pair_set(broken)
    manifest["pairs"][0]["id"] = "000000"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    pair_set = open_pair_set(broken)
    png = broken / "pairs" / "000000" / "lq.png"
    data = bytearray(png.read_bytes())
    data[16:24] = (100000).to_bytes(4, "big") * 2  # the header claims 100000² pixels
    png.write_bytes(bytes(data))
    with pytest.raises(PairSetError, match="declares"):
        pair_set.load(pair_set.records[0])
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(PairSetError):
        read_png(png)
    (broken / "pairs" / "000000" / "hq.png").unlink()
    with pytest.raises(PairSetError, match="cannot read"):
        pair_set.load(pair_set.records[0])


def test_quantise_matches_what_png_gives_back(tmp_path: Path) -> None:
    from core.livemoments.training.dataset import PairImages, write_png

    frames = panning_frames(n=1, size=16)
    image = frames[0].astype(np.float32) / 255 + 0.001
    write_png(tmp_path / "x.png", image)
    pair = quantise(PairImages(image, image, image, image))
    np.testing.assert_array_equal(read_png(tmp_path / "x.png"), pair.hq)
