"""`lmd restore`: one restoration outside the queue, for trying a restorer on a pair of files.

Reads the reference (original key photo), the reselected frame and, like the queue does, the
video frame at the original key time T0 as the low-quality reference (`--video CLIP.MOV`, T0 from
its still-image-time track or `--t0`; or a picture of that frame with `--reference-lq`). That
frame is what lets the restorer align the reference taken at T0 with the frame chosen later:
without it, and with much motion between the two, the flow confidence drops and the result
keeps the frame's blur; any result under `review.min_flow_confidence` (0.5; the threshold the
review page flags at) prints a warning saying so.
Runs `core.restore` with a progress bar, writes the result atomically through
`daemon.output.write_image` (never over an input), and `--compare` writes lmd's one comparison
layout (`daemon.comparison`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape

from daemon.cli.context import OperationalError, console_err, get_settings
from daemon.cli.render import echo_json, say


def flow_warning(
    confidence: float | None, least: float, with_video_frame: bool = True
) -> str | None:
    """What a flow confidence under `least` (`review.min_flow_confidence`; 0: never) means, in
    words; None when it is not low."""
    if confidence is None or confidence >= least:
        return None
    meaning = (
        f"flow confidence {confidence:.2f} is under {least:g}: most of the reference could not"
        " be aligned with the frame, so the result keeps much of the frame's blur (or shows"
        " detail in the wrong place)."
    )
    if with_video_frame:
        return meaning + " The scene changed too much between the two moments; check the result."
    return meaning + (
        " Give the Live Photo's video with --video CLIP.MOV: its frame at the original key time"
        " bridges the two moments, as in the queue."
    )


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


def _video_frame(video: Path, t0: float | None) -> tuple[np.ndarray, float]:
    """The frame of `video` at `t0` (default: its still-image-time, the original key time)."""
    from daemon.files.errors import UnreadableFile
    from daemon.library.media import decode_frame_at
    from daemon.library.quicktime import read_mov_info

    if not video.is_file():
        raise OperationalError(f"video not found: {video}")
    try:
        if t0 is None:
            t0 = read_mov_info(video).still_image_time
            if t0 is None:
                raise OperationalError(
                    f"{video} has no still-image-time track (the original key time);"
                    " give it with --t0 SECONDS"
                )
        return decode_frame_at(video, t0), t0
    except UnreadableFile as exc:
        raise OperationalError(f"cannot read video {video}: {exc}") from None


def _restorer_options(ctx: typer.Context, name: str) -> dict[str, Any]:
    """Constructor options for restorer `name` from the configuration, as the worker builds
    them (one home: `daemon.worker.restorer_options`), also when `--restorer` picks a restorer
    other than the configured one."""
    from daemon.worker import restorer_options

    settings = get_settings(ctx)
    section = settings.restorer.model_copy(update={"name": name})
    return restorer_options(settings.model_copy(update={"restorer": section}))


def _run(ctx: typer.Context, name: str, **request: Any) -> Any:
    """`core.restore` with a progress bar (stage, fraction, time left) on a terminal."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    import core
    from core.api import RestoreError, RestoreRequest

    with Progress(
        TextColumn("{task.description:<16}"), BarColumn(), TaskProgressColumn(),
        TimeRemainingColumn(), console=console_err, transient=True,
        disable=not console_err.is_terminal,
    ) as bar:
        task = bar.add_task("starting", total=1.0)

        def progress(fraction: float, stage: str) -> None:
            bar.update(task, completed=fraction, description=stage)

        try:
            return core.restore(RestoreRequest(restorer=name, progress=progress, **request),
                                **_restorer_options(ctx, name))
        except RestoreError as exc:
            raise OperationalError(f"restoration failed: {exc}") from None


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
        video: Annotated[
            Path | None,
            typer.Option("--video", help="The Live Photo's video: its frame at the original key"
                         " time is the low-quality reference, as in the queue."),
        ] = None,
        t0: Annotated[
            float | None,
            typer.Option("--t0", min=0.0, help="Time of that frame in seconds (default: the"
                         " video's still-image-time)."),
        ] = None,
        reference_lq: Annotated[
            Path | None,
            typer.Option("--reference-lq", help="A picture of the video frame at the original key"
                         " time (instead of --video)."),
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
            typer.Option("--compare", help="Also write the comparison (frame | restored |"
                         " reference, whole and 1:1) here."),
        ] = None,
        quality: Annotated[
            int | None, typer.Option("--quality", min=1, max=100, help="JPEG/HEIC quality.")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed for stochastic restorers.")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Restore FRAME using REFERENCE and write the result to OUTPUT (atomically)."""
        import core
        from daemon.comparison import comparison_image
        from daemon.output import OutputError, write_image

        if video is not None and reference_lq is not None:
            raise typer.BadParameter("give --video or --reference-lq, not both")
        if t0 is not None and video is None:
            raise typer.BadParameter("--t0 is a time in the --video", param_hint="--t0")
        settings = get_settings(ctx)
        name = restorer or settings.restorer.name
        if name not in core.available():
            raise OperationalError(
                f"unknown restorer {name!r}; available: {', '.join(core.available())}"
            )
        inputs = {p.resolve() for p in (reference, frame, reference_lq, video) if p is not None}
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
        if video is not None:
            lq_img, t0 = _video_frame(video, t0)

        result = _run(ctx, name, target=frame_img, reference=ref_img, reference_lq=lq_img,
                      params=params, seed=seed)
        try:
            write_image(output, result.image, like=frame, quality=quality, keep_live_identity=False)
            if compare is not None:
                strip = comparison_image(frame_img, result.image, ref_img)
                write_image(compare, strip, quality=90, keep_live_identity=False)
        except OutputError as exc:
            raise OperationalError(f"cannot write the result: {exc}") from None

        diag = result.diagnostics
        h, w = result.image.shape[:2]
        warning = flow_warning(diag.flow_confidence, settings.review.min_flow_confidence,
                               lq_img is not None)
        if as_json:
            echo_json({
                "output": str(output), "restorer": name, "width": w, "height": h,
                "seconds": round(diag.timings.get("total", 0.0), 3), "tiles": diag.tiles,
                "flow_confidence": diag.flow_confidence,
                "peak_memory_bytes": diag.peak_memory_bytes,
                "reference_lq": "video" if video is not None
                else "picture" if reference_lq is not None else None,
                "t0": t0, "comparison": str(compare) if compare is not None else None,
                "warnings": [warning] if warning else [],
            })
        else:
            say(f"restored {frame.name} with {name} → {output} ({w}×{h}) in "
                f"{diag.timings.get('total', 0.0):.1f} s, {diag.tiles} tiles, "
                + ("no flow, " if diag.flow_confidence is None
                   else f"flow confidence {diag.flow_confidence:.2f}, ")
                + f"peak memory {diag.peak_memory_bytes / 1e9:.2f} GB"
                + (f", video frame at {t0:.3f} s" if video is not None and t0 is not None
                   else ""))
            if compare is not None:
                say(f"comparison: {compare}")
        if warning:
            say(f"[yellow]warning:[/] {escape(warning)}", err=True, markup=True)
