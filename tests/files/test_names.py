"""The escaped text form of file names (`daemon.files.names`): lossless, printable, UTF-8."""

from __future__ import annotations

import os
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from daemon.files.names import escape, needs_escape, unescape

#: names as Linux allows them: any bytes but NUL and '/'
name_bytes = st.binary(min_size=1, max_size=64).map(
    lambda b: b.replace(b"\0", b"a").replace(b"/", b"b")
)


@given(st.text())  # every str, lone surrogates included
def test_every_string_round_trips(text: str) -> None:
    assert unescape(escape(text)) == text


@given(name_bytes)
def test_every_name_round_trips_to_its_bytes_as_utf8_text(raw: bytes) -> None:
    shown = escape(os.fsdecode(raw))
    shown.encode("utf-8")  # what SQLite, PostgreSQL and a terminal need
    # one line, no control characters: nothing a terminal or a log line would act on
    assert not {unicodedata.category(c) for c in shown} & {"Cc", "Cs", "Zl", "Zp"}
    assert os.fsencode(unescape(shown)) == raw


def test_the_shown_form_reads_as_the_bytes() -> None:
    assert escape(os.fsdecode(b"album-\xff\xfe")) == "album-\\xff\\xfe"
    assert escape("new\nline\ttab") == "new\\nline\\ttab"
    assert escape("back\\slash") == "back\\\\slash"
    assert escape("\x01\x7f\x85") == "\\x01\\x7f\\u0085"
    assert escape("\ud800") == "\\ud800"  # a lone surrogate no filesystem gives
    assert escape("a\u2028b") == "a\\u2028b"


def test_plain_names_are_their_own_form() -> None:
    for name in ("IMG_0001.HEIC", "Café/Résumé.MOV", "-rf", "日本語.jpg", "[x].jpg"):
        assert escape(name) == name and unescape(name) == name
        assert not needs_escape(name)


def test_text_without_escapes_reads_as_it_is() -> None:
    """Rows written before the codec: a backslash that starts no escape stays."""
    assert unescape("C:\\Photos\\IMG.jpg") == "C:\\Photos\\IMG.jpg"
    assert unescape("\\q\\x4") == "\\q\\x4"
