"""`lmd`: the command line.

The root app only wires things together: global options (`--config`, `--log-level`,
`--version`) and the command groups, each in its own module with a `register(app)` function, so
that every concern keeps one home (`scan` next to discovery, `restore` next to `core`, ...).
The examples at the end of every `--help` come from one table (`daemon.cli.examples`).

Exit codes (`lmd --help` and the README say the same): 0 done, 1 failed (an operational error,
one message), 2 usage error, 70 internal error (a bug; never a raw traceback unless asked for
with `--log-level debug`), 130 interrupted.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from daemon.cli.context import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    CliState,
    OperationalError,
    console_err,
)
from daemon.cli.examples import attach_examples, epilog
from daemon.files.names import escape as escape_name

COMMAND_MODULES = ("config", "jobs", "scan", "restore", "model", "outputs", "service", "train",
                   "video", "review")


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


app = typer.Typer(
    name="lmd",
    help="Restore reselected Live Photo key photos across a photo library.",
    epilog=epilog(""),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Inherited by every sub-command and group: `lmd jobs list -h` works like `--help`.
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"lmd {version('lmd')}")
        except PackageNotFoundError:
            typer.echo("lmd (not installed: running from a source tree)")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML configuration file (default: $LMD_CONFIG)."),
    ] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option("--log-level", case_sensitive=False,
                     help="Override logging.level for this run."),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True,
                     help="Print lmd's version and exit."),
    ] = False,
) -> None:
    cli_state = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
    cli_state.config_path = config
    cli_state.log_level = log_level.value if log_level is not None else None
    ctx.obj = cli_state


for _name in COMMAND_MODULES:
    _module = importlib.import_module(f"daemon.cli.{_name}")
    _module.register(app)
attach_examples(app)


def _internal_error(exc: BaseException, cli_state: CliState) -> int:
    """An exception nothing expected: one line naming it, the traceback only on request."""
    if cli_state.debug:
        console_err.print(escape("".join(traceback.format_exception(exc))), soft_wrap=True)
    console_err.print(
        f"[bold red]lmd: internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}"
        " (run with --log-level debug for the details)",
        soft_wrap=True,
    )
    return EXIT_INTERNAL


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: every outcome is an exit code and at most one message."""
    cli_state = CliState()
    try:
        # Without standalone mode click returns the exit code of `typer.Exit` instead of
        # calling sys.exit, and a command's own return value otherwise (None: success).
        result = app(args=argv, prog_name="lmd", standalone_mode=False, obj=cli_state)
    except OperationalError as exc:
        # names in the escaped form of every other line, each line of the message kept
        shown = "\n".join(escape_name(line) for line in str(exc).split("\n"))
        console_err.print(f"[bold red]lmd:[/] {escape(shown)}", soft_wrap=True)
        return EXIT_FAILED
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        console_err.print("aborted")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `lmd jobs list | head`: the reader left; say nothing more to it (Python's advice:
        # point stdout at devnull so the interpreter's final flush does not fail again).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        # click's usage errors (vendored by typer) know their exit code (2) and how to show
        # themselves; anything else is a bug.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        return _internal_error(exc, cli_state)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
