"""Encode a restored still in the target's format with the reference metadata carried over.

The format follows the destination's extension (HEIC/HEIF stays HEIF through pillow-heif, JPEG
stays JPEG, PNG for tests and tools), because photo tools pair and sort by extension and an
`IMG_1234.HEIC` that is secretly a JPEG confuses them. EXIF is copied byte for byte with only
the dimensions and orientation patched (see `daemon.output.exif`), so the Apple maker note and
its ContentIdentifier keep pairing the still with its MOV; ICC is copied so colours (Display P3
on iPhones) are not reinterpreted as sRGB; XMP is carried over with provenance merged in.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from PIL import Image

from daemon.files.signature import FileSignature
from daemon.files.xmp import XmpError
from daemon.output.atomic import Fence, atomic_write_bytes
from daemon.output.errors import OutputError
from daemon.output.exif import ExifFormatError, patch_exif
from daemon.output.xmp import merge_xmp

log = structlog.get_logger(__name__)

_FORMATS = {
    ".heic": "HEIF",
    ".heif": "HEIF",
    ".hif": "HEIF",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".png": "PNG",
}
DEFAULT_QUALITY = {"JPEG": 95, "HEIF": 90, "PNG": None}
JPEG_APP1_LIMIT = 65533  # an APP1 segment's payload, including its own header


def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()


_register_heif()


@dataclass(frozen=True, slots=True)
class CarriedMetadata:
    """The metadata blocks of a source image, as raw bytes."""

    exif: bytes | None = None
    xmp: bytes | None = None
    icc: bytes | None = None
    # pillow-heif resets EXIF Orientation to 1 when reading (libheif already applied the HEIF
    # irot/imir transforms to the pixels); this keeps what the file said.
    original_orientation: int | None = None


def format_for(path: Path) -> str:
    """The Pillow format name for a destination path; OutputError for unsupported extensions."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"unsupported output extension {path.suffix!r} for {path}")
    return fmt


def read_metadata(path: Path) -> CarriedMetadata:
    """EXIF/XMP/ICC of `path` without decoding its pixels."""
    try:
        with Image.open(path) as im:
            info = im.info
            xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
            if isinstance(xmp, str):
                xmp = xmp.encode("utf-8")
            return CarriedMetadata(
                exif=info.get("exif") or None,
                xmp=xmp or None,
                icc=info.get("icc_profile") or None,
                original_orientation=info.get("original_orientation"),
            )
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read metadata from {path}: {exc}") from exc


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 from float [0,1] (rounded, clipped) or uint8; anything else is an error."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise OutputError(f"expected an HxWx3 image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise OutputError("restored image contains NaN or infinite values")
        return np.ascontiguousarray(np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8))
    raise OutputError(f"unsupported image dtype {arr.dtype}")


def _prepare_metadata(
    meta: CarriedMetadata,
    *,
    width: int,
    height: int,
    upright: bool,
    keep_live_identity: bool,
    provenance: Mapping[str, Any] | None,
) -> CarriedMetadata:
    exif = meta.exif
    if exif:
        try:
            exif = patch_exif(
                exif,
                width=width,
                height=height,
                orientation=1 if upright else meta.original_orientation,
                drop_maker_note=not keep_live_identity,
            )
        except ExifFormatError as exc:
            raise OutputError(f"cannot carry EXIF over safely: {exc}") from exc
    try:
        xmp = merge_xmp(
            meta.xmp,
            provenance=provenance,
            width=width,
            height=height,
            reset_orientation=upright,
        )
    except XmpError as exc:
        # Losing a person's captions or ratings is worse than missing our provenance.
        log.warning("xmp_not_parseable", error=str(exc))
        xmp = meta.xmp
    return CarriedMetadata(exif=exif, xmp=xmp, icc=meta.icc)


def encode_image(pixels: np.ndarray, fmt: str, meta: CarriedMetadata, quality: int | None) -> bytes:
    """Encode uint8 pixels with the prepared metadata; returns the file's bytes."""
    im = Image.fromarray(pixels)
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if meta.icc:
        kwargs["icc_profile"] = meta.icc
    exif = meta.exif
    if fmt == "JPEG":
        if exif and not exif.startswith(b"Exif\x00\x00"):
            exif = b"Exif\x00\x00" + exif
        if exif and len(exif) > JPEG_APP1_LIMIT:
            raise OutputError(f"EXIF block of {len(exif)} bytes does not fit a JPEG APP1 segment")
        if meta.xmp and len(meta.xmp) + 29 > JPEG_APP1_LIMIT:
            raise OutputError(f"XMP packet of {len(meta.xmp)} bytes does not fit a JPEG segment")
        kwargs["quality"] = quality or DEFAULT_QUALITY["JPEG"]
        kwargs["optimize"] = True
    elif fmt == "HEIF":
        kwargs["quality"] = quality or DEFAULT_QUALITY["HEIF"]
    if exif:
        kwargs["exif"] = exif
    if meta.xmp and fmt == "PNG":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", meta.xmp.decode("utf-8", "replace"))
        kwargs["pnginfo"] = info
    elif meta.xmp:
        kwargs["xmp"] = meta.xmp
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def verify_image(path: Path, width: int, height: int) -> None:
    """Decode `path` fully once: the job only succeeds on a file that really opens."""
    try:
        with Image.open(path) as im:
            im.load()
            size = im.size
    except Exception as exc:
        raise OutputError(f"written file {path.name} does not decode: {exc}") from exc
    if size != (width, height):
        raise OutputError(f"written file decodes as {size}, expected {(width, height)}")


def write_image(
    path: Path,
    rgb: np.ndarray,
    *,
    like: Path | None = None,
    quality: int | None = None,
    xmp_provenance: Mapping[str, Any] | None = None,
    upright: bool = True,
    keep_live_identity: bool = True,
    mode: int = 0o644,
    owner: tuple[int, int] | None = None,
    create_dirs: bool = True,
    root: Path | None = None,
    fence: Fence | None = None,
    staged: Callable[[FileSignature], None] | None = None,
) -> FileSignature:
    """Write `rgb` to `path` atomically, in the format of its extension, metadata from `like`.

    `upright`: the pixels are already in display orientation, so EXIF/XMP Orientation becomes 1.
    `keep_live_identity=False` drops the maker note (the Apple ContentIdentifier) so a copy
    beside the original does not become a second Live Photo of the same MOV.
    `create_dirs`: create missing parent directories (the sidecar tree mirrors the library).
    `root`, `fence`, `staged`: see `atomic_write` (no symlink followed below the root; the lease
    check immediately before the rename; the output named before its rename).
    Returns the final file's signature; raises `OutputError` with nothing left behind on failure.
    """
    path = Path(path)
    fmt = format_for(path)
    pixels = to_uint8(rgb)
    height, width = pixels.shape[:2]
    meta = read_metadata(like) if like is not None else CarriedMetadata()
    meta = _prepare_metadata(
        meta,
        width=width,
        height=height,
        upright=upright,
        keep_live_identity=keep_live_identity,
        provenance=xmp_provenance,
    )
    try:
        data = encode_image(pixels, fmt, meta, quality)
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"encoding {fmt} for {path.name} failed: {exc}") from exc
    signature = atomic_write_bytes(
        path,
        data,
        mode=mode,
        owner=owner,
        verify=lambda temp: verify_image(temp, width, height),
        create_dirs=create_dirs,
        root=root,
        fence=fence,
        staged=staged,
    )
    log.info("output_written", path=str(path), size=signature.size, format=fmt)
    return signature
