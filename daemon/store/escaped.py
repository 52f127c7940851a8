"""Column types that store any file name losslessly: the store's one text boundary.

Paths, asset keys and the messages that quote them can hold bytes that are not UTF-8 (carried
in Python as surrogate escapes), which SQLite and PostgreSQL refuse in text and JSON columns
alike. These types write every string through `daemon.files.names.escape` (printable UTF-8:
`album-\\xff\\xfe`) and read it back through `unescape`, so callers put and get plain `str`
and `os.fsencode` of what comes back is the name's bytes. Being column types, they also apply
to the values a query compares with (`assets.c.key == key`), so lookups match what was stored.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Text
from sqlalchemy.types import TypeDecorator

from daemon.files.names import escape, unescape


def _map_strings(value: Any, fn: Any) -> Any:
    """`value` with `fn` applied to every string in it, dictionary keys included."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {_map_strings(k, fn): _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, fn) for v in value]
    return value


class EscapedText(TypeDecorator[str]):
    """TEXT holding any `str`, file names with undecodable bytes included."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else escape(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else unescape(value)


class EscapedJSON(TypeDecorator[Any]):
    """JSON whose strings (keys and values) may be any `str`. Takes JSON's arguments
    (`none_as_null`)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return _map_strings(value, escape)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return _map_strings(value, unescape)
