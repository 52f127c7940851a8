"""What keeps the review page safe to leave running: who may ask, and what a request may do.

- **Bind address.** The page binds 127.0.0.1 by default; any other address needs
  `[review] token` (`check_bind` refuses to start without one). Behind a loopback bind, the
  Host header must name a loopback host too: a web page elsewhere cannot reach the page through
  a DNS name that resolves to 127.0.0.1 (DNS rebinding).
- **Token.** With a token configured every request carries it: `Authorization: Bearer TOKEN`
  (scripts), or a cookie set once by opening `/?token=TOKEN` (the browser is then redirected
  to the same page without the token in its address). Compared in constant time.
- **CSRF.** Every state-changing request is a JSON POST carrying `X-CSRF-Token`, a secret made
  when the server starts and written only into its own pages; a page of another site can
  neither read it nor send a JSON body or that header without a CORS preflight the page never
  answers. A request whose Origin is another site is refused as well.
- **Headers.** A content security policy that allows only the page's own files (nothing from a
  CDN, no inline script), no framing (an accept button cannot be clicked through another site).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "lmd_review_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
HEADERS = {
    "content-security-policy": (
        "default-src 'none'; img-src 'self'; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class ServeRefused(ValueError):
    """The page will not start as configured; the message says what to set (a ValueError:
    a setting's value is wrong, as `Service` reports it)."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and the usual names for them."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise ServeRefused(
            f"the review page would listen on {host}, beyond this machine, without a token; "
            "set [review] token (LMD_REVIEW__TOKEN) to a long random secret, or bind 127.0.0.1"
        )


def _host_name(host_header: str) -> str:
    """`example:8765` -> `example`; `[::1]:8765` -> `::1`."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    """The page's secrets and checks: one per server process."""

    def __init__(self, token: str | None, loopback_only: bool) -> None:
        self.token = token or None
        self.loopback_only = loopback_only
        self.csrf = secrets.token_urlsafe(32)

    def same(self, given: str | None, secret: str) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), secret.encode())

    def authorised(self, headers: Headers) -> bool:
        if self.token is None:
            return True
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self.same(auth[7:].strip(), self.token):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and self.same(morsel.value, self.token)

    def csrf_ok(self, headers: Headers) -> bool:
        return self.same(headers.get(CSRF_HEADER), self.csrf)

    def host_ok(self, headers: Headers) -> bool:
        return not self.loopback_only or is_loopback(_host_name(headers.get("host", "")))

    def origin_ok(self, headers: Headers) -> bool:
        """No Origin (same-origin GETs, scripts), or the same host as the request."""
        origin = headers.get("origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


class GuardMiddleware:
    """Applies `Guard` to every request (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await self._with_headers(refusal)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", []) if k.decode() not in HEADERS]
                raw += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _with_headers(response: Response) -> Response:
        response.headers.update(HEADERS)
        return response

    def _refusal(self, scope: Scope, headers: Headers) -> Response | None:
        guard = self.guard
        if not guard.host_ok(headers):
            return PlainTextResponse("this page answers only on a loopback host name", 421)
        method = scope["method"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if guard.token is not None and method in SAFE_METHODS and "token" in query:
            if not guard.same(query["token"], guard.token):
                return PlainTextResponse("wrong token", 401)
            rest = urlencode({k: v for k, v in query.items() if k != "token"})
            response = RedirectResponse(scope["path"] + (f"?{rest}" if rest else ""), 303)
            response.set_cookie(COOKIE, guard.token, httponly=True, samesite="strict")
            return response
        if not guard.authorised(headers):
            return PlainTextResponse(
                "lmd review needs its token: open this page as /?token=TOKEN once, or send "
                "'Authorization: Bearer TOKEN'", 401,
            )
        if method not in SAFE_METHODS:
            if not guard.origin_ok(headers):
                return PlainTextResponse("cross-site request refused", 403)
            if not guard.csrf_ok(headers):
                return PlainTextResponse("missing or wrong CSRF token", 403)
            if headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return PlainTextResponse("expected a JSON request", 415)
        return None
