"""`lmd train`: make training pairs, fine-tune LiveMoments on them, and measure any restorer.

`pairs` writes a pair set from high-quality clips (synthetic Live Photo degradation) or from a
photo library (real pairs: each Live Photo's video frame at T0 against its key photo; the library
is only read). `fit` trains the bridge-matching objective from a checkpoint in the published
layout and writes one (`core.livemoments.training.fit`); run again with the same output folder
and settings, it continues where it stopped. `eval` restores every pair with any restorer and
prints PSNR-Y/SSIM-Y per pair and on average, next to the bicubic upscale of the frame, so an
owner sees whether a fine-tune helped before switching to it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from daemon.cli.context import OperationalError, console, console_err, get_settings


def _finite(value: Any) -> Any:
    """JSON has no inf or NaN (PSNR of identical images is +inf): those become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _json_line(record: dict[str, Any]) -> None:
    typer.echo(json.dumps(_finite(record), sort_keys=True, allow_nan=False, default=str))


def _json_document(document: Any) -> None:
    typer.echo(json.dumps(_finite(document), indent=2, allow_nan=False, default=str))


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pairs(
    clips: list[Path] | None,
    library: Path | None,
    out: Path,
    tile: int,
    interval: int,
    stride: int,
    crops: int | None,
    max_shift: int | None,
    min_confidence: float,
    val_fraction: float,
    seed: int,
    codecs: tuple[str, ...] = ("h264",),
    as_json: bool = False,
) -> None:
    from core.degrade_random import DegradationRanges
    from core.livemoments.training.dataset import PairSetError
    from core.livemoments.training.pairs import LibraryPairOptions, VideoPairOptions
    from daemon.training import library_pair_set, video_pair_set

    if not 0.0 <= val_fraction < 1.0:
        raise typer.BadParameter("must lie in [0, 1)", param_hint="--val-fraction")

    def progress(line: str) -> None:
        console_err.print(line, markup=False, highlight=False)

    try:
        if clips:
            missing = [c for c in clips if not c.is_file()]
            if missing:
                raise OperationalError(f"clip not found: {missing[0]}")
            options = VideoPairOptions(tile=tile, interval=interval, stride=stride,
                                       crops=crops or 1, seed=seed,
                                       ranges=DegradationRanges(codecs=codecs))
            summary = video_pair_set(clips, out, options, val_fraction, progress)
        else:
            assert library is not None
            lib_options = LibraryPairOptions(tile=tile, crops=crops or 2, max_shift=max_shift,
                                             min_confidence=min_confidence, seed=seed)
            summary = library_pair_set(library, out, lib_options, val_fraction, progress)
    except (PairSetError, ValueError) as exc:
        raise OperationalError(str(exc)) from None
    if summary.pairs == 0:
        reasons = "; ".join(sorted({str(s.get("reason")) for s in summary.skipped})[:3])
        raise OperationalError(f"no pairs written to {out} ({reasons or 'no sources'})")
    if as_json:
        _json_document({
            "output": str(out.resolve()),
            "kind": "video" if clips else "library",
            "pairs": summary.pairs,
            "by_split": summary.by_split,
            "skipped": summary.skipped,
        })
        return
    splits = ", ".join(f"{n} {s}" for s, n in sorted(summary.by_split.items())) or "none"
    console.print(f"wrote {summary.pairs} pairs to {out} ({splits}); "
                  f"{len(summary.skipped)} sources or crops skipped (reasons in the manifest)")


def register(app: typer.Typer) -> None:
    train_app = typer.Typer(help="Fine-tune LiveMoments: pairs, fit, eval.",
                            no_args_is_help=True)

    @train_app.command("pairs")
    def pairs_cmd(
        sources: Annotated[
            list[Path], typer.Argument(help="Clips (--from-video) or one library folder.")
        ],
        out: Annotated[Path, typer.Option("--output", "-o", help="New pair-set folder.")],
        from_video: Annotated[
            bool, typer.Option("--from-video", help="SOURCES are high-quality clips.")
        ] = False,
        from_library: Annotated[
            bool, typer.Option("--from-library", help="SOURCE is a photo library (only read).")
        ] = False,
        tile: Annotated[int, typer.Option("--tile", min=16, help="Crop size (px).")] = 1024,
        interval: Annotated[
            int, typer.Option("--interval", min=1, help="Frames between reference and target.")
        ] = 5,
        stride: Annotated[
            int, typer.Option("--stride", min=1, help="Frames between successive pairs.")
        ] = 15,
        crops: Annotated[
            int | None,
            typer.Option("--crops", min=1, help="Crops per frame pair (1) or Live Photo (2)."),
        ] = None,
        max_shift: Annotated[
            int | None,
            typer.Option("--max-shift", min=0, help="Library: reference shift (default tile/8)."),
        ] = None,
        min_confidence: Annotated[
            float,
            typer.Option("--min-confidence", min=0.0, max=1.0,
                         help="Library: skip crops aligned worse than this."),
        ] = 0.5,
        val_fraction: Annotated[
            float, typer.Option("--val-fraction", help="Pairs held out for validation.")
        ] = 0.1,
        codecs: Annotated[
            str, typer.Option("--codecs", help="Video: codecs drawn, e.g. h264,hevc.")
        ] = "h264",
        seed: Annotated[int, typer.Option("--seed")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Write a pair set: --from-video CLIP… or --from-library PATH (never written)."""
        if from_video == from_library:
            raise typer.BadParameter("give exactly one of --from-video and --from-library")
        if from_library and len(sources) != 1:
            raise typer.BadParameter("--from-library takes one library folder")
        _pairs(sources if from_video else None, sources[0] if from_library else None, out,
               tile, interval, stride, crops, max_shift, min_confidence, val_fraction, seed,
               tuple(c.strip() for c in codecs.split(",") if c.strip()), as_json)

    @train_app.command("fit")
    def fit_cmd(
        init: Annotated[Path, typer.Option("--init", help="Checkpoint to start from.")],
        pairs: Annotated[list[Path], typer.Option("--pairs", help="Pair set (repeatable).")],
        out: Annotated[Path, typer.Option("--output", "-o", help="Run folder.")],
        steps: Annotated[int, typer.Option("--steps", min=0)] = 1000,
        batch: Annotated[int, typer.Option("--batch", min=1)] = 8,
        lr: Annotated[float, typer.Option("--lr", min=0.0, help="Learning rate.")] = 5e-5,
        tile: Annotated[
            int | None, typer.Option("--tile", min=16, help="Default: the pairs' tile.")
        ] = None,
        lora_rank: Annotated[
            int | None, typer.Option("--lora-rank", min=1, help="Train LoRA adapters.")
        ] = None,
        grad_checkpointing: Annotated[
            bool, typer.Option("--grad-checkpointing", help="Recompute activations.")
        ] = False,
        mixed_precision: Annotated[
            str, typer.Option("--mixed-precision", help="no or bf16.")
        ] = "no",
        eval_every: Annotated[int, typer.Option("--eval-every", min=1)] = 100,
        save_every: Annotated[
            int | None, typer.Option("--save-every", min=1, help="Default: --eval-every.")
        ] = None,
        val_restore: Annotated[
            int, typer.Option("--val-restore", min=0, help="Held-out tiles restored per eval.")
        ] = 4,
        val_fraction: Annotated[float, typer.Option("--val-fraction")] = 0.1,
        flow: Annotated[str, typer.Option("--flow", help="auto, dis or raft.")] = "auto",
        device: Annotated[str, typer.Option("--device")] = "auto",
        seed: Annotated[int, typer.Option("--seed")] = 0,
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON object per evaluation and at the end.")
        ] = False,
    ) -> None:
        """Fine-tune from --init on --pairs; continues a run already in --output."""
        import torch

        from core.api import RestoreError
        from core.livemoments.training.dataset import PairSetError
        from core.livemoments.training.fit import fit
        from core.livemoments.training.trainer import FitOptions, TrainingError

        options = FitOptions(
            steps=steps, batch=batch, lr=lr, tile=tile, lora_rank=lora_rank,
            grad_checkpointing=grad_checkpointing, mixed_precision=mixed_precision,
            eval_every=eval_every, save_every=save_every, val_restore=val_restore,
            val_fraction=val_fraction, flow=flow, device=device, seed=seed,
        )

        def on_event(record: dict[str, Any]) -> None:
            if as_json:
                _json_line(record)
            elif record["event"] == "eval":
                console.print(
                    f"step {record['step']:>6}  train loss {_fmt(record['train_loss'])}  "
                    f"val loss {_fmt(record['val_loss'])}  "
                    f"val PSNR-Y {_fmt(record['val_psnr_y'], 2)} dB"
                )
            else:
                console.print(
                    f"done: {record['steps']} steps, val loss {_fmt(record['val_loss_start'])}"
                    f" → {_fmt(record['val_loss_end'])}; checkpoint {record['checkpoint']}"
                )

        try:
            fit(init, pairs, out, options, on_event=on_event)
        except (TrainingError, PairSetError, RestoreError) as exc:
            # RestoreError: a missing device (DeviceUnavailable) or a damaged checkpoint.
            raise OperationalError(str(exc)) from None
        except torch.OutOfMemoryError:
            raise OperationalError(
                "out of device memory; try --lora-rank 16 --grad-checkpointing "
                "--mixed-precision bf16, a smaller --batch or --tile (the run continues "
                "from its last saved state)"
            ) from None
        except KeyboardInterrupt:
            console_err.print(f"interrupted; run the same command to continue from the last "
                              f"saved state in {out}")
            raise

    @train_app.command("eval")
    def eval_cmd(
        ctx: typer.Context,
        pairs: Annotated[list[Path], typer.Option("--pairs", help="Pair set (repeatable).")],
        restorer: Annotated[
            str | None, typer.Option("--restorer", help="Default: restorer.name.")
        ] = None,
        param: Annotated[
            list[str] | None,
            typer.Option("--param", "-p", help="Restorer parameter KEY=VALUE (repeatable)."),
        ] = None,
        split: Annotated[
            str, typer.Option("--split", help="all, train, val or apart.")
        ] = "all",
        seed: Annotated[int, typer.Option("--seed")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    ) -> None:
        """PSNR-Y and SSIM-Y of a restorer on pair sets, per pair and on average."""
        import core
        from core.api import RestoreError
        from core.livemoments.training.dataset import PairSetError, open_pair_set
        from core.livemoments.training.evaluate import (
            SPLIT_CHOICES,
            PairScore,
            evaluate_restorer,
            summary,
        )
        from daemon.cli.restore import _parse_params, _restorer_options

        if split not in SPLIT_CHOICES:
            raise typer.BadParameter(f"one of {', '.join(SPLIT_CHOICES)}", param_hint="--split")
        settings = get_settings(ctx)
        name = restorer or settings.restorer.name
        if name not in core.available():
            raise OperationalError(
                f"unknown restorer {name!r}; available: {', '.join(core.available())}"
            )
        base = settings.restorer.params if name == settings.restorer.name else {}
        params = {**base, **_parse_params(param or [])}

        def on_pair(score: PairScore) -> None:
            if not as_json:
                console.print(
                    f"{Path(score.set).name}/{score.id} ({score.split})  "
                    f"PSNR-Y {score.psnr_y:6.2f} dB  SSIM-Y {score.ssim_y:.4f}  "
                    f"(bicubic {score.bicubic_psnr_y:6.2f} dB, {score.bicubic_ssim_y:.4f})",
                    markup=False, highlight=False,
                )

        try:
            sets = [open_pair_set(p) for p in pairs]
            scores = evaluate_restorer(sets, name, _restorer_options(ctx, name), params,
                                       split=split, seed=seed, on_pair=on_pair)
        except (PairSetError, RestoreError) as exc:
            raise OperationalError(str(exc)) from None
        if not scores:
            raise OperationalError(f"no pairs in split {split!r}")
        mean = summary(scores)
        if as_json:
            _json_document({"restorer": name, "split": split,
                            "pairs": [score.to_json() for score in scores], "mean": mean})
        else:
            console.print(
                f"mean over {mean['pairs']} pairs: PSNR-Y {_fmt(mean['psnr_y'], 2)} dB, "
                f"SSIM-Y {_fmt(mean['ssim_y'])} (bicubic {_fmt(mean['bicubic_psnr_y'], 2)} dB,"
                f" {_fmt(mean['bicubic_ssim_y'])})"
            )

    app.add_typer(train_app, name="train")
