"""The target's XMP sidecar in replace mode, kept so that `lmd revert` gives it back too.

With `[output] xmp_sidecar = true` in replace mode, the output is the target itself, so the
sidecar lmd writes (`NAME.ext.xmp`, the digiKam/darktable/Immich name) is the target's own
sidecar path: a person's sidecar there is rewritten (its tags carried over, lmd's provenance
added), and where there was none lmd adds one. Revert must give back what was there, so beside
the backup of the still lmd keeps:

- `<backup>.xmp.was`: the person's sidecar as it was before lmd first wrote there (absent when
  there was none);
- `<backup>.xmp.lmd`: a small JSON note, `{"before": bool, "written": digest}`: whether a
  sidecar was there before, and the digest of the sidecar lmd wrote last.

Revert (`put_sidecar_back`) restores the person's sidecar, or removes lmd's, but only while the
sidecar still is the one lmd wrote: a sidecar someone edited since (a rating set in digiKam)
is left as it is, and said so. A redo over an earlier replace keeps the first "before": lmd's
own sidecar is never taken for the person's. Both names are no longer than the record's
suffix, so they fit wherever the backup's record does.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import structlog

from core import hashing
from daemon.output.atomic import atomic_write_bytes

log = structlog.get_logger(__name__)

WAS_SUFFIX = ".xmp.was"
NOTE_SUFFIX = ".xmp.lmd"


def sidecar_of(media: Path) -> Path:
    """`IMG_E1234.HEIC` -> `IMG_E1234.HEIC.xmp` (the name `daemon.publish.xmp_sidecar` writes)."""
    return media.with_name(media.name + ".xmp")


def _was(backup: Path) -> Path:
    return backup.with_name(backup.name + WAS_SUFFIX)


def _note(backup: Path) -> Path:
    return backup.with_name(backup.name + NOTE_SUFFIX)


def _read_note(backup: Path) -> dict[str, object] | None:
    try:
        note = json.loads(_note(backup).read_bytes())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def keep_sidecar_before(backup: Path, target: Path) -> bool:
    """Before lmd writes the target's sidecar: keep the person's (once per backup). Returns
    whether there was one before lmd's first write."""
    note = _read_note(backup)
    if note is not None:
        return bool(note.get("before"))
    sidecar = sidecar_of(target)
    try:
        data = sidecar.read_bytes()
    except FileNotFoundError:
        return False
    atomic_write_bytes(_was(backup), data)
    return True


def note_sidecar_written(backup: Path, target: Path, before: bool) -> None:
    """After lmd wrote the target's sidecar: remember its digest (revert only takes back that)."""
    written = hashing.digest_file(sidecar_of(target))
    data = json.dumps({"before": before, "written": written}).encode("ascii")
    atomic_write_bytes(_note(backup), data)


def put_sidecar_back(backup: Path, target: Path) -> None:
    """After the original still is back: the person's sidecar back, or lmd's removed, while the
    sidecar is still the one lmd wrote; then forget both files. Never raises for the sidecar
    (the still is what revert is about): a problem is logged."""
    note = _read_note(backup)
    if note is None:  # lmd never wrote the sidecar (or not since this backup was made)
        forget_sidecar(backup)
        return
    sidecar = sidecar_of(target)
    try:
        if not hashing.matches(sidecar, str(note.get("written"))):
            log.warning("xmp_sidecar_kept", path=str(sidecar),
                        reason="changed since lmd wrote it; left as it is")
        elif note.get("before"):
            atomic_write_bytes(sidecar, _was(backup).read_bytes())
        else:
            sidecar.unlink()
    except FileNotFoundError:
        pass  # the person removed it: nothing of lmd's is left there
    except (OSError, hashing.UnknownDigest) as exc:
        log.warning("xmp_sidecar_not_put_back", path=str(sidecar), error=str(exc))
    forget_sidecar(backup)


def forget_sidecar(backup: Path) -> None:
    for path in (_was(backup), _note(backup)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
