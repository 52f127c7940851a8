"""structlog set-up: readable lines on a terminal, JSON lines for journald and files.

The keys are stable so that `journalctl -o json` and log shippers can filter on them:
`event` (what happened), `job_id`, `asset` (library-relative key), `path`, `error`, plus
`level`, `logger` and an ISO `timestamp`. Values holding a file name's bytes that are not
UTF-8, or control characters, are written escaped (`album-\\xff\\xfe`, `daemon.files.names`),
never as raw bytes or a failed write.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import PurePath
from typing import Any, Literal, TextIO

import structlog

from daemon.files.names import escape, needs_escape

LogFormat = Literal["auto", "console", "json"]


def choose_renderer(fmt: LogFormat, stream: TextIO) -> Literal["console", "json"]:
    """`auto` means console on a terminal, JSON otherwise (systemd, pipes, files)."""
    if fmt != "auto":
        return fmt
    return "console" if stream.isatty() else "json"


def wants_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to anything (no-color.org),
    the rule rich applies to every other line lmd prints."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


_VERBATIM = frozenset({"exception", "stack"})  # tracebacks keep their lines


def escape_names(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: a value (a path, a key, a message quoting them) that holds bytes
    that are not UTF-8 or control characters is written in its escaped form."""
    for key, value in event.items():
        text = str(value) if isinstance(value, PurePath) else value
        if key not in _VERBATIM and isinstance(text, str) and needs_escape(text):
            event[key] = escape(text)
    return event


def configure_logging(
    level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library (alembic, apscheduler) the same way."""
    stream = stream or sys.stderr
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    renderer: structlog.typing.Processor
    if choose_renderer(fmt, stream) == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=wants_colour(stream))
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        escape_names,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for noisy in ("PIL", "watchdog", "apscheduler", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
