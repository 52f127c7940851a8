"""`lmd train pairs --from-library`: real pairs from a library's Live Photos, reselected ones
kept apart, alignment confidence stored, and the library never written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.livemoments.training.dataset import open_pair_set
from tests.training.conftest import FPS, lmd, panning_frames


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from daemon.library import synth

    root = tmp_path_factory.mktemp("library") / "DCIM"
    frames = panning_frames(n=16, size=72, step=1, seed=11)
    # A Live Photo left as shot (key photo = frame 4), and one whose key frame was moved.
    synth.write_reselected_live_photo(root / "100APPLE", "IMG_0001", frames, FPS, 4, 4,
                                      with_aae=False, with_edited=False, scale=2,
                                      still_format="jpeg")
    synth.write_reselected_live_photo(root / "100APPLE", "IMG_0002",
                                      panning_frames(n=16, size=72, step=1, seed=12), FPS, 3, 12,
                                      scale=2, still_format="jpeg")
    return root


def test_real_pairs_from_a_library(library: Path, tmp_path: Path) -> None:
    before = _snapshot(library)
    out = tmp_path / "mine"
    code, text = lmd("train", "pairs", "--from-library", str(library), "-o", str(out),
                     "--tile", "64", "--crops", "2", "--max-shift", "6", "--val-fraction", "0",
                     "--json")
    assert code == 0, text
    summary = json.loads(text)
    assert _snapshot(library) == before  # the library is only read
    pair_set = open_pair_set(out)
    assert pair_set.kind == "library"
    by_key = {}
    for record in pair_set.records:
        by_key.setdefault(record.source["library_key"], set()).add(record.split)
        assert record.alignment_confidence is not None and record.alignment_confidence >= 0.5
        assert record.source["t0"] is not None and record.source["video"].endswith(".MOV")
        assert record.group == record.source["library_key"]
        pair = pair_set.load(record)
        assert pair.hq.shape == (64, 64, 3) and pair.lq.shape == (32, 32, 3)
    assert len(by_key) == 2, by_key
    reselected = [k for k in by_key if "IMG_0002" in k]
    kept = [k for k in by_key if "IMG_0001" in k]
    assert by_key[reselected[0]] == {"apart"} and by_key[kept[0]] == {"train"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["library"] == str(library)
    assert summary["kind"] == "library" and summary["pairs"] == len(pair_set.records)
    assert summary["by_split"] == {
        split: sum(r.split == split for r in pair_set.records) for split in ("train", "apart")
    }


def test_the_output_may_not_lie_in_the_library(library: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(library)
    code, _ = lmd("train", "pairs", "--from-library", str(library), "-o",
                  str(library / "pairs"), "--tile", "64")
    assert code == 1 and "inside the library" in capsys.readouterr().err
    assert _snapshot(library) == before


def test_pairs_usage_errors(tmp_path: Path) -> None:
    assert lmd("train", "pairs", str(tmp_path), "-o", str(tmp_path / "x"))[0] == 2
    assert lmd("train", "pairs", "--from-video", "--from-library", str(tmp_path),
               "-o", str(tmp_path / "x"))[0] == 2
    assert lmd("train", "pairs", "--from-library", str(tmp_path), str(tmp_path),
               "-o", str(tmp_path / "y"))[0] == 2
    assert lmd("train", "pairs", "--from-video", str(tmp_path / "none.mp4"),
               "-o", str(tmp_path / "z"))[0] == 1
    assert not (tmp_path / "z").exists()
