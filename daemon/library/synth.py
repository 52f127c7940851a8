"""Builders of synthetic Live Photos and Motion Photos, for tests and `lmd demo`.

They write files the way phones do, checked against exiftool in the tests, so that the rest of
lmd can be exercised without real devices. Signatures (all paths are `pathlib.Path`, images are
`np.ndarray` uint8 H×W×3 RGB):

- `write_apple_still(path, rgb, content_id, fmt="heic"|"jpeg", quality=90)`: a still whose EXIF
  carries an Apple maker note with ContentIdentifier (tag 0x0011).
- `encode_video(frames, fps, fmt="mov"|"mp4") -> bytes`: H.264 through PyAV, no B-frames.
- `write_live_mov(path, frames, fps, content_id, still_time)`: H.264 MOV plus the
  `com.apple.quicktime.content.identifier` keys/ilst metadata and a `mebx`
  still-image-time track whose one sample is shifted to `still_time` by a leading empty edit.
  The moov is rewritten by hand (the old one becomes `free`); never remuxed with ffmpeg.
- `write_aae(path, keyframe_time, other_adjustments=(), binary=False, timescale=600)`:
  an adjustments plist whose `adjustmentData` is raw DEFLATE of JSON.
- `write_google_motion_jpeg(path, rgb, mp4_bytes, presentation_us)`: Motion Photo 1.0 JPEG.
- `write_samsung_seft_jpeg(path, rgb, mp4_bytes)`: JPEG + SEF trailer (`MotionPhoto_Data`).
- `write_heic_mpvd(path, rgb, mp4_bytes, presentation_us=-1)`: HEIC + top-level `mpvd` box.
- `write_reselected_live_photo(dir, stem, frames, fps, t0_index, t1_index, *, reference=None,
  content_id=None, still_format="heic", with_aae=True, with_edited=True,
  other_adjustments=()) -> dict[str, Path]`: `IMG_1234.HEIC` (HQ reference), `IMG_1234.MOV`,
  `IMG_E1234.HEIC` (frame t1 upscaled to the reference size) and `IMG_1234.AAE`.
"""

from __future__ import annotations

import io
import json
import plistlib
import struct
import uuid
import zlib
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from daemon.files import bmff
from daemon.files.exif import build_apple_exif
from daemon.library.naming import edited_name

LIVE_KEYFRAME = "LivePhotoKeyFrame"


def _heif_save(img: Image.Image, path: Path | io.BytesIO, **kw: object) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    img.save(path, format="HEIF", **kw)


def write_apple_still(
    path: Path, rgb: np.ndarray, content_id: str, fmt: str = "heic", quality: int = 90
) -> Path:
    """A HEIC or JPEG still with a real Apple maker note carrying `content_id`."""
    exif = b"Exif\x00\x00" + build_apple_exif(content_id)
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    if fmt == "jpeg":
        img.save(path, format="JPEG", quality=quality, exif=exif)
    elif fmt == "heic":
        _heif_save(img, path, quality=quality, exif=exif)
    else:
        raise ValueError(f"unknown still format {fmt!r}")
    return path


def encode_video(
    frames: Sequence[np.ndarray], fps: float, fmt: str = "mov", rotation: int = 0
) -> bytes:
    """H.264 (yuv420p, no B-frames) of `frames` in a MOV or MP4 container, as bytes.

    `rotation` (a multiple of 90, counter-clockwise as PyAV's `VideoFrame.rotation` reports
    it) stores the upright `frames` turned the other way plus a display matrix, as an iPhone
    stores a portrait Live Photo: landscape samples that players rotate on display.
    """
    import av

    if rotation % 90:
        raise ValueError("rotation must be a multiple of 90 degrees")
    frames = [np.rot90(f, -(rotation // 90) % 4) for f in frames]
    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        if rotation % 360:
            stream.set_display_rotation(rotation)
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "bframes": "0", "crf": "18"}
        for arr in frames:
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(arr[: stream.height, : stream.width], dtype=np.uint8), "rgb24"
            )
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def add_live_metadata(mov: bytes, content_id: str, still_time: float | None) -> bytes:
    """Add the content identifier and (optionally) a still-image-time track to a MOV."""
    moov_box = next(b for b in bmff.boxes(mov) if b.type == b"moov")
    moov_start, moov_end = moov_box.start, moov_box.end
    children = [mov[b.start : b.end] for b in bmff.boxes(mov, moov_box.payload, moov_end)]
    mvhd = next(c for c in children if c[4:8] == b"mvhd")
    version = mvhd[8]
    ts_pos = 8 + (20 if version == 1 else 12)
    movie_ts = struct.unpack_from(">I", mvhd, ts_pos)[0]
    ntid_pos = 8 + (108 if version == 1 else 96)
    next_tid = struct.unpack_from(">I", mvhd, ntid_pos)[0]
    new_children = []
    for c in children:
        if c[4:8] == b"mvhd":
            c = c[:ntid_pos] + struct.pack(">I", next_tid + 1) + c[ntid_pos + 4 :]
        new_children.append(c)
    key = b"com.apple.quicktime.content.identifier"
    meta = bmff.box(
        b"meta",
        bmff.full_box(b"hdlr", b"\0\0\0\0mdta" + b"\0" * 12 + b"\0")
        + bmff.full_box(b"keys", struct.pack(">I", 1) + bmff.box(b"mdta", key))
        + bmff.box(
            b"ilst",
            bmff.box(
                struct.pack(">I", 1),
                bmff.box(b"data", struct.pack(">II", 1, 0) + content_id.encode()),
            ),
        ),
    )
    new_children.append(meta)
    tail = b""
    if still_time is not None:
        sample = struct.pack(">II", 9, 1) + b"\xff"
        mdat = bmff.box(b"mdat", sample)
        sample_offset = len(mov) + 8
        tail = mdat
        new_children.append(_mebx_trak(next_tid, movie_ts, still_time, sample_offset))
    new_moov = bmff.box(b"moov", b"".join(new_children))
    freed = mov[:moov_start] + struct.pack(">I", moov_end - moov_start) + b"free"
    freed += mov[moov_start + 8 : moov_end] + mov[moov_end:]
    return freed + tail + new_moov


def _mebx_trak(track_id: int, movie_ts: int, still_time: float, sample_offset: int) -> bytes:
    ticks = round(still_time * movie_ts)
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    tkhd = bmff.full_box(
        b"tkhd",
        struct.pack(">IIIII", 0, 0, track_id, 0, ticks + 1)
        + b"\0" * 8
        + struct.pack(">HHHH", 0, 0, 0, 0)
        + matrix
        + struct.pack(">II", 0, 0),
        flags=0x3,
    )
    edits = [(ticks, -1)] if ticks > 0 else []
    edits.append((1, 0))
    elst = bmff.full_box(
        b"elst",
        struct.pack(">I", len(edits))
        + b"".join(struct.pack(">IiI", d, m, 0x10000) for d, m in edits),
    )
    mdhd = bmff.full_box(b"mdhd", struct.pack(">IIIIHH", 0, 0, movie_ts, 1, 0x55C4, 0))
    hdlr = bmff.full_box(b"hdlr", b"\0\0\0\0meta" + b"\0" * 12 + b"Core Media Metadata\0")
    key_entry = bmff.box(
        struct.pack(">I", 1),
        bmff.box(b"keyd", b"mdta" + b"com.apple.quicktime.still-image-time")
        + bmff.box(b"dtyp", struct.pack(">II", 0, 65)),
    )
    mebx = bmff.box(b"mebx", b"\0" * 6 + struct.pack(">H", 1) + bmff.box(b"keys", key_entry))
    stbl = bmff.box(
        b"stbl",
        bmff.full_box(b"stsd", struct.pack(">I", 1) + mebx)
        + bmff.full_box(b"stts", struct.pack(">III", 1, 1, 1))
        + bmff.full_box(b"stsc", struct.pack(">IIII", 1, 1, 1, 1))
        + bmff.full_box(b"stsz", struct.pack(">III", 0, 1, 9))
        + bmff.full_box(b"stco", struct.pack(">II", 1, sample_offset)),
    )
    url = bmff.full_box(b"url ", b"", flags=1)
    dinf = bmff.box(b"dinf", bmff.full_box(b"dref", struct.pack(">I", 1) + url))
    minf = bmff.box(b"minf", bmff.full_box(b"nmhd", b"") + dinf + stbl)
    mdia = bmff.box(b"mdia", mdhd + hdlr + minf)
    return bmff.box(b"trak", tkhd + bmff.box(b"edts", elst) + mdia)


def write_live_mov(
    path: Path,
    frames: Sequence[np.ndarray],
    fps: float,
    content_id: str,
    still_time: float | None,
    rotation: int = 0,
) -> Path:
    """An H.264 Live Photo MOV: content identifier + still-image-time at `still_time`."""
    mov = encode_video(frames, fps, "mov", rotation)
    path.write_bytes(add_live_metadata(mov, content_id, still_time))
    return path


def aae_bytes(
    keyframe_time: float | None,
    other_adjustments: Sequence[str] = (),
    *,
    binary: bool = False,
    timescale: int = 600,
) -> bytes:
    adjustments = []
    for name in other_adjustments:
        adjustments.append(
            {
                "identifier": name,
                "enabled": True,
                "formatVersion": 1,
                "settings": {},
                "formatIdentifier": "com.apple.photo",
            }
        )
    if keyframe_time is not None:
        adjustments.append(
            {
                "identifier": LIVE_KEYFRAME,
                "enabled": True,
                "formatVersion": 1,
                "formatIdentifier": "com.apple.photo",
                "settings": {
                    "time": {
                        "value": round(keyframe_time * timescale),
                        "timescale": timescale,
                        "flags": 1,
                        "epoch": 0,
                    }
                },
            }
        )
    doc = {
        "metadata": {"masterWidth": 4032, "masterHeight": 3024, "orientation": 1},
        "formatVersion": 1,
        "versionInfo": {
            "buildNumber": "22A3354",
            "appVersion": "1.0",
            "schemaRevision": 0,
            "platform": "iOS",
        },
        "adjustments": adjustments,
    }
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    payload = comp.compress(json.dumps(doc).encode()) + comp.flush()
    plist = {
        "adjustmentBaseVersion": 0,
        "adjustmentData": payload,
        "adjustmentEditorBundleID": "com.apple.mobileslideshow",
        "adjustmentFormatIdentifier": "com.apple.photo",
        "adjustmentFormatVersion": "1.5",
        "adjustmentRenderTypes": 0,
        "adjustmentTimestamp": "2024-05-01T10:00:00Z",
    }
    fmt = plistlib.FMT_BINARY if binary else plistlib.FMT_XML
    return plistlib.dumps(plist, fmt=fmt)


def write_aae(
    path: Path,
    keyframe_time: float | None,
    other_adjustments: Sequence[str] = (),
    *,
    binary: bool = False,
    timescale: int = 600,
) -> Path:
    """An AAE sidecar, with a `LivePhotoKeyFrame` at `keyframe_time` when it is not None."""
    path.write_bytes(
        aae_bytes(keyframe_time, other_adjustments, binary=binary, timescale=timescale)
    )
    return path


def _jpeg_bytes(rgb: np.ndarray, xmp: bytes | None = None, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    kw: dict[str, object] = {"quality": quality}
    if xmp is not None:
        kw["xmp"] = xmp
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def motion_xmp(
    presentation_us: int,
    video_length: int,
    *,
    primary_mime: str = "image/jpeg",
    primary_padding: int = 0,
) -> bytes:
    """Google Motion Photo 1.0 XMP with a Container directory (Primary + MotionPhoto)."""
    return f"""<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="lmd synth">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"
    xmlns:Container="http://ns.google.com/photos/1.0/container/"
    xmlns:Item="http://ns.google.com/photos/1.0/container/item/"
   GCamera:MotionPhoto="1"
   GCamera:MotionPhotoVersion="1"
   GCamera:MotionPhotoPresentationTimestampUs="{presentation_us}">
   <Container:Directory>
    <rdf:Seq>
     <rdf:li rdf:parseType="Resource">
      <Container:Item Item:Mime="{primary_mime}" Item:Semantic="Primary" Item:Length="0"
        Item:Padding="{primary_padding}"/>
     </rdf:li>
     <rdf:li rdf:parseType="Resource">
      <Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto"
        Item:Length="{video_length}" Item:Padding="0"/>
     </rdf:li>
    </rdf:Seq>
   </Container:Directory>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>""".encode()


def write_google_motion_jpeg(
    path: Path, rgb: np.ndarray, mp4_bytes: bytes, presentation_us: int
) -> Path:
    """A Google Motion Photo JPEG: primary JPEG with motion XMP, then the MP4."""
    path.write_bytes(_jpeg_bytes(rgb, motion_xmp(presentation_us, len(mp4_bytes))) + mp4_bytes)
    return path


def seft_trailer(blocks: Sequence[tuple[int, bytes, bytes]]) -> bytes:
    """A Samsung SEF trailer: data blocks, the SEFH directory and the SEFT footer."""
    out = bytearray()
    starts = []
    for btype, name, payload in blocks:
        starts.append(len(out))
        out += struct.pack("<HHI", 0, btype, len(name)) + name + payload
    dir_pos = len(out)
    directory = bytearray(b"SEFH" + struct.pack("<II", 101, len(blocks)))
    for (btype, name, payload), start in zip(blocks, starts, strict=True):
        size = 8 + len(name) + len(payload)
        directory += struct.pack("<HHII", 0, btype, dir_pos - start, size)
    out += directory + struct.pack("<I", len(directory)) + b"SEFT"
    return bytes(out)


def write_samsung_seft_jpeg(path: Path, rgb: np.ndarray, mp4_bytes: bytes) -> Path:
    """A Samsung Motion Photo JPEG: the MP4 lives in the SEF trailer as `MotionPhoto_Data`."""
    trailer = seft_trailer(
        [(0x0A30, b"MotionPhoto_Data", mp4_bytes), (0x0A31, b"MotionPhoto_Version", b"mpv3")]
    )
    path.write_bytes(_jpeg_bytes(rgb) + trailer)
    return path


def write_heic_mpvd(
    path: Path, rgb: np.ndarray, mp4_bytes: bytes, presentation_us: int = -1
) -> Path:
    """A HEIC Motion Photo (Google 1.1 / Samsung): motion XMP plus a top-level `mpvd` box."""
    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    xmp = motion_xmp(presentation_us, len(mp4_bytes), primary_mime="image/heic", primary_padding=8)
    _heif_save(img, buf, quality=90, xmp=xmp)
    path.write_bytes(buf.getvalue() + bmff.box(b"mpvd", mp4_bytes))
    return path


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    return np.asarray(img.resize(size, Image.Resampling.BICUBIC))


def write_reselected_live_photo(
    directory: Path,
    stem: str,
    frames: Sequence[np.ndarray],
    fps: float,
    t0_index: int,
    t1_index: int,
    *,
    reference: np.ndarray | None = None,
    content_id: str | None = None,
    still_format: str = "heic",
    with_aae: bool = True,
    with_edited: bool = True,
    other_adjustments: Sequence[str] = (),
    scale: int = 4,
    rotation: int = 0,
) -> dict[str, Path]:
    """A whole reselected Live Photo as the iPhone DCIM folder shows it.

    `reference` is the HQ original key photo (default: frame t0 upscaled `scale`×). The edited
    still is frame t1 upscaled to the reference size, as Photos renders a reselected frame.
    `frames` are upright; `rotation` stores them turned in the MOV (see `encode_video`).
    Returns the written paths under the keys reference/video/edited/aae.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cid = content_id or str(uuid.uuid4()).upper()
    h, w = frames[0].shape[:2]
    if reference is None:
        reference = _resize(frames[t0_index], (w * scale, h * scale))
    rh, rw = reference.shape[:2]
    ext = ".HEIC" if still_format == "heic" else ".JPG"
    paths = {
        "reference": write_apple_still(directory / f"{stem}{ext}", reference, cid, still_format),
        "video": write_live_mov(
            directory / f"{stem}.MOV", frames, fps, cid, t0_index / fps, rotation
        ),
    }
    if with_edited:
        edited = _resize(frames[t1_index], (rw, rh))
        paths["edited"] = write_apple_still(
            directory / f"{edited_name(stem)}{ext}", edited, cid, still_format
        )
    if with_aae:
        paths["aae"] = write_aae(
            directory / f"{stem}.AAE",
            t1_index / fps if t1_index != t0_index else None,
            other_adjustments,
        )
    return paths
