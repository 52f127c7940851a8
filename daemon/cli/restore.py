"""`lmd restore`: one restoration outside the queue, for trying a restorer on a pair of files.

Reads the reference (original key photo), the reselected frame and optionally the video frame
at the original key time, runs `core.restore` with a progress bar, and writes the result
atomically through `daemon.output.write_image` (never over an input). `--compare` writes a
frame | restored | reference strip so people can see what changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from daemon.cli.context import OperationalError, console, console_err, get_settings

COMPARE_HEIGHT = 1200
"""Height of each panel of the comparison strip, in pixels."""


def _parse_params(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values parsed as JSON when they parse (numbers, booleans), else text."""
    import json

    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        try:
            params[key.strip()] = json.loads(raw)
        except ValueError:
            params[key.strip()] = raw
    return params


def _load(path: Path, what: str) -> np.ndarray:
    from daemon.files.errors import UnreadableFile
    from daemon.library.media import load_still

    if not path.is_file():
        raise OperationalError(f"{what} not found: {path}")
    try:
        # 8 bits: a restorer that streams tiles keeps them (a 108 MP reference stays 324 MB);
        # core.restore converts them to float32 for the others.
        return load_still(path, dtype=np.uint8)
    except UnreadableFile as exc:
        raise OperationalError(f"cannot read {what} {path}: {exc}") from None


def compare_strip(frame: np.ndarray, restored: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """frame | restored | reference, each scaled to COMPARE_HEIGHT (or less), 8 px gaps."""
    from core.images import resize
    from core.resample import as_float

    height = min(COMPARE_HEIGHT, restored.shape[0])
    panels = []
    for image in (frame, restored, reference):
        h, w = image.shape[:2]
        width = max(1, round(w * height / h))
        panels.append(as_float(resize(image, height, width)))  # 8-bit or float in
        panels.append(np.ones((height, 8, 3), np.float32))
    return np.concatenate(panels[:-1], axis=1)


def _restorer_options(ctx: typer.Context, name: str) -> dict[str, Any]:
    """Constructor options for restorer `name` from the configuration, as the worker builds
    them (one home: `daemon.worker.restorer_options`), also when `--restorer` picks a restorer
    other than the configured one."""
    from daemon.worker import restorer_options

    settings = get_settings(ctx)
    section = settings.restorer.model_copy(update={"name": name})
    return restorer_options(settings.model_copy(update={"restorer": section}))


def register(app: typer.Typer) -> None:
    """Add `restore` to the root app."""

    @app.command("restore")
    def restore_cmd(
        ctx: typer.Context,
        reference: Annotated[
            Path, typer.Option("--reference", help="The original high-quality key photo.")
        ],
        frame: Annotated[Path, typer.Option("--frame", help="The reselected low-quality frame.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the result.")],
        reference_lq: Annotated[
            Path | None,
            typer.Option("--reference-lq", help="The video frame at the original key time."),
        ] = None,
        restorer: Annotated[
            str | None,
            typer.Option("--restorer", help="Restorer name (default: restorer.name)."),
        ] = None,
        param: Annotated[
            list[str] | None,
            typer.Option("--param", "-p", help="Restorer parameter KEY=VALUE (repeatable)."),
        ] = None,
        compare: Annotated[
            Path | None,
            typer.Option("--compare", help="Also write frame | restored | reference here."),
        ] = None,
        quality: Annotated[
            int | None, typer.Option("--quality", min=1, max=100, help="JPEG/HEIC quality.")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed for stochastic restorers.")] = 0,
    ) -> None:
        """Restore FRAME using REFERENCE and write the result to OUTPUT (atomically)."""
        import core
        from core.api import RestoreError, RestoreRequest
        from daemon.output import OutputError, write_image

        settings = get_settings(ctx)
        name = restorer or settings.restorer.name
        if name not in core.available():
            raise OperationalError(
                f"unknown restorer {name!r}; available: {', '.join(core.available())}"
            )
        inputs = {p.resolve() for p in (reference, frame, reference_lq) if p is not None}
        for out in (output, compare):
            if out is not None and out.resolve() in inputs:
                raise OperationalError(f"refusing to overwrite an input: {out}")
        if compare is not None and compare.resolve() == output.resolve():
            raise OperationalError(f"--compare and --output are the same file: {output}")
        # Configured parameters apply to the configured restorer only; --param wins.
        base = settings.restorer.params if name == settings.restorer.name else {}
        params = {**base, **_parse_params(param or [])}

        ref_img = _load(reference, "reference")
        frame_img = _load(frame, "frame")
        lq_img = _load(reference_lq, "reference-lq") if reference_lq is not None else None

        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console_err,
            transient=True,
        ) as bar:
            task = bar.add_task("starting", total=1.0)

            def progress(fraction: float, stage: str) -> None:
                bar.update(task, completed=fraction, description=stage)

            request = RestoreRequest(
                target=frame_img,
                reference=ref_img,
                reference_lq=lq_img,
                restorer=name,
                params=params,
                progress=progress,
                seed=seed,
            )
            try:
                result = core.restore(request, **_restorer_options(ctx, name))
            except RestoreError as exc:
                raise OperationalError(f"restoration failed: {exc}") from None

        try:
            write_image(output, result.image, like=frame, quality=quality, keep_live_identity=False)
            if compare is not None:
                strip = compare_strip(frame_img, result.image, ref_img)
                write_image(compare, strip, quality=90, keep_live_identity=False)
        except OutputError as exc:
            raise OperationalError(f"cannot write the result: {exc}") from None

        diag = result.diagnostics
        h, w = result.image.shape[:2]
        console.print(
            f"restored {frame.name} with [bold]{name}[/] → {output} ({w}×{h}) in "
            f"{diag.timings.get('total', 0.0):.1f} s, {diag.tiles} tiles, "
            f"flow confidence {diag.flow_confidence:.2f}, "
            f"peak memory {diag.peak_memory_bytes / 1e9:.2f} GB"
        )
        if compare is not None:
            console.print(f"comparison: {compare}")
