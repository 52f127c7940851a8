"""The one call the worker makes after a job reaches every configured tool, and only those."""

from __future__ import annotations

import shlex
from pathlib import Path
from types import SimpleNamespace

from structlog.testing import capture_logs

from daemon.publish.outcome import JobOutcome
from daemon.publish.publishers import Publishers
from daemon.publish.settings import HooksSettings, ImmichSettings, PhotoPrismSettings
from tests.publish.immich_standin import ImmichStandIn
from tests.publish.photoprism_standin import PhotoPrismStandIn


def _outcome(library: Path, event: str = "success") -> JobOutcome:
    output = library / "IMG_E0001.HEIC"
    output.write_bytes(b"restored")
    return JobOutcome(  # type: ignore[arg-type]
        1, "IMG_0001.HEIC", library / "IMG_0001.HEIC", output, "sidecar-beside", event=event
    )


def test_every_configured_tool_hears_of_a_job(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    (library / "IMG_0001.HEIC").write_bytes(b"original")
    marks = tmp_path / "marks"
    marks.mkdir()
    hook = f"touch {shlex.quote(str(marks))}/$LMD_EVENT-$LMD_JOB_ID"
    with ImmichStandIn(api_key="k") as immich, PhotoPrismStandIn(token="t") as photoprism:
        settings = SimpleNamespace(
            hooks=HooksSettings(on_success=hook, on_failure=hook),
            immich=ImmichSettings(url=immich.url, api_key="k"),
            photoprism=PhotoPrismSettings(url=photoprism.url, token="t"),
        )
        pubs = Publishers.from_settings(settings, library)  # type: ignore[arg-type]
        pubs.publish(_outcome(library))
        pubs.publish(_outcome(library, "failure"))
        assert pubs.hooks is not None and pubs.hooks.wait_idle(20)
        assert pubs.immich is not None and pubs.immich.outbox.wait_idle(20)
        assert pubs.photoprism is not None and pubs.photoprism.outbox.wait_idle(20)
        pubs.close()
        assert sorted(p.name for p in marks.iterdir()) == ["failure-1", "success-1"]
        assert len(immich.calls("POST", "/api/assets")) == 1  # the failed job uploads nothing
        assert photoprism.indexed == [""]


def test_sections_without_url_or_commands_are_off_and_a_broken_one_spares_the_others(
    tmp_path: Path,
) -> None:
    settings = SimpleNamespace(
        hooks=HooksSettings(), immich=ImmichSettings(), photoprism=PhotoPrismSettings()
    )
    pubs = Publishers.from_settings(settings, tmp_path)  # type: ignore[arg-type]
    assert (pubs.hooks, pubs.immich, pubs.photoprism) == (None, None, None)
    pubs.publish(_outcome(tmp_path))  # nothing configured: nothing happens, nothing raises

    seen: list[int | str] = []

    class Broken:
        def submit(self, outcome: JobOutcome) -> None:
            raise RuntimeError("bug")

    class Recorder:
        def publish(self, outcome: JobOutcome) -> None:
            seen.append(outcome.job_id)

    pubs = Publishers(hooks=Broken(), photoprism=Recorder())  # type: ignore[arg-type]
    with capture_logs() as logs:
        pubs.publish(_outcome(tmp_path))
    assert seen == [1]
    assert any(e["event"] == "publisher failed" and e["publisher"] == "hooks" for e in logs)
