"""`lmd config show`: the effective configuration, the file it came from, and the source of
every value."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from daemon.cli.context import get_settings, state
from daemon.cli.render import echo_json, print_table

CONFIG_FILE_KEY = "config_file"
"""The first row of `lmd config show` (and key of its JSON): which file applies, found how."""


def _shown(key: str, value: object) -> str:
    if key == CONFIG_FILE_KEY and value is None:
        return "(none)"
    return str(value) if isinstance(value, (str, Path)) else repr(value)


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)

    @config_app.command("show")
    def show(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Print the configuration file in use, then every setting, its effective value and its
        source (default, file, env, flag). The file is the first of --config, $LMD_CONFIG,
        ./lmd.toml, ~/.config/lmd/lmd.toml and /etc/lmd/lmd.toml.

        JSON: {"config_file": {"value": PATH|null, "source": HOW}, "KEY": {"value": ...,
        "source": ...}, ...}."""
        from daemon.settings import describe_sources
        from daemon.settings.load import find_config

        settings = get_settings(ctx)
        cli_state = state(ctx)
        choice = find_config(cli_state.config_path)
        rows = [
            (CONFIG_FILE_KEY, str(choice.path) if choice.path else None, choice.found_by),
            *describe_sources(settings, cli_state.config_path, cli_state.flags()),
        ]
        if as_json:
            echo_json({key: {"value": value, "source": source} for key, value, source in rows})
            return
        print_table(("setting", "value", "source"),
                    ((key, _shown(key, value), source) for key, value, source in rows))

    app.add_typer(config_app, name="config")
