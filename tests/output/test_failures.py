"""A write that fails part-way leaves no partial file and the old content in place."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from daemon.output import OutputError, atomic_write_bytes, digest_file, write_image

from .helpers import gradient, leftovers, mounted

REPO = Path(__file__).resolve().parents[2]


def run_child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_file_size_limit_leaves_no_partial_file(tmp_path):
    dest = tmp_path / "IMG_E0001.JPG"
    dest.write_bytes(b"previous content")
    before = digest_file(dest)
    child = run_child(
        f"""
        import resource, signal
        import numpy as np
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        from daemon.output import OutputError, write_image
        rng = np.random.default_rng(0)
        noise = rng.random((256, 256, 3), dtype=np.float32)  # noise does not compress
        try:
            write_image({str(dest)!r}, noise, quality=100)
        except OutputError as exc:
            print("OUTPUT_ERROR", exc)
        else:
            print("WROTE")
        """
    )
    assert "OUTPUT_ERROR" in child.stdout, child.stdout + child.stderr
    assert "File too large" in child.stdout
    assert leftovers(tmp_path) == []
    assert digest_file(dest) == before


def test_read_only_directory_raises_cleanly(tmp_path):
    source = tmp_path / "lib"
    source.mkdir()
    (source / "IMG_0001.JPG").write_bytes(b"original")
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        os.chmod(source, 0o555)
        with pytest.raises(OutputError, match="cannot create a file"):
            write_image(source / "IMG_0001.JPG", gradient())
        os.chmod(source, 0o755)
        return
    with mounted(["--bind", str(source)], ro):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        with pytest.raises(OutputError, match="cannot create a file"):
            write_image(ro / "IMG_0001.JPG", gradient())
        assert sorted(p.name for p in ro.iterdir()) == ["IMG_0001.JPG"]
    assert (source / "IMG_0001.JPG").read_bytes() == b"original"


def test_full_filesystem_leaves_no_partial_file(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    with mounted(["-t", "tmpfs", "-o", "size=64k", "tmpfs"], small):
        dest = small / "IMG_E0001.PNG"
        dest.write_bytes(b"previous")
        rng = np.random.default_rng(1)
        with pytest.raises(OutputError, match="No space left"):
            write_image(dest, rng.random((256, 256, 3), dtype=np.float32))
        assert leftovers(small) == []
        assert dest.read_bytes() == b"previous"


def test_failed_verification_removes_temp_and_keeps_old_file(tmp_path):
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"old")

    def reject(temp: Path) -> None:
        assert temp.read_bytes() == b"new"  # the temp file is complete and fsynced here
        raise OutputError("does not decode")

    with pytest.raises(OutputError, match="does not decode"):
        atomic_write_bytes(dest, b"new", verify=reject)
    assert dest.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_unexpected_error_is_wrapped(tmp_path):
    def boom(temp: Path) -> None:
        raise ValueError("broken")

    with pytest.raises(OutputError, match="broken"):
        atomic_write_bytes(tmp_path / "x", b"data", verify=boom)
    assert list(tmp_path.iterdir()) == []
