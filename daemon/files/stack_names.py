"""The name a viewer stacks with its original: `[output] naming = "photoprism"`.

One home for the rule, in `daemon/files/` because both sides of lmd read it: the output plan
names a beside output with it (`daemon.output.plan.beside_output_name`), and the scanner,
which may not import the output package, ignores files so named as lmd's own outputs.

PhotoPrism always stacks files of one folder that share the name but for the extension
(docs.photoprism.app, Library settings, "Stacks"); an output keeps its original's format, so
it cannot take that name. Its related-file rule (`internal/photoprism/mediafile_related.go`)
also stacks ``NAME_????.ext`` (an underscore and exactly four characters) with ``NAME``, and
matches those after the same-name files, so of two HEICs the ``_????`` one becomes the
primary: the restoration is the stack's cover. Why not Apple's edit name (``IMG_E1234``),
which PhotoPrism stacks too: Photos' own edit export uses it, lmd's scanner reads it as the
Live Photo's edited still, and a name chosen by which files exist would change between two
plans of the same job.
"""

from __future__ import annotations

PHOTOPRISM_STACK_SUFFIX = "_lmdr"
"""An underscore and four characters: PhotoPrism's `NAME_????` related-file rule."""


def photoprism_stack_name(target_name: str) -> str:
    """``IMG_1234.HEIC`` → ``IMG_1234_lmdr.HEIC`` (see the module doc). Raises ValueError for a
    name without a stem or an extension (PhotoPrism's patterns need one)."""
    stem, dot, ext = target_name.rpartition(".")
    if not dot or not stem or not ext or "/" in target_name or "\x00" in target_name:
        raise ValueError(f"cannot derive a PhotoPrism stack name from {target_name!r}")
    return f"{stem}{PHOTOPRISM_STACK_SUFFIX}.{ext}"
