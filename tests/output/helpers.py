"""Test data built in code (EXIF with a minimal Apple maker note, XMP, an ICC profile) and
the shared helpers of the output tests (settings stand-in, mounts, the revert CLI)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
import typer
from PIL import ImageCms

from daemon.output import TEMP_PREFIX

CID = "ED69AFC7-A2EB-4FE9-88A0-54293FC2478F"
EXIFTOOL = shutil.which("exiftool")
REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "real"

XMP_ORIGINAL = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    b'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
    b'xmp:CreatorTool="13.4.1" xmp:Rating="4" tiff:Orientation="6" '
    b'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1">'
    b'<dc:title xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:Alt>'
    b'<rdf:li xml:lang="x-default">Beach</rdf:li></rdf:Alt></dc:title>'
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    b'<?xpacket end="w"?>'
)


def apple_maker_note(cid: str = CID) -> bytes:
    """ "Apple iOS\\0" + u16 version + "MM" + IFD at byte 14 with tag 0x0011 = the UUID."""
    value = cid.encode("ascii") + b"\x00"
    header = b"Apple iOS\x00" + struct.pack(">H", 1) + b"MM"
    ifd_at = len(header)  # 14
    entries = 2
    data_at = ifd_at + 2 + 12 * entries + 4
    ifd = struct.pack(">H", entries)
    ifd += struct.pack(">HHII", 0x0001, 9, 1, 14)  # MakerNoteVersion (SLONG inline)
    ifd += struct.pack(">HHII", 0x0011, 2, len(value), data_at)
    ifd += struct.pack(">I", 0)
    return header + ifd + value


def build_exif(
    *, width: int, height: int, orientation: int = 6, maker_note: bytes | None = None
) -> bytes:
    """A big-endian TIFF block: IFD0 (Make, Model, Orientation, ExifIFD) + Exif IFD."""
    maker_note = apple_maker_note() if maker_note is None else maker_note
    make, model = b"Apple\x00", b"iPhone 11 Pro\x00"
    ifd0_at = 8
    n0 = 4
    exif_ifd_at = ifd0_at + 2 + 12 * n0 + 4
    n1 = 3
    data_at = exif_ifd_at + 2 + 12 * n1 + 4
    make_at = data_at
    model_at = make_at + len(make)
    note_at = model_at + len(model)
    out = b"MM\x00\x2a" + struct.pack(">I", ifd0_at)
    out += struct.pack(">H", n0)
    out += struct.pack(">HHII", 0x010F, 2, len(make), make_at)
    out += struct.pack(">HHII", 0x0110, 2, len(model), model_at)
    out += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    out += struct.pack(">HHII", 0x8769, 4, 1, exif_ifd_at)
    out += struct.pack(">I", 0)
    out += struct.pack(">H", n1)
    out += struct.pack(">HHII", 0x927C, 7, len(maker_note), note_at)
    out += struct.pack(">HHIHH", 0xA002, 3, 1, width, 0)
    out += struct.pack(">HHIHH", 0xA003, 3, 1, height, 0)
    out += struct.pack(">I", 0)
    out += make + model + maker_note
    return b"Exif\x00\x00" + out


def display_p3_like_icc() -> bytes:
    """A real ICC profile built in code (sRGB with a distinctive description)."""
    profile = ImageCms.createProfile("sRGB")
    ImageCms.ImageCmsProfile(profile)
    return ImageCms.ImageCmsProfile(profile).tobytes()


def gradient(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1)


@dataclass
class Out:
    """The output settings fields `plan_output` reads (sidecar tree by default)."""

    mode: str = "sidecar"
    location: str = "tree"
    tree: Path | None = None
    suffix: str = "_lmd"
    backup_dir: Path | None = None


def leftovers(directory: Path) -> list[str]:
    """Temporary files of lmd's atomic writes left in `directory`."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(TEMP_PREFIX))


@contextlib.contextmanager
def mounted(args: list[str], where: Path) -> Iterator[None]:
    """Mount something for the test (root only); skip when this machine does not allow it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount")
    done = subprocess.run(["mount", *args, str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount not permitted here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(where)], check=True)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """`directory` read-only in place for the test: a bind mount of itself, remounted ro (root
    ignores permission bits, so chmod 0555 would not stop it; a read-only mount does)."""
    with mounted(["--bind", str(directory)], directory):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True)
        yield


def revert_cli(argv: list[str]) -> int:
    """The `revert` command on its own root app, with `lmd`'s exit-code rules (0/1/2)."""
    from daemon.cli import outputs
    from daemon.cli.context import CliState, OperationalError

    app = typer.Typer()

    @app.callback()
    def _root(
        ctx: typer.Context,
        config: Annotated[Path | None, typer.Option("--config")] = None,
    ) -> None:
        ctx.obj = CliState(config_path=config)

    outputs.register(app)
    try:
        app(args=argv, standalone_mode=False)
    except OperationalError:
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except Exception as exc:  # typer's vendored click usage errors carry their exit code
        if isinstance(getattr(exc, "exit_code", None), int):
            return exc.exit_code  # type: ignore[attr-defined]
        raise
    return 0


def write_config(tmp_path: Path, lib: Path, state: Path) -> Path:
    """An lmd.toml for replace mode on `lib` with its state in `state`."""
    config = tmp_path / "lmd.toml"
    config.write_text(f'library = "{lib}"\nstate_dir = "{state}"\n[output]\nmode = "replace"\n')
    return config


def xattrs_supported(path: Path) -> bool:
    """Whether `path`'s filesystem keeps user.* extended attributes (tmpfs without xattr
    support, some overlay setups do not)."""
    try:
        os.setxattr(path, "user.lmd.probe", b"1")
        os.removexattr(path, "user.lmd.probe")
    except OSError:
        return False
    return True


def printed_json(out: str) -> object:
    """The JSON document `--json` printed, without the log lines before it."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("[", "{")))
    return json.loads("\n".join(lines[start:]))
