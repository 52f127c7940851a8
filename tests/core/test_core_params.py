"""The one coercion of restorer parameters (core.params), as both guided schemas use it."""

from __future__ import annotations

import math

import pytest

from core.api import RestoreError
from core.params import coerce, finite


def test_numbers_are_taken_only_when_finite_and_of_the_declared_kind():
    assert coerce("r", "tile", 96.0, int) == 96 and isinstance(coerce("r", "tile", 96.0, int), int)
    assert coerce("r", "sigma", 6, float) == 6.0
    assert coerce("r", "seed", None, int | None) is None
    assert coerce("r", "seed", 7, int | None) == 7
    for value, kind, what in (
        (96.5, int, "an integer"),
        (True, int, "an integer"),  # a bool is never a number
        (math.nan, float, "a finite number"),
        (10**400, float, "a finite number"),  # an int beyond any float (TOML allows it)
        ("wide", float, "a finite number"),
        ("yes", bool, "true or false"),
        (3, str, "text"),
        (None, int, "an integer"),  # None only where the field allows it
    ):
        with pytest.raises(RestoreError, match=f"^r: parameter p must be {what}, got "):
            coerce("r", "p", value, kind)


def test_finite_survives_integers_beyond_any_float():
    assert finite(1e308) and not finite(math.inf) and not finite(math.nan)
    assert not finite(10**400)
