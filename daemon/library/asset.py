"""`LiveAsset`: what discovery hands to the rest of lmd, as plain data.

A `LiveAsset` names the files of one Live Photo or Motion Photo, the original key time T0
and the reselected time T1, and the content signature of every input, so that the job
identity can be derived without reading the files again (`FileSignature` lives in
`daemon.files.signature`, shared with the writers). It never touches a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from daemon.files.signature import FileSignature


class Platform(StrEnum):
    APPLE = "apple"
    ANDROID_MOTION = "android-motion"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class LiveAsset:
    """One Live Photo / Motion Photo as discovery understood it.

    Paths are absolute. `target` is the low-quality still to restore (e.g. `IMG_E1234.HEIC`);
    when it is None the target is the video frame at `t1`. `video_offset`/`video_length`
    locate an embedded video (Motion Photos) inside `video`. `reason` says why the asset is
    not restorable (None when it is); `reselected` is the decision of the discovery rules.
    """

    key: str
    platform: Platform
    reference: Path
    video: Path | None
    target: Path | None
    t0: float | None
    t1: float | None
    reselected: bool
    reason: str | None = None
    sidecars: tuple[Path, ...] = ()
    signatures: dict[str, FileSignature] = field(default_factory=dict)
    content_identifier: str | None = None
    video_offset: int | None = None
    video_length: int | None = None
    other_adjustments: tuple[str, ...] = ()

    @property
    def restorable(self) -> bool:
        return self.reselected and self.reason is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used for job payloads and `lmd scan --json`)."""
        return {
            "key": self.key,
            "kind": self.platform.value,
            "reference": str(self.reference),
            "video": str(self.video) if self.video else None,
            "target": str(self.target) if self.target else None,
            "t0": self.t0,
            "t1": self.t1,
            "reselected": self.reselected,
            "reason": self.reason,
            "sidecars": [str(p) for p in self.sidecars],
            "signatures": {k: v.to_dict() for k, v in self.signatures.items()},
            "content_identifier": self.content_identifier,
            "video_offset": self.video_offset,
            "video_length": self.video_length,
            "other_adjustments": list(self.other_adjustments),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LiveAsset:
        def opt_path(value: str | None) -> Path | None:
            return Path(value) if value else None

        return cls(
            key=data["key"],
            platform=Platform(data["kind"]),
            reference=Path(data["reference"]),
            video=opt_path(data.get("video")),
            target=opt_path(data.get("target")),
            t0=data.get("t0"),
            t1=data.get("t1"),
            reselected=bool(data.get("reselected")),
            reason=data.get("reason"),
            sidecars=tuple(Path(p) for p in data.get("sidecars", ())),
            signatures={
                k: FileSignature.from_dict(v) for k, v in data.get("signatures", {}).items()
            },
            content_identifier=data.get("content_identifier"),
            video_offset=data.get("video_offset"),
            video_length=data.get("video_length"),
            other_adjustments=tuple(data.get("other_adjustments", ())),
        )
