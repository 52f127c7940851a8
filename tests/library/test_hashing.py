"""core.hashing: named digests, the sampling policy, and recognition of digests written by
earlier versions (BLAKE2b `b2:`/`b2s:` inputs, bare SHA-256 outputs)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from core import hashing
from daemon.files.signature import FileSignature, signature

# Official BLAKE3 test vector (empty input), from the BLAKE3 reference repository.
BLAKE3_EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def old_b2(path: Path) -> str:
    """The input digest as lmd wrote it before core.hashing (whole-file BLAKE2b-128)."""
    return "b2:" + hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def test_digests_name_their_algorithm_and_match_the_reference_vector(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert hashing.digest_file(empty) == f"blake3:{BLAKE3_EMPTY}"
    assert hashing.content_digest(empty) == f"blake3:{BLAKE3_EMPTY}"
    assert hashing.digest_bytes(b"") == f"blake3:{BLAKE3_EMPTY}"
    # A file larger than the one-read buffer streams to the same digest as the buffer.
    data = os.urandom(3 * 1024 * 1024 + 17)
    big = tmp_path / "big"
    big.write_bytes(data)
    assert hashing.digest_file(big) == hashing.digest_bytes(data)
    assert hashing.split_digest(hashing.digest_file(big))[0] == "blake3"


def test_huge_inputs_are_sampled_and_say_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(hashing, "WHOLE_FILE_LIMIT", 1000)
    monkeypatch.setattr(hashing, "SAMPLE", 100)
    path = tmp_path / "video"
    data = bytearray(os.urandom(5000))
    path.write_bytes(data)
    first = hashing.content_digest(path)
    assert first.startswith("blake3-sampled:")
    assert hashing.digest_file(path).startswith("blake3:")  # outputs are always whole
    data[1000] ^= 1  # outside the head, middle and tail windows: the documented blind spot
    path.write_bytes(data)
    assert hashing.content_digest(path) == first
    data[2500] ^= 1  # inside the middle window
    path.write_bytes(data)
    assert hashing.content_digest(path) != first
    assert hashing.matches(path, hashing.content_digest(path))


def test_legacy_digests_are_recognised_by_their_own_algorithm(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(b"photo bytes" * 1000)
    legacy_input = old_b2(path)
    legacy_output = hashlib.sha256(path.read_bytes()).hexdigest()  # bare hex, as outputs were
    assert hashing.matches(path, legacy_input)
    assert hashing.matches(path, legacy_output)
    assert hashing.recompute(path, legacy_output) == legacy_output
    assert not hashing.is_current(legacy_input) and hashing.is_current(hashing.digest_file(path))
    path.write_bytes(b"photo bytes" * 999 + b"edited     ")
    assert not hashing.matches(path, legacy_input)
    assert not hashing.matches(path, legacy_output)
    assert not hashing.matches(path, "md5:" + "0" * 32)  # unknown algorithm: nothing proven
    assert not hashing.matches(tmp_path / "missing", legacy_input)
    with pytest.raises(hashing.UnknownDigest):
        hashing.split_digest("deadbeef")


def test_stat_fingerprint_keeps_the_recipe_existing_caches_are_keyed_by() -> None:
    entries = [("IMG_1.MOV", 20, 5, 2), ("IMG_1.HEIC", 10, 5, 1)]
    old = hashlib.blake2b(digest_size=16)
    for name, size, mtime, inode in sorted(entries):
        old.update(f"{name}\0{size}\0{mtime}\0{inode}\n".encode())
    assert hashing.stat_fingerprint(reversed(entries)) == old.hexdigest()


def test_a_touched_file_keeps_its_legacy_digest_while_the_content_matches(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.MOV"
    path.write_bytes(b"movie" * 2000)
    recorded = FileSignature(path.stat().st_size, 1, old_b2(path))
    assert signature(path, recorded).content_hash == recorded.content_hash
    assert signature(path).content_hash == hashing.content_digest(path)
    path.write_bytes(b"MOVIE" * 2000)  # same size, new content: a fresh digest
    assert signature(path, recorded).content_hash == hashing.content_digest(path)


def test_update_from_file_samples_windows_above_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    data = bytearray(os.urandom(10_000))
    path.write_bytes(data)

    def digest(**kw) -> str:
        h = hashing.hasher()
        hashing.update_from_file(h, path, 16, **kw)
        return hashing.tagged(h)

    whole = digest(whole_limit=1 << 20, windows=4, window=64)
    assert whole == hashing.digest_bytes(bytes(data[16:]))
    sampled = digest(whole_limit=1000, windows=4, window=64)
    assert sampled != whole
    data[-1] ^= 1  # the last window ends at the end of the file
    path.write_bytes(data)
    assert digest(whole_limit=1000, windows=4, window=64) != sampled


def test_open_files_and_streamed_copies_check_against_any_recorded_algorithm(
    tmp_path: Path,
) -> None:
    path = tmp_path / "backup.jpg"
    data = os.urandom(2 * 1024 * 1024 + 5)
    path.write_bytes(data)
    legacy = hashlib.sha256(data).hexdigest()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 7, os.SEEK_SET)
        assert hashing.digest_fd(fd) == hashing.digest_bytes(data)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 7  # the descriptor's offset is kept
        assert hashing.matches_fd(fd, legacy) and hashing.matches_fd(fd, hashing.digest_file(path))
        assert not hashing.matches_fd(fd, hashlib.sha256(data[:-1]).hexdigest())
    finally:
        os.close(fd)
    for recorded in (legacy, hashing.digest_file(path), old_b2(path)):
        check = hashing.DigestCheck(recorded)
        check.update(data[:1000])
        check.update(data[1000:])
        assert check.matches()
        short_check = hashing.DigestCheck(recorded)
        short_check.update(data[:-1])
        assert not short_check.matches()
    assert hashing.short(legacy) == legacy[:8]
    assert hashing.short(hashing.digest_file(path)) == hashing.digest_file(path)[7:15]
    assert hashing.same_content(legacy, hashing.digest_file(path), path)
    path.write_bytes(data[::-1])
    assert not hashing.same_content(legacy, hashing.digest_file(path), path)
