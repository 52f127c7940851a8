"""`lmd review list|accept|reject|redo|serve`: a person decides on finished restorations.

The same store operations as the review page (`daemon.review.decisions.ReviewService`), so
the command line and the page always agree. `list --json` prints `{"items": [...], "counts":
{...}}`, each item with at least `job_id` and `state` (awaiting, accepted or rejected).
`accept`/`reject` go through every ID given and exit 1 when any of them was refused (each
refusal says why); the others are done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from daemon.cli.context import STORE_INTEGER_MAX, OperationalError, get_settings
from daemon.cli.render import clip, echo_json, print_table, say

if TYPE_CHECKING:
    from daemon.review.decisions import ReviewService
    from daemon.store.review import Review

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
JobIds = Annotated[
    list[int] | None,
    typer.Argument(min=1, max=STORE_INTEGER_MAX, help="Job IDs (`lmd review list`).",
                   show_default=False),
]


class StateChoice(StrEnum):
    awaiting = "awaiting"
    accepted = "accepted"
    rejected = "rejected"
    all = "all"


@contextmanager
def _service(ctx: typer.Context) -> Iterator[ReviewService]:
    from daemon.review.decisions import open_review_service
    from daemon.store import StoreError, open_store

    settings = get_settings(ctx)
    try:
        store = open_store(settings.database_url)
    except StoreError as exc:
        raise OperationalError(str(exc)) from None
    service = open_review_service(settings, store)
    try:
        yield service
    finally:
        service.close()
        store.close()


def _report(done_word: str, results: list, as_json: bool) -> None:  # type: ignore[type-arg]
    from daemon.review.decisions import Decided

    done = [r for r in results if isinstance(r, Decided)]
    refused = [r for r in results if not isinstance(r, Decided)]
    if as_json:
        echo_json({"items": [d.to_dict() for d in done], "refused": refused})
    else:
        for decided in done:
            say(f"{decided.state}: job {decided.job_id} — {decided.message}")
        for message in refused:
            say(f"refused: {message}", err=True)
    if refused:
        raise OperationalError(f"{len(refused)} of {len(results)} could not be {done_word}")


def _state_shown(review: Review) -> str:
    """The review state as a person needs it: an awaiting one a newer job superseded is stale
    (`accept` refuses it)."""
    if review.state.value == "awaiting" and review.superseded_by is not None:
        return f"awaiting, superseded by job {review.superseded_by}"
    return str(review.state.value)


def register(app: typer.Typer) -> None:
    """Add the `review` group to the root app."""
    group = typer.Typer(
        help="Look at finished restorations and accept, reject or redo them.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="review")

    @group.command("list")
    def list_cmd(
        ctx: typer.Context,
        state: Annotated[
            StateChoice, typer.Option("--state", help="Only restorations in this state.")
        ] = StateChoice.all,
        flagged: Annotated[
            bool, typer.Option("--flagged", help="Only those flagged (identity drift, low flow).")
        ] = False,
        limit: Annotated[
            int | None,
            typer.Option("--limit", min=1, max=STORE_INTEGER_MAX, help="At most this many."),
        ] = None,
        offset: Annotated[
            int,
            typer.Option("--offset", min=0, max=STORE_INTEGER_MAX,
                         help="Skip this many first (with --limit: a page)."),
        ] = 0,
        as_json: JsonOpt = False,
    ) -> None:
        """Finished restorations and their review state, newest first."""
        from daemon.cli.jobs import opened_store

        wanted = True if flagged else None
        with opened_store(ctx, read_only=True) as store:  # only looks: creates nothing
            reviews = store.list_reviews(state.value, flagged=wanted, limit=limit, offset=offset)
            total = store.count_reviews(state.value, flagged=wanted)
            counts = store.review_counts()
        following = offset + len(reviews)
        if as_json:
            echo_json({
                "items": [r.to_dict() for r in reviews], "counts": counts, "total": total,
                "offset": offset, "next_offset": following if following < total else None,
            })
            return
        rows = [
            (
                r.job_id, _state_shown(r), r.job.restorer,
                "" if r.flow_confidence is None else f"{r.flow_confidence:.2f}",
                r.face_status, ", ".join(r.flags), clip(r.job.path, 60),
            )
            for r in reviews
        ]
        print_table(
            ("job", "state", "restorer", "flow", "faces", "flags", "photo"), rows,
            empty=f"no {'' if state == StateChoice.all else state.value + ' '}restorations",
        )
        if following < total:
            say(f"{len(reviews)} of {total} shown; the next: --offset {following}", err=True)

    @group.command("accept")
    def accept_cmd(
        ctx: typer.Context,
        job_ids: JobIds = None,
        all_: Annotated[
            bool, typer.Option("--all", help="Accept every restoration awaiting review.")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Publish staged restorations as the output mode says."""
        if bool(job_ids) == all_:
            raise typer.BadParameter("give job IDs or --all")
        with _service(ctx) as service:
            waiting = [] if job_ids else service.list("awaiting")
            for stale in (r for r in waiting if r.superseded_by is not None):
                say(f"skipped: job {stale.job_id} is superseded by job {stale.superseded_by}",
                    err=True)
            ids = job_ids or [r.job_id for r in waiting if r.superseded_by is None]
            results = service.decide_many("accept", ids, by="cli")
        if all_ and not ids and not as_json:
            say("nothing awaits review")
        _report("accepted", results, as_json)

    @group.command("reject")
    def reject_cmd(ctx: typer.Context, job_ids: JobIds = None, as_json: JsonOpt = False) -> None:
        """Discard (or revert) restorations; a scan does not queue those inputs again."""
        if not job_ids:
            raise typer.BadParameter("give at least one job ID")
        with _service(ctx) as service:
            results = service.decide_many("reject", job_ids, by="cli")
        _report("rejected", results, as_json)

    @group.command("redo")
    def redo_cmd(
        ctx: typer.Context,
        job_id: Annotated[int, typer.Argument(min=1, max=STORE_INTEGER_MAX, help="Job ID.")],
        restorer: Annotated[str, typer.Option("--restorer", help="The restorer to use.")],
        as_json: JsonOpt = False,
    ) -> None:
        """Reject a restoration and queue the same photo with another restorer."""
        from daemon.review.decisions import ReviewRefused

        with _service(ctx) as service:
            try:
                results: list = [service.redo(job_id, restorer, by="cli")]
            except ReviewRefused as exc:
                results = [str(exc)]
        _report("redone", results, as_json)

    @group.command("serve")
    def serve_cmd(
        ctx: typer.Context,
        host: Annotated[
            str | None, typer.Option("--host", help="Address to bind ([review] host).")
        ] = None,
        port: Annotated[
            int | None, typer.Option("--port", min=1, max=65535, help="Port ([review] port).")
        ] = None,
    ) -> None:
        """Serve the review page until interrupted."""
        from daemon.review.web.server import ServeRefused, serve_forever

        settings = get_settings(ctx)
        try:
            serve_forever(settings, host=host, port=port)
        except ServeRefused as exc:
            raise OperationalError(str(exc)) from None
