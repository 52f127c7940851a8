r"""File names as text: the escaped form lmd stores, logs and shows, and its exact inverse.

Linux names are bytes, and any bytes but `/` and NUL are allowed. Python carries the bytes that
are not UTF-8 as lone surrogates (`os.fsdecode`: byte 0xff is U+DCFF), so a path such as
`album-\xff\xfe/IMG_0001.JPG` is a `str` that cannot be encoded as UTF-8: SQLite and
PostgreSQL refuse it (text and JSON alike), and printing it to a terminal fails. `escape`
writes such a string as one line of plain UTF-8 text, and `unescape` gives back the very same
string, so the store keeps every name losslessly and `os.fsencode` of what comes back is the
name's bytes:

- `\\` is a backslash;
- `\xHH` is the byte HH: 80-ff for a byte that is not UTF-8 (a surrogate escape), 00-1f and 7f
  for a control character (`\n`, `\t` and `\r` for the usual three; a name may hold them);
- `\uHHHH` is a C1 control character (U+0080-U+009F), a line or paragraph separator
  (U+2028, U+2029: terminals break lines there), or a lone surrogate that is not a surrogate
  escape (the filesystem never gives one, but a `str` can hold it).

Every other character is itself, so a name that is valid UTF-8 without control characters or
a backslash is its own escaped form, and a shown name is always one line. The escaped form is
also how a name is shown (the CLI, the logs): `album-\xff\xfe` reads as what it is, and can be
typed back as `$'album-\xff\xfe'`.

Text written before this codec existed held no escapes; `unescape` leaves a backslash that
starts no escape as it is, so only old names that contained a literal `\\`, `\xHH`, `\uHHHH`,
`\n`, `\t` or `\r` read differently (a rescan writes them again).
"""

from __future__ import annotations

import re

_NEEDS_ESCAPE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|n|t|r)")
_NAMED = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNNAMED = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def _escape_one(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def _unescape_one(match: re.Match[str]) -> str:
    body = match.group(1)
    if body[0] == "x":
        byte = int(body[1:], 16)
        return chr(byte) if byte < 0x80 else chr(0xDC00 + byte)
    if body[0] == "u":
        return chr(int(body[1:], 16))
    return _UNNAMED[body]


def escape(text: str) -> str:
    """The escaped form of `text`: printable, always encodable as UTF-8, lossless."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return _NEEDS_ESCAPE.sub(_escape_one, text)


def unescape(text: str) -> str:
    """The string `escape` was given (`unescape(escape(s)) == s` for every `str`)."""
    if "\\" not in text:
        return text
    return _ESCAPE.sub(_unescape_one, text)


def needs_escape(text: str) -> bool:
    """Whether `text` holds anything `escape` changes (a byte that is not UTF-8, a control
    character, a lone surrogate or a backslash)."""
    return _NEEDS_ESCAPE.search(text) is not None


def is_utf8(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (JSON, HTTP, another program's database): not
    when it carries a name's bytes that are not UTF-8 (lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
