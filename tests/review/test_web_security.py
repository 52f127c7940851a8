"""What keeps the review page safe to leave running (issue 12 item 4): loopback by default, a
token beyond it, CSRF on every state-changing request, pictures by job id only, nothing from a
CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from daemon.review.decisions import open_review_service
from daemon.review.layout import ReviewDirs
from daemon.review.web.app import HERE, build_app
from daemon.review.web.security import COOKIE, Guard, ServeRefused, check_bind
from daemon.store import open_store
from tests.review.helpers import settings_for

LOCAL = "http://127.0.0.1:8765"
TOKEN = "a-long-random-review-token"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[object, Guard, Path]]:
    """The app over an empty store, with a loopback guard; a preview file for job 7."""
    settings = settings_for(tmp_path, tmp_path / "library")
    store = open_store(settings.database_url)
    service = open_review_service(settings, store)
    guard = Guard(None, loopback_only=True)
    preview = ReviewDirs(settings.state_dir).preview(7, "after")
    preview.parent.mkdir(parents=True)
    preview.write_bytes(b"\xff\xd8 a preview")
    (Path(settings.state_dir) / "secret.txt").write_text("not for the page")
    try:
        yield build_app(settings, store, service, guard), guard, Path(settings.state_dir)
    finally:
        service.close()
        store.close()


def test_a_loopback_page_answers_only_loopback_host_names(site) -> None:  # type: ignore[no-untyped-def]
    app, _guard, _state = site
    client = TestClient(app, base_url=LOCAL)
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    # DNS rebinding: a name of the attacker's that resolves to 127.0.0.1 is refused
    assert client.get("/", headers={"host": "evil.example:8765"}).status_code == 421
    assert TestClient(app, base_url="http://localhost:8765").get("/").status_code == 200


def test_every_state_changing_request_needs_the_csrf_token(site) -> None:  # type: ignore[no-untyped-def]
    app, guard, _state = site
    client = TestClient(app, base_url=LOCAL)
    body = {"ids": [1]}
    assert client.post("/api/accept", json=body).status_code == 403
    wrong = {"x-csrf-token": "guess"}
    assert client.post("/api/reject", json=body, headers=wrong).status_code == 403
    right = {"x-csrf-token": guard.csrf}
    form = client.post("/api/accept", content=b"ids=1", headers={
        **right, "content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415  # a plain HTML form of another site cannot post JSON
    other_site = client.post("/api/accept", json=body,
                             headers={**right, "origin": "http://evil.example"})
    assert other_site.status_code == 403
    answer = client.post("/api/accept", json=body, headers=right)
    assert answer.status_code == 200 and answer.json()["refused"] == ["job 1 does not exist"]
    assert client.post("/api/accept", json={"ids": ["1; drop"]}, headers=right).status_code == 400
    # the token is in the page itself, where only a same-origin reader can see it
    assert f'content="{guard.csrf}"' in client.get("/").text


def test_pictures_are_served_by_job_id_and_kind_only(site) -> None:  # type: ignore[no-untyped-def]
    app, _guard, _state = site
    client = TestClient(app, base_url=LOCAL)
    shown = client.get("/job/7/picture/after")
    assert shown.status_code == 200 and shown.content == b"\xff\xd8 a preview"
    for path in (
        "/job/7/picture/..%2F..%2Fsecret.txt",
        "/job/7/picture/../../secret.txt",
        "/job/7/picture/frame",  # a file of the job, but not a kind the page serves
        "/job/0/picture/after",
        "/job/99999999999/picture/after",
        "/job/7/loupe?x=2&y=0.5",
        "/job/7/loupe?x=nan&y=0.5",
    ):
        response = client.get(path)
        assert response.status_code in {400, 404}, path
        assert b"not for the page" not in response.content


def test_a_token_is_asked_once_then_kept_in_a_cookie(site) -> None:  # type: ignore[no-untyped-def]
    app, guard, _state = site
    guard.token = TOKEN
    client = TestClient(app, base_url=LOCAL, follow_redirects=False)
    assert client.get("/").status_code == 401
    assert client.get("/job/7/picture/after").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    entry = client.get(f"/?token={TOKEN}&state=all")
    assert entry.status_code == 303 and entry.headers["location"] == "/?state=all"
    cookie = entry.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert client.get("/?state=all").status_code == 200  # the cookie came back
    fresh = TestClient(app, base_url=LOCAL)
    assert fresh.get("/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_beyond_loopback_the_page_needs_a_token(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind(host, None)
    for host in ("0.0.0.0", "192.168.1.20", "::", "photos.example"):
        with pytest.raises(ServeRefused, match="token"):
            check_bind(host, None)
        check_bind(host, TOKEN)
    from daemon.review.web.server import ReviewServer

    settings = settings_for(tmp_path, tmp_path / "library", review={"host": "0.0.0.0"})
    with open_store(settings.database_url) as store, pytest.raises(ServeRefused):
        ReviewServer(settings, store)


def test_the_page_fetches_nothing_from_elsewhere() -> None:
    """Templates, script and style name no other site: no CDN, no web fonts."""
    files = [*(HERE / "templates").glob("*.html"), *(HERE / "static").glob("*")]
    assert {p.suffix for p in files} >= {".html", ".js", ".css"}
    for path in files:
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path.name
        assert "@import" not in text and "<script>" not in text, path.name
