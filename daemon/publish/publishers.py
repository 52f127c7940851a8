"""Every configured way out, behind one call: what the worker does after each job.

`Publishers.from_settings(settings, library_root)` builds the hook runner and the Immich and
PhotoPrism publishers that the settings switch on (a section without `url`, or `[hooks]`
without commands, is off; with a job store, hooks and deliveries wait in its outbox);
`publish(outcome)` hands the outcome to each and returns at once (each has its own background
thread and queue); `close(timeout)` stops them at shutdown.

A video job's outcome goes to the hooks always, and to the viewers only where it replaced the
library's MOV (replace mode: Immich's library rescan or PhotoPrism's index of its folder
picks the new movie up under the same Live Photo). A sidecar movie is not announced to them:
it lies in the output tree, and neither viewer can pair a second MOV with a still (an upload
or an index would show it as a lone video).
A publisher that raises is logged and the others still run: nothing here may fail a job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import structlog

from daemon.publish.hook_outbox import StoredHookRunner
from daemon.publish.hooks import HookRunner
from daemon.publish.immich import ImmichPublisher
from daemon.publish.outbox import OutboxStore
from daemon.publish.outcome import JobOutcome
from daemon.publish.photoprism import PhotoPrismPublisher
from daemon.publish.settings import HooksSettings, ImmichSettings, PhotoPrismSettings

log = structlog.get_logger(__name__)


class PublishSettingsLike(Protocol):
    """The sections of `daemon.settings.Settings` this reads (once it has them)."""

    hooks: HooksSettings
    immich: ImmichSettings
    photoprism: PhotoPrismSettings


class Publishers:
    def __init__(
        self,
        hooks: HookRunner | StoredHookRunner | None = None,
        immich: ImmichPublisher | None = None,
        photoprism: PhotoPrismPublisher | None = None,
    ) -> None:
        self.hooks = hooks
        self.immich = immich
        self.photoprism = photoprism

    @classmethod
    def from_settings(
        cls,
        settings: PublishSettingsLike,
        library_root: Path | None,
        *,
        store: OutboxStore | None = None,
    ) -> Publishers:
        # with a job store, hooks wait in its outbox (they survive a restart) like deliveries
        hooks: HookRunner | StoredHookRunner = (
            HookRunner(settings.hooks) if store is None
            else StoredHookRunner(settings.hooks, store)
        )
        immich = photoprism = None
        if settings.immich.url is not None:
            immich = ImmichPublisher(settings.immich, library_root=library_root, store=store)
        if settings.photoprism.url is not None:
            photoprism = PhotoPrismPublisher(
                settings.photoprism, library_root=library_root, store=store
            )
        return cls(hooks if hooks.enabled else None, immich, photoprism)

    def start(self) -> None:
        """Resume deliveries (and hooks) a persistent store kept from the last run."""
        if isinstance(self.hooks, StoredHookRunner):
            self.hooks.start()
        for publisher in (self.immich, self.photoprism):
            if publisher is not None:
                publisher.outbox.start()

    def publish(self, outcome: JobOutcome) -> None:
        """Tell every configured tool about `outcome`; returns at once, never raises."""
        viewers = outcome.kind != "video" or outcome.mode == "replace"
        targets = [
            ("hooks", self.hooks.submit if self.hooks else None),
            ("immich", self.immich.publish if self.immich and viewers else None),
            ("photoprism", self.photoprism.publish if self.photoprism and viewers else None),
        ]
        for name, send in targets:
            if send is None:
                continue
            try:
                send(outcome)
            except Exception as exc:  # one broken publisher must not stop the others
                log.exception(
                    "publisher failed", publisher=name, job_id=outcome.job_id, error=str(exc)
                )

    def close(self, timeout: float = 5.0) -> None:
        if self.hooks is not None:
            self.hooks.close(timeout)
        for publisher in (self.immich, self.photoprism):
            if publisher is not None:
                publisher.close(timeout)
