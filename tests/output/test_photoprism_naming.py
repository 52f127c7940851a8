"""`[output] naming = "photoprism"`: a beside output named so that PhotoPrism stacks it with
its original (`IMG_1234_lmdr.HEIC`), pinned on the job like the rest of the output, written
there by the worker, and never taken for an input by the next scan."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from daemon.output.errors import OutputError
from daemon.output.plan import plan_output
from daemon.scanner import run_scan
from daemon.settings import load_settings
from daemon.settings.load import SettingsError
from daemon.store import JobState, OutputSpec, open_store
from daemon.worker import Worker
from tests.review.helpers import Upscale, copy_library, settings_for


@pytest.fixture(scope="session")
def source_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from daemon.demo import build_sample_library

    library = tmp_path_factory.mktemp("naming-source") / "library"
    build_sample_library(library, count=2, video_size=(96, 72), scale=2)
    return library


def spec(root: Path, naming: str) -> OutputSpec:
    return OutputSpec(
        mode="sidecar", location="beside", root=root, tree=None, suffix="_lmd",
        backup_dir=None, jpeg_quality=95, heic_quality=90, naming=naming,
    )


def test_the_plan_names_a_beside_output_for_photoprism(tmp_path: Path) -> None:
    target = tmp_path / "2026" / "IMG_1234.HEIC"
    target.parent.mkdir()
    target.write_bytes(b"still")
    stacked = plan_output(target, tmp_path, spec(tmp_path, "photoprism"))
    assert stacked.destination == target.with_name("IMG_1234_lmdr.HEIC")
    assert stacked.kind == "sidecar-beside" and not stacked.keep_live_identity
    assert plan_output(target, tmp_path, spec(tmp_path, "suffix")).destination.name == (
        "IMG_1234_lmd.HEIC"
    )
    with pytest.raises(OutputError, match="unknown output naming"):
        plan_output(target, tmp_path, spec(tmp_path, "darktable"))


def test_the_naming_is_pinned_and_part_of_the_identity_only_when_not_the_default() -> None:
    base = spec(Path("/lib"), "suffix")
    assert "naming" not in base.to_dict()  # jobs pinned before naming existed keep identities
    stacked = replace(base, naming="photoprism")
    assert stacked.to_dict()["naming"] == "photoprism"
    assert stacked.to_columns()["output_naming"] == "photoprism"
    assert OutputSpec.from_columns(stacked.to_columns()) == stacked
    assert OutputSpec.from_columns({**base.to_columns(), "output_naming": None}) == base


@pytest.mark.parametrize(("mode", "location"), [("sidecar", "tree"), ("replace", "beside")])
def test_photoprism_naming_needs_a_beside_sidecar(
    tmp_path: Path, mode: str, location: str
) -> None:
    output = {"mode": mode, "location": location, "naming": "photoprism",
              "tree": tmp_path / "tree", "backup_dir": tmp_path / "backups"}
    with pytest.raises(SettingsError, match=r"output\.location = 'beside'"):
        load_settings(None, library=tmp_path, state_dir=tmp_path / "state", output=output)


def test_the_worker_writes_the_stacking_name_and_a_rescan_leaves_it_alone(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    before = {p.name for p in library.rglob("*") if p.is_file()}
    settings = settings_for(
        tmp_path, library, output={"mode": "sidecar", "location": "beside", "naming": "photoprism"}
    )
    store = open_store(settings.database_url)
    first = run_scan(settings, library, store=store)
    Worker(settings, store, worker_id="t", restorer=Upscale()).run_until_empty()
    try:
        done = store.list_jobs(state="succeeded")
        assert len(done) == 2
        for job in done:
            assert job.output is not None and job.output.naming == "photoprism"
            target = Path(job.payload.get("target") or job.payload["reference"])
            output = Path(job.output_path)
            assert output == target.with_name(f"{target.stem}_lmdr{target.suffix}")
            assert output.is_file()
        written = {p.name for p in library.rglob("*") if p.is_file()} - before
        assert written == {Path(job.output_path).name for job in done}
        again = run_scan(settings, library, store=store)
        assert again.enqueued == 0 and again.assets_found == 2
        # lmd's own outputs are not even read: ignored by name like `_lmd` ones
        assert again.files_seen == first.files_seen
        assert len(store.list_jobs()) == 2
        assert all(j.state == JobState.SUCCEEDED for j in store.list_jobs())
    finally:
        store.close()
