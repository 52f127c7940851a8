"""What the publishers are told about a finished job: one plain value, the same for all.

Why a value of its own: the worker's job row and the store are being reshaped; hooks, Immich
and PhotoPrism need only these few facts, and a person's hook script depends on the JSON
document and variable names staying stable (`to_document`, `to_environment`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Event = Literal["success", "failure"]


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """A finished job as the outside world sees it.

    `asset` is the library-relative key; `original` the file the job restored (a still job's
    target, a video job's MOV); `output` where the restoration was published (None on
    failure); `mode` the output mode ("sidecar-tree", "sidecar-beside" or "replace"); `kind`
    the job's ("still", or "video" for a Live Photo's restored clip).
    """

    job_id: int | str
    asset: str
    original: Path
    output: Path | None
    mode: str
    event: Event = "success"
    error: str | None = None
    restorer: str | None = None
    kind: str = "still"

    def to_document(self) -> dict[str, Any]:
        """The JSON document a hook reads on stdin (keys stable; absent facts are null)."""
        return {
            "event": self.event,
            "job_id": self.job_id,
            "asset": self.asset,
            "original": str(self.original),
            "output": None if self.output is None else str(self.output),
            "mode": self.mode,
            "error": self.error,
            "restorer": self.restorer,
            "kind": self.kind,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> JobOutcome:
        """The outcome `to_document` wrote (a hook delivery kept in the outbox)."""
        output = doc.get("output")
        return cls(
            job_id=doc["job_id"], asset=str(doc["asset"]), original=Path(doc["original"]),
            output=None if output is None else Path(output), mode=str(doc["mode"]),
            event=doc.get("event", "success"), error=doc.get("error"),
            restorer=doc.get("restorer"), kind=str(doc.get("kind", "still")),
        )

    def to_environment(self) -> dict[str, str]:
        """The same facts as `LMD_*` variables (absent facts are empty strings)."""
        return {
            f"LMD_{key.upper()}": "" if value is None else str(value)
            for key, value in self.to_document().items()
        }
