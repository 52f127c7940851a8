"""A database written before core.hashing (BLAKE2b `b2:` input digests) must not make the first
scan after the upgrade re-enqueue the library: unchanged photos keep their recorded digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from core import hashing
from daemon.library import synth
from daemon.scanner import run_scan
from daemon.store import open_store
from tests.library.conftest import moving_frames
from tests.service.helpers import make_settings


def old_input_digest(path: Path | str) -> str:
    """The input digest recipe of the code before core.hashing."""
    return "b2:" + hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


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
            old_code.setattr(hashing, "content_digest", old_input_digest)
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
