"""Where a restored still goes: a mirrored tree, beside the target, or in place of it.

The worker plans from the output pinned on the job row at enqueue (`OutputSettingsLike` is
what `daemon.store.OutputSpec` provides), before the restoration starts: a destination that
is unsafe or cannot be planned fails the job with the reason and costs no restoration. The
reference original (the high-quality key photo) is never a destination in any mode.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from core.hashing import digest_file
from daemon.files.stack_names import photoprism_stack_name
from daemon.output.errors import OutputError, ReferenceTargetError
from daemon.output.replace import backup_name

PlanKind = Literal["sidecar-tree", "sidecar-beside", "replace"]
RECOMMENDED_SUFFIX = "_lmd"
#: `[output] naming`: how a beside output is named (see `beside_output_name`)
NAMINGS = ("suffix", "photoprism")


class OutputSettingsLike(Protocol):
    """The fields planning reads: those of `daemon.store.OutputSpec` (the output pinned on a
    job) and of `daemon.settings.OutputSettings`."""

    mode: str
    location: str
    tree: Path | None
    suffix: str
    backup_dir: Path | None
    naming: str


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """A decided destination. `backup` is set in replace mode only.

    `keep_live_identity` says whether the Apple ContentIdentifier is carried into the output:
    yes when the output stands in for the target (replace) or lives outside the library (tree),
    no beside the target, where it would make a second Live Photo of the same MOV.
    """

    kind: PlanKind
    target: Path
    destination: Path
    relative: Path
    backup: Path | None = None
    keep_live_identity: bool = True


def check_beside_suffix(suffix: str) -> None:
    """Reject suffixes that make photo tools pair or stack the copy with the original.

    From live-photo-formats.md §3.4:
    - a leading "." (``IMG_1234.lmd.HEIC``) is stripped with the extension by PhotoPrism's
      ``BasePrefix`` and by tools that pair stills and MOVs on the text before the first dot,
      so the copy would join the original's file group and pair with ``IMG_1234.MOV``;
    - ``_`` plus exactly four characters (``_HEVC``-like) matches PhotoPrism's ``prefix_????``
      related-file rule and is stacked into the original;
    - an ``E`` right after ``IMG_`` would be Apple's edited-render name (``IMG_E1234``); a suffix
      cannot produce that, but path separators could, so they are refused too.
    ``_lmd`` (the recommended suffix, as in ecosystem-expectations.md §9.2 ``IMG_1234_lmd.HEIC``)
    avoids all of these. A visible file in the library is still imported by Immich as its own
    asset; that is why the beside output drops the ContentIdentifier (no second Live Photo of the
    same MOV), and why the default location is the separate tree.
    """
    if not suffix or "/" in suffix or "\\" in suffix or "\x00" in suffix:
        raise OutputError(f"invalid output suffix {suffix!r}; use {RECOMMENDED_SUFFIX!r}")
    if suffix.startswith("."):
        raise OutputError(
            f"output suffix {suffix!r} starts with a dot: PhotoPrism groups "
            f"'IMG_1234{suffix}.HEIC' with IMG_1234 and tools pairing on the stem match the "
            f"original's MOV; set output.suffix = {RECOMMENDED_SUFFIX!r}"
        )
    if re.fullmatch(r"_.{4}", suffix):
        raise OutputError(
            f"output suffix {suffix!r} matches PhotoPrism's 'name_????' stacking rule; "
            f"use {RECOMMENDED_SUFFIX!r} (or output.naming = 'photoprism' to have "
            "PhotoPrism stack the output with its original)"
        )


def beside_name(target_name: str, suffix: str) -> str:
    """``IMG_1234.HEIC`` + ``_lmd`` → ``IMG_1234_lmd.HEIC`` (the extension keeps the format)."""
    check_beside_suffix(suffix)
    stem, dot, ext = target_name.rpartition(".")
    if not dot:
        return target_name + suffix
    return f"{stem}{suffix}.{ext}"


def beside_output_name(target_name: str, output: OutputSettingsLike) -> str:
    """The name of a beside output under `output.naming`: lmd's suffix (`beside_name`) or a
    name PhotoPrism stacks with the original (`daemon.files.stack_names`)."""
    naming = getattr(output, "naming", "suffix")
    if naming == "photoprism":
        try:
            return photoprism_stack_name(target_name)
        except ValueError as exc:
            raise OutputError(str(exc)) from None
    if naming != "suffix":
        raise OutputError(f"unknown output naming {naming!r}; expected one of {NAMINGS}")
    return beside_name(target_name, output.suffix)


def relative_to_library(target: Path, library_root: Path) -> Path:
    """The target's path inside the library (lexically first, then with symlinks resolved)."""
    target_abs = Path(os.path.abspath(target))
    root_abs = Path(os.path.abspath(library_root))
    for t, r in ((target_abs, root_abs), (target_abs.resolve(), root_abs.resolve())):
        try:
            rel = t.relative_to(r)
        except ValueError:
            continue
        if rel.parts and ".." not in rel.parts:
            return rel
    raise OutputError(f"{target} is not inside the library {library_root}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def plan_output(
    asset_target: Path,
    library_root: Path,
    output: OutputSettingsLike,
    *,
    references: tuple[Path, ...] | list[Path] = (),
    target_hash: str | None = None,
) -> OutputPlan:
    """Decide the destination for `asset_target` under the `output` settings.

    `references` are the asset's reference originals: a plan that would write onto one raises
    `ReferenceTargetError`. In replace mode the backup name carries the first 8 hex digits of the
    target's content digest (`target_hash`, or read from the file), so backups of different
    versions of the same still never overwrite each other.
    """
    target = Path(os.path.abspath(asset_target))
    relative = relative_to_library(target, library_root)
    for ref in references:
        if _same_file(target, Path(ref)) and output.mode == "replace":
            raise ReferenceTargetError(f"refusing to replace the reference original {ref}")

    plan: OutputPlan
    if output.mode == "replace":
        if output.backup_dir is None:
            raise OutputError("replace mode needs output.backup_dir")
        digest = target_hash or digest_file(target)
        backup = Path(output.backup_dir) / relative.parent / backup_name(relative.name, digest)
        plan = OutputPlan("replace", target, target, relative, backup=backup)
    elif output.mode == "sidecar" and output.location == "beside":
        dest = target.with_name(beside_output_name(target.name, output))
        plan = OutputPlan("sidecar-beside", target, dest, relative, keep_live_identity=False)
    elif output.mode == "sidecar" and output.location == "tree":
        if output.tree is None:
            raise OutputError("sidecar tree mode needs output.tree")
        dest = Path(os.path.abspath(Path(output.tree) / relative))
        if _same_file(dest, target):
            raise OutputError(f"output.tree {output.tree} maps {target} onto itself")
        plan = OutputPlan("sidecar-tree", target, dest, relative)
    else:
        raise OutputError(f"unknown output mode {output.mode!r}/{output.location!r}")

    for ref in references:
        if _same_file(plan.destination, Path(ref)):
            raise ReferenceTargetError(f"output {plan.destination} would overwrite reference {ref}")
    return plan
