"""Immich: upload a restored still and stack it over its original, or rescan the library.

Endpoints and shapes follow Immich's published OpenAPI document
(`open-api/immich-openapi-specs.json` in immich-app/immich), all under `/api`, authenticated
by the `x-api-key` header:

- `POST /assets` (multipart `AssetMediaCreateDto`): `assetData` (the file), `fileCreatedAt`,
  `fileModifiedAt` (ISO 8601) are required; `deviceAssetId` and `deviceId` were required up
  to Immich 1.x and are sent too (2.x no longer lists them and ignores them). The optional
  `x-immich-checksum` header (sha1 of the file) makes a repeated upload answer
  `{"id", "status": "duplicate"}` (200) instead of storing a second copy: a retry after a
  timeout whose first try did land is harmless. A new asset answers 201 `{"id", "status":
  "created"}` (`AssetMediaResponseDto`).
- `POST /search/metadata` (`MetadataSearchDto`): finds the original's asset, first by
  `checksum` (base64 sha1 of its bytes: what mobile backup and uploads store), then by
  `originalPath` (external libraries, whose assets are keyed by path).
- `POST /stacks` (`StackCreateDto {"assetIds"}`, "first becomes primary, min 2"): the
  restored still first, so Immich shows it as the stack's cover (immich-go #162 asks for
  exactly this); answers 201 `StackResponseDto {"id", "primaryAssetId", "assets"}`.
- `GET /libraries` (`LibraryResponseDto[]`, `importPaths`) and `POST /libraries/{id}/scan`
  (204) for mode = "rescan": the library whose import path holds the output is scanned.
  Immich allows both to admins only, so that mode needs an admin's API key.

Every call goes through the `Outbox`, so `ImmichPublisher.publish` returns at once and a
server that is down, slow or refusing the key is retried with backoff and then reported.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import mimetypes
import posixpath
from pathlib import Path
from typing import Any

import httpx
import structlog

from daemon.files.names import escape, is_utf8
from daemon.publish.http import call, json_of, make_client
from daemon.publish.outbox import DeliveryError, Outbox, OutboxStore
from daemon.publish.outcome import JobOutcome
from daemon.publish.settings import ImmichSettings

log = structlog.get_logger(__name__)

_HINTS = {
    401: "Immich refused the API key (401): check immich.api_key",
    403: "the API key lacks a permission this needs (403)",
    404: "not found (404): check immich.url (the server's address, without /api)",
}


def _sha1(path: Path) -> bytes:
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def _iso(ns: int) -> str:
    when = _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ImmichClient:
    """The few Immich calls lmd makes. Errors raise `DeliveryError` with a message that says
    what to fix; `retry` is False where waiting cannot help (a request Immich calls bad)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = url.rstrip("/")
        base = base.removesuffix("/api")
        self.url = base
        self._http = make_client(
            f"{base}/api",
            {"x-api-key": api_key, "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return call(self._http, "Immich", method, path, hints=_HINTS, **kwargs)

    def _json(self, response: httpx.Response, what: str) -> Any:
        return json_of(response, f"Immich {what}")

    def upload(self, path: Path, *, device_id: str, created_ns: int) -> tuple[str, str]:
        """Upload `path`; returns (asset id, "created" | "duplicate" | "replaced")."""
        st = path.stat()
        checksum = _sha1(path)
        form = {
            "deviceAssetId": f"lmd-{checksum.hex()[:20]}",
            "deviceId": device_id,
            "fileCreatedAt": _iso(created_ns),
            "fileModifiedAt": _iso(st.st_mtime_ns),
            "filename": escape(path.name),  # a name's bytes that are not UTF-8, as lmd shows them
        }
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with open(path, "rb") as fh:
            response = self._call(
                "POST",
                "/assets",
                data=form,
                files={"assetData": (form["filename"], fh, mime)},
                headers={"x-immich-checksum": checksum.hex()},
            )
        body = self._json(response, "upload")
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise DeliveryError(f"Immich upload: unexpected answer {body!r:.200}")
        return body["id"], str(body.get("status", ""))

    def _search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        body = self._json(self._call("POST", "/search/metadata", json=query), "search")
        items = body.get("assets", {}).get("items", []) if isinstance(body, dict) else []
        return [item for item in items if isinstance(item, dict) and "id" in item]

    def find_asset(self, original: Path, immich_path: str | None) -> str | None:
        """The id of the original's asset: by content (sha1), else by its path in Immich (not
        for a path whose bytes are not UTF-8: JSON cannot carry it, nor Immich store it)."""
        checksum = base64.b64encode(_sha1(original)).decode("ascii")
        found = self._search({"checksum": checksum})
        if not found and immich_path is not None and is_utf8(immich_path):
            by_path = self._search({"originalPath": immich_path})
            found = [a for a in by_path if a.get("originalPath", immich_path) == immich_path]
        return str(found[0]["id"]) if found else None

    def create_stack(self, asset_ids: list[str]) -> str:
        """Stack `asset_ids`; the first is the primary (the cover)."""
        body = self._json(self._call("POST", "/stacks", json={"assetIds": asset_ids}), "stack")
        if not isinstance(body, dict) or "id" not in body:
            raise DeliveryError(f"Immich stack: unexpected answer {body!r:.200}")
        if body.get("primaryAssetId") not in (None, asset_ids[0]):
            log.warning("Immich chose another stack cover", stack=body["id"])
        return str(body["id"])

    def libraries(self) -> list[dict[str, Any]]:
        body = self._json(self._call("GET", "/libraries"), "libraries")
        if not isinstance(body, list):
            raise DeliveryError(f"Immich libraries: unexpected answer {body!r:.200}")
        return [lib for lib in body if isinstance(lib, dict)]

    def scan_library(self, library_id: str) -> None:
        self._call("POST", f"/libraries/{library_id}/scan")


def library_holding(libraries: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    """The library whose import path is the longest prefix of `path` (nested imports)."""
    best: tuple[int, dict[str, Any]] | None = None
    for lib in libraries:
        for root in lib.get("importPaths") or []:
            root = posixpath.normpath(str(root))
            inside = path == root or path.startswith(root.rstrip("/") + "/")
            if inside and (best is None or len(root) > best[0]):
                best = (len(root), lib)
    return best[1] if best else None


class ImmichPublisher:
    """Tells Immich about each published still, as `[immich] mode` says; never blocks."""

    def __init__(
        self,
        settings: ImmichSettings,
        *,
        library_root: Path | None,
        store: OutboxStore | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if settings.url is None or settings.api_key is None:
            raise ValueError("ImmichPublisher needs immich.url and immich.api_key")
        self.settings = settings
        self.library_root = library_root
        self.client = ImmichClient(
            settings.url,
            settings.api_key.get_secret_value(),
            timeout=settings.timeout_seconds,
            transport=transport,
        )
        self.outbox = Outbox(
            "immich",
            {"immich.upload": self._upload, "immich.rescan": self._rescan},
            max_attempts=settings.max_attempts,
            backoff=settings.backoff_seconds,
            max_backoff=settings.max_backoff_seconds,
            store=store,
        )

    def immich_path(self, local: Path) -> str | None:
        """`local` as Immich sees it (`[immich] library_path` replaces the library root)."""
        local_s = posixpath.normpath(str(local))
        if self.settings.library_path is None or self.library_root is None:
            return local_s
        root = posixpath.normpath(str(self.library_root))
        if local_s != root and not local_s.startswith(root.rstrip("/") + "/"):
            return None  # outside the library (e.g. the output tree): Immich cannot see it
        return posixpath.normpath(self.settings.library_path + local_s[len(root) :])

    def publish(self, outcome: JobOutcome) -> None:
        """Queue what `mode` asks for; returns at once. Failed jobs publish nothing."""
        if outcome.event != "success" or outcome.output is None:
            return
        if outcome.kind == "video" and self.settings.mode == "upload":
            # an uploaded movie would be a lone video, never the Live Photo's half
            log.info("Immich upload mode skips restored videos (rescan mode picks them up)",
                     job_id=outcome.job_id, output=str(outcome.output))
            return
        payload = {
            "job_id": outcome.job_id,
            "original": str(outcome.original),
            "output": str(outcome.output),
        }
        job_id = outcome.job_id if isinstance(outcome.job_id, int) else None
        if self.settings.mode == "upload":
            self.outbox.submit("immich.upload", payload, job_id=job_id)
        else:
            folder = str(Path(outcome.output).parent)
            self.outbox.submit("immich.rescan", payload, key=f"rescan:{folder}", job_id=job_id)

    def _upload(self, payload: dict[str, Any]) -> None:
        output, original = Path(payload["output"]), Path(payload["original"])
        try:
            created_ns = original.stat().st_mtime_ns
        except OSError:
            created_ns = output.stat().st_mtime_ns
        try:
            asset_id, status = self.client.upload(
                output, device_id=self.settings.device_id, created_ns=created_ns
            )
        except OSError as exc:
            raise DeliveryError(f"cannot read {output}: {exc}", retry=False) from exc
        original_id = self.client.find_asset(original, self.immich_path(original))
        if original_id is None:
            log.warning(
                "restored still uploaded to Immich without a stack: the original is not there",
                job_id=payload["job_id"],
                asset_id=asset_id,
                original=str(original),
            )
            return
        if original_id == asset_id:
            return  # the "original" is the output itself (replace mode): nothing to stack
        stack_id = self.client.create_stack([asset_id, original_id])
        log.info(
            "restored still stacked over its original in Immich",
            job_id=payload["job_id"],
            asset_id=asset_id,
            upload=status,
            stack_id=stack_id,
        )

    def _rescan(self, payload: dict[str, Any]) -> None:
        output = Path(payload["output"])
        path = self.immich_path(output)
        if path is None:
            raise DeliveryError(
                f"{output} is outside the library, where no Immich library can see it: "
                "use immich.mode = 'upload' or an output location inside the library",
                retry=False,
            )
        library = library_holding(self.client.libraries(), path)
        if library is None:
            raise DeliveryError(
                f"no Immich external library has an import path holding {path}; add one, "
                "or set immich.library_path to where Immich sees lmd's library",
                retry=False,
            )
        self.client.scan_library(str(library["id"]))
        log.info("Immich library rescan asked", library=library.get("name"), path=path)

    def close(self, timeout: float = 0.0) -> None:
        self.outbox.close(timeout)
        self.client.close()
