"""The human form of `daemon.status.status_payload`, shared by `lmd status` and `lmd demo`.

Tables through `daemon.cli.render.print_table`: boxes on a terminal, whole tab-separated values
in a pipe.
"""

from __future__ import annotations

from typing import Any

from daemon.cli.render import clip, print_table, say


def render_status(payload: dict[str, Any]) -> None:
    counts = payload["jobs"]
    title = "jobs" + ("  (paused)" if payload.get("paused") else "")
    print_table(list(counts), [[str(n) for n in counts.values()]], title=title)
    videos = payload.get("video_jobs") or {}
    if any(videos.values()):
        print_table(list(videos), [[str(n) for n in videos.values()]], title="video jobs")

    workers = payload.get("worker") or []
    rows = []
    for w in workers:
        progress = f"{w['progress'] * 100:.0f}%" if w.get("progress") is not None else ""
        state = f"{w['state']} (gone?)" if w.get("stale") else str(w["state"])
        rows.append((w["id"], state, w.get("job_id") or "", progress, w.get("stage") or "",
                     w.get("window") or "", w.get("heartbeat_at") or ""))
    print_table(("worker", "state", "job", "progress", "stage", "window", "heartbeat"), rows,
                title="workers", empty="workers: none registered")

    reviews = payload.get("reviews") or {}
    required = bool(payload.get("review_required"))
    # review in use: required, or something waits for a person or was turned down (with review
    # off every restoration is published directly, 'accepted', and the line would only repeat
    # the jobs)
    if required or reviews.get("awaiting") or reviews.get("rejected"):
        say(f"reviews: {reviews.get('awaiting', 0)} awaiting, {reviews.get('accepted', 0)}"
            f" accepted, {reviews.get('rejected', 0)} rejected"
            + (" (review required)" if required else ""))

    restorer = payload.get("restorer")
    if restorer:
        say(f"restorer: {restorer['name']} on {restorer['device']}"
            + (f" ({restorer['checkpoint']})" if restorer.get("checkpoint") else ""))
    if payload.get("watcher_mode"):
        say(f"watcher: {payload['watcher_mode']}")
    scan = payload.get("last_scan")
    if scan:
        when = scan.get("finished_at") or f"{scan['started_at']} (running)"
        say(f"last scan: {when} of {scan['root']} ({scan['trigger']}): {scan['files_seen']} files,"
            f" {scan['assets_found']} Live Photos, {scan['enqueued']} enqueued,"
            f" {scan['unreadable']} unreadable")
    else:
        say("last scan: never")

    sent = payload.get("deliveries") or {}
    if sent.get("pending") or sent.get("failed"):
        each = ", ".join(
            f"{name} {c['pending']} pending, {c['failed']} failed"
            for name, c in sorted((sent.get("by_publisher") or {}).items())
            if c["pending"] or c["failed"]
        )
        say(f"deliveries: {sent['pending']} pending, {sent['failed']} failed ({each})")
        for e in sent.get("recent_failed") or []:
            say(f"  failed: {e['publisher']} {e['kind']} (job {e['job_id'] or '-'}):"
                f" {clip(e['last_error'] or '', 80)}")

    failures = payload.get("failures") or []
    if failures:
        print_table(("job", "path", "attempts", "error"),
                    ((f["job_id"], f["path"], f["attempts"], clip(f["error"], 80))
                     for f in failures), title="recent failures")
    problems = payload.get("library_problems") or []
    if problems:
        print_table(("asset", "reason"), ((p["key"], clip(p["reason"], 80)) for p in problems),
                    title="library problems")
