"""Video jobs are announced like stills (issue 14 item 2): `[hooks] on_success` / `on_failure`
read the same JSON document with `kind = "video"`, and the viewers hear of a restored video only
where it replaced the library's MOV (Immich's rescan, PhotoPrism's index of its folder); a
sidecar movie in the output tree, or an upload to Immich, would show as a lone video."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

from daemon.publish.outcome import JobOutcome
from daemon.publish.publishers import Publishers
from daemon.publish.settings import HooksSettings, ImmichSettings, PhotoPrismSettings
from daemon.settings import load_settings
from daemon.store import open_store
from tests.publish.immich_standin import ImmichStandIn
from tests.publish.photoprism_standin import PhotoPrismStandIn
from tests.video import test_video_jobs
from tests.video.test_video_jobs import ENABLED, _config, lmd

library = test_video_jobs.library  # the fixture: a library of two tiny Live Photos

#: a real hook: writes the document it reads on stdin to DIR/<event>-<job id>
HOOK = ("import os, sys; open(os.path.join(sys.argv[1], os.environ['LMD_EVENT'] + '-' + "
        "os.environ['LMD_JOB_ID']), 'w').write(sys.stdin.read())")


def _with_hooks(config: Path, heard: Path) -> None:
    command = json.dumps([sys.executable, "-c", HOOK, str(heard)])
    config.write_text(config.read_text() + f"[hooks]\non_success = {command}\n"
                      f"on_failure = {command}\n")


def test_hooks_hear_of_video_jobs_with_their_kind(tmp_path: Path, library: Path) -> None:
    heard = tmp_path / "heard"
    heard.mkdir()
    config = _config(tmp_path, ENABLED + '\nwhich = "all"')
    _with_hooks(config, heard)
    assert lmd(config, "scan")[0] == 0
    settings = load_settings(config)
    with open_store(settings.database_url) as store:  # IMG_0002's video job will fail
        from sqlalchemy import update

        from daemon.store.models import jobs

        broken = next(j for j in store.list_jobs() if j.asset_key == "IMG_0002")
        with store.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == broken.id)
                         .values(weights_digest="blake3-checkpoint:0123"))
    assert lmd(config, "work")[0] == 0  # `lmd work` waits for its hooks when it stops
    with open_store(settings.database_url) as store:
        by_id = {j.id: j for j in store.list_jobs()}
    documents = {p.name: json.loads(p.read_text()) for p in heard.iterdir()}
    videos = {name: doc for name, doc in documents.items() if doc["kind"] == "video"}
    assert sorted(videos) == sorted([f"success-{j.id}" for j in by_id.values()
                                     if j.kind == "video" and j.state.value == "succeeded"]
                                    + [f"failure-{broken.id}"])
    for name, doc in videos.items():
        job = by_id[doc["job_id"]]
        assert doc["asset"] == job.asset_key
        assert doc["original"] == job.payload["video"]
        assert doc["mode"] == "sidecar-tree" and doc["restorer"] == "guided-video"
        if name.startswith("success"):
            assert doc["output"] == job.output_path
            assert Path(doc["output"]).is_file() and doc["output"] != doc["original"]
        else:
            assert doc["output"] is None and "blake3-checkpoint:0123" in doc["error"]
    stills = [doc for doc in documents.values() if doc["kind"] == "still"]
    assert [doc["event"] for doc in stills] == ["success"]


def _video(library: Path, mode: str) -> JobOutcome:
    mov = library / "IMG_0001.MOV"
    output = mov if mode == "replace" else library.parent / "restored" / mov.name
    return JobOutcome(7, "IMG_0001", mov, output, mode, restorer="guided-video", kind="video")


def test_viewers_hear_of_a_video_only_where_it_replaced_the_mov(
    tmp_path: Path, library: Path
) -> None:
    with ImmichStandIn(api_key="k") as immich, PhotoPrismStandIn(token="t") as photoprism:
        immich.add_library("photos", [str(library)])
        for immich_mode in ("rescan", "upload"):
            settings = SimpleNamespace(
                hooks=HooksSettings(),
                immich=ImmichSettings(url=immich.url, api_key="k", mode=immich_mode),
                photoprism=PhotoPrismSettings(url=photoprism.url, token="t",
                                              originals=str(tmp_path)),
            )
            pubs = Publishers.from_settings(settings, library)  # type: ignore[arg-type]
            pubs.publish(_video(library, "sidecar-tree"))
            pubs.publish(_video(library, "replace"))
            assert pubs.immich is not None and pubs.immich.outbox.wait_idle(20)
            assert pubs.photoprism is not None and pubs.photoprism.outbox.wait_idle(20)
            pubs.close()
        # the replaced MOV's folder, once per run; the sidecar in the tree never
        assert photoprism.indexed == ["library", "library"]
        assert len(immich.calls("POST", f"/api/libraries/{immich.libraries[0]['id']}/scan")) == 1
        assert immich.calls("POST", "/api/assets") == []  # upload mode uploads no video
