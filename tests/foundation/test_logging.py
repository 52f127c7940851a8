"""Logging: JSON lines with stable keys off a terminal, readable text on one."""

from __future__ import annotations

import io
import json

import structlog

from daemon.logging import choose_renderer, configure_logging


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_the_stable_keys() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream=stream)
    structlog.get_logger("lmd.test").info(
        "job_failed", job_id=7, asset="2024/IMG_1", path="/p/IMG_1.HEIC", error="truncated"
    )
    structlog.get_logger("lmd.test").debug("hidden_below_level")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    record = lines[0]
    assert record["event"] == "job_failed"
    assert record["job_id"] == 7
    assert record["asset"] == "2024/IMG_1"
    assert record["path"] == "/p/IMG_1.HEIC"
    assert record["error"] == "truncated"
    assert record["level"] == "info"
    assert "timestamp" in record


def test_console_on_a_terminal_and_stdlib_loggers_are_routed() -> None:
    stream = FakeTTY()
    configure_logging("debug", "auto", stream=stream)
    import logging

    logging.getLogger("some.library").warning("from stdlib")
    text = stream.getvalue()
    assert "from stdlib" in text
    assert not text.lstrip().startswith("{")
    assert choose_renderer("json", FakeTTY()) == "json"
    assert choose_renderer("auto", io.StringIO()) == "json"
