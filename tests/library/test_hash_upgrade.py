"""A database written before core.hashing (BLAKE2b `b2:` input digests) must not make the first
scan after the upgrade re-enqueue the library: unchanged photos keep their recorded digests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from core import hashing
from daemon.library import synth
from daemon.scanner import run_scan
from daemon.store import open_store
from tests.library.conftest import moving_frames
from tests.service.helpers import make_settings


def old_input_digest(fh: BinaryIO) -> str:
    """The input digest recipe of the code before core.hashing (of an open input: discovery
    hashes the file it opened, `hashing.content_digest_of`)."""
    fh.seek(0)
    return "b2:" + hashlib.blake2b(fh.read(), digest_size=16).hexdigest()


def old_stat_fingerprint(entries) -> str:
    """The group stat fingerprint recipe of the code before core.hashing."""
    h = hashlib.blake2b(digest_size=16)
    for name, size, mtime_ns, inode in sorted(entries):
        h.update(f"{name}\0{size}\0{mtime_ns}\0{inode}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def test_first_scan_after_the_upgrade_enqueues_nothing_new(tmp_path: Path, monkeypatch) -> None:
    settings = make_settings(tmp_path)
    frames = moving_frames(8, 32, 48)
    for i in range(2):
        synth.write_reselected_live_photo(
            tmp_path / "library" / "2024", f"IMG_000{i}", frames, 30.0, 2, 6, scale=2
        )
    store = open_store(settings.database_url)
    try:
        with monkeypatch.context() as old_code:
            old_code.setattr(hashing, "content_digest_of", old_input_digest)
            old_code.setattr(hashing, "stat_fingerprint", old_stat_fingerprint)
            before = run_scan(settings, store=store)
        assert before.enqueued == 2
        jobs = store.list_jobs()
        assert {j.payload["signatures"]["reference"]["content_hash"][:3] for j in jobs} == {"b2:"}

        after = run_scan(settings, store=store)
        assert after.restorable == 2 and after.enqueued == 0
        assert [j.identity for j in store.list_jobs()] == [j.identity for j in jobs]
    finally:
        store.close()


def _legacy_replace(lib: Path, name: str, out):
    """Replace `name` with lmd's output, then rewrite its record as the code before
    core.hashing wrote it (bare SHA-256 digests). Returns (target, original bytes, record)."""
    import dataclasses

    import numpy as np
    from PIL import Image

    from daemon.output import commit_replace, plan_output
    from daemon.output.replace import save_record
    from tests.output.helpers import gradient

    target = lib / "2024" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((gradient(30, 40) * 255).astype(np.uint8)).save(target, quality=80)
    original = target.read_bytes()
    record = commit_replace(plan_output(target, lib, out), gradient(30, 40), target, None)
    assert record.output is not None and record.output.content_hash.startswith("blake3:")
    legacy = dataclasses.replace(
        record,
        original=dataclasses.replace(
            record.original, content_hash=hashlib.sha256(original).hexdigest()
        ),
        output=dataclasses.replace(
            record.output, content_hash=hashlib.sha256(target.read_bytes()).hexdigest()
        ),
    )
    save_record(legacy)
    return target, original, legacy


def test_replace_records_with_bare_sha256_digests_still_revert(tmp_path: Path) -> None:
    """Replace records and job rows written before core.hashing hold bare SHA-256 digests of
    the original and the output: lmd still recognises its output and puts the original back."""
    from daemon.output import commit_replace, is_own_output, plan_output, revert
    from tests.output.helpers import Out, gradient

    lib = tmp_path / "library"
    out = Out(mode="replace", backup_dir=tmp_path / "backups")

    target, original, legacy = _legacy_replace(lib, "IMG_E0001.JPG", out)
    assert legacy.output is not None
    assert is_own_output(target, legacy.output.content_hash)
    assert not is_own_output(target, legacy.original.content_hash)
    outcome = revert(legacy)
    assert outcome.changed and target.read_bytes() == original

    # A second run on an old output keeps the backup of the true original.
    target, original, legacy = _legacy_replace(lib, "IMG_E0002.JPG", out)
    again = commit_replace(
        plan_output(target, lib, out), gradient(30, 40)[::-1].copy(), target, None
    )
    assert again.backup == legacy.backup and again.original == legacy.original
    outcome = revert(again)
    assert outcome.changed and target.read_bytes() == original
