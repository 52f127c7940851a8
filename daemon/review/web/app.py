"""The review page: a Starlette app over `ReviewService`.

Pages: `/` (the grid, filtered by review state and by flags, in pages of `PAGE_SIZE` with
`?page=` and `?per=`; the filters ride along in the previous/next links) and `/job/{id}` (the
detail view: before/after slider, 1:1 loupe, the reference, the facts, accept/reject/redo).
Pictures: `/job/{id}/picture/{kind}` for the kinds in `layout.PREVIEW_FILES` and
`/job/{id}/loupe?x=&y=` (fractions of the picture): every file comes from the job id, never
from a path in the request.
Decisions: JSON POSTs to `/api/accept`, `/api/reject` (`{"ids": [...]}`) and `/api/redo`
(`{"id", "restorer"}`), behind the guard (`security.py`: token, CSRF, host). The endpoints are
plain functions, so Starlette runs them on its thread pool: a decision that writes a file
never blocks the event loop.

A file name may hold bytes that are not UTF-8 (carried as lone surrogates): the templates show
every such text in its escaped form (`daemon.files.names`, as the CLI does), and the JSON
answers write them as `\\udcXX` escapes (ASCII JSON), which `json.loads` gives back exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.responses import JSONResponse as _Utf8JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from daemon.files.names import escape, needs_escape
from daemon.review.decisions import ReviewRefused, ReviewService
from daemon.review.layout import PREVIEW_FILES
from daemon.review.previews import loupe
from daemon.review.web.security import Guard, GuardMiddleware
from daemon.store import JobStore
from daemon.store.review import Review, ReviewState

HERE = Path(__file__).parent


class JSONResponse(_Utf8JSONResponse):
    """JSON in ASCII: a name's lone surrogates become `\\udcXX` escapes, which UTF-8 cannot
    carry as characters."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def _shown(value: Any) -> Any:
    """Every `{{ ... }}` of the templates: text that needs it in its escaped form."""
    if isinstance(value, str) and not isinstance(value, Markup) and needs_escape(value):
        return escape(value)
    return value


STATES = ("awaiting", "accepted", "rejected", "all")
MAX_IDS = 10_000
#: restorations per grid page (`?per=` overrides, up to MAX_PAGE_SIZE): a page of thumbnails
#: a browser loads at once, and what bulk accept selects from
PAGE_SIZE = 60
MAX_PAGE_SIZE = 500


def _bounded(request: Request, name: str, default: int, most: int) -> int:
    """A positive whole-number query parameter (`page`, `per`), at most `most`."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise HTTPException(400, f"{name} must be a whole number from 1 to {most}")
    return int(raw)


def _job_id(request: Request) -> int:
    job_id = request.path_params["job_id"]
    if not 1 <= job_id <= 2**31 - 1:
        raise HTTPException(404)
    return int(job_id)


def _restored_file(service: ReviewService, review: Review) -> Path | None:
    """The full-resolution restoration for the loupe: the staged still, or the published
    output (read only), or None when there is none any more."""
    if review.state == ReviewState.AWAITING and review.staged_signature:
        return service.dirs.staged_file(review.job_id, review.staged_signature["file"])
    if review.state == ReviewState.ACCEPTED and review.job.output_path:
        return Path(review.job.output_path)
    return None


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "expected a JSON object")
    return body


def _ids(body: dict[str, Any]) -> list[int]:
    ids = body.get("ids")
    if (
        not isinstance(ids, list) or not ids or len(ids) > MAX_IDS
        or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in ids)
    ):
        raise HTTPException(400, "expected {\"ids\": [job ids]}")
    return ids


def build_app(settings: Any, store: JobStore, service: ReviewService, guard: Guard) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.finalize = _shown

    def context(request: Request, state: str, flagged: bool) -> dict[str, Any]:
        counts = store.review_counts()
        counts["all"] = sum(counts.values())
        return {
            "csrf": guard.csrf, "states": STATES, "state": state, "flagged": flagged,
            "counts": counts, "required": settings.review.required,
        }

    def chosen_state(request: Request) -> str:
        default = "awaiting" if settings.review.required else "all"
        state = request.query_params.get("state", default)
        if state not in STATES:
            raise HTTPException(400, f"state must be one of {', '.join(STATES)}")
        return state

    def grid(request: Request) -> Response:
        state = chosen_state(request)
        flagged = request.query_params.get("flagged") == "1"
        per = _bounded(request, "per", PAGE_SIZE, MAX_PAGE_SIZE)
        total = store.count_reviews(state, flagged=True if flagged else None)
        pages = max(1, -(-total // per))
        page = min(_bounded(request, "page", 1, 2**31 - 1), pages)
        reviews = store.list_reviews(
            state, flagged=True if flagged else None, limit=per, offset=(page - 1) * per
        )

        def page_url(number: int) -> str | None:
            if not 1 <= number <= pages or number == page:
                return None
            query: dict[str, Any] = {"state": state, "page": number, "per": per}
            if flagged:
                query["flagged"] = 1
            return str(request.url_for("grid").include_query_params(**query))

        return templates.TemplateResponse(
            request, "grid.html",
            {
                **context(request, state, flagged), "reviews": reviews, "page": page,
                "pages": pages, "per": per, "total": total,
                "prev_url": page_url(page - 1), "next_url": page_url(page + 1),
            },
        )

    def detail(request: Request) -> Response:
        job_id = _job_id(request)
        state = chosen_state(request)
        review = service.get(job_id)
        if review is None:
            raise HTTPException(404, f"job {job_id} has no restoration to review")
        before, after = store.review_neighbours(job_id, state)

        def url(other: int | None) -> str | None:
            if other is None:
                return None
            return str(request.url_for("detail", job_id=other)) + f"?state={state}"

        return templates.TemplateResponse(
            request, "detail.html",
            {
                **context(request, state, False), "r": review,
                "restorers": service.restorers_for(review.job),
                "prev_url": url(before), "next_url": url(after),
            },
        )

    def picture(request: Request) -> Response:
        job_id = _job_id(request)
        kind = request.path_params["kind"]
        if kind not in PREVIEW_FILES:
            raise HTTPException(404)
        path = service.dirs.preview(job_id, kind)
        if not path.is_file():
            raise HTTPException(404, "no preview")
        return FileResponse(path, media_type="image/jpeg")

    def loupe_view(request: Request) -> Response:
        job_id = _job_id(request)
        try:
            x = float(request.query_params["x"])
            y = float(request.query_params["y"])
        except (KeyError, ValueError):
            raise HTTPException(400, "x and y are fractions of the picture") from None
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise HTTPException(400, "x and y are fractions of the picture")
        review = service.get(job_id)
        restored = _restored_file(service, review) if review is not None else None
        frame = service.dirs.frame(job_id)
        if restored is None or not restored.is_file() or not frame.is_file():
            raise HTTPException(404, "no restoration to look at")
        try:
            return Response(loupe(frame, restored, x, y), media_type="image/jpeg")
        except (OSError, ValueError) as exc:
            raise HTTPException(404, f"cannot read the restoration: {exc}") from None

    def results(done: list[Any]) -> JSONResponse:
        items = [d.to_dict() for d in done if not isinstance(d, str)]
        refused = [d for d in done if isinstance(d, str)]
        return JSONResponse({"items": items, "refused": refused})

    async def accept(request: Request) -> Response:
        ids = _ids(await _json_body(request))
        return results(await run_in_threadpool(service.decide_many, "accept", ids, "web"))

    async def reject(request: Request) -> Response:
        ids = _ids(await _json_body(request))
        return results(await run_in_threadpool(service.decide_many, "reject", ids, "web"))

    async def redo(request: Request) -> Response:
        body = await _json_body(request)
        job_id, restorer = body.get("id"), body.get("restorer")
        if not isinstance(job_id, int) or isinstance(job_id, bool) or job_id < 1:
            raise HTTPException(400, "expected {\"id\": job id, \"restorer\": name}")
        if not isinstance(restorer, str):
            raise HTTPException(400, "expected {\"id\": job id, \"restorer\": name}")
        try:
            decided = await run_in_threadpool(service.redo, job_id, restorer, "web")
        except ReviewRefused as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse(decided.to_dict())

    def reviews_json(request: Request) -> Response:
        state = chosen_state(request)
        return JSONResponse({"items": [r.to_dict() for r in service.list(state)]})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")

    routes = [
        Route("/", grid, name="grid"),
        Route("/job/{job_id:int}", detail, name="detail"),
        Route("/job/{job_id:int}/picture/{kind:str}", picture, name="picture"),
        Route("/job/{job_id:int}/loupe", loupe_view, name="loupe"),
        Route("/api/reviews", reviews_json),
        Route("/api/accept", accept, methods=["POST"]),
        Route("/api/reject", reject, methods=["POST"]),
        Route("/api/redo", redo, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(GuardMiddleware, guard=guard)],
        exception_handlers={HTTPException: http_error},
    )
