"""`lmd restore-video`: restore one Live Photo's video with its key photo, outside the queue.

Reads the key photo and the video (an Apple MOV, or a Motion Photo's embedded video), finds the
key photo's frame (the MOV's still-image-time, the Motion Photo's presentation timestamp, else
by matching the frames against the key photo), restores the clip with `core.video`'s
`guided-video` frame by frame and writes it through `daemon.output.video.write_video`, which
keeps what pairs it with its still (same frames and timing, rotation, audio bit for bit,
content identifier and still-image-time track). A Motion Photo's restored video is written as a
sidecar MP4 (re-embedding is not supported). `--compare` writes X-T slices (one row of every
frame over time: original | restored), the picture of temporal stability.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from daemon.cli.context import OperationalError, console, console_err

MATCH_WIDTH = 64
"""Width the key photo and frames are compared at when the key time is not recorded."""
XT_REPEAT = 2
"""Each frame's row appears this many times in the X-T image (short clips stay visible)."""


def _upright(frame: Any) -> np.ndarray:
    """A decoded frame as upright RGB (the display rotation applied, as stills are decoded;
    the same convention as `daemon.library.media`)."""
    rgb = frame.to_ndarray(format="rgb24")
    angle = getattr(frame, "rotation", 0) or 0
    turns = round(angle / 90) % 4 if angle % 90 == 0 else 0
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


class _Video:
    """Where the clip is: a movie file, or a movie embedded in a Motion Photo."""

    def __init__(self, path: Path) -> None:
        from daemon.files.errors import UnreadableFile
        from daemon.library.media import read_embedded_video
        from daemon.library.motion import read_motion
        from daemon.library.quicktime import read_mov_info
        from daemon.library.stills import read_still_meta, sniff
        from daemon.output.video import SourceMovie

        self.path = path
        self.offset: int | None = None
        self.length: int | None = None
        self.key_time: float | None = None
        try:
            with path.open("rb") as fh:
                kind = sniff(fh.read(16))
            if kind == "mov":
                self.source = SourceMovie(path=path)
                self.key_time = read_mov_info(path).still_image_time
                return
            if kind is None:
                raise UnreadableFile("neither a movie nor a photo")
            motion = read_motion(path, read_still_meta(path))
            if motion is None:
                raise UnreadableFile("a photo without an embedded video (not a Motion Photo)")
            self.offset, self.length = motion.video_offset, motion.video_length
            if motion.presentation_us is not None:
                self.key_time = motion.presentation_us / 1e6
            self.source = SourceMovie(data=read_embedded_video(path, self.offset, self.length))
        except UnreadableFile as exc:
            raise OperationalError(f"cannot read the video {path}: {exc}") from None
        except OSError as exc:
            raise OperationalError(f"cannot read the video {path}: {exc.strerror}") from None

    @property
    def is_embedded(self) -> bool:
        return self.offset is not None

    def frames(self) -> Iterator[np.ndarray]:
        from daemon.library.media import iter_frames

        for _, frame in iter_frames(self.path, offset=self.offset, length=self.length):
            yield _upright(frame)

    def matched_index(self, key: Path) -> int:
        """The frame that looks most like the key photo (when no key time is recorded)."""
        from daemon.library.matching import distances
        from daemon.library.media import load_still_small, small_frames

        small = small_frames(self.path, MATCH_WIDTH, offset=self.offset, length=self.length)
        target = load_still_small(key, MATCH_WIDTH)
        return int(np.argmin(distances(target, [f for _, f in small])))


def _key_index(video: _Video, key: Path, times: list[float]) -> tuple[int, str]:
    from daemon.library.matching import nearest_index

    if video.key_time is not None:
        return nearest_index(times, video.key_time), f"key time {video.key_time:.3f} s"
    return video.matched_index(key), "matched frame"


def _load(path: Path, what: str) -> np.ndarray:
    from daemon.files.errors import UnreadableFile
    from daemon.library.media import load_still

    if not path.is_file():
        raise OperationalError(f"{what} not found: {path}")
    try:
        return load_still(path, dtype=np.uint8)
    except UnreadableFile as exc:
        raise OperationalError(f"cannot read {what} {path}: {exc}") from None


def xt_image(original: list[np.ndarray], restored: list[np.ndarray]) -> np.ndarray:
    """original | restored X-T slices (rows over time), the original scaled to the restored
    width, 8 px apart."""
    from core.images import resize

    left = np.repeat(np.stack(original), XT_REPEAT, axis=0)
    right = np.repeat(np.stack(restored), XT_REPEAT, axis=0)
    if left.shape[1] != right.shape[1]:
        left = resize(left, left.shape[0], right.shape[1], interpolation="bicubic")
    gap = np.full((right.shape[0], 8, 3), 255, np.uint8)
    return np.concatenate([np.clip(left, 0, 255).astype(np.uint8), gap, right], axis=1)


def register(app: typer.Typer) -> None:
    """Add `restore-video` to the root app."""

    @app.command("restore-video")
    def restore_video_cmd(
        reference: Annotated[
            Path, typer.Option("--reference", help="The key photo (the high-quality still).")
        ],
        video: Annotated[
            Path, typer.Option("--video", help="The Live Photo MOV, or a Motion Photo.")
        ],
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Where to write the video (.mov/.mp4).")
        ],
        scale: Annotated[
            float, typer.Option("--scale", min=1.0, help="Output size over the video's.")
        ] = 1.0,
        compare: Annotated[
            Path | None,
            typer.Option("--compare", help="Also write X-T slices (original | restored)."),
        ] = None,
        restored_still: Annotated[
            Path | None,
            typer.Option("--restored-still",
                         help="A restored reselected still, a second keyframe at --restored-time."),
        ] = None,
        restored_time: Annotated[
            float | None,
            typer.Option("--restored-time", min=0.0, help="Time (s) the restored still shows."),
        ] = None,
        codec: Annotated[
            str, typer.Option("--codec", help="h264 (default) or hevc.")
        ] = "h264",
        crf: Annotated[
            int | None,
            typer.Option("--crf", min=0, max=51, help="Quality (default 16 H.264, 18 HEVC)."),
        ] = None,
        param: Annotated[
            list[str] | None,
            typer.Option("--param", "-p", help="Restorer parameter KEY=VALUE (repeatable)."),
        ] = None,
        restorer_name: Annotated[
            str, typer.Option("--restorer", help="guided-video (CPU) or livemoments-video "
                              "(GPU, -p checkpoint=DIR).")
        ] = "guided-video",
    ) -> None:
        """Restore VIDEO's frames with REFERENCE and write OUTPUT, still paired with its still."""
        from core.api import RestoreError
        from core.video import ClipRequest, Keyframe, get_clip_restorer, restore_clip
        from daemon.cli.restore import _parse_params
        from daemon.output import OutputError, check_writable, write_image
        from daemon.output.video import ENCODERS, FORMATS, source_timing, write_video

        inputs = {p.resolve() for p in (reference, video, restored_still) if p is not None}
        for out in (output, compare):
            if out is not None and out.resolve() in inputs:
                raise OperationalError(f"refusing to overwrite an input: {out}")
        if compare is not None and compare.resolve() == output.resolve():
            raise OperationalError(f"--compare and --output are the same file: {output}")
        if output.suffix.lower() not in FORMATS:
            raise typer.BadParameter("must end in .mov or .mp4", param_hint="--output")
        if codec not in ENCODERS:
            raise typer.BadParameter(f"one of {', '.join(ENCODERS)}", param_hint="--codec")
        if (restored_still is None) != (restored_time is None):
            raise typer.BadParameter("--restored-still and --restored-time go together",
                                     param_hint="--restored-still")
        params = _parse_params(param or [])
        try:
            check_writable(output)
            if compare is not None:
                check_writable(compare)
        except OutputError as exc:
            raise OperationalError(f"cannot write there: {exc}") from None

        key = _load(reference, "reference")
        clip = _Video(video)
        try:
            timing = source_timing(clip.source)
        except OutputError as exc:
            raise OperationalError(str(exc)) from None
        times = [float(p * timing.time_base) for p in timing.pts]
        index, how = _key_index(clip, reference, times)
        keyframes = [Keyframe(key, index)]
        if restored_still is not None and restored_time is not None:
            from daemon.library.matching import nearest_index

            keyframes.append(Keyframe(_load(restored_still, "restored still"),
                                      nearest_index(times, restored_time)))

        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        original_rows: list[np.ndarray] = []
        restored_rows: list[np.ndarray] = []

        def originals() -> Iterator[np.ndarray]:
            for frame in clip.frames():
                if compare is not None:
                    original_rows.append(frame[frame.shape[0] // 2].copy())
                yield frame

        with Progress(
            TextColumn("[bold]{task.description:<16}"), BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
            console=console_err, transient=True,
        ) as bar:
            task = bar.add_task("starting", total=1.0)

            def progress(fraction: float, stage: str) -> None:
                bar.update(task, completed=fraction, description=stage)

            request = ClipRequest(frames=originals(), keyframes=keyframes, scale=scale,
                                  frame_count=len(timing.pts), params=params, progress=progress,
                                  restorer=restorer_name)
            try:
                restorer = get_clip_restorer(request.restorer)
                restored = restore_clip(request, restorer=restorer)

                def keep_rows() -> Iterator[np.ndarray]:
                    for frame in restored:
                        if compare is not None:
                            restored_rows.append(frame[frame.shape[0] // 2].copy())
                        yield frame

                write_video(output, keep_rows(), clip.source, codec=codec, crf=crf)
            except RestoreError as exc:
                raise OperationalError(f"restoration failed: {exc}") from None
            except OutputError as exc:
                raise OperationalError(f"cannot write the video: {exc}") from None
        if compare is not None:
            try:
                write_image(compare, xt_image(original_rows, restored_rows),
                            keep_live_identity=False)
            except OutputError as exc:
                raise OperationalError(f"cannot write the comparison: {exc}") from None
        diag = restorer.diagnostics
        h, w = diag.output_size or (0, 0)
        total = sum(diag.timings.values())
        kind = "sidecar MP4 of a Motion Photo" if clip.is_embedded else "video"
        console.print(
            f"restored {diag.frames} frames of {video.name} ({how}: frame {index + 1}) → "
            f"{output} ({w}×{h} {kind}) in {total:.1f} s, "
            f"{total / max(diag.frames, 1):.2f} s per frame"
        )
        if compare is not None:
            console.print(f"X-T slices: {compare}")
