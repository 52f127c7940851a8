"""The worker's side of review: what is held in staging and what is published, the previews,
the face check and the flow-confidence flag, and what the store records."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core import hashing
from daemon.review.layout import PREVIEW_FILES, ReviewDirs
from daemon.review.previews import PREVIEW_MAX_SIDE, decode_png
from daemon.scanner import job_spec, run_scan
from daemon.store import open_store
from daemon.worker import Worker
from tests.review.helpers import (
    Upscale,
    copy_library,
    scan_and_work,
    settings_for,
    tree_files,
)
from tests.service.helpers import tree_hashes


def test_required_review_holds_every_restoration_in_staging(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    before = tree_hashes(library)
    settings = settings_for(tmp_path, library, review={"required": True})
    store = scan_and_work(settings)
    try:
        jobs = store.list_jobs(state="succeeded")
        assert len(jobs) == 3
        assert all(job.output_path is None and job.output_signature is None for job in jobs)
        assert tree_files(Path(settings.output.tree)) == set()  # nothing published
        assert tree_hashes(library) == before  # the library is untouched
        awaiting = store.list_reviews("awaiting")
        assert {r.job_id for r in awaiting} == {job.id for job in jobs}
        dirs = ReviewDirs(settings.state_dir)
        for review in awaiting:
            staged = dirs.staged_file(review.job_id, review.staged_signature["file"])
            assert staged.is_relative_to(Path(settings.state_dir))
            assert hashing.matches(staged, review.staged_signature["content_hash"])
            reference = cv2.imread(str(dirs.preview(review.job_id, "reference")))
            after = cv2.imread(str(dirs.preview(review.job_id, "after")))
            before_pic = cv2.imread(str(dirs.preview(review.job_id, "before")))
            assert after.shape == before_pic.shape  # the slider overlays them
            assert decode_png(staged).shape[:2] == after.shape[:2] == reference.shape[:2]
            for kind in PREVIEW_FILES:
                picture = cv2.imread(str(dirs.preview(review.job_id, kind)))
                assert picture is not None and max(picture.shape[:2]) <= PREVIEW_MAX_SIDE
                assert picture.std() > 5, kind  # a real picture, not a blank
            events = [e.reason for e in store.events(review.job_id)]
            assert any(r and r.startswith("review: staged") for r in events), events
        assert store.review_counts() == {"awaiting": 3, "accepted": 0, "rejected": 0}
    finally:
        store.close()


def test_without_review_every_restoration_is_published_and_listed(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    settings = settings_for(tmp_path, library)
    store = scan_and_work(settings)
    try:
        jobs = store.list_jobs(state="succeeded")
        assert len(jobs) == 3 and all(Path(job.output_path).is_file() for job in jobs)
        reviews = store.list_reviews("all")
        assert {r.job_id for r in reviews} == {job.id for job in jobs}
        assert all(r.state == "accepted" and r.decided_by == "auto" for r in reviews)
        assert all(not r.staged and r.flags == [] for r in reviews)
        assert tree_files(ReviewDirs(settings.state_dir).staging) == set()
    finally:
        store.close()


def test_low_flow_confidence_flags_guided_and_holds_a_generative_restorer(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    settings = settings_for(tmp_path, library)
    store = open_store(settings.database_url)
    try:
        run_scan(settings, library, store=store)
        guided = store.list_jobs()
        # the same inputs pinned to the diffusion restorer (weights "none": no checkpoint)
        generative = settings.model_copy(
            update={"restorer": settings.restorer.model_copy(update={"name": "livemoments"})}
        )
        asset = guided[0].payload
        from daemon.library.asset import LiveAsset

        spec = job_spec(LiveAsset.from_dict(asset), generative, "none")
        diffusion_id = store.enqueue(spec).job_id
        Worker(settings, store, worker_id="t", restorer=Upscale(0.1)).run_until_empty()
        reviews = {r.job_id: r for r in store.list_reviews("all")}
        assert reviews[diffusion_id].state == "awaiting"
        assert reviews[diffusion_id].flags == ["low flow confidence (0.10)"]
        published = [r for i, r in reviews.items() if i != diffusion_id]
        assert published and all(r.state == "accepted" for r in published)
        assert all(r.flags == ["low flow confidence (0.10)"] for r in published)
        assert store.list_reviews("all", flagged=True) == store.list_reviews("all")
    finally:
        store.close()


# ------------------------------------------------------------------------ the face guard


class SwapThenHonest(Upscale):
    """First call: another person's face pasted over the astronaut's; then honest."""

    def __init__(self, face: tuple[int, int, int, int]) -> None:
        super().__init__(0.9)
        self.face = face

    def restore(self, request):  # type: ignore[no-untyped-def]
        from tests.faces import edits

        result = super().restore(request)
        if self.calls == 1:
            result.image = edits.another_person(result.image, self.face, 0)
        return result


PAN, T1 = 6, 4


@pytest.fixture(scope="module")
def face_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("skimage", reason="scikit-image (test extra) ships the portrait")
    from core.faces import availability

    if not availability()[0]:
        pytest.skip("lmd[faces] (dlib-bin, face-recognition-models) missing")
    from skimage import data

    from daemon.library.synth import write_reselected_live_photo

    library = tmp_path_factory.mktemp("faces") / "library"
    # the camera pans PAN px per frame, so the reselected frame differs from the key frame
    base = data.astronaut()
    frames = [np.roll(base, PAN * f, axis=1) for f in range(6)]
    for number in (2001, 2002):
        write_reselected_live_photo(library / "2026", f"IMG_{number}", frames, 10.0, 1, T1,
                                    scale=2, still_format="jpeg")  # JPEG: 10x faster than HEIC
    return library


def test_identity_drift_is_held_even_without_review_and_guided_falls_back(
    tmp_path: Path, face_library: Path
) -> None:
    from tests.faces.edits import ASTRONAUT_FACE

    library = copy_library(face_library, tmp_path)
    settings = settings_for(tmp_path, library)  # review not required
    # where the face is in the restored still: the reselected frame's box, 2x (the stills are
    # twice the 512 px frame)
    left, top, right, bottom = ASTRONAUT_FACE
    face = tuple(2 * v for v in (left + PAN * T1, top, right + PAN * T1, bottom))
    store = scan_and_work(settings, SwapThenHonest(face))  # type: ignore[arg-type]
    try:
        by_state = {r.state: r for r in store.list_reviews("all")}
        held, honest = by_state["awaiting"], by_state["accepted"]
        assert held.flags == ["identity drift"] and held.face_check["status"] == "drift"
        assert held.job.output_path is None
        assert honest.face_check["status"] == "passed" and Path(honest.job.output_path).is_file()
        # guided puts the frame's own face back: the staged still matches the upscaled frame
        # (the target still) inside the face, where the swapped restoration did not
        from daemon.library.media import load_still
        from tests.faces import edits

        dirs = ReviewDirs(settings.state_dir)
        staged = decode_png(dirs.staged_file(held.job_id, held.staged_signature["file"]))
        upscaled = load_still(Path(held.job.payload["target"]), dtype=np.uint8).astype(float)
        left, top, right, bottom = face
        inner = (slice(top + 20, bottom - 20), slice(left + 20, right - 20))
        pasted = edits.another_person(upscaled.astype(np.float32) / 255.0, face, 0) * 255.0
        diff_kept = np.abs(staged[inner] - upscaled[inner]).mean()
        diff_swap = np.abs(pasted[inner] - upscaled[inner]).mean()
        # inside the face the mask is 1: only 8-bit rounding remains, far below the swap's
        assert diff_kept < 0.1 * diff_swap, (diff_kept, diff_swap)
    finally:
        store.close()


def test_a_large_still_is_checked_within_2048_px_and_its_face_put_back_at_full_size() -> None:
    pytest.importorskip("skimage", reason="scikit-image (test extra) ships the portrait")
    from core.faces import availability

    if not availability()[0]:
        pytest.skip("lmd[faces] (dlib-bin, face-recognition-models) missing")
    from daemon.review.gate import face_check, keep_frame_faces
    from tests.faces import edits

    scene = edits.scene(scale=4.05)  # a 2074 px still from a 512 px frame
    h, w = scene.still.shape[:2]
    swapped = edits.another_person(scene.still, scene.face, 0)
    check = face_check(scene.frame, swapped)
    assert check["status"] == "drift" and check["size"] == [w, h]
    [face] = [f for f in check["faces"] if f["drift"]]  # (the portrait's badge passes)
    left, top, right, bottom = face["box"]  # in the full still's pixels, on the pasted face
    fl, ft, fr, fb = scene.face
    assert fl - 40 <= left < right <= fr + 40 and ft - 40 <= top < bottom <= fb + 40
    kept = keep_frame_faces(scene.frame, swapped, check)
    upscaled = cv2.resize(scene.frame, (w, h), interpolation=cv2.INTER_CUBIC)
    inner = (slice(top + 20, bottom - 20), slice(left + 20, right - 20))
    # float32 pictures: inside the face the mask is 1, so the frame comes back to rounding
    assert np.abs(kept[inner] - upscaled[inner]).max() < 1e-3
    far = (slice(0, max(0, top - (bottom - top))), slice(None))  # beyond the face's window
    assert np.array_equal(kept[far], swapped[far])
    assert face_check(scene.frame, kept)["status"] == "passed"
