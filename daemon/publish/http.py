"""HTTP plumbing shared by the Immich and PhotoPrism clients: one TLS context, one way to
turn a failed request into a `DeliveryError` whose message says what to fix."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from daemon.publish.outbox import DeliveryError

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Statuses that can heal by waiting (overload, restarts, proxies)."""
CONFIG_STATUSES = frozenset({401, 403, 404})
"""Statuses that need the person to fix a key or an address: retried too (the server may be
mid-upgrade, or the key fixed and lmd restarted), but each try says what to check."""


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client: building one parses the CA bundle (~0.1 s
    of CPU), and httpx would otherwise build one per client."""
    return ssl.create_default_context()


def make_client(
    base_url: str,
    headers: Mapping[str, str],
    *,
    timeout: float,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers=dict(headers),
        timeout=httpx.Timeout(timeout),
        transport=transport,
        verify=tls_context(),
        follow_redirects=False,
    )


def error_detail(response: httpx.Response) -> str:
    """The server's own words, short: Immich answers {"message", "error", "statusCode"},
    PhotoPrism {"code", "error"}; anything else is cut to 200 characters."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if isinstance(message, list):
            message = "; ".join(map(str, message))
        return str(message or body)[:300]
    return str(body)[:300]


def call(
    client: httpx.Client,
    service: str,
    method: str,
    path: str,
    *,
    hints: Mapping[int, str],
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; a 2xx answer is returned, anything else raises `DeliveryError`."""
    what = f"{service} {method} {client.base_url.path.rstrip('/')}{path}"
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        host = f"{client.base_url.scheme}://{client.base_url.netloc.decode()}"
        raise DeliveryError(f"{what}: cannot reach {host}: {exc}") from exc
    if response.is_success:
        return response
    status = response.status_code
    message = f"{what} failed with {status}: {error_detail(response)}"
    if status in hints:
        message += f" — {hints[status]}"
    raise DeliveryError(message, retry=status in RETRYABLE or status in CONFIG_STATUSES)


def json_of(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise DeliveryError(f"{what}: the answer is not JSON") from exc
