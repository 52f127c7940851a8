"""PhotoPrism: index the folder that changed, and names PhotoPrism stacks with the original.

PhotoPrism has no watcher: files written by another tool appear only after an index run
(docs.photoprism.app; ecosystem-expectations.md §11). `POST /api/v1/index` with the JSON
`form.IndexOptions` {"path": the folder relative to the originals folder, "rescan": false,
"cleanup": false} indexes that folder only, skipping unchanged files; it answers when
indexing has finished (hence `[photoprism] timeout_seconds` defaults to 600). Requests carry
the token (an app password or access token) as `Authorization: Bearer` and as
`X-Auth-Token`, both of which PhotoPrism accepts (developer guide, "Client Authentication").
Indexing needs the photos-update permission, so the token must belong to an admin.

Stacking: PhotoPrism groups files into one photo by name (`internal/photoprism/
mediafile_related.go`: `RelatedFiles` and `RelatedSidecarFiles`): files sharing the base name
(`IMG_1234.*`), Apple's edit name next to its original (`IMG_E1234.HEIC` beside
`IMG_1234.HEIC`), and `IMG_1234_????.*` (an underscore and exactly four characters). Of the
HEIC files in a group the one matched last becomes the primary, and the Apple and `_????`
names are matched after the base-name ones, so a restored HEIC so named is the cover (a JPEG
beside a HEIC original is not: PhotoPrism prefers the HEIC). The name rule has one home,
`daemon.files.stack_names` (the output plan uses it under `[output] naming = "photoprism"`,
pinned on each job); it is re-exported here for PhotoPrism's side.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import httpx
import structlog

from daemon.files.names import is_utf8
from daemon.files.stack_names import photoprism_stack_name
from daemon.publish.http import call, make_client
from daemon.publish.outbox import DeliveryError, Outbox, OutboxStore
from daemon.publish.outcome import JobOutcome
from daemon.publish.settings import PhotoPrismSettings

log = structlog.get_logger(__name__)

__all__ = ["PhotoPrismClient", "PhotoPrismPublisher", "photoprism_stack_name"]

_HINTS = {
    401: "PhotoPrism refused the token (401): check photoprism.token",
    403: "the token may not start indexing (403): use an admin's app password",
    404: "not found (404): check photoprism.url (the server's address, without /api/v1)",
}


class PhotoPrismClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = url.rstrip("/").removesuffix("/api/v1")
        self.url = base
        self._http = make_client(
            f"{base}/api/v1",
            {
                "Authorization": f"Bearer {token}",
                "X-Auth-Token": token,
                "Accept": "application/json",
            },
            timeout=timeout,
            transport=transport,
        )

    def index(self, folder: str) -> None:
        """Index `folder` (relative to the originals folder; "" is all of it)."""
        body = {"path": folder, "rescan": False, "cleanup": False}
        call(self._http, "PhotoPrism", "POST", "/index", hints=_HINTS, json=body)

    def close(self) -> None:
        self._http.close()


class PhotoPrismPublisher:
    """Asks PhotoPrism to index each folder lmd wrote into; never blocks the caller."""

    def __init__(
        self,
        settings: PhotoPrismSettings,
        *,
        library_root: Path | None,
        store: OutboxStore | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if settings.url is None or settings.token is None:
            raise ValueError("PhotoPrismPublisher needs photoprism.url and photoprism.token")
        originals = settings.originals or (str(library_root) if library_root else None)
        if originals is None:
            raise ValueError("set photoprism.originals (PhotoPrism's originals folder)")
        self.originals = posixpath.normpath(originals)
        self.client = PhotoPrismClient(
            settings.url,
            settings.token.get_secret_value(),
            timeout=settings.timeout_seconds,
            transport=transport,
        )
        self.outbox = Outbox(
            "photoprism",
            {"photoprism.index": self._index},
            max_attempts=settings.max_attempts,
            backoff=settings.backoff_seconds,
            max_backoff=settings.max_backoff_seconds,
            store=store,
        )

    def folder_of(self, output: Path) -> str | None:
        """The output's folder relative to the originals folder (None when outside it). A
        folder whose name is not UTF-8 cannot be named in JSON: the nearest folder above it
        that can is given instead (PhotoPrism indexes everything below the path)."""
        folder = posixpath.normpath(str(Path(output).parent))
        if folder == self.originals:
            return ""
        if not folder.startswith(self.originals.rstrip("/") + "/"):
            return None
        relative = folder[len(self.originals.rstrip("/")) + 1 :]
        while not is_utf8(relative):
            relative = posixpath.dirname(relative)
        return relative

    def publish(self, outcome: JobOutcome) -> None:
        """Queue an index of the output's folder (coalesced per folder); returns at once."""
        if outcome.event != "success" or outcome.output is None:
            return
        folder = self.folder_of(outcome.output)
        if folder is None:
            log.warning(
                "PhotoPrism cannot see this output: it is outside the originals folder",
                job_id=outcome.job_id,
                output=str(outcome.output),
                originals=self.originals,
            )
            return
        job_id = outcome.job_id if isinstance(outcome.job_id, int) else None
        self.outbox.submit(
            "photoprism.index", {"folder": folder}, key=f"index:{folder}", job_id=job_id
        )

    def _index(self, payload: dict[str, Any]) -> None:
        folder = payload.get("folder")
        if not isinstance(folder, str):
            raise DeliveryError(f"bad PhotoPrism delivery {payload!r}", retry=False)
        self.client.index(folder)
        log.info("PhotoPrism indexed", folder=folder or "/")

    def close(self, timeout: float = 0.0) -> None:
        self.outbox.close(timeout)
        self.client.close()
