"""Accept, reject and redo (the service behind `lmd review` and the page): the files and job
rows that result, the decision remembered across scans, and decisions that must be refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from core import hashing
from daemon.output import FenceLost
from daemon.review.decisions import ReviewRefused, open_review_service
from daemon.review.layout import ReviewDirs
from daemon.scanner import run_scan
from daemon.store.review import reviews
from daemon.worker import Worker
from tests.review.helpers import Upscale, copy_library, scan_and_work, settings_for, tree_files
from tests.service.helpers import tree_hashes


def _reasons(store, job_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.reason or "" for e in store.events(job_id)]


def test_accept_publishes_the_staged_still_as_the_output_mode_says(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    untouched = tree_hashes(library)
    settings = settings_for(tmp_path, library, review={"required": True})
    store = scan_and_work(settings)
    service = open_review_service(settings, store)
    try:
        first, second, third = sorted(r.job_id for r in service.list("awaiting"))
        staged = ReviewDirs(settings.state_dir).staging_dir(first)
        assert staged.is_dir()
        decided = service.accept(first, by="test")
        job = store.get_job(first)
        out = Path(job.output_path)
        assert out.is_relative_to(Path(settings.output.tree)) and out.is_file()
        assert hashing.matches(out, job.output_signature["content_hash"])
        assert decided.state == "accepted" and str(out) in decided.message
        assert service.get(first).decided_by == "test"
        assert not staged.exists()  # the staged copy is gone once published
        assert "review: accepted by test" in _reasons(store, first)
        assert store.find_outputs([job.output_signature["content_hash"]])  # lmd knows it
        assert tree_hashes(library) == untouched  # sidecar mode: the library is read only
        with pytest.raises(ReviewRefused, match="already accepted"):
            service.accept(first, by="test")
        # the others still wait; accepting them in bulk reports each
        results = service.decide_many("accept", [second, third, 999], by="test")
        assert [getattr(r, "state", None) for r in results[:2]] == ["accepted", "accepted"]
        assert results[2] == "job 999 does not exist"
        assert store.review_counts() == {"awaiting": 0, "accepted": 3, "rejected": 0}
    finally:
        service.close()
        store.close()


def test_reject_discards_and_no_scan_queues_those_inputs_again_until_reprocess(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    settings = settings_for(tmp_path, library, review={"required": True})
    store = scan_and_work(settings)
    service = open_review_service(settings, store)
    try:
        job_id = service.list("awaiting")[0].job_id
        service.reject(job_id, by="test")
        review = service.get(job_id)
        assert review.state == "rejected" and store.get_job(job_id).output_path is None
        assert not ReviewDirs(settings.state_dir).staging_dir(job_id).exists()
        assert tree_files(Path(settings.output.tree)) == set()
        assert "review: rejected by test (staged restoration discarded)" in _reasons(
            store, job_id
        )
        summary = run_scan(settings, library, store=store)
        assert summary.enqueued == 0 and store.counts()["pending"] == 0
        # `reprocess` is the way back: the job runs again and waits for a decision again
        since = datetime.now(UTC) - timedelta(hours=1)
        assert store.reprocess(since, states=["succeeded"]) == 3
        Worker(settings, store, worker_id="t", restorer=Upscale()).run_until_empty()
        assert service.get(job_id).state == "awaiting"
    finally:
        service.close()
        store.close()


def test_replace_mode_accept_backs_up_and_reject_reverts_exactly(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    original = tree_hashes(library)
    settings = settings_for(
        tmp_path, library, review={"required": True}, output={"mode": "replace"}
    )
    store = scan_and_work(settings)
    service = open_review_service(settings, store)
    try:
        assert tree_hashes(library) == original  # nothing replaced before a decision
        job_id = service.list("awaiting")[0].job_id
        service.accept(job_id, by="test")
        target = Path(store.get_job(job_id).payload["target"])
        changed = {k for k, v in tree_hashes(library).items() if original.get(k) != v}
        assert changed == {str(target.relative_to(library))}
        assert tree_files(Path(settings.output.backup_dir))  # the original is kept
        service.reject(job_id, by="test")  # review off or on: a published one is reverted
        assert tree_hashes(library) == original
        assert store.get_job(job_id).output_path is None
        assert service.get(job_id).note.startswith("original put back")
        assert run_scan(settings, library, store=store).enqueued == 0  # remembered
    finally:
        service.close()
        store.close()


def test_without_review_a_reject_removes_lmds_output_but_never_an_edited_one(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    settings = settings_for(tmp_path, library, output={"location": "beside"})
    store = scan_and_work(settings)
    service = open_review_service(settings, store)
    try:
        first, second = sorted(r.job_id for r in service.list("accepted"))[:2]
        out = Path(store.get_job(first).output_path)
        assert out.parent.is_relative_to(library) and out.is_file()
        service.reject(first, by="test")
        assert not out.exists() and service.get(first).state == "rejected"
        edited = Path(store.get_job(second).output_path)
        edited.write_bytes(edited.read_bytes() + b"a person's edit")
        with pytest.raises(ReviewRefused, match="changed since lmd wrote it"):
            service.reject(second, by="test")
        assert edited.is_file() and service.get(second).state == "accepted"
        assert service.get(second).claim is None  # the refusal let go of its claim
    finally:
        service.close()
        store.close()


def test_a_decision_taken_over_mid_write_writes_nothing(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    settings = settings_for(tmp_path, library, review={"required": True})
    store = scan_and_work(settings)
    service = open_review_service(settings, store)
    real_write = service.files.write

    def write_after_takeover(plan, job, image, like, provenance, *, fence=None):  # type: ignore[no-untyped-def]
        with store.engine.begin() as conn:  # another decision takes the claim over
            conn.execute(update(reviews).where(reviews.c.job_id == job.id).values(claim="x"))
        return real_write(plan, job, image, like, provenance, fence=fence)

    try:
        job_id = service.list("awaiting")[0].job_id
        service.files.write = write_after_takeover  # type: ignore[method-assign]
        with pytest.raises(ReviewRefused) as refused:
            service.accept(job_id, by="test")
        assert isinstance(refused.value.__cause__, FenceLost)
        assert tree_files(Path(settings.output.tree)) == set()  # no file, no temp file
        assert service.get(job_id).state == "awaiting"
        assert store.get_job(job_id).output_path is None
    finally:
        service.close()
        store.close()


def test_redo_queues_the_same_photo_with_another_restorer_and_scans_keep_it(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    settings = settings_for(tmp_path, library, review={"required": True})
    store = scan_and_work(settings)
    service = open_review_service(settings, store)
    try:
        review = service.list("awaiting")[0]
        choices = service.restorers_for(review.job)
        assert "guided" not in choices and "livemoments" not in choices  # own; no checkpoint
        with pytest.raises(ReviewRefused, match="cannot redo with 'livemoments'"):
            service.redo(review.job_id, "livemoments", by="test")
        decided = service.redo(review.job_id, "bicubic", by="test")
        redo = store.get_job(decided.redo_job_id)
        assert redo.state == "pending" and redo.restorer == "bicubic"
        assert redo.asset_key == review.job.asset_key and redo.identity != review.job.identity
        assert service.get(review.job_id).state == "rejected"
        assert service.get(review.job_id).redo_job_id == redo.id
        run_scan(settings, library, store=store)  # neither undoes the redo nor adds work
        assert store.get_job(redo.id).state == "pending" and store.counts()["pending"] == 1
        assert store.get_job(review.job_id).superseded_by is None
        Worker(settings, store, worker_id="t", restorer=Upscale()).run_until_empty()
        assert service.get(redo.id).state == "awaiting"
        run_scan(settings, library, store=store)
        assert store.counts()["pending"] == 0
    finally:
        service.close()
        store.close()


def test_hooks_and_xmp_sidecars_follow_publication_not_staging(
    tmp_path: Path, source_library: Path
) -> None:
    """A held restoration is announced (post-job hook) and gets its XMP sidecar when a person
    accepts it; one published at once, when the worker writes it."""
    import json
    import sys

    heard = tmp_path / "heard"
    heard.mkdir()
    hook = [sys.executable, "-c",
            "import os, sys; open(os.path.join(sys.argv[1], os.environ['LMD_JOB_ID']), 'w')"
            ".write(sys.stdin.read())", str(heard)]
    library = copy_library(source_library, tmp_path)
    settings = settings_for(
        tmp_path, library, review={"required": True}, hooks={"on_success": hook},
        output={"xmp_sidecar": True},
    )
    store = scan_and_work(settings)  # the worker's hooks are waited for when it stops
    service = open_review_service(settings, store)
    try:
        assert sorted(heard.iterdir()) == []  # staged: nothing published, nobody told
        job_id = service.list("awaiting")[0].job_id
        service.accept(job_id, by="test")
        service.close()  # waits for the hook queue
        document = json.loads((heard / str(job_id)).read_text())
        output = Path(store.get_job(job_id).output_path)
        assert document["event"] == "success" and document["output"] == str(output)
        sidecar = output.with_name(output.name + ".xmp")
        assert b"DerivedFrom" in sidecar.read_bytes()
        assert [p.name for p in heard.iterdir()] == [str(job_id)]
    finally:
        service.close()
        store.close()
    # review off: the worker publishes and announces each one itself
    direct = tmp_path / "direct"
    direct_heard = direct / "heard"
    direct_heard.mkdir(parents=True)
    settings = settings_for(
        direct, copy_library(source_library, direct), hooks={"on_success": [*hook[:-1],
                                                                          str(direct_heard)]},
    )
    store = scan_and_work(settings)
    try:
        jobs = store.list_jobs(state="succeeded")
        assert sorted(p.name for p in direct_heard.iterdir()) == sorted(str(j.id) for j in jobs)
    finally:
        store.close()


def test_immich_hears_of_a_restoration_when_accepted_and_hooks_of_a_failure(
    tmp_path: Path, source_library: Path
) -> None:
    import sys

    from core import RestoreError
    from tests.publish.immich_standin import ImmichStandIn

    class Broken(Upscale):
        def restore(self, request):  # type: ignore[no-untyped-def]
            raise RestoreError("this restorer refuses every photo")

    failures = tmp_path / "failures"
    failures.mkdir()
    hook = [sys.executable, "-c",
            "import os, sys; open(os.path.join(sys.argv[1], os.environ['LMD_EVENT'] + '-'"
            " + os.environ['LMD_JOB_ID']), 'w')", str(failures)]
    library = copy_library(source_library, tmp_path)
    with ImmichStandIn(api_key="k") as immich:
        settings = settings_for(
            tmp_path, library, review={"required": True},
            immich={"url": immich.url, "api_key": "k"}, hooks={"on_failure": hook},
        )
        store = scan_and_work(settings)
        service = open_review_service(settings, store)
        try:
            assert immich.calls("POST", "/api/assets") == []  # staged: nothing to upload
            job_id = service.list("awaiting")[0].job_id
            service.accept(job_id, by="test")
            service.close()  # waits for the delivery in flight
            [upload] = immich.calls("POST", "/api/assets")
            name = Path(store.get_job(job_id).output_path).name
            assert upload.files["assetData"][0] == name
        finally:
            service.close()
            store.close()
    # a job that fails for good is announced to the failure hook by the worker
    failing = tmp_path / "failing"
    settings = settings_for(
        failing, copy_library(source_library, failing), hooks={"on_failure": hook}
    )
    store = scan_and_work(settings, Broken())
    try:
        failed = store.list_jobs(state="failed")
        assert len(failed) == 3
        assert sorted(p.name for p in failures.iterdir()) == sorted(
            f"failure-{job.id}" for job in failed
        )
    finally:
        store.close()
