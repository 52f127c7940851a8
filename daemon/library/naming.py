"""File-name grouping: which files of one directory belong to one Live Photo.

Names people's tools produce (formats page 1.3): iPhone DCIM `IMG_1234.HEIC` + `IMG_1234.MOV`
+ `IMG_E1234.*` (edited) + `IMG_1234.AAE` / `IMG_O1234.AAE`; icloudpd `IMG_1234_HEVC.MOV` and
`IMG_1234-adjusted.HEIC`; osxphotos and PhotoSync `*_edited.*`; Google `*.MP.jpg`. Grouping
by name is only a first guess; discovery confirms it by ContentIdentifier.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    STILL = "still"
    VIDEO = "video"
    EDITED_STILL = "edited-still"
    EDITED_VIDEO = "edited-video"
    AAE = "aae"
    AAE_ORIGINAL = "aae-original"


STILL_EXTS = frozenset({".heic", ".heif", ".jpg", ".jpeg", ".avif", ".png"})
VIDEO_EXTS = frozenset({".mov", ".mp4"})
AAE_EXTS = frozenset({".aae"})
_ALL_EXTS = STILL_EXTS | VIDEO_EXTS | AAE_EXTS

# DOTALL and \Z: a name may hold a newline (Linux allows any byte but '/' and NUL), and `$`
# would also match before a trailing one.
_FLAGS = re.IGNORECASE | re.DOTALL
_IMG_EO = re.compile(r"(IMG_)([EO])(\d{3,}.*)\Z", _FLAGS)
_EDIT_SUFFIX = re.compile(r"(.*?)([_-](?:edited|adjusted))\Z", _FLAGS)
_HEVC_SUFFIX = re.compile(r"(.*?)(_HEVC)\Z", _FLAGS)
_MP_SUFFIX = re.compile(r"(.*?)(\.MP)\Z", _FLAGS)


@dataclass(frozen=True, slots=True)
class NamedFile:
    """A media file name understood: its group base and its role in the group."""

    name: str
    base: str  # group stem, e.g. "IMG_1234"
    role: Role


#: Names classified so far. A rescan meets the same names again, and classifying (four regular
#: expressions) was a third of an unchanged rescan's time; the answers are immutable.
_NAME_CACHE_SIZE = 1 << 18


@functools.lru_cache(maxsize=_NAME_CACHE_SIZE)
def classify(name: str) -> NamedFile | None:
    """Role and group base of a file name, or None for files discovery ignores.

    `name` is kept exactly as the filesystem spelt it (decomposed Unicode, bytes that are not
    UTF-8 as surrogate escapes): it is joined to the directory to open the file, and Linux
    compares names byte for byte. Only the keys made from `base` are normalised (`group_key`,
    and discovery's asset keys), so one photo spelt two ways is still one group."""
    dot = name.rfind(".")
    if dot <= 0:
        return None
    ext = name[dot:].lower()
    if ext not in _ALL_EXTS:
        return None
    stem = name[:dot]
    if ext in STILL_EXTS:
        kind = "still"
    elif ext in VIDEO_EXTS:
        kind = "video"
    elif ext in AAE_EXTS:
        kind = "aae"
    else:
        return None
    edited = False
    original_aae = False
    m = _IMG_EO.match(stem) if stem[:4].upper() == "IMG_" else None
    if m:
        stem = m.group(1) + m.group(3)
        if m.group(2).upper() == "E":
            edited = True
        else:
            original_aae = True
    m = _EDIT_SUFFIX.match(stem)
    if m and m.group(1):
        stem, edited = m.group(1), True
    if kind == "video":
        m = _HEVC_SUFFIX.match(stem)
        if m and m.group(1):
            stem = m.group(1)
    m = _MP_SUFFIX.match(stem)
    if m and m.group(1):
        stem = m.group(1)
    if kind == "aae":
        role = Role.AAE_ORIGINAL if original_aae else Role.AAE
    elif original_aae:
        return None  # IMG_O only names adjustment files
    elif kind == "still":
        role = Role.EDITED_STILL if edited else Role.STILL
    else:
        role = Role.EDITED_VIDEO if edited else Role.VIDEO
    return NamedFile(name, stem, role)


@functools.lru_cache(maxsize=_NAME_CACHE_SIZE)
def group_key(base: str) -> str:
    """Case-insensitive grouping key (osxphotos lower-cases extensions, DCIM does not)."""
    return unicodedata.normalize("NFC", base).casefold()


def edited_name(stem: str) -> str:
    """The name Apple's tools give a rendered edit: `IMG_1234` -> `IMG_E1234`; other stems get
    `_edited` (osxphotos, PhotoSync). Used for builders and for restored frames that have no
    render of their own."""
    if stem.upper().startswith("IMG_"):
        return stem[:4] + "E" + stem[4:]
    return stem + "_edited"
