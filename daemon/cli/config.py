"""`lmd config show`: the effective configuration and where each value came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from daemon.cli.context import console, get_settings, state


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)

    @config_app.command("show")
    def show(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Print every setting, its effective value and its source (default, file, env)."""
        from daemon.settings import describe_sources

        settings = get_settings(ctx)
        cli_state = state(ctx)
        rows = describe_sources(settings, cli_state.config_path, cli_state.flags())
        if as_json:
            payload = {key: {"value": value, "source": source} for key, value, source in rows}
            console.print_json(json.dumps(payload, default=str))
            return
        table = Table("setting", "value", "source")
        for key, value, source in rows:
            shown = str(value) if isinstance(value, (str, Path)) else repr(value)
            table.add_row(key, shown, source)
        console.print(table)

    app.add_typer(config_app, name="config")
