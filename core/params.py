"""Restorer parameters checked against their declared types: one coercion for every schema.

Why: parameters reach a restorer from TOML, `--param KEY=VALUE` and job rows, so a word where a
number belongs, a NaN, an infinity or an integer beyond any float must be refused with a
sentence naming the parameter before any work starts, not surface later as a TypeError or an
OpenCV error deep in the restorer. The parameter dataclasses (`core.guided.GuidedParams`,
`core.video.params.GuidedVideoParams`) declare each field's type; `coerce` holds the rules.
"""

from __future__ import annotations

import math
from typing import Any, get_args

from core.api import RestoreError

_WHAT = {float: "a finite number", int: "an integer", bool: "true or false", str: "text"}


def finite(value: float) -> bool:
    """math.isfinite, False for an int beyond any float (TOML and JSON allow them)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def coerce(owner: str, name: str, value: Any, annotation: Any) -> Any:
    """`value` as the field's declared type (`annotation`, e.g. `float` or `int | None`), or a
    RestoreError "`owner`: parameter `name` must be …".

    None is accepted where the annotation allows it; a bool is never a number; an int field
    takes a float only when it is whole (JSON writes 96.0); a float field takes any finite
    number.
    """
    allowed = get_args(annotation)
    if value is None and type(None) in allowed:
        return None
    kinds = [k for k in allowed if k is not type(None)] or [annotation]
    kind = kinds[0]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {
        bool: isinstance(value, bool),
        int: number and (isinstance(value, int) or (finite(value) and float(value).is_integer())),
        float: number and finite(value),
        str: isinstance(value, str),
    }.get(kind, True)
    if not ok:
        what = _WHAT.get(kind, getattr(kind, "__name__", str(kind)))
        raise RestoreError(f"{owner}: parameter {name} must be {what}, got {value!r}")
    return kind(value)
