"""`lmd model`: check, create and complete LiveMoments checkpoint directories.

`check` validates a directory the way the restorer will load it (strict: every tensor named and
shaped), without loading tensor data; `init` writes a random-weight checkpoint in the published
layout for tests, benchmarks and wiring checks; `embed-prompt` computes the empty-prompt
embeddings once from SD3's text encoders so that the daemon never needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from daemon.cli.context import OperationalError, console, console_err, get_settings
from daemon.cli.render import echo_json

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _checkpoint_dir(ctx: typer.Context, directory: Path | None) -> Path:
    if directory is not None:
        return directory
    path = get_settings(ctx).restorer.checkpoint
    if not path:
        raise OperationalError("no checkpoint directory given and restorer.checkpoint is unset")
    return Path(path)


def register(app: typer.Typer) -> None:
    model_app = typer.Typer(help="LiveMoments checkpoints.", no_args_is_help=True)

    @model_app.command("check")
    def check(
        ctx: typer.Context,
        directory: Annotated[
            Path | None, typer.Argument(help="Checkpoint directory (default: restorer.checkpoint).")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Validate a checkpoint directory and print what it holds; exit 1 if it is unusable."""
        from core.livemoments.digest import weights_digest
        from core.livemoments.validate import validate_checkpoint

        path = _checkpoint_dir(ctx, directory)
        report = validate_checkpoint(path)
        if as_json:
            echo_json({
                "path": str(path), "ok": report.ok, "found": report.found,
                "warnings": report.warnings, "errors": report.errors,
                "max_tile": report.max_tile if report.ok else None,
                "digest": weights_digest(path) if report.ok else None,
                "random_weights": report.random_weights,
            })
            if not report.ok:
                raise typer.Exit(1)
            return
        console.print(f"checkpoint {path}")
        for name, description in report.found.items():
            console.print(f"  {name:<15} {description}", markup=False, highlight=False)
        for warning in report.warnings:
            console.print(f"  [yellow]warning:[/] {warning}")
        if not report.ok:
            for error in report.errors:
                console_err.print(f"  error: {error}", markup=False, highlight=False)
            raise OperationalError(f"{path}: not a usable LiveMoments checkpoint")
        if report.max_tile is not None:
            console.print(f"  largest tile    {report.max_tile} px")
        console.print(f"  digest          {weights_digest(path)}")
        kind = "RANDOM WEIGHTS (tests only)" if report.random_weights else "ok"
        console.print(f"  status          {kind}")

    @model_app.command("init")
    def init(
        directory: Annotated[Path, typer.Argument(help="Directory to create.")],
        size: Annotated[str, typer.Option("--size", help="tiny or full.")] = "tiny",
        seed: Annotated[int, typer.Option("--seed")] = 0,
        force: Annotated[bool, typer.Option("--force", help="Write into a non-empty dir.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Write a checkpoint with RANDOM weights in the published layout (not a real model)."""
        from core.livemoments.digest import weights_digest
        from core.livemoments.write import write_random_checkpoint

        if size not in ("tiny", "full"):
            raise typer.BadParameter("size must be 'tiny' or 'full'", param_hint="--size")
        if directory.exists() and any(directory.iterdir()) and not force:
            raise OperationalError(f"{directory} is not empty (use --force to write into it)")
        if size == "full":
            console_err.print("writing full-size random weights (≈9 GB, a few minutes)...")
        write_random_checkpoint(directory, size=size, seed=seed)  # type: ignore[arg-type]
        digest = weights_digest(directory)
        if as_json:
            echo_json({"path": str(directory), "size": size, "seed": seed, "digest": digest,
                       "random_weights": True})
            return
        console.print(f"wrote random {size} checkpoint to {directory}")
        console.print(f"digest {digest}")

    @model_app.command("embed-prompt")
    def embed_prompt(
        ctx: typer.Context,
        sd3: Annotated[
            Path, typer.Option("--sd3", help="Local stable-diffusion-3-medium-diffusers directory.")
        ],
        directory: Annotated[
            Path | None, typer.Argument(help="Checkpoint directory (default: restorer.checkpoint).")
        ] = None,
        max_sequence_length: Annotated[int, typer.Option(help="T5 tokens.")] = 256,
        no_t5: Annotated[bool, typer.Option("--no-t5", help="Zeros for the T5 part.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Compute the empty-prompt embeddings once (needs ≈32 GB RAM with T5)."""
        from core.livemoments.layout import CheckpointError
        from core.livemoments.prompt import encode_empty_prompt
        from core.livemoments.write import save_prompt_embeddings

        path = _checkpoint_dir(ctx, directory)
        if not path.is_dir():
            raise OperationalError(f"{path}: not a directory")
        try:
            prompt, pooled = encode_empty_prompt(sd3, max_sequence_length, use_t5=not no_t5)
        except CheckpointError as exc:
            raise OperationalError(str(exc)) from None
        out = save_prompt_embeddings(path, prompt, pooled)
        if as_json:
            echo_json({"path": str(out), "prompt_shape": list(prompt.shape),
                       "pooled_shape": list(pooled.shape), "t5": not no_t5})
            return
        console.print(f"wrote {out}: {list(prompt.shape)} and {list(pooled.shape)}")

    app.add_typer(model_app, name="model")
