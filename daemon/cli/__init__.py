"""`lmd`: the command line.

The root app only wires things together: global options (`--config`, `--log-level`) and
the command groups, each in its own module with a `register(app)` function, so that every
concern keeps one home (`scan` next to discovery, `restore` next to `core`, ...).
Exit codes: 0 ok, 1 operational error (with a message), 2 usage error.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from daemon.cli.context import CliState, OperationalError, console_err

COMMAND_MODULES = ("config", "jobs", "scan", "restore", "model", "outputs", "service")

app = typer.Typer(
    name="lmd",
    help="Restore reselected Live Photo key photos across a photo library.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML configuration file (default: $LMD_CONFIG)."),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="Override logging.level for this run.")
    ] = None,
) -> None:
    ctx.obj = CliState(config_path=config, log_level=log_level)


for _name in COMMAND_MODULES:
    _module = importlib.import_module(f"daemon.cli.{_name}")
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: turns operational errors into exit code 1, never a traceback."""
    try:
        # Without standalone mode click returns the exit code of `typer.Exit` instead of
        # calling sys.exit, and a command's own return value otherwise (None: success).
        result = app(args=argv, standalone_mode=False)
    except OperationalError as exc:
        console_err.print(f"[bold red]lmd:[/] {escape(str(exc))}")
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        console_err.print("aborted")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # click's usage errors (vendored by typer) know their exit code (2) and how to show
        # themselves; anything else is a bug and keeps its traceback.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        raise
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
