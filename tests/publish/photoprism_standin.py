"""A stand-in PhotoPrism server on loopback for `POST /api/v1/index` (StartIndexing).

From PhotoPrism's API (internal/api/index.go, internal/form/index_options.go, and the
developer guide "Web Service API"): the body is a JSON `form.IndexOptions` {"path": folder
relative to the originals folder, "rescan": bool, "cleanup": bool}; the client authenticates
with `Authorization: Bearer <token>` or `X-Auth-Token: <token>`; the answer is an
`i18n.Response` {"code": 200, "message": ...} once indexing has finished, or
{"code": N, "error": ...} with 400, 401, 403, 429 or 500. Requests are recorded.
"""

from __future__ import annotations

from typing import Any

from tests.publish.standin import LoopbackStandIn, Recorded, read_json

INDEX_FIELDS = {"path": str, "rescan": bool, "cleanup": bool}


class PhotoPrismStandIn(LoopbackStandIn):
    def __init__(self, token: str = "app-password") -> None:
        super().__init__()
        self.token = token
        self.indexed: list[str] = []

    def __enter__(self) -> PhotoPrismStandIn:
        super().__enter__()
        return self

    def _answer(self, rec: Recorded, body: bytes, content_type: str) -> tuple[int, Any]:
        bearer = rec.headers.get("authorization", "")
        token = bearer[7:] if bearer.lower().startswith("bearer ") else rec.headers.get(
            "x-auth-token"
        )
        if token != self.token:
            return 401, {"code": 401, "error": "Unauthorized"}
        scripted = self._scripted(rec)
        if scripted is not None:
            return scripted, {"code": scripted, "error": "scripted failure"}
        if (rec.method, rec.path) != ("POST", "/api/v1/index"):
            return 404, {"code": 404, "error": "Not found"}
        if not content_type.startswith("application/json") or not read_json(rec, body):
            return 400, {"code": 400, "error": "Unable to do that"}
        form = rec.json
        if not isinstance(form, dict) or any(
            name not in INDEX_FIELDS or not isinstance(value, INDEX_FIELDS[name])
            for name, value in form.items()
        ):
            return 400, {"code": 400, "error": "Unable to do that"}
        self.indexed.append(form.get("path", ""))
        return 200, {"code": 200, "message": "Indexing completed in 0 s"}
