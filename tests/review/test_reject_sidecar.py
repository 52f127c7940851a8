"""Rejecting a published sidecar-mode output also takes away the XMP sidecar lmd wrote beside
it (`[output] xmp_sidecar`): `IMG_E1201_lmdr.HEIC.xmp` stayed in the library describing a photo
that was no longer there."""

from __future__ import annotations

from pathlib import Path

from daemon.review.decisions import open_review_service
from tests.review.helpers import copy_library, scan_and_work, settings_for


def test_a_rejected_output_takes_its_xmp_sidecar_along(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    settings = settings_for(
        tmp_path, library,
        output={"location": "beside", "naming": "photoprism", "xmp_sidecar": True},
    )
    store = scan_and_work(settings)
    service = open_review_service(settings, store)
    try:
        jobs = sorted(store.list_jobs(), key=lambda j: j.id)
        outputs = [Path(j.output_path) for j in jobs]
        sidecars = [o.with_name(o.name + ".xmp") for o in outputs]
        assert all(p.is_file() for p in outputs + sidecars)
        service.reject(jobs[0].id, "test")
        assert not outputs[0].exists() and not sidecars[0].exists()
        assert all(p.is_file() for p in outputs[1:] + sidecars[1:])
    finally:
        service.close()
        store.close()
