"""State shared by the CLI commands: where the settings come from, and how errors look."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from daemon.settings import Settings

# Rich honours NO_COLOR (and a pipe: no colour, no cursor movement) on its own.
console = Console()
console_err = Console(stderr=True)

EXIT_OK = 0
EXIT_FAILED = 1
"""An operational error: something the person can fix, explained in one message."""
EXIT_USAGE = 2
"""A wrong option, argument or value on the command line (click's convention)."""
EXIT_INTERNAL = 70
"""A bug: an exception nothing expected (EX_SOFTWARE in sysexits.h)."""
EXIT_INTERRUPTED = 130

STORE_INTEGER_MAX = 2**31 - 1
"""Job IDs and other INTEGER columns of the job table are 32-bit on PostgreSQL: a larger number
on the command line is a usage error, not an OverflowError inside the database driver."""

JobIdArg = Annotated[
    int, typer.Argument(min=1, max=STORE_INTEGER_MAX, help="The job's ID (`lmd jobs list`).")
]
"""A job ID argument: a usage error (exit 2) outside 1..2**31-1."""


class OperationalError(Exception):
    """Something the person can fix (bad config, unreachable database...): exit code 1."""


@dataclass
class CliState:
    config_path: Path | None = None
    log_level: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def flags(self) -> dict[str, str]:
        """Settings set by a command-line flag of this run: dotted key -> flag."""
        return {"logging.level": "--log-level"} if self.log_level else {}

    def settings(self) -> Settings:
        """Load (once) and validate the settings; a bad value becomes an OperationalError."""
        if self._settings is None:
            from daemon.logging import configure_logging
            from daemon.settings import SettingsError, load_settings

            overrides = {"logging": {"level": self.log_level}} if self.log_level else {}
            try:
                self._settings = load_settings(
                    self.config_path, flags=self.flags(), **overrides
                )
            except SettingsError as exc:
                raise OperationalError(str(exc)) from None
            logging = self._settings.logging
            configure_logging(level=logging.level, fmt=logging.format)
        return self._settings

    @property
    def debug(self) -> bool:
        """Whether this run asked for debug output (flag, or the loaded settings)."""
        if self.log_level == "debug":
            return True
        return self._settings is not None and self._settings.logging.level == "debug"


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):  # commands invoked without the root callback (tests)
        obj = CliState()
        ctx.find_root().obj = obj
    return obj


def get_settings(ctx: typer.Context) -> Settings:
    return state(ctx).settings()
