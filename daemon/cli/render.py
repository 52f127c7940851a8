"""How commands print: tables fit for a terminal or for a pipe, and JSON, in one place.

On a terminal a table is a rich table (wrapped to the window, coloured unless NO_COLOR). In a
pipe or a file it is tab-separated text: a header line, then one line per row with every value
whole (no 80-column cut, no ellipsis, no box drawing), so `lmd jobs list | cut -f4` gives whole
paths. Values are shown in the escaped form of `daemon.files.names`, on a terminal and in a pipe
alike: a tab, newline or backslash inside a value is written as `\\t`, `\\n`, `\\\\`, a name's
byte that is not UTF-8 as `\\xff` (never a raw byte or a failed write); a table's
title, when it has one, is a line of its own starting with `# `. An empty listing prints a
sentence saying so instead ("no failed jobs"): on the terminal on stdout; piped, on stderr, so
that the data stream stays empty.

`--json` output goes through `echo_json`: one JSON document on stdout, indented, no colour. The
shape each command prints is documented in docs/json-output.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from daemon.cli.context import console, console_err
from daemon.files.names import escape as escape_name


def _text(value: Any) -> str:
    return "" if value is None else escape_name(str(value))


def tsv_field(value: Any) -> str:
    """One value as a field of a tab-separated line: whole, with separators escaped."""
    return _text(value)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    empty: str | None = None,
    out: Console | None = None,
) -> None:
    """Print `rows` under `columns` as a rich table on a terminal, as TSV otherwise.

    Values are printed as given (`str()`), never read as rich markup; a `rich.text.Text` value
    keeps its style on the terminal (a coloured status) and is plain text in TSV. With `empty`,
    a listing without rows prints that sentence instead of a table."""
    out = out or console
    rows = [list(row) for row in rows]
    if not rows and empty is not None:
        if out.is_terminal:
            out.print(escape(empty))
        else:
            console_err.print(escape(empty), soft_wrap=True)
        return
    if not out.is_terminal:
        lines = [f"# {title}"] if title else []
        lines.append("\t".join(tsv_field(c) for c in columns))
        lines.extend("\t".join(tsv_field(v) for v in row) for row in rows)
        # Not through rich: no wrapping, no highlighting, nothing but the text.
        out.file.write("\n".join(lines) + "\n")
        out.file.flush()
        return
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(v if isinstance(v, Text) else escape(_text(v)) for v in row))
    out.print(table, soft_wrap=False)


def clip(value: Any, width: int) -> str:
    """A long value cut to `width` characters on a terminal (the table stays readable; `lmd
    jobs show` has it whole); whole in a pipe, where nothing is cut. Not escaped yet: the
    table and `say` escape what they print (escaping here too showed `\\\\xff` for `\\xff`)."""
    text = "" if value is None else str(value)
    if not console.is_terminal or len(_text(text)) <= width:
        return text
    return text[: width - 1] + "…"


def literal(value: Any) -> str:
    """`value` inside a line of rich markup (`say(..., markup=True)`): a name in its escaped
    form, and its `[` taken literally, never as a style."""
    return escape(_text(value))


def echo_json(data: Any) -> None:
    """The `--json` output of a command: one document on stdout (datetimes as ISO text)."""
    typer.echo(json.dumps(data, indent=2, default=str))


def say(text: str, *, err: bool = False, markup: bool = False) -> None:
    """One line, flushed at once (a pipe sees it as it happens), never wrapped in a pipe.
    `text` is taken literally (paths may hold `[`), in its escaped form (`daemon.files.names`),
    unless `markup` says it is rich markup."""
    target = console_err if err else console
    if not markup:
        text = escape_name(text)
    target.print(text, soft_wrap=True, markup=markup, highlight=False)
    target.file.flush()
