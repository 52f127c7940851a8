"""State shared by the CLI commands: where the settings come from, and how errors look."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from daemon.settings import Settings

console = Console()
console_err = Console(stderr=True)


class OperationalError(Exception):
    """Something the person can fix (bad config, unreachable database...): exit code 1."""


@dataclass
class CliState:
    config_path: Path | None = None
    log_level: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """Load (once) and validate the settings; a bad value becomes an OperationalError."""
        if self._settings is None:
            from daemon.logging import configure_logging
            from daemon.settings import SettingsError, load_settings

            try:
                self._settings = load_settings(self.config_path)
            except SettingsError as exc:
                raise OperationalError(str(exc)) from None
            level = self.log_level or self._settings.logging.level
            configure_logging(level=level, fmt=self._settings.logging.format)
        return self._settings


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):  # commands invoked without the root callback (tests)
        obj = CliState()
        ctx.find_root().obj = obj
    return obj


def get_settings(ctx: typer.Context) -> Settings:
    return state(ctx).settings()
