"""A corpus of malformed inputs: discovery never raises, never leaves the root, always says why.

Every case is built in code. Each entry of `Corpus.expect` names a file that must come back
either as an `Unreadable` item or inside a `LiveAsset` whose `reason` is set, with the expected
words.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from daemon.library import synth
from daemon.library.asset import LiveAsset
from daemon.library.discover import discover
from daemon.library.walk import Unreadable

from .conftest import FPS, moving_frames, texture

CID = "11111111-2222-3333-4444-555555555555"


def _box(btype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + btype + payload


class Corpus:
    """Builds broken files in `root`, recording what reason each must get."""

    def __init__(self, root: Path, outside: Path) -> None:
        self.root = root
        self.outside = outside
        self.frames = moving_frames(n=6)
        self.mov = synth.add_live_metadata(synth.encode_video(self.frames, FPS), CID, 0.1)
        self.mp4 = synth.encode_video(self.frames, FPS, "mp4")
        heic = root / "_tmp.heic"
        synth.write_apple_still(heic, texture(96, 128), CID, "heic")
        self.heic = heic.read_bytes()
        heic.unlink()
        jpg = root / "_tmp.jpg"
        synth.write_apple_still(jpg, texture(96, 128), CID, "jpeg")
        self.jpeg = jpg.read_bytes()
        jpg.unlink()
        self.expect: dict[str, str] = {}  # file name -> expected words in the reason

    def put(self, name: str, data: bytes, reason: str = "") -> Path:
        path = self.root / name
        path.write_bytes(data)
        if reason is not None:
            self.expect[name] = reason
        return path

    def apple(self, n: int, still: bytes, mov: bytes, broken: str, reason: str) -> None:
        """A still + MOV pair named IMG_n, with the `broken` one ('still'/'mov') expected."""
        self.root.joinpath(f"IMG_{n}.HEIC").write_bytes(still)
        self.root.joinpath(f"IMG_{n}.MOV").write_bytes(mov)
        self.expect[f"IMG_{n}.{'HEIC' if broken == 'still' else 'MOV'}"] = reason


def moov_with(mov: bytes, extra: bytes) -> bytes:
    """Append a box to the (last) moov of a MOV by rewriting its size."""
    pos = mov.rindex(b"moov") - 4
    size = struct.unpack_from(">I", mov, pos)[0]
    return mov[:pos] + struct.pack(">I", size + len(extra)) + mov[pos + 4 : pos + size] + extra


def build(c: Corpus) -> None:
    mov, heic, jpeg, mp4 = c.mov, c.heic, c.jpeg, c.mp4
    n = 100
    # 1-8: MOV truncated at many offsets
    for cut in (0, 7, 16, 100, 1000, len(mov) // 2, len(mov) - 50, len(mov) - 1):
        c.apple(n, heic, mov[:cut], "mov", "unreadable")
        n += 1
    # 9-12: HEIC truncated
    for cut in (5, 30, 200, len(heic) // 2):
        c.apple(n, heic[:cut], mov, "still", "unreadable")
        n += 1
    # 13: a box size past the end of the file
    ftyp_end = struct.unpack_from(">I", mov, 0)[0]
    lying = struct.pack(">I", 10**9) + b"wide"
    c.apple(n, heic, mov[:ftyp_end] + lying + mov[ftyp_end:], "mov", "past")
    n += 1
    # 14: a nested-box bomb inside moov
    bomb = b"\x00" * 8
    for _ in range(200):
        bomb = _box(b"trak", bomb)
    c.apple(n, heic, moov_with(mov, bomb), "mov", "nested")
    n += 1
    # 15: absurd edit-list entry count
    c.apple(
        n,
        heic,
        mov.replace(
            b"elst\x00\x00\x00\x00\x00\x00\x00\x02", b"elst\x00\x00\x00\x00\x7f\xff\xff\xff"
        ),
        "mov",
        "edit list",
    )
    n += 1
    # 16: absurd edit-list durations (an empty edit of ~50 days)
    c.apple(n, heic, _stretch_edit(mov), "mov", "absurd edit list")
    n += 1
    # 17: a 64-bit box size that is cut off
    cut64 = b"\x00\x00\x00\x01mdat\xff\xff"
    c.apple(n, heic, mov[:ftyp_end] + cut64 + mov[ftyp_end:], "mov", "unreadable")
    n += 1
    # 18-20: AAE problems (invalid DEFLATE, decompression bomb, not a plist)
    for aae, reason in (
        (_aae_with(b"this is not deflate"), "DEFLATE"),
        (_aae_with(_deflate(b" " * (50 * 1024 * 1024))), "inflates too far"),
        (b"\x00\x01garbage", "not a plist"),
    ):
        c.apple(n, heic, mov, "mov", "")
        del c.expect[f"IMG_{n}.MOV"]
        c.put(f"IMG_{n}.AAE", aae, reason)
        n += 1
    # 21: an edited still with decompression-bomb dimensions
    c.apple(n, heic, mov, "mov", "")
    del c.expect[f"IMG_{n}.MOV"]
    c.put(f"IMG_E{n}.JPG", _sof_dimensions(jpeg, 65000, 65000), "exceeds the limit")
    n += 1
    # 22-23: garbage XMP (a motion flag with no location, a DTD)
    flag = (
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description'
        b' xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" GCamera:MotionPhoto="1"/>'
        b"</rdf:RDF>"
    )
    c.put("GX_1.jpg", _jpeg_xmp(jpeg, flag), "usable video location")
    c.put(
        "GX_2.jpg",
        _jpeg_xmp(jpeg, b'<!DOCTYPE x [<!ENTITY a "b">]><x GCamera:MotionPhoto="1"/>'),
        "DTD",
    )
    # 24: Google Motion Photo whose directory points past the file
    xmp = synth.motion_xmp(0, 10**9)
    c.put("GX_3.jpg", _jpeg_xmp(jpeg, xmp) + mp4, "outside the file")
    # 25: Motion Photo whose embedded MP4 is garbage
    c.put(
        "GX_4.jpg",
        _jpeg_xmp(jpeg, synth.motion_xmp(0, 4000)) + b"\x00\x00\x00\x10ftypisom" + os.urandom(3988),
        "unreadable",
    )
    # 26: Samsung trailer whose directory points before the file
    trailer = bytearray(synth.seft_trailer([(0x0A30, b"MotionPhoto_Data", mp4)]))
    struct.pack_into("<I", trailer, len(trailer) - 16, 10**8)  # entry noff
    c.put("SX_1.jpg", jpeg + bytes(trailer), "SEF")
    # 27: HEIC with an empty mpvd box
    c.put("SX_2.heic", heic + _box(b"mpvd", b""), "mpvd")
    # 28-30: zero bytes, wrong extension, text named .HEIC
    c.put("ZERO.JPG", b"", "too short")
    c.put("WRONG.HEIC", jpeg[:0] + b"GIF89a" + b"\x00" * 64, "not a JPEG or HEIF")
    c.put("TEXT.jpg", b"hello, this is not a photo at all\n" * 4, "not a JPEG or HEIF")
    # 31: HEIF whose meta box is huge
    heic_ftyp = heic[: struct.unpack_from(">I", heic, 0)[0]]
    c.put("HUGE.heic", heic_ftyp + struct.pack(">I", 2**31) + b"meta" + b"\x00" * 64, "past")
    # 32: thousands of tiny boxes
    c.put("MANY.heic", heic_ftyp + _box(b"free", b"") * 5000, "too many boxes")
    # 33-35: symlinks (loop, out of root, dangling) and a directory link out of root
    os.symlink(c.root / "LOOP_B.JPG", c.root / "LOOP_A.JPG")
    os.symlink(c.root / "LOOP_A.JPG", c.root / "LOOP_B.JPG")
    c.expect["LOOP_A.JPG"] = "symlink loop"
    c.expect["LOOP_B.JPG"] = "symlink loop"
    secret = c.outside / "secret.jpg"
    secret.write_bytes(jpeg)
    os.symlink(secret, c.root / "OUT.jpg")
    c.expect["OUT.jpg"] = "leaves the library root"
    os.symlink(c.outside, c.root / "outdir")
    c.expect["outdir"] = "leaves the library root"
    os.symlink(c.root / "nothing.jpg", c.root / "DANGLING.jpg")
    c.expect["DANGLING.jpg"] = "dangling"
    # 36: a FIFO named like a photo (opening it would block)
    os.mkfifo(c.root / "FIFO.JPG")
    c.expect["FIFO.JPG"] = "not a regular file"
    # 37: an unreadable file (only meaningful when not running as root)
    if os.geteuid() != 0:
        p = c.put("NOPERM.JPG", jpeg, "Permission denied")
        p.chmod(0)


def _stretch_edit(mov: bytes) -> bytes:
    pos = mov.rindex(b"elst") + 4 + 8  # version/flags, count -> first entry
    return mov[:pos] + struct.pack(">I", 0xFFFFFFF0) + mov[pos + 4 :]


def _deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return comp.compress(data) + comp.flush()


def _aae_with(payload: bytes) -> bytes:
    import plistlib

    return plistlib.dumps(
        {"adjustmentData": payload, "adjustmentFormatIdentifier": "com.apple.photo"}
    )


def _jpeg_xmp(jpeg: bytes, xmp: bytes) -> bytes:
    sig = b"http://ns.adobe.com/xap/1.0/\x00"
    seg = b"\xff\xe1" + struct.pack(">H", 2 + len(sig) + len(xmp)) + sig + xmp
    return jpeg[:2] + seg + jpeg[2:]


def _sof_dimensions(jpeg: bytes, w: int, h: int) -> bytes:
    pos = jpeg.index(b"\xff\xc0")
    return jpeg[: pos + 5] + struct.pack(">HH", h, w) + jpeg[pos + 9 :]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    base = tmp_path_factory.mktemp("bad")
    root, outside = base / "lib", base / "outside"
    root.mkdir()
    outside.mkdir()
    c = Corpus(root, outside)
    build(c)
    return c


def _reasons(items: list) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if isinstance(item, Unreadable):
            out[item.path.name] = item.reason
        else:
            assert isinstance(item, LiveAsset)
            if item.reason:
                for p in (item.reference, item.video, item.target, *item.sidecars):
                    if p is not None:
                        out.setdefault(p.name, item.reason)
    return out


def _members(item: object) -> list[Path]:
    if isinstance(item, Unreadable):
        return [item.path]
    assert isinstance(item, LiveAsset)
    return [p for p in (item.reference, item.video, item.target, *item.sidecars) if p]


def test_every_file_is_accounted_for_by_a_readers_reason(corpus: Corpus) -> None:
    """Nothing in the corpus is silently skipped, and no broken file gets only the last line of
    defence's "internal error": each is refused by the reader that met it, saying why."""
    assert len(corpus.expect) >= 30  # the corpus itself: one case per reader and limit
    items = list(discover(corpus.root))
    named = {p.name for item in items for p in _members(item)}
    assert sorted(set(os.listdir(corpus.root)) - named) == []
    internal = [item for item in items if "internal error" in (item.reason or "")]
    assert internal == []


def test_every_bad_file_gets_its_reason(corpus: Corpus) -> None:
    items = list(discover(corpus.root))
    reasons = _reasons(items)
    missing = {n: r for n, r in corpus.expect.items() if n not in reasons}
    assert not missing, missing
    wrong = {n: (r, reasons[n]) for n, r in corpus.expect.items() if r not in reasons[n]}
    assert not wrong, wrong


_OPENED: list[Path] | None = None  # what was opened or listed while `_recording_opens` is on
_HOOKED = False


def _audit(event: str, args: tuple) -> None:
    recording = _OPENED is not None and event in {"open", "os.scandir", "os.listdir"}
    if recording and args and isinstance(args[0], str | bytes | os.PathLike):
        path = os.fsdecode(args[0])
        flags = args[2] if event == "open" and len(args) > 2 else 0
        nofollow = isinstance(flags, int) and flags & os.O_NOFOLLOW
        if nofollow and "/" not in path:
            return  # one name opened in a directory's descriptor, no link followed: stays there
        if nofollow:  # the last name is not followed
            real = Path(os.path.realpath(os.path.dirname(path))) / os.path.basename(path)
        else:
            real = Path(os.path.realpath(path))
        _OPENED.append(real)  # type: ignore[union-attr]


@contextmanager
def _recording_opens() -> Iterator[list[Path]]:
    """Every file Python opens and every directory it lists, resolved as the open resolved it
    (PEP 578 audit events: `open`, `os.open`, `io.open`, `os.scandir`). An audit hook cannot
    be removed, so one is installed once and records only inside this block."""
    global _OPENED, _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED = True
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def test_nothing_outside_the_root_is_read(corpus: Corpus) -> None:
    """Links out of the root (a photo, a directory) are refused before anything is opened:
    no file or directory outside the root is opened or listed, through the link or otherwise."""
    root = corpus.root.resolve()
    with _recording_opens() as opened:
        items = list(discover(corpus.root))
    assert [p for p in opened if not p.is_relative_to(root)] == []
    assert root / "IMG_100.HEIC" in opened  # the recorder saw the reads inside the root
    refused = {i.path.name: i.reason for i in items if isinstance(i, Unreadable)}
    assert refused["OUT.jpg"] == refused["outdir"] == "symlink leaves the library root"


@pytest.mark.parametrize(
    ("swap_after", "refused", "found"),
    [
        (3, "a", ["IMG_1"]),  # `a` itself is a link when the walk opens it
        (6, "a/b", ["IMG_1", "a/IMG_3"]),  # `a` is swapped after its listing: `a/b` leads out
    ],
)
def test_directory_swapped_for_a_link_out_of_the_root_mid_scan(
    tmp_path: Path, swap_after: int, refused: str, found: list[str]
) -> None:
    """The race of issue 11: `a` is a real directory when it is found, and a link to a folder
    outside the library by the time the walk lists it (or its subdirectory `b`). The walk must
    not list or read the outside folder through it, and says what happened."""
    frames = moving_frames(n=6)
    root, outside = tmp_path / "lib", tmp_path / "outside"
    for directory, stem in ((root, "IMG_1"), (root / "a", "IMG_3"), (root / "a" / "b", "IMG_2"),
                            (outside, "IMG_3"), (outside / "b", "IMG_2")):
        synth.write_reselected_live_photo(directory, stem, frames, FPS, 1, 1, with_edited=False)

    def swap(done: int) -> None:  # progress: `done` media files so far (3 per Live Photo)
        if done >= swap_after and not (root / "a").is_symlink():
            (root / "a").rename(root / ".a-moved-away")
            (root / "a").symlink_to(outside, target_is_directory=True)

    with _recording_opens() as opened:
        items = list(discover(root, progress=swap))
    assert (root / "a").is_symlink()  # the swap did happen mid-scan
    assert [p for p in opened if p.is_relative_to(outside.resolve())] == []
    assert [i.key for i in items if isinstance(i, LiveAsset)] == found
    (problem,) = [i for i in items if isinstance(i, Unreadable)]
    assert problem.key == refused and problem.reason == "changed during the scan"


def test_file_vanishing_mid_scan(tmp_path: Path) -> None:
    frames = moving_frames(n=6)
    synth.write_reselected_live_photo(tmp_path, "IMG_1", frames, FPS, 1, 1, with_edited=False)
    synth.write_reselected_live_photo(tmp_path, "IMG_2", frames, FPS, 1, 1, with_edited=False)
    victim = tmp_path / "IMG_2.MOV"

    def progress(done: int) -> None:
        if victim.exists():
            victim.unlink()

    items = {i.key: i for i in discover(tmp_path, progress=progress)}
    assert items["IMG_1"].reason is None
    assert "No such file" in (items["IMG_2"].reason or "")


def test_missing_root(tmp_path: Path) -> None:
    (item,) = discover(tmp_path / "nope")
    assert isinstance(item, Unreadable) and "not a directory" in item.reason
