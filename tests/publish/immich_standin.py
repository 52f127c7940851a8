"""A stand-in Immich server on loopback, built from Immich's published API description.

No Immich server can run here (it needs PostgreSQL with extensions, Redis and its ML
service), so the tests talk to this one. It answers the operations lmd uses in the shapes of
Immich's OpenAPI document (`open-api/immich-openapi-specs.json` in immich-app/immich), checks
each request against that document's required fields and formats (and refuses it with 400
as Immich's validation pipe does), authenticates by `x-api-key` (401 otherwise), and records
every request so tests can check what lmd sent. Failures and slow answers can be scripted.

The operations (paths under /api) and what the document says of them:

- uploadAsset, POST /assets: multipart AssetMediaCreateDto; required assetData (a file),
  fileCreatedAt and fileModifiedAt (date-time), and in 1.x also deviceAssetId and deviceId.
  Answers 201 AssetMediaResponseDto {id, status: "created"}, or 200 {id, status:
  "duplicate"} when the x-immich-checksum header matches a stored asset.
- searchAssets, POST /search/metadata: MetadataSearchDto (checksum, originalPath, ...).
  Answers 200 SearchResponseDto {albums, assets: {count, total, items, facets, nextPage}}.
- createStack, POST /stacks: StackCreateDto {assetIds: uuid[]}, at least 2, the first is the
  primary. Answers 201 StackResponseDto {id, primaryAssetId, assets}.
- getAllLibraries, GET /libraries: answers 200 LibraryResponseDto[] {id, name, ownerId,
  importPaths, exclusionPatterns, assetCount, createdAt, updatedAt, refreshedAt}.
- scanLibrary, POST /libraries/{id}/scan: answers 204.
"""

from __future__ import annotations

import base64
import datetime as _dt
import email.parser
import email.policy
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from tests.publish.standin import LoopbackStandIn, Recorded, read_json

UPLOAD_REQUIRED = {
    "v1": ("assetData", "deviceAssetId", "deviceId", "fileCreatedAt", "fileModifiedAt"),
    "v2": ("assetData", "fileCreatedAt", "fileModifiedAt"),
}
"""AssetMediaCreateDto's required properties: Immich 1.x listed the device ids, 2.x does not."""
DATE_TIME_FIELDS = ("fileCreatedAt", "fileModifiedAt")
SEARCH_FIELDS = {"checksum", "originalPath", "originalFileName", "deviceId", "deviceAssetId", "id"}


@dataclass
class Asset:
    id: str
    checksum: str  # base64 sha1, as Immich's AssetResponseDto.checksum
    original_path: str
    original_file_name: str
    device_asset_id: str = ""
    device_id: str = ""

    def response(self) -> dict[str, Any]:
        """The identifying part of AssetResponseDto (the full DTO has ~40 properties)."""
        return {
            "id": self.id,
            "checksum": self.checksum,
            "originalPath": self.original_path,
            "originalFileName": self.original_file_name,
            "deviceAssetId": self.device_asset_id,
            "deviceId": self.device_id,
            "type": "IMAGE",
        }


def _error(status: int, message: str | list[str]) -> dict[str, Any]:
    names = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}
    return {"message": message, "error": names.get(status, "Error"), "statusCode": status}


def _is_date_time(value: str) -> bool:
    try:
        _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class ImmichStandIn(LoopbackStandIn):
    def __init__(self, api_key: str = "secret-key", spec: str = "v2") -> None:
        super().__init__()
        self.api_key = api_key
        self.spec = spec
        self.assets: dict[str, Asset] = {}
        self.stacks: list[dict[str, Any]] = []
        self.libraries: list[dict[str, Any]] = []
        self.scanned: list[str] = []

    def __enter__(self) -> ImmichStandIn:
        super().__enter__()
        return self

    def add_asset(self, content: bytes, original_path: str) -> Asset:
        checksum = base64.b64encode(hashlib.sha1(content).digest()).decode()
        asset = Asset(str(uuid.uuid4()), checksum, original_path, original_path.rsplit("/", 1)[-1])
        self.assets[asset.id] = asset
        return asset

    def add_library(self, name: str, import_paths: list[str]) -> dict[str, Any]:
        now = "2026-01-01T00:00:00.000Z"
        lib = {
            "id": str(uuid.uuid4()),
            "name": name,
            "ownerId": str(uuid.uuid4()),
            "importPaths": import_paths,
            "exclusionPatterns": [],
            "assetCount": 0,
            "createdAt": now,
            "updatedAt": now,
            "refreshedAt": None,
        }
        self.libraries.append(lib)
        return lib

    def _answer(self, rec: Recorded, body: bytes, content_type: str) -> tuple[int, Any]:
        if rec.headers.get("x-api-key") != self.api_key:
            message = "Invalid API key" if "x-api-key" in rec.headers else "Authentication required"
            return 401, _error(401, message)
        scripted = self._scripted(rec)
        if scripted is not None:
            return scripted, _error(scripted, "scripted failure")
        route = (rec.method, rec.path)
        if route == ("POST", "/api/assets"):
            return self._upload(rec, body, content_type)
        if rec.method == "POST" and rec.path in ("/api/search/metadata", "/api/stacks"):
            if not read_json(rec, body):
                return 400, _error(400, "Unexpected token in JSON")
            if not isinstance(rec.json, dict):
                return 400, _error(400, "body must be an object")
            if rec.path == "/api/stacks":
                return self._stack(rec.json)
            return self._search(rec.json)
        if route == ("GET", "/api/libraries"):
            return 200, self.libraries
        parts = rec.path.split("/")
        scan = len(parts) == 5 and parts[:3] == ["", "api", "libraries"] and parts[4] == "scan"
        if rec.method == "POST" and scan:
            if not _is_uuid(parts[3]):
                return 400, _error(400, ["id must be a UUID"])
            if not any(lib["id"] == parts[3] for lib in self.libraries):
                return 404, _error(404, "Library not found")
            self.scanned.append(parts[3])
            return 204, None
        return 404, _error(404, f"Cannot {rec.method} {rec.path}")

    def _upload(self, rec: Recorded, body: bytes, content_type: str) -> tuple[int, Any]:
        if not content_type.startswith("multipart/form-data"):
            return 400, _error(400, "expected multipart/form-data")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            data = part.get_payload(decode=True) or b""
            if filename is not None:
                rec.files[str(name)] = (filename, data)
            else:
                rec.form[str(name)] = data.decode("utf-8")
        problems = [
            f"{name} should not be empty"
            for name in UPLOAD_REQUIRED[self.spec]
            if name not in rec.form and name not in rec.files
        ]
        problems += [
            f"{name} must be a valid ISO 8601 date string"
            for name in DATE_TIME_FIELDS
            if name in rec.form and not _is_date_time(rec.form[name])
        ]
        if "assetData" in rec.form:
            problems.append("assetData must be a file")
        if problems:
            return 400, _error(400, problems)
        filename, data = rec.files["assetData"]
        digest = hashlib.sha1(data).digest()
        wanted = rec.headers.get("x-immich-checksum")
        for asset in self.assets.values():
            if base64.b64decode(asset.checksum) == digest and wanted in (
                digest.hex(),
                asset.checksum,
            ):
                return 200, {"id": asset.id, "status": "duplicate"}
        asset = Asset(
            str(uuid.uuid4()),
            base64.b64encode(digest).decode(),
            f"upload/library/{filename}",
            rec.form.get("filename", filename),
            rec.form.get("deviceAssetId", ""),
            rec.form.get("deviceId", ""),
        )
        self.assets[asset.id] = asset
        return 201, {"id": asset.id, "status": "created"}

    def _search(self, query: dict[str, Any]) -> tuple[int, Any]:
        unknown = set(query) - SEARCH_FIELDS - {"page", "size", "withExif"}
        if unknown:
            return 400, _error(400, [f"property {name} should not exist" for name in unknown])
        key_of = {
            "checksum": "checksum",
            "originalPath": "original_path",
            "originalFileName": "original_file_name",
            "deviceId": "device_id",
            "deviceAssetId": "device_asset_id",
            "id": "id",
        }
        items = [
            a.response()
            for a in self.assets.values()
            if all(getattr(a, key_of[k]) == v for k, v in query.items() if k in key_of)
        ]
        empty = {"count": 0, "total": 0, "items": [], "facets": []}
        assets = {"count": len(items), "total": len(items), "items": items, "facets": []}
        return 200, {"albums": empty, "assets": {**assets, "nextPage": None}}

    def _stack(self, dto: dict[str, Any]) -> tuple[int, Any]:
        ids = dto.get("assetIds")
        if not isinstance(ids, list) or len(ids) < 2:
            return 400, _error(400, ["assetIds must contain at least 2 elements"])
        if not all(_is_uuid(i) for i in ids):
            return 400, _error(400, ["each value in assetIds must be a UUID"])
        if not all(i in self.assets for i in ids):
            return 400, _error(400, "Not found or no stack.create access")
        stack = {
            "id": str(uuid.uuid4()),
            "primaryAssetId": ids[0],
            "assets": [self.assets[i].response() for i in ids],
        }
        self.stacks.append(stack)
        return 201, stack
