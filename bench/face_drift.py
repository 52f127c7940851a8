"""Benchmark: the face guard's descriptor distances, from which DRIFT_THRESHOLD was chosen.

Usage:  .venv/bin/python bench/face_drift.py      (needs lmd[faces] and scikit-image)

For scikit-image's astronaut portrait at several frame-to-still scales and frame qualities,
prints the identity distance `core.faces.check_identity` measures between the frame and an
honest restoration, and between the frame and restorations that mirror, stretch, swirl the
face or paste another person's face, plus the seconds one check takes. The honest column must
stay under the threshold and the swap column far above it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from core.faces import DRIFT_THRESHOLD, check_identity  # noqa: E402
from tests.faces import edits  # noqa: E402


def main() -> None:
    print(f"threshold {DRIFT_THRESHOLD}")
    header = ["scale", "jpeg", "noise", "honest", "mirror", "stretch1.15", "stretch1.3"]
    header += ["swirl2", "swirl4", "other0", "other1", "seconds"]
    print(" ".join(f"{h:>11}" for h in header))
    for scale, quality, noise in ((2.0, 85, 2.0), (2.8, 75, 3.0), (3.0, 60, 4.0), (3.0, 40, 6.0)):
        s = edits.scene(scale, quality, noise)
        variants = [
            edits.honest(s.still),
            edits.mirrored(s.still, s.face),
            edits.stretched(s.still, s.face, 1.15),
            edits.stretched(s.still, s.face, 1.3),
            edits.swirled(s.still, s.face, 2.0),
            edits.swirled(s.still, s.face, 4.0),
            edits.another_person(s.still, s.face, 0),
            edits.another_person(s.still, s.face, 1),
        ]
        row = [f"{scale:>11}", f"{quality:>11}", f"{noise:>11}"]
        seconds = 0.0
        for restored in variants:
            check = check_identity(s.frame, restored)
            seconds = max(seconds, check.seconds)
            d = max((f.distance for f in check.faces), default=float("nan"))
            row.append(f"{d:>11.3f}")
        row.append(f"{seconds:>11.3f}")
        print(" ".join(row))


if __name__ == "__main__":
    main()
